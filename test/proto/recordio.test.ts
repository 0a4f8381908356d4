import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeRecord, RecordIODecoder } from '../../proto/recordio.js';

const records = ['{"type":"SUBSCRIBED"}', '', '{"type":"HEARTBEAT"}', 'x'.repeat(5000), 'ünïcødé'];
const stream = Buffer.concat(records.map((r) => encodeRecord(r)));

test('a record is its byte length in decimal, a newline, then the payload', () => {
  assert.is(encodeRecord('ünï').toString(), '5\nünï');
});

for (const size of [1, 2, 3, 7, 64, 4096, stream.length]) {
  test(`records survive being read ${size} byte(s) at a time`, () => {
    const d = new RecordIODecoder();
    const out: string[] = [];
    for (let i = 0; i < stream.length; i += size) out.push(...d.push(stream.subarray(i, i + size)).map((b) => b.toString()));
    assert.equal(out, records);
    assert.is(d.pending, 0);
  });
}

test('a bad header or an oversized record is an error, not unbounded buffering', () => {
  assert.throws(() => new RecordIODecoder().push(Buffer.from('12x\n')), /bad record length/);
  assert.throws(() => new RecordIODecoder(10).push(Buffer.from('11\n')), /exceeds 10/);
  assert.throws(() => new RecordIODecoder().push(Buffer.from('1'.repeat(25))), /longer than 20/);
});

test.run();
