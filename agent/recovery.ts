/**
 * Agent recovery: rebuilds the agent's tasks, frameworks and update streams
 * from its checkpoint and re-adopts the containers that still run.
 *
 * Invariants:
 *  - A supervisor is recognised only by its checkpointed identity (pid + start time, in the boot
 *    recorded with it), never by its argv: no process a task starts can pass for one, and no
 *    process can make recovery fail.
 *  - Nothing is launched during recovery; a task whose launch was interrupted before its
 *    container record was durable is never relaunched: its exit record tells how it ended, else
 *    its container is destroyed by id (linux: its cgroup) and it is reported lost. Its RUNNING
 *    was never visible (RUNNING follows the durable record).
 *  - After a reboot (boot id changed) no container is re-adopted: every unfinished task is lost.
 */
import type { Logger } from '../proto/log.js';
import { isTerminal, type FrameworkInfo } from '../proto/types.js';
import type { Checkpoint, RecoveredTask } from './checkpoint.js';
import { hasExitRecord } from './containerizer/files.js';
import type { ContainerRecord, Containerizer } from './containerizer/types.js';
import { bootId } from './proc.js';
import type { StatusUpdateManager } from './status-update-manager.js';
import { taskKey, type TaskEntry, type TaskLifecycle } from './task-lifecycle.js';
import { taskLimits } from './task-spec.js';

export interface RecoveryDeps {
  checkpoint: Checkpoint;
  sum: StatusUpdateManager;
  containerizer: Containerizer;
  tasks: TaskLifecycle;
  frameworks: Map<string, FrameworkInfo>;
  log: Logger;
  now: () => number;
}

export interface Recovered {
  agentId?: string;
  adopted: number;
}

export async function recoverAgent(d: RecoveryDeps): Promise<Recovered> {
  const rec = await d.checkpoint.recover();
  const boot = bootId();
  const rebooted = rec.agent !== undefined && rec.agent.boot_id !== boot;
  if (rebooted) d.log.warn({ was: rec.agent?.boot_id, now: boot }, 'Host rebooted since the last run: no container is re-adopted');
  for (const [fid, fw] of rec.frameworks) d.frameworks.set(fid, fw);
  const adopt: ContainerRecord[] = [];
  const after: (() => Promise<void>)[] = [];
  for (const rt of rec.tasks) {
    d.sum.recover(rt.frameworkId, rt.taskId, rt.updates);
    const latest = d.sum.latest(rt.frameworkId, rt.taskId);
    if (!rt.task) {
      if (rt.container) {
        // Non-strict recovery of a task whose task record was unreadable: it cannot be managed, so it
        // must not keep running unseen. Destroy its container and tell the framework.
        const c = rt.container;
        if (c.bootId === boot) adopt.push(c);
        after.push(async () => {
          if (c.bootId === boot) await d.containerizer.destroy(c.containerId, 0);
          if (!d.sum.terminated(rt.frameworkId, rt.taskId)) {
            await d.sum.update({ framework_id: { value: rt.frameworkId }, status: d.tasks.status(rt.taskId, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_AGENT_RESTARTED', 'The task checkpoint was unreadable after an agent restart; its container was destroyed') });
          }
        });
        continue;
      }
      // A stream without a task (e.g. TASK_LOST for an unknown task): resent once connected.
      if (!d.sum.has(rt.frameworkId, rt.taskId)) await d.checkpoint.removeTask(rt.frameworkId, rt.taskId);
      continue;
    }
    const entry = d.tasks.entryFromCheckpoint(rt.task, latest?.status.state ?? 'TASK_STAGING');
    if (!d.sum.has(rt.frameworkId, rt.taskId) && latest && isTerminal(latest.status.state)) {
      // Terminal and acknowledged: the agent died while forgetting it.
      d.tasks.completed.set(taskKey(rt.frameworkId, rt.taskId), { state: latest.status.state, at: d.now() });
      await d.checkpoint.removeTask(rt.frameworkId, rt.taskId, rt.task.run_dir);
      continue;
    }
    d.tasks.tasks.set(taskKey(entry.frameworkId, entry.task.task_id.value), entry);
    if (isTerminal(entry.state)) { entry.phase = 'terminal'; continue; }
    if (rt.container && (rebooted || rt.container.bootId !== boot)) {
      after.push(() => d.tasks.terminal(entry, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_AGENT_RESTARTED',
        'The host rebooted while the agent was down (boot id changed); the task is gone'));
    } else if (rebooted) {
      // No record (the agent died mid-launch) and a new boot: nothing of the task can be running.
      after.push(() => d.tasks.terminal(entry, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_AGENT_RESTARTED', 'The host rebooted while the agent was down; the task is gone'));
    } else if (rt.container) {
      entry.record = rt.container;
      adopt.push(rt.container);
      after.push(async () => {
        entry.phase = 'running';
        d.tasks.watch(entry);
        d.tasks.watchDisk(entry);
        // Produce RUNNING if the agent died between recording the container and reporting it.
        if (entry.state === 'TASK_STAGING' || entry.state === 'TASK_STARTING') await d.tasks.updateFor(entry, 'TASK_RUNNING');
        d.tasks.startPostRunning(entry);
      });
    } else {
      after.push(() => recoverInterruptedLaunch(d, entry, rt));
    }
  }
  await d.containerizer.recover(adopt);
  for (const f of after) await f();
  const agentId = rec.agent?.agent_id;
  if (agentId) {
    await d.checkpoint.writeAgent({ agent_id: agentId, boot_id: boot });
    d.log.info({ agentId, tasks: d.tasks.tasks.size, adopted: adopt.length, unacked: d.sum.pendingCount(), skipped: rec.skipped.length }, 'Recovered from checkpoint');
  }
  return { agentId, adopted: adopt.length };
}

/**
 * The agent died after checkpointing a task but before its container record was durable. Its
 * supervisor, if it started, has no identity on record, and argv proves nothing: so the container
 * is destroyed by id (the linux containerizer kills its cgroup) and the task ends by its exit
 * record if the supervisor wrote one, else as lost. Never relaunched.
 */
async function recoverInterruptedLaunch(d: RecoveryDeps, entry: TaskEntry, rt: RecoveredTask): Promise<void> {
  d.log.warn({ task: rt.taskId, framework: rt.frameworkId }, 'Task launch was interrupted by an agent restart; ending it');
  await d.containerizer.destroy(entry.containerId, 0).catch((e: unknown) => d.log.warn({ task: rt.taskId, err: (e as Error).message }, 'Cannot destroy the container of an interrupted launch'));
  if (hasExitRecord(entry.runDir)) {
    // The task ran and ended: report how, through the containerizer's usual path.
    const record: ContainerRecord = { containerId: entry.containerId, pid: 0, startTime: 0, bootId: bootId(), sandbox: entry.sandbox, runDir: entry.runDir, limits: taskLimits(entry.task) };
    await d.containerizer.recover([record]);
    entry.record = record;
    entry.phase = 'running';
    d.tasks.watch(entry);
    return;
  }
  await d.tasks.terminal(entry, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_AGENT_RESTARTED', 'The agent restarted while launching the task; its container was destroyed');
}
