/**
 * Validation of what frameworks ask for, as ordered lists of small validators
 * (Mesos master/validation.cpp). Each returns the first error, naming the field
 * at fault; nothing is validated against the filesystem or the allocator before
 * the ids are known to be safe.
 */
import { Resources } from '../proto/resources.js';
import { BerthError } from '../proto/errors.js';
import type { Call, CheckInfo, CommandInfo, FrameworkInfo, HealthCheck, Resource, TaskInfo } from '../proto/types.js';
import { isUuidBase64 } from '../proto/uuid.js';
import { idError } from '../proto/ids.js';

/** Mesos' minimum allocatable resources (MIN_CPUS, MIN_MEM). */
export const MIN_TASK_CPUS = 0.01;
export const MIN_TASK_MEM = 32;

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
  // Mesos' minimum allocatable amount: a task holds at least 0.01 cpus or 32 MB, so a flood
  // of near-empty tasks cannot exhaust an agent's process and bookkeeping budget.
  const sum = (name: string): number => list.reduce((n, r) => n + (r.name === name && r.type === 'SCALAR' ? r.scalar?.value ?? 0 : 0), 0);
  if (sum('cpus') < MIN_TASK_CPUS && sum('mem') < MIN_TASK_MEM) {
    return `${field} must hold at least ${MIN_TASK_CPUS} cpus or ${MIN_TASK_MEM} MB mem (got cpus ${sum('cpus')}, mem ${sum('mem')})`;
  }
  return undefined;
}

export interface TaskContext {
  agentId: string;
  role: string;
  /** Task ids of the framework that are live, plus those earlier in the same ACCEPT. */
  liveTaskIds: { has(taskId: string): boolean };
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
    const uriErr = urisError('command.uris', t.command.uris);
    if (uriErr) return uriErr;
    for (const v of t.command.environment?.variables ?? []) {
      if (v.type === 'SECRET') return `command.environment: secret variable '${v.name}' is not supported`;
    }
    return undefined;
  },
  (t) => (t.health_check ? healthCheckError('health_check', t.health_check) : undefined),
  (t) => (t.check ? checkError('check', t.check) : undefined),
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

/** Bounds on checks and fetched URIs: generous for real use, small enough that nothing runs away. */
export const CHECK_LIMITS = {
  /** Longest delay, interval, timeout or grace period of a check, in seconds (one day). */
  maxSeconds: 86_400,
  maxConsecutiveFailures: 1_000,
  maxStatuses: 64,
  maxPathBytes: 1_024,
  maxUris: 64,
  maxUriBytes: 4_096,
} as const;

function secondsError(field: string, v: number | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) return `${field} must be a finite number of seconds`;
  if (v < 0) return `${field} must not be negative (got ${v})`;
  if (v > CHECK_LIMITS.maxSeconds) return `${field} must be at most ${CHECK_LIMITS.maxSeconds} seconds (got ${v})`;
  return undefined;
}

function portError(field: string, port: number | undefined): string | undefined {
  if (port === undefined) return `${field} must be set`;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return `${field} ${port} is not a port (1-65535)`;
  return undefined;
}

function pathError(field: string, p: string | undefined): string | undefined {
  if (p === undefined) return undefined;
  if (!p.startsWith('/')) return `${field} must start with '/' (got '${p.slice(0, 64)}')`;
  if (Buffer.byteLength(p) > CHECK_LIMITS.maxPathBytes) return `${field} is longer than ${CHECK_LIMITS.maxPathBytes} bytes`;
  if (/[\u0000-\u001f\u007f\s]/.test(p)) return `${field} must not contain whitespace or control characters`;
  return undefined;
}

/** A command run by a check: a value to run; URIs are fetched for the task, not per check. */
function checkCommandError(field: string, cmd: CommandInfo | undefined): string | undefined {
  if (!cmd) return `${field} must be set`;
  if (!cmd.value) return `${field}.value must be set`;
  if (cmd.uris?.length) return `${field}.uris: a check command cannot fetch URIs (give them to the task's command)`;
  for (const v of cmd.environment?.variables ?? []) {
    if (v.type === 'SECRET') return `${field}.environment: secret variable '${v.name}' is not supported`;
  }
  return undefined;
}

/** Mesos HealthCheck: the type names exactly one of command/http/tcp, with sane timings. */
export function healthCheckError(field: string, hc: HealthCheck): string | undefined {
  for (const k of ['delay_seconds', 'interval_seconds', 'timeout_seconds', 'grace_period_seconds'] as const) {
    const e = secondsError(`${field}.${k}`, hc[k]);
    if (e) return e;
  }
  const cf = hc.consecutive_failures;
  if (cf !== undefined && (!Number.isInteger(cf) || cf < 1 || cf > CHECK_LIMITS.maxConsecutiveFailures)) {
    return `${field}.consecutive_failures must be an integer from 1 to ${CHECK_LIMITS.maxConsecutiveFailures} (got ${cf})`;
  }
  const set = (['command', 'http', 'tcp'] as const).filter((k) => hc[k] !== undefined);
  if (set.length > 1) return `${field}: only one of command, http and tcp may be set (got ${set.join(', ')})`;
  switch (hc.type) {
    case 'COMMAND':
      if (set[0] && set[0] !== 'command') return `${field}.${set[0]} does not match type COMMAND`;
      return checkCommandError(`${field}.command`, hc.command);
    case 'HTTP': {
      if (set[0] && set[0] !== 'http') return `${field}.${set[0]} does not match type HTTP`;
      if (!hc.http) return `${field}.http must be set for type HTTP`;
      const scheme = hc.http.scheme;
      if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') return `${field}.http.scheme must be 'http' or 'https' (got '${scheme}')`;
      const statuses = hc.http.statuses ?? [];
      if (statuses.length > CHECK_LIMITS.maxStatuses) return `${field}.http.statuses has more than ${CHECK_LIMITS.maxStatuses} entries`;
      for (const st of statuses) if (!Number.isInteger(st) || st < 100 || st > 599) return `${field}.http.statuses: ${st} is not an HTTP status`;
      return portError(`${field}.http.port`, hc.http.port) ?? pathError(`${field}.http.path`, hc.http.path);
    }
    case 'TCP':
      if (set[0] && set[0] !== 'tcp') return `${field}.${set[0]} does not match type TCP`;
      if (!hc.tcp) return `${field}.tcp must be set for type TCP`;
      return portError(`${field}.tcp.port`, hc.tcp.port);
    default:
      return `${field}.type must be COMMAND, HTTP or TCP (got ${hc.type ?? 'none'})`;
  }
}

/** Mesos CheckInfo: as a health check, but never kills; the type names exactly one of command/http/tcp. */
export function checkError(field: string, ck: CheckInfo): string | undefined {
  for (const k of ['delay_seconds', 'interval_seconds', 'timeout_seconds'] as const) {
    const e = secondsError(`${field}.${k}`, ck[k]);
    if (e) return e;
  }
  const set = (['command', 'http', 'tcp'] as const).filter((k) => ck[k] !== undefined);
  if (set.length > 1) return `${field}: only one of command, http and tcp may be set (got ${set.join(', ')})`;
  switch (ck.type) {
    case 'COMMAND':
      if (set[0] && set[0] !== 'command') return `${field}.${set[0]} does not match type COMMAND`;
      if (!ck.command) return `${field}.command must be set for type COMMAND`;
      return checkCommandError(`${field}.command.command`, ck.command.command);
    case 'HTTP':
      if (set[0] && set[0] !== 'http') return `${field}.${set[0]} does not match type HTTP`;
      if (!ck.http) return `${field}.http must be set for type HTTP`;
      return portError(`${field}.http.port`, ck.http.port) ?? pathError(`${field}.http.path`, ck.http.path);
    case 'TCP':
      if (set[0] && set[0] !== 'tcp') return `${field}.${set[0]} does not match type TCP`;
      if (!ck.tcp) return `${field}.tcp must be set for type TCP`;
      return portError(`${field}.tcp.port`, ck.tcp.port);
    default:
      return `${field}.type must be COMMAND, HTTP or TCP (got ${ck.type ?? 'none'})`;
  }
}

/**
 * URIs the agent fetches into the sandbox before the command runs: http(s)://, file:// or an
 * absolute path; `output_file` stays inside the sandbox (relative, no '..').
 */
export function urisError(field: string, uris: CommandInfo['uris']): string | undefined {
  if (!uris || uris.length === 0) return undefined;
  if (uris.length > CHECK_LIMITS.maxUris) return `${field} has ${uris.length} entries (at most ${CHECK_LIMITS.maxUris})`;
  for (let i = 0; i < uris.length; i++) {
    const u = uris[i]!;
    const at = `${field}[${i}]`;
    const v = u.value;
    if (typeof v !== 'string' || v === '') return `${at}.value must not be empty`;
    if (Buffer.byteLength(v) > CHECK_LIMITS.maxUriBytes) return `${at}.value is longer than ${CHECK_LIMITS.maxUriBytes} bytes`;
    if (/[\u0000-\u001f\u007f]/.test(v)) return `${at}.value must not contain control characters`;
    if (!/^(https?:\/\/[^/\s]+|file:\/\/\/|\/)/i.test(v)) return `${at}.value '${v.slice(0, 64)}' must be an http(s):// or file:// URI or an absolute path`;
    const out = u.output_file;
    if (out !== undefined) {
      if (out === '') return `${at}.output_file must not be empty when set`;
      if (out.startsWith('/')) return `${at}.output_file must be a path relative to the sandbox`;
      if (Buffer.byteLength(out) > 255 * 4) return `${at}.output_file is too long`;
      if (out.split('/').some((p) => p === '..' || p === '.' || p === '' || /[\u0000-\u001f\u007f]/.test(p))) {
        return `${at}.output_file '${out.slice(0, 64)}' must stay inside the sandbox (no '.', '..', empty or control-character parts)`;
      }
    }
  }
  return undefined;
}

export function validateTask(task: TaskInfo, ctx: TaskContext): string | undefined {
  for (const v of TASK_VALIDATORS) {
    const err = v(task, ctx);
    if (err) return err;
  }
  return undefined;
}

/**
 * Mesos' role name rules: not empty, at most 255 bytes, '*' alone or '/'-separated parts that are
 * not '.', '..' or '*', do not start with '-' and hold no whitespace or control characters.
 */
export function roleError(field: string, role: string): string | undefined {
  if (role === '') return `${field}: a role must not be empty`;
  if (Buffer.byteLength(role) > 255) return `${field}: role '${role.slice(0, 32)}…' is longer than 255 bytes`;
  if (role !== '*' && (role.startsWith('/') || role.endsWith('/') || role.includes('//') || role.split('/').some((p) => p === '.' || p === '..' || p === '*' || p.startsWith('-') || /[\s\u0000-\u001f\u007f]/.test(p)))) {
    return `${field}: invalid role '${role}'`;
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

/** Bounds the framework checks use; the master passes its configured Limits. */
export interface FrameworkLimits { rolesPerFramework: number; frameworkInfoBytes: number }
const DEFAULT_FRAMEWORK_LIMITS: FrameworkLimits = { rolesPerFramework: 100, frameworkInfoBytes: 64 << 10 };

/**
 * A FrameworkInfo the master can store and the allocator will take: every rule the allocator
 * enforces is checked here first, so nothing invalid is ever appended to the registry.
 */
export function validateFrameworkInfo(info: FrameworkInfo, limits: FrameworkLimits = DEFAULT_FRAMEWORK_LIMITS, field = 'framework_info'): void {
  if (!info || typeof info !== 'object') throw new BerthError('INVALID', `Expecting '${field}' to be present`);
  const multi = info.capabilities?.some((c) => c.type === 'MULTI_ROLE');
  if (info.roles && info.roles.length > 0 && info.role !== undefined && info.role !== '*' && multi) {
    throw new BerthError('INVALID', `${field}: set either 'roles' (with MULTI_ROLE) or the deprecated 'role', not both`);
  }
  const roles = frameworkRoles(info);
  if (roles.length === 0) throw new BerthError('INVALID', `${field}.roles must name at least one role (MULTI_ROLE with no roles)`);
  if (roles.length > limits.rolesPerFramework) throw new BerthError('INVALID', `${field}.roles has ${roles.length} roles (at most ${limits.rolesPerFramework})`);
  if (new Set(roles).size !== roles.length) throw new BerthError('INVALID', `${field}.roles has duplicates`);
  for (const role of roles) {
    const err = roleError(`${field}.roles`, role);
    if (err) throw new BerthError('INVALID', err);
  }
  if (info.failover_timeout !== undefined && (!Number.isFinite(info.failover_timeout) || info.failover_timeout < 0)) {
    throw new BerthError('INVALID', `${field}.failover_timeout must be a non-negative number of seconds`);
  }
  const idErr = info.id ? idError(`${field}.id`, info.id.value) : undefined;
  if (idErr) throw new BerthError('INVALID', idErr);
  if (typeof info.user !== 'string') throw new BerthError('INVALID', `${field}.user must be set`);
  if (Buffer.byteLength(info.user) > 255) throw new BerthError('INVALID', `${field}.user is longer than 255 bytes`);
  if (Buffer.byteLength(info.name ?? '') > 1024) throw new BerthError('INVALID', `${field}.name is longer than 1024 bytes`);
  if (info.principal !== undefined && Buffer.byteLength(info.principal) > 255) throw new BerthError('INVALID', `${field}.principal is longer than 255 bytes`);
  const bytes = Buffer.byteLength(JSON.stringify(info));
  if (bytes > limits.frameworkInfoBytes) throw new BerthError('INVALID', `${field} is ${bytes} bytes (at most ${limits.frameworkInfoBytes}); keep labels small`);
}

/** SUBSCRIBE: the FrameworkInfo, the id agreement, and the suppressed roles being its own. */
export function validateSubscribe(call: Call, limits?: FrameworkLimits): void {
  const sub = call.subscribe;
  if (!sub) throw new BerthError('INVALID', "Expecting 'subscribe' to be present");
  validateFrameworkInfo(sub.framework_info, limits, 'subscribe.framework_info');
  const info = sub.framework_info;
  if (call.framework_id && info.id && call.framework_id.value !== info.id.value) {
    throw new BerthError('INVALID', "'framework_id' differs from 'subscribe.framework_info.id'");
  }
  const roles = new Set(frameworkRoles(info));
  for (const r of sub.suppressed_roles ?? []) {
    if (!roles.has(r)) throw new BerthError('INVALID', `subscribe.suppressed_roles: '${r}' is not one of the framework's roles`);
  }
}

/**
 * UPDATE_FRAMEWORK: a valid FrameworkInfo for the same framework. `current` (the stored info)
 * is given when known: the principal and user cannot change (Mesos refuses both).
 */
export function validateUpdateFramework(call: Call, limits?: FrameworkLimits, current?: FrameworkInfo): void {
  const upd = call.update_framework;
  if (!upd) throw new BerthError('INVALID', "Expecting 'update_framework' to be present");
  validateFrameworkInfo(upd.framework_info, limits, 'update_framework.framework_info');
  const info = upd.framework_info;
  const id = info.id?.value;
  if (id !== undefined && id !== call.framework_id?.value) {
    throw new BerthError('INVALID', `Updating 'FrameworkInfo.id' is unsupported: expected '${call.framework_id?.value ?? ''}', got '${id}'`);
  }
  if (current) {
    if (info.principal !== undefined && info.principal !== current.principal) {
      throw new BerthError('INVALID', `Updating 'FrameworkInfo.principal' is unsupported: expected '${current.principal ?? ''}', got '${info.principal}'`);
    }
    if (info.user !== current.user) throw new BerthError('INVALID', `Updating 'FrameworkInfo.user' is unsupported: expected '${current.user}', got '${info.user}'`);
  }
  const roles = new Set(frameworkRoles(info));
  for (const r of upd.suppressed_roles ?? []) {
    if (!roles.has(r)) throw new BerthError('INVALID', `update_framework.suppressed_roles: '${r}' is not one of the framework's roles`);
  }
}

/** Bounds for call validation beyond FrameworkInfo. */
export interface CallLimits extends FrameworkLimits { reconcileTasks: number }
const DEFAULT_CALL_LIMITS: CallLimits = { ...DEFAULT_FRAMEWORK_LIMITS, reconcileTasks: 10_000 };

/**
 * Checks a non-SUBSCRIBE call before any effect; throws BerthError for anything the master
 * will not do, so a transport can answer 4xx with nothing changed. `current` is the calling
 * framework's stored FrameworkInfo, when known.
 */
export function validateCall(call: Call, limits: CallLimits = DEFAULT_CALL_LIMITS, current?: FrameworkInfo): void {
  switch (call.type) {
    case 'ACCEPT': {
      if (!call.accept) throw new BerthError('INVALID', "Expecting 'accept' to be present");
      for (const op of call.accept.operations ?? []) {
        if (op.type === 'LAUNCH') continue;
        if (op.type === 'LAUNCH_GROUP') throw new BerthError('UNSUPPORTED', 'LAUNCH_GROUP is not supported yet; launch the tasks with LAUNCH');
        throw new BerthError('UNSUPPORTED', `Offer operation ${op.type ?? 'UNKNOWN'} is not supported yet (only LAUNCH)`);
      }
      return;
    }
    case 'DECLINE':
      if (!call.decline) throw new BerthError('INVALID', "Expecting 'decline' to be present");
      return;
    case 'REVIVE': case 'SUPPRESS': case 'TEARDOWN': case 'REQUEST':
      return;
    case 'UPDATE_FRAMEWORK':
      validateUpdateFramework(call, limits, current);
      return;
    case 'KILL':
      if (!call.kill) throw new BerthError('INVALID', "Expecting 'kill' to be present");
      return;
    case 'SHUTDOWN':
      if (!call.shutdown) throw new BerthError('INVALID', "Expecting 'shutdown' to be present");
      return;
    case 'ACKNOWLEDGE': {
      const a = call.acknowledge;
      if (!a) throw new BerthError('INVALID', "Expecting 'acknowledge' to be present");
      if (!isUuidBase64(a.uuid)) throw new BerthError('INVALID', 'acknowledge.uuid is not a valid UUID (16 bytes, base64 in JSON)');
      return;
    }
    case 'RECONCILE': {
      const n = call.reconcile?.tasks?.length ?? 0;
      if (n > limits.reconcileTasks) throw new BerthError('INVALID', `reconcile.tasks has ${n} entries (at most ${limits.reconcileTasks}); reconcile in batches`);
      return;
    }
    case 'MESSAGE':
      throw new BerthError('UNSUPPORTED', 'MESSAGE: custom executors are not supported, so there is no executor to message');
    case 'ACCEPT_INVERSE_OFFERS': case 'DECLINE_INVERSE_OFFERS':
      throw new BerthError('UNSUPPORTED', `${call.type}: Berth does not send inverse offers (maintenance is not supported yet)`);
    case 'ACKNOWLEDGE_OPERATION_STATUS': case 'RECONCILE_OPERATIONS':
      throw new BerthError('UNSUPPORTED', `${call.type}: operation feedback is not supported yet`);
    case 'SUBSCRIBE':
      throw new BerthError('INVALID', 'SUBSCRIBE must open a new event stream');
    default:
      throw new BerthError('UNSUPPORTED', `Unknown call type ${call.type ?? 'UNKNOWN'}`);
  }
}
