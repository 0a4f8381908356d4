/**
 * The agent's durable state, under `<work_dir>/meta/`:
 *
 *   meta/agent.json        agent id, boot id of the writer (replaced atomically; rarely written)
 *   meta/log               one append-only log for everything else, one JSON record per line:
 *                            {"t":"fw","fw":FrameworkInfo}
 *                            {"t":"task","task":TaskCheckpoint}             TaskInfo + container id, sandbox, run path
 *                            {"t":"ctr","f":fid,"k":tid,"r":ContainerRecord} supervisor identity (a cache)
 *                            {"t":"upd","u":StatusUpdateMessage}           a status update, before it is sent
 *                            {"t":"ack","f":fid,"k":tid,"uuid":…}          its acknowledgement
 *                            {"t":"forget","f":fid,"k":tid}                the task's stream closed; drop it
 *   meta/runs/             one directory shared by all containers: <container>.exit is a
 *                          container's exit record, written by its supervisor (tmp + rename),
 *                          `meta/runs/<container>` its run path (ContainerSpec.runDir). Agents
 *                          before this layout made a directory per container (<container>/exit);
 *                          those are still read and removed.
 *
 * Why one log and one runs directory: per-task files and directories cost ~6 metadata operations and 3 fsyncs per task (mkdir + parent
 * fsync, tmp/rename + dir fsync, per-stream opens), which made the agent's event loop the launch
 * bottleneck. With one log, records of all tasks appended while a write is in flight go out in
 * the next write with one fsync (group commit, as master/registry/file.ts), off the event loop.
 *
 * Invariants:
 *  - A record is durable when its `append` resolves with `sync` (its batch was written and
 *    fsynced). Callers rely on it: a task's record before its container is launched (a task is
 *    never launched twice), an update before it is sent (no update is lost).
 *  - Records reach the file in `append` call order, so a stream's order is its production order
 *    and a record never precedes one appended before it.
 *  - A trailing line without its newline is a write torn by a crash: its fsync never returned, so
 *    nothing it held was acted on, and recovery drops it (in both modes). A complete line that
 *    does not parse is corruption: strict recovery stops with an error naming the file and line.
 *  - A supervisor starts only after its task's record is durable, and only a supervisor writes
 *    an exit record. So an exit record in meta/runs/ without a task record proves the log lost
 *    durable records (truncated or
 *    replaced): strict recovery refuses to start. The agent creates nothing per task there (an
 *    empty run dir of an earlier agent, without a supervisor, is a launch that never happened:
 *    removed).
 *  - Compaction rewrites the log from the in-memory mirror of live records (frameworks, and every
 *    record of each task not yet forgotten, in order) to `log.tmp`, fsyncs it, renames it over
 *    `log` and fsyncs the directory. It runs inside the writer between batches, so no append
 *    interleaves; a crash leaves the old or the new log, each complete.
 */
import { close, fchmod, fsync, open, unlink, write } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../proto/errors.js';
import { logger, type Logger } from '../proto/log.js';
import type { FrameworkInfo, StatusUpdateMessage, TaskInfo } from '../proto/types.js';
import type { ContainerRecord } from './containerizer/types.js';
import { idError } from '../proto/ids.js';

export interface AgentCheckpoint {
  agent_id: string;
  /** Boot id when the agent last started: a different one now means the host rebooted. */
  boot_id: string;
}

export interface TaskCheckpoint {
  framework_id: string;
  executor_id: string;
  container_id: string;
  sandbox: string;
  run_dir: string;
  task: TaskInfo;
}

export type UpdateRecord =
  | { type: 'update'; update: StatusUpdateMessage }
  | { type: 'ack'; uuid: string };

export interface RecoveredTask {
  frameworkId: string;
  taskId: string;
  /** Absent for a stream without a task (e.g. a TASK_LOST answering a kill of an unknown task). */
  task?: TaskCheckpoint;
  /** Absent when the agent died before the container was launched (or recorded). */
  container?: ContainerRecord;
  updates: UpdateRecord[];
}

export interface RecoveredState {
  agent?: AgentCheckpoint;
  frameworks: Map<string, FrameworkInfo>;
  tasks: RecoveredTask[];
  /** What non-strict recovery skipped (file: reason). */
  skipped: string[];
}

/** A checkpoint file that cannot be read back; `file` names it. */
export class CheckpointError extends BerthError {
  override name = 'CheckpointError';
  constructor(readonly file: string, detail: string) {
    super('IO', `corrupt checkpoint ${file}: ${detail} (start with --no-strict to recover what is readable)`);
  }
}

type LogRecord =
  | { t: 'fw'; fw: FrameworkInfo }
  | { t: 'task'; task: TaskCheckpoint }
  | { t: 'ctr'; f: string; k: string; r: ContainerRecord }
  | { t: 'upd'; u: StatusUpdateMessage }
  | { t: 'ack'; f: string; k: string; uuid: string }
  | { t: 'forget'; f: string; k: string };

/** Live records of one task, as serialized lines (the compaction source). */
interface Mirror { lines: string[] }

interface Pending { bytes: string; sync: boolean; resolve: () => void; reject: (e: Error) => void }

export interface CheckpointOptions {
  strict?: boolean;
  log?: Logger;
  /** Compact once the log exceeds this size and 4× its live content (default 4 MiB). */
  compactBytes?: number;
  /**
   * A write or fsync of the log failed. The log may now end in a partial record and nothing
   * more can be made durable: every later append is rejected, and the owner must stop (the
   * agent exits and recovers, which drops the torn tail).
   */
  onFatal?: (err: Error) => void;
}

const key = (fid: string, tid: string): string => `${fid}\u0000${tid}`;

export class Checkpoint {
  readonly metaDir: string;
  readonly logFile: string;
  readonly runsDir: string;
  private readonly log: Logger;
  private readonly strict: boolean;
  private readonly compactBytes: number;
  private fd = -1;
  private opening: Promise<void> | undefined;
  private queue: Pending[] = [];
  private writing = false;
  /** Set by close(): later appends are dropped (see close). Cleared by recover(). */
  private closed = false;
  /** Bytes in the log file (written), and of live records in the mirror. */
  private fileBytes = 0;
  private liveBytes = 0;
  private readonly frameworkLines = new Map<string, string>();
  private readonly mirror = new Map<string, Mirror>();
  /** Set by the first failed write: nothing is appended after it (see onFatal). */
  private failed: Error | undefined;
  private readonly onFatal: ((e: Error) => void) | undefined;
  /** Counters for tests and /state. */
  readonly stats = { batches: 0, fsyncs: 0, records: 0, compactions: 0 };

  constructor(readonly workDir: string, opts: CheckpointOptions = {}) {
    this.metaDir = join(workDir, 'meta');
    this.logFile = join(this.metaDir, 'log');
    this.runsDir = join(this.metaDir, 'runs');
    this.strict = opts.strict ?? true;
    this.log = opts.log ?? logger('checkpoint');
    this.compactBytes = opts.compactBytes ?? 4 * 1024 * 1024;
    this.onFatal = opts.onFatal;
  }

  /** A container's run path: its supervisor writes `<runDir>.exit` (meta/runs/ exists once the log is open). */
  runDir(containerId: string): string { return join(this.runsDir, containerId); }

  async writeAgent(cp: AgentCheckpoint): Promise<void> {
    if (this.closed) return; // a stopped agent writes nothing (its work dir may be gone)
    await this.ensureOpen();
    const file = join(this.metaDir, 'agent.json');
    const tmp = `${file}.tmp`;
    await writeFile(tmp, JSON.stringify(cp), { mode: 0o600 });
    await chmod(tmp, 0o600); // a tmp left by a crash keeps its old mode through writeFile
    await fsyncPath(tmp);
    await rename(tmp, file);
    await fsyncPath(this.metaDir);
  }

  writeFramework(info: FrameworkInfo): Promise<void> {
    const line = JSON.stringify({ t: 'fw', fw: info } satisfies LogRecord);
    const fid = info.id?.value ?? '';
    this.liveBytes += line.length - (this.frameworkLines.get(fid)?.length ?? 0);
    this.frameworkLines.set(fid, line);
    return this.append([line], true);
  }

  /** Durable when resolved: only then may the task's container be launched. */
  writeTask(cp: TaskCheckpoint): Promise<void> {
    const line = JSON.stringify({ t: 'task', task: cp } satisfies LogRecord);
    const k = key(cp.framework_id, cp.task.task_id.value);
    const old = this.mirror.get(k);
    if (old) this.liveBytes -= sum(old.lines);
    this.mirror.set(k, { lines: [line] });
    this.liveBytes += line.length;
    return this.append([line], true);
  }

  /**
   * The container record is the supervisor's identity (pid + start time + boot id): recovery
   * recognises a supervisor by it and by nothing else. It is durable before the task's RUNNING
   * is (both go in the same synced batch), so a task the framework sees running is always found.
   */
  writeContainer(fid: string, tid: string, record: ContainerRecord): Promise<void> {
    return this.appendFor(fid, tid, [JSON.stringify({ t: 'ctr', f: fid, k: tid, r: record } satisfies LogRecord)], true);
  }

  /** Appends stream records; `sync` = durable before resolving (required before an update is sent). */
  appendUpdates(fid: string, tid: string, records: UpdateRecord[], sync: boolean): Promise<void> {
    const lines = records.map((r) => JSON.stringify(r.type === 'update'
      ? { t: 'upd', u: r.update } satisfies LogRecord
      : { t: 'ack', f: fid, k: tid, uuid: r.uuid } satisfies LogRecord));
    return this.appendFor(fid, tid, lines, sync);
  }

  /**
   * Forgets a task entirely (its stream is closed and its container gone). The exit record goes
   * first: a forget record durable while the exit record remained would look like a lost task
   * record to the next recovery.
   */
  async removeTask(fid: string, tid: string, runDir?: string): Promise<void> {
    // A stopped agent forgets nothing: the next run recovers the task and closes it then.
    if (this.closed) return;
    if (runDir) await removeRunDir(runDir);
    const k = key(fid, tid);
    const m = this.mirror.get(k);
    if (m) this.liveBytes -= sum(m.lines);
    this.mirror.delete(k);
    await this.append([JSON.stringify({ t: 'forget', f: fid, k: tid } satisfies LogRecord)], false);
  }

  /** Resolves once everything appended so far is written (and fsynced where asked). */
  async drain(): Promise<void> {
    while (this.writing || this.queue.length > 0) await new Promise((r) => setImmediate(r));
  }

  /**
   * Closes the log file (after draining). Invariant: after close nothing is written — late
   * appends (an acknowledgement racing the agent's stop) are dropped rather than recreating a
   * work dir that may already be gone; `recover()` reopens the checkpoint for a new run.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.drain();
    if (this.fd >= 0) { closeSync(this.fd); this.fd = -1; this.opening = undefined; }
  }

  async recover(): Promise<RecoveredState> {
    this.closed = false;
    const state: RecoveredState = { frameworks: new Map(), tasks: [], skipped: [] };
    const agentFile = join(this.metaDir, 'agent.json');
    const agent = await this.readAgent(agentFile, state);
    if (agent) state.agent = agent;
    const byKey = new Map<string, RecoveredTask & { lines: string[] }>();
    const entry = (fid: string, tid: string): RecoveredTask & { lines: string[] } => {
      const k = key(fid, tid);
      let e = byKey.get(k);
      if (!e) { e = { frameworkId: fid, taskId: tid, updates: [], lines: [] }; byKey.set(k, e); }
      return e;
    };
    let text = '';
    try {
      text = await readFile(this.logFile, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.bad(state, this.logFile, (e as Error).message);
    }
    const lines = text.split('\n');
    const tail = lines.pop()!;
    if (tail !== '') {
      // Torn final write (see invariants): drop it and cut the file back so appends stay line-aligned.
      this.log.warn({ file: this.logFile, bytes: Buffer.byteLength(tail) }, 'Dropping a torn trailing checkpoint record');
      await truncate(this.logFile, Buffer.byteLength(text) - Buffer.byteLength(tail));
    }
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const where = `line ${i + 1}`;
      let r: LogRecord;
      try {
        r = JSON.parse(line) as LogRecord;
      } catch {
        this.bad(state, this.logFile, `${where} is not valid JSON`);
        continue;
      }
      const problem = checkRecord(r);
      if (problem) { this.bad(state, this.logFile, `${where}: ${problem}`); continue; }
      switch (r.t) {
        case 'fw': state.frameworks.set(r.fw.id!.value, r.fw); this.frameworkLines.set(r.fw.id!.value, line); break;
        case 'task': {
          const e = entry(r.task.framework_id, r.task.task.task_id.value);
          // A task id reused after its predecessor was forgotten starts a fresh entry.
          e.task = r.task; delete e.container; e.updates = []; e.lines = [line];
          break;
        }
        case 'ctr': { const e = entry(r.f, r.k); e.container = r.r; e.lines.push(line); break; }
        case 'upd': { const e = entry(r.u.framework_id.value, r.u.status.task_id.value); e.updates.push({ type: 'update', update: r.u }); e.lines.push(line); break; }
        case 'ack': { const e = entry(r.f, r.k); e.updates.push({ type: 'ack', uuid: r.uuid }); e.lines.push(line); break; }
        case 'forget': byKey.delete(key(r.f, r.k)); break;
        default: assertNever(r);
      }
    }
    for (const [k, e] of byKey) {
      const { lines: ls, ...rt } = e;
      state.tasks.push(rt);
      this.mirror.set(k, { lines: ls });
      this.liveBytes += sum(ls);
    }
    for (const l of this.frameworkLines.values()) this.liveBytes += l.length;
    this.fileBytes = Buffer.byteLength(text) - Buffer.byteLength(tail);
    await this.checkRunDirs(state);
    await this.ensureOpen();
    return state;
  }

  // ---- internals -------------------------------------------------------------

  private appendFor(fid: string, tid: string, lines: string[], sync: boolean): Promise<void> {
    const k = key(fid, tid);
    let m = this.mirror.get(k);
    if (!m) { m = { lines: [] }; this.mirror.set(k, m); }
    m.lines.push(...lines);
    this.liveBytes += sum(lines);
    return this.append(lines, sync);
  }

  /** Queues lines for the writer; the promise settles when their batch is written (and fsynced if `sync`). */
  private append(lines: string[], sync: boolean): Promise<void> {
    if (this.failed) return Promise.reject(new BerthError('IO', `checkpoint log unusable after a failed write: ${this.failed.message}`));
    if (this.closed) {
      this.log.debug({ records: lines.length }, 'Checkpoint closed: dropping late records');
      return Promise.resolve();
    }
    this.stats.records += lines.length;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes: lines.join('\n') + '\n', sync, resolve, reject });
      if (!this.writing) {
        this.writing = true;
        // Let the current burst (this tick's launches and updates) join the batch.
        setImmediate(() => void this.writeLoop());
      }
    });
  }

  /** The writer: one batch at a time; whatever queues meanwhile forms the next batch. */
  private async writeLoop(): Promise<void> {
    try {
      await this.ensureOpen();
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        try {
          if (this.fileBytes > this.compactBytes && this.fileBytes > 4 * this.liveBytes) {
            // The mirror already holds this batch's records: the rewrite includes them.
            await this.compact();
          } else {
            const data = batch.map((p) => p.bytes).join('');
            await writeAll(this.fd, data);
            this.fileBytes += Buffer.byteLength(data);
            if (batch.some((p) => p.sync)) { await fsyncFd(this.fd); this.stats.fsyncs++; }
          }
          this.stats.batches++;
          for (const p of batch) p.resolve();
        } catch (e) {
          this.log.error({ err: (e as Error).message, records: batch.length }, 'Cannot write the checkpoint log');
          this.failed ??= e as Error;
          for (const p of batch) p.reject(e as Error);
          for (const p of this.queue.splice(0)) p.reject(e as Error);
          if (!this.closed) this.onFatal?.(e as Error);
          return;
        }
      }
    } catch (e) {
      for (const p of this.queue.splice(0)) p.reject(e as Error);
      this.failed ??= e as Error;
      if (!this.closed) this.onFatal?.(e as Error);
    } finally {
      this.writing = false;
      if (this.queue.length > 0) { this.writing = true; setImmediate(() => void this.writeLoop()); }
    }
  }

  private async compact(): Promise<void> {
    const parts: string[] = [...this.frameworkLines.values()];
    for (const m of this.mirror.values()) parts.push(...m.lines);
    const data = parts.length > 0 ? parts.join('\n') + '\n' : '';
    const tmp = `${this.logFile}.tmp`;
    // Private like the log it replaces: it holds every live TaskInfo, environment secrets included.
    await writeFile(tmp, data, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await fsyncPath(tmp);
    await rename(tmp, this.logFile);
    await fsyncPath(this.metaDir);
    const old = this.fd;
    this.fd = await openFd(this.logFile);
    await closeFd(old);
    const before = this.fileBytes;
    this.fileBytes = Buffer.byteLength(data);
    this.liveBytes = data.length;
    this.stats.compactions++;
    this.stats.fsyncs += 2;
    this.log.info({ beforeBytes: before, afterBytes: this.fileBytes, tasks: this.mirror.size }, 'Compacted the checkpoint log');
  }

  /** Creates meta/ and meta/runs/ (durably, once) and opens the log for appending. */
  private ensureOpen(): Promise<void> {
    this.opening ??= (async () => {
      const made = await mkdir(this.runsDir, { recursive: true, mode: 0o700 });
      if (made !== undefined) {
        // Fsync the parents of what was created so the directories survive a crash.
        await fsyncPath(this.metaDir);
        await fsyncPath(this.workDir);
      }
      // Private whatever an earlier version left: meta/ holds TaskInfos with their secrets.
      await Promise.all([chmod(this.metaDir, 0o700), chmod(this.runsDir, 0o700)]);
      this.fd = await openFd(this.logFile);
      await new Promise<void>((resolve, reject) => fchmod(this.fd, 0o600, (e) => (e ? reject(e) : resolve())));
    })();
    return this.opening;
  }

  /** See the runs invariant: evidence of a lost record is an error (strict), else cleaned up. */
  private async checkRunDirs(state: RecoveredState): Promise<void> {
    let names: string[];
    try { names = await readdir(this.runsDir); } catch { return; }
    const known = new Set<string>();
    for (const t of state.tasks) {
      if (t.task) known.add(t.task.container_id);
      if (t.container) known.add(t.container.containerId);
    }
    /**
     * Traces of containers without a task record: exit records and old-style run dirs. Processes
     * are never taken as traces: their argv is theirs to choose (a task could name any run path).
     */
    const traces = new Map<string, { files: string[]; dir: boolean }>();
    const trace = (cid: string): { files: string[]; dir: boolean } => {
      let t = traces.get(cid);
      if (!t) { t = { files: [], dir: false }; traces.set(cid, t); }
      return t;
    };
    for (const n of names) {
      const cid = n.endsWith('.exit') ? n.slice(0, -5) : n.endsWith('.exit.tmp') ? n.slice(0, -9) : n;
      if (known.has(cid)) continue;
      if (cid === n) trace(cid).dir = true; else trace(cid).files.push(n);
    }
    for (const [cid, t] of traces) {
      const dir = this.runDir(cid);
      const inDir = t.dir ? await readdir(dir).catch(() => [] as string[]) : [];
      if (t.files.length === 0 && inDir.length === 0) {
        // An empty run dir of an earlier agent: a launch that never happened.
        if (t.dir) await rm(dir, { recursive: true, force: true });
        continue;
      }
      const what = [...t.files, ...inDir.map((f) => `${cid}/${f}`)].join(',');
      this.bad(state, this.logFile, `container ${cid} has a run record (${what}) but no task record: records were lost (truncated or replaced log)`);
      await Promise.all([
        rm(dir, { recursive: true, force: true }),
        ...t.files.map((f) => rm(join(this.runsDir, f), { force: true })),
      ]);
    }
  }

  private bad(state: RecoveredState, file: string, detail: string): void {
    if (this.strict) throw new CheckpointError(file, detail);
    state.skipped.push(`${file}: ${detail}`);
    this.log.warn({ file, detail }, 'Skipping unreadable checkpoint (non-strict recovery)');
  }

  private async readAgent(file: string, state: RecoveredState): Promise<AgentCheckpoint | undefined> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.bad(state, file, (e as Error).message);
      return undefined;
    }
    let v: AgentCheckpoint;
    try {
      v = JSON.parse(text) as AgentCheckpoint;
    } catch (e) {
      this.bad(state, file, text.length === 0 ? 'file is empty (truncated)' : `not valid JSON (${(e as Error).message}; truncated?)`);
      return undefined;
    }
    if (typeof v !== 'object' || v === null || typeof v.agent_id !== 'string' || typeof v.boot_id !== 'string') {
      this.bad(state, file, 'missing or mismatched fields');
      return undefined;
    }
    return v;
  }
}

/** Why a parsed record cannot be used (undefined when it can). */
function checkRecord(r: LogRecord): string | undefined {
  if (typeof r !== 'object' || r === null) return 'not a record';
  const ids = (fid: unknown, tid: unknown): string | undefined =>
    typeof fid !== 'string' || typeof tid !== 'string' ? 'missing ids' : idError('framework id', fid) ?? idError('task id', tid);
  switch (r.t) {
    case 'fw': return typeof r.fw?.id?.value === 'string' ? idError('framework id', r.fw.id.value) : 'framework without id';
    case 'task': {
      const t = r.task;
      if (typeof t?.container_id !== 'string' || typeof t.run_dir !== 'string' || typeof t.sandbox !== 'string') return 'task record with missing fields';
      return ids(t.framework_id, t.task?.task_id?.value);
    }
    case 'ctr': {
      const c = r.r;
      if (typeof c?.pid !== 'number' || typeof c.startTime !== 'number' || typeof c.bootId !== 'string' || typeof c.containerId !== 'string') return 'container record with missing fields';
      return ids(r.f, r.k);
    }
    case 'upd': return typeof r.u?.status?.uuid !== 'string' ? 'update without uuid' : ids(r.u.framework_id?.value, r.u.status.task_id?.value);
    case 'ack': return typeof r.uuid !== 'string' ? 'ack without uuid' : ids(r.f, r.k);
    case 'forget': return ids(r.f, r.k);
    default: return `unknown record type ${String((r as { t?: unknown }).t)}`;
  }
}

function assertNever(x: never): never {
  throw new BerthError('INVALID', `unexpected record ${String(x)}`);
}

function sum(lines: string[]): number {
  let n = 0;
  for (const l of lines) n += l.length + 1;
  return n;
}

/*
 * All log I/O goes through the thread pool (callback fs): the event loop never blocks on the
 * device, and the write and fsync of a batch overlap with the next batch being formed.
 */
function openFd(file: string): Promise<number> {
  return new Promise((resolve, reject) => open(file, 'a', 0o600, (e, fd) => (e ? reject(e) : resolve(fd))));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve()));
}

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (e) => (e ? reject(e) : resolve())));
}

async function writeAll(fd: number, data: string): Promise<void> {
  let buf = Buffer.from(data);
  while (buf.length > 0) {
    const n = await new Promise<number>((resolve, reject) => write(fd, buf, 0, buf.length, null, (e, w) => (e ? reject(e) : resolve(w))));
    buf = buf.subarray(n);
  }
}

/**
 * Removes a container's exit record: one unlink. When there is none (the task never ran, or its
 * supervisor died mid-record) the leftovers go: `.exit.tmp`, or the run dir of an earlier agent.
 */
function removeRunDir(runDir: string): Promise<void> {
  return new Promise<void>((resolve) => unlink(`${runDir}.exit`, (e) => {
    if (!e) { resolve(); return; }
    resolve(Promise.all([rm(`${runDir}.exit.tmp`, { force: true }), rm(runDir, { recursive: true, force: true })]).then(() => undefined, () => undefined));
  }));
}

/** fsync of a file or directory by path (rare calls: agent.json, compaction, first start). */
async function fsyncPath(p: string): Promise<void> {
  const fd = openSync(p, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}
