/**
 * Sandbox file access for `GET /files/read` and `/files/browse`.
 *
 * Invariant: a path is served only if its real path (symlinks resolved) lies
 * inside the real path of a sandbox of this agent. Requests are refused before
 * touching the filesystem when they contain `..` segments or NUL, and after
 * resolution when a symlink points outside; so neither `../../etc/passwd` nor
 * a task's `ln -s / escape` reads anything outside its sandbox.
 *
 * Paths may be absolute (`/…/frameworks/F/executors/E/runs/C/stdout`),
 * relative to the work dir (`frameworks/F/executors/E/runs/C/stdout`), or
 * relative to a task's sandbox when the caller names the task.
 */
import { lstat, open, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { BerthError } from '../proto/errors.js';

/** Largest chunk one read returns (Mesos pages by offset/length too). */
export const MAX_READ_BYTES = 4 << 20;
export const DEFAULT_READ_BYTES = 1 << 20;

export interface ReadResult { data: string; offset: number }
export interface BrowseEntry { path: string; size: number; mode: string; mtime: number; nlink: number; uid: number; gid: number }

/** Matches `<workDir>/frameworks/<f>/executors/<e>/runs/<c>` as a prefix of a relative path. */
const SANDBOX_DEPTH = 6;

export class SandboxFiles {
  constructor(private readonly workDir: string, private readonly sandboxOf: (taskId: string) => string | undefined) {}

  /**
   * Resolves a requested path to a real path inside a sandbox, or throws
   * BerthError FORBIDDEN (escape) / NOT_FOUND (no such file or sandbox).
   */
  async resolve(path: string | undefined, taskId?: string): Promise<string> {
    if (!path) throw new BerthError('INVALID', "missing 'path'");
    if (path.includes('\0')) throw new BerthError('FORBIDDEN', 'path contains NUL');
    if (path.split(/[\\/]+/).includes('..')) throw new BerthError('FORBIDDEN', `path '${path}' contains '..'; only files inside a sandbox can be read`);
    let sandbox: string;
    let abs: string;
    if (taskId !== undefined) {
      const sb = this.sandboxOf(taskId);
      if (!sb) throw new BerthError('NOT_FOUND', `no sandbox for task '${taskId}' on this agent`);
      sandbox = sb;
      abs = isAbsolute(path) ? path : join(sb, path);
    } else {
      abs = isAbsolute(path) ? path : join(this.workDir, path);
      const rel = relative(this.workDir, abs).split(sep);
      if (rel.length < SANDBOX_DEPTH || rel[0] !== 'frameworks' || rel[2] !== 'executors' || rel[4] !== 'runs' || rel.some((s) => s === '..')) {
        throw new BerthError('FORBIDDEN', `path '${path}' is not inside a task sandbox (${this.workDir}/frameworks/<fid>/executors/<eid>/runs/<cid>/…)`);
      }
      sandbox = join(this.workDir, ...rel.slice(0, SANDBOX_DEPTH));
    }
    let realSandbox: string;
    let real: string;
    try {
      realSandbox = await realpath(sandbox);
    } catch {
      throw new BerthError('NOT_FOUND', `sandbox ${sandbox} does not exist`);
    }
    try {
      real = await realpath(abs);
    } catch {
      throw new BerthError('NOT_FOUND', `no such file: ${path}`);
    }
    if (real !== realSandbox && !real.startsWith(realSandbox + sep)) {
      throw new BerthError('FORBIDDEN', `path '${path}' resolves outside its sandbox`);
    }
    return real;
  }

  /** Mesos semantics: offset -1 (or absent with length -1) returns the size as `offset` and no data. */
  async read(path: string | undefined, offset: number, length: number | undefined, taskId?: string): Promise<ReadResult> {
    const real = await this.resolve(path, taskId);
    const st = await stat(real);
    if (st.isDirectory()) throw new BerthError('INVALID', `'${path}' is a directory; use /files/browse`);
    if (offset === -1) return { data: '', offset: st.size };
    if (!Number.isInteger(offset) || offset < 0) throw new BerthError('INVALID', `bad offset ${offset}`);
    const len = Math.min(MAX_READ_BYTES, length === undefined || length < 0 ? DEFAULT_READ_BYTES : length, Math.max(0, st.size - offset));
    if (len === 0) return { data: '', offset };
    const fh = await open(real, 'r');
    try {
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, offset);
      return { data: buf.subarray(0, bytesRead).toString('utf8'), offset };
    } finally {
      await fh.close();
    }
  }

  async browse(path: string | undefined, taskId?: string): Promise<BrowseEntry[]> {
    const real = await this.resolve(path, taskId);
    const st = await stat(real);
    if (!st.isDirectory()) throw new BerthError('INVALID', `'${path}' is not a directory`);
    const out: BrowseEntry[] = [];
    for (const name of (await readdir(real)).sort()) {
      try {
        const s = await lstat(join(real, name)).catch(() => undefined); // lstat: never follow a link out
        if (!s) continue;
        out.push({ path: join(real, name), size: s.size, mode: modeString(s.mode, s.isDirectory()), mtime: Math.floor(s.mtimeMs / 1000), nlink: s.nlink, uid: s.uid, gid: s.gid });
      } catch { /* vanished */ }
    }
    return out;
  }
}

function modeString(mode: number, dir: boolean): string {
  const rwx = ['---', '--x', '-w-', '-wx', 'r--', 'r-x', 'rw-', 'rwx'];
  return (dir ? 'd' : '-') + rwx[(mode >> 6) & 7]! + rwx[(mode >> 3) & 7]! + rwx[mode & 7]!;
}
