import { test } from 'uvu';
import { spawn } from 'node:child_process';
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WsListener } from '../../proto/transport/ws.js';
import { scanProc } from '../../agent/proc.js';
import { FRAMEWORK, FakeMaster, commandTask, waitFor } from './fake-master.js';
import { killEverythingUnder, pidAlive, startHarness, startRunner, tempDir } from './harness.js';


interface TaskView { id: string; pid: number | null; state: string; alive: boolean; sandbox: string }

async function getState(endpoint: string): Promise<{ id: string; tasks: TaskView[] }> {
  const res = await fetch(`http://${endpoint}/state`);
  return (await res.json()) as { id: string; tasks: TaskView[] };
}


/** A master reachable over WebSocket on an ephemeral port. */
async function wsMaster(): Promise<{ master: FakeMaster; address: string; server: Server; listener: WsListener }> {
  const listener = new WsListener();
  const server = createServer((_req, res) => { res.statusCode = 404; res.end(); });
  listener.attach(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const master = new FakeMaster(listener);
  return { master, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, server, listener };
}

const logOf = (workDir: string): string => join(workDir, 'meta/log');
const logText = (workDir: string): string => (existsSync(logOf(workDir)) ? readFileSync(logOf(workDir), 'utf8') : '');
/** Lines of the checkpoint log, each with its parsed record. */
const records = (workDir: string): { line: string; r: Record<string, any> }[] =>
  logText(workDir).split('\n').filter(Boolean).map((line) => ({ line, r: JSON.parse(line) as Record<string, any> }));
const isCtr = (tid: string) => (x: { r: Record<string, any> }): boolean => x.r['t'] === 'ctr' && x.r['k'] === tid;
const isTask = (tid: string) => (x: { r: Record<string, any> }): boolean => x.r['t'] === 'task' && x.r['task'].task.task_id.value === tid;

function killed(child: ChildProcess): Promise<void> {
  return new Promise((r) => { if (child.exitCode !== null || child.signalCode !== null) r(); else { child.once('exit', () => r()); child.kill('SIGKILL'); } });
}

test('SIGKILL of the agent with 20 tasks running: restart keeps the same pids, launches nothing twice, loses no update', async () => {
  const workDir = tempDir();
  const { master, address, server, listener } = await wsMaster();
  const children: ChildProcess[] = [];
  try {
    const a1 = await startRunner(address, workDir);
    children.push(a1.child);
    await waitFor(() => master.registrations.length === 1, 'registration');
    const ids = Array.from({ length: 20 }, (_, i) => `long-${i}`);
    for (const id of ids) master.launch(commandTask(id, 'sleep 300'));
    master.launch(commandTask('victim-before', 'sleep 300'));
    master.launch(commandTask('exits-while-down', 'while [ ! -f "$MESOS_SANDBOX/go" ]; do sleep 0.05; done; exit 7'));
    const all = [...ids, 'victim-before', 'exits-while-down'];
    await waitFor(() => all.every((id) => master.states(id).includes('TASK_RUNNING')), 'all RUNNING', 20_000);
    const before = await getState(a1.endpoint);
    const pids = new Map(before.tasks.map((t) => [t.id, t.pid]));
    assert.is(pids.size, 22);

    // From now on the master neither records nor acks updates: the next update is checkpointed and
    // sent, but never forwarded, when the agent dies.
    const seen = master.updates.length;
    master.autoAck = false;
    const victim = before.tasks.find((t) => t.id === 'victim-before')!;
    const sleeper = [...scanProc().byPid.values()].find((p) => p.sid === victim.pid && p.pid !== victim.pid)!;
    process.kill(sleeper.pid, 'SIGKILL');
    await waitFor(() => records(workDir).some((x) => x.r['t'] === 'upd' && x.r['u'].status.task_id.value === 'victim-before' && x.r['u'].status.state === 'TASK_FAILED'), 'FAILED checkpointed');
    await waitFor(() => master.updates.length > seen, 'FAILED sent (and dropped by the master)');
    master.updates.length = seen;

    await killed(a1.child);
    // While the agent is down, a task ends on its own.
    const down = before.tasks.find((t) => t.id === 'exits-while-down')!;
    writeFileSync(join(down.sandbox, 'go'), '');
    await waitFor(() => !pidAlive(down.pid!), 'task ended while the agent was down');
    master.autoAck = true;

    const a2 = await startRunner(address, workDir);
    children.push(a2.child);
    await waitFor(() => master.registrations.length === 2, 'reregistration');
    const rr = master.registrations[1]!.reregister!;
    assert.ok(rr, 'restarted agent reregisters');
    assert.is(rr.agent_info.id?.value, 'agent-1', 'same agent id');
    const reported = new Map(rr.tasks!.map((t) => [t.task.task_id.value, t.state]));
    assert.ok(ids.every((id) => reported.get(id) === 'TASK_RUNNING'), 'the 20 long tasks are reported running');
    assert.is(reported.get('victim-before'), 'TASK_FAILED', 'unacked terminal task reported with its latest state');

    await waitFor(() => master.states('victim-before').includes('TASK_FAILED'), 'checkpointed update delivered after restart');
    assert.match(master.last('victim-before')!.status.message!, /signal SIGKILL/);
    await waitFor(() => master.states('exits-while-down').includes('TASK_FAILED'), 'exit learned after restart');
    assert.match(master.last('exits-while-down')!.status.message!, /Command exited with status 7 \(observed after an agent restart\)/);

    const after = await getState(a2.endpoint);
    for (const id of ids) {
      const t = after.tasks.find((x) => x.id === id)!;
      assert.is(t.pid, pids.get(id), `${id} has the same pid`);
      assert.ok(t.alive, `${id} still alive`);
      assert.equal(master.uniqueStates(id), ['TASK_STARTING', 'TASK_RUNNING'], `${id}: no update lost or repeated`);
      assert.is(readdirSync(join(workDir, 'frameworks/fw-1/executors', id, 'runs')).length, 1, `${id} launched once`);
    }
    const uuids = master.updates.map((u) => u.msg.status.uuid);
    assert.ok(uuids.length > 0);

    // The restarted agent still controls its adopted tasks.
    master.kill('long-0', 100);
    await waitFor(() => master.states('long-0').includes('TASK_KILLED'), 'adopted task killed');
    assert.not.ok(pidAlive(pids.get('long-0')!), 'adopted supervisor gone');
  } finally {
    for (const c of children) await killed(c);
    killEverythingUnder(workDir);
    listener.close();
    server.close();
    rmSync(workDir, { recursive: true, force: true });
  }
});

test('an update checkpointed but not forwarded when the agent dies is delivered after restart (in-process)', async () => {
  const h = await startHarness();
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('quick', 'while [ ! -f "$MESOS_SANDBOX/go" ]; do sleep 0.02; done; echo hi'));
    await waitFor(() => h.master.states('quick').includes('TASK_RUNNING'), 'RUNNING');
    const sandbox = (h.agent.stateView().tasks as { sandbox: string }[])[0]!.sandbox;
    // The link silently drops what the agent sends: FINISHED is checkpointed and "sent", never forwarded.
    const agentSide = [...h.net.conns][0] as unknown as { peer: { drop?: () => boolean } };
    agentSide.peer.drop = () => true;
    writeFileSync(join(sandbox, 'go'), '');
    await waitFor(() => logText(h.workDir).includes('TASK_FINISHED'), 'FINISHED checkpointed');
    await h.agent.stop();
    assert.not.ok(h.master.states('quick').includes('TASK_FINISHED'));
    await h.restart();
    await waitFor(() => h.master.states('quick').includes('TASK_FINISHED'), 'FINISHED delivered after restart');
    assert.equal(h.master.uniqueStates('quick'), ['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED']);
  } finally {
    await h.cleanup();
  }
});

test('a truncated or corrupt checkpoint log stops a strict restart with an error naming the file; --no-strict recovers the rest', async () => {
  const h = await startHarness();
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('a', 'sleep 300'));
    h.master.launch(commandTask('b', 'sleep 300'));
    await waitFor(() => h.master.states('a').includes('TASK_RUNNING') && h.master.states('b').includes('TASK_RUNNING'), 'RUNNING');
    const pidA = h.agent.taskPid('fw-1', 'a')!;
    const pidB = h.agent.taskPid('fw-1', 'b')!;
    await waitFor(() => ['a', 'b'].every((t) => records(h.workDir).some(isCtr(t))), 'container records');
    h.master.launch(commandTask('c', 'sleep 300'));
    await waitFor(() => h.master.states('c').includes('TASK_RUNNING') && records(h.workDir).some(isCtr('c')), 'c RUNNING and recorded');
    const pidC = h.agent.taskPid('fw-1', 'c')!;
    await h.agent.stop();
    const file = logOf(h.workDir);
    const original = readFileSync(file, 'utf8');

    // Truncated (records lost at a line boundary, undetectable from the log alone): the exit record
    // of a container whose task record is gone proves it. (A live process proves nothing: its argv
    // is its own to choose.) Task c ends while the agent is down, so its supervisor writes one.
    const exitC = join(h.workDir, 'meta', 'runs', `${records(h.workDir).find(isCtr('c'))!.r['r'].containerId}.exit`);
    for (const st of scanProc().byPid.values()) if (st.ppid === pidC) process.kill(st.pid, 'SIGKILL');
    await waitFor(() => existsSync(exitC), 'exit record of c');
    const cut = original.indexOf(records(h.workDir).find(isTask('c'))!.line);
    truncateSync(file, cut);
    let err: Error | undefined;
    try { await h.restart(); } catch (e) { err = e as Error; }
    assert.ok(err, 'strict restart fails on a truncated log');
    assert.is(err!.name, 'CheckpointError');
    assert.ok(err!.message.includes(file), `error names the file: ${err!.message}`);
    assert.match(err!.message, /no task record/);

    // Corrupt: a complete line that does not parse (task a's record).
    const lineA = original.split('\n').findIndex((l) => l.includes('"t":"task"') && l.includes('"value":"a"'));
    const lines = original.split('\n');
    lines[lineA] = lines[lineA]!.slice(0, Math.floor(lines[lineA]!.length / 2));
    writeFileSync(file, lines.join('\n'));
    err = undefined;
    try { await h.restart(); } catch (e) { err = e as Error; }
    assert.ok(err, 'strict restart fails on a corrupt line');
    assert.is(err!.name, 'CheckpointError');
    assert.ok(err!.message.includes(file) && err!.message.includes(`line ${lineA + 1}`), `error names the file and line: ${err!.message}`);

    const a3 = await h.restart({ strict: false });
    assert.is(a3.taskPid('fw-1', 'b'), pidB, 'readable task re-adopted');
    // The unreadable task cannot be managed: its container is destroyed and the framework told.
    await waitFor(() => h.master.states('a').includes('TASK_LOST'), 'unreadable task reported lost');
    assert.not.ok(pidAlive(pidA), 'unreadable task not left running');
  } finally {
    await h.cleanup();
  }
});

test('after a reboot (boot id changed) recorded pids are never re-adopted; tasks are reported lost', async () => {
  const h = await startHarness();
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('r', 'sleep 300'));
    await waitFor(() => h.master.states('r').includes('TASK_RUNNING'), 'RUNNING');
    const pid = h.agent.taskPid('fw-1', 'r')!;
    await waitFor(() => records(h.workDir).some(isCtr('r')), 'container record written');
    await h.agent.stop();
    // Pretend the records were written in another boot: the pid now "belongs" to someone else.
    writeFileSync(logOf(h.workDir), records(h.workDir).map((x) => (isCtr('r')(x) ? JSON.stringify({ ...x.r, r: { ...x.r['r'], bootId: 'another-boot' } }) : x.line)).join('\n') + '\n');
    const afile = join(h.workDir, 'meta/agent.json');
    writeFileSync(afile, JSON.stringify({ ...JSON.parse(readFileSync(afile, 'utf8')), boot_id: 'another-boot' }));
    const a2 = await h.restart();
    await waitFor(() => h.master.states('r').includes('TASK_LOST'), 'TASK_LOST');
    assert.match(h.master.last('r')!.status.message!, /rebooted/);
    assert.is(a2.taskPid('fw-1', 'r'), undefined, 'not adopted');
    assert.ok(pidAlive(pid), 'the process at the recorded pid was left alone');
  } finally {
    await h.cleanup();
  }
});

test('a task whose container record is missing after a crash is ended as TASK_LOST, never adopted by the argv of a process', async () => {
  const h = await startHarness();
  let pid: number | undefined;
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('late', 'sleep 300'));
    await waitFor(() => h.master.states('late').includes('TASK_RUNNING'), 'RUNNING');
    pid = h.agent.taskPid('fw-1', 'late')!;
    await waitFor(() => records(h.workDir).some(isCtr('late')), 'container record');
    await h.agent.stop();
    // The record is gone (as if the agent died before it was durable): the live supervisor, whose
    // argv names the run path, must not be taken for the task's.
    writeFileSync(logOf(h.workDir), records(h.workDir).filter((x) => !isCtr('late')(x)).map((x) => x.line).join('\n') + '\n');
    const a2 = await h.restart();
    assert.is(a2.taskPid('fw-1', 'late'), undefined, 'no supervisor adopted by argv');
    await waitFor(() => h.master.states('late').includes('TASK_LOST'), 'reported lost');
    assert.is(h.master.last('late')!.status.reason, 'REASON_AGENT_RESTARTED');
  } finally {
    if (pid !== undefined) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
    await h.cleanup();
  }
});

test('a process whose argv names a run path in meta/runs/ does not stop a strict recovery', async () => {
  const h = await startHarness();
  const fake = spawn('/bin/sh', ['-c', 'sleep 300; true', 'x', join(h.workDir, 'meta', 'runs', 'c0ffee00-0000-4000-8000-000000000000')], { detached: true, stdio: 'ignore' });
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('calm', 'sleep 300'));
    await waitFor(() => h.master.states('calm').includes('TASK_RUNNING'), 'RUNNING');
    const pid = h.agent.taskPid('fw-1', 'calm');
    await h.agent.stop();
    const a2 = await h.restart();
    assert.is(a2.taskPid('fw-1', 'calm'), pid, 'the real task is recovered');
    assert.ok(pidAlive(fake.pid!), 'the impostor is not touched either');
  } finally {
    try { process.kill(-fake.pid!, 'SIGKILL'); } catch { /* gone */ }
    await h.cleanup();
  }
});

test.run();
void FRAMEWORK;
