/**
 * Health checks and checks end to end: a framework (SDK, Mesos HTTP API) sets
 * `health_check` / `check` on tasks; a real master carries them to a real
 * agent process that runs them and reports through status updates, as Mesos.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TaskStatus } from '../../../frameworks/sdk/index.js';
import { httpServerCmd, startCluster, type Cluster } from './cluster.js';

type Checked = TaskStatus & { check_status?: { type?: string; command?: { exit_code?: number }; http?: { status_code?: number }; tcp?: { succeeded?: boolean } } };

let c: Cluster;
test.before(async () => { c = await startCluster('checks-e2e'); });
test.after(async () => { await c?.cleanup(); });

test('an HTTP health check that starts failing: healthy, then unhealthy, then the agent kills the task and its last update says healthy=false', async () => {
  const t = await c.launch({ name: 'web', cmd: httpServerCmd(3), cpus: 0.1, mem: 128, ports: 1 }, (_, ports) => ({
    health_check: { type: 'HTTP', http: { port: ports[0]!, path: '/health' }, delay_seconds: 0, interval_seconds: 0.2, timeout_seconds: 2, grace_period_seconds: 5, consecutive_failures: 2 },
  }));
  const id = t.task_id.value;
  const healthy = await c.waitFor(id, (s) => s.healthy === true, 'a healthy update');
  assert.is(healthy.state, 'TASK_RUNNING');
  assert.is(healthy.reason, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED');
  const end = await c.waitFor(id, (s) => s.state === 'TASK_KILLED', 'the kill');
  assert.is(end.healthy, false);
  assert.match(end.message ?? '', /failing its health check 2 times in a row: HTTP 503/);
  const unhealthy = c.of(id).filter((s) => s.state === 'TASK_RUNNING' && s.healthy === false);
  assert.is(unhealthy.length, 2, 'one unhealthy update per counted failure');
  assert.ok(unhealthy.every((s) => s.reason === 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED'));
});

test('a TCP health check reports healthy, and an HTTP check reports the status code in check_status', async () => {
  const t = await c.launch({ name: 'tcp', cmd: httpServerCmd(), cpus: 0.1, mem: 128, ports: 1 }, (_, ports) => ({
    health_check: { type: 'TCP', tcp: { port: ports[0]! }, delay_seconds: 0, interval_seconds: 0.2, grace_period_seconds: 5 },
    check: { type: 'HTTP', http: { port: ports[0]!, path: '/health' }, delay_seconds: 0, interval_seconds: 0.2 },
  } as never));
  const id = t.task_id.value;
  await c.waitFor(id, (s) => s.healthy === true, 'a healthy update');
  const checked = (await c.waitFor(id, (s) => (s as Checked).check_status?.http?.status_code !== undefined, 'a check result')) as Checked;
  assert.is(checked.reason, 'REASON_TASK_CHECK_STATUS_UPDATED');
  assert.equal(checked.check_status, { type: 'HTTP', http: { status_code: 200 } });
  await c.fw.kill(id);
  await c.waitFor(id, (s) => s.state === 'TASK_KILLED', 'the kill');
});

test('a COMMAND health check and a COMMAND check run with the task\'s environment in its sandbox', async () => {
  const t = await c.launch({ name: 'cmd', cmd: 'echo started > marker; exec sleep 60', cpus: 0.1, mem: 32 }, (info) => ({
    health_check: { type: 'COMMAND', command: { value: `test "$MESOS_TASK_ID" = ${info.task_id.value} && test -f marker` }, delay_seconds: 0, interval_seconds: 0.2, grace_period_seconds: 10 },
    check: { type: 'COMMAND', command: { command: { value: 'exit 3' } }, delay_seconds: 0, interval_seconds: 0.2 },
  } as never));
  const id = t.task_id.value;
  await c.waitFor(id, (s) => s.healthy === true, 'a healthy update');
  const checked = (await c.waitFor(id, (s) => (s as Checked).check_status?.command?.exit_code !== undefined, 'a check result')) as Checked;
  assert.equal(checked.check_status, { type: 'COMMAND', command: { exit_code: 3 } });
  await c.fw.kill(id);
  await c.waitFor(id, (s) => s.state === 'TASK_KILLED', 'the kill');
});

test('an invalid health check is refused with the field named, and nothing runs', async () => {
  const t = await c.launch({ name: 'bad', cmd: 'sleep 60', cpus: 0.1, mem: 32 }, () => ({
    health_check: { type: 'HTTP', http: { port: 0 } },
  }));
  const end = await c.waitFor(t.task_id.value, (s) => s.state === 'TASK_ERROR', 'TASK_ERROR');
  assert.match(end.message ?? '', /health_check\.http\.port/);
});

test('after an agent crash and restart the recovered task is health-checked again', async () => {
  const t = await c.launch({ name: 'survivor', cmd: httpServerCmd(), cpus: 0.1, mem: 128, ports: 1 }, (_, ports) => ({
    health_check: { type: 'HTTP', http: { port: ports[0]!, path: '/health' }, delay_seconds: 0, interval_seconds: 0.2, grace_period_seconds: 5 },
  }));
  const id = t.task_id.value;
  await c.waitFor(id, (s) => s.healthy === true, 'a healthy update');
  const before = c.of(id).length;
  await c.restartAgent();
  // A restarted checker reports its first success again: a healthy update newer than the crash.
  await c.waitFor(id, (s) => s.healthy === true && c.of(id).indexOf(s) >= before, 'a healthy update from the restarted agent');
  await c.fw.kill(id);
  await c.waitFor(id, (s) => s.state === 'TASK_KILLED', 'the kill');
});

test.run();
