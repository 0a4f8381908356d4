/**
 * Operator endpoints in Mesos's shapes, read after a framework (raw HTTP) has
 * run one task to completion and holds one running: /state, /master/state,
 * /tasks, /frameworks, /slaves, /metrics/snapshot (Mesos names) and the
 * Prometheus text at /metrics.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Event, Offer, Resource } from '../../../proto/types.js';
import { holdScript, startCluster, type TestCluster } from '../../helpers/cluster.js';
import { openStream, request, type RawStream } from './raw-client.js';

const s = suite('operator endpoints');
let c: TestCluster;
let stream: RawStream;
let fid = '';

const getJson = async (p: string): Promise<Record<string, unknown>> => {
  const r = await request(c.url + p, { method: 'GET' });
  assert.is(r.status, 200, `${p}: ${r.status}`);
  assert.match(String(r.headers['content-type']), /application\/json/);
  return JSON.parse(r.body.toString()) as Record<string, unknown>;
};

const carve = (offer: Offer): Resource[] => (offer.resources ?? []).filter((r) => r.name === 'cpus' || r.name === 'mem')
  .map((r) => ({ ...r, scalar: { value: r.name === 'cpus' ? 1 : 128 } }));

s.before(async () => {
  c = await startCluster({ agents: 2, script: (t) => (t.name === 'long' ? holdScript() : [{ state: 'TASK_RUNNING', afterMs: 0 }, { state: 'TASK_FINISHED', afterMs: 0 }]) });
  stream = await openStream(c.url, JSON.stringify({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'ops', name: 'ops-fw' } } }), { 'content-type': 'application/json' });
  fid = (await stream.waitFor((e) => e.type === 'SUBSCRIBED')).subscribed!.framework_id.value;
  const offers = (await stream.waitFor((e) => e.type === 'OFFERS' && (e.offers?.offers?.length ?? 0) >= 1)).offers!.offers!;
  const offer = offers[0]!;
  const tasks = [
    { name: 'long', task_id: { value: 'long-1' }, agent_id: offer.agent_id, resources: carve(offer), command: { value: 'sleep 1000' } },
    { name: 'short', task_id: { value: 'short-1' }, agent_id: offer.agent_id, resources: carve(offer), command: { value: 'true' } },
  ];
  const r = await request(`${c.url}/api/v1/scheduler`, {
    headers: { 'content-type': 'application/json', 'mesos-stream-id': stream.streamId },
    body: JSON.stringify({ type: 'ACCEPT', framework_id: { value: fid }, accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: tasks } }] } }),
  });
  assert.is(r.status, 202);
  const isUpd = (id: string, st: string) => (e: Event): boolean => e.type === 'UPDATE' && e.update?.status.task_id.value === id && e.update.status.state === st;
  await stream.waitFor(isUpd('long-1', 'TASK_RUNNING'));
  await stream.waitFor(isUpd('short-1', 'TASK_FINISHED'));
});
s.after(async () => { stream?.close(); await c?.stop(); });

s('/state and /master/state: frameworks, slaves and tasks with state names', async () => {
  for (const p of ['/state', '/master/state', '/state.json']) {
    const st = await getJson(p);
    const fws = st.frameworks as { id: string; name: string; tasks: { id: string; state: string }[]; completed_tasks: { id: string; state: string }[]; active: boolean }[];
    const fw = fws.find((f) => f.id === fid)!;
    assert.ok(fw, `${p} lists the framework`);
    assert.is(fw.name, 'ops-fw');
    assert.ok(fw.active);
    assert.equal(fw.tasks.map((t) => [t.id, t.state]), [['long-1', 'TASK_RUNNING']]);
    assert.ok(fw.completed_tasks.some((t) => t.id === 'short-1' && t.state === 'TASK_FINISHED'));
    assert.is((st.slaves as unknown[]).length, 2);
    assert.is(st.activated_slaves, 2);
    assert.ok(st.leader_info && st.flags && Array.isArray(st.unregistered_frameworks));
  }
});

s('/tasks, /frameworks, /slaves', async () => {
  const tasks = (await getJson('/tasks')).tasks as { id: string; state: string; framework_id: string; slave_id: string }[];
  assert.equal(tasks.map((t) => t.id).sort(), ['long-1', 'short-1']);
  assert.ok(tasks.every((t) => t.framework_id === fid && t.slave_id));
  const one = (await getJson('/tasks?task_id=long-1')).tasks as { id: string }[];
  assert.equal(one.map((t) => t.id), ['long-1']);
  assert.is(((await getJson('/tasks?limit=1')).tasks as unknown[]).length, 1);
  const fws = await getJson('/frameworks');
  assert.ok((fws.frameworks as { id: string }[]).some((f) => f.id === fid));
  assert.ok(Array.isArray(fws.completed_frameworks));
  const slaves = await getJson('/slaves');
  const list = slaves.slaves as { id: string; hostname: string; resources: { cpus: number }; used_resources: { cpus: number } }[];
  assert.is(list.length, 2);
  assert.equal(list.map((a) => a.hostname).sort(), ['agent-0', 'agent-1']);
  assert.is(list.reduce((n, a) => n + a.used_resources.cpus, 0), 1);
});

s('/metrics/snapshot uses Mesos names; /metrics is Prometheus text of the same numbers', async () => {
  const m = (await getJson('/metrics/snapshot')) as Record<string, number>;
  assert.is(m['master/tasks_running'], 1);
  assert.is(m['master/tasks_finished'], 1);
  assert.is(m['master/frameworks_active'], 1);
  assert.is(m['master/slaves_active'], 2);
  assert.type(m['master/outstanding_offers'], 'number');
  assert.ok(m['allocator/mesos/allocation_runs']! >= 1);
  assert.type(m['allocator/mesos/allocation_run_ms'], 'number');
  assert.ok(m['master/messages_status_update']! >= 3);
  assert.is(m['master/cpus_total'], 8);
  const r = await request(`${c.url}/metrics`, { method: 'GET' });
  assert.is(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const text = r.body.toString();
  assert.match(text, /# TYPE mesos_master_tasks_running gauge\nmesos_master_tasks_running 1\n/);
  assert.match(text, /# TYPE mesos_master_tasks_finished counter\nmesos_master_tasks_finished 1\n/);
  for (const line of text.trim().split('\n')) assert.match(line, /^(# TYPE [a-zA-Z_][a-zA-Z0-9_]* (gauge|counter)|[a-zA-Z_][a-zA-Z0-9_]* -?[0-9.e+-]+)$/);
});

s('operator endpoints answer 405 to anything but GET', async () => {
  for (const p of ['/state', '/tasks', '/metrics/snapshot']) {
    const r = await request(c.url + p, { method: 'POST', body: '{}' });
    assert.is(r.status, 405, p);
  }
});

s.run();
