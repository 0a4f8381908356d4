/**
 * Health checks and checks as Mesos defines them: the schedulers on a manual
 * clock with scripted probe results (grace period, consecutive failures, kill,
 * change-only check reports), then each real probe against real sockets and
 * real processes on loopback, including a probe entering a task's own
 * namespaces (`root:`, skipped with the reason where unshare(1) cannot run).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '../../../proto/clock.js';
import type { HealthCheck, TaskInfo } from '../../../proto/types.js';
import { HealthChecker, Checker, type HealthEvent } from '../../../agent/checks/checker.js';
import { commandProbe, probeCommand, probeNetwork, tcpConnect, httpGet, foreignNamespaces, type ProbeResult, type ProbeTarget } from '../../../agent/checks/probe.js';
import { findProbeServer, ProbeRunner } from '../../../agent/checks/probe-runner.js';
import type { CommandInfo } from '../../../proto/types.js';
import { startTaskChecks, validateChecks, type CheckUpdate } from '../../../agent/checks/index.js';
import { resolveUser } from '../../../agent/containerizer/linux/users.js';
import { pidAlive } from '../harness.js';
import { waitFor } from '../fake-master.js';

async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A probe that returns the scripted results in order (then the last one again), recording each timeout. */
function scripted(results: boolean[]): { probe: (t: number) => Promise<ProbeResult>; timeouts: number[]; calls: () => number } {
  let i = 0;
  const timeouts: number[] = [];
  return {
    probe: async (t) => { timeouts.push(t); const ok = results[Math.min(i++, results.length - 1)]!; return { ok, message: ok ? 'ok' : 'bad' }; },
    timeouts,
    calls: () => i,
  };
}

/** Advances the clock by `ms` in steps, letting each probe's promise settle. */
async function run(clock: ManualClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) { clock.advance(step); await settle(); }
}

const hc = (o: Partial<HealthCheck>): HealthCheck => ({ type: 'COMMAND', command: { value: 'true' }, ...o });

test('health: first probe after delay_seconds, then every interval_seconds, each bounded by timeout_seconds', async () => {
  const clock = new ManualClock();
  const s = scripted([true]);
  const c = new HealthChecker(hc({ delay_seconds: 2, interval_seconds: 1, timeout_seconds: 0.5 }), clock, s.probe, () => undefined);
  c.start();
  await run(clock, 1900);
  assert.is(s.calls(), 0, 'no probe before the delay');
  await run(clock, 200);
  assert.is(s.calls(), 1);
  await run(clock, 3000);
  assert.is(s.calls(), 4);
  assert.ok(s.timeouts.every((t) => t === 500));
  c.stop();
  await run(clock, 3000);
  assert.is(s.calls(), 4, 'a stopped checker probes no more');
});

test('health: failures inside the grace period are ignored until the first success; after it every failure counts', async () => {
  const clock = new ManualClock();
  const events: HealthEvent[] = [];
  // fail, fail (in grace), success, fail, fail, success
  const s = scripted([false, false, true, false, false, true]);
  const c = new HealthChecker(hc({ delay_seconds: 0, interval_seconds: 1, grace_period_seconds: 5, consecutive_failures: 3 }), clock, s.probe, (e) => events.push(e));
  c.start();
  await run(clock, 6000);
  c.stop();
  assert.equal(events.map((e) => [e.healthy, e.consecutiveFailures, e.killTask]), [
    [true, 0, false], [false, 1, false], [false, 2, false], [true, 0, false],
  ]);
});

test('health: a task never healthy past its grace period is reported unhealthy and killed after consecutive_failures', async () => {
  const clock = new ManualClock();
  const events: HealthEvent[] = [];
  const s = scripted([false]);
  const c = new HealthChecker(hc({ delay_seconds: 0, interval_seconds: 1, grace_period_seconds: 2.5, consecutive_failures: 2 }), clock, s.probe, (e) => events.push(e));
  c.start();
  await run(clock, 10_000);
  assert.equal(events.map((e) => [e.healthy, e.consecutiveFailures, e.killTask]), [[false, 1, false], [false, 2, true]]);
  assert.is(s.calls(), 5, 'probes at 0,1,2 s ignored (grace), 3 and 4 s counted, then the checker stops');
});

test('health: a success is reported once, not on every probe', async () => {
  const clock = new ManualClock();
  const events: HealthEvent[] = [];
  const c = new HealthChecker(hc({ delay_seconds: 0, interval_seconds: 1 }), clock, scripted([true]).probe, (e) => events.push(e));
  c.start();
  await run(clock, 5000);
  c.stop();
  assert.is(events.length, 1);
});

test('health: consecutive_failures 0 never asks for a kill and reports each change of health once', async () => {
  const clock = new ManualClock();
  const events: HealthEvent[] = [];
  const s = scripted([false, false, false, true, false, false]);
  const c = new HealthChecker(hc({ delay_seconds: 0, interval_seconds: 1, grace_period_seconds: 0, consecutive_failures: 0 }), clock, s.probe, (e) => events.push(e));
  c.start();
  await run(clock, 8000);
  c.stop();
  assert.ok(s.calls() >= 7, 'it keeps probing');
  assert.equal(events.map((e) => [e.healthy, e.killTask]), [[false, false], [true, false], [false, false]]);
});

test('check: a result is reported only when it changes (exit code, status code, connected)', async () => {
  const clock = new ManualClock();
  const seen: unknown[] = [];
  const codes = [0, 0, 1, 1, 0];
  let i = 0;
  const c = new Checker({ type: 'COMMAND', command: { command: { value: 'x' } }, delay_seconds: 0, interval_seconds: 1 }, clock,
    async () => { const code = codes[Math.min(i++, codes.length - 1)]!; return { ok: code === 0, exitCode: code, message: '' }; },
    (s) => seen.push(s));
  c.start();
  await run(clock, 6000);
  c.stop();
  assert.equal(seen, [
    { type: 'COMMAND', command: { exit_code: 0 } },
    { type: 'COMMAND', command: { exit_code: 1 } },
    { type: 'COMMAND', command: { exit_code: 0 } },
  ]);
});

// ---- validation ----------------------------------------------------------------

const base: TaskInfo = { name: 't', task_id: { value: 't' }, agent_id: { value: 'a' }, command: { value: 'true' } };
const invalid: [string, Record<string, unknown>, RegExp][] = [
  ['no type', { health_check: { http: { port: 80 } } }, /task\.health_check\.type must be COMMAND, HTTP or TCP/],
  ['HTTP without http', { health_check: { type: 'HTTP' } }, /task\.health_check\.http is missing/],
  ['port 0', { health_check: { type: 'TCP', tcp: { port: 0 } } }, /task\.health_check\.tcp\.port must be a port/],
  ['bad scheme', { health_check: { type: 'HTTP', http: { port: 80, scheme: 'ftp' } } }, /task\.health_check\.http\.scheme/],
  ['relative path', { health_check: { type: 'HTTP', http: { port: 80, path: 'health' } } }, /task\.health_check\.http\.path/],
  ['negative interval', { health_check: { type: 'TCP', tcp: { port: 80 }, interval_seconds: -1 } }, /task\.health_check\.interval_seconds/],
  ['empty command', { health_check: { type: 'COMMAND', command: { value: '' } } }, /task\.health_check\.command\.value is empty/],
  ['check without command', { check: { type: 'COMMAND' } }, /task\.check\.command\.command is missing/],
  ['check NaN timeout', { check: { type: 'TCP', tcp: { port: 1 }, timeout_seconds: Number.NaN } }, /task\.check\.timeout_seconds/],
];
for (const [name, extra, re] of invalid) {
  test(`validation names the field at fault: ${name}`, () => {
    const err = validateChecks({ ...base, ...extra } as TaskInfo);
    assert.ok(err && re.test(err), `got ${err}`);
  });
}

test('validation accepts well-formed health checks and checks of each type', () => {
  for (const extra of [
    { health_check: { type: 'HTTP', http: { port: 8080, path: '/health', scheme: 'https' } } },
    { health_check: { type: 'TCP', tcp: { port: 1 } } },
    { health_check: { type: 'COMMAND', command: { value: 'true' } }, check: { type: 'HTTP', http: { port: 2 } } },
  ]) assert.is(validateChecks({ ...base, ...extra } as TaskInfo), undefined);
});

// ---- real probes -------------------------------------------------------------------

async function httpServer(status: () => number): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = http.createServer((req, res) => { res.statusCode = req.url === '/health' ? status() : 404; res.end('x'); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as AddressInfo).port, close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); }) };
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

const target = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', GREETING: 'hi' }, cwd: '/tmp' };

test('HTTP probe: 2xx and 3xx are healthy, other statuses and refused connections are not', async () => {
  let code = 200;
  const s = await httpServer(() => code);
  try {
    assert.equal(await httpGet('http', s.port, '/health', 2000), { ok: true, statusCode: 200, message: `HTTP 200 from http://127.0.0.1:${s.port}/health` });
    code = 302;
    assert.is((await httpGet('http', s.port, '/health', 2000)).ok, true);
    code = 503;
    const bad = await httpGet('http', s.port, '/health', 2000);
    assert.is(bad.ok, false); assert.is(bad.statusCode, 503);
  } finally { await s.close(); }
  const refused = await httpGet('http', await freePort(), '/health', 2000);
  assert.is(refused.ok, false); assert.is(refused.statusCode, undefined);
  assert.match(refused.message, /ECONNREFUSED/);
});

test('HTTP probe: a server that never answers fails at the timeout', async () => {
  const conns: net.Socket[] = [];
  const srv = net.createServer((c) => conns.push(c)); // accepts, never replies
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const r = await httpGet('http', (srv.address() as AddressInfo).port, '/', 200);
    assert.is(r.ok, false); assert.match(r.message, /timed out after 0\.2 s/);
  } finally { for (const c of conns) c.destroy(); await new Promise((r) => srv.close(r)); }
});

test('TCP probe: connected to a listening port, not to a closed one', async () => {
  const srv = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    assert.equal((await tcpConnect((srv.address() as AddressInfo).port, 2000)).connected, true);
  } finally { await new Promise((r) => srv.close(r)); }
  const r = await tcpConnect(await freePort(), 2000);
  assert.is(r.ok, false); assert.is(r.connected, false);
});

const ipv6 = await new Promise<boolean>((r) => {
  const probe = net.createServer();
  probe.once('error', () => r(false));
  probe.listen(0, '::1', () => probe.close(() => r(true)));
});
const ipv6Name = 'HTTP and TCP probes of protocol IPv6 connect to ::1';
(ipv6 ? test : test.skip)(ipv6 ? ipv6Name : `${ipv6Name} (SKIPPED: no IPv6 loopback here)`, async () => {
  const srv = http.createServer((_, res) => res.end());
  await new Promise<void>((r) => srv.listen(0, '::1', r));
  try {
    const port = (srv.address() as AddressInfo).port;
    const h = await httpGet('http', port, '/', 2000, 'IPv6');
    assert.equal([h.ok, h.message], [true, `HTTP 200 from http://[::1]:${port}/`]);
    assert.is((await tcpConnect(port, 2000, 'IPv6')).connected, true);
    assert.is((await tcpConnect(port, 2000)).connected, false, 'not on 127.0.0.1');
  } finally { srv.closeAllConnections(); await new Promise((r) => srv.close(r)); }
});

// ---- COMMAND probes, spawned from this process and through the berth-probe server ----------

type RunCommand = (c: CommandInfo, timeoutMs: number, t: ProbeTarget) => Promise<ProbeResult>;
const probeServer = findProbeServer();
/** Each COMMAND test runs on both paths: the same results whichever runs the probe. */
const engines: { name: string; skip?: string; with: (fn: (run: RunCommand) => Promise<void>) => Promise<void> }[] = [
  { name: 'spawned', with: (fn) => fn(probeCommand) },
  {
    name: 'berth-probe',
    ...(probeServer ? {} : { skip: 'berth-probe is not built (no C compiler)' }),
    with: async (fn) => {
      const runner = new ProbeRunner(probeServer!);
      runner.acquire();
      try { await fn((c, t, tgt) => commandProbe(c, tgt, runner)(t)); } finally { runner.release(); }
    },
  },
];

const root = process.getuid?.() === 0;
const nobodyUser = root ? await resolveUser('nobody') : undefined;
const userSkip = !root ? 'needs root to switch users' : !nobodyUser ? 'no user nobody' : undefined;

for (const e of engines) {
  const t = (name: string, fn: (run: RunCommand) => Promise<void>, skip = e.skip): void => {
    const full = `COMMAND probe (${e.name}): ${name}`;
    if (skip) test.skip(`${full} (SKIPPED: ${skip})`, () => undefined);
    else test(full, () => e.with(fn));
  };

  t('exit code reported, task environment and the check command environment passed', async (probe) => {
    const ok = await probe({ value: 'test "$GREETING$EXTRA" = hi2', environment: { variables: [{ name: 'EXTRA', value: '2' }] } }, 5000, target);
    assert.equal([ok.ok, ok.exitCode], [true, 0]);
    const bad = await probe({ value: 'echo broken >&2; exit 3' }, 5000, target);
    assert.equal([bad.ok, bad.exitCode], [false, 3]);
    assert.match(bad.message, /exited with status 3: broken/);
    const argv = await probe({ shell: false, value: '/bin/sh', arguments: ['sh', '-c', 'exit 0'] }, 5000, target);
    assert.is(argv.ok, true);
    const missing = await probe({ shell: false, value: '/nonexistent/probe', arguments: ['probe'] }, 5000, target);
    assert.is(missing.ok, false, missing.message);
  });

  t('runs in the sandbox and as the task\'s user', async (probe) => {
    const nobody = nobodyUser!;
    const r = await probe({ value: `test "$(id -u)" = ${nobody.uid} && test "$PWD" = ${target.cwd}` }, 5000, { ...target, user: nobody });
    assert.is(r.ok, true, r.message);
  }, e.skip ?? userSkip);

  t('no process of a probe outlives it, whether it timed out or exited leaving a background child', async (probe) => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-probe-'));
    try {
      const ended = await probe({ value: `sleep 30 & echo $! > ${dir}/a` }, 5000, target);
      assert.is(ended.ok, true, ended.message);
      const timedOut = await probe({ value: `sleep 30 & echo $! > ${dir}/b; wait` }, 300, target);
      assert.equal([timedOut.ok, timedOut.exitCode], [false, undefined]);
      assert.match(timedOut.message, /timed out/);
      const killed = await probe({ value: 'kill -9 $$' }, 5000, target);
      assert.match(killed.message, /terminated by SIGKILL/);
      for (const f of ['a', 'b']) {
        const pid = Number(readFileSync(join(dir, f), 'utf8'));
        await waitFor(() => !pidAlive(pid), `probe child ${pid} to be gone`, 2000);
      }
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
}

(probeServer ? test : test.skip)(probeServer ? 'the berth-probe server runs only while a checked task needs it, and a probe it cannot answer fails instead of hanging' : 'berth-probe server lifetime (SKIPPED: berth-probe is not built)', async () => {
  const runner = new ProbeRunner(probeServer!);
  const probe = commandProbe({ value: 'sleep 30' }, target, runner);
  // No task holds it: nothing runs through it (the caller spawns instead).
  assert.is(runner.run(runner.prepare(['true'], {}, {})!, 1000), undefined);
  runner.acquire();
  const pending = probe(20_000);
  await waitFor(() => serverPids().length === 1, 'the berth-probe server to start');
  const [pid] = serverPids();
  runner.release();
  const r = await pending;
  assert.equal([r.ok, r.message], [false, 'command could not start: the probe runner was closed']);
  await waitFor(() => !pidAlive(pid!), 'the berth-probe server to exit with its last user', 5000);
});

/** berth-probe servers that are children of this process. */
function serverPids(): number[] {
  const out: number[] = [];
  for (const t of readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
    try { if (readFileSync(`/proc/${t}/cmdline`, 'utf8').includes('berth-probe')) out.push(Number(t)); } catch { /* gone */ }
  }
  return out;
}

// ---- inside a task's own namespaces ---------------------------------------------------------

function canUnshare(): string | undefined {
  if (!root) return 'needs root';
  try { execFileSync('unshare', ['--pid', '--fork', '--mount-proc', '--net', 'true'], { stdio: 'ignore' }); return undefined; } catch (e) { return `unshare failed: ${(e as Error).message}`; }
}
const nsSkip = canUnshare();
if (nsSkip) console.log(`\n[checks.test] SKIPPING root: namespace probes: ${nsSkip}`);

/** A "task": node listening on 127.0.0.1:7000 inside fresh pid+mount+net namespaces; resolves its host pid. */
async function nsTask(): Promise<{ pid: number; stop: () => void }> {
  // Port 7000 is private to the new network namespace, so a fixed number cannot collide.
  const script = 'require("net").createServer(c=>c.end()).listen(7000,"127.0.0.1",()=>console.log("up"))';
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--net', '--kill-child', 'sh', '-c', `ip link set lo up && exec ${process.execPath} -e '${script}'`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('up')) resolve(); });
    child.once('exit', (c) => reject(new Error(`ns task exited ${c}`)));
  });
  // unshare forks once: the task is its only child.
  const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  return { pid: kids[0]!, stop: () => child.kill('SIGKILL') };
}

const nsName = 'root: COMMAND, TCP and HTTP probes run inside the task\'s mount, pid and network namespaces';
(nsSkip ? test.skip : test)(nsSkip ? `${nsName} (SKIPPED: ${nsSkip})` : nsName, async () => {
  const t = await nsTask();
  try {
    assert.equal(foreignNamespaces(t.pid)?.sort(), ['mnt', 'net', 'pid']);
    const nt = { ...target, pid: t.pid };
    // In the task's pid namespace (with its own /proc) the task is pid 1.
    const cmd = await probeCommand({ value: 'grep -q node /proc/1/cmdline' }, 5000, nt);
    assert.is(cmd.ok, true, cmd.message);
    const tcp = await probeNetwork({ kind: 'tcp', port: 7000 }, 5000, nt);
    assert.is(tcp.ok, true, tcp.message);
    // From the agent's own network namespace the task's port is not reachable.
    const outside = await probeNetwork({ kind: 'tcp', port: 7000 }, 2000, target);
    assert.is(outside.ok, false);
  } finally { t.stop(); }
  await waitFor(() => !pidAlive(t.pid), 'the ns task to end');
  // A task whose process is gone fails its probes; they never fall back to the agent's namespaces.
  const gone = await probeCommand({ value: 'true' }, 5000, { ...target, pid: t.pid });
  assert.equal([gone.ok, gone.message], [false, "the task's process is gone"]);
});

// ---- the whole: startTaskChecks ----------------------------------------------------------

test('startTaskChecks: an HTTP health check that starts failing emits healthy, then unhealthy, then asks for the kill', async () => {
  let code = 200;
  const s = await httpServer(() => code);
  const updates: CheckUpdate[] = [];
  let killed = '';
  const { RealClock } = await import('../../../proto/clock.js');
  try {
    const task = { ...base, health_check: { type: 'HTTP', http: { port: s.port, path: '/health' }, delay_seconds: 0, interval_seconds: 0.05, grace_period_seconds: 0, consecutive_failures: 2, timeout_seconds: 1 } } as TaskInfo;
    const killedP = new Promise<void>((resolve) => {
      const checks = startTaskChecks(task, target, {
        emit: (u) => { updates.push(u); if (u.healthy) code = 500; },
        kill: (m) => { killed = m; checks?.stop(); resolve(); },
      }, { clock: new RealClock() });
    });
    await killedP;
  } finally { await s.close(); }
  assert.equal(updates.map((u) => [u.healthy, u.reason]), [
    [true, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED'], [false, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED'], [false, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED'],
  ]);
  assert.match(killed, /failing its health check 2 times in a row: HTTP 500/);
});

test.run();
