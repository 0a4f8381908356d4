/**
 * cgroups v1: one mounted hierarchy per controller (or per co-mounted group,
 * e.g. "cpu,cpuacct"). A container's cgroup exists once per distinct mount.
 */
import { join } from 'node:path';
import type { CgroupFs } from './fs.js';
import { isErrno } from './fs.js';
import type { CgroupHandle, Controller, Hierarchy, HierarchyLabel } from './hierarchy.js';
import { parsePids, rmdirRetry } from './hierarchy.js';

export class V1Hierarchy implements Hierarchy {
  readonly version = 1 as const;
  readonly controllers: ReadonlySet<Controller>;
  /** Distinct mount points in a stable order (first one holding the freezer, then pids: the best sources for the pid list). */
  private readonly mountDirs: string[];

  constructor(
    readonly fs: CgroupFs,
    /** controller → its mount point */
    private readonly mounts: ReadonlyMap<Controller, string>,
    private readonly root: string,
    readonly label: HierarchyLabel = 'v1',
  ) {
    this.controllers = new Set(mounts.keys());
    const order: Controller[] = ['freezer', 'pids', 'memory', 'cpu', 'cpuacct'];
    this.mountDirs = [...new Set(order.map((c) => mounts.get(c)).filter((d): d is string => d !== undefined))];
  }

  async init(): Promise<void> {
    for (const m of this.mountDirs) await this.fs.mkdir(join(m, this.root));
  }

  handle(containerId: string, relPath = `${this.root}/${containerId}`): CgroupHandle {
    const mounts = this.mounts;
    return {
      version: 1,
      containerId,
      relPath,
      dir(c: Controller) {
        const m = mounts.get(c);
        return m === undefined ? undefined : join(m, relPath);
      },
    };
  }

  async create(h: CgroupHandle): Promise<void> {
    await Promise.all(this.mountDirs.map((m) => this.fs.mkdir(join(m, h.relPath))));
  }

  procsFiles(h: CgroupHandle): string[] {
    return this.mountDirs.map((m) => join(m, h.relPath, 'cgroup.procs'));
  }

  async pids(h: CgroupHandle): Promise<number[]> {
    // Every task joins every hierarchy, so any one lists them all; take the union anyway
    // so a half-created container (a join that failed midway) is still fully killed.
    const all = new Set<number>();
    for (const m of this.mountDirs) {
      try {
        for (const p of parsePids(await this.fs.read(join(m, h.relPath, 'cgroup.procs')))) all.add(p);
      } catch (err) {
        if (!isErrno(err, 'ENOENT', 'ENODEV')) throw err;
      }
    }
    return [...all];
  }

  async remove(h: CgroupHandle, busyTimeoutMs?: number): Promise<void> {
    await Promise.all(this.mountDirs.map((m) => rmdirRetry(this.fs, join(m, h.relPath), busyTimeoutMs)));
  }

  async listContainers(): Promise<string[]> {
    const ids = new Set<string>();
    for (const m of this.mountDirs) for (const d of await this.fs.subdirs(join(m, this.root))) ids.add(d);
    return [...ids];
  }
}
