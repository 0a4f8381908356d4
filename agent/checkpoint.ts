/**
 * The agent's durable state, under `<work_dir>/meta/`:
 *
 *   meta/agent.json                                  agent id, boot id of the writer
 *   meta/frameworks/<fid>/framework.json             FrameworkInfo
 *   meta/frameworks/<fid>/tasks/<tid>/task.json      TaskInfo + container id, sandbox, run dir
 *   meta/frameworks/<fid>/tasks/<tid>/container.json ContainerRecord (pid, start time…; a cache)
 *   meta/frameworks/<fid>/tasks/<tid>/updates        the task's status-update stream (JSON lines)
 *   meta/frameworks/<fid>/tasks/<tid>/run/           the container's run dir (supervisor's exit record)
 *
 * Invariants:
 *  - JSON files are replaced atomically (write tmp, fsync, rename, fsync dir),
 *    so a crash leaves the old or the new file, never a mix; a file that does
 *    not parse is therefore corruption, and strict recovery stops with an error
 *    naming it.
 *  - The update stream is append-only: `{"type":"update",…}` lines, fsynced
 *    before the update is sent, and `{"type":"ack","uuid":…}` lines. A trailing
 *    line without its newline is a write torn by a crash (power loss): its
 *    fsync never returned, so the update was never sent, and recovery drops it
 *    (as Mesos does) in both modes. A complete line that does not parse is
 *    corruption.
 *  - task.json is durable before the container is launched, and a recovering
 *    agent never launches: a task is never launched twice. container.json is
 *    only a cache of the supervisor's identity (recovery finds the supervisor
 *    by its run dir without it), so it is not fsynced.
 */
import { closeSync, fsync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { readFile, readdir, rm, truncate } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BerthError } from '../proto/errors.js';
import { logger, type Logger } from '../proto/log.js';
import type { FrameworkInfo, StatusUpdateMessage, TaskInfo } from '../proto/types.js';
import type { ContainerRecord } from './containerizer/types.js';
import { idError } from './ids.js';

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

export class Checkpoint {
  readonly metaDir: string;
  private readonly log: Logger;
  private readonly strict: boolean;
  /** Directories known to exist durably (created and their parent fsynced). */
  private readonly dirs = new Set<string>();

  constructor(readonly workDir: string, opts: { strict?: boolean; log?: Logger } = {}) {
    this.metaDir = join(workDir, 'meta');
    this.strict = opts.strict ?? true;
    this.log = opts.log ?? logger('checkpoint');
  }

  frameworkDir(fid: string): string { return join(this.metaDir, 'frameworks', fid); }
  taskDir(fid: string, tid: string): string { return join(this.frameworkDir(fid), 'tasks', tid); }
  runDir(fid: string, tid: string): string { return join(this.taskDir(fid, tid), 'run'); }

  async writeAgent(cp: AgentCheckpoint): Promise<void> {
    await this.ensureDir(this.metaDir);
    await this.writeJson(join(this.metaDir, 'agent.json'), cp);
  }

  async writeFramework(info: FrameworkInfo): Promise<void> {
    const fid = info.id?.value ?? '';
    const dir = this.frameworkDir(fid);
    await this.ensureDir(dir);
    await this.writeJson(join(dir, 'framework.json'), info);
  }

  async writeTask(cp: TaskCheckpoint): Promise<void> {
    const dir = this.taskDir(cp.framework_id, cp.task.task_id.value);
    await this.ensureDir(dir);
    await this.writeJson(join(dir, 'task.json'), cp);
  }

  /**
   * The container record is a cache, not a source of truth: a supervisor names its run dir in its
   * argv, so recovery finds it without this file (see Agent.recoverInterruptedLaunch). It is
   * therefore written without fsync (atomic rename only), and an unreadable one is ignored.
   */
  async writeContainer(fid: string, tid: string, record: ContainerRecord): Promise<void> {
    const dir = this.taskDir(fid, tid);
    await this.ensureDir(dir);
    await this.writeJson(join(dir, 'container.json'), record, false);
  }

  /** Appends stream records; `sync` = fsync before returning (required before an update is sent). */
  async appendUpdates(fid: string, tid: string, records: UpdateRecord[], sync: boolean): Promise<void> {
    const dir = this.taskDir(fid, tid);
    await this.ensureDir(dir);
    const fd = openSync(join(dir, 'updates'), 'a');
    try {
      writeSync(fd, records.map((r) => JSON.stringify(r) + '\n').join(''));
      if (sync) await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Forgets a task entirely (its stream is closed and its container gone). */
  async removeTask(fid: string, tid: string): Promise<void> {
    const dir = this.taskDir(fid, tid);
    this.dirs.delete(dir);
    this.dirs.delete(join(dir, 'run'));
    await rm(dir, { recursive: true, force: true });
  }

  async recover(): Promise<RecoveredState> {
    const state: RecoveredState = { frameworks: new Map(), tasks: [], skipped: [] };
    const agentFile = join(this.metaDir, 'agent.json');
    const agent = await this.readJson<AgentCheckpoint>(agentFile, state, (v) => typeof v.agent_id === 'string' && typeof v.boot_id === 'string');
    if (agent) state.agent = agent;
    for (const fid of await listDir(join(this.metaDir, 'frameworks'))) {
      if (idError('framework id', fid)) { this.bad(state, join(this.metaDir, 'frameworks', fid), 'not a valid framework id'); continue; }
      const fdir = this.frameworkDir(fid);
      const info = await this.readJson<FrameworkInfo>(join(fdir, 'framework.json'), state, (v) => v.id?.value === fid);
      if (info) state.frameworks.set(fid, info);
      for (const tid of await listDir(join(fdir, 'tasks'))) {
        const tdir = this.taskDir(fid, tid);
        if (idError('task id', tid)) { this.bad(state, tdir, 'not a valid task id'); continue; }
        const task = await this.readJson<TaskCheckpoint>(join(tdir, 'task.json'), state,
          (v) => v.framework_id === fid && v.task?.task_id?.value === tid && typeof v.container_id === 'string' && typeof v.run_dir === 'string' && typeof v.sandbox === 'string');
        // A cache (see writeContainer): unreadable → absent, even in strict mode.
        const container = await this.readJson<ContainerRecord>(join(tdir, 'container.json'), state,
          (v) => typeof v.pid === 'number' && typeof v.startTime === 'number' && typeof v.bootId === 'string' && typeof v.containerId === 'string', true);
        const updates = await this.readStream(join(tdir, 'updates'), state);
        const rt: RecoveredTask = { frameworkId: fid, taskId: tid, updates };
        if (task) rt.task = task;
        if (container) rt.container = container;
        if (task || container || updates.length > 0) state.tasks.push(rt);
      }
    }
    return state;
  }

  // ---- internals -------------------------------------------------------------

  private bad(state: RecoveredState, file: string, detail: string): void {
    if (this.strict) throw new CheckpointError(file, detail);
    state.skipped.push(`${file}: ${detail}`);
    this.log.warn({ file, detail }, 'Skipping unreadable checkpoint (non-strict recovery)');
  }

  private async readJson<T>(file: string, state: RecoveredState, valid: (v: T) => boolean, optional = false): Promise<T | undefined> {
    const bad = (detail: string): void => {
      if (optional) this.log.warn({ file, detail }, 'Ignoring unreadable cache file');
      else this.bad(state, file, detail);
    };
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      bad((e as Error).message);
      return undefined;
    }
    let v: T;
    try {
      v = JSON.parse(text) as T;
    } catch (e) {
      bad(text.length === 0 ? 'file is empty (truncated)' : `not valid JSON (${(e as Error).message}; truncated?)`);
      return undefined;
    }
    if (typeof v !== 'object' || v === null || !valid(v)) {
      bad('missing or mismatched fields');
      return undefined;
    }
    return v;
  }

  private async readStream(file: string, state: RecoveredState): Promise<UpdateRecord[]> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      this.bad(state, file, (e as Error).message);
      return [];
    }
    const out: UpdateRecord[] = [];
    const lines = text.split('\n');
    const tail = lines.pop()!;
    if (tail !== '') {
      // Torn final write (see invariants): drop it and cut the file back so appends stay line-aligned.
      this.log.warn({ file, bytes: tail.length }, 'Dropping a torn trailing update record');
      await truncate(file, Buffer.byteLength(text) - Buffer.byteLength(tail));
    }
    for (let i = 0; i < lines.length; i++) {
      let r: UpdateRecord;
      try {
        r = JSON.parse(lines[i]!) as UpdateRecord;
      } catch {
        this.bad(state, file, `line ${i + 1} is not valid JSON`);
        break;
      }
      const ok = (r.type === 'update' && typeof r.update?.status?.uuid === 'string') || (r.type === 'ack' && typeof r.uuid === 'string');
      if (!ok) { this.bad(state, file, `line ${i + 1} is not an update or ack record`); break; }
      out.push(r);
    }
    return out;
  }

  private async writeJson(file: string, value: unknown, durable = true): Promise<void> {
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify(value));
      if (durable) await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    if (durable) await fsyncDir(dirname(file));
  }

  /** mkdir -p, then fsync the parent of every directory created so the entries survive a crash. */
  private async ensureDir(dir: string): Promise<void> {
    if (this.dirs.has(dir)) return;
    const first = mkdirSync(dir, { recursive: true });
    if (first !== undefined) {
      const parents: string[] = [];
      for (let d = dir; ; d = dirname(d)) {
        parents.push(dirname(d));
        if (d === first || d === dirname(d)) break;
      }
      await Promise.all(parents.map(fsyncDir));
    }
    this.dirs.add(dir);
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    return [];
  }
}

/*
 * Small-file I/O uses synchronous open/write/close/rename (microseconds each, cheaper than a
 * promise round trip through the thread pool) and only the fsync — the one call that waits for
 * the disk — goes to the thread pool, so the event loop never blocks on the device.
 */
function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (e) => (e ? reject(e) : resolve())));
}

async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try { await fsyncFd(fd); } finally { closeSync(fd); }
}
