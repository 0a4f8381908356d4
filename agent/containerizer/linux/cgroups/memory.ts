/**
 * memory: hard limit from `mem`, usage accounting, and OOM detection.
 *
 * Invariant: the limit is written before the task joins (prepare), and the
 * OOM verdict is read from the kernel's own counter (v1 memory.oom_control
 * `oom_kill`, v2 memory.events `oom_kill`) before the cgroup is removed — a
 * SIGKILL exit alone does not tell an OOM kill from a `kill -9`.
 */
import type { ContainerLimits } from '../../types.js';
import type { ResourceStatistics } from '../../../../proto/types.js';
import type { CgroupFs } from './fs.js';
import { isErrno, parseKeyed, readOptional } from './fs.js';
import type { CgroupHandle, Limitation, Subsystem, SubsystemOptions, WatchOptions } from './hierarchy.js';

const MiB = 1024 * 1024;
/** v1 reports "no limit" as a huge page-aligned number. */
const V1_UNLIMITED = 2 ** 62;

function num(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === 'max') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

export interface OomState {
  /** The kernel OOM-killed at least one process of the container. */
  oomKilled: boolean;
  /** Peak usage in bytes, when the kernel keeps it (v1 max_usage_in_bytes, v2 memory.peak ≥ 5.19). */
  peakBytes?: number;
  limitBytes?: number;
}

export const memorySubsystem: Subsystem = {
  name: 'memory',

  async prepare(h: CgroupHandle, fs: CgroupFs, limits: ContainerLimits): Promise<void> {
    const dir = h.dir('memory');
    if (dir === undefined) return;
    const bytes = limits.memMiB > 0 ? Math.floor(limits.memMiB * MiB) : undefined;
    if (h.version === 1) {
      await fs.write(`${dir}/memory.limit_in_bytes`, bytes === undefined ? '-1' : String(bytes));
      // Same cap on memory+swap so swap is no way around the limit (only where swap accounting exists).
      if (bytes !== undefined) {
        try {
          await fs.write(`${dir}/memory.memsw.limit_in_bytes`, String(bytes));
        } catch (err) {
          if (!isErrno(err, 'ENOENT', 'EINVAL', 'EOPNOTSUPP')) throw err;
        }
      }
    } else {
      await fs.write(`${dir}/memory.max`, bytes === undefined ? 'max' : String(bytes));
      if (bytes !== undefined) {
        try {
          await fs.write(`${dir}/memory.swap.max`, '0');
        } catch (err) {
          if (!isErrno(err, 'ENOENT', 'EINVAL', 'EOPNOTSUPP')) throw err;
        }
      }
    }
  },

  update(h: CgroupHandle, fs: CgroupFs, limits: ContainerLimits, opts: SubsystemOptions): Promise<void> {
    return this.prepare(h, fs, limits, opts);
  },

  /**
   * Mesos semantics: reaching the limit ends the container. The kernel's OOM killer may pick a
   * child and leave the task running; the first OOM kill in the cgroup is the limitation, and the
   * containerizer destroys the whole container at that moment (peak in the message). Polled:
   * cgroup v1 notifies only through an eventfd, which Node cannot wait on.
   */
  async watch(h: CgroupHandle, fs: CgroupFs, signal: AbortSignal, opts: WatchOptions): Promise<Limitation> {
    while (!signal.aborted) {
      const s = await oomState(h, fs).catch(() => ({ oomKilled: false }) as OomState);
      if (s.oomKilled && !signal.aborted) return { reason: 'REASON_CONTAINER_LIMITATION_MEMORY', message: oomMessage(s) };
      await new Promise<void>((r) => {
        const onAbort = (): void => { clearTimeout(t); r(); };
        const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); r(); }, opts.pollMs);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
    return new Promise<Limitation>(() => undefined);
  },

  async cleanup(h: CgroupHandle, fs: CgroupFs): Promise<Limitation | undefined> {
    const s = await oomState(h, fs).catch(() => ({ oomKilled: false }) as OomState);
    return s.oomKilled ? { reason: 'REASON_CONTAINER_LIMITATION_MEMORY', message: oomMessage(s) } : undefined;
  },

  async usage(h: CgroupHandle, fs: CgroupFs, stats: ResourceStatistics): Promise<void> {
    const dir = h.dir('memory');
    if (dir === undefined) return;
    if (h.version === 1) {
      const [usage, limit, stat] = await Promise.all([
        readOptional(fs, `${dir}/memory.usage_in_bytes`),
        readOptional(fs, `${dir}/memory.limit_in_bytes`),
        readOptional(fs, `${dir}/memory.stat`),
      ]);
      const u = num(usage);
      if (u !== undefined) stats.mem_total_bytes = u;
      const l = num(limit);
      if (l !== undefined && l < V1_UNLIMITED) stats.mem_limit_bytes = l;
      if (stat !== undefined) {
        // total_* include descendants (use_hierarchy), which is what a container means.
        const s = parseKeyed(stat);
        const rss = s.get('total_rss') ?? s.get('rss');
        const cache = s.get('total_cache') ?? s.get('cache');
        const mapped = s.get('total_mapped_file') ?? s.get('mapped_file');
        const swap = s.get('total_swap') ?? s.get('swap');
        const unevictable = s.get('total_unevictable') ?? s.get('unevictable');
        if (rss !== undefined) stats.mem_rss_bytes = stats.mem_anon_bytes = rss;
        if (cache !== undefined) stats.mem_cache_bytes = stats.mem_file_bytes = cache;
        if (mapped !== undefined) stats.mem_mapped_file_bytes = mapped;
        if (swap !== undefined) stats.mem_swap_bytes = swap;
        if (unevictable !== undefined) stats.mem_unevictable_bytes = unevictable;
      }
      return;
    }
    const [current, max, stat] = await Promise.all([
      readOptional(fs, `${dir}/memory.current`),
      readOptional(fs, `${dir}/memory.max`),
      readOptional(fs, `${dir}/memory.stat`),
    ]);
    const c = num(current);
    if (c !== undefined) stats.mem_total_bytes = c;
    const m = num(max);
    if (m !== undefined) stats.mem_limit_bytes = m;
    if (stat !== undefined) {
      const s = parseKeyed(stat);
      const anon = s.get('anon');
      const file = s.get('file');
      if (anon !== undefined) stats.mem_rss_bytes = stats.mem_anon_bytes = anon;
      if (file !== undefined) stats.mem_cache_bytes = stats.mem_file_bytes = file;
      const mapped = s.get('file_mapped');
      if (mapped !== undefined) stats.mem_mapped_file_bytes = mapped;
      const unevictable = s.get('unevictable');
      if (unevictable !== undefined) stats.mem_unevictable_bytes = unevictable;
    }
    const swap = num(await readOptional(fs, `${dir}/memory.swap.current`));
    if (swap !== undefined) stats.mem_swap_bytes = swap;
  },
};

/** Reads the OOM verdict and peak. Call before the cgroup is removed. */
export async function oomState(h: CgroupHandle, fs: CgroupFs): Promise<OomState> {
  const dir = h.dir('memory');
  if (dir === undefined) return { oomKilled: false };
  if (h.version === 1) {
    const ctl = await readOptional(fs, `${dir}/memory.oom_control`);
    const c = ctl === undefined ? new Map<string, number>() : parseKeyed(ctl);
    // `oom_kill` (Linux ≥ 4.13) counts kills; older kernels only show `under_oom` while it happens.
    const oomKilled = (c.get('oom_kill') ?? 0) > 0 || (c.get('under_oom') ?? 0) > 0;
    // Peak and limit only matter for the message: read them only on OOM (this runs at every exit).
    if (!oomKilled) return { oomKilled };
    const [peak, limit] = await Promise.all([
      readOptional(fs, `${dir}/memory.max_usage_in_bytes`),
      readOptional(fs, `${dir}/memory.limit_in_bytes`),
    ]);
    const l = num(limit);
    return { oomKilled, peakBytes: num(peak), limitBytes: l !== undefined && l < V1_UNLIMITED ? l : undefined };
  }
  const events = await readOptional(fs, `${dir}/memory.events`);
  const e = events === undefined ? new Map<string, number>() : parseKeyed(events);
  if (!((e.get('oom_kill') ?? 0) > 0)) return { oomKilled: false };
  const [peak, max] = await Promise.all([readOptional(fs, `${dir}/memory.peak`), readOptional(fs, `${dir}/memory.max`)]);
  return { oomKilled: true, peakBytes: num(peak), limitBytes: num(max) };
}

export function oomMessage(s: OomState): string {
  const mib = (b: number): string => (b / MiB).toFixed(1);
  const limit = s.limitBytes !== undefined ? ` ${mib(s.limitBytes)} MiB` : '';
  const peak = s.peakBytes !== undefined ? `: peak ${mib(s.peakBytes)} MiB` : '';
  return `Memory limit${limit} exceeded${peak}`;
}
