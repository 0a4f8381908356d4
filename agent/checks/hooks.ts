/**
 * Health checks and checks at the task lifecycle's post-RUNNING seam
 * (agent/task-hooks.ts): started once the task's TASK_RUNNING is durable,
 * stopped when the task ends (the context's signal). Results become
 * TASK_RUNNING updates carrying the last known `healthy` and `check_status`
 * both (Mesos keeps them on every later update); a task past its health
 * check's `consecutive_failures` is killed and ends TASK_KILLED with
 * `healthy: false`, as Mesos' executors do.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Clock } from '../../proto/clock.js';
import type { Logger } from '../../proto/log.js';
import type { StatusExtras, TaskHooks } from '../task-hooks.js';
import { taskEnv } from '../task-spec.js';
import type { ResolvedUser } from '../containerizer/linux/users.js';
import { startTaskChecks, type ProbeTarget } from './index.js';

export interface CheckHookOptions {
  clock: Clock;
  log?: Logger;
  /** The agent's hostname ($HOST of the task); default os.hostname(). */
  hostname?: () => string | undefined;
}

/** Real uid/gid of a process (the user the task actually runs as), from /proc/<pid>/status. */
function processUser(pid: number): ResolvedUser | undefined {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(st)?.[1]);
    const gid = Number(/^Gid:\s+(\d+)/m.exec(st)?.[1]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
    return { name: String(uid), uid, gid, groups: [gid] };
  } catch {
    return undefined;
  }
}

export function checkHooks(o: CheckHookOptions): TaskHooks {
  return {
    postRunning(ctx) {
      const task = ctx.task;
      if (!task.health_check && !task.check) return;
      const taskPid = ctx.record.extra?.['taskPid'];
      const pid = typeof taskPid === 'number' ? taskPid : ctx.record.pid;
      // The same environment the task's command was given (task-spec.ts builds both).
      const env = taskEnv({
        frameworkId: ctx.frameworkId, agentId: task.agent_id?.value ?? '', executorId: task.task_id.value, containerId: ctx.containerId,
        sandbox: ctx.sandbox, hostname: o.hostname?.() ?? hostname(), task,
      });
      const target: ProbeTarget = { pid, user: processUser(pid), env, cwd: ctx.sandbox };
      let last: StatusExtras = {};
      const checks = startTaskChecks(task, target, {
        emit: (u) => {
          last = { ...last, ...(u.healthy !== undefined ? { healthy: u.healthy } : {}), ...(u.check_status ? { check_status: u.check_status } : {}) };
          void ctx.update({ ...last, reason: u.reason, message: u.message }).catch((e: unknown) => o.log?.warn({ task: task.task_id.value, err: (e as Error).message }, 'Cannot report a check result'));
        },
        kill: (message) => {
          o.log?.warn({ task: task.task_id.value, message }, 'Killing an unhealthy task');
          void ctx.kill({ extras: { ...last, healthy: false, message } });
        },
      }, { clock: o.clock, log: o.log });
      if (!checks) return;
      if (ctx.signal.aborted) checks.stop();
      else ctx.signal.addEventListener('abort', () => checks.stop(), { once: true });
    },
  };
}
