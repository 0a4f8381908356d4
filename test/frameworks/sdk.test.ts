/**
 * The SDK over each transport against a real master (loopback, port 0) with
 * fake agents — native WebSocket (`berth://`), Mesos HTTP API in JSON and in
 * protobuf — plus in-process (MemoryNetwork) checks of the delivery queue,
 * acknowledgements and reconnection, and unit checks of the task helpers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Master } from '../../master/master.js';
import { MemoryRegistry } from '../../master/registry/types.js';
import { silentLogger } from '../../proto/log.js';
import { MemoryNetwork } from '../../proto/transport/memory.js';
import {
  BerthError, connect, OfferPool, pickResources, task, taskInfo,
  type ConnectOptions, type Framework, type FrameworkEvent, type Offer, type TaskStatus,
} from '../../frameworks/sdk/index.js';
import { SimAgent, holdScript, startCluster, type TestCluster } from '../helpers/cluster.js';

const until = async (cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

// ------------------------------------------------------------------ each transport

const transports = suite('SDK over each transport');
let c: TestCluster;
const open: Framework[] = [];
transports.before(async () => { c = await startCluster({ agents: 2 }); });
transports.after(async () => {
  for (const f of open) f.close();
  await c?.stop();
});

for (const [label, master, encoding] of [
  ['native berth://', (cl: TestCluster) => `berth://${cl.hostPort}`, undefined],
  ['HTTP API, JSON', (cl: TestCluster) => cl.url, 'json'],
  ['HTTP API, protobuf', (cl: TestCluster) => cl.url, 'protobuf'],
] as const) {
  transports(`${label}: offers, launch with ports, updates auto-acknowledged, reconcile, teardown`, async () => {
    const fw = await connect({ master: master(c), encoding, framework: { name: `sdk-${label}`, failover_timeout: 60 } });
    open.push(fw);
    assert.is(fw.transportKind, label.startsWith('native') ? 'native' : 'http');
    assert.ok(fw.frameworkId);
    const updates: TaskStatus[] = [];
    fw.on('update', (st) => { updates.push(st); });
    const offers = await new Promise<Offer[]>((r) => fw.on('offers', (o) => { r(o); }));
    const agentLaunch = Promise.race(c.agents.map((a) => a.nextLaunch()));
    const [launched] = await fw.launch(offers[0]!, task({ id: `t-${label.length}-${Date.now()}`, cmd: 'sleep 0.05; echo ok', cpus: 0.25, mem: 32, ports: 2, env: { GREETING: 'hi' } }));
    const seenByAgent = await agentLaunch;
    const env = Object.fromEntries((seenByAgent.command?.environment?.variables ?? []).map((v) => [v.name, v.value]));
    assert.is(env.GREETING, 'hi');
    assert.match(String(env.PORT0), /^3\d{4}$/);
    assert.is(env.PORTS, `${env.PORT0},${env.PORT1}`);
    const tid = launched!.task_id.value;
    await until(() => updates.some((u) => u.task_id.value === tid && u.state === 'TASK_FINISHED'), 5000, 'TASK_FINISHED');
    assert.equal(updates.filter((u) => u.task_id.value === tid).map((u) => u.state), ['TASK_RUNNING', 'TASK_FINISHED']);
    await until(() => c.agents.every((a) => a.unacked.size === 0), 5000, 'every update acknowledged');

    const it = fw.events();
    await fw.reconcile([tid]);
    for await (const ev of it) {
      if (ev.type === 'update' && ev.status.task_id.value === tid) {
        assert.is(ev.status.reason, 'REASON_RECONCILIATION');
        break;
      }
    }
    await fw.teardown();
    assert.ok(fw.closed);
    await until(() => !c.running.master.framework(fw.frameworkId), 2000, 'framework removed');
  });
}

transports('a call the master refuses rejects over HTTP and surfaces as a non-fatal error natively', async () => {
  const http = await connect({ master: c.url, framework: { name: 'refused-http' } });
  const native = await connect({ master: `berth://${c.hostPort}`, framework: { name: 'refused-native' } });
  open.push(http, native);
  const bad = { agent_id: { value: 'a' }, task_id: { value: 't' }, uuid: 'AAAA', state: 'TASK_RUNNING' } as unknown as TaskStatus;
  try {
    await http.acknowledge(bad);
    assert.unreachable('should have been rejected');
  } catch (e) {
    assert.instance(e, BerthError);
    assert.match((e as Error).message, /^400: .*uuid/);
  }
  const err = new Promise<string>((r) => native.on('error', (e) => { if (!e.fatal) r(e.message); }));
  await native.acknowledge(bad);
  assert.match(await err, /uuid/);
  assert.ok(native.connected, 'a refused call leaves the subscription up');
  http.close();
  native.close();
});

transports('resubscribing as a removed framework is refused (connect rejects)', async () => {
  const fw = await connect({ master: c.url, framework: { name: 'gone' } });
  const id = fw.frameworkId;
  await fw.teardown();
  for (const master of [c.url, `berth://${c.hostPort}`]) {
    try {
      await connect({ master, frameworkId: id, framework: { name: 'gone' }, connectTimeoutMs: 1000 });
      assert.unreachable('connect should reject');
    } catch (e) {
      assert.instance(e, BerthError);
      assert.is((e as BerthError).code, 'FORBIDDEN', (e as Error).message);
    }
  }
});

transports('HTTP: a lost event stream is resubscribed with the same framework id', async () => {
  const fw = await connect({ master: c.url, framework: { name: 'reconnector', failover_timeout: 60 }, reconnect: { baseMs: 10, maxMs: 50 } });
  open.push(fw);
  const id = fw.frameworkId;
  const seen: string[] = [];
  const again = new Promise<boolean>((r) => fw.on('subscribed', (info) => { r(info.reconnected && info.frameworkId === id); }));
  fw.on('disconnected', (d) => { seen.push(`disconnected:${d.willReconnect}`); });
  c.running.master.framework(id)!.sink!.close('test cut'); // the master ends the HTTP stream
  assert.ok(await again, 'resubscribed as the same framework');
  assert.equal(seen, ['disconnected:true']);
  assert.ok(fw.connected);
  fw.close();
});

transports.run();

// ------------------------------------------------------------------ in process

const mem = suite('SDK in process (MemoryNetwork)');

async function inProcess(agents = 1, opts: Partial<ConnectOptions> = {}, script = holdScript) {
  const net = new MemoryNetwork();
  const master = new Master({ registry: new MemoryRegistry(), log: silentLogger });
  master.listen(net);
  await master.start();
  const as: SimAgent[] = [];
  for (let i = 0; i < agents; i++) as.push(await SimAgent.start({ dialer: net, hostname: `m${i}`, script }));
  const fw = await connect({ master: net, framework: { name: 'mem', failover_timeout: 60 }, log: silentLogger, ...opts });
  return {
    net, master, agents: as, fw,
    async stop() { fw.close(); for (const a of as) a.stop(); await master.stop(); },
  };
}

mem('callbacks run one at a time: an async callback finishes before the next event is delivered', async () => {
  const env = await inProcess(1);
  try {
    const log: string[] = [];
    let active = 0;
    let maxActive = 0;
    const cb = async (tag: string): Promise<void> => {
      active++; maxActive = Math.max(maxActive, active);
      log.push(`start ${tag}`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`end ${tag}`);
      active--;
    };
    env.fw.on('update', (st) => cb(st.task_id.value + ':' + st.state));
    env.fw.on('heartbeat', () => cb('hb'));
    const offers = await new Promise<Offer[]>((r) => env.fw.on('offers', (o) => { r(o); }));
    const pool = new OfferPool(offers);
    for (let i = 0; i < 5; i++) pool.place(task({ id: `q${i}`, cmd: 'x', cpus: 0.1, mem: 16 }));
    await env.fw.acceptPool(pool);
    await env.fw.reconcile(); // 5 more updates queued behind the first ones
    await until(() => log.filter((l) => l.startsWith('end')).length >= 10, 5000, '10 callbacks');
    assert.is(maxActive, 1, `callbacks overlapped: ${log.join(', ')}`);
  } finally { await env.stop(); }
});

mem('autoAcknowledge: false leaves updates unacknowledged until fw.acknowledge', async () => {
  const env = await inProcess(1, { autoAcknowledge: false });
  try {
    const updates: TaskStatus[] = [];
    env.fw.on('update', (st) => { updates.push(st); });
    const offers = await new Promise<Offer[]>((r) => env.fw.on('offers', (o) => { r(o); }));
    await env.fw.launch(offers[0]!, task({ id: 'manual', cmd: 'x', cpus: 0.1, mem: 16 }));
    await until(() => updates.length >= 1);
    await new Promise((r) => setTimeout(r, 20));
    assert.is(env.agents[0]!.unacked.size, 1, 'not acknowledged');
    await env.fw.acknowledge(updates[0]!);
    await until(() => env.agents[0]!.unacked.size === 0, 2000, 'acknowledged');
  } finally { await env.stop(); }
});

mem('a throwing update callback leaves the update unacknowledged and reports a non-fatal error', async () => {
  const env = await inProcess(1);
  try {
    const errors: string[] = [];
    env.fw.on('error', (e) => { errors.push(`${e.source}:${e.fatal}`); });
    env.fw.on('update', () => { throw new Error('boom'); });
    const offers = await new Promise<Offer[]>((r) => env.fw.on('offers', (o) => { r(o); }));
    await env.fw.launch(offers[0]!, task({ id: 'throws', cmd: 'x', cpus: 0.1, mem: 16 }));
    await until(() => errors.length >= 1);
    assert.equal(errors[0], 'callback:false');
    await new Promise((r) => setTimeout(r, 20));
    assert.is(env.agents[0]!.unacked.size, 1);
  } finally { await env.stop(); }
});

mem('native: a cut connection is resubscribed with the same id and the tasks are kept', async () => {
  const env = await inProcess(1, { reconnect: { baseMs: 5, maxMs: 20 } });
  try {
    const offers = await new Promise<Offer[]>((r) => env.fw.on('offers', (o) => { r(o); }));
    await env.fw.launch(offers[0]!, task({ id: 'keeper', cmd: 'x', cpus: 0.1, mem: 16 }));
    await until(() => env.agents[0]!.running === 1);
    const id = env.fw.frameworkId;
    const events: FrameworkEvent['type'][] = [];
    const it = env.fw.events();
    const resubscribed = (async () => {
      for await (const ev of it) {
        events.push(ev.type);
        if (ev.type === 'subscribed') return ev.info;
      }
      return undefined;
    })();
    for (const conn of env.net.conns) if (conn.id && env.master.framework(id)) conn.close('cut'); // cut every link
    const info = await resubscribed;
    assert.ok(info?.reconnected);
    assert.is(info?.frameworkId, id);
    assert.ok(events.includes('disconnected'));
    await until(() => env.master.framework(id)?.status === 'CONNECTED', 2000, 'connected again');
    assert.is(env.master.framework(id)?.tasks.size, 1, 'tasks kept across the reconnect');
  } finally { await env.stop(); }
});

mem.run();

// ------------------------------------------------------------------ helpers

const helpers = suite('SDK task helpers');

const offer: Offer = {
  id: { value: 'o1' }, framework_id: { value: 'f' }, agent_id: { value: 'a1' }, hostname: 'h',
  resources: [
    { name: 'cpus', type: 'SCALAR', scalar: { value: 0.3 }, allocation_info: { role: 'web' } },
    { name: 'mem', type: 'SCALAR', scalar: { value: 1024 }, allocation_info: { role: 'web' }, reservations: [{ type: 'STATIC', role: 'web' }] },
    { name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 31000, end: 31001 }, { begin: 31005, end: 31010 }] }, allocation_info: { role: 'web' } },
  ],
};

helpers('pickResources is exact to 3 decimals, keeps role/reservation fields, and assigns ports', () => {
  const p = pickResources(offer, { cpus: 0.3, mem: 100, ports: 3 })!;
  assert.ok(p);
  assert.equal(p.ports, [31000, 31001, 31005]);
  const cpus = p.resources.find((r) => r.name === 'cpus')!;
  assert.is(cpus.scalar!.value, 0.3);
  assert.equal(cpus.allocation_info, { role: 'web' });
  assert.equal(p.resources.find((r) => r.name === 'mem')!.reservations, [{ type: 'STATIC', role: 'web' }]);
  assert.equal(p.resources.find((r) => r.name === 'ports')!.ranges!.range, [{ begin: 31000, end: 31001 }, { begin: 31005, end: 31005 }]);
  assert.is(pickResources(offer, { cpus: 0.301 }), undefined, 'does not fit');
  assert.is(pickResources(offer, { cpus: 0.1, ports: 9 }), undefined, 'not enough ports');
});

helpers('OfferPool places first-fit and tracks what is left (0.1 + 0.2 = 0.3 exactly)', () => {
  const pool = new OfferPool([offer]);
  assert.ok(pool.place(task({ id: 'a', cmd: 'x', cpus: 0.1, mem: 10 })));
  assert.ok(pool.place(task({ id: 'b', cmd: 'x', cpus: 0.2, mem: 10, ports: 2 })));
  assert.is(pool.place(task({ id: 'c', cmd: 'x', cpus: 0.001, mem: 10 })), undefined, 'cpus exhausted exactly');
  assert.is(pool.launches()[0]!.tasks.length, 2);
  assert.equal(pool.unused(), []);
  const left = pool.remaining('o1');
  assert.is(left.find((r) => r.name === 'cpus'), undefined);
  assert.is(left.find((r) => r.name === 'mem')!.scalar!.value, 1004);
  assert.equal(left.find((r) => r.name === 'ports')!.ranges!.range, [{ begin: 31005, end: 31010 }]);
});

helpers('taskInfo builds a TaskInfo without hand-built protobufs; task() rejects bad specs early', () => {
  const t = taskInfo(task({ id: 'web-1', cmd: 'serve', cpus: 0.1, mem: 64, ports: 1, labels: { tier: 'web' }, user: 'nobody', killGracePeriodSeconds: 2 }), offer);
  assert.is(t.task_id.value, 'web-1');
  assert.is(t.agent_id.value, 'a1');
  assert.equal(t.command?.shell, true);
  assert.is(t.command?.user, 'nobody');
  assert.equal(t.labels, { labels: [{ key: 'tier', value: 'web' }] });
  assert.is(t.kill_policy?.grace_period?.nanoseconds, 2e9);
  const argv = taskInfo(task({ argv: ['/bin/echo', 'hi'], cpus: 0.1 }), offer);
  assert.equal(argv.command, { shell: false, value: '/bin/echo', arguments: ['/bin/echo', 'hi'] });
  assert.throws(() => task({ cpus: 1 }), /cmd/);
  assert.throws(() => task({ cmd: 'x', cpus: -1 }), /non-negative/);
  assert.throws(() => taskInfo(task({ cmd: 'x', cpus: 5 }), offer), /does not fit/);
});

helpers.run();

// ------------------------------------------------------------------ early events

const early = suite('SDK events before a listener');

early('offers that arrive with SUBSCRIBED, before any listener, reach the first offers listener', async () => {
  const cl = await startCluster({ agents: 1 });
  const fws: Framework[] = [];
  try {
    for (const master of [`berth://${cl.hostPort}`, cl.url]) {
      const fw = await connect({ master, framework: { name: 'early' } });
      fws.push(fw);
      // The master offers at once; give the offer time to arrive before anyone listens.
      await new Promise((r) => setTimeout(r, 200));
      const offers = await Promise.race([
        new Promise<Offer[]>((r) => fw.on('offers', (o) => { r(o); })),
        new Promise<Offer[]>((_, j) => setTimeout(() => j(new Error(`no offers delivered over ${master}`)), 3000)),
      ]);
      assert.ok(offers.length > 0);
      fw.close();
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    for (const f of fws) f.close();
    await cl.stop();
  }
});

early.run();
