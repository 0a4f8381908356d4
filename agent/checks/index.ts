/**
 * Health checks and general checks of a task, run by the agent (Mesos-native:
 * the checks scale with agents, not with the framework).
 *
 * The agent calls `startTaskChecks` once the task is RUNNING and `stop()` when
 * it ends (hooks.ts, at the lifecycle's post-RUNNING seam); everything else
 * goes through the small `CheckSink` it passes:
 *  - a health result → `emit({ healthy, reason: REASON_TASK_HEALTH_CHECK_STATUS_UPDATED })`;
 *  - a changed check result → `emit({ check_status, reason: REASON_TASK_CHECK_STATUS_UPDATED })`;
 *  - too many consecutive health failures → `kill(message)`; the agent then
 *    kills the task and its terminal update carries `healthy: false` (the last
 *    known health and check status ride on every later TASK_RUNNING update).
 */
import type { Clock } from '../../proto/clock.js';
import type { Logger } from '../../proto/log.js';
import type { CommandInfo, HealthCheck, TaskStatusReason } from '../../proto/types.js';
import { Checker, HealthChecker, emptyCheckStatus, type Probe } from './checker.js';
import { commandProbe, probeNetwork, type ProbeTarget } from './probe.js';
import { sharedProbeRunner, type ProbeRunner } from './probe-runner.js';
import type { CheckedTask, CheckInfo, CheckStatusInfo } from './types.js';

export type { ProbeTarget } from './probe.js';
export type { CheckInfo, CheckStatusInfo, CheckedTask, CheckedStatus } from './types.js';
export { emptyCheckStatus } from './checker.js';

export interface CheckUpdate {
  healthy?: boolean;
  check_status?: CheckStatusInfo;
  reason: Extract<TaskStatusReason, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' | 'REASON_TASK_CHECK_STATUS_UPDATED'>;
  message: string;
}

export interface CheckSink {
  /** Report a result: the agent sends a TASK_RUNNING update with these fields. */
  emit(u: CheckUpdate): void;
  /** The health check failed `consecutive_failures` times in a row: kill the task. */
  kill(message: string): void;
}

export interface TaskChecks {
  /** Last health result (undefined before the first one or without a health check). */
  readonly healthy: boolean | undefined;
  /** Last check status (the empty status of its type before the first result). */
  readonly checkStatus: CheckStatusInfo | undefined;
  stop(): void;
}

// ---- validation (an ordered list of small validators; the first error names the field) ----

const MAX_SECONDS = 86_400;
const PATH_MAX = 2048;

function durations(field: string, o: Record<string, unknown>, names: string[]): string | undefined {
  for (const n of names) {
    const v = o[n];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_SECONDS) return `${field}.${n} must be a number of seconds between 0 and ${MAX_SECONDS}`;
  }
  return undefined;
}

const portError = (field: string, p: unknown): string | undefined =>
  (typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535 ? undefined : `${field} must be a port number between 1 and 65535`);

function commandError(field: string, c: CommandInfo | undefined): string | undefined {
  if (!c) return `${field} is missing`;
  if (!c.value) return `${field}.value is empty`;
  if (c.value.includes('\0') || (c.arguments ?? []).some((a) => a.includes('\0'))) return `${field} contains a NUL character`;
  if ((c.uris ?? []).length > 0) return `${field}.uris: a check's command cannot fetch URIs`;
  for (const v of c.environment?.variables ?? []) {
    if (!v.name || v.name.includes('=') || v.name.includes('\0')) return `${field}.environment: invalid variable name '${v.name ?? ''}'`;
    if (v.type === 'SECRET') return `${field}.environment: secret variable '${v.name}' is not supported`;
  }
  return undefined;
}

function pathError(field: string, p: string | undefined): string | undefined {
  if (p === undefined) return undefined;
  if (!p.startsWith('/') || p.length > PATH_MAX || /[\0-\x20\x7f]/.test(p)) return `${field} must be an absolute URL path without spaces or control characters (at most ${PATH_MAX} characters)`;
  return undefined;
}

export function healthCheckError(hc: HealthCheck, field = 'task.health_check'): string | undefined {
  const e = durations(field, hc as unknown as Record<string, unknown>, ['delay_seconds', 'interval_seconds', 'timeout_seconds', 'grace_period_seconds']);
  if (e) return e;
  const cf = hc.consecutive_failures;
  if (cf !== undefined && (!Number.isInteger(cf) || cf < 0 || cf > 1_000_000)) return `${field}.consecutive_failures must be a non-negative integer`;
  switch (hc.type) {
    case 'HTTP': {
      if (!hc.http) return `${field}.http is missing for a health check of type HTTP`;
      if (hc.http.scheme !== undefined && hc.http.scheme !== 'http' && hc.http.scheme !== 'https') return `${field}.http.scheme must be 'http' or 'https', not '${hc.http.scheme}'`;
      return portError(`${field}.http.port`, hc.http.port) ?? pathError(`${field}.http.path`, hc.http.path);
    }
    case 'TCP': return hc.tcp ? portError(`${field}.tcp.port`, hc.tcp.port) : `${field}.tcp is missing for a health check of type TCP`;
    case 'COMMAND': return commandError(`${field}.command`, hc.command);
    default: return `${field}.type must be COMMAND, HTTP or TCP${hc.type ? `, not ${hc.type}` : ''}`;
  }
}

export function checkInfoError(c: CheckInfo, field = 'task.check'): string | undefined {
  const e = durations(field, c as unknown as Record<string, unknown>, ['delay_seconds', 'interval_seconds', 'timeout_seconds']);
  if (e) return e;
  switch (c.type) {
    case 'HTTP': return c.http ? portError(`${field}.http.port`, c.http.port) ?? pathError(`${field}.http.path`, c.http.path) : `${field}.http is missing for a check of type HTTP`;
    case 'TCP': return c.tcp ? portError(`${field}.tcp.port`, c.tcp.port) : `${field}.tcp is missing for a check of type TCP`;
    case 'COMMAND': return commandError(`${field}.command.command`, c.command?.command);
    default: return `${field}.type must be COMMAND, HTTP or TCP${c.type ? `, not ${c.type}` : ''}`;
  }
}

/** The first reason the agent cannot run this task's checks, or undefined. */
export function validateChecks(task: CheckedTask): string | undefined {
  return (task.health_check ? healthCheckError(task.health_check) : undefined) ?? (task.check ? checkInfoError(task.check) : undefined);
}

// ---- running -------------------------------------------------------------------

function healthProbe(hc: HealthCheck, target: ProbeTarget, runner: ProbeRunner | undefined): Probe {
  switch (hc.type) {
    case 'HTTP': return (t) => probeNetwork({ kind: 'http', scheme: hc.http?.scheme === 'https' ? 'https' : 'http', port: hc.http!.port, path: hc.http?.path ?? '/', family: hc.http?.protocol }, t, target);
    case 'TCP': return (t) => probeNetwork({ kind: 'tcp', port: hc.tcp!.port, family: hc.tcp?.protocol }, t, target);
    default: return commandProbe(hc.command!, target, runner);
  }
}

function checkProbe(c: CheckInfo, target: ProbeTarget, runner: ProbeRunner | undefined): Probe {
  switch (c.type) {
    case 'HTTP': return (t) => probeNetwork({ kind: 'http', scheme: 'http', port: c.http!.port, path: c.http?.path ?? '/' }, t, target);
    case 'TCP': return (t) => probeNetwork({ kind: 'tcp', port: c.tcp!.port }, t, target);
    default: return commandProbe(c.command!.command, target, runner);
  }
}

/**
 * Starts the task's health check and/or check (undefined when it has neither). The task must be
 * valid for `validateChecks`. `target` says where the probes run (see probe.ts).
 */
export function startTaskChecks(task: CheckedTask, target: ProbeTarget, sink: CheckSink, opts: { clock: Clock; log?: Logger; runner?: ProbeRunner | null }): TaskChecks | undefined {
  if (!task.health_check && !task.check) return undefined;
  // COMMAND probes go through the agent's berth-probe server when it is built (`runner: null`: spawn each).
  const usesCommand = task.health_check?.type === 'COMMAND' || task.check?.type === 'COMMAND';
  const runner = usesCommand ? (opts.runner === undefined ? sharedProbeRunner(opts.log) : opts.runner) ?? undefined : undefined;
  runner?.acquire();
  let released = false;
  let healthy: boolean | undefined;
  let checkStatus = task.check ? emptyCheckStatus(task.check) : undefined;
  const tid = task.task_id.value;
  const hc = task.health_check ? new HealthChecker(task.health_check, opts.clock, healthProbe(task.health_check, target, runner), (e) => {
    healthy = e.healthy;
    opts.log?.[e.healthy ? 'info' : 'warn']({ task: tid, healthy: e.healthy, failures: e.consecutiveFailures, detail: e.message }, 'Health check result');
    const message = e.healthy ? `Health check passed: ${e.message}` : `Health check failed ${e.consecutiveFailures} time(s) in a row: ${e.message}`;
    sink.emit({ healthy: e.healthy, reason: 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED', message });
    if (e.killTask) sink.kill(`Task killed after failing its health check ${e.consecutiveFailures} times in a row: ${e.message}`);
  }) : undefined;
  const ck = task.check ? new Checker(task.check, opts.clock, checkProbe(task.check, target, runner), (s, message) => {
    checkStatus = s;
    opts.log?.debug({ task: tid, check_status: s }, 'Check status changed');
    sink.emit({ check_status: s, reason: 'REASON_TASK_CHECK_STATUS_UPDATED', message: `Check status changed: ${message}` });
  }) : undefined;
  hc?.start();
  ck?.start();
  return {
    get healthy() { return healthy; },
    get checkStatus() { return checkStatus; },
    stop() {
      hc?.stop(); ck?.stop();
      if (!released) { released = true; runner?.release(); }
    },
  };
}
