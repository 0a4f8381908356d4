/**
 * `npm run bench -- launch`: end-to-end task launch throughput and latency
 * (launch sent → TASK_RUNNING received) for N trivial tasks (`true`), beside a
 * baseline measured in the same run: Node spawning the same command directly
 * (`/bin/sh -c true`, 'spawn' event = process exists), at the same concurrency.
 * Target for posix: rate ≥ 70 % of the baseline rate.
 *
 * The "cluster" is a LaunchDriver: today an Agent driven by an in-process
 * master over MemoryNetwork (so the figure isolates the agent: checkpointing,
 * supervisor spawn, status updates with acks); the real master + SDK can be
 * plugged in as another driver without touching the measurement.
 *
 * Options: --tasks N (500), --concurrency C (50), --reps R (3).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../proto/log.js';
import { MemoryNetwork } from '../proto/transport/memory.js';
import type { Conn } from '../proto/transport/types.js';
import type { AgentToMaster, MasterToAgent, TaskInfo } from '../proto/types.js';
import { Agent } from '../agent/agent.js';
import { PosixContainerizer, type SupervisorEngine } from '../agent/containerizer/posix.js';
import { emit, median, percentile, progress } from './report.js';

export interface LaunchRun {
  /** Per task, ms from launch sent to TASK_RUNNING received. */
  latenciesMs: number[];
  /** ms from the first launch to the last TASK_RUNNING. */
  elapsedMs: number;
}

/** Launches `n` tasks running `command`, at most `concurrency` awaiting RUNNING at once. */
export type LaunchDriver = (n: number, command: string, concurrency: number) => Promise<LaunchRun>;

/** Runs `n` jobs with at most `concurrency` in flight; `start(i, done)` must call done once. */
function pace(n: number, concurrency: number, start: (i: number, done: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    let next = 0; let finished = 0;
    const kick = (): void => {
      while (next < n && next - finished < concurrency) {
        const i = next++;
        let called = false;
        start(i, () => {
          if (called) return;
          called = true;
          finished++;
          if (finished === n) resolve(); else kick();
        });
      }
    };
    if (n === 0) resolve(); else kick();
  });
}

/** The baseline: Node spawning the command itself. */
export async function baselineSpawn(n: number, command: string, concurrency: number): Promise<LaunchRun> {
  const lat: number[] = new Array<number>(n);
  const exits: Promise<void>[] = [];
  const t0 = performance.now();
  await pace(n, concurrency, (i, done) => {
    const s = performance.now();
    const child = spawn('/bin/sh', ['-c', command], { stdio: 'ignore', detached: true });
    exits.push(new Promise((r) => child.once('exit', () => r())));
    child.once('spawn', () => { lat[i] = performance.now() - s; done(); });
    child.once('error', () => { lat[i] = NaN; done(); });
  });
  const elapsedMs = performance.now() - t0;
  await Promise.all(exits);
  return { latenciesMs: lat, elapsedMs };
}

/** An Agent (posix) on a temp work dir, driven by a minimal in-process master that acks everything. */
export function memoryAgentDriver(engine: SupervisorEngine = 'launcher'): LaunchDriver {
  return async (n, command, concurrency) => {
    const workDir = mkdtempSync(join(tmpdir(), 'berth-bench-launch-'));
    const net = new MemoryNetwork();
    let conn: Conn<AgentToMaster, MasterToAgent> | undefined;
    const sentAt = new Array<number>(n);
    const lat = new Array<number>(n);
    const waiting = new Map<string, () => void>();
    let terminal = 0;
    let allTerminal: () => void = () => undefined;
    const terminated = new Promise<void>((r) => { allTerminal = r; });
    net.onAgent((c) => {
      conn = c;
      c.onMessage((m) => {
        if (m.register || m.reregister) c.send({ version: 1, registered: { agent_id: { value: 'bench-agent' }, ping_interval_seconds: 60 } });
        const u = m.status_update;
        if (!u) return;
        c.send({ version: 1, ack: { framework_id: u.framework_id, task_id: u.status.task_id, uuid: u.status.uuid! } });
        const tid = u.status.task_id.value;
        if (u.status.state === 'TASK_RUNNING') {
          const i = Number(tid.slice(1));
          lat[i] = performance.now() - sentAt[i]!;
          waiting.get(tid)?.();
        } else if (u.status.state !== 'TASK_STARTING') {
          // A task that fails to launch never reports RUNNING: release its slot too.
          waiting.get(tid)?.();
          if (++terminal === n) allTerminal();
        }
      });
    });
    const agent = new Agent({
      dialer: net, workDir, httpPort: 0, log: silentLogger,
      containerizer: new PosixContainerizer({ log: silentLogger, engine }),
      detectedHost: { cpus: 64, memBytes: 256 * 2 ** 30, diskFreeBytes: 1000 * 2 ** 30, gpus: 0 },
    });
    await agent.start();
    while (agent.state !== 'running') await new Promise((r) => setTimeout(r, 1));
    const framework = { user: 'bench', name: 'bench', id: { value: 'bench-fw' } };
    const t0 = performance.now();
    await pace(n, concurrency, (i, done) => {
      const tid = `t${i}`;
      const task: TaskInfo = {
        name: tid, task_id: { value: tid }, agent_id: { value: 'bench-agent' },
        resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 0.01 } }, { name: 'mem', type: 'SCALAR', scalar: { value: 8 } }],
        command: { shell: true, value: command },
      };
      waiting.set(tid, () => { waiting.delete(tid); done(); });
      sentAt[i] = performance.now();
      conn!.send({ version: 1, launch: { framework, task } });
    });
    const elapsedMs = performance.now() - t0;
    await terminated;
    await agent.stop();
    rmSync(workDir, { recursive: true, force: true });
    return { latenciesMs: lat.filter((x) => Number.isFinite(x)), elapsedMs };
  };
}

function flag(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

/**
 * Default: both posix supervisor engines against the same baseline — 'launcher' (the default
 * engine: one long-lived shell starts supervisors) and 'spawn' (the agent forks each supervisor
 * itself), so the supervisor choice is measured, not assumed. `--engine launcher|spawn` runs one.
 * A caller with another cluster (real master + SDK) passes its own driver and label.
 */
export async function run(args: string[], driver?: LaunchDriver, label = 'posix'): Promise<void> {
  const n = flag(args, 'tasks', 500);
  const c = flag(args, 'concurrency', 50);
  const reps = flag(args, 'reps', 3);
  const ei = args.indexOf('--engine');
  const engines: SupervisorEngine[] = ei >= 0 ? [args[ei + 1] as SupervisorEngine] : ['launcher', 'spawn'];
  const rows: { label: string; driver: LaunchDriver }[] = driver
    ? [{ label, driver }]
    : engines.map((e) => ({ label: e === 'launcher' ? 'posix' : `posix.${e}`, driver: memoryAgentDriver(e) }));
  const command = 'true';
  progress('launch: warm-up');
  await baselineSpawn(50, command, c);
  for (const r of rows) await r.driver(50, command, c);
  const base: LaunchRun[] = [];
  const runs = new Map<string, LaunchRun[]>(rows.map((r) => [r.label, []]));
  for (let rep = 0; rep < reps; rep++) {
    progress(`launch: rep ${rep + 1}/${reps}: ${n} tasks, concurrency ${c}`);
    // Interleaved so every row and the baseline see the same machine state.
    base.push(await baselineSpawn(n, command, c));
    for (const r of rows) runs.get(r.label)!.push(await r.driver(n, command, c));
  }
  const rate = (x: LaunchRun): number => (x.latenciesMs.length / x.elapsedMs) * 1000;
  const baseRates = base.map(rate);
  const allBase = base.flatMap((x) => x.latenciesMs);
  for (const r of rows) {
    const rs = runs.get(r.label)!;
    const rates = rs.map(rate);
    const all = rs.flatMap((x) => x.latenciesMs);
    const params = { tasks: n, concurrency: c, reps, command, containerizer: r.label };
    emit({
      name: `launch.${r.label}.rate`, value: median(rates), unit: 'tasks/s', baseline: median(baseRates),
      params: { ...params, min: Math.min(...rates), max: Math.max(...rates), baseline_min: Math.min(...baseRates), baseline_max: Math.max(...baseRates), target_ratio: 0.7, baseline_what: 'node spawn /bin/sh -c true' },
    });
    emit({ name: `launch.${r.label}.latency.p50`, value: percentile(all, 50), unit: 'ms', baseline: percentile(allBase, 50), params });
    emit({ name: `launch.${r.label}.latency.p99`, value: percentile(all, 99), unit: 'ms', baseline: percentile(allBase, 99), params });
  }
}
