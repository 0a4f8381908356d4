/**
 * The file operations the cgroup code performs, behind one small interface so
 * the v2 code path can be exercised over a plain directory tree with the v2
 * file layout (tests) as well as over a real cgroupfs.
 *
 * Invariant: every cgroup effect of the containerizer goes through a CgroupFs;
 * nothing else in linux/ touches /sys/fs/cgroup directly.
 */
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises';

export interface CgroupFs {
  read(path: string): Promise<string>;
  /** Writes without creating or truncating semantics beyond what cgroupfs gives (one write call). */
  write(path: string, data: string): Promise<void>;
  /** Creates a directory; resolves quietly if it exists. */
  mkdir(path: string): Promise<void>;
  /** Removes a (cgroup) directory; on cgroupfs the control files vanish with it. */
  rmdir(path: string): Promise<void>;
  /** Sub-directory names; [] when the directory is missing. */
  subdirs(path: string): Promise<string[]>;
}

export const realCgroupFs: CgroupFs = {
  read: (p) => readFile(p, 'utf8'),
  // flag 'r+': cgroup control files exist already; never create a regular file by mistake.
  write: (p, d) => writeFile(p, d, { flag: 'r+' }),
  mkdir: async (p) => {
    // Another agent may rmdir the shared parent (`berth`) between our recursive mkdir's
    // steps when it removes its own empty root: try again, the parent is made anew.
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(p, { recursive: true });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 4) throw err;
      }
    }
  },
  rmdir: (p) => rmdir(p),
  subdirs: async (p) => {
    try {
      const entries = await readdir(p, { withFileTypes: true });
      return entries.filter((e) => e.isDirectory()).map((e) => e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  },
};

/** Parses flat-keyed files ("key value" per line: cpu.stat, memory.stat, memory.events, …). */
export function parseKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const n = Number(line.slice(sp + 1).trim());
    if (Number.isFinite(n)) out.set(line.slice(0, sp), n);
  }
  return out;
}

/** Reads a file that may legitimately be absent (older kernels, missing controller). */
export async function readOptional(fs: CgroupFs, path: string): Promise<string | undefined> {
  try {
    return await fs.read(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENODEV' || code === 'EOPNOTSUPP') return undefined;
    throw err;
  }
}

export function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && codes.includes(code);
}
