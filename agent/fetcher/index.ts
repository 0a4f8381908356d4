/**
 * The Mesos fetcher: puts a task's `CommandInfo.uris` into its sandbox before
 * the command starts.
 *
 * Per URI (in order; the first failure fails the fetch, naming the URI and the cause):
 *  1. get the bytes: `http(s)://` is downloaded by the agent; `file://` and
 *     absolute paths are read *as the task's user* (so a task cannot fetch a file
 *     its user could not read); with `cache: true` through the size-bounded
 *     FetcherCache, keyed by user and URI;
 *  2. name it `output_file` (a relative path inside the sandbox) or the URI's
 *     last path segment;
 *  3. `executable: true` → mode 0755 (no extraction, as Mesos); otherwise, when
 *     `extract` (default true) and the name is an archive (.tar, .tar.gz, .tgz,
 *     .tar.bz2, .tar.xz, .zip, or a lone .gz), extract it into the file's
 *     directory with the system `tar` / `unzip` / `gzip`, run as the task's user;
 *     the archive itself stays, as in Mesos.
 * Every file is owned by the task's user. Every download is bounded in bytes
 * and time; every extraction in time and in the size of each file it writes.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, chown, copyFile, lstat, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError } from '../../proto/errors.js';
import type { Logger } from '../../proto/log.js';
import type { CommandInfo } from '../../proto/types.js';
import type { ResolvedUser } from '../containerizer/linux/users.js';
import { FetcherCache } from './cache.js';

export { FetcherCache, DEFAULT_CACHE_BYTES } from './cache.js';

export type URI = NonNullable<CommandInfo['uris']>[number];

export interface FetchLimits {
  /** Largest file one URI may bring (default 1 GiB). */
  maxBytes: number;
  /** Longest one URI may take to download and extract (default 5 min). */
  timeoutMs: number;
  /** Largest file an extraction may write (default 4 GiB): a small archive cannot fill the disk with one huge file. */
  maxExtractedFileBytes: number;
}
export const DEFAULT_FETCH_LIMITS: FetchLimits = { maxBytes: 2 ** 30, timeoutMs: 5 * 60_000, maxExtractedFileBytes: 4 * 2 ** 30 };
/** At most this many URIs per task. */
export const MAX_URIS = 64;

export interface FetchOptions {
  sandbox: string;
  /** The task's user: owns every file, and local reads and extraction run as it. Undefined = the agent's user. */
  user?: ResolvedUser;
  cache?: FetcherCache;
  limits?: Partial<FetchLimits>;
  /** Aborts the fetch (the task was killed while fetching). */
  signal?: AbortSignal;
  log?: Logger;
}

/** A fetch failed; the message names the URI and the cause (it becomes the TASK_FAILED message). */
export class FetchError extends BerthError {
  override name = 'FetchError';
}

// ---- validation ------------------------------------------------------------------

const SCHEMES = new Set(['http:', 'https:', 'file:']);

/** The first problem with a task's URIs (field named), or undefined. Pure: nothing is touched. */
export function urisError(uris: URI[] | undefined, field = 'task.command.uris'): string | undefined {
  const list = uris ?? [];
  if (list.length > MAX_URIS) return `${field}: at most ${MAX_URIS} URIs per task (got ${list.length})`;
  for (const [i, u] of list.entries()) {
    const f = `${field}[${i}]`;
    if (!u.value) return `${f}.value is empty`;
    if (u.value.length > 4096 || u.value.includes('\0')) return `${f}.value must be at most 4096 characters without NUL`;
    if (!isAbsolute(u.value)) {
      let url: URL;
      try { url = new URL(u.value); } catch { return `${f}.value '${u.value}' is neither a URL nor an absolute path`; }
      if (!SCHEMES.has(url.protocol)) return `${f}.value: scheme '${url.protocol.slice(0, -1)}' is not supported (http, https, file or an absolute path)`;
      if (url.protocol === 'file:' && url.hostname !== '' && url.hostname !== 'localhost') return `${f}.value: file URIs must name a local file (host '${url.hostname}')`;
    }
    if (u.output_file !== undefined) {
      const o = u.output_file;
      if (o === '' || isAbsolute(o) || o.includes('\0') || normalize(o).split(sep).includes('..') || o.length > 1024) return `${f}.output_file must be a relative path inside the sandbox`;
    } else if (!nameOf(u.value)) {
      return `${f}.value '${u.value}' has no file name: give output_file`;
    }
  }
  return undefined;
}

/** The last path segment of a URI, decoded; '' when there is none. */
function nameOf(value: string): string {
  let p = value;
  if (!isAbsolute(value)) {
    try { p = decodeURIComponent(new URL(value).pathname); } catch { return ''; }
  }
  const b = basename(p);
  return b === '.' || b === '..' || b.includes('\0') ? '' : b;
}

// ---- archives --------------------------------------------------------------------

type ArchiveKind = 'tar' | 'zip' | 'gz';
export function archiveKind(name: string): ArchiveKind | undefined {
  const n = name.toLowerCase();
  if (/\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$/.test(n)) return 'tar';
  if (n.endsWith('.zip')) return 'zip';
  if (n.endsWith('.gz')) return 'gz';
  return undefined;
}

interface RunOpts { cwd: string; user?: ResolvedUser; timeoutMs: number; stdout?: NodeJS.WritableStream; maxFileBytes?: number }

/** Runs a system tool as the user; rejects with its stderr (bounded) on failure or timeout. */
function runTool(tool: string[], o: RunOpts): Promise<void> {
  // RLIMIT_FSIZE (prlimit(1), util-linux) bounds every file the tool writes; the kernel stops it with SIGXFSZ.
  const argv = o.maxFileBytes !== undefined ? ['prlimit', `--fsize=${o.maxFileBytes}`, '--', ...tool] : tool;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: o.cwd, uid: o.user?.uid, gid: o.user?.gid, detached: true,
      stdio: ['ignore', o.stdout ? 'pipe' : 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-1000); });
    if (o.stdout) child.stdout!.pipe(o.stdout);
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, o.timeoutMs);
    const name = tool[0]!;
    child.once('error', (e) => { clearTimeout(timer); reject(new Error(`${name} could not start: ${e.message}`)); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${name} timed out after ${o.timeoutMs / 1000} s`));
      else if (code === 0) resolve();
      else if (signal === 'SIGXFSZ' || code === 128 + 25) reject(new Error(`${name} stopped: an extracted file is larger than the limit of ${o.maxFileBytes ?? '?'} bytes`));
      else reject(new Error(`${name} failed (${code ?? signal}): ${err.trim()}`));
    });
  });
}

async function extract(file: string, kind: ArchiveKind, o: RunOpts): Promise<void> {
  // Paths relative to the archive's directory, which is the tool's working directory: the spawn
  // enters it before dropping to the task's user, who may not be able to traverse the agent's
  // work dir above the sandbox.
  const name = basename(file);
  const opts = { ...o, cwd: dirname(file) };
  switch (kind) {
    // GNU tar refuses members with '..' and strips leading '/'; as the task's user it cannot write
    // outside what that user may write. --no-same-owner matters only when that user is root.
    case 'tar': return runTool(['tar', '--no-same-owner', '-xf', name, '-C', '.'], opts);
    // unzip drops '../' components of member names unless told otherwise (-:).
    case 'zip': return runTool(['unzip', '-q', '-o', name, '-d', '.'], opts);
    case 'gz': return runTool(['gzip', '-d', '-k', '-f', name], opts);
  }
}

// ---- getting the bytes -----------------------------------------------------------------

/** A transform that fails once more than `max` bytes went through. */
function byteLimit(max: number, what: string): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > max) cb(new Error(`${what} is larger than the limit of ${max} bytes`));
      else cb(null, chunk);
    },
  });
}

async function download(url: string, dest: string, limits: FetchLimits, abort?: AbortSignal): Promise<void> {
  const timeout = AbortSignal.timeout(limits.timeoutMs);
  const signal = abort ? AbortSignal.any([timeout, abort]) : timeout;
  let res: Response;
  try {
    res = await fetch(url, { signal, redirect: 'follow' });
  } catch (e) {
    throw new Error(abort?.aborted ? 'aborted' : timeout.aborted ? `download timed out after ${limits.timeoutMs / 1000} s` : `download failed: ${causeOf(e)}`);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  }
  const len = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(len) && len > limits.maxBytes) {
    await res.body.cancel().catch(() => undefined);
    throw new Error(`the file is ${len} bytes, over the limit of ${limits.maxBytes} bytes`);
  }
  try {
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), byteLimit(limits.maxBytes, 'the file'), createWriteStream(dest, { mode: 0o600 }));
  } catch (e) {
    throw new Error(abort?.aborted ? 'aborted' : timeout.aborted ? `download timed out after ${limits.timeoutMs / 1000} s` : causeOf(e));
  }
}

function causeOf(e: unknown): string {
  const err = e as Error & { cause?: { message?: string; code?: string } };
  return err.cause?.message ?? err.cause?.code ?? err.message;
}

const switchesUser = (user: ResolvedUser | undefined): user is ResolvedUser =>
  user !== undefined && process.getuid?.() === 0 && user.uid !== 0;

/** Reads a local file into `dest`, with the permissions of `user` (the agent may read more than the task). */
async function readLocal(path: string, dest: string, user: ResolvedUser | undefined, limits: FetchLimits): Promise<void> {
  let st;
  try { st = await stat(path); } catch (e) { throw new Error((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message); }
  if (!st.isFile()) throw new Error('not a regular file');
  if (st.size > limits.maxBytes) throw new Error(`the file is ${st.size} bytes, over the limit of ${limits.maxBytes} bytes`);
  if (!switchesUser(user)) { await copyFile(path, dest); return; }
  const out = createWriteStream(dest, { mode: 0o600 });
  const done = new Promise<void>((resolve, reject) => { out.once('close', resolve); out.once('error', reject); });
  await runTool(['cat', '--', path], { cwd: '/', user, timeoutMs: limits.timeoutMs, stdout: out }).catch((e: Error) => { out.destroy(); throw e; });
  await done;
}

function getBytes(u: URI, dest: string, user: ResolvedUser | undefined, limits: FetchLimits, abort?: AbortSignal): Promise<void> {
  if (isAbsolute(u.value)) return readLocal(u.value, dest, user, limits);
  const url = new URL(u.value);
  if (url.protocol === 'file:') return readLocal(decodeURIComponent(url.pathname), dest, user, limits);
  return download(u.value, dest, limits, abort);
}

// ---- the fetch ---------------------------------------------------------------------

/*
 * Placement runs as the agent (root) in a sandbox where an earlier URI's archive, extracted as the
 * task's user, may have planted links. Nothing of the task runs during the fetch, so checking each
 * path component with lstat before using it is not racy: no link is ever followed out of the sandbox.
 */

/** Creates `rel` (a relative directory) under `sandbox` component by component, refusing links. */
async function ensureDirInside(sandbox: string, rel: string, user: ResolvedUser | undefined): Promise<void> {
  let at = sandbox;
  for (const part of rel.split(sep).filter((p) => p !== '' && p !== '.')) {
    at = join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (st?.isSymbolicLink()) throw new Error(`output path '${rel}' goes through a symbolic link`);
    if (st && !st.isDirectory()) throw new Error(`output path '${rel}': '${part}' is not a directory`);
    if (!st) {
      await mkdir(at);
      if (user) await chown(at, user.uid, user.gid);
    }
  }
}

async function refuseLink(dest: string, name: string): Promise<void> {
  const st = await lstat(dest).catch(() => undefined);
  if (st?.isSymbolicLink()) throw new Error(`'${name}' is a symbolic link in the sandbox`);
  if (st?.isDirectory()) throw new Error(`'${name}' is a directory in the sandbox`);
}

async function fetchOne(u: URI, o: FetchOptions, limits: FetchLimits): Promise<string> {
  const name = u.output_file ?? nameOf(u.value);
  const dest = join(o.sandbox, name);
  const tmp = join(o.sandbox, `.berth-fetch-${randomUUID()}`);
  const user = switchesUser(o.user) ? o.user : undefined;
  try {
    let cached = false;
    if (u.cache && o.cache) {
      const key = FetcherCache.key(o.user?.name ?? '', u.value);
      // A shared download is not aborted by one task's kill (others may wait for it).
      const path = await o.cache.get(key, (p) => getBytes(u, p, o.user, limits));
      if (path) {
        try {
          await copyFile(path, tmp);
          cached = true;
        } catch {
          o.cache.forget(key); // evicted meanwhile: fetch it directly
        }
      }
    }
    if (!cached) await getBytes(u, tmp, o.user, limits, o.signal);
    await ensureDirInside(o.sandbox, dirname(name), user);
    await refuseLink(dest, name);
    if (user) await chown(tmp, user.uid, user.gid);
    await chmod(tmp, u.executable ? 0o755 : 0o644);
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const kind = archiveKind(name);
  if (!u.executable && u.extract !== false && kind) {
    await extract(dest, kind, { cwd: dirname(dest), user, timeoutMs: limits.timeoutMs, maxFileBytes: limits.maxExtractedFileBytes });
    return `${name} (extracted)`;
  }
  return name;
}

/**
 * Fetches every URI into the sandbox (created and owned by the user if missing). Rejects with a
 * FetchError naming the first URI that failed and why; files fetched before it stay.
 */
export async function fetchUris(uris: URI[], o: FetchOptions): Promise<void> {
  if (uris.length === 0) return;
  const invalid = urisError(uris);
  if (invalid) throw new FetchError('INVALID', invalid);
  const limits = { ...DEFAULT_FETCH_LIMITS, ...o.limits };
  await mkdir(o.sandbox, { recursive: true });
  if (switchesUser(o.user)) await chown(o.sandbox, o.user.uid, o.user.gid);
  for (const u of uris) {
    if (o.signal?.aborted) throw new FetchError('IO', 'Fetch aborted: the task was killed');
    const started = Date.now();
    try {
      const what = await fetchOne(u, o, limits);
      o.log?.info({ uri: u.value, file: what, ms: Date.now() - started }, 'Fetched URI');
    } catch (e) {
      throw new FetchError('IO', `Failed to fetch '${u.value}': ${(e as Error).message}`);
    }
  }
}
