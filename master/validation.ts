/**
 * Validation of what frameworks ask for, as ordered lists of small validators
 * (Mesos master/validation.cpp). Each returns the first error, naming the field
 * at fault; nothing is validated against the filesystem or the allocator before
 * the ids are known to be safe.
 */
import { Resources } from '../proto/resources.js';
import { BerthError } from '../proto/errors.js';
import type { FrameworkInfo, Resource, TaskInfo } from '../proto/types.js';
import { idError } from '../proto/ids.js';

/** Why a list of task resources is unusable, or undefined. */
export function resourcesError(field: string, list: Resource[] | undefined): string | undefined {
  if (!list || list.length === 0) return `${field} must not be empty`;
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    const at = `${field}[${i}]${r.name ? ` (${r.name})` : ''}`;
    if (!r.name) return `${at}.name must not be empty`;
    if (r.disk || r.revocable || r.shared || r.provider_id) return `${at}: disk info, revocable, shared and provider resources are not supported`;
    if (r.type === 'SCALAR') {
      const v = r.scalar?.value;
      if (v === undefined) return `${at}.scalar is missing`;
      if (Number.isNaN(v)) return `${at}.scalar.value is NaN`;
      if (!Number.isFinite(v)) return `${at}.scalar.value is not finite`;
      if (v < 0) return `${at}.scalar.value ${v} is negative`;
      if (Math.round(v * 1000) === 0) return `${at}.scalar.value must be positive (got ${v})`;
    } else if (r.type === 'RANGES') {
      const rs = r.ranges?.range ?? [];
      if (rs.length === 0) return `${at}.ranges is empty`;
      for (const x of rs) if (x.end < x.begin) return `${at}.ranges has begin ${x.begin} > end ${x.end}`;
    } else if (r.type === 'SET') {
      if (!r.set?.item?.length) return `${at}.set is empty`;
    } else {
      return `${at}.type ${String(r.type)} is not valid for a resource`;
    }
  }
  const hasCpuOrMem = list.some((r) => r.name === 'cpus' || r.name === 'mem');
  if (!hasCpuOrMem) return `${field} must include cpus or mem`;
  return undefined;
}

export interface TaskContext {
  agentId: string;
  role: string;
  /** Task ids of the framework that are live, plus those earlier in the same ACCEPT. */
  liveTaskIds: Set<string>;
  /** What is still unclaimed of the offers being accepted. */
  remaining: Resources;
}

type TaskValidator = (task: TaskInfo, ctx: TaskContext) => string | undefined;

/** Ordered cheapest first; the first error wins. */
const TASK_VALIDATORS: TaskValidator[] = [
  (t) => idError('task_id', t.task_id?.value),
  (t, c) => (c.liveTaskIds.has(t.task_id.value) ? `task_id '${t.task_id.value}' is already in use` : undefined),
  (t, c) => (t.agent_id?.value !== c.agentId ? `agent_id '${t.agent_id?.value ?? ''}' does not match the offer's agent '${c.agentId}'` : undefined),
  (t) => (t.name === undefined ? 'name must be set' : undefined),
  (t) => {
    if (t.executor) return 'executor: custom executors are not supported; use command';
    if (!t.command) return 'command must be set';
    const shell = t.command.shell ?? true;
    if (shell && !t.command.value) return 'command.value must be set for a shell command';
    if (!shell && !t.command.value) return 'command.value (the executable) must be set when shell is false';
    if (t.command.uris?.length) return 'command.uris: fetching URIs is not supported yet';
    for (const v of t.command.environment?.variables ?? []) {
      if (v.type === 'SECRET') return `command.environment: secret variable '${v.name}' is not supported`;
    }
    return undefined;
  },
  (t) => (t.health_check ? 'health_check: health checks are not supported yet' : undefined),
  (t) => (t.max_completion_time && !(t.max_completion_time.nanoseconds > 0) ? 'max_completion_time must be positive' : undefined),
  (t) => (t.container && t.container.type !== 'MESOS' ? `container.type ${t.container.type} is not supported (only MESOS)` : undefined),
  (t) => resourcesError('resources', t.resources),
  (t, c) => {
    for (const r of t.resources ?? []) {
      const role = r.allocation_info?.role;
      if (role !== undefined && role !== c.role) return `resources (${r.name}): allocation_info.role '${role}' does not match the offer's role '${c.role}'`;
    }
    return undefined;
  },
  (t, c) => {
    let need: Resources;
    try {
      need = Resources.from(t.resources);
    } catch (e) {
      return `resources: ${(e as Error).message}`;
    }
    if (!c.remaining.contains(need)) {
      return `resources ${need.toString()} are not contained in the offered resources ${c.remaining.toString() || '(none left)'}`;
    }
    return undefined;
  },
];

export function validateTask(task: TaskInfo, ctx: TaskContext): string | undefined {
  for (const v of TASK_VALIDATORS) {
    const err = v(task, ctx);
    if (err) return err;
  }
  return undefined;
}

/** Roles a framework subscribes with (MULTI_ROLE `roles`, else the deprecated `role`). */
export function frameworkRoles(info: FrameworkInfo): string[] {
  const multi = info.capabilities?.some((c) => c.type === 'MULTI_ROLE');
  if (multi) return info.roles ?? [];
  if (info.roles && info.roles.length > 0) return info.roles;
  return [info.role ?? '*'];
}

export function validateFrameworkInfo(info: FrameworkInfo): void {
  const multi = info.capabilities?.some((c) => c.type === 'MULTI_ROLE');
  if (info.roles && info.roles.length > 0 && info.role !== undefined && info.role !== '*' && multi) {
    throw new BerthError('INVALID', "framework_info: set either 'roles' (with MULTI_ROLE) or the deprecated 'role', not both");
  }
  for (const role of frameworkRoles(info)) {
    if (role === '') throw new BerthError('INVALID', 'framework_info.roles: a role must not be empty');
    if (role !== '*' && (role.startsWith('/') || role.endsWith('/') || role.includes('//') || role.split('/').some((p) => p === '.' || p === '..' || /[\s\u0000-\u001f]/.test(p)))) {
      throw new BerthError('INVALID', `framework_info.roles: invalid role '${role}'`);
    }
  }
  if (info.failover_timeout !== undefined && (!Number.isFinite(info.failover_timeout) || info.failover_timeout < 0)) {
    throw new BerthError('INVALID', 'framework_info.failover_timeout must be a non-negative number of seconds');
  }
  const idErr = info.id ? idError('framework_info.id', info.id.value) : undefined;
  if (idErr) throw new BerthError('INVALID', idErr);
  if (Buffer.byteLength(info.name ?? '') > 1024) throw new BerthError('INVALID', 'framework_info.name is longer than 1024 bytes');
}
