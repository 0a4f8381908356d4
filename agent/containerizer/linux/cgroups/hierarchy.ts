/**
 * What the rest of the linux containerizer knows about cgroups: a Hierarchy
 * (v1: one mount per controller; v2: one unified tree) hands out a
 * CgroupHandle per container, and one Subsystem per controller (cpu.ts,
 * memory.ts, pids.ts; freezer.ts for kill) works through that handle, so the
 * subsystems hold the v1/v2 file differences and the hierarchies hold the
 * directory layout — as Mesos' cgroups isolator and its subsystems.
 *
 * Layout invariant: every container cgroup is `<mount>/<cgroupRoot>/<containerId>`
 * in each hierarchy used; nothing else lives under `<cgroupRoot>`, so any
 * directory found there that is not a known container is an orphan and may be
 * destroyed at recovery.
 */
import type { ContainerLimits } from '../../types.js';
import type { ResourceStatistics } from '../../../../proto/types.js';
import type { CgroupFs } from './fs.js';

/** Controllers Berth uses. v2 has no cpuacct/freezer controllers: there they name the core features (cpu.stat usage, cgroup.freeze). */
export type Controller = 'cpu' | 'cpuacct' | 'memory' | 'pids' | 'freezer';
export const CONTROLLERS: readonly Controller[] = ['cpu', 'cpuacct', 'memory', 'pids', 'freezer'];

export type HierarchyLabel = 'v1' | 'v2' | 'hybrid';

export interface CgroupHandle {
  readonly version: 1 | 2;
  readonly containerId: string;
  /** Relative to each hierarchy's mount: `<cgroupRoot>/<containerId>`. Checkpointed in ContainerRecord.extra. */
  readonly relPath: string;
  /** Directory with `controller`'s files for this cgroup; undefined when the controller is unavailable. */
  dir(controller: Controller): string | undefined;
}

export interface Hierarchy {
  readonly version: 1 | 2;
  /** 'hybrid' = controllers on v1 plus a (controller-less) cgroup2 mount; handled as v1. */
  readonly label: HierarchyLabel;
  readonly fs: CgroupFs;
  readonly controllers: ReadonlySet<Controller>;
  /** Creates Berth's root cgroup(s) and, on v2, enables the controllers for its children. Idempotent. */
  init(): Promise<void>;
  handle(containerId: string, relPath?: string): CgroupHandle;
  /** Creates the container's cgroup in every hierarchy used. */
  create(h: CgroupHandle): Promise<void>;
  /** The cgroup.procs files a task must join (one per distinct directory). */
  procsFiles(h: CgroupHandle): string[];
  /** Pids currently in the container's cgroup ([] when it does not exist). */
  pids(h: CgroupHandle): Promise<number[]>;
  /** Removes the container's cgroup everywhere; tolerates missing ones; retries while the kernel still releases exiting tasks. */
  remove(h: CgroupHandle, busyTimeoutMs?: number): Promise<void>;
  /** Container ids that have a cgroup under Berth's root in any hierarchy used. */
  listContainers(): Promise<string[]>;
}

export interface SubsystemOptions {
  enableCfs: boolean;
  pidsMax: number;
}

/** A limit a container reached that ends it (Mesos: ContainerLimitation). */
export interface Limitation {
  reason: 'REASON_CONTAINER_LIMITATION_MEMORY' | 'REASON_CONTAINER_LIMITATION_DISK';
  message: string;
}

/**
 * One controller's part of a container's lifecycle, as Mesos' cgroups subsystems:
 *
 *   recover  after an agent restart, for each re-adopted container (limits live in the kernel;
 *            a subsystem rebuilds only its own in-memory state)
 *   prepare  writes the limits, after the cgroup is created and before the task joins, so the
 *            task never runs unlimited
 *   isolate  the task has joined (its host pid is known)
 *   watch    resolves with a Limitation when the container reached a limit it must be destroyed
 *            for (memory: the kernel OOM-killed in it); stays pending otherwise; stops on `signal`
 *   update   changes the limits of a running container
 *   usage    adds this controller's ResourceStatistics fields; skips what the kernel does not expose
 *   cleanup  before the cgroup is removed: final reads (the limitation a watch may have missed);
 *            tolerates a container it never saw and a cgroup already gone
 */
export interface Subsystem {
  readonly name: string;
  recover?(h: CgroupHandle, fs: CgroupFs): Promise<void>;
  prepare(h: CgroupHandle, fs: CgroupFs, limits: ContainerLimits, opts: SubsystemOptions): Promise<void>;
  isolate?(h: CgroupHandle, fs: CgroupFs, pid: number): Promise<void>;
  watch?(h: CgroupHandle, fs: CgroupFs, signal: AbortSignal, opts: WatchOptions): Promise<Limitation>;
  update(h: CgroupHandle, fs: CgroupFs, limits: ContainerLimits, opts: SubsystemOptions): Promise<void>;
  usage(h: CgroupHandle, fs: CgroupFs, stats: ResourceStatistics): Promise<void>;
  cleanup?(h: CgroupHandle, fs: CgroupFs): Promise<Limitation | undefined>;
}

export interface WatchOptions {
  /** How often a watch without kernel notification polls (default 100 ms). */
  pollMs: number;
}

/** Berth's root cgroup directory in each hierarchy used (the parents of every container cgroup). */
export function rootDirs(hier: Hierarchy): string[] {
  const h = hier.handle('x');
  const out = new Set<string>();
  for (const c of CONTROLLERS) {
    const d = h.dir(c);
    if (d !== undefined) out.add(d.slice(0, d.lastIndexOf('/')));
  }
  return [...out];
}

/**
 * Berth's root directories and their parents up to the mount, deepest first: a root
 * `berth/agent-1a2b` gives `…/berth/agent-1a2b`, then `…/berth`. Removing them in this order
 * (rmdir refuses a non-empty one) takes away exactly what no other agent still uses.
 */
export function rootChainDirs(hier: Hierarchy, cgroupRoot: string): string[] {
  const depth = cgroupRoot.split('/').length;
  const out: string[] = [];
  for (let level = 0; level < depth; level++) {
    for (const d of rootDirs(hier)) {
      let x = d;
      for (let i = 0; i < level; i++) x = x.slice(0, x.lastIndexOf('/'));
      if (!out.includes(x)) out.push(x);
    }
  }
  return out;
}

/** Removes Berth's (empty) root cgroups and the (empty) parents it created; what is in use stays. */
export async function removeRootDirs(hier: Hierarchy, cgroupRoot: string, keep: ReadonlySet<string> = new Set()): Promise<void> {
  for (const d of rootChainDirs(hier, cgroupRoot)) if (!keep.has(d)) await hier.fs.rmdir(d).catch(() => undefined);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** rmdir with retries: right after the last task exits, the kernel may briefly still report EBUSY. */
export async function rmdirRetry(fs: CgroupFs, dir: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    try {
      await fs.rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENODEV') return;
      if (code !== 'EBUSY' || Date.now() >= deadline) throw err;
    }
    await sleep(delay);
  }
}

export function parsePids(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const n = Number.parseInt(line, 10);
    if (n > 0) out.push(n);
  }
  return out;
}
