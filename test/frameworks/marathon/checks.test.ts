/**
 * Health checks, readiness checks and fetching of Berth's Marathon apps on a
 * real cluster. The checks and the fetcher run on the agent (Mesos-native
 * `health_check`, `check`, `command.uris`); Marathon translates the app's
 * healthChecks / readinessChecks / fetch into them and acts on the results.
 * Each test is SKIPPED, with its reason, while the agent side is missing.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, EventStream, startMarathonCluster, until, type MarathonCluster } from './cluster.js';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const present = (m: string): boolean => existsSync(path.join(dist, m)) || existsSync(path.join(dist, `${m}.js`));
const CHECKS_SKIP = present('agent/checks') ? undefined : 'agent health checks not merged yet';
const FETCH_SKIP = present('agent/fetcher') ? undefined : 'agent fetcher not merged yet';
if (CHECKS_SKIP) console.log(`\n[marathon checks.test] SKIPPING health and readiness tests: ${CHECKS_SKIP}`);
if (FETCH_SKIP) console.log(`\n[marathon checks.test] SKIPPING fetch tests: ${FETCH_SKIP}`);

const t = suite('marathon health checks, readiness and fetch');
let c: MarathonCluster | undefined;
let shared = '';
let files: http.Server | undefined;
let filesUrl = '';
const streams: EventStream[] = [];

t.before(async () => {
  if (CHECKS_SKIP && FETCH_SKIP) return;
  shared = mkdtempSync(path.join(tmpdir(), 'berth-marathon-www-'));
  // A loopback file server for the fetch tests (archives and a 404).
  files = http.createServer((req, res) => {
    const f = path.join(shared, path.basename(req.url ?? '/'));
    if (!existsSync(f)) { res.writeHead(404); res.end('not found'); return; }
    res.writeHead(200); res.end(readFileSync(f));
  });
  await new Promise<void>((r) => files!.listen(0, '127.0.0.1', () => r()));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  c = await startMarathonCluster({ agents: 2 });
  await c.startMarathon();
});
t.after(async () => {
  for (const s of streams) s.close();
  await c?.stop();
  files?.closeAllConnections();
  await new Promise<void>((r) => (files ? files.close(() => r()) : r()));
  if (shared) rmSync(shared, { recursive: true, force: true });
});

const tasksOf = async (id: string): Promise<any[]> => (await api(c!.url, 'GET', `/v2/apps${id}/tasks`)).body.tasks as any[];
/** Serves `dir` on $PORT0 (python3's http.server): a path exists iff the test created the file. */
const serve = (dir: string): string => `cd ${dir} && exec python3 -m http.server $PORT0 --bind 127.0.0.1`;
const fast = { gracePeriodSeconds: 2, intervalSeconds: 0.5, timeoutSeconds: 1, maxConsecutiveFailures: 2, delaySeconds: 0 };

const maybe = (skip: string | undefined, name: string, fn: () => Promise<void>): void => {
  if (skip) t.skip(`${name} (SKIPPED: ${skip})`, () => undefined);
  else t(name, fn);
};

maybe(CHECKS_SKIP, 'an HTTP health check that starts failing gets the instance killed and replaced', async () => {
  const dir = path.join(shared, 'http'); mkdirSync(dir);
  writeFileSync(path.join(dir, 'health'), 'ok');
  const ev = new EventStream(c!.url, ['health_status_changed_event', 'status_update_event']);
  streams.push(ev);
  await ev.ready;
  const r = await api(c!.url, 'POST', '/v2/apps', { id: '/hc-http', cmd: serve(dir), cpus: 0.1, mem: 32, healthChecks: [{ protocol: 'MESOS_HTTP', path: '/health', ...fast }] });
  assert.is(r.status, 201);
  await until(() => ev.of('health_status_changed_event').some((e) => e.appId === '/hc-http' && e.alive === true), 30_000, 'healthy');
  const [first] = (await tasksOf('/hc-http')).map((x) => x.id);
  assert.is((await api(c!.url, 'GET', '/v2/apps/hc-http')).body.app.tasksHealthy, 1);
  unlinkSync(path.join(dir, 'health'));
  await until(() => ev.of('health_status_changed_event').some((e) => e.taskId === first && e.alive === false), 30_000, 'unhealthy');
  writeFileSync(path.join(dir, 'health'), 'ok');
  await until(() => ev.of('status_update_event').some((e) => e.taskId === first && e.taskStatus === 'TASK_KILLED'), 30_000, 'killed');
  await until(async () => (await tasksOf('/hc-http')).some((x) => x.id !== first && x.healthCheckResults[0]?.alive === true), 30_000, 'replacement healthy');
});

maybe(CHECKS_SKIP, 'TCP and COMMAND health checks report instances healthy', async () => {
  const dir = path.join(shared, 'tcp'); mkdirSync(dir);
  const r1 = await api(c!.url, 'POST', '/v2/apps', { id: '/hc-tcp', cmd: serve(dir), cpus: 0.1, mem: 32, healthChecks: [{ protocol: 'MESOS_TCP', ...fast }] });
  const r2 = await api(c!.url, 'POST', '/v2/apps', { id: '/hc-cmd', cmd: 'sleep 600', cpus: 0.1, mem: 16, healthChecks: [{ protocol: 'COMMAND', command: { value: 'true' }, ...fast }] });
  assert.is(r1.status, 201); assert.is(r2.status, 201);
  await until(async () => (await api(c!.url, 'GET', '/v2/apps/hc-tcp')).body.app.tasksHealthy === 1, 30_000, 'tcp healthy');
  await until(async () => (await api(c!.url, 'GET', '/v2/apps/hc-cmd')).body.app.tasksHealthy === 1, 30_000, 'command healthy');
});

maybe(CHECKS_SKIP, 'a readiness check holds the deployment until the instance is ready', async () => {
  const dir = path.join(shared, 'ready'); mkdirSync(dir);
  const ev = new EventStream(c!.url, ['deployment_success', 'status_update_event']);
  streams.push(ev);
  await ev.ready;
  const r = await api(c!.url, 'POST', '/v2/apps', {
    id: '/ready', cmd: serve(dir), cpus: 0.1, mem: 32, portDefinitions: [{ port: 0, name: 'http' }],
    readinessChecks: [{ name: 'r', protocol: 'HTTP', path: '/ready', portName: 'http', intervalSeconds: 0.5, timeoutSeconds: 1 }],
  });
  assert.is(r.status, 201);
  await until(() => ev.of('status_update_event').some((e) => e.appId === '/ready' && e.taskStatus === 'TASK_RUNNING'), 30_000, 'running');
  // Running but not ready: the deployment stays, through several readiness intervals.
  const probe = c!.marathon!.scheduler.apps.get('/ready')!;
  await until(() => [...probe.instances.values()].some((i) => i.ready === false), 30_000, 'a not-ready result');
  assert.is(ev.of('deployment_success').filter((d) => d.id === r.body.deployments[0].id).length, 0);
  writeFileSync(path.join(dir, 'ready'), 'yes');
  await until(() => ev.of('deployment_success').some((d) => d.id === r.body.deployments[0].id), 30_000, 'deployment_success after ready');
});

maybe(FETCH_SKIP, 'fetch: an archive served on loopback is extracted in the sandbox before the command runs; a 404 fails the task naming the fetcher', async () => {
  const src = path.join(shared, 'pkg'); mkdirSync(src);
  writeFileSync(path.join(src, 'hello.txt'), 'hello');
  execFileSync('tar', ['czf', path.join(shared, 'pkg.tar.gz'), '-C', src, 'hello.txt']);
  const ok = await api(c!.url, 'POST', '/v2/apps', { id: '/fetched', cmd: 'test -f hello.txt && exec sleep 600', cpus: 0.1, mem: 16, fetch: [{ uri: `${filesUrl}/pkg.tar.gz`, extract: true }] });
  assert.is(ok.status, 201);
  await until(async () => (await tasksOf('/fetched')).some((x) => x.state === 'TASK_RUNNING'), 30_000, 'fetched app running');
  const bad = await api(c!.url, 'POST', '/v2/apps', { id: '/fetch404', cmd: 'sleep 600', cpus: 0.1, mem: 16, fetch: [{ uri: `${filesUrl}/missing.tar.gz` }] });
  assert.is(bad.status, 201);
  await until(async () => !!(await api(c!.url, 'GET', '/v2/apps/fetch404')).body.app.lastTaskFailure, 30_000, 'fetch failure');
  const f = (await api(c!.url, 'GET', '/v2/apps/fetch404')).body.app.lastTaskFailure;
  assert.is(f.state, 'TASK_FAILED');
  assert.match(f.message, /fetch|404/i);
});

t.run();
