/**
 * A real cluster for the batch end-to-end suites: a master (in this process, loopback, port 0,
 * file registry in a temp dir), N `berth agent` processes (posix containerizer: the tests need
 * real processes and sandboxes, not cgroups, and must not share the linux agents' cgroup root
 * with other suites), and the batch framework — in this process (`startBatch`) or as a
 * `berth batch` process (`spawnBatch`, for crash tests). `stop()` removes everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../../proto/clock.js';
import { silentLogger } from '../../../proto/log.js';
import { startMaster, type RunningMaster } from '../../../master/main.js';
import { startBatch, type RunningBatch } from '../../../frameworks/batch/service.js';
import type { QueueConfig } from '../../../frameworks/batch/queues.js';

export const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../cli/main.js');

export const until = async (cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

export interface BatchCluster {
  dir: string;
  master: RunningMaster;
  hostPort: string;
  agents: ChildProcess[];
  batch?: RunningBatch;
  /** The batch API base URL. */
  api: string;
  stop(): Promise<void>;
}

export interface ClusterOpts {
  /** Mesos text resources per agent. */
  agents: string[];
  /** Run the framework in this process (default) or not at all (the test spawns it). */
  inProcess?: boolean;
  queues?: QueueConfig[];
  clock?: Clock;
  gangHoldMs?: number;
}

function killGroup(c: ChildProcess, sig: NodeJS.Signals): void {
  try { if (c.pid) process.kill(c.pid, sig); } catch { /* gone */ }
}

export async function exited(c: ChildProcess, sig: NodeJS.Signals = 'SIGTERM', ms = 10_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const done = new Promise<void>((r) => c.once('exit', () => r()));
  killGroup(c, sig);
  const t = setTimeout(() => killGroup(c, 'SIGKILL'), ms);
  await done;
  clearTimeout(t);
}

export async function startBatchCluster(opts: ClusterOpts): Promise<BatchCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-batch-'));
  const agents: ChildProcess[] = [];
  let master: RunningMaster | undefined;
  let batch: RunningBatch | undefined;
  const stop = async (): Promise<void> => {
    await batch?.stop().catch(() => undefined);
    // --cleanup-on-exit: an agent stopped by SIGTERM destroys its containers first.
    await Promise.all(agents.map((a) => exited(a)));
    await master?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    master = await startMaster({ workDir: path.join(dir, 'master'), port: 0, host: '127.0.0.1', log: silentLogger, allocationIntervalMs: 200 });
    const hostPort = `127.0.0.1:${master.port}`;
    opts.agents.forEach((res, i) => {
      const a = spawn(process.execPath, [cli, 'agent', '--master', hostPort, '--work-dir', path.join(dir, `agent-${i}`), '--port', '0',
        '--resources', res, '--containerizer', 'posix', '--cleanup-on-exit', '--attributes', `agent:${i}`],
      { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, BERTH_LOG_LEVEL: 'silent' } });
      agents.push(a);
    });
    await until(async () => ((await (await fetch(`http://${hostPort}/state`)).json()) as { slaves: unknown[] }).slaves.length === opts.agents.length, 30_000, 'agents to register');
    let api = '';
    if (opts.inProcess !== false) {
      batch = await startBatch({
        master: `berth://${hostPort}`, workDir: path.join(dir, 'batch'), port: 0, log: silentLogger,
        ...(opts.queues ? { queues: opts.queues } : {}), ...(opts.clock ? { clock: opts.clock } : {}), gangHoldMs: opts.gangHoldMs ?? 2_000,
      });
      api = batch.url!;
    }
    return { dir, master, hostPort, agents, batch, api, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** `berth batch` as its own process on `workDir`; resolves with the process and its API URL. */
export async function spawnBatch(hostPort: string, workDir: string): Promise<{ child: ChildProcess; api: string }> {
  const child = spawn(process.execPath, [cli, 'batch', '--master', `berth://${hostPort}`, '--port', '0', '--work-dir', workDir],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn' } });
  let err = '';
  const api = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`berth batch did not start:\n${err}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /batch API at (http:\/\/\S+)/.exec(err);
      if (m) { clearTimeout(t); resolve(m[1]!); }
    });
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`berth batch exited ${code}:\n${err}`)); });
  });
  return { child, api };
}

/** JSON over the batch API; throws with the body on an unexpected status. */
export async function call<T = Record<string, unknown>>(api: string, method: string, p: string, body?: unknown, expect = [200, 201]): Promise<{ status: number; body: T }> {
  const res = await fetch(api + p, {
    method, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': typeof body === 'string' ? 'application/yaml' : 'application/json' } } : {}),
  });
  const text = await res.text();
  const parsed = (text ? JSON.parse(text) : {}) as T;
  if (!expect.includes(res.status)) throw new Error(`${method} ${p} → ${res.status}: ${text}`);
  return { status: res.status, body: parsed };
}

export interface JobView {
  id: string; state: string; reason?: string; counts: Record<string, number>; waitingFor?: string; startedAt?: number; finishedAt?: number;
  indices: { index: number; state: string; attempts: { n: number; taskId: string; launchedAt: number; startedAt?: number; endedAt?: number; state?: string; exitCode?: number; free?: boolean }[] }[];
}

export async function job(api: string, id: string): Promise<JobView> {
  return (await call<JobView>(api, 'GET', `/v1/jobs/${id}?limit=10000`)).body;
}

export async function waitJob(api: string, id: string, ms: number, states = ['SUCCEEDED', 'FAILED', 'CANCELLED']): Promise<JobView> {
  let last: JobView | undefined;
  await until(async () => { last = await job(api, id); return states.includes(last.state); }, ms, `job ${id} to reach ${states.join('/')} (last: ${last ? `${last.state} ${JSON.stringify(last.counts)}` : '-'})`);
  return last!;
}

/** Contents of every task sandbox `stdout` under `root`, keyed by sandbox path. */
export function sandboxStdouts(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = path.join(d, e);
      let st;
      try { st = statSync(p); } catch { continue; }
      if (st.isDirectory()) walk(p);
      else if (e === 'stdout' && p.includes(`${path.sep}runs${path.sep}`)) out.set(p, readFileSync(p, 'utf8'));
    }
  };
  walk(root);
  return out;
}
