/**
 * The SUBSCRIBE stream on the wire, read from a raw TCP socket: chunked
 * transfer encoding where every HTTP chunk is exactly one whole RecordIO
 * record (as Mesos writes them), and a RecordIO byte stream that decodes to
 * the same events whether it is read whole, 1 byte at a time, or in random
 * chunk sizes.
 */
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeEvent, encodeCall } from '../../../proto/codec.js';
import { RecordIODecoder } from '../../../proto/recordio.js';
import { Rng } from '../../../master/allocator/rng.js';
import type { Event } from '../../../proto/types.js';
import { startCluster, type TestCluster } from '../../helpers/cluster.js';

interface Chunked { headers: string; chunks: Buffer[] }

/** Parses an HTTP/1.1 chunked response from raw bytes: head + every complete chunk so far. */
function parseChunked(raw: Buffer): Chunked | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const headers = raw.subarray(0, end).toString('latin1');
  const chunks: Buffer[] = [];
  let i = end + 4;
  for (;;) {
    const nl = raw.indexOf('\r\n', i);
    if (nl < 0) break;
    const size = parseInt(raw.subarray(i, nl).toString('latin1'), 16);
    if (!Number.isFinite(size) || raw.length < nl + 2 + size + 2) break;
    chunks.push(raw.subarray(nl + 2, nl + 2 + size));
    i = nl + 2 + size + 2;
    if (size === 0) break;
  }
  return { headers, chunks };
}

/** Opens a SUBSCRIBE over a bare socket and returns the parsed response once `minChunks` chunks arrived. */
function rawSubscribe(port: number, contentType: string, body: Buffer, minChunks: number): Promise<Chunked> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let raw = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`timed out; got ${raw.length} bytes`)); }, 10_000);
    sock.on('connect', () => {
      sock.write(`POST /api/v1/scheduler HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: ${contentType}\r\nAccept: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`);
      sock.write(body);
    });
    sock.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      const parsed = parseChunked(raw);
      if (parsed && parsed.chunks.length >= minChunks) {
        clearTimeout(timer);
        sock.destroy();
        resolve(parsed);
      }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** A seeded generator so the random chunking is reproducible. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function decodeAll(bytes: Buffer, sizes: () => number): Buffer[] {
  const d = new RecordIODecoder();
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = Math.max(1, sizes());
    out.push(...d.push(bytes.subarray(i, i + n)));
    i += n;
  }
  assert.is(d.pending, 0, 'ends on a record boundary');
  return out;
}

const s = suite('SUBSCRIBE stream framing');
let c: TestCluster;
// Fast heartbeats so a stream carries many records within a test.
s.before(async () => { c = await startCluster({ agents: 2, master: { heartbeatIntervalSeconds: 0.01 } }); });
s.after(async () => { await c?.stop(); });

for (const [media, encode, decode] of [
  ['application/json', (o: object) => Buffer.from(JSON.stringify(o)), (b: Buffer) => JSON.parse(b.toString()) as Event],
  ['application/x-protobuf', (o: object) => Buffer.from(encodeCall(o)), (b: Buffer) => decodeEvent(b)],
] as const) {
  s(`${media}: every HTTP chunk is one whole RecordIO record`, async () => {
    const body = encode({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: `framing-${media}` } } });
    const res = await rawSubscribe(c.running.port, media, body, 8);
    assert.match(res.headers, /^HTTP\/1\.1 200/);
    assert.match(res.headers, /transfer-encoding: chunked/i);
    assert.match(res.headers, new RegExp(`content-type: ${media.replace('/', '\\/')}`, 'i'));
    assert.match(res.headers, /mesos-stream-id: [0-9a-f-]{36}/i);
    const types: string[] = [];
    for (const chunk of res.chunks) {
      const d = new RecordIODecoder();
      const recs = d.push(chunk);
      assert.is(recs.length, 1, 'exactly one record per chunk');
      assert.is(d.pending, 0, 'and nothing more');
      types.push(decode(recs[0]!).type ?? '');
    }
    assert.is(types[0], 'SUBSCRIBED');
    assert.ok(types.includes('OFFERS'), `offers arrive: ${types.join(',')}`);
    assert.ok(types.includes('HEARTBEAT'), 'heartbeats arrive');
  });

  s(`${media}: the record stream decodes the same whole, 1 byte at a time, and in random chunk sizes`, async () => {
    const body = encode({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: `chunks-${media}` } } });
    const res = await rawSubscribe(c.running.port, media, body, 12);
    const bytes = Buffer.concat(res.chunks);
    const whole = decodeAll(bytes, () => bytes.length);
    assert.ok(whole.length >= 12);
    const one = decodeAll(bytes, () => 1);
    assert.equal(one.map((b) => b.toString('hex')), whole.map((b) => b.toString('hex')));
    for (const seed of [1, 2, 3, 42]) {
      const r = rng(seed);
      const random = decodeAll(bytes, () => 1 + Math.floor(r() * 37));
      assert.equal(random.map((b) => b.toString('hex')), whole.map((b) => b.toString('hex')), `seed ${seed}`);
    }
    const events = whole.map(decode);
    assert.is(events[0]!.type, 'SUBSCRIBED');
  });
}

s.run();
