/**
 * `npm run bench -- failover [--agents 1000,10000] [--tasks 10] [--writes 20000]`
 *
 * Master failover on NATS, with real processes: a 3-node NATS cluster (R3
 * buckets), two `berth master --nats` processes, and N simulated agents (this
 * process, the real agent protocol over the NATS transport, one session each).
 * The leader is SIGKILLed; figures:
 *   failover.new_leader_ms        SIGKILL → the standby holds the lease (baseline: the lease ttl, its floor)
 *   failover.reregistered_ms      SIGKILL → every agent re-registered with its T tasks
 *                                 (baseline: the same agents' first registration, same run)
 *   registry.kv_r3.writes_per_s   registry appends/s on JetStream KV R3 (baseline: file registry, same run)
 *   registry.kv_r3.p99_ms         p99 append latency (baseline: file registry p99)
 * Simulated agents report their tasks at re-registration (tasks of a framework
 * the registry knows); they were not launched through offers, which this bench
 * does not measure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from 'nats';
import { NatsCluster } from '../cli/nats-server.js';
import { FileRegistry } from '../master/registry/file.js';
import { KvRegistry } from '../master/registry/kv.js';
import type { Registry } from '../master/registry/types.js';
import { NatsLeaderDetector } from '../proto/transport/nats-detector.js';
import { connectNats, NatsDialer } from '../proto/transport/nats.js';
import type { TaskInfo } from '../proto/types.js';
import { connect } from '../frameworks/sdk/index.js';
import { SimAgent } from '../sim/agent.js';
import { emit, percentile, progress } from './report.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cli/main.js');
const LEASE_TTL_MS = 3000;

function arg(args: string[], name: string, def: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
}

/** Why dials failed (message → count), printed after each run. */
const dialErrors = new Map<string, number>();

/**
 * One agent of the bench: the simulation kit's SimAgent (registers, answers pings, re-registers
 * with its tasks) in a loop that dials again until registered, and starts over when a registered
 * session closes (the leader changed).
 */
class FailoverAgent {
  readonly sim: SimAgent;
  registeredAt = 0;
  dials = 0;
  private stopped = false;
  constructor(dialer: NatsDialer, readonly n: number, private readonly tasks: TaskInfo[], private readonly frameworkId: () => string) {
    this.sim = new SimAgent({
      dialer, hostname: `sim-${n}`, resources: 'cpus:16;mem:65536', resendMs: 0,
      onSessionClosed: () => { if (!this.stopped) setTimeout(() => { void this.connect(); }, Math.random() * 50); },
    });
  }

  async connect(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      this.dials++;
      try {
        const fid = this.frameworkId();
        await this.sim.connect(this.sim.id ? { tasks: this.tasks.map((task) => ({ framework_id: fid, task: { ...task, agent_id: { value: this.sim.id } }, state: 'TASK_RUNNING' as const })) } : undefined);
        this.registeredAt = performance.now();
        return;
      } catch (e) {
        const why = String((e as Error).message).replace(/[0-9a-f]{8,}|\d{4,}-\S+/gi, '…').slice(0, 90);
        dialErrors.set(why, (dialErrors.get(why) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
      }
    }
  }
  stop(): void { this.stopped = true; this.sim.stop(); }
}

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => { while (i < items.length) await fn(items[i++]!); }));
}

/** Every master this bench started, killed if the bench itself is interrupted. */
const children = new Set<ChildProcess>();
let running: NatsCluster | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    for (const n of running?.nodes ?? []) n.proc?.kill('SIGKILL');
    process.exit(130);
  });
}

function startMaster(natsUrls: string[], tag: string): { proc: ChildProcess; ready: Promise<string> } {
  // BERTH_BENCH_MASTER_PROF=DIR: each master writes a V8 CPU profile there when it exits (the surviving one is stopped with SIGTERM).
  const prof = process.env.BERTH_BENCH_MASTER_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BERTH_BENCH_MASTER_PROF] : [];
  const proc = spawn(process.execPath, [...prof, CLI, 'master', ...natsUrls.flatMap((u) => ['--nats', u]), '--port', '0', '--replicas', '3', '--lease-ttl', String(LEASE_TTL_MS), '--agent-reregister-timeout', '600000'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: process.env.BERTH_BENCH_MASTER_LOG ?? 'error' },
  });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  let out = '';
  const ready = new Promise<string>((resolve, reject) => {
    proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); if (process.env.BERTH_BENCH_MASTER_LOG) process.stderr.write(`${tag}: ${d.toString()}`); const m = /berth master at (\S+)/.exec(out); if (m) resolve(m[1]!); if (out.length > 100_000) out = out.slice(-50_000); });
    proc.once('exit', (c) => reject(new Error(`${tag} exited ${c}: ${out.slice(-2000)}`)));
  });
  return { proc, ready };
}

async function failoverRun(nats: NatsCluster, agents: number, tasksPer: number): Promise<void> {
  const prefix = 'berth';
  const m1 = startMaster(nats.urls, 'master1');
  await m1.ready;
  const nc = await connectNats({ servers: nats.urls, name: 'bench-agents' });
  const detector = await NatsLeaderDetector.start(nc, prefix);
  const first = await detector.waitForLeader(60_000);
  const m2 = startMaster(nats.urls, 'master2');
  await m2.ready;
  const dialer = new NatsDialer(nc, { prefix, detector, heartbeatMs: 30_000, leaderWaitMs: 60_000 });
  // A framework the registry knows, so the tasks the agents report belong to someone.
  const fw = await connect({ master: dialer, framework: { name: 'bench', failover_timeout: 3600 } });
  const fid = fw.frameworkId;
  await fw.close();
  const sims = Array.from({ length: agents }, (_, n) => new FailoverAgent(dialer, n,
    Array.from({ length: tasksPer }, (_, t) => ({
      name: `t${t}`, task_id: { value: `sim-${n}-${t}` }, agent_id: { value: '' },
      resources: [{ name: 'cpus', type: 'SCALAR' as const, scalar: { value: 0.1 } }, { name: 'mem', type: 'SCALAR' as const, scalar: { value: 32 } }],
    })), () => fid));
  progress(`${agents} agents registering with ${first.master_id}`);
  const t0 = performance.now();
  await pool(sims, 500, (s) => s.connect());
  const coldMs = performance.now() - t0;
  progress(`registered in ${Math.round(coldMs)} ms; SIGKILL the leader`);
  let newLeaderAt = 0;
  detector.onChange((l) => { if (l && l.master_id !== first.master_id && !newLeaderAt) newLeaderAt = performance.now(); });
  const killedAt = performance.now();
  const before = new Map(sims.map((s) => [s, s.registeredAt]));
  m1.proc.kill('SIGKILL');
  // Every agent re-registers once its session closes on the leader change.
  const deadline = killedAt + 120_000;
  while (sims.some((s) => s.registeredAt === before.get(s)) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const missing = sims.filter((s) => s.registeredAt === before.get(s)).length;
  const allBackMs = Math.max(...sims.map((s) => s.registeredAt)) - killedAt;
  const back = sims.map((s) => s.registeredAt - killedAt).sort((a, b) => a - b);
  for (const [why, n] of dialErrors) progress(`dial failed ${n}×: ${why}`);
  dialErrors.clear();
  progress(`re-registered after SIGKILL: p10 ${Math.round(percentile(back, 10))} p50 ${Math.round(percentile(back, 50))} p90 ${Math.round(percentile(back, 90))} max ${Math.round(back[back.length - 1]!)} ms; redials ${sims.reduce((a, s) => a + s.dials, 0)}`);
  const params = { agents, tasks: agents * tasksPer, lease_ttl_ms: LEASE_TTL_MS, nats_nodes: 3, replicas: 3, missing, target_ms: agents >= 10_000 ? 2000 : undefined };
  emit({ name: 'failover.new_leader_ms', value: Math.round(newLeaderAt - killedAt), unit: 'ms', baseline: LEASE_TTL_MS, params });
  emit({ name: 'failover.reregistered_ms', value: Math.round(allBackMs), unit: 'ms', baseline: Math.round(coldMs), params: { ...params, after_new_leader_ms: Math.round(allBackMs - (newLeaderAt - killedAt)) } });
  for (const s of sims) s.stop();
  await detector.close();
  await nc.close();
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => m2.proc.kill('SIGKILL'), 10_000);
    m2.proc.once('exit', () => { clearTimeout(t); resolve(); });
    m2.proc.kill('SIGTERM');
  });
}

async function registryRun(nats: NatsCluster, writes: number): Promise<void> {
  const measure = async (r: Registry): Promise<{ rate: number; p99: number }> => {
    await r.load();
    const lat: number[] = [];
    const t0 = performance.now();
    // Bursts as a master sees them (agents registering together), 200 in flight at a time.
    for (let i = 0; i < writes; i += 200) {
      await Promise.all(Array.from({ length: Math.min(200, writes - i) }, async (_, j) => {
        const s = performance.now();
        await r.append({ type: 'agent_admitted', agent_id: `a${i + j}`, info: { hostname: `h${i + j}` }, at: 0 });
        lat.push(performance.now() - s);
      }));
    }
    const ms = performance.now() - t0;
    await r.close();
    return { rate: Math.round((writes / ms) * 1000), p99: Number(percentile(lat, 99).toFixed(2)) };
  };
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-reg-'));
  let nc: NatsConnection | undefined;
  try {
    const file = await measure(new FileRegistry(dir));
    nc = await connectNats({ servers: nats.urls });
    const kv = await measure(new KvRegistry(nc, { prefix: 'benchreg', replicas: 3 }));
    const params = { writes, in_flight: 200, replicas: 3, nats_nodes: 3 };
    emit({ name: 'registry.kv_r3.writes_per_s', value: kv.rate, unit: 'writes/s', baseline: file.rate, params: { ...params, baseline: 'file registry (fsync, group commit)' } });
    emit({ name: 'registry.kv_r3.p99_ms', value: kv.p99, unit: 'ms', baseline: file.p99, params: { ...params, baseline: 'file registry (fsync, group commit)' } });
  } finally {
    await nc?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(args: string[]): Promise<void> {
  const sizes = arg(args, 'agents', '1000,10000').split(',').map(Number).filter((n) => n > 0);
  const tasksPer = Number(arg(args, 'tasks', '10'));
  const writes = Number(arg(args, 'writes', '20000'));
  for (const agents of sizes) {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-failover-'));
    const nats = await NatsCluster.start({ nodes: 3, dir });
    running = nats;
    try {
      await failoverRun(nats, agents, tasksPer);
      if (agents === sizes[sizes.length - 1]) await registryRun(nats, writes);
    } finally {
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
