/**
 * The agent's read-only views: `/state` and `/monitor/statistics` (Mesos shapes). Read paths
 * only: nothing here changes a task, a container or the checkpoint.
 */
import type { AgentInfo, FrameworkInfo } from '../proto/types.js';
import type { Containerizer } from './containerizer/types.js';
import type { MonitorEntry } from './http.js';
import { bootId, isSameProcess } from './proc.js';
import type { TaskEntry } from './task-lifecycle.js';
import { taskLimits } from './task-spec.js';

export const AGENT_VERSION = '0.1.0';

export interface StateSource {
  id: string | undefined;
  state: string;
  info: AgentInfo | undefined;
  endpoint: string;
  masterId: string | undefined;
  containerizer: Containerizer | undefined;
  workDir: string;
  unacked: number;
  frameworks: Iterable<FrameworkInfo>;
  tasks: Iterable<TaskEntry>;
}

export function stateView(s: StateSource): Record<string, unknown> {
  return {
    id: s.id ?? null,
    state: s.state,
    version: AGENT_VERSION,
    hostname: s.info?.hostname,
    endpoint: s.endpoint,
    master_id: s.masterId ?? null,
    containerizer: s.containerizer?.kind,
    work_dir: s.workDir,
    boot_id: bootId(),
    resources: s.info?.resources ?? [],
    attributes: s.info?.attributes ?? [],
    unacknowledged_updates: s.unacked,
    frameworks: [...s.frameworks].map((f) => ({ id: f.id?.value, name: f.name, user: f.user })),
    tasks: [...s.tasks].map((t) => ({
      id: t.task.task_id.value, name: t.task.name, framework_id: t.frameworkId, executor_id: t.executorId,
      state: t.state, phase: t.phase, container_id: t.containerId, pid: t.record?.pid ?? null, sandbox: t.sandbox,
      resources: t.task.resources ?? [],
      alive: t.record ? isSameProcess(t.record.pid, t.record.startTime) : false,
    })),
  };
}

/** Usage of every live container, Mesos `/monitor/statistics` shape. */
export async function statistics(tasks: Iterable<TaskEntry>, cz: Containerizer): Promise<MonitorEntry[]> {
  const live = [...tasks].filter((t) => t.phase === 'running' || t.phase === 'killing');
  const out = await Promise.all(live.map(async (t): Promise<MonitorEntry | undefined> => {
    try {
      const statistics = await cz.usage(t.containerId);
      // disk/du figures, as Mesos reports them (measured by the task lifecycle's disk checks).
      const diskMiB = taskLimits(t.task).diskMiB ?? 0;
      if (diskMiB > 0) statistics.disk_limit_bytes = diskMiB * 1024 * 1024;
      if (t.diskUsedBytes !== undefined) statistics.disk_used_bytes = t.diskUsedBytes;
      return { framework_id: t.frameworkId, executor_id: t.executorId, source: t.task.task_id.value, statistics };
    } catch {
      return undefined;
    }
  }));
  return out.filter((x): x is MonitorEntry => x !== undefined);
}
