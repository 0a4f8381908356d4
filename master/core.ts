/**
 * What every part of the master shares: the injected clock, registry,
 * allocator, logger and deferred-work scheduler, the resolved options, the
 * counters behind /metrics, and each part by name. `Master` builds one
 * `MasterContext` and hands it to every part; parts talk to each other only
 * through it, so each can be read (and tested) on its own.
 */
import type { Clock } from '../proto/clock.js';
import type { Logger } from '../proto/log.js';
import type { MasterInfo } from '../proto/types.js';
import type { Allocator } from './allocator/types.js';
import type { Registry } from './registry/types.js';
import type { DeferredScheduler } from './scheduler.js';
import type { Agents } from './agents.js';
import type { Frameworks } from './frameworks.js';
import type { OfferBook } from './offers.js';
import type { Tasks } from './tasks.js';
import type { AllocationLoop } from './allocation.js';
import type { Authorizer } from './auth/authorizer.js';

export interface MasterOptions {
  clock?: Clock;
  registry?: Registry;
  allocator?: Allocator;
  log?: Logger;
  /** Where deferred work runs (allocation runs, registry flushes); default setImmediate. */
  scheduler?: DeferredScheduler;
  /** Allocation interval (default 1000 ms); triggers in between are coalesced. */
  allocationIntervalMs?: number;
  /** Rescind an offer not answered within this time; 0/undefined = never (as Mesos). */
  offerTimeoutMs?: number;
  /** The master pings every agent this often (default 5000 ms)… */
  agentPingIntervalMs?: number;
  /** …and marks it unreachable after this many unanswered pings (default 3). */
  maxMissedPings?: number;
  /** Agents known from the registry must reregister within this time after a master start (default 10 min). */
  agentReregisterTimeoutMs?: number;
  /** Seconds between HEARTBEAT events (default 15, as Mesos). */
  heartbeatIntervalSeconds?: number;
  /** Bounded histories. */
  maxCompletedTasks?: number;
  maxCompletedFrameworks?: number;
  hostname?: string;
  port?: number;
  /** Default refuse_seconds when a DECLINE/ACCEPT has no filters (Mesos: 5). */
  defaultRefuseSeconds?: number;
  /** Who may do what (ACLs); default: everyone may do everything (no ACLs configured). */
  authorizer?: Authorizer;
  /** Per-principal and global bounds; see `Limits`. */
  limits?: Partial<Limits>;
  /** Agents unreachable longer than this are removed from the registry (Mesos --registry_max_agent_age; default 14 days). */
  registryMaxAgentAgeMs?: number;
  /** At most this many unreachable agents are remembered; the oldest go first (Mesos --registry_max_agent_count). */
  registryMaxAgentCount?: number;
  /**
   * After a start with agents in the registry, no offers are made until this fraction of them
   * re-registered (Mesos' allocator recovery, default 0.8)…
   */
  allocationRecoveryFactor?: number;
  /** …or this long passed (default 10 s). */
  allocationRecoveryTimeoutMs?: number;
  /**
   * Role weights (Mesos --weights): roles are ordered by dominant share / weight, so under
   * contention a role of weight 2 settles at twice the share of a role of weight 1. Roles not
   * named weigh 1. Ignored when `allocator` is given (it carries its own).
   */
  weights?: Record<string, number>;
}

/** Bounds on what any one principal (or anyone, for the globals) can make the master hold. */
export interface Limits {
  /** Frameworks registered by one principal (unauthenticated callers share one budget). */
  frameworksPerPrincipal: number;
  /** Frameworks in all. */
  maxFrameworks: number;
  /** Live tasks of one principal. */
  tasksPerPrincipal: number;
  /** Roles one framework may subscribe with. */
  rolesPerFramework: number;
  /** Task ids in one explicit RECONCILE. */
  reconcileTasks: number;
  /** Bytes of one FrameworkInfo as stored in the registry. */
  frameworkInfoBytes: number;
  /** A native connection that has not subscribed / registered within this time is closed. */
  handshakeTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  frameworksPerPrincipal: 1_000,
  maxFrameworks: 10_000,
  tasksPerPrincipal: 1_000_000,
  rolesPerFramework: 100,
  reconcileTasks: 10_000,
  frameworkInfoBytes: 64 << 10,
  handshakeTimeoutMs: 10_000,
};

export type ResolvedOptions = Required<Pick<MasterOptions,
  'allocationIntervalMs' | 'agentPingIntervalMs' | 'maxMissedPings' | 'agentReregisterTimeoutMs' |
  'heartbeatIntervalSeconds' | 'defaultRefuseSeconds' | 'registryMaxAgentAgeMs' | 'registryMaxAgentCount'>> & MasterOptions;

/** Counters for /metrics (Mesos metric names where they exist). */
export function newCounters() {
  return {
    tasksLaunched: 0, tasksFinished: 0, tasksFailed: 0, tasksKilled: 0, tasksLost: 0, tasksError: 0,
    tasksDropped: 0, tasksUnreachable: 0, tasksGone: 0,
    offersSent: 0, offersDeclined: 0, offersRescinded: 0, offersAccepted: 0,
    statusUpdates: 0, invalidStatusUpdates: 0, acknowledgements: 0, callsInvalid: 0, callsUnauthorized: 0,
    allocationRuns: 0, allocationTicks: 0, lastAllocationMs: 0, allocationMsTotal: 0,
    agentsRemoved: 0, agentsUnreachable: 0, frameworksRemoved: 0,
    /** Explicit reconciliations left unanswered because the task's agent has not re-registered yet. */
    reconcileDeferred: 0,
  };
}
export type Counters = ReturnType<typeof newCounters>;

export interface MasterContext {
  readonly clock: Clock;
  readonly registry: Registry;
  readonly allocator: Allocator;
  readonly log: Logger;
  readonly scheduler: DeferredScheduler;
  readonly opts: ResolvedOptions;
  readonly limits: Limits;
  readonly authorizer: Authorizer;
  readonly counters: Counters;
  /** This incarnation's id (set by start) and MasterInfo. */
  id: string;
  info: MasterInfo;
  startedAt: number;
  /** Set once stop() began: no new timers, no registry writes, no new offers. */
  stopped: boolean;
  readonly agents: Agents;
  readonly frameworks: Frameworks;
  readonly offers: OfferBook;
  readonly tasks: Tasks;
  readonly allocation: AllocationLoop;
}
