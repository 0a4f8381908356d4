/**
 * Deployments of Berth's Marathon on a real cluster: a rolling upgrade honours
 * upgradeStrategy at every status update, a restart replaces every instance,
 * DELETE /v2/deployments/{id} rolls back, dependencies order the steps, and
 * the framework SIGKILLed and restarted resumes as the same framework with
 * the same instances (none duplicated) and its deployments.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { api, EventStream, startMarathonCluster, until, type MarathonCluster } from './cluster.js';

const t = suite('marathon deployments on a real cluster');
let c: MarathonCluster;
const streams: EventStream[] = [];

t.before(async () => {
  c = await startMarathonCluster({ agents: 3 });
  await c.startMarathon();
});
t.after(async () => {
  for (const s of streams) s.close();
  await c?.stop();
});

const tasksOf = async (id: string): Promise<any[]> => (await api(c.url, 'GET', `/v2/apps${id}/tasks`)).body.tasks as any[];
const deploymentsDone = async (): Promise<boolean> => ((await api(c.url, 'GET', '/v2/deployments')).body as unknown[]).length === 0;

t('a rolling upgrade of 4 instances with minimumHealthCapacity 0.5 never has fewer than 2 running and never exceeds maximumOverCapacity', async () => {
  const ev = new EventStream(c.url, ['status_update_event', 'deployment_success']);
  streams.push(ev);
  await ev.ready;
  const r = await api(c.url, 'POST', '/v2/apps', {
    id: '/rolling', cmd: 'sleep 600', cpus: 0.1, mem: 16, instances: 4, upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0.25 },
  });
  assert.is(r.status, 201);
  await until(() => ev.of('deployment_success').some((d) => d.id === r.body.deployments[0].id), 20_000, 'v1 deployed');
  const v1 = new Set((await tasksOf('/rolling')).map((x) => x.id as string));
  assert.is(v1.size, 4);

  // From here on, at every status update: tasks whose last state is RUNNING (what a user sees
  // as serving), and instances the framework holds that are not terminal (launched, running or
  // being killed) — the capacity maximumOverCapacity bounds.
  const state = new Map<string, string>([...v1].map((id) => [id, 'TASK_RUNNING']));
  const rt = c.marathon!.scheduler.apps.get('/rolling')!;
  let minRunning = Infinity; let maxHeld = 0; let updates = 0;
  ev.on((type, data) => {
    if (type !== 'status_update_event' || data.appId !== '/rolling') return;
    updates++;
    state.set(data.taskId, data.taskStatus);
    minRunning = Math.min(minRunning, [...state.values()].filter((s) => s === 'TASK_RUNNING').length);
    maxHeld = Math.max(maxHeld, [...rt.instances.values()].length);
  });
  const up = await api(c.url, 'PUT', '/v2/apps/rolling', { cmd: 'sleep 601' });
  assert.is(up.status, 200);
  await until(() => ev.of('deployment_success').some((d) => d.id === up.body.deploymentId), 30_000, 'upgrade deployed');
  const after = await tasksOf('/rolling');
  assert.is(after.length, 4);
  assert.ok(after.every((x) => !v1.has(x.id) && x.state === 'TASK_RUNNING'), 'every instance replaced');
  assert.ok(updates > 8, `saw ${updates} updates`);
  assert.ok(minRunning >= 2, `running dropped to ${minRunning}`);
  assert.ok(maxHeld <= 5, `held ${maxHeld} instances (max 4 × 1.25 = 5)`);
  // The upgrade really used its room: it went below 4 running (the floor is 2, not 4).
  assert.ok(minRunning < 4, `minRunning ${minRunning}`);
});

t('restart replaces every instance; DELETE /v2/deployments/{id} rolls a stuck change back', async () => {
  const before = new Set((await tasksOf('/rolling')).map((x) => x.id as string));
  const rs = await api(c.url, 'POST', '/v2/apps/rolling/restart');
  assert.is(rs.status, 200);
  await until(async () => await deploymentsDone(), 30_000, 'restart done');
  const after = await tasksOf('/rolling');
  assert.is(after.filter((x) => x.state === 'TASK_RUNNING').length, 4);
  assert.ok(after.every((x) => !before.has(x.id)));

  // Scale beyond what fits (cpus 1.5 each on 2-cpu agents, 3 agents): stuck, then rolled back.
  const big = await api(c.url, 'POST', '/v2/apps', { id: '/big', cmd: 'sleep 600', cpus: 0.5, mem: 16, instances: 1 });
  await until(async () => await deploymentsDone(), 20_000, 'big deployed');
  const s = await api(c.url, 'PUT', '/v2/apps/big', { instances: 40 });
  const dep = (await api(c.url, 'GET', `/v2/deployments/${s.body.deploymentId}`)).body;
  assert.equal(dep.affectedApps, ['/big']);
  assert.is(dep.steps[0].actions[0].action, 'ScaleApplication');
  await until(async () => ((await api(c.url, 'GET', '/v2/queue')).body.queue as any[]).some((q) => q.app.id === '/big' && q.lastUnusedOffers.length > 0), 20_000, 'big waiting');
  const q = ((await api(c.url, 'GET', '/v2/queue')).body.queue as any[]).find((x) => x.app.id === '/big');
  assert.ok(q.lastUnusedOffers.some((o: any) => o.reason.includes('InsufficientCpus')), JSON.stringify(q.lastUnusedOffers[0]));
  const rb = await api(c.url, 'DELETE', `/v2/deployments/${s.body.deploymentId}`);
  assert.is(rb.status, 200);
  assert.type(rb.body.deploymentId, 'string');
  await until(async () => await deploymentsDone(), 20_000, 'rollback done');
  const { app } = (await api(c.url, 'GET', '/v2/apps/big')).body;
  assert.is(app.instances, 1);
  assert.is((app.tasks as any[]).filter((x) => x.state === 'TASK_RUNNING').length, 1);
  assert.is((await api(c.url, 'DELETE', '/v2/apps/big')).status, 200);
  assert.ok(big.status === 201);
});

t('apps deployed together start in dependency order', async () => {
  const ev = new EventStream(c.url, ['deployment_info', 'deployment_step_success']);
  streams.push(ev);
  await ev.ready;
  const r = await api(c.url, 'PUT', '/v2/apps', [
    { id: '/stack/web', cmd: 'sleep 600', cpus: 0.05, mem: 8, dependencies: ['/stack/db'] },
    { id: '/stack/db', cmd: 'sleep 600', cpus: 0.05, mem: 8 },
  ]);
  assert.is(r.status, 200);
  const d = (await api(c.url, 'GET', `/v2/deployments/${r.body.deploymentId}`)).body;
  const order = d.steps.map((s: any) => s.actions.map((a: any) => `${a.action} ${a.app}`).join(','));
  assert.equal(order, ['StartApplication /stack/db', 'ScaleApplication /stack/db', 'StartApplication /stack/web', 'ScaleApplication /stack/web']);
  await until(async () => await deploymentsDone(), 20_000, 'stack deployed');
  // web was launched only after db's scale step succeeded.
  const dbRunning = Date.parse((await tasksOf('/stack/db'))[0].startedAt);
  const webStaged = Date.parse((await tasksOf('/stack/web'))[0].stagedAt);
  assert.ok(webStaged >= dbRunning, `web staged ${webStaged} before db ran ${dbRunning}`);
  assert.ok(ev.of('deployment_step_success').length >= 4);
});

t('framework SIGKILLed and restarted: same framework id, same instances and no duplicates, deployments intact', async () => {
  await c.marathon!.stop();
  c.marathon = undefined;
  const first = await c.spawnMarathon();
  const info1 = (await api(first.url, 'GET', '/v2/info')).body;
  // The in-process run used the same work dir: the child resumed it.
  const before = (await api(first.url, 'GET', '/v2/apps/rolling/tasks')).body.tasks.map((x: any) => x.id).sort();
  assert.is(before.length, 4);
  const crash = await api(first.url, 'POST', '/v2/apps', { id: '/crash', cmd: 'sleep 600', cpus: 0.05, mem: 8, instances: 3, constraints: [['hostname', 'UNIQUE']] });
  assert.is(crash.status, 201);
  await until(async () => ((await api(first.url, 'GET', '/v2/apps/crash/tasks')).body.tasks as any[]).filter((x) => x.state === 'TASK_RUNNING').length === 3, 20_000, 'crash running');
  const crashTasks = ((await api(first.url, 'GET', '/v2/apps/crash/tasks')).body.tasks as any[]).map((x) => x.id).sort();
  // A deployment that cannot finish (a 4th UNIQUE instance on 3 agents) must survive the crash.
  const stuck = await api(first.url, 'PUT', '/v2/apps/crash', { instances: 4 });
  assert.is(stuck.status, 200);
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));

  const second = await c.spawnMarathon();
  const info2 = (await api(second.url, 'GET', '/v2/info')).body;
  assert.is(info2.frameworkId, info1.frameworkId);
  const deps = (await api(second.url, 'GET', '/v2/deployments')).body as any[];
  assert.equal(deps.map((d) => d.id), [stuck.body.deploymentId]);
  await until(async () => ((await api(second.url, 'GET', '/v2/apps/crash/tasks')).body.tasks as any[]).filter((x) => x.state === 'TASK_RUNNING').length === 3, 20_000, 'crash reconciled');
  assert.equal(((await api(second.url, 'GET', '/v2/apps/crash/tasks')).body.tasks as any[]).map((x) => x.id).sort(), crashTasks);
  assert.equal((await api(second.url, 'GET', '/v2/apps/rolling/tasks')).body.tasks.map((x: any) => x.id).sort(), before);
  // The master agrees: exactly the framework's known tasks run, nothing launched twice.
  await until(async () => ((await api(second.url, 'GET', '/v2/queue')).body.queue as any[]).some((q) => q.app.id === '/crash' && q.lastUnusedOffers.length > 0), 20_000, 'crash queue after restart');
  const state = (await api(c.master.url, 'GET', '/state')).body;
  const fw = (state.frameworks as any[]).find((f) => f.id === info1.frameworkId);
  const live = (fw.tasks as any[]).filter((x) => !['TASK_KILLED', 'TASK_FINISHED', 'TASK_FAILED'].includes(x.state)).map((x) => x.id).sort();
  const known = ((await api(second.url, 'GET', '/v2/tasks')).body.tasks as any[]).map((x) => x.id).sort();
  assert.equal(live, known);
  second.child.kill('SIGTERM');
  await new Promise((r) => second.child.once('exit', r));
});

t.run();
