/**
 * The check shapes as the agent's checks use them; the wire's own types
 * (proto/types.ts: Mesos `HealthCheck`, `CheckInfo`, `CheckStatusInfo`,
 * TaskInfo.check = 13, TaskStatus.check_status = 15).
 */
import type { CheckInfo, TaskInfo, TaskStatus } from '../../proto/types.js';

export type { CheckInfo, CheckStatusInfo } from '../../proto/types.js';
export type CheckType = NonNullable<CheckInfo['type']>;
/** A TaskInfo as the checks read it. */
export type CheckedTask = TaskInfo;
/** The fields of a TaskStatus the checks set. */
export type CheckedStatus = TaskStatus;
