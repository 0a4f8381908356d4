/**
 * Finds the cgroup hierarchies from /proc/self/mountinfo and picks the layout.
 *
 * Decision (made once at start, logged by the caller):
 *  - any of cpu/memory/pids mounted as v1 → V1Hierarchy over the v1 mounts;
 *    labelled 'hybrid' when a cgroup2 mount exists too (its controllers, if
 *    any, are not the ones Berth needs: a controller lives in one version only);
 *  - else a cgroup2 mount offering them → V2Hierarchy;
 *  - else no usable cgroups.
 */
import { readFile } from 'node:fs/promises';
import type { CgroupFs } from './fs.js';
import { realCgroupFs } from './fs.js';
import type { Controller, Hierarchy } from './hierarchy.js';
import { CONTROLLERS } from './hierarchy.js';
import { V1Hierarchy } from './v1.js';
import { V2Hierarchy } from './v2.js';

export interface CgroupMounts {
  v1: Map<Controller, string>;
  v2?: string;
}

/** Unescapes mountinfo's octal escapes (\040 for space, …). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export function parseMountinfo(text: string): CgroupMounts {
  const out: CgroupMounts = { v1: new Map() };
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const mountPoint = unescape(left[4] ?? '');
    const fstype = right[0];
    if (fstype === 'cgroup2') {
      out.v2 ??= mountPoint;
    } else if (fstype === 'cgroup') {
      const superOpts = (right[2] ?? '').split(',');
      for (const c of CONTROLLERS) if (superOpts.includes(c) && !out.v1.has(c)) out.v1.set(c, mountPoint);
    }
  }
  return out;
}

export async function detectHierarchy(cgroupRoot: string, fs: CgroupFs = realCgroupFs, mountinfo?: string): Promise<Hierarchy | undefined> {
  const mounts = parseMountinfo(mountinfo ?? (await readFile('/proc/self/mountinfo', 'utf8')));
  const v1Core = (['cpu', 'memory', 'pids'] as const).some((c) => mounts.v1.has(c));
  if (v1Core) return new V1Hierarchy(fs, mounts.v1, cgroupRoot, mounts.v2 !== undefined ? 'hybrid' : 'v1');
  if (mounts.v2 !== undefined) {
    const v2 = new V2Hierarchy(fs, mounts.v2, cgroupRoot);
    const offered = await v2.offered();
    if (offered.some((c) => c === 'cpu' || c === 'memory' || c === 'pids')) return v2;
  }
  return undefined;
}
