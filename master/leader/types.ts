/**
 * The leader seam (Mesos' MasterContender / MasterDetector). A master process
 * runs a contender; only while it is `leading` does it own a Master (registry
 * writes, agent and framework sessions). The single-machine mode is the
 * standalone contender: always leading, epoch 0.
 */
export type { Leader, LeaderDetector, LeaderRecord } from '../../proto/transport/nats-detector.js';

export type LeaderState =
  /** Not leading: HTTP API calls are redirected (307) to the leader, or refused (503) while there is none. */
  | 'standby'
  /** Holds the lease: the only master that writes the registry and talks to agents and frameworks. */
  | 'leading'
  /**
   * Was leading and lost the lease (a renewal failed for too long, or another master won). It has
   * stopped acting; its registry writes fail by compare-and-set. After a lease period it campaigns again.
   */
  | 'fenced';

export interface MasterContender {
  readonly state: LeaderState;
  /** The epoch of the current or last term this master led (0 = never). */
  readonly epoch: number;
  /** Called on every transition, with the epoch of the term entered or left. */
  onStateChange(cb: (state: LeaderState, epoch: number) => void): void;
  /** Starts campaigning. */
  start(): Promise<void>;
  /** Withdraws; a leading master releases the lease so a standby takes over at once. */
  close(): Promise<void>;
}

export function assertNever(x: never): never {
  throw new Error(`unexpected leader state ${String(x)}`);
}
