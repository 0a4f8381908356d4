import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Resources } from '../../proto/resources.js';
import { agentResources, buildAgentInfo, memReserveMiB, parseAttributes } from '../../agent/resources.js';

const host = { cpus: 8, memBytes: 16 * 2 ** 30, diskFreeBytes: 200 * 2 ** 30, gpus: 0 };

test('detects cpus, mem minus the host reserve, disk minus its reserve, and the default ports', () => {
  const r = agentResources({ workDir: '/tmp', host });
  assert.is(r.scalar('cpus'), 8);
  assert.is(r.scalar('mem'), 16384 - 1638);
  assert.is(r.scalar('disk'), 204800 - 20480);
  assert.equal(r.ranges('ports'), [[31000, 32000]]);
  assert.is(r.scalar('gpus'), 0);
});

test('memory reserve: max(1 GiB, 10 %) from 2 GiB up, half below', () => {
  assert.equal([memReserveMiB(1024), memReserveMiB(4096), memReserveMiB(65536)], [512, 1024, 6553]);
});

test('--resources overrides detected resources by name and adds new ones', () => {
  const r = agentResources({ workDir: '/tmp', host: { ...host, gpus: 2 }, overrides: 'cpus:2;ports:[40000-40009];foo(role1):3' });
  assert.is(r.scalar('cpus'), 2);
  assert.equal(r.ranges('ports'), [[40000, 40009]]);
  assert.is(r.scalar('foo', 'role1'), 3);
  assert.is(r.scalar('gpus'), 2);
  assert.ok(r.scalar('mem') > 0, 'mem still detected');
});

test('attributes: text, scalar, ranges, set; errors name the item', () => {
  assert.equal(parseAttributes('rack:r1;zone:a;level:3;span:[1-2,5-6];tags:{x,y}'), [
    { name: 'rack', type: 'TEXT', text: { value: 'r1' } },
    { name: 'zone', type: 'TEXT', text: { value: 'a' } },
    { name: 'level', type: 'SCALAR', scalar: { value: 3 } },
    { name: 'span', type: 'RANGES', ranges: { range: [{ begin: 1, end: 2 }, { begin: 5, end: 6 }] } },
    { name: 'tags', type: 'SET', set: { item: ['x', 'y'] } },
  ]);
  assert.throws(() => parseAttributes('rack'), /cannot parse 'rack'/);
  assert.throws(() => parseAttributes('a:1;a:2'), /'a' given twice/);
});

test('AgentInfo carries hostname, port, resources, attributes and the id when known', () => {
  const info = buildAgentInfo({ workDir: '/tmp', host, hostname: 'h1', port: 5051, attributes: 'rack:r1', agentId: 'A' });
  assert.is(info.hostname, 'h1');
  assert.is(info.port, 5051);
  assert.is(info.id?.value, 'A');
  assert.is(Resources.from(info.resources).scalar('cpus'), 8);
  assert.is(info.attributes!.length, 1);
});

test.run();
