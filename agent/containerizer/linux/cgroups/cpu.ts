/**
 * cpu (+ cpuacct on v1): relative weight from `cpus`, optional hard cap (CFS
 * quota), and usage/throttling accounting.
 *
 * Mesos semantics: shares = 1024 × cpus (min 2); with CFS enabled,
 * quota = cpus × period with period 100 ms (min quota 1 ms).
 * v2 has no shares: cpu.weight uses the conversion runc, crun, systemd and
 * Kubernetes agree on (weight = 1 + (shares − 2) × 9999 / 262142), so a
 * container gets the same relative share on either version.
 */
import type { ContainerLimits } from '../../types.js';
import type { ResourceStatistics } from '../../../../proto/types.js';
import type { CgroupFs } from './fs.js';
import { parseKeyed, readOptional } from './fs.js';
import type { CgroupHandle, Subsystem, SubsystemOptions } from './hierarchy.js';

export const CPU_SHARES_PER_CPU = 1024;
export const MIN_CPU_SHARES = 2;
export const CFS_PERIOD_US = 100_000;
export const MIN_CFS_QUOTA_US = 1_000;
/** USER_HZ: the unit of v1 cpuacct.stat (fixed at 100 on every Linux ABI). */
const USER_HZ = 100;

export function cpuShares(cpus: number): number {
  return Math.max(MIN_CPU_SHARES, Math.floor(CPU_SHARES_PER_CPU * cpus));
}

export function sharesToWeight(shares: number): number {
  return Math.min(10_000, Math.max(1, 1 + Math.floor(((shares - 2) * 9999) / 262_142)));
}

export function cfsQuotaUs(cpus: number): number {
  return Math.max(MIN_CFS_QUOTA_US, Math.floor(cpus * CFS_PERIOD_US));
}

export const cpuSubsystem: Subsystem = {
  name: 'cpu',

  async prepare(h: CgroupHandle, fs: CgroupFs, limits: ContainerLimits, opts: SubsystemOptions): Promise<void> {
    const dir = h.dir('cpu');
    if (dir === undefined || !(limits.cpus > 0)) return;
    const shares = cpuShares(limits.cpus);
    if (h.version === 1) {
      await fs.write(`${dir}/cpu.shares`, String(shares));
      if (opts.enableCfs) {
        await fs.write(`${dir}/cpu.cfs_period_us`, String(CFS_PERIOD_US));
        await fs.write(`${dir}/cpu.cfs_quota_us`, String(cfsQuotaUs(limits.cpus)));
      }
    } else {
      await fs.write(`${dir}/cpu.weight`, String(sharesToWeight(shares)));
      if (opts.enableCfs) await fs.write(`${dir}/cpu.max`, `${cfsQuotaUs(limits.cpus)} ${CFS_PERIOD_US}`);
    }
  },

  update(h: CgroupHandle, fs: CgroupFs, limits: ContainerLimits, opts: SubsystemOptions): Promise<void> {
    return this.prepare(h, fs, limits, opts);
  },

  async usage(h: CgroupHandle, fs: CgroupFs, stats: ResourceStatistics): Promise<void> {
    if (h.version === 1) {
      const acct = h.dir('cpuacct');
      if (acct !== undefined) {
        const text = await readOptional(fs, `${acct}/cpuacct.stat`);
        if (text !== undefined) {
          const s = parseKeyed(text);
          stats.cpus_user_time_secs = (s.get('user') ?? 0) / USER_HZ;
          stats.cpus_system_time_secs = (s.get('system') ?? 0) / USER_HZ;
        }
      }
      const cpu = h.dir('cpu');
      if (cpu !== undefined) {
        const text = await readOptional(fs, `${cpu}/cpu.stat`);
        if (text !== undefined) {
          const s = parseKeyed(text);
          stats.cpus_nr_periods = s.get('nr_periods') ?? 0;
          stats.cpus_nr_throttled = s.get('nr_throttled') ?? 0;
          stats.cpus_throttled_time_secs = (s.get('throttled_time') ?? 0) / 1e9;
        }
      }
      return;
    }
    // v2: one cpu.stat in microseconds; the throttling keys exist only with the cpu controller enabled.
    const dir = h.dir('cpuacct') ?? h.dir('cpu');
    if (dir === undefined) return;
    const text = await readOptional(fs, `${dir}/cpu.stat`);
    if (text === undefined) return;
    const s = parseKeyed(text);
    stats.cpus_user_time_secs = (s.get('user_usec') ?? 0) / 1e6;
    stats.cpus_system_time_secs = (s.get('system_usec') ?? 0) / 1e6;
    if (s.has('nr_periods')) {
      stats.cpus_nr_periods = s.get('nr_periods') ?? 0;
      stats.cpus_nr_throttled = s.get('nr_throttled') ?? 0;
      stats.cpus_throttled_time_secs = (s.get('throttled_usec') ?? 0) / 1e6;
    }
  },
};

/** Total cpu time (user+system, seconds) from the cgroup; the figure the CFS acceptance test measures. */
export async function cpuTotalSecs(h: CgroupHandle, fs: CgroupFs): Promise<number> {
  if (h.version === 1) {
    const acct = h.dir('cpuacct');
    const text = acct === undefined ? undefined : await readOptional(fs, `${acct}/cpuacct.usage`);
    return text === undefined ? 0 : Number(text.trim()) / 1e9;
  }
  const dir = h.dir('cpuacct');
  const text = dir === undefined ? undefined : await readOptional(fs, `${dir}/cpu.stat`);
  return text === undefined ? 0 : (parseKeyed(text).get('usage_usec') ?? 0) / 1e6;
}
