/**
 * chaos on real processes over NATS (loopback): an agent SIGKILLed and
 * restarted on its work dir, and a framework SIGKILLed and resumed within
 * its failover_timeout or after it. Tasks are counted by the files they write
 * (tasks.ts), so "no task ran twice" is checked on the host, not taken from a log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { checked, until } from './harness.js';
import { withNatsMaster, type Env } from './single.js';
import { json, type Proc } from './procs.js';
import { alive, countedCmd, pids, runs } from './tasks.js';

/** NATS, a master in cluster mode and one posix agent; everything is killed and removed after `fn`. */
const withCluster = (fn: (e: Env, restartAgent: () => Proc) => Promise<void>): Promise<void> =>
  withNatsMaster('berth-restart-', 'cpus:2;mem:1024', (e) => fn(e, () => e.startAgent()));

const updates = (fw: Proc, state?: string): { task: string; state: string; reason: string; uuid: string }[] =>
  fw.events().filter((e) => e.ev === 'update' && (state === undefined || e.state === state)) as never;
const tasksIn = (fw: Proc, state: string): string[] => [...new Set(updates(fw, state).map((u) => u.task))].sort();
const fwArgs = (e: Env, ...more: string[]): string[] => ['--nats', e.nats.urls.join(','), ...more];

test('chaos: an agent SIGKILLed while its tasks run (NATS transport) recovers them on restart; each finishes once', () => withCluster(async (e, restartAgent) => {
  const fw = e.procs.fixture('fw', 'fw-proc', fwArgs(e, '--tasks', '3', '--cmd', countedCmd(e.marks, 5)));
  await until('3 tasks running', () => tasksIn(fw, 'TASK_RUNNING').length === 3, 60_000);
  const first = e.procs.all.find((p) => p.tag === 'agent')!;
  const agentId = /"agentId":"([^"]+)"[^\n]*Registered with the master/.exec(first.out)![1]!;
  await first.kill('SIGKILL');
  const taskPids = [...runs(e.marks).keys()].flatMap((id) => pids(e.marks, id));
  assert.ok(taskPids.every(alive), 'the tasks outlived the agent');
  const again = restartAgent();
  const re = await again.waitFor(/"agentId":"([^"]+)"[^\n]*Registered with the master/, 60_000);
  assert.is(re[1], agentId, 'the restarted agent re-registered under its id');
  await until('3 tasks FINISHED', () => tasksIn(fw, 'TASK_FINISHED').length === 3, 60_000);
  const finished = updates(fw, 'TASK_FINISHED');
  const perTask = new Map<string, Set<string>>();
  for (const u of finished) perTask.set(u.task, (perTask.get(u.task) ?? new Set()).add(u.uuid));
  assert.equal([...perTask.values()].map((s) => s.size), [1, 1, 1], 'one FINISHED update per task (resends carry the same uuid)');
  const bad = updates(fw).filter((u) => !['TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED'].includes(u.state));
  assert.equal(bad, [], 'no task LOST, FAILED or KILLED');
  assert.equal([...runs(e.marks).values()], [1, 1, 1], 'no task started twice');
  const state = await json<{ slaves: { id: string }[] }>(`${e.url}/state`);
  assert.equal(state.slaves.map((s) => s.id), [agentId], 'one agent, the same one');
  checked(`agent ${agentId} SIGKILLed with 3 running tasks; restarted, re-registered under its id; 3/3 FINISHED once each; each task started once`);
}));

test('chaos: a framework SIGKILLed and resumed within failover_timeout keeps its id and tasks, and gets the updates sent while it was away', () => withCluster(async (e) => {
  const a = e.procs.fixture('fw-a', 'fw-proc', fwArgs(e, '--tasks', '3', '--cmd', countedCmd(e.marks, 3), '--failover-timeout', '3600'));
  await until('3 tasks running', () => tasksIn(a, 'TASK_RUNNING').length === 3, 60_000);
  const id = a.events().find((x) => x.ev === 'subscribed')!.id!;
  await a.kill('SIGKILL');
  const taskPids = [...runs(e.marks).keys()].flatMap((t) => pids(e.marks, t));
  await until('the tasks end while their framework is away', () => !taskPids.some(alive), 30_000);
  assert.equal(tasksIn(a, 'TASK_FINISHED'), [], 'the first process never heard the tasks finish');
  const b = e.procs.fixture('fw-b', 'fw-proc', fwArgs(e, '--framework-id', id, '--failover-timeout', '3600'));
  await until('the resumed framework hears FINISHED for all 3', () => tasksIn(b, 'TASK_FINISHED').length === 3, 90_000);
  assert.equal(b.events().filter((x) => x.ev === 'subscribed').map((x) => x.id), [id], 'resubscribed with the same framework id');
  assert.equal(tasksIn(b, 'TASK_KILLED').concat(tasksIn(b, 'TASK_LOST')), [], 'no task killed or lost');
  assert.equal([...runs(e.marks).values()], [1, 1, 1], 'each task ran once');
  const state = await json<{ frameworks: { id: string; active: boolean }[] }>(`${e.url}/state`);
  assert.ok(state.frameworks.some((f) => f.id === id && f.active), 'the master kept the framework');
  checked(`framework ${id} SIGKILLed with 3 running tasks; they finished meanwhile; the resumed process (same id) received the 3 FINISHED updates`);
}));

test('chaos: a framework SIGKILLed and not back within failover_timeout is removed and its tasks killed', () => withCluster(async (e) => {
  const a = e.procs.fixture('fw-a', 'fw-proc', fwArgs(e, '--tasks', '2', '--cmd', countedCmd(e.marks, 600), '--failover-timeout', '1'));
  await until('2 tasks running', () => tasksIn(a, 'TASK_RUNNING').length === 2, 60_000);
  const id = a.events().find((x) => x.ev === 'subscribed')!.id!;
  const taskPids = [...runs(e.marks).keys()].flatMap((t) => pids(e.marks, t));
  const killedAt = Date.now();
  await a.kill('SIGKILL');
  // The master notices the silent session (3 NATS heartbeats), then waits out the 1 s failover timeout.
  await until('the master removes the framework', async () => {
    const s = await json<{ completed_frameworks: { id: string }[] }>(`${e.url}/state`).catch(() => ({ completed_frameworks: [] }));
    return s.completed_frameworks.some((f) => f.id === id);
  }, 60_000);
  await until('its tasks are killed on the agent', () => !taskPids.some(alive), 30_000);
  const removedMs = Date.now() - killedAt;
  const s = await json<{ frameworks: { id: string }[]; completed_tasks?: { id: string; state: string }[]; completed_frameworks: { id: string; completed_tasks?: { id: string; state: string }[] }[] }>(`${e.url}/state`);
  assert.not.ok(s.frameworks.some((f) => f.id === id), 'no longer an active framework');
  const done = s.completed_frameworks.find((f) => f.id === id)!.completed_tasks ?? [];
  assert.equal(done.map((t) => t.state).sort(), ['TASK_KILLED', 'TASK_KILLED'], 'both tasks ended KILLED');
  const b = e.procs.fixture('fw-b', 'fw-proc', fwArgs(e, '--framework-id', id));
  await b.waitFor(/"ev":"error"/, 60_000);
  assert.ok(!b.events().some((x) => x.ev === 'subscribed'), 'a removed framework cannot resubscribe');
  checked(`framework ${id} (failover_timeout 1 s) SIGKILLed: removed and its 2 tasks killed after ${removedMs} ms; resubscribing with its id is refused`);
}));

test.run();
