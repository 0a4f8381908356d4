import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PosixContainerizer } from '../../agent/containerizer/posix.js';
import { hasExitRecord, readExitRecord } from '../../agent/containerizer/files.js';
import { findShim } from '../../agent/containerizer/shim-server.js';
import type { ContainerSpec } from '../../agent/containerizer/types.js';
import { killEverythingUnder, pidAlive, sessionAlive, tempDir } from './harness.js';
import { waitFor } from './fake-master.js';

let n = 0;
function spec(dir: string, command: string, memMiB = 0): ContainerSpec {
  const id = `c${++n}`;
  const sandbox = join(dir, id, 'sandbox');
  // The containerizer creates the sandbox (with its parents); the run path's directory exists.
  const runDir = join(dir, 'run', id);
  mkdirSync(join(dir, 'run'), { recursive: true });
  return { containerId: id, sandbox, runDir, command: { shell: true, value: command }, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, limits: { cpus: 1, memMiB } };
}

async function withDir(fn: (dir: string, cz: PosixContainerizer) => Promise<void>): Promise<void> {
  const dir = tempDir('berth-posix-');
  const cz = new PosixContainerizer({ sampleIntervalMs: 50, pollIntervalMs: 20 });
  // The containerizer's timers are unref'd (an agent's server keeps it alive): keep this process up.
  const keepAlive = setInterval(() => undefined, 1000);
  try { await fn(dir, cz); } finally {
    clearInterval(keepAlive); await cz.close(); killEverythingUnder(dir); rmSync(dir, { recursive: true, force: true }); }
}

test('the supervisor writes the shared exit record format: exit code or signal name', () => withDir(async (dir, cz) => {
  const a = spec(dir, 'exit 3');
  const b = spec(dir, "sh -c 'kill -KILL $$'");
  const c = spec(dir, 'echo out; echo err >&2');
  await Promise.all([cz.launch(a), cz.launch(b), cz.launch(c)]);
  assert.equal(await cz.wait(a.containerId), { exitCode: 3, signal: null });
  assert.equal(await cz.wait(b.containerId), { exitCode: null, signal: 'SIGKILL' });
  assert.equal(await cz.wait(c.containerId), { exitCode: 0, signal: null });
  // One JSON line; berth-shim adds `clean` when no process of the task's tree outlived it.
  const rec = (r: string): unknown => { const t = readFileSync(`${r}.exit`, 'utf8'); assert.ok(t.endsWith('}\n')); const o = JSON.parse(t) as Record<string, unknown>; delete o['clean']; return o; };
  assert.equal(rec(a.runDir), { exitCode: 3, signal: null });
  assert.equal(rec(b.runDir), { exitCode: null, signal: 'SIGKILL' });
  assert.is(readFileSync(join(c.sandbox, 'stdout'), 'utf8'), 'out\n');
  assert.is(readFileSync(join(c.sandbox, 'stderr'), 'utf8'), 'err\n');
}));

const shimWhy = findShim() ? undefined : 'berth-shim is not built (no C compiler): the shell engines only sweep the session';
(shimWhy ? test.skip : test)(`a task's leftover processes die with it, also one that left its session with setsid${shimWhy ? ` (skipped: ${shimWhy})` : ''}`, () => withDir(async (dir, cz) => {
  const s = spec(dir, "setsid sh -c 'echo $$ > escapee; exec sleep 300' & sleep 300 & while [ ! -s escapee ]; do :; done; echo $! > child");
  await cz.launch(s);
  assert.equal(await cz.wait(s.containerId), { exitCode: 0, signal: null });
  // What the agent does after every exit: destroy whatever is left, then report the task ended.
  await cz.destroy(s.containerId, 0);
  const escapee = Number(readFileSync(join(s.sandbox, 'escapee'), 'utf8'));
  const child = Number(readFileSync(join(s.sandbox, 'child'), 'utf8'));
  assert.ok(escapee > 1 && child > 1);
  assert.not.ok(pidAlive(child), 'the background child is gone');
  assert.not.ok(pidAlive(escapee), 'the process that left the session is gone');
}));

test('argv commands exec the program, never a shell builtin of the supervisor', () => withDir(async (dir, cz) => {
  const s = spec(dir, '');
  s.command = { shell: false, value: 'echo', arguments: ['echo', 'a b', '$HOME'] };
  await cz.launch(s);
  assert.equal(await cz.wait(s.containerId), { exitCode: 0, signal: null });
  assert.is(readFileSync(join(s.sandbox, 'stdout'), 'utf8'), 'a b $HOME\n');
}));

test('destroy right after launch leaves nothing (the task may not be forked yet)', () => withDir(async (dir, cz) => {
  for (let i = 0; i < 5; i++) {
    const s = spec(dir, 'sleep 300');
    const rec = await cz.launch(s);
    await cz.destroy(s.containerId, 1000);
    assert.not.ok(sessionAlive(rec.pid), 'no session member left');
    const exit = await cz.wait(s.containerId);
    assert.ok(exit.signal === 'SIGTERM' || exit.exitCode !== null, `ended: ${JSON.stringify(exit)}`);
  }
}));

test('recover re-adopts a live supervisor (polling), reports a finished one from its exit record', () => withDir(async (dir, cz) => {
  const live = spec(dir, 'while [ ! -f go ]; do sleep 0.02; done; exit 5');
  const done = spec(dir, 'exit 9');
  const recLive = await cz.launch(live);
  const recDone = await cz.launch(done);
  await cz.wait(done.containerId);
  await cz.close();
  const cz2 = new PosixContainerizer({ pollIntervalMs: 20 });
  try {
    await cz2.recover([recLive, recDone, { ...recLive, containerId: 'stale', pid: recLive.pid, startTime: recLive.startTime + 1 }]);
    assert.equal(await cz2.wait(done.containerId), { exitCode: 9, signal: null, recovered: true });
    const stale = await cz2.wait('stale');
    assert.is(stale.reason, 'REASON_EXECUTOR_TERMINATED', 'a pid with another start time is not adopted');
    assert.ok(pidAlive(recLive.pid), 'the live one was left running');
    const usage = await cz2.usage(live.containerId);
    assert.ok((usage.processes ?? 0) >= 1, 'usage works on an adopted container');
    writeFileSync(join(live.sandbox, 'go'), '');
    assert.equal(await cz2.wait(live.containerId), { exitCode: 5, signal: null, recovered: true });
  } finally {
    await cz2.close();
  }
}));

test('memory limit sampling destroys an over-limit container with the memory reason', () => withDir(async (dir, cz) => {
  const hog = spec(dir, "awk 'BEGIN { s = \"x\"; while (length(s) < 100000000) s = s s; system(\"sleep 300\") }'", 16);
  const rec = await cz.launch(hog);
  const exit = await cz.wait(hog.containerId);
  assert.is(exit.reason, 'REASON_CONTAINER_LIMITATION_MEMORY');
  assert.match(exit.message!, /^Memory limit 16 MiB exceeded: usage \d+\.\d MiB$/);
  await waitFor(() => !sessionAlive(rec.pid), 'container gone');
}));

test('launch creates the sandbox and its stdout/stderr (sandbox missing, its parents too); a run dir of an earlier agent is still read', () => withDir(async (dir, cz) => {
  const s = spec(dir, 'sleep 0.3');
  await cz.launch(s);
  // Reported started: the sandbox exists with both files, whatever the engine.
  assert.is(readFileSync(join(s.sandbox, 'stdout'), 'utf8'), '');
  assert.is(readFileSync(join(s.sandbox, 'stderr'), 'utf8'), '');
  assert.equal(await cz.wait(s.containerId), { exitCode: 0, signal: null });
  assert.ok(hasExitRecord(s.runDir));
  // The layout of earlier agents: <runDir>/exit.
  const old = join(dir, 'old-run');
  mkdirSync(old);
  assert.not.ok(hasExitRecord(old));
  writeFileSync(join(old, 'exit'), '{"exitCode":null,"signal":"SIGTERM"}\n');
  assert.ok(hasExitRecord(old));
  assert.equal(readExitRecord(old), { exitCode: null, signal: 'SIGTERM' });
}));

test.run();
