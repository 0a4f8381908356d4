/**
 * The hierarchical DRF allocator (Mesos `HierarchicalDRFAllocatorProcess`).
 *
 * One cycle visits agents in the strategy's order; for each agent it asks the
 * role sorter for the role with the lowest weighted dominant share, then that
 * role's framework sorter for the framework with the lowest share that may
 * take the agent (not filtered, GPU rule), and offers it everything on the
 * agent that role may use. Offered resources count as allocated at once, so
 * shares rise as the cycle plans offers.
 *
 * Two forms of state, kept in step by every mutation:
 *  - rich (`Resources`): per agent `total`, `available`, and `allocs` per
 *    client (one client = one (framework, role) pair) — what offers are built
 *    from and what /state reports;
 *  - packed (thousandths, `NDIMS` per agent in Float64Arrays `totalP` /
 *    `availP`, and per client in the sorters) — what the hot path reads.
 * Invariants (checked by the property test after every step):
 *  - per agent: available + Σ allocs = total (rich), and availP = packed(available);
 *  - per client: the sorter's allocation = Σ over agents of packed(allocs);
 *  - a role's allocation in the role sorter = Σ of its clients' allocations;
 *  - `clusterP` = Σ totalP over live agents; sorters see it after `syncTotals()`.
 *
 * Purity: `allocate()` works on a scratch copy of availP and on the live
 * sorters bracketed by snapshot()/restore(), so it changes no observable
 * state. It keeps the sorters' post-plan snapshots with the plan: `commit()`
 * of that plan, if nothing changed in between, restores them and updates only
 * the agents; otherwise it validates and re-applies the plan entry by entry. The hot loop allocates no
 * objects per agent: the accept callbacks are bound once, cycle state lives in
 * fields, and the only objects made are the plan entries themselves (whose
 * `resources` is the agent's cached `available` unless the agent holds
 * reservations).
 */
import { BerthError } from '../../proto/errors.js';
import { DIM, NDIMS, Resources, toMilli } from '../../proto/resources.js';
import { OfferFilters } from './filters.js';
import { mixSeed, Rng } from './rng.js';
import { DRFSorter } from './sorter/drf.js';
import { RandomSorter } from './sorter/random.js';
import type { Sorter, SorterFactory, SorterKind, SorterSnapshot } from './sorter/sorter.js';
import { grow } from './sorter/sorter.js';
import { STRATEGIES, type AgentOrder } from './strategy.js';
import type { Allocator, AllocatorOptions, FrameworkOptions, OfferPlan, OfferPlanEntry } from './types.js';

/** Shared by every agent registered without attributes (one object, not one per agent). */
const NO_ATTRIBUTES: Record<string, string | number> = Object.freeze({});

const DEFAULT_MIN_ALLOCATABLE: Record<string, number>[] = [{ cpus: 0.01 }, { mem: 32 }];

interface AgentRec {
  readonly id: string;
  readonly idx: number;
  readonly total: Resources;
  /** total − Σ allocs; replaced (never mutated: Resources are immutable) on every change. */
  available: Resources;
  /** Client uid → resources allocated (offered or used) to it on this agent. */
  readonly allocs: Map<number, Resources>;
  active: boolean;
  /** Has gpus: only GPU-aware frameworks get offers for it (Mesos rule). */
  readonly gpus: boolean;
  /** Has resources reserved for some role: offers are split per role (slow path). */
  readonly reserved: boolean;
  /** Only unreserved scalars of the packed dimensions: packed containment is exact. */
  readonly exact: boolean;
  readonly attributes: Record<string, string | number>;
}

interface RoleRec {
  readonly name: string;
  /** Index in the role sorter. */
  readonly idx: number;
  /** Framework sorter of this role. */
  readonly sorter: Sorter;
  /** Clients by their index in `sorter`. */
  readonly clients: (ClientRec | undefined)[];
  /** Clients active in `sorter`; the role is active in the role sorter iff > 0. */
  activeClients: number;
}

interface FrameworkRec {
  readonly id: string;
  gpuAware: boolean;
  active: boolean;
  readonly clients: Map<string, ClientRec>;
}

/** One (framework, role) pair: the unit that is sorted, offered to and filtered. */
interface ClientRec {
  /** Never reused: filter keys and agent `allocs` keys. */
  readonly uid: number;
  readonly fw: FrameworkRec;
  readonly role: RoleRec;
  /** Index in `role.sorter`. */
  readonly idx: number;
  suppressed: boolean;
  /** False once the framework left the role; kept only while it still holds allocations. */
  subscribed: boolean;
  /** Whether it is active in `role.sorter` (fw active, subscribed, not suppressed). */
  active: boolean;
  /** Number of agents on which it holds an allocation. */
  agents: number;
}

interface MinAllocatable {
  /** Packed dimension → thousandths required. */
  readonly dims: number[];
  readonly milli: number[];
  /** Resources outside the packed dimensions, checked on the rich form. */
  readonly other: [string, number][];
}

/**
 * What `allocate()` resolved while planning, so `commit()` of that same plan
 * need not look every id up and re-pack every offer again. Valid only while
 * `version` is the allocator's (no mutation in between) and the plan still
 * holds the same entries; otherwise commit takes the validating path.
 */
interface PlanMeta {
  readonly now: number;
  readonly version: number;
  readonly entries: readonly OfferPlanEntry[];
  readonly recs: readonly AgentRec[];
  readonly clients: readonly ClientRec[];
  /** Packed offers, NDIMS per entry. */
  readonly packed: Float64Array;
  /** Every sorter's state with the plan applied. */
  readonly after: readonly (readonly [Sorter, SorterSnapshot])[];
}

export interface SorterFactories {
  role?: SorterFactory;
  framework?: SorterFactory;
}

function sorterFactory(kind: SorterKind | undefined): SorterFactory {
  switch (kind ?? 'drf') {
    case 'drf': return () => new DRFSorter();
    case 'random': return () => new RandomSorter();
    default: throw new BerthError('INVALID', `allocator: unknown sorter '${String(kind)}'`);
  }
}

export class HierarchicalAllocator implements Allocator {
  private readonly seed: number;
  private readonly order: AgentOrder;
  private readonly mins: MinAllocatable[];
  private readonly newFrameworkSorter: SorterFactory;
  private readonly roleSorter: Sorter;
  private readonly filters = new OfferFilters();

  // Agents, by dense index (reused after removal).
  private agents: (AgentRec | undefined)[] = [];
  private readonly agentById = new Map<string, AgentRec>();
  private freeAgents: number[] = [];
  private totalP = new Float64Array(0);
  private availP = new Float64Array(0);
  private readonly clusterP = new Float64Array(NDIMS);
  private totalDirty = true;

  private readonly frameworks = new Map<string, FrameworkRec>();
  private readonly roles = new Map<string, RoleRec>();
  private rolesByIdx: (RoleRec | undefined)[] = [];
  private readonly clientsByUid = new Map<number, ClientRec>();
  private nextUid = 1;

  /** Committed cycles; mixed into the seed so each cycle's shuffle differs yet is reproducible. */
  private epoch = 0;
  /** Latest time the allocator was told (allocate/recover); used when `recoverResources` gets no `now`. */
  private clockHint = 0;
  /** Bumped by every mutation; a plan's fast commit requires it unchanged since allocate(). */
  private version = 0;
  private readonly plans = new WeakMap<OfferPlan, PlanMeta>();

  // Per-cycle scratch, reused across cycles (the hot path allocates none of it).
  private scratchP = new Float64Array(0);
  private candidates = new Int32Array(0);
  private seen = new Uint32Array(0);
  private stamp = 0;
  private readonly tmp = new Float64Array(NDIMS);
  private readonly tmp2 = new Float64Array(NDIMS);
  private cur: AgentRec | undefined;
  private curNow = 0;
  private curPlan: OfferPlan = [];
  private curRole: RoleRec | undefined;
  /** What the agent still has for the current cycle (reserved agents only). */
  private curRemaining: Resources = Resources.EMPTY;
  private curOffer: Resources = Resources.EMPTY;
  private curPacked: Float64Array = this.tmp;
  private curOff = 0;
  private curRecs: AgentRec[] = [];
  private curClients: ClientRec[] = [];
  private planPacked = new Float64Array(0);
  private readonly acceptRole = (ri: number): boolean => this.tryRole(ri);
  private readonly acceptClient = (ci: number): boolean => this.eligible(ci);

  constructor(opts: AllocatorOptions = {}, factories: SorterFactories = {}) {
    this.seed = (opts.seed ?? 0) >>> 0;
    const strategy = opts.strategy ?? 'spread';
    const order = STRATEGIES[strategy];
    if (!order) throw new BerthError('INVALID', `allocator: unknown strategy '${String(strategy)}'`);
    this.order = order;
    this.mins = (opts.minAllocatable ?? DEFAULT_MIN_ALLOCATABLE).map(compileMin);
    this.roleSorter = (factories.role ?? sorterFactory(opts.roleSorter))();
    this.newFrameworkSorter = factories.framework ?? sorterFactory(opts.frameworkSorter);
    for (const [role, w] of Object.entries(opts.weights ?? {})) this.setWeight(role, w);
  }

  // ---------------------------------------------------------------- agents

  addAgent(agentId: string, total: Resources, attributes: Record<string, string | number> = NO_ATTRIBUTES): void {
    this.version++;
    if (this.agentById.has(agentId)) throw new BerthError('CONFLICT', `allocator: agent '${agentId}' already added`);
    const idx = this.freeAgents.length > 0 ? this.freeAgents.pop()! : this.agents.length;
    let reserved = false;
    let exact = true;
    for (const e of total.entries()) {
      if (e.role !== '*') { reserved = true; exact = false; }
      if (e.type !== 'SCALAR' || !(e.name in DIM)) exact = false;
    }
    const rec: AgentRec = {
      id: agentId, idx, total, available: total, allocs: new Map(), active: true,
      gpus: total.scalar('gpus') > 0, reserved, exact, attributes,
    };
    if (idx === this.agents.length) this.agents.push(rec); else this.agents[idx] = rec;
    this.agentById.set(agentId, rec);
    const n = this.agents.length * NDIMS;
    this.totalP = grow(this.totalP, n);
    this.availP = grow(this.availP, n);
    const off = idx * NDIMS;
    this.totalP.fill(0, off, off + NDIMS);
    total.addPacked(this.totalP, off);
    this.availP.set(this.totalP.subarray(off, off + NDIMS), off);
    total.addPacked(this.clusterP);
    this.totalDirty = true;
  }

  removeAgent(agentId: string): void {
    const rec = this.agentById.get(agentId);
    if (!rec) return;
    this.version++;
    for (const [uid, res] of [...rec.allocs]) this.release(rec, this.clientsByUid.get(uid)!, res);
    this.filters.clearAgent(rec.idx);
    rec.total.addPacked(this.clusterP, 0, -1);
    const off = rec.idx * NDIMS;
    this.totalP.fill(0, off, off + NDIMS);
    this.availP.fill(0, off, off + NDIMS);
    this.agents[rec.idx] = undefined;
    this.freeAgents.push(rec.idx);
    this.agentById.delete(agentId);
    this.totalDirty = true;
  }

  setAgentActive(agentId: string, active: boolean): void {
    this.version++;
    this.mustAgent(agentId).active = active;
  }

  // ------------------------------------------------------------ frameworks

  addFramework(frameworkId: string, opts: FrameworkOptions): void {
    this.version++;
    if (this.frameworks.has(frameworkId)) throw new BerthError('CONFLICT', `allocator: framework '${frameworkId}' already added`);
    validateRoles(frameworkId, opts);
    const fw: FrameworkRec = { id: frameworkId, gpuAware: opts.gpuAware ?? false, active: opts.active ?? true, clients: new Map() };
    this.frameworks.set(frameworkId, fw);
    this.applyFrameworkOptions(fw, opts);
  }

  updateFramework(frameworkId: string, opts: FrameworkOptions): void {
    this.version++;
    const fw = this.mustFramework(frameworkId);
    validateRoles(frameworkId, opts);
    fw.gpuAware = opts.gpuAware ?? false;
    if (opts.active !== undefined) fw.active = opts.active;
    this.applyFrameworkOptions(fw, opts);
  }

  /** Subscribes `fw` to exactly `opts.roles` with exactly `opts.suppressedRoles` suppressed. */
  private applyFrameworkOptions(fw: FrameworkRec, opts: FrameworkOptions): void {
    const roles = new Set(opts.roles);
    // A MULTI_ROLE framework may subscribe to no role (it then gets no offers); '*' is
    // Mesos's default role, offered unreserved resources only.
    for (const r of roles) if (r === '') throw new BerthError('INVALID', `allocator: framework '${fw.id}': invalid role '${r}'`);
    const suppressed = new Set(opts.suppressedRoles ?? []);
    for (const [name, c] of [...fw.clients]) {
      if (roles.has(name)) continue;
      c.subscribed = false;
      this.refreshClient(c);
      if (c.agents === 0) this.dropClient(c);
    }
    for (const name of roles) {
      const c = fw.clients.get(name) ?? this.newClient(fw, name);
      c.subscribed = true;
      c.suppressed = suppressed.has(name);
      this.refreshClient(c);
    }
  }

  removeFramework(frameworkId: string): void {
    const fw = this.frameworks.get(frameworkId);
    if (!fw) return;
    this.version++;
    for (const c of [...fw.clients.values()]) {
      if (c.agents > 0) {
        for (const rec of this.agents) {
          const res = rec?.allocs.get(c.uid);
          if (rec && res) this.release(rec, c, res);
        }
      }
      c.subscribed = false;
      this.refreshClient(c);
      this.dropClient(c);
    }
    this.frameworks.delete(frameworkId);
  }

  setFrameworkActive(frameworkId: string, active: boolean): void {
    this.version++;
    const fw = this.mustFramework(frameworkId);
    fw.active = active;
    for (const c of fw.clients.values()) this.refreshClient(c);
  }

  suppress(frameworkId: string, roles?: string[]): void {
    this.version++;
    for (const c of this.clientsOf(frameworkId, roles)) {
      c.suppressed = true;
      this.refreshClient(c);
    }
  }

  revive(frameworkId: string, roles?: string[]): void {
    this.version++;
    for (const c of this.clientsOf(frameworkId, roles)) {
      c.suppressed = false;
      this.filters.clearClient(c.uid);
      this.refreshClient(c);
    }
  }

  setWeight(role: string, weight: number): void {
    this.version++;
    if (!(weight > 0) || !Number.isFinite(weight)) throw new BerthError('INVALID', `allocator: weight of role '${role}' must be a positive finite number, got ${weight}`);
    this.roleSorter.setWeight(role, weight);
  }

  private clientsOf(frameworkId: string, roles: string[] | undefined): ClientRec[] {
    const fw = this.mustFramework(frameworkId);
    if (roles === undefined || roles.length === 0) return [...fw.clients.values()].filter((c) => c.subscribed);
    return roles.map((r) => {
      const c = fw.clients.get(r);
      if (!c || !c.subscribed) throw new BerthError('INVALID', `allocator: framework '${frameworkId}' is not subscribed to role '${r}'`);
      return c;
    });
  }

  private newClient(fw: FrameworkRec, roleName: string): ClientRec {
    let role = this.roles.get(roleName);
    if (!role) {
      const idx = this.roleSorter.add(roleName);
      const sorter = this.newFrameworkSorter();
      sorter.setTotal(this.clusterP);
      role = { name: roleName, idx, sorter, clients: [], activeClients: 0 };
      this.roles.set(roleName, role);
      this.rolesByIdx[idx] = role;
      this.roleSorter.setTotal(this.clusterP);
    }
    const idx = role.sorter.add(fw.id);
    const c: ClientRec = { uid: this.nextUid++, fw, role, idx, suppressed: false, subscribed: true, active: false, agents: 0 };
    role.clients[idx] = c;
    fw.clients.set(roleName, c);
    this.clientsByUid.set(c.uid, c);
    return c;
  }

  /** Brings the client's (and its role's) sorter activity in line with its flags. */
  private refreshClient(c: ClientRec): void {
    const want = c.fw.active && c.subscribed && !c.suppressed;
    if (want === c.active) return;
    c.active = want;
    const role = c.role;
    if (want) {
      role.sorter.activate(c.fw.id);
      if (role.activeClients++ === 0) this.roleSorter.activate(role.name);
    } else {
      role.sorter.deactivate(c.fw.id);
      if (--role.activeClients === 0) this.roleSorter.deactivate(role.name);
    }
  }

  /** Forgets an inactive client without allocations; drops its role when that was the last client. */
  private dropClient(c: ClientRec): void {
    this.filters.clearClient(c.uid);
    const role = c.role;
    role.sorter.remove(c.fw.id);
    role.clients[c.idx] = undefined;
    c.fw.clients.delete(role.name);
    this.clientsByUid.delete(c.uid);
    if (role.sorter.size === 0) {
      this.roleSorter.remove(role.name);
      this.roles.delete(role.name);
      this.rolesByIdx[role.idx] = undefined;
    }
  }

  // ------------------------------------------------------------ allocations

  recoverAllocation(frameworkId: string, agentId: string, role: string, resources: Resources): void {
    this.version++;
    const rec = this.mustAgent(agentId);
    const fw = this.mustFramework(frameworkId);
    if (resources.isEmpty()) return;
    if (!rec.available.contains(resources)) {
      throw new BerthError('CONFLICT', `allocator: agent '${agentId}' has ${rec.available.toString() || 'nothing'} available, cannot hold ${resources.toString()} for '${frameworkId}'`);
    }
    let c = fw.clients.get(role);
    if (!c) {
      // Tasks of a role the framework no longer subscribes to: track them until they end.
      c = this.newClient(fw, role);
      c.subscribed = false;
    }
    this.tmp.fill(0);
    resources.addPacked(this.tmp);
    this.apply(rec, c, resources, this.tmp, 0);
  }

  recoverResources(frameworkId: string, agentId: string, role: string, resources: Resources, refuseSeconds = 0, now?: number): void {
    this.version++;
    const rec = this.agentById.get(agentId);
    const c = this.frameworks.get(frameworkId)?.clients.get(role);
    // Resources of a removed agent or framework were already returned when it was removed.
    if (!rec || !c) return;
    if (now !== undefined && now > this.clockHint) this.clockHint = now;
    const t = now ?? this.clockHint;
    if (!resources.isEmpty()) this.release(rec, c, resources);
    // A filter refusing nothing would never block; Mesos creates none either.
    if (refuseSeconds > 0 && !resources.isEmpty()) this.filters.add(c.uid, rec.idx, resources, t, t + refuseSeconds * 1000);
    if (!c.subscribed && c.agents === 0) this.dropClient(c);
    this.filters.sweep(t);
  }

  /** Marks `res` (packed: `p[po…]`) on `rec` allocated to `c`. The caller checked it is available. */
  private apply(rec: AgentRec, c: ClientRec, res: Resources, p: Float64Array, po: number): void {
    this.applyToAgent(rec, c, res, p, po);
    c.role.sorter.allocated(c.idx, p, po);
    this.roleSorter.allocated(c.role.idx, p, po);
  }

  /** The agent side of `apply` (the sorters are updated by the caller). */
  private applyToAgent(rec: AgentRec, c: ClientRec, res: Resources, p: Float64Array, po: number): void {
    const off = rec.idx * NDIMS;
    for (let d = 0; d < NDIMS; d++) this.availP[off + d] = this.availP[off + d]! - p[po + d]!;
    // Identity shortcut: a whole-agent offer is the cached `available` object itself.
    rec.available = res === rec.available ? Resources.EMPTY : rec.available.subtract(res);
    const prev = rec.allocs.get(c.uid);
    if (!prev) c.agents++;
    rec.allocs.set(c.uid, prev ? prev.add(res) : res);
  }

  /** Returns `res`, allocated to `c` on `rec`, to the agent's available pool. */
  private release(rec: AgentRec, c: ClientRec, res: Resources): void {
    const prev = rec.allocs.get(c.uid);
    if (!prev || (prev !== res && !prev.contains(res))) {
      throw new BerthError('CONFLICT', `allocator: '${c.fw.id}' (role ${c.role.name}) holds ${prev?.toString() || 'nothing'} on agent '${rec.id}', cannot recover ${res.toString()}`);
    }
    const rest = prev === res ? Resources.EMPTY : prev.subtract(res);
    if (rest.isEmpty()) { rec.allocs.delete(c.uid); c.agents--; } else rec.allocs.set(c.uid, rest);
    rec.available = rec.available.add(res);
    const p = this.tmp;
    p.fill(0);
    res.addPacked(p);
    const off = rec.idx * NDIMS;
    for (let d = 0; d < NDIMS; d++) this.availP[off + d] = this.availP[off + d]! + p[d]!;
    c.role.sorter.unallocated(c.idx, p, 0);
    this.roleSorter.unallocated(c.role.idx, p, 0);
  }

  // ------------------------------------------------------------------ cycle

  allocate(now: number, agentIds?: Iterable<string>): OfferPlan {
    const plan: OfferPlan = [];
    this.syncTotals();
    const n = this.gatherCandidates(agentIds);
    if (n === 0 || this.roleSorter.activeCount === 0) {
      this.plans.set(plan, { now, version: this.version, entries: [], recs: [], clients: [], packed: new Float64Array(0), after: [] });
      return plan;
    }

    this.order(this.candidates, n, { total: this.totalP, available: this.availP }, new Rng(mixSeed(this.seed, this.epoch)));

    this.scratchP = grow(this.scratchP, this.availP.length);
    this.scratchP.set(this.availP);
    const cycleSeed = mixSeed(this.seed ^ 0x5bd1e995, this.epoch);
    const sorters: Sorter[] = [this.roleSorter];
    for (const role of this.roles.values()) sorters.push(role.sorter);
    const before = sorters.map((s) => s.snapshot());
    this.roleSorter.reseed(cycleSeed);
    for (const role of this.roles.values()) role.sorter.reseed(mixSeed(cycleSeed, role.idx + 1));
    let after: (readonly [Sorter, SorterSnapshot])[] = [];
    this.curNow = now;
    this.curPlan = plan;
    const recs: AgentRec[] = (this.curRecs = []);
    const clients: ClientRec[] = (this.curClients = []);
    try {
      for (let i = 0; i < n; i++) this.offerAgent(this.agents[this.candidates[i]!]!);
      if (plan.length > 0) after = sorters.map((s) => [s, s.snapshot()] as const);
    } finally {
      for (let i = 0; i < sorters.length; i++) sorters[i]!.restore(before[i]!);
      this.cur = undefined;
      this.curRole = undefined;
      this.curPlan = [];
      this.curRecs = [];
      this.curClients = [];
    }
    this.plans.set(plan, { now, version: this.version, entries: plan.slice(), recs, clients, packed: this.planPacked.slice(0, plan.length * NDIMS), after });
    return plan;
  }

  /** Fills `candidates` with the active agents to visit (deduplicated); returns how many. */
  private gatherCandidates(agentIds: Iterable<string> | undefined): number {
    this.candidates = grow(this.candidates, this.agents.length);
    let n = 0;
    if (agentIds === undefined) {
      for (const rec of this.agents) if (rec && rec.active) this.candidates[n++] = rec.idx;
      return n;
    }
    if (this.seen.length < this.agents.length) this.seen = new Uint32Array(this.candidates.length);
    const stamp = (this.stamp = (this.stamp + 1) >>> 0 || 1);
    for (const id of agentIds) {
      const rec = this.agentById.get(id);
      if (!rec || !rec.active || this.seen[rec.idx] === stamp) continue;
      this.seen[rec.idx] = stamp;
      this.candidates[n++] = rec.idx;
    }
    return n;
  }

  /** Plans the offers of one agent (tentatively applied to the sorters and `scratchP`). */
  private offerAgent(rec: AgentRec): void {
    this.cur = rec;
    if (!rec.reserved) {
      // Everything on the agent may go to any role, so one offer takes it all.
      const off = rec.idx * NDIMS;
      if (!this.allocatable(this.scratchP, off, rec.available)) return;
      this.curOffer = rec.available;
      this.curPacked = this.scratchP;
      this.curOff = off;
      this.roleSorter.pick(this.acceptRole);
      return;
    }
    // Reservations split the agent: each pick offers what one role may use; repeat
    // until no role takes anything.
    this.curRemaining = rec.available;
    while (!this.curRemaining.isEmpty() && this.roleSorter.pick(this.acceptRole) >= 0) { /* next role */ }
  }

  /** Role-sorter visitor: offers the current agent to the best framework of role `ri`, if any. */
  private tryRole(ri: number): boolean {
    const role = this.rolesByIdx[ri]!;
    const rec = this.cur!;
    if (rec.reserved) {
      const offer = this.curRemaining.allocatableTo(role.name);
      if (offer.isEmpty()) return false;
      this.tmp2.fill(0);
      offer.addPacked(this.tmp2);
      if (!this.allocatable(this.tmp2, 0, offer)) return false;
      this.curOffer = offer;
      this.curPacked = this.tmp2;
      this.curOff = 0;
    }
    this.curRole = role;
    const ci = role.sorter.pick(this.acceptClient);
    if (ci < 0) return false;
    const c = role.clients[ci]!;
    const offer = this.curOffer;
    const k = this.curPlan.length;
    this.curPlan.push({ frameworkId: c.fw.id, agentId: rec.id, role: role.name, resources: offer });
    this.curRecs.push(rec);
    this.curClients.push(c);
    if (this.planPacked.length < (k + 1) * NDIMS) this.planPacked = grow(this.planPacked, (k + 1) * NDIMS);
    for (let d = 0; d < NDIMS; d++) this.planPacked[k * NDIMS + d] = this.curPacked[this.curOff + d]!;
    role.sorter.allocated(ci, this.curPacked, this.curOff);
    this.roleSorter.allocated(ri, this.curPacked, this.curOff);
    const off = rec.idx * NDIMS;
    if (!rec.reserved) {
      this.scratchP.fill(0, off, off + NDIMS);
    } else {
      for (let d = 0; d < NDIMS; d++) this.scratchP[off + d] = this.scratchP[off + d]! - this.tmp2[d]!;
      this.curRemaining = this.curRemaining.subtract(offer);
    }
    return true;
  }

  /** Framework-sorter visitor: whether client `ci` of the current role may be offered the current agent. */
  private eligible(ci: number): boolean {
    const c = this.curRole!.clients[ci]!;
    const rec = this.cur!;
    if (rec.gpus && !c.fw.gpuAware) return false;
    if (this.filters.blocks(c.uid, rec.idx, this.curNow, this.curPacked, this.curOff, this.curOffer, rec.exact)) return false;
    return true;
  }

  /** Mesos' minimum allocatable resources: the offer must hold at least one of the minimums. */
  private allocatable(p: Float64Array, off: number, rich: Resources): boolean {
    if (this.mins.length === 0) return !rich.isEmpty();
    for (let i = 0; i < this.mins.length; i++) {
      const m = this.mins[i]!;
      let ok = true;
      for (let k = 0; k < m.dims.length; k++) if (p[off + m.dims[k]!]! < m.milli[k]!) { ok = false; break; }
      for (let k = 0; ok && k < m.other.length; k++) if (toMilli(rich.scalar(m.other[k]![0])) < m.other[k]![1]) ok = false;
      if (ok) return !rich.isEmpty();
    }
    return false;
  }

  commit(plan: OfferPlan): void {
    const meta = this.plans.get(plan);
    const fast = meta !== undefined && meta.version === this.version && sameEntries(plan, meta.entries);
    this.version++;
    this.syncTotals();
    if (fast) {
      // Nothing changed since allocate() planned it: the plan is valid as planned, and the
      // sorters' post-plan state is exactly what applying it entry by entry would produce.
      for (let i = 0; i < plan.length; i++) this.applyToAgent(meta.recs[i]!, meta.clients[i]!, plan[i]!.resources, meta.packed, i * NDIMS);
      for (const [sorter, snap] of meta.after) sorter.restore(snap);
    } else {
      this.commitValidated(plan);
    }
    this.epoch++;
    if (meta) {
      if (meta.now > this.clockHint) this.clockHint = meta.now;
      this.filters.sweep(meta.now);
    }
  }

  /** Commits a plan made before other changes, or built by hand: validates all of it, then applies. */
  private commitValidated(plan: OfferPlan): void {
    // Validate the whole plan before changing anything, so a stale plan leaves no trace.
    const recs: AgentRec[] = [];
    const clients: ClientRec[] = [];
    const packed = new Float64Array(plan.length * NDIMS);
    this.scratchP = grow(this.scratchP, this.availP.length);
    this.scratchP.set(this.availP);
    let richLeft: Map<number, Resources> | undefined;
    for (let i = 0; i < plan.length; i++) {
      const e = plan[i]!;
      const rec = this.agentById.get(e.agentId);
      if (!rec) throw new BerthError('CONFLICT', `allocator: plan offers unknown agent '${e.agentId}'`);
      const c = this.frameworks.get(e.frameworkId)?.clients.get(e.role);
      if (!c || !c.subscribed) throw new BerthError('CONFLICT', `allocator: plan offers to unknown framework '${e.frameworkId}' in role '${e.role}'`);
      e.resources.addPacked(packed, i * NDIMS);
      if (rec.exact) {
        const off = rec.idx * NDIMS;
        for (let d = 0; d < NDIMS; d++) {
          const left = (this.scratchP[off + d] = this.scratchP[off + d]! - packed[i * NDIMS + d]!);
          if (left < 0) throw staleOffer(e.agentId, e.resources);
        }
      } else {
        richLeft ??= new Map();
        const left = richLeft.get(rec.idx) ?? rec.available;
        if (!left.contains(e.resources)) throw staleOffer(e.agentId, e.resources);
        richLeft.set(rec.idx, left.subtract(e.resources));
      }
      recs.push(rec);
      clients.push(c);
    }
    for (let i = 0; i < plan.length; i++) this.apply(recs[i]!, clients[i]!, plan[i]!.resources, packed, i * NDIMS);
  }

  /** Pushes a changed cluster total to every sorter (shares are over it). */
  private syncTotals(): void {
    if (!this.totalDirty) return;
    this.roleSorter.setTotal(this.clusterP);
    for (const role of this.roles.values()) role.sorter.setTotal(this.clusterP);
    this.totalDirty = false;
  }

  // --------------------------------------------------------------- queries

  agentAvailable(agentId: string): Resources | undefined { return this.agentById.get(agentId)?.available; }

  agentAllocated(agentId: string): Resources | undefined {
    const rec = this.agentById.get(agentId);
    if (!rec) return undefined;
    let sum = Resources.EMPTY;
    for (const r of rec.allocs.values()) sum = sum.add(r);
    return sum;
  }

  frameworkShare(frameworkId: string): number {
    const fw = this.frameworks.get(frameworkId);
    if (!fw) return 0;
    const p = new Float64Array(NDIMS);
    for (const c of fw.clients.values()) c.role.sorter.allocation(c.idx, p, 0);
    return dominantShare(p, this.clusterP);
  }

  roleShare(role: string): number {
    const r = this.roles.get(role);
    if (!r) return 0;
    this.syncTotals();
    return this.roleSorter.share(r.idx);
  }

  filterCount(): number { return this.filters.count; }

  /** Packed consistency self-check for tests: throws if the two forms disagree. */
  checkInvariants(): void {
    const p = new Float64Array(NDIMS);
    const perClient = new Map<number, Float64Array>();
    const cluster = new Float64Array(NDIMS);
    for (const rec of this.agents) {
      if (!rec) continue;
      let sum = rec.available;
      for (const [uid, r] of rec.allocs) {
        sum = sum.add(r);
        let q = perClient.get(uid);
        if (!q) perClient.set(uid, (q = new Float64Array(NDIMS)));
        r.addPacked(q);
      }
      if (!sum.equals(rec.total)) throw new BerthError('CONFLICT', `invariant: agent ${rec.id}: available + allocated = ${sum} ≠ total ${rec.total}`);
      p.fill(0);
      rec.available.addPacked(p);
      for (let d = 0; d < NDIMS; d++) if (p[d] !== this.availP[rec.idx * NDIMS + d]) throw new BerthError('CONFLICT', `invariant: agent ${rec.id}: packed available differs in dim ${d}`);
      rec.total.addPacked(cluster);
    }
    for (let d = 0; d < NDIMS; d++) if (cluster[d] !== this.clusterP[d]) throw new BerthError('CONFLICT', `invariant: cluster total differs in dim ${d}`);
    const roleSum = new Map<RoleRec, Float64Array>();
    for (const c of this.clientsByUid.values()) {
      p.fill(0);
      c.role.sorter.allocation(c.idx, p, 0);
      const q = perClient.get(c.uid) ?? new Float64Array(NDIMS);
      for (let d = 0; d < NDIMS; d++) if (p[d] !== q[d]) throw new BerthError('CONFLICT', `invariant: client ${c.fw.id}/${c.role.name}: sorter allocation differs in dim ${d}`);
      let rs = roleSum.get(c.role);
      if (!rs) roleSum.set(c.role, (rs = new Float64Array(NDIMS)));
      for (let d = 0; d < NDIMS; d++) rs[d] = rs[d]! + q[d]!;
    }
    for (const [role, rs] of roleSum) {
      p.fill(0);
      this.roleSorter.allocation(role.idx, p, 0);
      for (let d = 0; d < NDIMS; d++) if (p[d] !== rs[d]) throw new BerthError('CONFLICT', `invariant: role ${role.name}: allocation differs in dim ${d}`);
    }
  }

  private mustAgent(id: string): AgentRec {
    const rec = this.agentById.get(id);
    if (!rec) throw new BerthError('NOT_FOUND', `allocator: unknown agent '${id}'`);
    return rec;
  }

  private mustFramework(id: string): FrameworkRec {
    const fw = this.frameworks.get(id);
    if (!fw) throw new BerthError('NOT_FOUND', `allocator: unknown framework '${id}'`);
    return fw;
  }
}

function validateRoles(frameworkId: string, opts: FrameworkOptions): void {
  if (!opts.roles || opts.roles.length === 0) throw new BerthError('INVALID', `allocator: framework '${frameworkId}' has no roles`);
  // '*' is allowed: Mesos' default role, which may use only unreserved resources.
  for (const r of opts.roles) if (r === '') throw new BerthError('INVALID', `allocator: framework '${frameworkId}' has an empty role`);
}

function sameEntries(plan: OfferPlan, entries: readonly OfferPlanEntry[]): boolean {
  if (plan.length !== entries.length) return false;
  for (let i = 0; i < plan.length; i++) if (plan[i] !== entries[i]) return false;
  return true;
}

function staleOffer(agentId: string, res: Resources): BerthError {
  return new BerthError('CONFLICT', `allocator: stale plan: agent '${agentId}' no longer has ${res.toString()} available`);
}

function compileMin(m: Record<string, number>): MinAllocatable {
  const dims: number[] = [];
  const milli: number[] = [];
  const other: [string, number][] = [];
  for (const [name, v] of Object.entries(m)) {
    if (!Number.isFinite(v) || v < 0) throw new BerthError('INVALID', `allocator: minAllocatable ${name} must be a non-negative number, got ${v}`);
    const d = (DIM as Record<string, number>)[name];
    if (d !== undefined) { dims.push(d); milli.push(toMilli(v)); } else other.push([name, toMilli(v)]);
  }
  return { dims, milli, other };
}

function dominantShare(p: Float64Array, total: Float64Array): number {
  let s = 0;
  for (let d = 0; d < NDIMS; d++) if (total[d]! > 0) s = Math.max(s, p[d]! / total[d]!);
  return s;
}
