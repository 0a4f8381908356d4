/**
 * Disk: Mesos' `disk/du` isolator and sandbox garbage collection.
 *
 * DiskQuota measures each running task's sandbox periodically (as `du`: allocated blocks, links
 * never followed, each inode counted once) and reports a task over its `disk` resource, which the
 * task lifecycle then ends TASK_FAILED REASON_CONTAINER_LIMITATION_DISK. A measurement stops as
 * soon as it passes the limit, and each walks at most MAX_ENTRIES entries, so a task cannot make
 * the agent spend unbounded time on its sandbox.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Entries one measurement visits at most; a sandbox with more counts as over any limit it is near. */
export const MAX_ENTRIES = 1_000_000;

export interface DuResult {
  bytes: number;
  /** The walk stopped early (past `stopAbove`, or MAX_ENTRIES). */
  truncated: boolean;
}

/** Allocated bytes under `dir` (st_blocks × 512), without following links; stops once above `stopAbove`. */
export async function du(dir: string, stopAbove = Infinity): Promise<DuResult> {
  let bytes = 0;
  let entries = 0;
  const seen = new Set<string>();
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let names: string[];
    try { names = await readdir(d); } catch { continue; }
    for (const n of names) {
      if (++entries > MAX_ENTRIES) return { bytes, truncated: true };
      const p = join(d, n);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      if (st.nlink > 1 && !st.isDirectory()) {
        const k = `${st.dev}:${st.ino}`;
        if (seen.has(k)) continue;
        seen.add(k);
      }
      bytes += st.blocks * 512;
      if (bytes > stopAbove) return { bytes, truncated: true };
      if (st.isDirectory()) stack.push(p);
    }
  }
  return { bytes, truncated: false };
}
