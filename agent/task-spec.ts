/**
 * From a Launch to a ContainerSpec: the agent's last-line validation of a
 * task (an ordered list of small validators; the first failure wins and names
 * the field at fault) and the pure construction of sandbox paths, limits and
 * the task's environment.
 *
 * The master validates most of this already; the agent re-checks what would
 * be unsafe or silently wrong to run (IDs that become paths, features Berth
 * does not implement), because "unknown or unimplemented features are rejected
 * with a clear error, never ignored" (DESIGN.md).
 */
import { join } from 'node:path';
import { Resources } from '../proto/resources.js';
import type { FrameworkInfo, TaskInfo } from '../proto/types.js';
import type { ContainerLimits, ContainerSpec } from './containerizer/types.js';
import { idError } from '../proto/ids.js';
import { validateChecks } from './checks/index.js';
import { urisError } from './fetcher/index.js';

export const DEFAULT_KILL_GRACE_MS = 3000;
/** Bound on the PORTn variables generated for one task. */
const MAX_PORT_VARS = 1000;

type Validator = (fw: FrameworkInfo, t: TaskInfo) => string | undefined;

const validators: Validator[] = [
  (fw) => idError('framework id', fw.id?.value),
  (_, t) => idError('task_id', t.task_id?.value),
  (_, t) => (t.executor ? `task.executor: custom executors are not supported (executor '${t.executor.executor_id?.value ?? ''}'); give the task a command instead` : undefined),
  (_, t) => (t.command ? undefined : 'task.command is missing (a task needs a command or an executor)'),
  (_, t) => {
    const c = t.container;
    if (!c) return undefined;
    if (c.type !== 'MESOS') return `task.container.type ${String(c.type)} is not supported; only MESOS containers run on Berth agents`;
    const extra = c as unknown as Record<string, unknown>;
    const mesos = extra.mesos as { image?: unknown } | undefined;
    if (mesos?.image !== undefined) return 'task.container.mesos.image: container images are not supported';
    if (Array.isArray(extra.volumes) && extra.volumes.length > 0) return 'task.container.volumes: volumes are not supported';
    if ((c.network_infos ?? []).some((n) => n.name)) return 'task.container.network_infos: named (CNI) networks are not supported';
    return undefined;
  },
  (_, t) => urisError(t.command?.uris),
  (_, t) => {
    const c = t.command!;
    if (c.value === undefined || c.value === '') return c.shell === false ? 'task.command.value: the executable to run is missing' : 'task.command.value: the shell command is empty';
    if (c.value.includes('\0')) return 'task.command.value contains a NUL character';
    if ((c.arguments ?? []).some((a) => a.includes('\0'))) return 'task.command.arguments contains a NUL character';
    return undefined;
  },
  (_, t) => {
    for (const v of t.command?.environment?.variables ?? []) {
      if (!v.name || v.name.includes('=') || v.name.includes('\0')) return `task.command.environment: invalid variable name '${v.name ?? ''}'`;
      if (v.type === 'SECRET') return `task.command.environment: secret variable '${v.name}' is not supported`;
      if ((v.value ?? '').includes('\0')) return `task.command.environment: variable '${v.name}' contains a NUL character`;
    }
    return undefined;
  },
  (_, t) => validateChecks(t),
  (_, t) => {
    try { Resources.from(t.resources); } catch (e) { return `task.resources: ${(e as Error).message}`; }
    return undefined;
  },
];

/** The first reason the agent cannot run this task, or undefined. */
export function validateTask(fw: FrameworkInfo, task: TaskInfo): string | undefined {
  for (const v of validators) {
    const err = v(fw, task);
    if (err) return err;
  }
  return undefined;
}

export function taskLimits(task: TaskInfo): ContainerLimits {
  const r = Resources.from(task.resources);
  const limits: ContainerLimits = { cpus: r.scalar('cpus'), memMiB: r.scalar('mem') };
  const disk = r.scalar('disk');
  const gpus = r.scalar('gpus');
  if (disk > 0) limits.diskMiB = disk;
  if (gpus > 0) limits.gpus = gpus;
  return limits;
}

/** Ports assigned to the task, in the order of its `ports` ranges (bounded). */
export function taskPorts(task: TaskInfo): number[] {
  const out: number[] = [];
  for (const res of task.resources ?? []) {
    if (res.name !== 'ports' || res.type !== 'RANGES') continue;
    for (const r of res.ranges?.range ?? []) {
      for (let p = r.begin; p <= r.end && out.length < MAX_PORT_VARS; p++) out.push(p);
    }
  }
  return out;
}

/** Agent environment variables a task inherits (Mesos passes the agent's environment to executors; we pass only these). */
const INHERITED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface EnvInput {
  frameworkId: string;
  agentId: string;
  executorId: string;
  containerId: string;
  sandbox: string;
  hostname: string;
  task: TaskInfo;
  base?: NodeJS.ProcessEnv;
}

/** The task's environment: inherited basics, then MESOS_* and PORT*, then the task's own variables (which win). */
export function taskEnv(i: EnvInput): Record<string, string> {
  const base = i.base ?? process.env;
  const env: Record<string, string> = {};
  for (const k of INHERITED) { const v = base[k]; if (v !== undefined) env[k] = v; }
  env.PATH ??= DEFAULT_PATH;
  Object.assign(env, {
    MESOS_SANDBOX: i.sandbox,
    MESOS_DIRECTORY: i.sandbox,
    MESOS_TASK_ID: i.task.task_id.value,
    MESOS_FRAMEWORK_ID: i.frameworkId,
    MESOS_AGENT_ID: i.agentId,
    MESOS_EXECUTOR_ID: i.executorId,
    MESOS_CONTAINER_ID: i.containerId,
    HOST: i.hostname,
  });
  const ports = taskPorts(i.task);
  ports.forEach((p, n) => { env[`PORT${n}`] = String(p); });
  if (ports.length > 0) {
    env.PORT = String(ports[0]);
    env.PORTS = ports.join(',');
  }
  for (const v of i.task.command?.environment?.variables ?? []) env[v.name] = v.value ?? '';
  return env;
}

export interface TaskPaths { executorId: string; sandbox: string }

/** `<work_dir>/frameworks/<fid>/executors/<eid>/runs/<cid>` (eid = task id for command tasks). */
export function sandboxPath(workDir: string, fid: string, eid: string, cid: string): string {
  return join(workDir, 'frameworks', fid, 'executors', eid, 'runs', cid);
}

/**
 * The container of a command task. Its user is CommandInfo.user, else FrameworkInfo.user (Mesos);
 * with neither, the agent's own user.
 */
export function containerSpec(opts: EnvInput & { runDir: string; frameworkUser?: string }): ContainerSpec {
  const c = opts.task.command!;
  const spec: ContainerSpec = {
    containerId: opts.containerId,
    sandbox: opts.sandbox,
    runDir: opts.runDir,
    command: { shell: c.shell !== false, value: c.value ?? '', arguments: c.arguments ?? [] },
    env: taskEnv(opts),
    limits: taskLimits(opts.task),
    hostname: opts.task.container?.hostname ?? opts.task.task_id.value,
  };
  const user = c.user || opts.frameworkUser;
  if (user) spec.user = user;
  return spec;
}

/** The kill grace period: the kill's policy, else the task's, else 3 s. */
export function killGraceMs(task: TaskInfo | undefined, policy?: { grace_period?: { nanoseconds: number } }): number {
  const ns = policy?.grace_period?.nanoseconds ?? task?.kill_policy?.grace_period?.nanoseconds;
  return ns === undefined ? DEFAULT_KILL_GRACE_MS : Math.max(0, Math.round(Number(ns) / 1e6));
}
