/**
 * The task lifecycle's two seams (agent/task-hooks.ts), driven through a real agent and real
 * processes: preStart runs in the sandbox before the command and can fail the launch with its
 * reason; postRunning can emit extra RUNNING updates (health) and kill the task.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TaskLaunchError, type RunningContext } from '../../agent/task-hooks.js';
import type { TaskStatusReason } from '../../proto/types.js';
import { commandTask, waitFor } from './fake-master.js';
import { fatalErrors, startHarness } from './harness.js';

function findSandboxes(workDir: string, tid: string): string[] {
  const runs = join(workDir, 'frameworks', 'fw-1', 'executors', tid, 'runs');
  return readdirSync(runs).map((c) => join(runs, c));
}

test('preStart writes into the sandbox before the command runs, and the command sees it', async () => {
  const h = await startHarness({
    agent: {
      hooks: {
        needsPreStart: (t) => t.task_id.value.startsWith('fetch'),
        async preStart(ctx) { writeFileSync(join(ctx.sandbox, 'fetched'), `for ${ctx.task.task_id.value}\n`); },
      },
    },
  });
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('fetch-1', 'cat fetched'));
    await waitFor(() => h.master.states('fetch-1').includes('TASK_FINISHED'), 'FINISHED');
    const [sandbox] = findSandboxes(h.workDir, 'fetch-1');
    assert.is(readFileSync(join(sandbox!, 'stdout'), 'utf8'), 'for fetch-1\n');
  } finally {
    await h.cleanup();
  }
});

test('a preStart failure fails the launch with its reason and the command never runs', async () => {
  const h = await startHarness({
    agent: { hooks: { async preStart() { throw new TaskLaunchError('REASON_FETCHER_FAILED' as TaskStatusReason, 'Failed to fetch http://x/y: 404'); } } },
  });
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    const marker = join(h.workDir, 'ran');
    h.master.launch(commandTask('f2', `touch ${marker}`));
    await waitFor(() => h.master.states('f2').includes('TASK_FAILED'), 'FAILED');
    const st = h.master.last('f2')!.status;
    assert.is(st.reason, 'REASON_FETCHER_FAILED');
    assert.match(st.message ?? '', /404/);
    assert.not.ok(existsSync(marker), 'the command did not run');
  } finally {
    await h.cleanup();
  }
});

test('postRunning emits RUNNING updates with health fields, and its kill ends the task TASK_KILLED with them', async () => {
  let ctx: RunningContext | undefined;
  const fatalBefore = fatalErrors.length;
  const h = await startHarness({ agent: { hooks: { postRunning(c) { ctx = c; } } } });
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('hc', 'sleep 300'));
    await waitFor(() => ctx !== undefined, 'postRunning called');
    await ctx!.update({ healthy: true, reason: 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' });
    await waitFor(() => h.master.updates.some((u) => u.msg.status.task_id.value === 'hc' && u.msg.status.healthy === true), 'healthy update');
    const healthy = h.master.updates.find((u) => u.msg.status.healthy === true)!.msg.status;
    assert.is(healthy.state, 'TASK_RUNNING');
    assert.is(healthy.reason, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED');
    await ctx!.kill({ graceMs: 0, extras: { healthy: false, message: 'health check failed 3 times' } });
    await waitFor(() => h.master.states('hc').includes('TASK_KILLED'), 'KILLED');
    const end = h.master.last('hc')!.status;
    assert.is(end.healthy, false);
    assert.is(end.message, 'health check failed 3 times');
    assert.ok(ctx!.signal.aborted, 'the hook is told the task ended');
    assert.equal(fatalErrors.slice(fatalBefore), [], 'no checkpoint failure meanwhile');
  } finally {
    await h.cleanup();
  }
});

test.run();
