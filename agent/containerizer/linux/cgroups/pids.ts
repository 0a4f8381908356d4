/**
 * pids: caps the number of tasks (processes and threads) of a container, so a
 * fork bomb fails its forks inside the container instead of exhausting the
 * host's pid space. Same file names on v1 and v2. Mesos has no such isolator.
 */
import type { ContainerLimits } from '../../types.js';
import type { ResourceStatistics } from '../../../../proto/types.js';
import type { CgroupFs } from './fs.js';
import { readOptional } from './fs.js';
import type { CgroupHandle, Subsystem, SubsystemOptions } from './hierarchy.js';
import { parsePids } from './hierarchy.js';

export const pidsSubsystem: Subsystem = {
  name: 'pids',

  async prepare(h: CgroupHandle, fs: CgroupFs, _limits: ContainerLimits, opts: SubsystemOptions): Promise<void> {
    const dir = h.dir('pids');
    if (dir === undefined) return;
    await fs.write(`${dir}/pids.max`, opts.pidsMax > 0 ? String(Math.floor(opts.pidsMax)) : 'max');
  },

  update(h: CgroupHandle, fs: CgroupFs, limits: ContainerLimits, opts: SubsystemOptions): Promise<void> {
    return this.prepare(h, fs, limits, opts);
  },

  async usage(h: CgroupHandle, fs: CgroupFs, stats: ResourceStatistics): Promise<void> {
    const dir = h.dir('pids');
    if (dir === undefined) return;
    // pids.current counts tasks (threads); cgroup.procs lists thread-group leaders (processes).
    const [current, procs] = await Promise.all([
      readOptional(fs, `${dir}/pids.current`),
      readOptional(fs, `${dir}/cgroup.procs`),
    ]);
    if (current !== undefined) stats.threads = Number(current.trim());
    if (procs !== undefined) stats.processes = parsePids(procs).length;
  },
};
