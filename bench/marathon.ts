/**
 * `npm run bench -- marathon`: Berth's Marathon on a real `berth up` (master and
 * Marathon in one process, 2 agent processes, real task processes).
 *
 * Figures, per N (default 100 and 500):
 *  - `marathon.deploy.N`: ms from `POST /v2/apps` (N instances of `sleep 600`) to
 *    N instances TASK_RUNNING (and healthy, with a trivial COMMAND health check,
 *    when the agents run health checks), as seen on the `/v2/events` stream.
 *    Baseline: the raw launch of the same N tasks by a bare SDK framework on the
 *    same cluster in the same run, over the same native transport (first offer → N
 *    RUNNING). Target: 500 in ≤ 3 s.
 *  - `marathon.restart.N`: ms from `POST /v2/apps/{id}/restart` to its
 *    `deployment_success` (every instance replaced, Marathon's default
 *    upgradeStrategy). Baseline: `marathon.deploy.N` of the same run; target ≤ 2×.
 *
 * The health check is a COMMAND check of `true` with Marathon's defaults (timeout 20 s, grace
 * 300 s, 3 failures) except `delaySeconds 0` (the default 15 s would be all the figure measured)
 * and `--interval` seconds between probes (default 10, Mesos' default; Marathon's is 60).
 * Params carry the timeline (first RUNNING, all RUNNING, all healthy) to show where time goes.
 *
 * Options: --sizes=100,500 --reps=1 --agents=2 --containerizer=posix|linux|auto --interval=10 --checks=on|off
 * --profile=DIR (CPU profiles of berth up and each agent, see bench/cpu-profile.ts; summarise
 * one with `node dist/bench/cpu-profile.js DIR/agent-PID.cpuprofile`).
 *
 * Interrupted (SIGINT/SIGTERM) or failing, the bench stops `berth up` gracefully and waits for
 * it (its agents kill their tasks), then kills what is left of its process group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, isTerminal, OfferPool, task } from '../frameworks/sdk/index.js';
import { MarathonEventStream } from '../frameworks/marathon/event-stream.js';
import { emit, median, progress } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.resolve(here, '../cli/main.js');

function opt(args: string[], name: string, def: string): string {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
}

/** `berth up --port 0` as a child; resolves with the master and Marathon URLs it prints. */
async function up(dir: string, agents: number, containerizer: string, profileDir?: string): Promise<{ child: ChildProcess; master: string; marathon: string }> {
  // Profiling through NODE_OPTIONS, so berth up's agents (its children) are profiled too.
  const profile = profileDir ? {
    NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${path.join(here, 'cpu-profile.js')}`.trim(),
    BERTH_CPU_PROFILE_DIR: path.resolve(profileDir),
  } : {};
  // Its own process group: a Ctrl-C reaches only the bench, which then stops berth up in order
  // (berth up stops its agents, which kill their tasks) instead of everything dying at once.
  const child = spawn(process.execPath, [cli, 'up', '--port', '0', '--agents', String(agents), '--work-dir', dir, '--containerizer', containerizer], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn', ...profile }, detached: true,
  });
  // Its log (warnings: failed health checks, agent trouble) is kept beside the bench's results.
  const outDir = process.env['BERTH_BENCH_OUT'] ?? 'bench-results';
  mkdirSync(outDir, { recursive: true });
  const logFile = createWriteStream(path.join(outDir, 'marathon-berth-up.log'));
  child.stderr!.pipe(logFile);
  progress(`berth up's log: ${path.join(outDir, 'marathon-berth-up.log')}`);
  let err = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`berth up did not start:\n${err}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      // Kept reading (and bounded) for berth up's whole life: a closed pipe would fail its writes.
      err = (err + d.toString()).slice(-20_000);
      const m = /berth is up: master (\S+)/.exec(err);
      const k = /marathon: (\S+)/.exec(err);
      if (m && k) { clearTimeout(t); resolve({ child, master: m[1]!, marathon: k[1]! }); }
    });
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`berth up exited ${code}:\n${err}`)); });
  });
}

async function json(url: string, method = 'GET', body?: unknown): Promise<any> {
  const r = await fetch(url, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function tasksRunning(master: string): Promise<number> {
  const m = await json(`${master}/metrics/snapshot`);
  return (m['master/tasks_running'] ?? 0) + (m['master/tasks_staging'] ?? 0) + (m['master/tasks_starting'] ?? 0) + (m['master/tasks_killing'] ?? 0);
}

/** The baseline: a bare SDK framework launching N tasks on the same cluster (first offer → N RUNNING), then tearing down. */
async function rawLaunch(master: string, n: number): Promise<number> {
  // The same transport as berth up's Marathon (native), so the two differ only by the framework.
  const fw = await connect({ master: master.replace(/^http:\/\//, 'berth://'), framework: { name: 'bench-raw' } });
  const pending = Array.from({ length: n }, (_, i) => task({ id: `raw-${i}`, cmd: 'sleep 600', cpus: 0.001, mem: 32 }));
  const running = new Set<string>();
  let t0 = 0;
  const done = new Promise<void>((resolve, reject) => {
    fw.on('offers', async (offers) => {
      if (!t0) t0 = performance.now();
      const pool = new OfferPool(offers);
      while (pending.length && pool.place(pending[0]!)) pending.shift();
      await fw.acceptPool(pool, { refuseSeconds: pending.length ? 0 : 60 });
      if (!pending.length) await fw.suppress();
    });
    fw.on('update', (st) => {
      if (st.state === 'TASK_RUNNING') running.add(st.task_id.value);
      else if (isTerminal(st.state)) reject(new Error(`raw task ${st.task_id.value}: ${st.state} ${st.message ?? ''}`));
      if (running.size === n) resolve();
    });
  });
  const tick = setInterval(() => progress(`  raw: ${running.size}/${n} running`), 5000);
  await done.finally(() => clearInterval(tick));
  const ms = performance.now() - t0;
  await fw.teardown();
  await waitFor(async () => (await tasksRunning(master)) === 0, 120_000, 'raw tasks gone');
  return ms;
}

/** Stops `berth up` and waits for it (its agents take their tasks down); SIGKILLs its group as a last resort. */
async function stopUp(child: ChildProcess, graceMs = 60_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs).unref())]);
  // Whatever of its group is left (an agent that hung): gone. Tasks lead their own sessions and
  // were killed by their agents' --cleanup-on-exit above.
  try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* group already gone */ }
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]!) : NaN;
};

export async function run(args: string[]): Promise<void> {
  const sizes = opt(args, 'sizes', '100,500').split(',').map(Number);
  const reps = Number(opt(args, 'reps', '1'));
  const agents = Number(opt(args, 'agents', '2'));
  const interval = Number(opt(args, 'interval', '10'));
  const containerizer = opt(args, 'containerizer', 'posix');
  const profileDir = opt(args, 'profile', '') || undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  // --checks=off: no health check, to tell the framework's own cost from the checks'.
  const withChecks = opt(args, 'checks', 'on') !== 'off';
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-marathon-'));
  progress(`berth up (${agents} agents, ${containerizer}); health check: ${withChecks ? `COMMAND every ${interval} s` : 'none'}`);
  let c: Awaited<ReturnType<typeof up>> | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    if (c) await stopUp(c.child);
    rmSync(dir, { recursive: true, force: true });
  })());
  // Interrupted: clean up first, then exit (exiting at once would leave berth up writing into a
  // closed pipe mid-shutdown, and its agents and their tasks running).
  const onSignal = (sig: NodeJS.Signals): void => {
    progress(`${sig}: stopping berth up and its agents…`);
    void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Last resort if the bench dies some other way: at least signal berth up's group.
  const onExit = (): void => { if (c && c.child.exitCode === null) { try { process.kill(-c.child.pid!, 'SIGTERM'); } catch { /* gone */ } } };
  process.once('exit', onExit);
  let seq = 0;
  try {
    c = await up(dir, agents, containerizer, profileDir);
    const { master, marathon } = c;
    // Warm-up: one small app through both paths.
    await rawLaunch(master, 10);
    for (const n of sizes) {
      const deploys: number[] = []; const restarts: number[] = []; const raws: number[] = [];
      let timeline: Record<string, number> = {};
      for (let r = 0; r < reps; r++) {
        progress(`N=${n} rep ${r + 1}: raw SDK launch`);
        raws.push(await rawLaunch(master, n));
        progress(`  raw: ${Math.round(raws[raws.length - 1]!)} ms`);
        const id = `/bench/app${seq++}`;
        const running = new Set<string>(); const healthy = new Set<string>();
        const succeeded = new Set<string>();
        const runAt: number[] = []; const healthyAt: number[] = [];
        let t0 = 0;
        const ev = new MarathonEventStream(marathon, ['status_update_event', 'health_status_changed_event', 'deployment_success'], 100).on((type, d) => {
          if (type === 'status_update_event' && d.appId === id) {
            if (d.taskStatus === 'TASK_RUNNING') { if (!running.has(d.taskId)) runAt.push(performance.now() - t0); running.add(d.taskId); } else running.delete(d.taskId);
          }
          if (type === 'health_status_changed_event' && d.appId === id) {
            if (d.alive) { if (!healthy.has(d.taskId)) healthyAt.push(performance.now() - t0); healthy.add(d.taskId); } else healthy.delete(d.taskId);
          }
          if (type === 'deployment_success') succeeded.add(d.id);
        });
        try {
          await ev.ready;
          progress(`N=${n} rep ${r + 1}: marathon deploy`);
          t0 = performance.now();
          await json(`${marathon}/v2/apps`, 'POST', {
            id, cmd: 'sleep 600', cpus: 0.001, mem: 32, instances: n, portDefinitions: [],
            ...(withChecks ? { healthChecks: [{ protocol: 'COMMAND', command: { value: 'true' }, delaySeconds: 0, intervalSeconds: interval, timeoutSeconds: 20, gracePeriodSeconds: 300, maxConsecutiveFailures: 3 }] } : {}),
          });
          const tick = setInterval(() => progress(`  ${running.size}/${n} running, ${healthy.size} healthy`), 5000);
          await waitFor(() => running.size >= n && (!withChecks || healthy.size >= n), 300_000, `${n} running`).finally(() => clearInterval(tick));
          deploys.push(performance.now() - t0);
          timeline = { firstRunningMs: quantile(runAt, 0), halfRunningMs: quantile(runAt, 0.5), allRunningMs: quantile(runAt, 1), allHealthyMs: quantile(healthyAt, 1) };
          progress(`  marathon: ${Math.round(deploys[deploys.length - 1]!)} ms ${JSON.stringify(timeline)}`);
          await waitFor(async () => (await json(`${marathon}/v2/deployments`)).length === 0, 60_000, 'deployment done');
          progress(`N=${n} rep ${r + 1}: rolling restart`);
          const t1 = performance.now();
          const rs = await json(`${marathon}/v2/apps${id}/restart`, 'POST');
          const tick2 = setInterval(() => progress(`  restart: ${running.size} running, ${healthy.size} healthy`), 5000);
          await waitFor(() => succeeded.has(rs.deploymentId), 600_000, 'restart done').finally(() => clearInterval(tick2));
          restarts.push(performance.now() - t1);
          progress(`  restart: ${Math.round(restarts[restarts.length - 1]!)} ms`);
        } finally {
          ev.close();
        }
        await json(`${marathon}/v2/apps${id}?force=true`, 'DELETE');
        await waitFor(async () => (await tasksRunning(master)) === 0, 120_000, 'app gone');
      }
      const d = median(deploys); const raw = median(raws); const rs = median(restarts);
      emit({ name: `marathon.deploy.${n}`, value: Math.round(d), unit: 'ms', baseline: Math.round(raw), params: { instances: n, agents, containerizer, healthChecks: withChecks ? `COMMAND true, delay 0, interval ${interval} s` : false, reps, min: Math.round(Math.min(...deploys)), max: Math.round(Math.max(...deploys)), ...timeline, baseline: 'raw SDK launch, same cluster, same run', target: n === 500 ? '≤ 3000 ms' : undefined } });
      emit({ name: `marathon.restart.${n}`, value: Math.round(rs), unit: 'ms', baseline: Math.round(d), params: { instances: n, agents, reps, min: Math.round(Math.min(...restarts)), max: Math.round(Math.max(...restarts)), baseline: 'marathon.deploy of the same run', target: '≤ 2× baseline', upgradeStrategy: 'minimumHealthCapacity 1, maximumOverCapacity 1' } });
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
}
