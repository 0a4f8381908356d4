import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FRAMEWORK, commandTask, waitFor } from './fake-master.js';
import { pidAlive, sessionAlive, startHarness, type Harness } from './harness.js';
import { readCmdline, scanProc } from '../../agent/proc.js';

const readCmd = (pid: number): string => readCmdline(pid).join(' ');

async function withAgent(fn: (h: Harness) => Promise<void>, opts: Parameters<typeof startHarness>[0] = {}): Promise<void> {
  const h = await startHarness(opts);
  try {
    await waitFor(() => h.agent.state === 'running', 'agent registered');
    await fn(h);
  } finally {
    await h.cleanup();
  }
}

function sandboxOf(h: Harness, tid: string): string {
  const tasks = (h.agent.stateView().tasks as { id: string; sandbox: string }[]);
  const t = tasks.find((x) => x.id === tid);
  if (!t) throw new Error(`task ${tid} not in /state`);
  return t.sandbox;
}

test('registers with detected resources and its HTTP endpoint', () => withAgent(async (h) => {
  const reg = h.master.registrations[0]!.register!;
  assert.ok(reg, 'first registration is a Register');
  assert.match(reg.endpoint!, /^127\.0\.0\.1:\d+$/);
  const names = reg.agent_info.resources!.map((r) => r.name).sort();
  assert.equal(names, ['cpus', 'disk', 'mem', 'ports']);
  assert.is(h.agent.id, 'agent-1');
}));

test('a task runs and reports STARTING, RUNNING, FINISHED with its stdout in the sandbox', () => withAgent(async (h) => {
  let sandbox = '';
  h.master.launch(commandTask('t1', 'echo hello-$MESOS_TASK_ID; echo oops >&2'));
  await waitFor(() => { try { sandbox = sandboxOf(h, 't1'); } catch { /* not yet */ } return sandbox !== ''; }, 'task in state');
  await waitFor(() => h.master.states('t1').includes('TASK_FINISHED'), 'TASK_FINISHED');
  assert.equal(h.master.uniqueStates('t1'), ['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED']);
  const fin = h.master.last('t1')!.status;
  assert.is(fin.message, 'Command exited with status 0');
  assert.is(fin.agent_id?.value, 'agent-1');
  assert.is(fin.source, 'SOURCE_EXECUTOR');
  assert.is(Buffer.from(fin.uuid!, 'base64').length, 16);
  assert.is(readFileSync(join(sandbox, 'stdout'), 'utf8'), 'hello-t1\n');
  assert.is(readFileSync(join(sandbox, 'stderr'), 'utf8'), 'oops\n');
  assert.match(sandbox, new RegExp(`${h.workDir}/frameworks/fw-1/executors/t1/runs/[0-9a-f-]{36}$`));
  // Acked terminal update: the task is forgotten and its checkpoint removed.
  await waitFor(() => h.agent.unackedUpdates === 0 && (h.agent.stateView().tasks as unknown[]).length === 0, 'task forgotten');
}));

test('environment carries MESOS_* variables, ports and the task env', () => withAgent(async (h) => {
  h.master.launch(commandTask('env1', 'echo "$MESOS_SANDBOX|$MESOS_FRAMEWORK_ID|$MESOS_AGENT_ID|$PORT0|$PORT1|$PORT|$PORTS|$FOO"', { ports: [[31000, 31001]], env: { FOO: 'bar baz' } }));
  let sandbox = '';
  await waitFor(() => { try { sandbox = sandboxOf(h, 'env1'); } catch { /* */ } return sandbox !== ''; }, 'task in state');
  await waitFor(() => h.master.states('env1').includes('TASK_FINISHED'), 'TASK_FINISHED');
  assert.is(readFileSync(join(sandbox, 'stdout'), 'utf8'), `${sandbox}|fw-1|agent-1|31000|31001|31000|31000,31001|bar baz\n`);
}));

test('a failing command ends TASK_FAILED with its exit code; argv commands run without a shell', () => withAgent(async (h) => {
  h.master.launch(commandTask('f1', 'exit 3'));
  const argv = commandTask('a1', '');
  argv.command = { shell: false, value: 'true', arguments: ['true'] };
  h.master.launch(argv);
  await waitFor(() => h.master.states('f1').includes('TASK_FAILED') && h.master.states('a1').includes('TASK_FINISHED'), 'both terminal');
  assert.is(h.master.last('f1')!.status.message, 'Command exited with status 3');
  assert.is(h.master.last('f1')!.status.reason, 'REASON_COMMAND_EXECUTOR_FAILED');
}));

test('unsupported tasks end TASK_ERROR with a clear message', () => withAgent(async (h) => {
  const docker = commandTask('d1', 'true');
  docker.container = { type: 'DOCKER' };
  const exec = commandTask('e1', 'true');
  exec.executor = { executor_id: { value: 'custom' }, command: { value: './my-executor' } };
  h.master.launch(docker);
  h.master.launch(exec);
  await waitFor(() => h.master.states('d1').length > 0 && h.master.states('e1').length > 0, 'answers');
  assert.is(h.master.last('d1')!.status.state, 'TASK_ERROR');
  assert.match(h.master.last('d1')!.status.message!, /container\.type DOCKER is not supported/);
  assert.is(h.master.last('e1')!.status.state, 'TASK_ERROR');
  assert.match(h.master.last('e1')!.status.message!, /custom executors are not supported/);
  assert.is(h.master.last('e1')!.status.reason, 'REASON_TASK_INVALID');
}));

test('a kill for an unknown task is answered TASK_LOST; a duplicate launch is ignored', () => withAgent(async (h) => {
  h.master.kill('ghost');
  await waitFor(() => h.master.states('ghost').length > 0, 'answer');
  assert.is(h.master.last('ghost')!.status.state, 'TASK_LOST');
  h.master.launch(commandTask('dup', 'sleep 0.3'));
  h.master.launch(commandTask('dup', 'sleep 0.3'));
  await waitFor(() => h.master.states('dup').includes('TASK_FINISHED'), 'finished');
  h.master.launch(commandTask('dup', 'sleep 0.3'));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(h.master.uniqueStates('dup'), ['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED']);
}));

test('stopping the agent with killTasks while launches are in flight leaves no task process behind', async () => {
  const h = await startHarness();
  try {
    await waitFor(() => h.agent.state === 'running', 'agent registered');
    for (let i = 0; i < 20; i++) h.master.launch(commandTask(`s${i}`, `sleep 300 # stop-race-${process.pid}`));
    // Some launches are still being checkpointed, some containers are starting: stop now.
    await waitFor(() => h.master.states('s0').includes('TASK_STARTING'), 'first launch under way');
    await h.agent.stop({ killTasks: true });
    const left = [...scanProc().byPid.values()].filter((p) => p.state !== 'Z' && readCmd(p.pid).includes(`stop-race-${process.pid}`));
    assert.equal(left.map((p) => p.pid), [], 'no sleep of ours outlives the stop');
  } finally {
    await h.cleanup();
  }
});

test('kill leaves no process behind, including a double-forked child', () => withAgent(async (h) => {
  // The grandchild is reparented away from the task (double fork) but stays in its session.
  h.master.launch(commandTask('k1', '(sleep 300 &) ; trap "" TERM; sleep 300', { graceMs: 300 }));
  await waitFor(() => h.master.states('k1').includes('TASK_RUNNING'), 'RUNNING');
  const pid = h.agent.taskPid(FRAMEWORK.id!.value, 'k1')!;
  await waitFor(() => (scanProc().bySid.get(pid) ?? []).filter((p) => p.pid !== pid).length >= 3, 'task processes up');
  const t0 = Date.now();
  h.master.kill('k1');
  await waitFor(() => h.master.states('k1').includes('TASK_KILLED'), 'KILLED');
  assert.ok(Date.now() - t0 >= 250, 'SIGTERM-ignoring task got its grace period before SIGKILL');
  assert.not.ok(sessionAlive(pid), 'no process of the container session survives');
  assert.not.ok(pidAlive(pid), 'supervisor gone');
}));

test('memory limit: an over-limit task fails with the memory reason while its neighbour keeps running', () => withAgent(async (h) => {
  h.master.launch(commandTask('calm', 'sleep 300', { mem: 64 }));
  // ~200 MiB resident: a string doubling in awk's memory.
  h.master.launch(commandTask('hog', "awk 'BEGIN { s = \"x\"; while (length(s) < 200000000) s = s s; system(\"sleep 300\") }'", { mem: 32 }));
  await waitFor(() => h.master.states('hog').some((s) => s === 'TASK_FAILED'), 'hog failed', 20_000);
  const st = h.master.last('hog')!.status;
  assert.is(st.reason, 'REASON_CONTAINER_LIMITATION_MEMORY');
  assert.match(st.message!, /Memory limit 32 MiB exceeded: usage \d+(\.\d)? MiB/);
  const calmPid = h.agent.taskPid(FRAMEWORK.id!.value, 'calm')!;
  assert.ok(pidAlive(calmPid), 'neighbour still running');
  assert.not.ok(h.master.states('calm').some((s) => s !== 'TASK_STARTING' && s !== 'TASK_RUNNING'));
}));

test('a silent master is detected and the agent reregisters on a new link', () => withAgent(async (h) => {
  h.master.launch(commandTask('r1', 'sleep 300'));
  await waitFor(() => h.master.states('r1').includes('TASK_RUNNING'), 'RUNNING');
  // Drop everything the master sends from now on: no pings, no acks.
  const first = h.master.conn!;
  (first as unknown as { drop: () => boolean }).drop = () => true;
  await waitFor(() => h.master.registrations.length >= 2, 'reregistration', 5000);
  const rr = h.master.registrations[1]!.reregister!;
  assert.ok(rr, 'second registration is a Reregister');
  assert.is(rr.agent_info.id?.value, 'agent-1');
  assert.equal(rr.tasks!.map((t) => [t.task.task_id.value, t.state]), [['r1', 'TASK_RUNNING']]);
}, { master: { pingIntervalSeconds: 0.1 }, agent: { redialBaseMs: 10, redialMaxMs: 50 } }));

test.run();
