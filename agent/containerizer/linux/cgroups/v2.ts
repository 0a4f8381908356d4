/**
 * cgroups v2: one unified tree. Berth's root `<mount>/<cgroupRoot>` holds no
 * process itself (the v2 "no internal processes" rule) and delegates cpu,
 * memory and pids to the container cgroups below it via cgroup.subtree_control.
 * Freezing (cgroup.freeze) and killing (cgroup.kill, Linux ≥ 5.14) are core
 * features of every non-root v2 cgroup.
 */
import { join } from 'node:path';
import type { CgroupFs } from './fs.js';
import { isErrno, readOptional } from './fs.js';
import type { CgroupHandle, Controller, Hierarchy } from './hierarchy.js';
import { parsePids, rmdirRetry } from './hierarchy.js';

const DELEGATED = ['cpu', 'memory', 'pids'] as const;

export class V2Hierarchy implements Hierarchy {
  readonly version = 2 as const;
  readonly label = 'v2' as const;
  private available = new Set<Controller>();

  constructor(
    readonly fs: CgroupFs,
    private readonly mount: string,
    private readonly root: string,
  ) {}

  get controllers(): ReadonlySet<Controller> {
    return this.available;
  }

  /** Controllers offered to the mount's children, from `<mount>/cgroup.controllers`. */
  async offered(): Promise<string[]> {
    const text = (await readOptional(this.fs, join(this.mount, 'cgroup.controllers'))) ?? '';
    return text.split(/\s+/).filter(Boolean);
  }

  async init(): Promise<void> {
    const offered = new Set(await this.offered());
    const wanted = DELEGATED.filter((c) => offered.has(c));
    const enable = wanted.map((c) => `+${c}`).join(' ');
    const rootDir = join(this.mount, this.root);
    // Parent first: a controller can only be enabled in a child's subtree_control
    // when the parent's subtree_control enabled it for that child. A nested root
    // (`berth/<agent>`: one per agent) is enabled level by level.
    if (enable) await this.fs.write(join(this.mount, 'cgroup.subtree_control'), enable);
    let dir = this.mount;
    for (const part of this.root.split('/')) {
      dir = join(dir, part);
      await this.fs.mkdir(dir);
      if (enable) await this.fs.write(join(dir, 'cgroup.subtree_control'), enable);
    }
    this.available = new Set<Controller>(wanted);
    // cpu.stat (usage) and cgroup.freeze exist in every non-root cgroup whatever the controllers.
    this.available.add('cpuacct');
    if ((await readOptional(this.fs, join(rootDir, 'cgroup.freeze'))) !== undefined) this.available.add('freezer');
  }

  handle(containerId: string, relPath = `${this.root}/${containerId}`): CgroupHandle {
    const dir = join(this.mount, relPath);
    const available = this.available;
    return {
      version: 2,
      containerId,
      relPath,
      dir: (c: Controller) => (available.has(c) ? dir : undefined),
    };
  }

  private dirOf(h: CgroupHandle): string {
    return join(this.mount, h.relPath);
  }

  async create(h: CgroupHandle): Promise<void> {
    await this.fs.mkdir(this.dirOf(h));
  }

  procsFiles(h: CgroupHandle): string[] {
    return [join(this.dirOf(h), 'cgroup.procs')];
  }

  async pids(h: CgroupHandle): Promise<number[]> {
    try {
      return parsePids(await this.fs.read(join(this.dirOf(h), 'cgroup.procs')));
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENODEV')) return [];
      throw err;
    }
  }

  /** Writes cgroup.kill (atomic SIGKILL of the whole subtree, no fork race). False when the kernel lacks it. */
  async kill(h: CgroupHandle): Promise<boolean> {
    try {
      await this.fs.write(join(this.dirOf(h), 'cgroup.kill'), '1');
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'EINVAL', 'EOPNOTSUPP')) return false;
      throw err;
    }
  }

  async remove(h: CgroupHandle, busyTimeoutMs?: number): Promise<void> {
    await rmdirRetry(this.fs, this.dirOf(h), busyTimeoutMs);
  }

  async listContainers(): Promise<string[]> {
    return this.fs.subdirs(join(this.mount, this.root));
  }
}
