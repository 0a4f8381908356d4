/**
 * `npm run bench -- batch`: how fast the batch framework runs arrays of short tasks.
 *
 * Figures (each with its baseline from the same run):
 *  - `batch.array.wall` / `batch.array.rate`: a 1,000-task array of `true` (0.1 cpus, 32 MiB each)
 *    submitted to the batch API of `berth up` (master, 2 agents, the batch framework: real
 *    processes), timed from the POST until the job is SUCCEEDED. Baseline: Node spawning
 *    `/bin/sh -c true` 1,000 times itself at the same concurrency as the cluster's slots (raw
 *    process launch on this machine, right now). Target: ≤ 3 s and ≥ 10× Slurm.
 *  - `batch.slurm.wall` / `batch.slurm.rate`: when Debian's slurm-wlm is installed (`--slurm-install`
 *    installs it), the same array through a single-node slurmctld + slurmd on loopback with
 *    `--oversubscribe`, timed from sbatch until the queue is empty. Baseline: Berth's figure.
 *  - `batch.sim.rate`: 100,000 tiny tasks through the framework (file store included) and a real
 *    master with simulated agents in one process (no task processes): the framework's own
 *    ceiling. Baseline: a minimal first-fit SDK framework (no store, no queues) on the same cluster.
 *
 * Flags (`--name=value`): --tasks=1000 --sim-tasks=100000 --rows=array,slurm,sim --slurm-install
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Master } from '../master/master.js';
import { MemoryRegistry } from '../master/registry/types.js';
import { silentLogger } from '../proto/log.js';
import { connect, FileStore, MemoryNetwork, OfferPool, task, type TaskSpec } from '../frameworks/sdk/index.js';
import { startBatch } from '../frameworks/batch/service.js';
import { SimAgent } from '../sim/agent.js';
import { baselineSpawn } from './launch.js';
import { emit, progress } from './report.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cli/main.js');

function flag(args: string[], name: string, dflt: string): string {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : args.includes(`--${name}`) ? 'true' : dflt;
}

// ------------------------------------------------------------------ berth up + the batch API

interface Up { child: ChildProcess; master: string; api: string; dir: string; stop(): Promise<void> }

async function startUp(): Promise<Up> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-batch-'));
  const child = spawn(process.execPath, [cli, 'up', '--port', '0', '--work-dir', dir, '--containerizer', 'posix'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn' }, detached: false,
  });
  let err = '';
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); });
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [master, api] = await new Promise<[string, string]>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`berth up did not come up:\n${err}`)), 60_000);
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /berth is up: master (http:\/\/\S+)/.exec(err);
        const b = /batch API at (http:\/\/\S+)/.exec(err);
        if (m && b) { clearTimeout(t); resolve([m[1]!, b[1]!]); }
      });
      child.once('exit', (code) => { clearTimeout(t); reject(new Error(`berth up exited ${code}:\n${err}`)); });
    });
    for (let i = 0; i < 300; i++) {
      const s = (await (await fetch(`${master}/state`)).json()) as { slaves: unknown[] };
      if (s.slaves.length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return { child, master, api, dir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function submitAndWait(api: string, spec: Record<string, unknown>): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${api}/v1/jobs`, { method: 'POST', body: JSON.stringify(spec), headers: { 'content-type': 'application/json' } });
  if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
  for (;;) {
    const j = (await (await fetch(`${api}/v1/jobs/${spec.id as string}?limit=1`)).json()) as { state: string; counts: Record<string, number> };
    if (j.state === 'SUCCEEDED') return performance.now() - t0;
    if (j.state === 'FAILED' || j.state === 'CANCELLED') throw new Error(`job ${spec.id as string} ${j.state}: ${JSON.stringify(j.counts)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function clusterSlots(master: string, cpus: number): Promise<number> {
  const s = (await (await fetch(`${master}/state`)).json()) as { slaves: { resources: { cpus: number } }[] };
  return s.slaves.reduce((n, a) => n + Math.floor(a.resources.cpus / cpus + 1e-9), 0);
}

async function arrayRow(n: number): Promise<{ wall: number; slots: number }> {
  progress(`batch: berth up + a ${n}-task array of true`);
  const up = await startUp();
  try {
    const slots = await clusterSlots(up.master, 0.1);
    // Warm-up: a small array (first launches pay for page cache, JIT, shim start).
    await submitAndWait(up.api, { id: 'warmup', cmd: 'true', cpus: 0.1, mem: 32, array: '0-49' });
    const base = await baselineSpawn(n, 'true', slots);
    const wall = await submitAndWait(up.api, { id: 'bench', cmd: 'true', cpus: 0.1, mem: 32, array: `0-${n - 1}` });
    const baseRate = (n / base.elapsedMs) * 1000;
    const params = { tasks: n, cpus: 0.1, mem: 32, slots, topology: 'berth up: master + 2 posix agents + batch framework, real processes', baseline_what: `node spawn /bin/sh -c true x${n}, concurrency ${slots}`, target_ms: 3000 };
    emit({ name: 'batch.array.wall', value: Math.round(wall), unit: 'ms', baseline: Math.round(base.elapsedMs), params });
    emit({ name: 'batch.array.rate', value: (n / wall) * 1000, unit: 'tasks/s', baseline: baseRate, params });
    return { wall, slots };
  } finally {
    await up.stop();
  }
}

// ------------------------------------------------------------------ Slurm

/** A single-node slurmctld + slurmd on loopback, the same array with --oversubscribe; null when Slurm is missing. */
async function slurmRow(n: number, install: boolean, slots: number): Promise<{ ms: number; failed: number; perCpu: number } | undefined> {
  const have = (c: string): boolean => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0;
  if (!have('slurmctld') && install) {
    progress('installing slurm-wlm (apt-get)');
    spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm >/dev/null'], { stdio: 'inherit' });
  }
  if (!have('slurmctld') || !have('slurmd') || !have('sbatch') || !have('munged')) {
    progress('slurm: skipped (slurm-wlm not installed; --slurm-install installs it)');
    return undefined;
  }
  if (process.getuid?.() !== 0) { progress('slurm: skipped (needs root to run slurmd)'); return undefined; }
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-slurm-'));
  chmodSync(dir, 0o755);
  const procs: ChildProcess[] = [];
  const node = hostname().split('.')[0]!;
  const cpus = Math.max(1, Number(execFileSync('nproc').toString().trim()));
  // As many tasks at once as Berth's cluster has slots, so both run the same concurrency.
  const slotsPerCpu = Math.max(1, Math.round(slots / cpus));
  try {
    // munge: a key of our own and a socket in the temp dir, so nothing system-wide is touched.
    const key = path.join(dir, 'munge.key');
    writeFileSync(key, Buffer.alloc(1024, 7));
    chmodSync(key, 0o400);
    const sock = path.join(dir, 'munge.sock');
    spawnSync('munged', ['--force', `--key-file=${key}`, `--socket=${sock}`, `--pid-file=${dir}/munged.pid`, `--log-file=${dir}/munged.log`, `--seed-file=${dir}/munge.seed`], { stdio: 'ignore' });
    const port = 20000 + Math.floor(Math.random() * 20000);
    for (const d of ['state', 'spool']) mkdirSync(path.join(dir, d));
    const conf = path.join(dir, 'slurm.conf');
    writeFileSync(conf, [
      'ClusterName=berthbench', `SlurmctldHost=${node}(127.0.0.1)`, 'AuthType=auth/munge', `AuthInfo=socket=${sock}`,
      `SlurmctldPort=${port}`, `SlurmdPort=${port + 1}`, `StateSaveLocation=${dir}/state`, `SlurmdSpoolDir=${dir}/spool`,
      `SlurmctldPidFile=${dir}/slurmctld.pid`, `SlurmdPidFile=${dir}/slurmd.pid`, 'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none',
      'SchedulerType=sched/backfill', 'SelectType=select/cons_tres', 'SelectTypeParameters=CR_Core', 'ReturnToService=2', 'MaxArraySize=100001', 'MaxJobCount=200000',
      'SlurmUser=root', 'SlurmdUser=root', 'JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none', 'MpiDefault=none',
      `NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} State=UNKNOWN`, `PartitionName=bench Nodes=${node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:${slotsPerCpu}`,
    ].join('\n') + '\n');
    const env = { ...process.env, SLURM_CONF: conf };
    procs.push(spawn('slurmctld', ['-D', '-i', '-f', conf], { env, stdio: 'ignore' }));
    procs.push(spawn('slurmd', ['-D', '-f', conf], { env, stdio: 'ignore' }));
    const ready = (): boolean => /idle/.test(spawnSync('sinfo', ['-h', '-o', '%t'], { env }).stdout?.toString() ?? '');
    for (let i = 0; i < 150 && !ready(); i++) await new Promise((r) => setTimeout(r, 200));
    if (!ready()) { progress('slurm: skipped (the node did not come up idle)'); return undefined; }
    const run = async (count: number): Promise<{ ms: number; failed: number }> => {
      const t0 = performance.now();
      const r = spawnSync('sbatch', ['--parsable', `--array=0-${count - 1}`, '--oversubscribe', '-o', '/dev/null', '-e', '/dev/null', '--wrap=true'], { env });
      if (r.status !== 0) throw new Error(`sbatch: ${r.stderr.toString()}`);
      const id = r.stdout.toString().trim();
      // Until nothing of the array can still run: tasks whose launch failed are requeued *held*
      // by Slurm and would wait forever; they are counted as failed, not waited for.
      for (;;) {
        const lines = (spawnSync('squeue', ['-h', '-j', id, '-o', '%T %r'], { env }).stdout?.toString() ?? '').trim().split('\n').filter(Boolean);
        const live = lines.filter((l) => !/held/i.test(l));
        if (live.length === 0) return { ms: performance.now() - t0, failed: lines.length };
        if (performance.now() - t0 > 600_000) throw new Error('slurm array not done after 10 minutes');
        await new Promise((res) => setTimeout(res, 50));
      }
    };
    progress(`slurm: warm-up, then a ${n}-task array (${slotsPerCpu} per cpu, ${slotsPerCpu * cpus} at once)`);
    await run(20);
    const res = await run(n);
    spawnSync('scancel', [`--name=wrap`], { env });
    return { ...res, perCpu: slotsPerCpu };
  } catch (e) {
    progress(`slurm: skipped (${(e as Error).message.split('\n')[0]})`);
    return undefined;
  } finally {
    // Stop the daemons and wait for them to exit before removing their state directory.
    await Promise.all(procs.map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) { resolve(); return; }
      const t = setTimeout(() => p.kill('SIGKILL'), 5_000);
      p.once('exit', () => { clearTimeout(t); resolve(); });
      p.kill('SIGTERM');
    })));
    const pid = path.join(dir, 'munged.pid');
    if (existsSync(pid)) spawnSync('sh', ['-c', `kill $(cat ${pid})`]);
    try { rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }); } catch (e) { progress(`slurm: could not remove ${dir}: ${(e as Error).message}`); }
  }
}

// ------------------------------------------------------------------ simulated agents

async function simCluster(agents: number): Promise<{ net: MemoryNetwork; stop(): Promise<void> }> {
  const net = new MemoryNetwork();
  const master = new Master({ registry: new MemoryRegistry(), log: silentLogger });
  master.listen(net);
  await master.start();
  const list: SimAgent[] = [];
  for (let i = 0; i < agents; i++) list.push(await SimAgent.start({ dialer: net, hostname: `sim-${i}`, resources: 'cpus:64;mem:262144;disk:100000', resendMs: 5_000 }));
  return { net, stop: async () => { for (const a of list) a.stop(); await master.stop(); } };
}

/** The minimal framework: first fit into each offer batch, auto-acknowledged updates, nothing stored. */
async function minimalRun(net: MemoryNetwork, n: number): Promise<number> {
  const fw = await connect({ master: net, framework: { name: 'minimal' }, log: silentLogger });
  let next = 0; let done = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    fw.on('offers', async (offers) => {
      const pool = new OfferPool(offers);
      while (next < n) {
        const spec: TaskSpec = task({ id: `m-${next}`, cmd: 'true', cpus: 0.1, mem: 32 });
        if (!pool.place(spec)) break;
        next++;
      }
      await fw.acceptPool(pool, { refuseSeconds: 1 });
    });
    fw.on('update', (st) => { if (st.state === 'TASK_FINISHED' && ++done === n) resolve(); });
  });
  const ms = performance.now() - t0;
  await fw.teardown().catch(() => fw.close());
  return ms;
}

async function simRow(n: number): Promise<void> {
  const agents = 20;
  progress(`batch: ${n} tiny tasks on ${agents} simulated agents (framework + master in one process)`);
  let c = await simCluster(agents);
  const baseMs = await minimalRun(c.net, n);
  await c.stop();
  c = await simCluster(agents);
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-batch-sim-'));
  const store = await FileStore.open(dir);
  try {
    const b = await startBatch({ master: c.net, store, noApi: true, log: silentLogger });
    const [job] = await b.engine.submit([{ id: 'sim', cmd: 'true', cpus: 0.1, mem: 32, array: `0-${n - 1}` }]);
    const t0 = performance.now();
    while (!job!.terminal) await new Promise((r) => setTimeout(r, 5));
    const ms = performance.now() - t0;
    if (job!.state !== 'SUCCEEDED') throw new Error(`sim job ${job!.state}`);
    emit({
      name: 'batch.sim.rate', value: (n / ms) * 1000, unit: 'tasks/s', baseline: (n / baseMs) * 1000,
      params: { tasks: n, agents, slots: agents * 640, ms: Math.round(ms), baseline_ms: Math.round(baseMs), store: 'file (fsync)', accepts: b.engine.stats.accepts, rounds: b.engine.stats.rounds, baseline_what: 'minimal SDK framework (first fit, no store) on the same simulated cluster' },
    });
    await b.stop();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    await c.stop();
  }
}

export async function run(args: string[]): Promise<void> {
  const n = Number(flag(args, 'tasks', '1000'));
  const simN = Number(flag(args, 'sim-tasks', '100000'));
  const rows = flag(args, 'rows', 'array,slurm,sim').split(',');
  let berthMs: number | undefined;
  let slots = 20;
  if (rows.includes('array')) ({ wall: berthMs, slots } = await arrayRow(n));
  if (rows.includes('slurm')) {
    const r = await slurmRow(n, flag(args, 'slurm-install', 'false') === 'true', slots);
    const ms = r?.ms;
    const params = { tasks: n, failed_launches: r?.failed, per_cpu: r?.perCpu, what: 'single-node slurmctld + slurmd on loopback, partition OverSubscribe=FORCE:k (the same concurrency as Berth has slots), sbatch --array --oversubscribe --wrap=true, sbatch → queue empty', baseline_what: 'Berth batch.array.wall of this run' };
    if (ms !== undefined) {
      emit({ name: 'batch.slurm.wall', value: Math.round(ms), unit: 'ms', baseline: berthMs === undefined ? null : Math.round(berthMs), params });
      emit({ name: 'batch.slurm.rate', value: (n / ms) * 1000, unit: 'tasks/s', baseline: berthMs === undefined ? null : (n / berthMs) * 1000, params });
    }
  }
  if (rows.includes('sim')) await simRow(simN);
}
