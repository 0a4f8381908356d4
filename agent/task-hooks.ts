/**
 * The two seams of a task's life on the agent where other agent parts plug in
 * (the URI fetcher and health checks, under agent/fetcher/ and agent/checks/):
 *
 *   launch ─▶ checkpoint ─▶ sandbox made ─▶ preStart ─▶ command execs ─▶ RUNNING ─▶ postRunning … ─▶ end
 *                                               │                                       │
 *                     throws TaskLaunchError ───┘ TASK_FAILED(reason)      update() / kill() while it runs
 *
 * preStart runs once per task, after the sandbox exists (created, owned by the task's host-mapped
 * user, with `stdout` and `stderr`) and before the task's command is started; nothing of the task
 * runs yet. Throwing a TaskLaunchError fails the launch with its reason (the fetcher:
 * REASON_FETCHER_FAILED); any other error fails it with REASON_CONTAINER_LAUNCH_FAILED. Its
 * `signal` is aborted when the task is killed meanwhile (the launch then ends TASK_KILLED).
 *
 * postRunning runs once the task's TASK_RUNNING has been produced. Through its context it may
 * emit further TASK_RUNNING updates with extra fields (health: `healthy`, `check_status`,
 * `reason: REASON_TASK_HEALTH_CHECK_STATUS_UPDATED`) — each is checkpointed and delivered
 * reliably by the status-update manager like any update — and request the task's kill (a failed
 * health check past its limit). Its `signal` is aborted when the task ends (terminal update
 * produced or agent stopping): stop timers and processes then; update() after that is a no-op.
 *
 * Hooks see only what a task's owner may see. Both run in the agent's process, as the agent's
 * user: whatever a hook creates in the sandbox must be given to `owner`.
 */
import { BerthError } from '../proto/errors.js';
import type { FrameworkInfo, TaskInfo, TaskStatus, TaskStatusReason } from '../proto/types.js';
import type { ContainerRecord } from './containerizer/types.js';

/** A pre-start failure with the Mesos reason the task's TASK_FAILED carries. */
export class TaskLaunchError extends BerthError {
  override name = 'TaskLaunchError';
  constructor(readonly reason: TaskStatusReason, message: string) {
    super('INVALID', message);
  }
}

export interface PreStartContext {
  frameworkId: string;
  framework: FrameworkInfo;
  task: TaskInfo;
  containerId: string;
  /** The task's sandbox: exists, with stdout and stderr, owned by `owner`. */
  sandbox: string;
  /** Host uid/gid the sandbox belongs to (the task's user, or its user-namespace mapping). */
  owner: { uid: number; gid: number };
  /** The environment the task's command will be given at its execve. */
  env: Readonly<Record<string, string>>;
  /** Aborted when the task is killed before it started. */
  signal: AbortSignal;
}

/** TaskStatus fields a hook may set on the updates it emits (state, ids, uuid and time are the agent's). */
export type StatusExtras = Omit<Partial<TaskStatus>, 'task_id' | 'state' | 'uuid' | 'agent_id' | 'executor_id' | 'timestamp' | 'source'>;

export interface RunningContext {
  frameworkId: string;
  framework: FrameworkInfo;
  task: TaskInfo;
  containerId: string;
  sandbox: string;
  /** The container's record (supervisor pid; linux: `extra.taskPid`, `extra.cgroup`). */
  record: ContainerRecord;
  /** Aborted once the task has ended (or the agent stops). */
  signal: AbortSignal;
  /**
   * Emits a TASK_RUNNING update carrying `extras` (e.g. `{ healthy: false, reason:
   * 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' }`); resolves once it is durable. No-op after the end.
   */
  update(extras: StatusExtras): Promise<void>;
  /**
   * Kills the task as a framework KILL would (grace from its kill policy unless given). Its terminal
   * update is TASK_KILLED carrying `extras` (e.g. `{ healthy: false, message: … }`).
   */
  kill(opts?: { graceMs?: number; extras?: StatusExtras }): Promise<void>;
}

export interface TaskHooks {
  /**
   * Whether preStart has work for this task (e.g. it has URIs). A task for which no hook has work
   * takes the fast launch path (the supervisor makes the sandbox itself). Default: true.
   */
  needsPreStart?(task: TaskInfo): boolean;
  preStart?(ctx: PreStartContext): Promise<void>;
  postRunning?(ctx: RunningContext): void;
}

/** Whether `hooks` has pre-start work for `task`. */
export function needsPreStart(hooks: TaskHooks, task: TaskInfo): boolean {
  return hooks.preStart !== undefined && (hooks.needsPreStart?.(task) ?? true);
}

/** Runs several hook sets in order (preStart: each that has work, first failure wins; postRunning: all). */
export function composeHooks(...sets: TaskHooks[]): TaskHooks {
  const out: TaskHooks = {};
  if (sets.some((h) => h.preStart)) {
    out.needsPreStart = (task) => sets.some((h) => needsPreStart(h, task));
    out.preStart = async (ctx) => {
      for (const h of sets) if (needsPreStart(h, ctx.task)) await h.preStart!(ctx);
    };
  }
  if (sets.some((h) => h.postRunning)) out.postRunning = (ctx) => { for (const h of sets) h.postRunning?.(ctx); };
  return out;
}
