/**
 * Shapes of Mesos' general checks (`CheckInfo`, `CheckStatusInfo`, mesos.v1
 * since 1.2) in their JSON form, as the agent reads them from a TaskInfo and
 * writes them into a TaskStatus. `HealthCheck` itself lives in proto/types.ts.
 *
 * Kept here (not in proto/types.ts) only until the wire schema carries them;
 * the field names and numbers are Mesos': TaskInfo.check = 13,
 * TaskStatus.check_status = 15.
 */
import type { CommandInfo, HealthCheck, TaskInfo, TaskStatus } from '../../proto/types.js';

export type CheckType = 'UNKNOWN' | 'COMMAND' | 'HTTP' | 'TCP';

export interface CheckInfo {
  type?: CheckType;
  command?: { command: CommandInfo };
  http?: { port: number; path?: string };
  tcp?: { port: number };
  delay_seconds?: number;
  interval_seconds?: number;
  timeout_seconds?: number;
}

/** The last result of a check. A sub-message without its value means "no result" (e.g. timed out). */
export interface CheckStatusInfo {
  type?: CheckType;
  command?: { exit_code?: number };
  http?: { status_code?: number };
  tcp?: { succeeded?: boolean };
}

/** A TaskInfo as the checks read it (with the general `check`, which older schemas lack). */
export type CheckedTask = TaskInfo & { check?: CheckInfo; health_check?: HealthCheck };

/** The fields of a TaskStatus the checks set. */
export type CheckedStatus = TaskStatus & { check_status?: CheckStatusInfo };
