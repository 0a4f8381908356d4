/**
 * `npm run bench -- launch`: end-to-end task launch rate and latency through the real stack —
 * a Master process (`startMaster`, file registry, port 0), an Agent process (`startAgent`), and
 * this process as the framework (the SDK's `connect` over the native `berth://` WebSocket,
 * protobuf frames, auto-acknowledging every update). Latency per task = from sending the ACCEPT
 * that carries it to receiving its TASK_RUNNING. Rate = tasks / (first ACCEPT → last RUNNING),
 * offers, allocation and acks included.
 *
 * Each figure has a baseline measured in the same run, in interleaved rounds so machine noise
 * hits both alike:
 *  - `launch.posix.*`: Node spawning the same command directly (`/bin/sh -c true`, 'spawn'
 *    event = the process exists), same concurrency. Target: rate ≥ 70 % of the baseline's.
 *  - `launch.linux.*` (root with cgroups): `benchLinuxRaw` (bench/launch-linux.ts): Node
 *    spawning `unshare --pid --fork --mount-proc --uts --ipc true` into a fresh limited cgroup,
 *    same concurrency. Targets: rate ≥ 70 %, p50 ≤ 2× the baseline's.
 *  - `launch.crun.*`: the peer, `crun run` of the same command in a busybox bundle with the same
 *    limits, same concurrency (null with the reason when crun/busybox are missing or not root).
 *    Berth's ACCEPT→RUNNING should beat crun's bare start.
 *
 * Processes: master and agent are separate Node processes (as deployed; on a 2-core box they
 * share the cores with the framework and the tasks). Options (use `--name=value`: bench/main.ts
 * takes bare words as suite names): --tasks=500 --concurrency=50 --linux-concurrency=4 --reps=3
 * --rows=posix,linux,crun --inproc (master+agent+framework in this process, over MemoryNetwork).
 *
 * Run directly as `node dist/bench/launch.js --serve=master|agent …` it is one of those servers.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { silentLogger } from '../proto/log.js';
import { MemoryNetwork } from '../proto/transport/memory.js';
import type { Dialer } from '../proto/transport/types.js';
import { connect, OfferPool, task, type Offer } from '../frameworks/sdk/index.js';
import { emit, median, percentile, progress } from './report.js';

export interface LaunchRun {
  /** Per task, ms from its ACCEPT sent to its TASK_RUNNING received (spawn for baselines). */
  latenciesMs: number[];
  /** ms from the first launch to the last task running. */
  elapsedMs: number;
}

/** Launches `n` tasks running `command`, at most `concurrency` awaiting RUNNING at once. */
export type LaunchDriver = (n: number, command: string, concurrency: number) => Promise<LaunchRun>;

const rateOf = (x: LaunchRun): number => (x.latenciesMs.length / x.elapsedMs) * 1000;

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

/**
 * The posix baseline: Node spawning the command itself, doing the per-task file work every agent
 * must do (a fresh sandbox directory with `stdout` and `stderr`, the task's output going there) on
 * the same filesystem as the agent's work dir, so the ratio compares schedulers, not disks.
 */
export async function baselineSpawn(n: number, command: string, concurrency: number, sandboxRoot?: string): Promise<LaunchRun> {
  const lat: number[] = new Array<number>(n);
  const exits: Promise<void>[] = [];
  const root = sandboxRoot ? mkdtempSync(join(sandboxRoot, 'raw-')) : undefined;
  const t0 = performance.now();
  await pace(n, concurrency, (i, done) => {
    const s = performance.now();
    let stdio: ['ignore', number | 'ignore', number | 'ignore'] = ['ignore', 'ignore', 'ignore'];
    let cwd: string | undefined;
    if (root) {
      cwd = join(root, `s${i}`);
      mkdirSync(cwd);
      stdio = ['ignore', openSync(join(cwd, 'stdout'), 'a'), openSync(join(cwd, 'stderr'), 'a')];
    }
    const child = spawn('/bin/sh', ['-c', command], { stdio, detached: true, cwd });
    for (const fd of stdio) if (typeof fd === 'number') closeSync(fd);
    exits.push(new Promise((r) => child.once('exit', () => r())));
    child.once('spawn', () => { lat[i] = performance.now() - s; done(); });
    child.once('error', () => { lat[i] = NaN; done(); });
  });
  const elapsedMs = performance.now() - t0;
  await Promise.all(exits);
  if (root) rmSync(root, { recursive: true, force: true });
  return { latenciesMs: lat.filter(Number.isFinite), elapsedMs };
}

/** A small tmpfs for the tmpfs rows (root only); undefined where it cannot be mounted. */
function mountTmpfs(): { dir: string; remove(): void } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512m,mode=0755', 'tmpfs', dir]);
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  return { dir, remove: () => { try { execFileSync('umount', ['-l', dir]); } catch { /* gone */ } rmSync(dir, { recursive: true, force: true }); } };
}

// ---- the cluster ---------------------------------------------------------------

export interface Cluster {
  /** What a framework connects to. */
  master: string | Dialer;
  /** The directory the cluster's work dirs live in (the baselines make their sandboxes there too). */
  dir: string;
  stop(): Promise<void>;
}

const AGENT_RESOURCES = 'cpus:1000;mem:4000000;disk:100000;ports:[31000-32000]';
const here = fileURLToPath(import.meta.url);

/** Starts `node launch.js --serve=…` and resolves with the JSON line it prints once ready. */
function serve(args: string[]): Promise<{ child: ChildProcess; info: Record<string, string> }> {
  // BERTH_BENCH_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`) profiles the servers.
  const nodeArgs = (process.env['BERTH_BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, here, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const info = JSON.parse(buf.slice(0, nl)) as Record<string, string>;
      if (info['error']) reject(new Error(info['error'])); else resolve({ child, info });
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

/** Closing a server's stdin makes it stop (agent: killing its tasks) and exit. */
function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.stdin!.end();
  });
}

/** Master and agent as separate processes on loopback; the framework speaks berth:// to the master. */
export async function startCluster(containerizer: 'posix' | 'linux', parent = tmpdir()): Promise<Cluster> {
  const dir = mkdtempSync(join(parent, 'berth-bench-launch-'));
  // Linux tasks run as `nobody`: they must be able to reach their sandboxes.
  chmodSync(dir, 0o755);
  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const c of children.reverse()) await stopServer(c);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const m = await serve(['--serve=master', `--work-dir=${join(dir, 'master')}`]);
    children.push(m.child);
    const a = await serve(['--serve=agent', `--work-dir=${join(dir, 'agent')}`, `--master=127.0.0.1:${m.info['port']}`, `--containerizer=${containerizer}`]);
    children.push(a.child);
    return { master: `berth://127.0.0.1:${m.info['port']}`, dir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Master, agent and framework in this process over a MemoryNetwork (for comparison: no sockets, one core). */
export async function startInProcessCluster(containerizer: 'posix' | 'linux', parent = tmpdir()): Promise<Cluster> {
  const { Master } = await import('../master/master.js');
  const { FileRegistry } = await import('../master/registry/file.js');
  const { startAgent } = await import('../agent/main.js');
  const dir = mkdtempSync(join(parent, 'berth-bench-launch-'));
  chmodSync(dir, 0o755);
  const net = new MemoryNetwork();
  const master = new Master({ registry: new FileRegistry(join(dir, 'master'), silentLogger), log: silentLogger });
  master.listen(net);
  await master.start();
  const agent = await startAgent({
    dialer: net, workDir: join(dir, 'agent'), port: 0, containerizer, resources: AGENT_RESOURCES, log: silentLogger,
    cgroupRoot: `berth-bench-${process.pid}`,
  });
  return {
    master: net,
    dir,
    async stop() {
      await agent.stop({ killTasks: true });
      await agent.agent.containerizer.close();
      await master.stop();
      removeCgroupRoot(`berth-bench-${process.pid}`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Removes an (empty) cgroup root left by a linux agent in every v1 hierarchy / the v2 tree. */
function removeCgroupRoot(root: string): void {
  for (const m of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
    for (const d of [join('/sys/fs/cgroup', m, root), join('/sys/fs/cgroup', root)]) {
      try { rmdirSync(d); } catch { /* absent or not ours */ }
    }
  }
}

/**
 * The framework: holds offers, and whenever a slot is free launches as many tasks as fit in one
 * ACCEPT per offer (unused resources go back with refuse_seconds 0, so they are re-offered at once).
 */
export function frameworkDriver(cluster: Cluster, opts: { user?: string; cpus?: number; mem?: number } = {}): LaunchDriver {
  let round = 0;
  return async (n, command, concurrency) => {
    const r = round++;
    const fw = await connect({
      master: cluster.master, framework: { name: `launch-bench-${r}`, ...(opts.user ? { user: opts.user } : {}) },
      log: silentLogger, autoAcknowledge: true,
      // The SDK drops events that arrive before a callback is registered (offers can follow
      // SUBSCRIBED before `connect` resolves): start suppressed, revive once listening.
      suppressedRoles: ['*'],
    });
    const sentAt = new Array<number>(n);
    const lat = new Array<number>(n).fill(NaN);
    const running = new Set<number>();
    let held: Offer[] = [];
    let next = 0; let inflight = 0; let settled = 0; let failed = 0;
    let t0 = 0; let tEnd = 0;
    let finish!: () => void;
    const done = new Promise<void>((res) => { finish = res; });
    const pump = (): void => {
      const room = Math.min(concurrency - inflight, n - next);
      if (room <= 0 || held.length === 0) return;
      const pool = new OfferPool(held);
      held = [];
      const placed: number[] = [];
      while (placed.length < room) {
        const i = next;
        if (!pool.place(task({ id: `b${r}-${i}`, cmd: command, cpus: opts.cpus ?? 0.1, mem: opts.mem ?? 32 }))) break;
        placed.push(i);
        next++;
      }
      inflight += placed.length;
      const now = performance.now();
      if (t0 === 0) t0 = now;
      for (const i of placed) sentAt[i] = now;
      void fw.acceptPool(pool, { refuseSeconds: 0 });
    };
    const settle = (i: number): void => {
      if (running.has(i)) return;
      running.add(i);
      inflight--; settled++;
      if (settled === n) { tEnd = performance.now(); finish(); } else pump();
    };
    // A stalled run says where it stands instead of hanging the bench.
    let lastSettled = -1; let stalls = 0;
    const watchdog = setInterval(() => {
      if (settled !== lastSettled) { lastSettled = settled; stalls = 0; return; }
      stalls++;
      progress(`  stalled: ${settled}/${n} running, ${inflight} in flight, ${held.length} offers held, next ${next}`);
      if (stalls >= 6) { failed = n - settled; finish(); }
    }, 5000);
    fw.on('offers', (offers) => { held.push(...offers); pump(); });
    fw.on('rescind', (id) => { held = held.filter((o) => o.id.value !== id); });
    fw.on('update', (st) => {
      const i = Number(st.task_id.value.slice(st.task_id.value.indexOf('-') + 1));
      if (st.state === 'TASK_RUNNING') {
        if (!running.has(i)) lat[i] = performance.now() - sentAt[i]!;
        settle(i);
      } else if (st.state !== 'TASK_STARTING' && st.state !== 'TASK_FINISHED' && !running.has(i)) {
        failed++;
        if (failed <= 3) progress(`task ${st.task_id.value}: ${st.state} ${st.reason ?? ''} ${st.message ?? ''}`);
        settle(i);
      }
    });
    void fw.revive();
    await done;
    clearInterval(watchdog);
    // Let the last updates be acknowledged, then leave (the agent keeps nothing running: `true` exits).
    await new Promise((res) => setTimeout(res, 200));
    await fw.teardown().catch(() => fw.close());
    if (failed > 0) throw new Error(`${failed} of ${n} tasks did not reach TASK_RUNNING`);
    return { latenciesMs: lat.filter(Number.isFinite), elapsedMs: tEnd - t0 };
  };
}

// ---- the bench -----------------------------------------------------------------

function flag(args: string[], name: string, dflt: number): number {
  const v = Number(strFlag(args, name) ?? dflt);
  return Number.isFinite(v) && v > 0 ? v : dflt;
}
function strFlag(args: string[], name: string): string | undefined {
  const eq = args.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined && !args[i + 1]!.startsWith('--') ? args[i + 1] : undefined;
}

interface Row { name: string; what: string; runs: LaunchRun[] }

function emitRows(row: Row, base: Row, params: Record<string, unknown>, rateTarget?: number, p50Target?: number): void {
  const rates = row.runs.map(rateOf);
  const baseRates = base.runs.map(rateOf);
  const p50s = row.runs.map((x) => percentile(x.latenciesMs, 50));
  const p99s = row.runs.map((x) => percentile(x.latenciesMs, 99));
  const bp50s = base.runs.map((x) => percentile(x.latenciesMs, 50));
  const bp99s = base.runs.map((x) => percentile(x.latenciesMs, 99));
  const p = { ...params, measured: row.what, baseline_what: base.what };
  emit({ name: `launch.${row.name}.rate`, value: median(rates), unit: 'tasks/s', baseline: median(baseRates),
    params: { ...p, min: Math.min(...rates), max: Math.max(...rates), baseline_min: Math.min(...baseRates), baseline_max: Math.max(...baseRates), ...(rateTarget ? { target_ratio: rateTarget } : {}) } });
  emit({ name: `launch.${row.name}.p50`, value: median(p50s), unit: 'ms', baseline: median(bp50s),
    params: { ...p, min: Math.min(...p50s), max: Math.max(...p50s), baseline_min: Math.min(...bp50s), baseline_max: Math.max(...bp50s), ...(p50Target ? { target_ratio_max: p50Target } : {}) } });
  emit({ name: `launch.${row.name}.p99`, value: median(p99s), unit: 'ms', baseline: median(bp99s),
    params: { ...p, min: Math.min(...p99s), max: Math.max(...p99s), baseline_min: Math.min(...bp99s), baseline_max: Math.max(...bp99s) } });
}

export async function run(args: string[]): Promise<void> {
  const n = flag(args, 'tasks', 500);
  const c = flag(args, 'concurrency', 50);
  const lc = flag(args, 'linux-concurrency', 4);
  const reps = flag(args, 'reps', 3);
  const rows = (strFlag(args, 'rows') ?? 'posix,linux,crun').split(',');
  const inproc = args.includes('--inproc');
  const command = 'true';
  const start = inproc ? startInProcessCluster : startCluster;
  const topology = inproc ? 'master+agent+framework in one process (MemoryNetwork)' : 'master, agent, framework: 3 processes; framework→master berth:// WebSocket, agent→master WebSocket';
  const params = { n, reps, command, topology, rounds: 'interleaved' };

  // Where the work dirs live: this disk, and a tmpfs (the scheduler's own overhead, no disk in it).
  const tmpfs = args.includes('--no-tmpfs') ? undefined : mountTmpfs();
  const media: { suffix: string; parent: string; what: string }[] = [{ suffix: '', parent: tmpdir(), what: `work dir on ${tmpdir()}` }];
  if (tmpfs) media.push({ suffix: '_tmpfs', parent: tmpfs.dir, what: 'work dir on tmpfs' });
  try {
    // ---- posix
    if (rows.includes('posix')) {
      for (const m of media) {
        const cluster = await start('posix', m.parent);
        try {
          const drive = frameworkDriver(cluster);
          progress(`launch posix (${m.what}): warm-up`);
          await baselineSpawn(100, command, c, cluster.dir);
          await drive(100, command, c);
          const base: Row = { name: `baseline${m.suffix}`, what: `node spawn /bin/sh -c true into a fresh sandbox dir with stdout/stderr files (${m.what}), until the spawn event`, runs: [] };
          const berth: Row = { name: `posix${m.suffix}`, what: `ACCEPT sent → TASK_RUNNING received (posix containerizer, ${m.what})`, runs: [] };
          for (let rep = 0; rep < reps; rep++) {
            progress(`launch posix (${m.what}): rep ${rep + 1}/${reps}: ${n} tasks, concurrency ${c}`);
            base.runs.push(await baselineSpawn(n, command, c, cluster.dir));
            berth.runs.push(await drive(n, command, c));
            progress(`  baseline ${rateOf(base.runs.at(-1)!).toFixed(0)}/s, posix ${rateOf(berth.runs.at(-1)!).toFixed(0)}/s`);
          }
          emitRows(berth, base, { ...params, concurrency: c, medium: m.what }, 0.7);
        } finally {
          await cluster.stop();
        }
      }
    }
    await runLinux(args, { n, lc, reps, rows, command, start, params, media });
  } finally {
    tmpfs?.remove();
  }
}

interface LinuxArgs {
  n: number; lc: number; reps: number; rows: string[]; command: string;
  start: (c: 'posix' | 'linux', parent?: string) => Promise<Cluster>;
  params: Record<string, unknown>;
  media: { suffix: string; parent: string; what: string }[];
}

async function runLinux(_args: string[], o: LinuxArgs): Promise<void> {
  const { n, lc, reps, rows, command, start, params } = o;
  // ---- linux and crun
  const wantLinux = rows.includes('linux') || rows.includes('crun');
  if (!wantLinux) return;
  const why = await linuxUnavailable();
  if (why) {
    progress(`launch linux/crun: skipped: ${why}`);
    for (const r of ['linux', 'crun']) if (rows.includes(r)) emit({ name: `launch.${r}.rate`, value: NaN, unit: 'tasks/s', baseline: null, params: { skipped: why } });
    return;
  }
  const { benchLinuxRaw, benchCrun } = await import('./launch-linux.js');
  for (const m of o.media) {
  const withCrun = m.suffix === '' && rows.includes('crun');
  const cluster = rows.includes('linux') ? await start('linux', m.parent) : undefined;
  const sandboxes = cluster?.dir ?? m.parent;
  try {
    const drive = cluster ? frameworkDriver(cluster, { user: 'nobody' }) : undefined;
    progress('launch linux: warm-up');
    await benchLinuxRaw(20, lc, false, sandboxes);
    if (drive) await drive(50, command, lc);
    const raw: Row = { name: `linux_raw${m.suffix}`, what: `node spawn unshare --pid --fork --mount-proc --uts --ipc true into a fresh cgroup (cpu, memory, pids) and a fresh sandbox dir with stdout/stderr (${m.what}), until spawned and joined`, runs: [] };
    const berth: Row = { name: `linux${m.suffix}`, what: `ACCEPT sent → TASK_RUNNING received (linux containerizer, user nobody, berth-shim, ${m.what})`, runs: [] };
    const crun: Row = { name: 'crun', what: 'crun run (busybox-static rootfs, same memory/pids/cpu limits), start → exit', runs: [] };
    let crunWhy: string | undefined = withCrun ? undefined : 'not asked for';
    for (let rep = 0; rep < reps; rep++) {
      progress(`launch linux: rep ${rep + 1}/${reps}: ${n} tasks, concurrency ${lc}`);
      raw.runs.push(await benchLinuxRaw(n, lc, false, sandboxes));
      if (drive) berth.runs.push(await drive(n, command, lc));
      if (!crunWhy) {
        const r = await benchCrun(n, lc).catch((e: Error) => e.message);
        if (typeof r === 'string' || r === null) crunWhy = r ?? 'crun or busybox-static not installed';
        else crun.runs.push(r);
      }
      progress(`  raw ${rateOf(raw.runs.at(-1)!).toFixed(0)}/s${drive ? `, linux ${rateOf(berth.runs.at(-1)!).toFixed(0)}/s` : ''}${crun.runs.length > rep ? `, crun ${rateOf(crun.runs.at(-1)!).toFixed(0)}/s` : ''}`);
    }
    if (drive) emitRows(berth, raw, { ...params, concurrency: lc, medium: m.what }, 0.7, 2);
    if (withCrun) {
      if (crunWhy) {
        progress(`launch crun: skipped: ${crunWhy}`);
        emit({ name: 'launch.crun.rate', value: NaN, unit: 'tasks/s', baseline: null, params: { skipped: crunWhy } });
      } else {
        emitRows(crun, raw, { ...params, concurrency: lc });
        if (drive) {
          const b = median(berth.runs.map((x) => percentile(x.latenciesMs, 50)));
          const k = median(crun.runs.map((x) => percentile(x.latenciesMs, 50)));
          emit({ name: 'launch.linux.p50_vs_crun', value: b, unit: 'ms', baseline: k, params: { ...params, concurrency: lc, measured: 'Berth ACCEPT→RUNNING p50 vs crun run p50 (lower is better)' } });
        }
      }
    }
  } finally {
    await cluster?.stop();
  }
  }
}

async function linuxUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `platform is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'not running as root';
  const { probeLinux } = await import('../agent/containerizer/linux/index.js');
  const p = await probeLinux(`berth-bench-probe-${process.pid}`);
  return p.ok ? undefined : p.reason ?? 'linux probe failed';
}

// ---- server mode ---------------------------------------------------------------

async function serveMain(args: string[]): Promise<void> {
  const role = strFlag(args, 'serve');
  const workDir = strFlag(args, 'work-dir')!;
  try {
    if (role === 'master') {
      const { startMaster } = await import('../master/main.js');
      const m = await startMaster({ workDir, port: 0, log: silentLogger });
      process.stdout.write(JSON.stringify({ port: String(m.port) }) + '\n');
      process.stdin.resume();
      process.stdin.once('end', () => { void m.stop().finally(() => process.exit(0)); });
    } else if (role === 'agent') {
      const { startAgent } = await import('../agent/main.js');
      const cgroupRoot = `berth-bench-${process.pid}`;
      const a = await startAgent({
        master: strFlag(args, 'master')!, workDir, port: 0, resources: AGENT_RESOURCES, log: silentLogger,
        containerizer: strFlag(args, 'containerizer') as 'posix' | 'linux', cgroupRoot,
      });
      process.stdout.write(JSON.stringify({ endpoint: a.endpoint }) + '\n');
      process.stdin.resume();
      process.stdin.once('end', () => {
        void a.stop({ killTasks: true }).then(() => a.agent.containerizer.close()).finally(() => {
          removeCgroupRoot(cgroupRoot);
          process.exit(0);
        });
      });
    } else {
      throw new Error(`unknown --serve role '${role}'`);
    }
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await serveMain(process.argv.slice(2));
