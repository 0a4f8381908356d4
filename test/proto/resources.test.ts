import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Resources, NDIMS, DIM } from '../../proto/resources.js';
import { BerthError } from '../../proto/errors.js';

test('scalars are exact to 3 decimals: 0.1 + 0.2 - 0.3 leaves nothing', () => {
  const r = Resources.parse('cpus:0.1').add(Resources.parse('cpus:0.2')).subtract(Resources.parse('cpus:0.3'));
  assert.ok(r.isEmpty());
  assert.is(Resources.parse('cpus:0.1').add(Resources.parse('cpus:0.2')).scalar('cpus'), 0.3);
  assert.is(Resources.parse('mem:1.23456').scalar('mem'), 1.235, 'rounded to 3 decimals as Mesos');
});

test('the text form parses scalars, ranges, sets and roles, and round-trips', () => {
  const r = Resources.parse('cpus:4;mem:8192;ports:[31000-31005,31003-31010];disk(ops):100;zones:{b,a}');
  assert.is(r.scalar('cpus'), 4);
  assert.is(r.scalar('disk', 'ops'), 100);
  assert.is(r.scalar('disk', '*'), 0);
  assert.equal(r.ranges('ports'), [[31000, 31010]], 'overlapping ranges coalesce');
  assert.is(r.toString(), 'cpus:4;mem:8192;ports:[31000-31010];disk(ops):100;zones:{a,b}');
  assert.ok(Resources.parse(r.toString()).equals(r));
});

test('ranges subtract and contain by value, splitting where needed', () => {
  const all = Resources.parse('ports:[31000-31010]');
  const some = Resources.parse('ports:[31003-31004]');
  const left = all.subtract(some);
  assert.equal(left.ranges('ports'), [[31000, 31002], [31005, 31010]]);
  assert.ok(all.contains(some));
  assert.not.ok(left.contains(some));
  assert.ok(left.add(some).equals(all), 'adjacent ranges merge back');
});

test('contains compares per role: reserved resources do not satisfy unreserved demand', () => {
  const have = Resources.parse('cpus(web):4;mem:1024');
  assert.ok(have.contains(Resources.parse('cpus(web):2')));
  assert.not.ok(have.contains(Resources.parse('cpus:2')));
  assert.ok(have.allocatableTo('web').contains(Resources.parse('cpus(web):4;mem:512')));
  assert.ok(have.allocatableTo('batch').equals(Resources.parse('mem:1024')));
  assert.ok(have.unreserved().equals(Resources.parse('mem:1024')));
});

test('subtract saturates at empty and drops empty entries', () => {
  const r = Resources.parse('cpus:1;mem:128').subtract(Resources.parse('cpus:5'));
  assert.is(r.size, 1);
  assert.is(r.scalar('mem'), 128);
});

test('bad input names the item at fault', () => {
  const bad: [string, string][] = [
    ['cpus:abc', "'abc' is not a number"],
    ['cpus', 'expected name:value'],
    ['ports:[10-x]', "bad range '10-x'"],
    ['ports:[10-5]', 'invalid range'],
    ['cpus:-1', 'negative scalar'],
  ];
  for (const [text, msg] of bad) {
    try {
      Resources.parse(text);
      assert.unreachable(`'${text}' should fail`);
    } catch (e) {
      assert.instance(e, BerthError);
      assert.ok((e as Error).message.includes(msg), `'${text}': ${(e as Error).message}`);
    }
  }
});

test('the packed form holds thousandths of each scalar dimension', () => {
  const out = new Float64Array(NDIMS);
  Resources.parse('cpus:1.5;mem:256;gpus:1;ports:[1-2]').addPacked(out);
  assert.is(out[DIM.cpus], 1500);
  assert.is(out[DIM.mem], 256000);
  assert.is(out[DIM.gpus], 1000);
  Resources.parse('cpus:0.5').addPacked(out, 0, -1);
  assert.is(out[DIM.cpus], 1000);
});

test('wire form carries reservations and allocation_info', () => {
  const wire = Resources.parse('cpus(web):2;mem:64').toWire('web');
  const cpus = wire.find((r) => r.name === 'cpus')!;
  assert.equal(cpus.reservations, [{ type: 'STATIC', role: 'web' }]);
  assert.equal(cpus.allocation_info, { role: 'web' });
  assert.ok(Resources.from(wire).equals(Resources.parse('cpus(web):2;mem:64')));
});

test.run();
