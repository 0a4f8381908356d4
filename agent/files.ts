/**
 * Sandbox file access for `GET /files/read` and `/files/browse`.
 *
 * Invariant: nothing outside a sandbox of this agent is ever opened, whatever a task does to its
 * sandbox meanwhile. Checking a path and then opening it is a race a task wins by swapping a
 * symlink in between, so no path inside a sandbox is ever followed: the sandbox directory is
 * opened (its parents belong to the agent), then each component below it is opened relative to
 * the directory fd before it (`/proc/self/fd/N/<name>`, i.e. openat) with O_NOFOLLOW — a symlink
 * at any component fails the open (ELOOP) instead of being followed — and every fd is checked by
 * fstat (a directory where one is needed; a regular file to read). What is read is read from that
 * fd. Requests with `..` segments or NUL are refused before touching the filesystem.
 *
 * Hard links: a regular file with more than one link that its task's user does not own is refused
 * (a link to a file outside, made where the kernel allows it).
 *
 * Paths may be absolute (`/…/frameworks/F/executors/E/runs/C/stdout`), relative to the work dir
 * (`frameworks/F/executors/E/runs/C/stdout`), or relative to a task's sandbox when the caller
 * names the task.
 */
import { constants, type Stats } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { BerthError } from '../proto/errors.js';

/** Largest chunk one read returns (Mesos pages by offset/length too). */
export const MAX_READ_BYTES = 4 << 20;
export const DEFAULT_READ_BYTES = 1 << 20;

export interface ReadResult { data: string; offset: number }
export interface BrowseEntry { path: string; size: number; mode: string; mtime: number; nlink: number; uid: number; gid: number }

/** Matches `<workDir>/frameworks/<f>/executors/<e>/runs/<c>` as a prefix of a relative path. */
const SANDBOX_DEPTH = 6;
/** Deepest path served below a sandbox (bounds the per-request work). */
const MAX_DEPTH = 64;

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
// O_NONBLOCK: a FIFO a task left in its sandbox must not hang the request.
const ANY_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** A path inside a sandbox, opened without following any link: its fd and what fstat said. */
interface Opened { fh: FileHandle; st: Stats; path: string; sandboxOwner: number }

export class SandboxFiles {
  constructor(private readonly workDir: string, private readonly sandboxOf: (taskId: string) => string | undefined) {}

  /** Splits a request into its sandbox and the components below it (lexically; nothing is opened). */
  private locate(path: string | undefined, taskId?: string): { sandbox: string; parts: string[]; abs: string } {
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
      const rel = relative(sb, abs);
      if (rel.split(sep).includes('..') || isAbsolute(rel)) throw new BerthError('FORBIDDEN', `path '${path}' is not inside the sandbox of task '${taskId}'`);
    } else {
      abs = isAbsolute(path) ? path : join(this.workDir, path);
      const rel = relative(this.workDir, abs).split(sep);
      if (rel.length < SANDBOX_DEPTH || rel[0] !== 'frameworks' || rel[2] !== 'executors' || rel[4] !== 'runs' || rel.some((s) => s === '..')) {
        throw new BerthError('FORBIDDEN', `path '${path}' is not inside a task sandbox (${this.workDir}/frameworks/<fid>/executors/<eid>/runs/<cid>/…)`);
      }
      sandbox = join(this.workDir, ...rel.slice(0, SANDBOX_DEPTH));
    }
    const parts = relative(sandbox, abs).split(sep).filter((p) => p !== '' && p !== '.');
    if (parts.length > MAX_DEPTH) throw new BerthError('INVALID', `path '${path}' is deeper than ${MAX_DEPTH} levels`);
    return { sandbox, parts, abs };
  }

  /** The sandbox directory a request names (lexically, nothing opened), for authorization. */
  sandboxFor(path: string | undefined, taskId?: string): string {
    return this.locate(path, taskId).sandbox;
  }

  /**
   * Opens a path inside a sandbox without following links (see the invariant). Throws FORBIDDEN
   * when a component is a link (or not a directory where one is needed), NOT_FOUND when missing.
   */
  private async openBeneath(path: string | undefined, taskId?: string): Promise<Opened> {
    const { sandbox, parts, abs } = this.locate(path, taskId);
    // The sandbox directory's parents are the agent's (root-owned, not writable by tasks); the
    // sandbox itself must not be a link either.
    let dir: FileHandle;
    try {
      dir = await open(sandbox, DIR_FLAGS);
    } catch (e) {
      throw mapOpenError(e, `sandbox ${sandbox}`, path);
    }
    let st = await dir.stat();
    const sandboxOwner = st.uid;
    let cur = dir;
    try {
      for (let i = 0; i < parts.length; i++) {
        const last = i === parts.length - 1;
        let next: FileHandle;
        try {
          next = await open(`/proc/self/fd/${cur.fd}/${parts[i]}`, last ? ANY_FLAGS : DIR_FLAGS);
        } catch (e) {
          throw mapOpenError(e, parts.slice(0, i + 1).join('/'), path);
        }
        await cur.close();
        cur = next;
        st = await cur.stat();
        if (!last && !st.isDirectory()) throw new BerthError('FORBIDDEN', `path '${path}': ${parts.slice(0, i + 1).join('/')} is not a directory`);
      }
      return { fh: cur, st, path: abs, sandboxOwner };
    } catch (e) {
      await cur.close().catch(() => undefined);
      throw e;
    }
  }

  /** Mesos semantics: offset -1 (or absent with length -1) returns the size as `offset` and no data. */
  async read(path: string | undefined, offset: number, length: number | undefined, taskId?: string): Promise<ReadResult> {
    const o = await this.openBeneath(path, taskId);
    try {
      if (o.st.isDirectory()) throw new BerthError('INVALID', `'${path}' is a directory; use /files/browse`);
      if (!o.st.isFile()) throw new BerthError('FORBIDDEN', `'${path}' is not a regular file`);
      if (o.st.nlink > 1 && o.st.uid !== o.sandboxOwner) throw new BerthError('FORBIDDEN', `'${path}' is a hard link to a file its task does not own`);
      if (offset === -1) return { data: '', offset: o.st.size };
      if (!Number.isInteger(offset) || offset < 0) throw new BerthError('INVALID', `bad offset ${offset}`);
      const len = Math.min(MAX_READ_BYTES, length === undefined || length < 0 ? DEFAULT_READ_BYTES : length, Math.max(0, o.st.size - offset));
      if (len === 0) return { data: '', offset };
      const buf = Buffer.alloc(len);
      const { bytesRead } = await o.fh.read(buf, 0, len, offset);
      return { data: buf.subarray(0, bytesRead).toString('utf8'), offset };
    } finally {
      await o.fh.close();
    }
  }

  async browse(path: string | undefined, taskId?: string): Promise<BrowseEntry[]> {
    const o = await this.openBeneath(path, taskId);
    try {
      if (!o.st.isDirectory()) throw new BerthError('INVALID', `'${path}' is not a directory`);
      const at = `/proc/self/fd/${o.fh.fd}`;
      const out: BrowseEntry[] = [];
      for (const name of (await readdir(at)).sort()) {
        // Each entry is looked at through the directory's fd, without following it (lstat semantics).
        let fh: FileHandle | undefined;
        try {
          fh = await open(`${at}/${name}`, ANY_FLAGS);
          const s = await fh.stat();
          out.push({ path: join(o.path, name), size: s.size, mode: modeString(s.mode, s.isDirectory()), mtime: Math.floor(s.mtimeMs / 1000), nlink: s.nlink, uid: s.uid, gid: s.gid });
        } catch (e) {
          // A link: listed as such (its target is never looked at); anything vanished: skipped.
          if ((e as NodeJS.ErrnoException).code === 'ELOOP') out.push({ path: join(o.path, name), size: 0, mode: 'l---------', mtime: 0, nlink: 1, uid: -1, gid: -1 });
        } finally {
          await fh?.close().catch(() => undefined);
        }
      }
      return out;
    } finally {
      await o.fh.close();
    }
  }
}

function mapOpenError(e: unknown, what: string, path: string | undefined): BerthError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return new BerthError('FORBIDDEN', `path '${path}': ${what} is a symbolic link; links are never followed`);
  if (code === 'ENOTDIR') return new BerthError('FORBIDDEN', `path '${path}': ${what} is not a directory (links are never followed)`);
  if (code === 'ENOENT') return new BerthError('NOT_FOUND', `no such file: ${path}`);
  if (code === 'EACCES' || code === 'EPERM') return new BerthError('FORBIDDEN', `path '${path}': permission denied`);
  return new BerthError('IO', `cannot open ${what}: ${(e as Error).message}`);
}

function modeString(mode: number, dir: boolean): string {
  const rwx = ['---', '--x', '-w-', '-wx', 'r--', 'r-x', 'rw-', 'rwx'];
  return (dir ? 'd' : '-') + rwx[(mode >> 6) & 7]! + rwx[(mode >> 3) & 7]! + rwx[mode & 7]!;
}
