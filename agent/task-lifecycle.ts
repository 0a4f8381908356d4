/**
 * A task's life on this agent, from Launch to the acknowledgement of its
 * terminal update: checkpoint, container, watch, kill, end.
 *
 *   launching ──▶ running ──▶ killing ──▶ terminal ──(ack)──▶ forgotten
 *       └──────────────┴────────────────────▲
 *
 * Invariants:
 *  - A task is launched at most once: its checkpoint is durable before its container starts, a
 *    recovering agent never launches, and a Launch for a task the agent knows (running,
 *    terminal-unacked or recently completed) is ignored.
 *  - A terminal update is produced only after the container is destroyed, so when a framework
 *    sees it no process of the task is left; it is produced once.
 *  - A container limitation (memory, disk) reported by the containerizer wins over a later or
 *    concurrent kill: the task ends TASK_FAILED with the limitation's reason. A kill that ended
 *    the task first ends it TASK_KILLED.
 *  - Hooks (task-hooks.ts) run at two seams: preStart in the prepared sandbox before the
 *    command starts, postRunning once RUNNING was produced, until the task ends.
 */
import { randomUUID } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { LRUCache } from 'lru-cache';
import type { Clock, TimerHandle } from '../proto/clock.js';
import { BerthError } from '../proto/errors.js';
import { idError } from '../proto/ids.js';
import type { Logger } from '../proto/log.js';
import type { FrameworkInfo, KillPolicy, StatusUpdateMessage, TaskInfo, TaskState, TaskStatus, TaskStatusReason, TaskStatusSource } from '../proto/types.js';
import type { Checkpoint, TaskCheckpoint } from './checkpoint.js';
import type { ContainerExit, ContainerRecord, Containerizer } from './containerizer/types.js';
import type { StatusUpdateManager } from './status-update-manager.js';
import { needsPreStart, TaskLaunchError, type StatusExtras, type TaskHooks } from './task-hooks.js';
import { du } from './disk.js';
import { containerSpec, killGraceMs, sandboxPath, taskLimits, validateTask } from './task-spec.js';

/** A task's life on this agent. */
export type TaskPhase =
  /** Checkpointed; its container is being created (preStart hooks run here). */
  | 'launching'
  /** Its container is alive. */
  | 'running'
  /** A kill was received; the container is being destroyed. */
  | 'killing'
  /** A terminal update was produced; the task is kept until its ack arrives. */
  | 'terminal';

export interface TaskEntry {
  frameworkId: string;
  task: TaskInfo;
  executorId: string;
  containerId: string;
  sandbox: string;
  runDir: string;
  phase: TaskPhase;
  /** Latest state produced for the task. */
  state: TaskState;
  record?: ContainerRecord;
  killRequested?: { graceMs: number; extras?: StatusExtras };
  /** Set when the agent ended the task itself (max completion time). */
  agentReason?: { reason: TaskStatusReason; message: string };
  completionTimer?: TimerHandle;
  /** Settles once the container's end has been handled (terminal update queued). */
  exitHandled?: Promise<void>;
  /** Settles (never rejects) once the containerizer's launch of this task settled, either way. */
  launched?: Promise<unknown>;
  /** Aborted when the task is killed during launch (preStart) and when it ends (postRunning). */
  abort: AbortController;
  /** Sandbox usage at the last disk check (bytes), for /monitor/statistics. */
  diskUsedBytes?: number;
  diskTimer?: TimerHandle;
}

export const taskKey = (fid: string, tid: string): string => `${fid}/${tid}`;

export interface TaskLifecycleOptions {
  workDir: string;
  clock: Clock;
  log: Logger;
  checkpoint: Checkpoint;
  sum: StatusUpdateManager;
  containerizer: () => Containerizer;
  frameworks: Map<string, FrameworkInfo>;
  agentId: () => string | undefined;
  /** Resolves once the agent id is durable (launches wait for it). */
  agentIdDurable: () => Promise<void>;
  hostname: () => string | undefined;
  /** Best-effort frame to the master (an update that cannot be checkpointed). */
  sendUnreliable: (u: StatusUpdateMessage) => void;
  hooks?: TaskHooks;
  /** How often a running task's sandbox is measured against its `disk` (default 15 s, Mesos' container_disk_watch_interval). */
  diskCheckMs?: number;
}

export class TaskLifecycle {
  readonly tasks = new Map<string, TaskEntry>();
  /** Tasks whose terminal update was acknowledged: a late Launch or Kill for them is ignored. */
  readonly completed = new LRUCache<string, { state: TaskState; at: number }>({ max: 10_000 });
  private readonly hooks: TaskHooks;

  constructor(private readonly o: TaskLifecycleOptions) {
    this.hooks = o.hooks ?? {};
  }

  private get cz(): Containerizer { return this.o.containerizer(); }

  entryFromCheckpoint(cp: TaskCheckpoint, state: TaskState): TaskEntry {
    return {
      frameworkId: cp.framework_id, task: cp.task, executorId: cp.executor_id, containerId: cp.container_id,
      sandbox: cp.sandbox, runDir: cp.run_dir, phase: 'launching', state, abort: new AbortController(),
    };
  }

  find(fid: string, tid: string): TaskEntry | undefined { return this.tasks.get(taskKey(fid, tid)); }

  /** Handles a Launch. */
  async launch(framework: FrameworkInfo, task: TaskInfo): Promise<void> {
    const fid = framework.id?.value ?? '';
    const tid = task.task_id?.value ?? '';
    const idErr = idError('framework id', fid) ?? idError('task_id', tid);
    if (idErr) {
      // Nothing can be checkpointed under an unsafe id: answer once, best effort.
      this.o.log.error({ framework: fid, task: tid, err: idErr }, 'Rejecting launch with an invalid id');
      this.o.sendUnreliable({ framework_id: { value: fid }, status: this.status(tid, 'TASK_ERROR', 'SOURCE_AGENT', 'REASON_TASK_INVALID', idErr) });
      return;
    }
    const k = taskKey(fid, tid);
    if (this.tasks.has(k) || this.completed.has(k) || this.o.sum.has(fid, tid)) {
      this.o.log.warn({ framework: fid, task: tid }, 'Ignoring launch because the task is already known to this agent');
      return;
    }
    const containerId = randomUUID();
    const entry: TaskEntry = {
      frameworkId: fid, task, executorId: tid, containerId,
      sandbox: sandboxPath(this.o.workDir, fid, tid, containerId),
      runDir: this.o.checkpoint.runDir(containerId), phase: 'launching', state: 'TASK_STAGING', abort: new AbortController(),
    };
    this.tasks.set(k, entry);
    const invalid = validateTask(framework, task);
    if (invalid) {
      this.o.log.warn({ framework: fid, task: tid, err: invalid }, 'Rejecting invalid task');
      await this.terminal(entry, 'TASK_ERROR', 'SOURCE_AGENT', 'REASON_TASK_INVALID', invalid);
      return;
    }
    await this.o.agentIdDurable();
    const fwChanged = JSON.stringify(this.o.frameworks.get(fid)) !== JSON.stringify(framework);
    this.o.frameworks.set(fid, framework);
    // One batch of the checkpoint log carries the framework, the task and its STARTING (and those
    // of every other task launched meanwhile). The agent's process creates no file of the launch:
    // the containerizer makes the sandbox (normally the supervisor does, on its own core), and the
    // supervisor writes its exit record next to the others in meta/runs/ (see checkpoint.ts).
    const prepared = Promise.all([
      fwChanged ? this.o.checkpoint.writeFramework(framework) : undefined,
      this.o.checkpoint.writeTask({ framework_id: fid, executor_id: tid, container_id: containerId, sandbox: entry.sandbox, run_dir: entry.runDir, task }),
    ]);
    const starting = this.updateFor(entry, 'TASK_STARTING');
    try {
      await prepared;
    } catch (e) {
      await starting;
      await this.terminal(entry, 'TASK_FAILED', 'SOURCE_AGENT', 'REASON_CONTAINER_LAUNCH_FAILED', `Cannot checkpoint the task: ${(e as Error).message}`);
      return;
    }
    if (entry.killRequested) {
      await starting;
      await this.terminal(entry, 'TASK_KILLED', 'SOURCE_AGENT', 'REASON_TASK_KILLED_DURING_LAUNCH', 'Task killed before it was launched');
      return;
    }
    const spec = containerSpec({
      frameworkId: fid, agentId: this.o.agentId() ?? '', executorId: tid, containerId, sandbox: entry.sandbox,
      hostname: this.o.hostname() ?? osHostname(), task, runDir: entry.runDir, frameworkUser: framework.user,
    });
    if (needsPreStart(this.hooks, task)) {
      const preStart = this.hooks.preStart!;
      spec.beforeExec = async ({ sandbox, owner }) => {
        await preStart({ frameworkId: fid, framework, task, containerId, sandbox, owner, env: spec.env, signal: entry.abort.signal });
        if (entry.killRequested) throw new TaskLaunchError('REASON_TASK_KILLED_DURING_LAUNCH', 'Task killed before it was launched');
      };
    }
    let record: ContainerRecord;
    try {
      const launching = this.cz.launch(spec);
      entry.launched = launching.catch(() => undefined);
      record = await launching;
    } catch (e) {
      await starting;
      const cause = hookError(e);
      if (cause?.reason === 'REASON_TASK_KILLED_DURING_LAUNCH') {
        await this.terminal(entry, 'TASK_KILLED', 'SOURCE_AGENT', cause.reason, cause.message);
      } else if (cause) {
        await this.terminal(entry, 'TASK_FAILED', 'SOURCE_AGENT', cause.reason, cause.message);
      } else {
        await this.terminal(entry, 'TASK_FAILED', 'SOURCE_AGENT', 'REASON_CONTAINER_LAUNCH_FAILED', `Failed to launch the container: ${(e as Error).message}`);
      }
      return;
    }
    entry.record = record;
    const recorded = this.o.checkpoint.writeContainer(fid, tid, record);
    entry.phase = 'running';
    // RUNNING is queued before the watcher can queue a terminal update: the stream keeps call order,
    // so even a task that exits at once reports STARTING, RUNNING, then its end.
    const running = entry.killRequested ? undefined : this.updateFor(entry, 'TASK_RUNNING');
    this.watch(entry);
    this.watchDisk(entry);
    const maxNs = task.max_completion_time?.nanoseconds;
    if (maxNs !== undefined) {
      entry.completionTimer = this.o.clock.setTimeout(() => {
        entry.agentReason = { reason: 'REASON_MAX_COMPLETION_TIME_REACHED', message: `Task exceeded its max completion time of ${Number(maxNs) / 1e9} s` };
        void this.destroyTask(entry, killGraceMs(task));
      }, Number(maxNs) / 1e6);
    }
    // A kill may have arrived while the container started (TS narrowed it away: re-read it widened).
    const killRequested = entry.killRequested as TaskEntry['killRequested'];
    if (killRequested) void this.destroyTask(entry, killRequested.graceMs);
    await Promise.all([recorded, starting, running]);
    if (running && entry.phase === 'running') this.startPostRunning(entry, framework);
  }

  /** Once RUNNING is durable: the postRunning hook (health checks) watches the task until it ends. */
  startPostRunning(entry: TaskEntry, framework?: FrameworkInfo): void {
    const hook = this.hooks.postRunning;
    if (!hook || !entry.record || entry.abort.signal.aborted) return;
    hook({
      frameworkId: entry.frameworkId,
      framework: framework ?? this.o.frameworks.get(entry.frameworkId) ?? { user: '', name: '' },
      task: entry.task, containerId: entry.containerId, sandbox: entry.sandbox, record: entry.record,
      signal: entry.abort.signal,
      update: async (extras) => {
        if (entry.phase !== 'running' || entry.abort.signal.aborted) return;
        await this.updateFor(entry, 'TASK_RUNNING', 'SOURCE_EXECUTOR', undefined, undefined, extras);
      },
      kill: async (opts) => {
        if (entry.phase !== 'running') return;
        const graceMs = opts?.graceMs ?? killGraceMs(entry.task);
        entry.killRequested = { graceMs, extras: opts?.extras };
        await this.destroyTask(entry, graceMs);
      },
    });
  }

  /** Handles a Kill. */
  async kill(fid: string, tid: string, policy?: KillPolicy): Promise<void> {
    const k = taskKey(fid, tid);
    const entry = this.tasks.get(k);
    if (!entry) {
      if (this.completed.has(k) || this.o.sum.has(fid, tid)) {
        this.o.log.info({ framework: fid, task: tid }, 'Ignoring kill because the task already ended');
        return;
      }
      if (idError('framework id', fid) || idError('task_id', tid)) {
        this.o.log.warn({ framework: fid, task: tid }, 'Ignoring kill of a task with an invalid id');
        return;
      }
      // Tell the framework: it believes the task exists here, the agent has never heard of it.
      this.o.log.warn({ framework: fid, task: tid }, 'Kill for an unknown task; answering TASK_LOST');
      await this.o.sum.update({ framework_id: { value: fid }, status: this.status(tid, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_TASK_UNKNOWN', 'Task unknown to the agent') });
      return;
    }
    const graceMs = killGraceMs(entry.task, policy);
    switch (entry.phase) {
      case 'launching':
        entry.killRequested = { graceMs };
        entry.abort.abort();
        return;
      case 'running':
        entry.killRequested = { graceMs };
        await this.destroyTask(entry, graceMs);
        return;
      case 'killing':
        // A second kill may shorten the grace period (escalation), as in Mesos.
        if (entry.killRequested && graceMs < entry.killRequested.graceMs) {
          entry.killRequested.graceMs = graceMs;
          await this.cz.destroy(entry.containerId, graceMs);
        }
        return;
      case 'terminal':
        this.o.log.info({ framework: fid, task: tid }, 'Ignoring kill because the task is already terminal');
        return;
      default:
        assertNever(entry.phase);
    }
  }

  async destroyTask(entry: TaskEntry, graceMs: number): Promise<void> {
    if (entry.phase !== 'running') return;
    entry.phase = 'killing';
    const fw = this.o.frameworks.get(entry.frameworkId);
    if (fw?.capabilities?.some((c) => c.type === 'TASK_KILLING_STATE')) void this.updateFor(entry, 'TASK_KILLING');
    await this.cz.destroy(entry.containerId, graceMs);
  }

  shutdownFramework(fid: string): void {
    this.o.log.info({ framework: fid }, 'Shutting down framework');
    for (const t of this.tasks.values()) if (t.frameworkId === fid) void this.kill(fid, t.task.task_id.value);
  }

  /**
   * Mesos' disk/du: the sandbox is measured every diskCheckMs; past the task's `disk` the task is
   * destroyed and ends TASK_FAILED REASON_CONTAINER_LIMITATION_DISK. A kill already under way wins.
   */
  watchDisk(entry: TaskEntry): void {
    const limitMiB = taskLimits(entry.task).diskMiB ?? 0;
    if (!(limitMiB > 0)) return;
    const limit = limitMiB * 1024 * 1024;
    const check = async (): Promise<void> => {
      entry.diskTimer = undefined;
      if (entry.phase !== 'running') return;
      const used = await du(entry.sandbox, limit);
      entry.diskUsedBytes = used.bytes;
      if (entry.phase !== 'running') return;
      if (used.bytes > limit) {
        const mib = (b: number): string => (b / 1048576).toFixed(1);
        entry.agentReason = { reason: 'REASON_CONTAINER_LIMITATION_DISK', message: `Disk usage ${used.truncated ? 'over ' : ''}${mib(used.bytes)} MiB exceeds the disk quota of ${mib(limit)} MiB` };
        this.o.log.info({ task: entry.task.task_id.value, usedBytes: used.bytes, limitBytes: limit }, 'Task over its disk quota: destroying it');
        await this.destroyTask(entry, 0);
        return;
      }
      entry.diskTimer = this.o.clock.setTimeout(() => void check(), this.o.diskCheckMs ?? 15_000);
    };
    entry.diskTimer = this.o.clock.setTimeout(() => void check(), this.o.diskCheckMs ?? 15_000);
  }

  watch(entry: TaskEntry): void {
    entry.exitHandled = this.cz.wait(entry.containerId).then(
      (exit) => this.onExit(entry, exit),
      (e: unknown) => this.onExit(entry, { exitCode: null, signal: null, reason: 'REASON_EXECUTOR_TERMINATED', message: `lost track of the container: ${(e as Error).message}` }),
    ).catch((e: unknown) => this.o.log.error({ task: entry.task.task_id.value, err: (e as Error).message }, 'Failed to report task exit'));
  }

  private async onExit(entry: TaskEntry, exit: ContainerExit): Promise<void> {
    if (entry.phase === 'terminal') return;
    this.o.clock.clearTimeout(entry.completionTimer);
    // No process of the task may outlive its terminal update (leftover children included).
    await this.cz.destroy(entry.containerId, 0);
    const after = exit.recovered ? ' (observed after an agent restart)' : '';
    let state: TaskState; let reason: TaskStatusReason | undefined; let message: string; let source: TaskStatusSource = 'SOURCE_EXECUTOR';
    let extras: StatusExtras | undefined;
    if (exit.reason === 'REASON_CONTAINER_LIMITATION_MEMORY' || exit.reason === 'REASON_CONTAINER_LIMITATION_DISK') {
      // A limitation ended the container (it destroyed it when the limit was reached): it wins over a kill.
      state = 'TASK_FAILED'; reason = exit.reason; source = 'SOURCE_AGENT'; message = exit.message ?? 'Container limitation reached';
    } else if (entry.agentReason) {
      state = 'TASK_FAILED'; reason = entry.agentReason.reason; source = 'SOURCE_AGENT'; message = entry.agentReason.message;
    } else if (entry.killRequested) {
      extras = entry.killRequested.extras;
      state = 'TASK_KILLED'; message = extras?.message ?? `Task killed${exit.signal ? ` (${exit.signal})` : ''}`;
    } else if (exit.exitCode === 0) {
      state = 'TASK_FINISHED'; message = 'Command exited with status 0';
    } else if (exit.exitCode !== null) {
      state = 'TASK_FAILED'; reason = 'REASON_COMMAND_EXECUTOR_FAILED'; message = `Command exited with status ${exit.exitCode}`;
    } else if (exit.signal !== null) {
      state = 'TASK_FAILED'; reason = 'REASON_COMMAND_EXECUTOR_FAILED'; message = `Command terminated with signal ${exit.signal}`;
    } else {
      state = 'TASK_FAILED'; reason = 'REASON_EXECUTOR_TERMINATED'; source = 'SOURCE_AGENT'; message = exit.message ?? 'The task ended without an exit status';
    }
    await this.terminal(entry, state, source, reason, message + after, extras);
  }

  /** Produces a task's terminal update (once). */
  async terminal(entry: TaskEntry, state: TaskState, source: TaskStatusSource, reason: TaskStatusReason | undefined, message: string, extras?: StatusExtras): Promise<void> {
    if (entry.phase === 'terminal') return;
    entry.phase = 'terminal';
    entry.abort.abort();
    this.o.clock.clearTimeout(entry.completionTimer);
    this.o.clock.clearTimeout(entry.diskTimer);
    await this.updateFor(entry, state, source, reason, message, extras);
  }

  /**
   * Produces one update through the status-update manager. A failed checkpoint write is fatal: the
   * manager reports it (see StatusUpdateManager `onFatal`), and the update is never visible.
   */
  async updateFor(entry: TaskEntry, state: TaskState, source: TaskStatusSource = 'SOURCE_EXECUTOR', reason?: TaskStatusReason, message?: string, extras?: StatusExtras): Promise<void> {
    entry.state = state;
    const status: TaskStatus = { ...(extras ?? {}), ...this.status(entry.task.task_id.value, state, source, reason ?? extras?.reason, message ?? extras?.message) };
    status.executor_id = { value: entry.executorId };
    try {
      await this.o.sum.update({ framework_id: { value: entry.frameworkId }, status });
    } catch (e) {
      this.o.log.error({ task: entry.task.task_id.value, state, err: (e as Error).message }, 'Cannot checkpoint a status update');
    }
  }

  status(tid: string, state: TaskState, source: TaskStatusSource, reason?: TaskStatusReason, message?: string): TaskStatus {
    const s: TaskStatus = { task_id: { value: tid }, state, source, timestamp: this.o.clock.now() / 1000 };
    const agentId = this.o.agentId();
    if (agentId) s.agent_id = { value: agentId };
    if (reason) s.reason = reason;
    if (message) s.message = message;
    return s;
  }

  /** The terminal update was acknowledged: forget the task (its sandbox stays for reading until GC). */
  forget(fid: string, tid: string, last: StatusUpdateMessage): TaskEntry | undefined {
    const k = taskKey(fid, tid);
    const entry = this.tasks.get(k);
    this.tasks.delete(k);
    this.completed.set(k, { state: last.status.state, at: this.o.clock.now() });
    return entry;
  }

  /** Stops the agent's part in every task (timers, hooks); tasks keep running. */
  close(): void {
    for (const t of this.tasks.values()) {
      this.o.clock.clearTimeout(t.completionTimer);
      this.o.clock.clearTimeout(t.diskTimer);
      t.abort.abort();
    }
  }
}

/** The hook failure behind a launch error, if one is (containerizers wrap what beforeExec threw). */
function hookError(e: unknown): TaskLaunchError | undefined {
  for (let x: unknown = e; x; x = (x as { cause?: unknown }).cause) if (x instanceof TaskLaunchError) return x;
  return undefined;
}

export function assertNever(x: never): never {
  throw new BerthError('INVALID', `unexpected value ${String(x)}`);
}
