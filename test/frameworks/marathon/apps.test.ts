/**
 * Berth's Marathon on a real cluster (master, 3 real agents with hostnames
 * agent-0..2, real processes): placement with constraints and the queue's
 * reasons, replacement of killed instances, the SSE event stream with its
 * event_type filter, and Marathon's shapes and status codes.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { api, EventStream, startMarathonCluster, until, type MarathonCluster } from './cluster.js';

const t = suite('marathon apps on a real cluster');
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

const running = async (id: string): Promise<any[]> => ((await api(c.url, 'GET', `/v2/apps${id}/tasks`)).body.tasks as any[]).filter((x) => x.state === 'TASK_RUNNING');
const noDeployments = async (): Promise<boolean> => ((await api(c.url, 'GET', '/v2/deployments')).body as unknown[]).length === 0;

t('3 instances with hostname:UNIQUE on 3 agents run on 3 distinct agents; scaled to 5, 3 run and /v2/queue names the unmet constraint', async () => {
  const r = await api(c.url, 'POST', '/v2/apps', { id: '/spread', cmd: 'sleep 600', cpus: 0.1, mem: 16, instances: 3, constraints: [['hostname', 'UNIQUE']] });
  assert.is(r.status, 201);
  assert.is(r.headers.get('location'), '/v2/apps/spread');
  assert.is(r.body.id, '/spread');
  assert.is(r.body.deployments.length, 1);
  await until(async () => (await running('/spread')).length === 3 && await noDeployments(), 20_000, '3 running');
  const hosts = new Set((await running('/spread')).map((x) => x.host));
  assert.equal([...hosts].sort(), ['agent-0', 'agent-1', 'agent-2']);

  const s = await api(c.url, 'PUT', '/v2/apps/spread', { instances: 5 });
  assert.is(s.status, 200);
  assert.type(s.body.deploymentId, 'string');
  let item: any;
  await until(async () => {
    const q = (await api(c.url, 'GET', '/v2/queue')).body.queue as any[];
    item = q.find((x) => x.app.id === '/spread');
    return !!item && item.processedOffersSummary.unusedOffersCount > 0 && item.lastUnusedOffers.length > 0;
  }, 20_000, 'queue with unused offers');
  assert.is(item.count, 2);
  assert.is((await running('/spread')).length, 3);
  const row = item.processedOffersSummary.rejectSummaryLastOffers.find((x: any) => x.reason === 'UnfulfilledConstraint');
  assert.ok(row.declined > 0, JSON.stringify(item.processedOffersSummary));
  assert.ok(item.lastUnusedOffers[0].reason.includes('constraint hostname:UNIQUE'), JSON.stringify(item.lastUnusedOffers[0]));
  // The deployment is stuck, so the app is locked: 409 names it; force overrides.
  const locked = await api(c.url, 'PUT', '/v2/apps/spread', { instances: 3 });
  assert.is(locked.status, 409);
  assert.is(locked.body.deployments[0].id, s.body.deploymentId);
  const forced = await api(c.url, 'DELETE', '/v2/apps/spread?force=true');
  assert.is(forced.status, 200);
  await until(async () => (await api(c.url, 'GET', '/v2/apps/spread')).status === 404 && await noDeployments(), 20_000, 'app removed');
});

t('a killed instance is replaced, and the stream delivers status_update_event and deployment_success filtered by event_type', async () => {
  const ev = new EventStream(c.url, ['status_update_event', 'deployment_success']);
  streams.push(ev);
  await ev.ready;
  const r = await api(c.url, 'POST', '/v2/apps', { id: '/prod/web', cmd: 'sleep 600', cpus: 0.1, mem: 16, instances: 2 });
  assert.is(r.status, 201);
  await until(() => ev.of('deployment_success').some((d) => d.id === r.body.deployments[0].id), 20_000, 'deployment_success');
  const before = await running('/prod/web');
  assert.is(before.length, 2);
  const victim = before[0].id as string;
  const k = await api(c.url, 'DELETE', `/v2/apps/prod/web/tasks/${victim}`);
  assert.is(k.status, 200);
  assert.is(k.body.task.id, victim);
  await until(async () => {
    const now = await running('/prod/web');
    return now.length === 2 && !now.some((x) => x.id === victim);
  }, 20_000, 'replacement running');
  await until(() => ev.of('status_update_event').some((e) => e.taskId === victim && e.taskStatus === 'TASK_KILLED'), 10_000, 'KILLED event');
  const types = new Set(ev.events.map((e) => e.type));
  assert.equal([...types].sort(), ['deployment_success', 'status_update_event'], 'only the asked-for event types');
  const up = ev.of('status_update_event').find((e) => e.taskStatus === 'TASK_RUNNING')!;
  assert.is(up.appId, '/prod/web');
  assert.match(up.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // The group tree shows the nested app.
  const g = await api(c.url, 'GET', '/v2/groups');
  assert.is(g.body.groups[0].id, '/prod');
  assert.is(g.body.groups[0].apps[0].id, '/prod/web');
});

t('bad input: invalid JSON is 400; an invalid app is 422 naming the field; nothing is applied', async () => {
  const bad = await api(c.url, 'POST', '/v2/apps', '{"id": "x", ');
  assert.is(bad.status, 400);
  const cases: [unknown, string][] = [
    [{ id: '/neg', cmd: 'true', cpus: -1 }, '/cpus'],
    [{ id: '/Bad_Id', cmd: 'true' }, '/id'],
    [{ id: '/op', cmd: 'true', constraints: [['hostname', 'SOMETIMES']] }, '/constraints(0)'],
    [{ id: '/inst', cmd: 'true', instances: -1 }, '/instances'],
    [{ id: '/docker', container: { type: 'DOCKER', docker: { image: 'nginx' } } }, '/container/docker'],
  ];
  for (const [body, field] of cases) {
    const r = await api(c.url, 'POST', '/v2/apps', body);
    assert.is(r.status, 422, JSON.stringify(body));
    assert.is(r.body.message, 'Object is not valid');
    assert.ok(r.body.details.some((d: any) => d.path === field && d.errors.length > 0), `${field} in ${JSON.stringify(r.body.details)}`);
  }
  // Two apps in one PUT, one of them invalid: neither is created.
  const both = await api(c.url, 'PUT', '/v2/apps', [{ id: '/fine', cmd: 'sleep 1' }, { id: '/broken', cmd: 'sleep 1', mem: -5 }]);
  assert.is(both.status, 422);
  assert.ok(both.body.details.some((d: any) => d.path === '(1)/mem'));
  assert.is((await api(c.url, 'GET', '/v2/apps/fine')).status, 404);
  assert.is((await api(c.url, 'GET', '/v2/apps/nope')).status, 404);
  assert.is((await api(c.url, 'GET', '/v2/deployments/nope')).status, 404);
  const dup = await api(c.url, 'POST', '/v2/apps', { id: '/prod/web', cmd: 'true' });
  assert.is(dup.status, 409);
});

t('Marathon defaults and info endpoints', async () => {
  const r = await api(c.url, 'PUT', '/v2/apps/defaults', { cmd: 'sleep 600', instances: 0 });
  assert.is(r.status, 201);
  const { app } = (await api(c.url, 'GET', '/v2/apps/defaults')).body;
  assert.is(app.cpus, 1); assert.is(app.mem, 128); assert.is(app.backoffSeconds, 1); assert.is(app.backoffFactor, 1.15);
  assert.is(app.maxLaunchDelaySeconds, 300);
  assert.equal(app.upgradeStrategy, { minimumHealthCapacity: 1, maximumOverCapacity: 1 });
  assert.is(app.killSelection, 'YOUNGEST_FIRST');
  assert.is((await api(c.url, 'GET', '/ping')).status, 200);
  const info = (await api(c.url, 'GET', '/v2/info')).body;
  assert.is(info.name, 'marathon');
  assert.is(info.frameworkId, c.marathon!.frameworkId);
  assert.type((await api(c.url, 'GET', '/v2/leader')).body.leader, 'string');
  assert.type((await api(c.url, 'GET', '/metrics')).body.gauges, 'object');
});

t.run();
