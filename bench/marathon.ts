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
 * Options: --sizes=100,500 --reps=1 --agents=2 --containerizer=posix|linux|auto.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, isTerminal, OfferPool, task } from '../frameworks/sdk/index.js';
import { emit, median, progress } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.resolve(here, '../cli/main.js');

function opt(args: string[], name: string, def: string): string {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
}

/** `berth up --port 0` as a child; resolves with the master and Marathon URLs it prints. */
async function up(dir: string, agents: number, containerizer: string): Promise<{ child: ChildProcess; master: string; marathon: string }> {
  const child = spawn(process.execPath, [cli, 'up', '--port', '0', '--agents', String(agents), '--work-dir', dir, '--containerizer', containerizer], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn' },
  });
  let err = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`berth up did not start:\n${err}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
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

/** Minimal SSE reader: calls `on(type, data)` per event until `close()`. */
function events(url: string, on: (type: string, data: any) => void): { ready: Promise<void>; close: () => void } {
  const ctrl = new AbortController();
  const ready = fetch(url, { signal: ctrl.signal }).then((res) => {
    void (async () => {
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let buf = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buf += dec.decode(value, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i); buf = buf.slice(i + 2);
            const type = /^event: (.*)$/m.exec(frame)?.[1];
            const data = /^data: (.*)$/m.exec(frame)?.[1];
            if (type && data) on(type, JSON.parse(data));
          }
        }
      } catch { /* aborted */ }
    })();
  });
  return { ready, close: () => ctrl.abort() };
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

export async function run(args: string[]): Promise<void> {
  const sizes = opt(args, 'sizes', '100,500').split(',').map(Number);
  const reps = Number(opt(args, 'reps', '1'));
  const agents = Number(opt(args, 'agents', '2'));
  const containerizer = opt(args, 'containerizer', 'posix');
  const withChecks = existsSync(path.join(here, '../agent/checks')) || existsSync(path.join(here, '../agent/checks.js'));
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-marathon-'));
  progress(`berth up (${agents} agents, ${containerizer}); health checks on agents: ${withChecks ? 'yes' : 'no (not merged yet)'}`);
  const c = await up(dir, agents, containerizer);
  // However this process ends, berth up is told to stop (it stops its agents and their tasks).
  const stopUp = (): void => { if (c.child.exitCode === null) c.child.kill('SIGTERM'); };
  process.once('exit', stopUp);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { stopUp(); process.exit(130); });
  let seq = 0;
  try {
    // Warm-up: one small app through both paths.
    await rawLaunch(c.master, 10);
    for (const n of sizes) {
      const deploys: number[] = []; const restarts: number[] = []; const raws: number[] = [];
      for (let r = 0; r < reps; r++) {
        progress(`N=${n} rep ${r + 1}: raw SDK launch`);
        raws.push(await rawLaunch(c.master, n));
        progress(`  raw: ${Math.round(raws[raws.length - 1]!)} ms`);
        const id = `/bench/app${seq++}`;
        const running = new Set<string>(); const healthy = new Set<string>();
        const succeeded = new Set<string>();
        const ev = events(`${c.marathon}/v2/events?event_type=status_update_event&event_type=health_status_changed_event&event_type=deployment_success`, (type, d) => {
          if (type === 'status_update_event' && d.appId === id) { if (d.taskStatus === 'TASK_RUNNING') running.add(d.taskId); else running.delete(d.taskId); }
          if (type === 'health_status_changed_event' && d.appId === id) { if (d.alive) healthy.add(d.taskId); else healthy.delete(d.taskId); }
          if (type === 'deployment_success') succeeded.add(d.id);
        });
        await ev.ready;
        progress(`N=${n} rep ${r + 1}: marathon deploy`);
        const t0 = performance.now();
        await json(`${c.marathon}/v2/apps`, 'POST', {
          id, cmd: 'sleep 600', cpus: 0.001, mem: 32, instances: n, portDefinitions: [],
          ...(withChecks ? { healthChecks: [{ protocol: 'COMMAND', command: { value: 'true' }, gracePeriodSeconds: 10, intervalSeconds: 1, delaySeconds: 0, timeoutSeconds: 5 }] } : {}),
        });
        const tick = setInterval(() => progress(`  ${running.size}/${n} running`), 5000);
        await waitFor(() => running.size >= n && (!withChecks || healthy.size >= n), 300_000, `${n} running`).finally(() => clearInterval(tick));
        deploys.push(performance.now() - t0);
        progress(`  marathon: ${Math.round(deploys[deploys.length - 1]!)} ms`);
        await waitFor(async () => (await json(`${c.marathon}/v2/deployments`)).length === 0, 60_000, 'deployment done');
        progress(`N=${n} rep ${r + 1}: rolling restart`);
        const t1 = performance.now();
        const rs = await json(`${c.marathon}/v2/apps${id}/restart`, 'POST');
        await waitFor(() => succeeded.has(rs.deploymentId), 600_000, 'restart done');
        restarts.push(performance.now() - t1);
        ev.close();
        await json(`${c.marathon}/v2/apps${id}?force=true`, 'DELETE');
        await waitFor(async () => (await tasksRunning(c.master)) === 0, 120_000, 'app gone');
      }
      const d = median(deploys); const raw = median(raws); const rs = median(restarts);
      emit({ name: `marathon.deploy.${n}`, value: Math.round(d), unit: 'ms', baseline: Math.round(raw), params: { instances: n, agents, containerizer, healthChecks: withChecks, reps, min: Math.round(Math.min(...deploys)), max: Math.round(Math.max(...deploys)), baseline: 'raw SDK launch, same cluster, same run', target: n === 500 ? '≤ 3000 ms' : undefined } });
      emit({ name: `marathon.restart.${n}`, value: Math.round(rs), unit: 'ms', baseline: Math.round(d), params: { instances: n, agents, reps, min: Math.round(Math.min(...restarts)), max: Math.round(Math.max(...restarts)), baseline: 'marathon.deploy of the same run', target: '≤ 2× baseline', upgradeStrategy: 'minimumHealthCapacity 1, maximumOverCapacity 1' } });
    }
  } finally {
    const exited = new Promise((r) => c.child.once('exit', r));
    c.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (c.child.exitCode === null) c.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
