/**
 * The allocator contract between the master and `master/allocator/`.
 *
 * The allocator owns the bookkeeping that allocation decisions need: per agent
 * its total and what is allocated (offered or used) per framework and role; per
 * framework its roles, suppression and decline filters; per role its weight.
 * The master tells it every change (agent added/removed, resources recovered,
 * framework added/removed/activated, suppress/revive) and asks it for an
 * OfferPlan. `allocate()` is a pure decision over that state; the master then
 * commits the plan with `commit()` (which marks the planned resources allocated)
 * and turns each entry into an Offer. Offered resources count as allocated to
 * the framework's role for DRF from that moment, exactly as in Mesos.
 *
 * Identity: agents and frameworks are referred to by their string ids; the
 * allocator maps them to dense indices internally for its packed hot path.
 */
import type { Resources } from '../../proto/resources.js';

export interface OfferPlanEntry {
  frameworkId: string;
  agentId: string;
  role: string;
  resources: Resources;
}
export type OfferPlan = OfferPlanEntry[];
/** Receives one decided (and already committed) offer; see `Allocator.cycle`. */
export type OfferSink = (frameworkId: string, agentId: string, role: string, resources: Resources) => void;

export interface AllocatorOptions {
  /** Role-level and framework-level fairness: 'drf' (default) or 'random' (seeded). */
  roleSorter?: 'drf' | 'random';
  frameworkSorter?: 'drf' | 'random';
  /** Seed for every random choice (random sorter, agent shuffling); logged by the master. */
  seed?: number;
  /** An agent's available resources are offered only if they hold at least one of these. Default [{cpus:0.01},{mem:32}]. */
  minAllocatable?: Record<string, number>[];
  /** Agent ordering within a cycle: 'spread' (default: least-allocated first, as Mesos's shuffle) or 'pack'. */
  strategy?: 'spread' | 'pack';
  /** Role weights; missing roles weigh 1. */
  weights?: Record<string, number>;
}

export interface FrameworkOptions {
  roles: string[];
  suppressedRoles?: string[];
  /** Frameworks without GPU_RESOURCES are never offered agents that have gpus (Mesos rule). */
  gpuAware?: boolean;
  /** Inactive (disconnected) frameworks get no offers but keep their allocations. */
  active?: boolean;
}

export interface Allocator {
  addAgent(agentId: string, total: Resources, attributes?: Record<string, string | number>): void;
  removeAgent(agentId: string): void;
  /** An agent that is unreachable keeps its allocations but offers nothing. */
  setAgentActive(agentId: string, active: boolean): void;

  addFramework(frameworkId: string, opts: FrameworkOptions): void;
  updateFramework(frameworkId: string, opts: FrameworkOptions): void;
  removeFramework(frameworkId: string): void;
  setFrameworkActive(frameworkId: string, active: boolean): void;

  /**
   * Declares resources on an agent as used by a framework's role without an offer
   * (tasks learned from a reregistering agent, or after a master restart).
   */
  recoverAllocation(frameworkId: string, agentId: string, role: string, resources: Resources): void;

  /**
   * Returns resources allocated to (frameworkId, role) on agentId to the pool: a declined,
   * rescinded or partly used offer, or a terminated task. With `refuseSeconds > 0`, the
   * framework will not be offered that agent's resources again (for that role) until
   * `now + refuseSeconds`, unless the agent's available resources grow beyond what was refused.
   */
  recoverResources(frameworkId: string, agentId: string, role: string, resources: Resources, refuseSeconds?: number, now?: number): void;

  suppress(frameworkId: string, roles?: string[]): void;
  /** Unsuppresses and clears all decline filters of the framework (for the given roles, or all). */
  revive(frameworkId: string, roles?: string[]): void;
  setWeight(role: string, weight: number): void;

  /** Decides offers for all agents (or only `agentIds`) at time `now` (ms). Does not change state. */
  allocate(now: number, agentIds?: Iterable<string>): OfferPlan;
  /** Marks a plan's resources as allocated (offered). */
  commit(plan: OfferPlan): void;
  /**
   * `commit(allocate(now, agentIds))` without building the plan: each offer is
   * committed and handed to `sink`. Same decisions and state. Returns the number of offers.
   */
  cycle(now: number, agentIds: Iterable<string> | undefined, sink: OfferSink): number;

  /** Snapshot numbers for /state, metrics and tests. */
  agentAvailable(agentId: string): Resources | undefined;
  agentAllocated(agentId: string): Resources | undefined;
  /** Dominant share of a framework (within its role's pool) or of a role. */
  frameworkShare(frameworkId: string): number;
  roleShare(role: string): number;
  /** Number of live decline filters (for metrics). */
  filterCount(): number;
}
