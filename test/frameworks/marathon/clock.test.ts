/**
 * Time-driven behaviour of Berth's Marathon on a real cluster, with the
 * framework's clock injected (a ManualClock): launch backoff after failures,
 * no backoff after a kill we asked for, and automatic rollback of a deployment
 * that outlives its deploymentTimeoutSeconds.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../../proto/clock.js';
import { api, EventStream, startMarathonCluster, until, type MarathonCluster } from './cluster.js';

const t = suite('marathon on an injected clock');
let c: MarathonCluster;
let clock: ManualClock;
const streams: EventStream[] = [];

t.before(async () => {
  c = await startMarathonCluster({ agents: 2 });
  clock = new ManualClock(Date.now());
  await c.startMarathon({ clock });
});
t.after(async () => {
  for (const s of streams) s.close();
  await c?.stop();
});

const queueItem = async (id: string): Promise<any> => ((await api(c.url, 'GET', '/v2/queue')).body.queue as any[]).find((x) => x.app.id === id);

t('an app whose command exits 1 is relaunched after delays growing by backoffFactor, and only once the delay has passed', async () => {
  const ev = new EventStream(c.url, ['status_update_event']);
  streams.push(ev);
  await ev.ready;
  const failed = (): any[] => ev.of('status_update_event').filter((e) => e.appId === '/crashy' && e.taskStatus === 'TASK_FAILED');
  const r = await api(c.url, 'POST', '/v2/apps', { id: '/crashy', cmd: 'exit 1', cpus: 0.1, mem: 16, backoffSeconds: 1, backoffFactor: 1.5, maxLaunchDelaySeconds: 3 });
  assert.is(r.status, 201);
  const delays: number[] = [];
  for (let n = 1; n <= 4; n++) {
    await until(() => failed().length >= n, 20_000, `failure ${n}`);
    await until(async () => (await queueItem('/crashy'))?.delay.timeLeftSeconds > 0, 5_000, 'delay set');
    const item = await queueItem('/crashy');
    delays.push(item.delay.timeLeftSeconds);
    assert.is(item.delay.overdue, false);
    assert.is(item.count, 1);
    // The next launch waits for the clock: just short of the delay, nothing is launched.
    clock.advance(item.delay.timeLeftSeconds * 1000 - 1);
    assert.is((await queueItem('/crashy')).delay.timeLeftSeconds, 0.001);
    assert.is(failed().length, n, 'no relaunch before the delay passed');
    clock.advance(1);
  }
  // 1 → 1.5 → 2.25 → capped at maxLaunchDelaySeconds 3.
  assert.equal(delays, [1, 1.5, 2.25, 3]);
  const { app } = (await api(c.url, 'GET', '/v2/apps/crashy')).body;
  assert.is(app.lastTaskFailure.state, 'TASK_FAILED');
  // DELETE /v2/queue/{id}/delay clears it; removing the app stops the loop.
  await until(() => failed().length >= 5, 20_000, 'failure 5');
  assert.is((await api(c.url, 'DELETE', '/v2/queue/crashy/delay')).status, 204);
  assert.is((await queueItem('/crashy'))?.delay.timeLeftSeconds ?? 0, 0);
  assert.is((await api(c.url, 'DELETE', '/v2/apps/crashy?force=true')).status, 200);
  await until(async () => (await api(c.url, 'GET', '/v2/apps/crashy')).status === 404, 10_000, 'crashy removed');
});

t('a kill we asked for is replaced at once, without backoff', async () => {
  const r = await api(c.url, 'POST', '/v2/apps', { id: '/steady', cmd: 'sleep 600', cpus: 0.1, mem: 16, instances: 1 });
  assert.is(r.status, 201);
  const runningIds = async (): Promise<string[]> => ((await api(c.url, 'GET', '/v2/apps/steady/tasks')).body.tasks as any[]).filter((x) => x.state === 'TASK_RUNNING').map((x) => x.id);
  await until(async () => (await runningIds()).length === 1, 20_000, 'steady running');
  const [first] = await runningIds();
  assert.is((await api(c.url, 'DELETE', `/v2/apps/steady/tasks/${first}`)).status, 200);
  // The clock does not move: a replacement must still come.
  await until(async () => { const ids = await runningIds(); return ids.length === 1 && ids[0] !== first; }, 20_000, 'replacement without clock');
  assert.is((await queueItem('/steady'))?.delay.timeLeftSeconds ?? 0, 0);
});

t('a deployment that cannot finish is rolled back after deploymentTimeoutSeconds', async () => {
  const ev = new EventStream(c.url, ['deployment_failed', 'deployment_success']);
  streams.push(ev);
  await ev.ready;
  const v1 = await api(c.url, 'POST', '/v2/apps', { id: '/stuck', cmd: 'sleep 600', cpus: 0.1, mem: 16, instances: 2, deploymentTimeoutSeconds: 30 });
  assert.is(v1.status, 201);
  await until(() => ev.of('deployment_success').some((d) => d.id === v1.body.deployments[0].id), 20_000, 'v1 deployed');
  const tasksV1 = ((await api(c.url, 'GET', '/v2/apps/stuck/tasks')).body.tasks as any[]).map((x) => x.id).sort();
  // v2 can never be placed: no agent is called 'nowhere'.
  const v2 = await api(c.url, 'PUT', '/v2/apps/stuck', { cmd: 'sleep 601', constraints: [['hostname', 'IS', 'nowhere']] });
  assert.is(v2.status, 200);
  await until(async () => (await queueItem('/stuck'))?.lastUnusedOffers.length > 0, 20_000, 'v2 waiting for offers');
  assert.is(ev.of('deployment_failed').length, 0);
  clock.advance(29_000);
  assert.is(ev.of('deployment_failed').length, 0, 'not before the timeout');
  clock.advance(1_000);
  await until(() => ev.of('deployment_failed').some((d) => d.id === v2.body.deploymentId), 5_000, 'deployment_failed');
  // The rollback deployment restores v1 and finishes with the v1 instances untouched.
  await until(async () => ((await api(c.url, 'GET', '/v2/deployments')).body as unknown[]).length === 0, 20_000, 'rollback finished');
  const { app } = (await api(c.url, 'GET', '/v2/apps/stuck')).body;
  assert.is(app.cmd, 'sleep 600');
  assert.equal(app.constraints, []);
  assert.equal((app.tasks as any[]).map((x) => x.id).sort(), tasksV1);
  assert.ok(ev.of('deployment_success').some((d) => d.plan.target.apps[0]?.cmd === 'sleep 600' && d.id !== v1.body.deployments[0].id), 'rollback deployment succeeded');
});

t.run();
