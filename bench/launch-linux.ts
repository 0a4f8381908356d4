/**
 * Launch throughput of linux containers, with the baselines the issue (#5)
 * compares against, all measured in the same run:
 *
 *  - raw:   Node spawning the trivial command under
 *           `unshare --pid --fork --mount-proc --uts --ipc` into a fresh cgroup
 *           (cpu, memory, pids limits written, pid joined right after spawn).
 *  - crun:  `crun run` of a minimal bundle (static busybox rootfs) with the same
 *           memory/pids/cpu limits, when crun and busybox are installed. crun 1.8
 *           refuses hybrid cgroup hosts, so each run happens in a private mount
 *           namespace where the cgroup2 mount is detached (`unshare -m`).
 *  - berth: LinuxContainerizer.launch → wait.
 *
 * Every figure is "start → process exited and its cgroup removed", 4 in flight,
 * so the three rows measure the same thing. p50/p99 in ms.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { detectHierarchy } from '../agent/containerizer/linux/cgroups/detect.js';
import type { Hierarchy } from '../agent/containerizer/linux/cgroups/hierarchy.js';
import { cpuSubsystem } from '../agent/containerizer/linux/cgroups/cpu.js';
import { memorySubsystem } from '../agent/containerizer/linux/cgroups/memory.js';
import { pidsSubsystem } from '../agent/containerizer/linux/cgroups/pids.js';
import { LinuxContainerizer } from '../agent/containerizer/linux/index.js';

export interface LaunchFigures {
  ratePerSec: number;
  p50: number;
  p99: number;
  /** Per operation, ms (unsorted). */
  latenciesMs: number[];
  /** ms from the first start to the last operation's end. */
  elapsedMs: number;
}

const CONCURRENCY = 4;
const LIMITS = { cpus: 0.1, memMiB: 64 };
const PIDS_MAX = 1024;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `one` n times, `concurrency` in flight; latency per op and overall rate. */
async function pool(n: number, one: (i: number, worker: number) => Promise<number>, concurrency = CONCURRENCY): Promise<LaunchFigures> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async (_, w) => {
      while (next < n) lat.push(await one(next++, w));
    }),
  );
  const elapsedMs = performance.now() - t0;
  const sorted = [...lat].sort((a, b) => a - b);
  return { ratePerSec: n / (elapsedMs / 1000), p50: percentile(sorted, 50), p99: percentile(sorted, 99), latenciesMs: lat, elapsedMs };
}

function run(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code ?? -1));
  });
}

async function hierarchyFor(root: string): Promise<Hierarchy> {
  const h = await detectHierarchy(root);
  if (!h) throw new Error('no cgroup hierarchy');
  await h.init();
  return h;
}

async function removeRoot(hier: Hierarchy): Promise<void> {
  for (const id of await hier.listContainers()) await hier.remove(hier.handle(id)).catch(() => undefined);
  const dirs = new Set<string>();
  for (const c of ['cpu', 'cpuacct', 'memory', 'pids', 'freezer'] as const) {
    const d = hier.handle('x').dir(c);
    if (d) dirs.add(join(d, '..'));
  }
  for (const d of dirs) await hier.fs.rmdir(d).catch(() => undefined);
}

/**
 * Baseline: Node + unshare into a fresh, limited cgroup. Latency = start → the task is spawned
 * and has joined its cgroup (the moment it runs contained); the slot is then free, and the exit
 * and cgroup removal finish in the background (awaited before returning, inside the timing when
 * `untilExit`, as the standalone linux bench measures).
 */
/**
 * The linux baseline: per task a fresh cgroup with the same limits, and (with `sandboxRoot`) the
 * per-task file work every agent must do: a fresh sandbox directory with `stdout` and `stderr` on
 * the agent's filesystem, the task's output going there.
 */
export async function benchLinuxRaw(n: number, concurrency = CONCURRENCY, untilExit = false, sandboxRoot?: string): Promise<LaunchFigures> {
  const hier = await hierarchyFor(`berth-bench-raw-${process.pid}`);
  const sbRoot = sandboxRoot ? mkdtempSync(join(sandboxRoot, 'raw-')) : undefined;
  const opts = { enableCfs: false, pidsMax: PIDS_MAX };
  const tails: Promise<void>[] = [];
  try {
    const f = await pool(n, async (i) => {
      const t = performance.now();
      const h = hier.handle(`r${i}`);
      await hier.create(h);
      await Promise.all([cpuSubsystem, memorySubsystem, pidsSubsystem].map((s) => s.prepare(h, hier.fs, LIMITS, opts)));
      let joinedAt = 0;
      const exited = new Promise<void>((resolve, reject) => {
        let stdio: ['ignore', number | 'ignore', number | 'ignore'] = ['ignore', 'ignore', 'ignore'];
        let cwd: string | undefined;
        if (sbRoot) {
          cwd = join(sbRoot, `s${i}`);
          mkdirSync(cwd);
          stdio = ['ignore', openSync(join(cwd, 'stdout'), 'a'), openSync(join(cwd, 'stderr'), 'a')];
        }
        const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--uts', '--ipc', '/bin/true'], { stdio, cwd });
        for (const fd of stdio) if (typeof fd === 'number') closeSync(fd);
        child.once('error', reject);
        child.once('spawn', () => {
          void Promise.all(hier.procsFiles(h).map((f) => hier.fs.write(f, String(child.pid)))).catch(() => undefined)
            .then(() => { joinedAt = performance.now(); resolveJoined(); });
        });
        child.once('exit', () => resolve());
      });
      let resolveJoined!: () => void;
      const joined = new Promise<void>((r) => { resolveJoined = r; });
      const tail = exited.then(() => hier.remove(h));
      if (untilExit) {
        await tail;
        return performance.now() - t;
      }
      tails.push(tail.catch(() => undefined));
      await Promise.race([joined, exited]);
      return (joinedAt || performance.now()) - t;
    }, concurrency);
    await Promise.all(tails);
    return f;
  } finally {
    await removeRoot(hier);
    if (sbRoot) rmSync(sbRoot, { recursive: true, force: true });
  }
}

/** crun creates the container's cgroup in every v1 hierarchy (blkio, devices, …), not only ours. */
async function removeCrunCgroups(root: string): Promise<void> {
  const { readdir } = await import('node:fs/promises');
  const { rmdirRetry } = await import('../agent/containerizer/linux/cgroups/hierarchy.js');
  const { realCgroupFs } = await import('../agent/containerizer/linux/cgroups/fs.js');
  const rmdir = (d: string): Promise<void> => rmdirRetry(realCgroupFs, d, 2000);
  for (const mount of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
    const dir = join('/sys/fs/cgroup', mount, root);
    if (!existsSync(dir)) continue;
    const children = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const c of children) if (c.isDirectory()) await rmdir(join(dir, c.name)).catch(() => undefined);
    await rmdir(dir).catch(() => undefined);
  }
}

/** Peer: crun with the same limits; null when crun or a static busybox is not installed. */
export async function benchCrun(n: number, concurrency = CONCURRENCY): Promise<LaunchFigures | null> {
  const crun = ['/usr/bin/crun', '/usr/local/bin/crun'].find(existsSync);
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find(existsSync);
  if (!crun || !busybox) return null;
  const root = `berth-bench-crun-${process.pid}`;
  const bundle = await mkdtemp(join(tmpdir(), 'berth-crun-'));
  try {
    const rootfs = join(bundle, 'rootfs');
    for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp']) await mkdir(join(rootfs, d), { recursive: true });
    await copyFile(busybox, join(rootfs, 'bin/busybox'));
    await chmod(join(rootfs, 'bin/busybox'), 0o755);
    await symlink('busybox', join(rootfs, 'bin/true'));
    if ((await run(crun, ['spec', '--bundle', bundle])) !== 0) return null;
    const { readFile } = await import('node:fs/promises');
    const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { args: string[]; terminal: boolean };
      root: { readonly: boolean };
      linux: { resources?: unknown; cgroupsPath?: string };
    };
    config.process.args = ['/bin/true'];
    config.process.terminal = false;
    config.root.readonly = true;
    config.linux.resources = {
      memory: { limit: LIMITS.memMiB * 1024 * 1024 },
      pids: { limit: PIDS_MAX },
      cpu: { shares: Math.floor(1024 * LIMITS.cpus) },
    };
    // crun needs one config per cgroup path; the path prefix groups them for cleanup.
    const hier = await detectHierarchy(root);
    const hybrid = hier?.label === 'hybrid';
    const cgroup2 = hybrid ? (await import('../agent/containerizer/linux/cgroups/detect.js')).parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')).v2 : undefined;
    const bundles: string[] = [];
    for (let w = 0; w < concurrency; w++) {
      const b = join(bundle, `b${w}`);
      await mkdir(b);
      await symlink(rootfs, join(b, 'rootfs'));
      bundles.push(b);
    }
    const id = `bc${process.pid}`;
    const figures = await pool(n, async (i, w) => {
      const b = bundles[w]!;
      const cfg = { ...config, linux: { ...config.linux, cgroupsPath: `${root}/c${i}` } };
      await writeFile(join(b, 'config.json'), JSON.stringify(cfg));
      const t = performance.now();
      const code = cgroup2
        ? await run('unshare', ['-m', '--', '/bin/sh', '-c', `umount -l ${cgroup2} && exec ${crun} run -b ${b} ${id}-${i}`])
        : await run(crun, ['run', '-b', b, `${id}-${i}`]);
      if (code !== 0) throw new Error(`crun run exited ${code}`);
      return performance.now() - t;
    }, concurrency);
    return figures;
  } finally {
    await removeCrunCgroups(root);
    await rm(bundle, { recursive: true, force: true });
  }
}

/** Berth: LinuxContainerizer launch → wait (exit recorded, cgroup removed), as user `user`. */
export async function benchLinuxContainerizer(n: number, user = 'nobody'): Promise<LaunchFigures & { launchP50: number }> {
  const root = `berth-bench-${process.pid}`;
  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-'));
  await chmod(dir, 0o755);
  const c = new LinuxContainerizer({ cgroupRoot: root, pidsMax: PIDS_MAX });
  await c.init();
  const launchLat: number[] = [];
  try {
    // Sandboxes are the agent's job and exist before launch: made outside the timed region.
    for (let i = 0; i < n; i++) {
      await mkdir(join(dir, `c${i}`, 'sandbox'), { recursive: true });
      await mkdir(join(dir, `c${i}`, 'run'));
    }
    const figures = await pool(n, async (i) => {
      const base = join(dir, `c${i}`);
      const t = performance.now();
      await c.launch({
        containerId: `c${i}`,
        sandbox: join(base, 'sandbox'),
        runDir: join(base, 'run'),
        command: { shell: false, value: '/bin/true', arguments: ['true'] },
        env: { PATH: '/usr/bin:/bin' },
        limits: LIMITS,
        user,
      });
      launchLat.push(performance.now() - t);
      await c.wait(`c${i}`);
      return performance.now() - t;
    });
    launchLat.sort((a, b) => a - b);
    return { ...figures, launchP50: percentile(launchLat, 50) };
  } finally {
    await c.close();
    const { hier } = await c.init();
    await removeRoot(hier);
    await rm(dir, { recursive: true, force: true });
  }
}

function merge(parts: LaunchFigures[], n: number): LaunchFigures {
  // Rounds of equal size: total rate from total time; latency percentiles as the median of rounds'.
  const secs = parts.reduce((a, f) => a + n / parts.length / f.ratePerSec, 0);
  const med = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { ratePerSec: n / secs, p50: med(parts.map((f) => f.p50)), p99: med(parts.map((f) => f.p99)), latenciesMs: parts.flatMap((f) => f.latenciesMs), elapsedMs: secs * 1000 };
}

/**
 * Prints the human table on stderr and one JSON object per figure on stdout (bench convention).
 * The rows run interleaved in `rounds` rounds, so background load on a shared machine hits
 * the baseline and Berth alike.
 */
export async function runLaunchLinuxBench(n = 500, rounds = 5): Promise<void> {
  // Warm up page cache, the shim build and the user database.
  await benchLinuxRaw(20);
  await benchLinuxContainerizer(20);
  const per = Math.max(1, Math.floor(n / rounds));
  const parts: Record<'raw' | 'berth' | 'berthRoot' | 'crun', LaunchFigures[]> = { raw: [], berth: [], berthRoot: [], crun: [] };
  const launchP50s: number[] = [];
  let crunOk = true;
  for (let r = 0; r < rounds; r++) {
    parts.raw.push(await benchLinuxRaw(per, CONCURRENCY, true));
    const b = await benchLinuxContainerizer(per);
    launchP50s.push(b.launchP50);
    parts.berth.push(b);
    parts.berthRoot.push(await benchLinuxContainerizer(per, 'root'));
    if (crunOk) {
      const c = await benchCrun(per);
      if (c) parts.crun.push(c);
      else crunOk = false;
    }
  }
  const total = per * rounds;
  const raw = merge(parts.raw, total);
  const berth = merge(parts.berth, total);
  const berthRoot = merge(parts.berthRoot, total);
  const crun = crunOk ? merge(parts.crun, total) : null;
  const rows: [string, LaunchFigures | null][] = [
    ['raw (node+unshare+cgroup)', raw],
    ['berth linux (nobody)', berth],
    ['berth linux (root→userns)', berthRoot],
    ['crun run', crun],
  ];
  process.stderr.write(`launch → exit, ${total} trivial containers per row, ${CONCURRENCY} concurrent, ${rounds} interleaved rounds\n`);
  process.stderr.write(`${'row'.padEnd(28)} ${'rate/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'rate/raw'.padStart(9)} ${'p50/raw'.padStart(8)}\n`);
  for (const [name, f] of rows) {
    process.stderr.write(
      f
        ? `${name.padEnd(28)} ${f.ratePerSec.toFixed(1).padStart(8)} ${f.p50.toFixed(2).padStart(8)} ${f.p99.toFixed(2).padStart(8)} ${(f.ratePerSec / raw.ratePerSec).toFixed(2).padStart(9)} ${(f.p50 / raw.p50).toFixed(2).padStart(8)}\n`
        : `${name.padEnd(28)} (crun or busybox not installed)\n`,
    );
  }
  const launchP50 = launchP50s.sort((a, b) => a - b)[Math.floor(launchP50s.length / 2)]!;
  process.stderr.write(`berth launch() alone (until the task runs): p50 ${launchP50.toFixed(2)} ms\n`);
  const params = { n: total, concurrency: CONCURRENCY, rounds };
  const emit = (name: string, value: number, unit: string, baseline: number | undefined): void => {
    process.stdout.write(`${JSON.stringify({ name, value: Number(value.toFixed(3)), unit, baseline: baseline === undefined ? undefined : Number(baseline.toFixed(3)), params })}\n`);
  };
  emit('launch.linux.raw.rate', raw.ratePerSec, 'per_s', undefined);
  emit('launch.linux.raw.p50', raw.p50, 'ms', undefined);
  emit('launch.linux.containerizer.rate', berth.ratePerSec, 'per_s', raw.ratePerSec);
  emit('launch.linux.containerizer.p50', berth.p50, 'ms', raw.p50);
  emit('launch.linux.containerizer.p99', berth.p99, 'ms', raw.p99);
  emit('launch.linux.containerizer.launch_p50', launchP50, 'ms', raw.p50);
  emit('launch.linux.containerizer_root.rate', berthRoot.ratePerSec, 'per_s', raw.ratePerSec);
  emit('launch.linux.containerizer_root.p50', berthRoot.p50, 'ms', raw.p50);
  if (crun) {
    emit('launch.linux.crun.rate', crun.ratePerSec, 'per_s', raw.ratePerSec);
    emit('launch.linux.crun.p50', crun.p50, 'ms', raw.p50);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runLaunchLinuxBench(Number(process.argv[2] ?? 500));
}
