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
 *  - rich (`Resources`): per agent index `avail[a]` and the allocation table
 *    (`holder`/`held`/`multi`: client uid → resources) — what offers are
 *    built from and what /state reports;
 *  - packed (thousandths, `NDIMS` per agent in Float64Arrays `totalP` /
 *    `availP`, and per client in the sorters) — what the hot path reads.
 * Invariants (checked by the property test after every step):
 *  - per agent: avail + Σ allocations = total (rich), and availP = packed(avail);
 *  - per client: the sorter's allocation = Σ over agents of packed(allocations);
 *  - a role's allocation in the role sorter = Σ of its clients' allocations;
 *  - `clusterP` = Σ totalP over live agents; sorters see it after `syncTotals()`.
 *
 * Two ways to run a cycle, with the same decisions (tested):
 *  - `allocate()` → plan, then `commit(plan)`: the pure decision the master's
 *    contract asks for. It works on a scratch copy of availP and on the live
 *    sorters bracketed by snapshot()/restore(), and keeps the sorters'
 *    post-plan snapshots with the plan: `commit()` of that plan, if nothing
 *    changed in between, restores them and updates only the agents; otherwise
 *    it validates and re-applies the plan entry by entry.
 *  - `cycle(now, agents, sink)`: decides and commits in one pass on availP
 *    itself and hands each offer to the sink — no plan objects, no scratch
 *    copy, each agent's packed state touched once (agents are visited in
 *    shuffled order, so every first touch is a cache miss: at 100k agents
 *    those misses, not the arithmetic, are most of a cycle).
 * The hot loop allocates no objects per agent: per-agent state is in dense
 * arrays (flags, ids, avail, the inline allocation table), the plan under
 * construction in reused typed/pointer arrays, and for an unreserved agent of
 * packed scalars the offer goes straight to the sorters' heap tops (`visit`).
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
import type { Allocator, AllocatorOptions, FrameworkOptions, OfferPlan, OfferPlanEntry, OfferSink } from './types.js';

/** Shared by every agent registered without attributes (one object, not one per agent). */
const NO_ATTRIBUTES: Record<string, string | number> = Object.freeze({});

const DEFAULT_MIN_ALLOCATABLE: Record<string, number>[] = [{ cpus: 0.01 }, { mem: 32 }];

/** Bits of `aflags[agent index]`: what the hot loop needs to know without touching the record. */
const LIVE = 1;
const ACTIVE = 2;
const RESERVED = 4;
const EXACT = 8;
const GPUS = 16;
/** `holder[agent]` when several clients hold allocations there (they are in `multi[agent]`). */
const MULTI = -1;

/**
 * The cold part of an agent. Its hot state lives in dense per-index arrays of
 * the allocator (`aflags`, `ids`, `avail`, `availP`, the allocation table), so a
 * cycle over 100k agents in shuffled order reads typed arrays and pointer
 * arrays, not 100k scattered records and maps.
 */
interface AgentRec {
  readonly id: string;
  readonly idx: number;
  readonly total: Resources;
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

/** Placeholder in reused plan slots (holds no framework alive). */
const NO_CLIENT = Object.freeze({}) as ClientRec;

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
  /** Agent index per entry. */
  readonly agents: Int32Array;
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
  /** Every minimum needs some packed dimension > 0 (see `allocatableExact`). */
  private readonly fastMins: boolean;
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
  /** Per agent index: LIVE | ACTIVE | RESERVED | EXACT | GPUS. */
  private aflags = new Uint8Array(0);
  /** Per agent index: its id (dense, so the cycle need not load the record). */
  private ids: string[] = [];
  /** Per agent index: total − Σ allocations, rich; replaced (never mutated: Resources are immutable). */
  private avail: Resources[] = [];
  /**
   * Per agent index, the allocation table (client uid → resources allocated,
   * offered or used, to it there). Almost every agent is held by at most one
   * client, so that client sits inline: `holder` = its uid and `held` = its
   * resources; 0 = none; MULTI = several, all of them in `multi` (a Map made
   * only then). Uids start at 1.
   */
  private holder = new Int32Array(0);
  private held: (Resources | undefined)[] = [];
  private multi: (Map<number, Resources> | undefined)[] = [];

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
  /** What the running cycle reads and takes from: `scratchP` (tentative) or `availP` (committing). */
  private work = this.scratchP;
  private candidates = new Int32Array(0);
  private seen = new Uint32Array(0);
  private stamp = 0;
  private readonly tmp = new Float64Array(NDIMS);
  private readonly tmp2 = new Float64Array(NDIMS);
  private cur: AgentRec | undefined;
  private curNow = 0;
  private curRole: RoleRec | undefined;
  /** What the agent still has for the current cycle (reserved agents only). */
  private curRemaining: Resources = Resources.EMPTY;
  private curOffer: Resources = Resources.EMPTY;
  private curPacked: Float64Array = this.tmp;
  private curOff = 0;
  /** Agent index and client of each planned entry (reused; sliced into the plan's meta). */
  private planAgents = new Int32Array(0);
  private planClients: ClientRec[] = [];
  private planOffers: Resources[] = [];
  private planPacked = new Float64Array(0);
  private planN = 0;
  /** Sorter states after the last tentative plan (for allocate()'s fast commit). */
  private planAfter: (readonly [Sorter, SorterSnapshot])[] = [];
  private readonly acceptRole = (ri: number): boolean => this.tryRole(ri);
  private readonly acceptClient = (ci: number): boolean => this.eligible(ci);

  constructor(opts: AllocatorOptions = {}, factories: SorterFactories = {}) {
    this.seed = (opts.seed ?? 0) >>> 0;
    const strategy = opts.strategy ?? 'spread';
    const order = STRATEGIES[strategy];
    if (!order) throw new BerthError('INVALID', `allocator: unknown strategy '${String(strategy)}'`);
    this.order = order;
    this.mins = (opts.minAllocatable ?? DEFAULT_MIN_ALLOCATABLE).map(compileMin);
    this.fastMins = this.mins.length > 0 && this.mins.every((m) => m.milli.some((x) => x > 0));
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
    const rec: AgentRec = { id: agentId, idx, total, gpus: total.scalar('gpus') > 0, reserved, exact, attributes };
    if (idx === this.agents.length) {
      this.agents.push(rec);
      this.ids.push(agentId);
      this.avail.push(total);
      this.held.push(undefined);
      this.multi.push(undefined);
    } else {
      this.agents[idx] = rec;
      this.ids[idx] = agentId;
      this.avail[idx] = total;
    }
    this.aflags = grow(this.aflags, this.agents.length);
    this.holder = grow(this.holder, this.agents.length);
    this.aflags[idx] = LIVE | ACTIVE | (reserved ? RESERVED : 0) | (exact ? EXACT : 0) | (rec.gpus ? GPUS : 0);
    this.holder[idx] = 0;
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
    for (const [uid, res] of this.allocsOf(rec.idx)) this.release(rec.idx, this.clientsByUid.get(uid)!, res);
    this.filters.clearAgent(rec.idx);
    rec.total.addPacked(this.clusterP, 0, -1);
    const off = rec.idx * NDIMS;
    this.totalP.fill(0, off, off + NDIMS);
    this.availP.fill(0, off, off + NDIMS);
    this.agents[rec.idx] = undefined;
    this.aflags[rec.idx] = 0;
    this.avail[rec.idx] = Resources.EMPTY;
    this.ids[rec.idx] = '';
    this.freeAgents.push(rec.idx);
    this.agentById.delete(agentId);
    this.totalDirty = true;
  }

  setAgentActive(agentId: string, active: boolean): void {
    this.version++;
    const a = this.mustAgent(agentId).idx;
    this.aflags[a] = active ? this.aflags[a]! | ACTIVE : this.aflags[a]! & ~ACTIVE;
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
        for (let a = 0; a < this.agents.length; a++) {
          const res = this.holder[a] === 0 ? undefined : this.allocOf(a, c.uid);
          if (res) this.release(a, c, res);
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
    const available = this.avail[rec.idx]!;
    if (!available.contains(resources)) {
      throw new BerthError('CONFLICT', `allocator: agent '${agentId}' has ${available.toString() || 'nothing'} available, cannot hold ${resources.toString()} for '${frameworkId}'`);
    }
    let c = fw.clients.get(role);
    if (!c) {
      // Tasks of a role the framework no longer subscribes to: track them until they end.
      c = this.newClient(fw, role);
      c.subscribed = false;
    }
    this.tmp.fill(0);
    resources.addPacked(this.tmp);
    this.apply(rec.idx, c, resources, this.tmp, 0);
  }

  recoverResources(frameworkId: string, agentId: string, role: string, resources: Resources, refuseSeconds = 0, now?: number): void {
    this.version++;
    const rec = this.agentById.get(agentId);
    const c = this.frameworks.get(frameworkId)?.clients.get(role);
    // Resources of a removed agent or framework were already returned when it was removed.
    if (!rec || !c) return;
    if (now !== undefined && now > this.clockHint) this.clockHint = now;
    const t = now ?? this.clockHint;
    if (!resources.isEmpty()) this.release(rec.idx, c, resources);
    // A filter refusing nothing would never block; Mesos creates none either.
    if (refuseSeconds > 0 && !resources.isEmpty()) this.filters.add(c.uid, rec.idx, resources, t, t + refuseSeconds * 1000);
    if (!c.subscribed && c.agents === 0) this.dropClient(c);
    this.filters.sweep(t);
  }

  /** Marks `res` (packed: `p[po…]`) on agent `a` allocated to `c`. The caller checked it is available. */
  private apply(a: number, c: ClientRec, res: Resources, p: Float64Array, po: number): void {
    this.applyToAgent(a, c, res, p, po);
    c.role.sorter.allocated(c.idx, p, po);
    this.roleSorter.allocated(c.role.idx, p, po);
  }

  /** The agent side of `apply` (the sorters are updated by the caller). */
  private applyToAgent(a: number, c: ClientRec, res: Resources, p: Float64Array, po: number): void {
    const off = a * NDIMS;
    for (let d = 0; d < NDIMS; d++) this.availP[off + d] = this.availP[off + d]! - p[po + d]!;
    // Identity shortcut: a whole-agent offer is the cached available object itself.
    const av = this.avail[a]!;
    this.avail[a] = res === av ? Resources.EMPTY : av.subtract(res);
    const prev = this.allocOf(a, c.uid);
    if (!prev) c.agents++;
    this.setAlloc(a, c.uid, prev ? prev.add(res) : res);
  }

  /** Returns `res`, allocated to `c` on agent `a`, to the agent's available pool. */
  private release(a: number, c: ClientRec, res: Resources): void {
    const prev = this.allocOf(a, c.uid);
    if (!prev || (prev !== res && !prev.contains(res))) {
      throw new BerthError('CONFLICT', `allocator: '${c.fw.id}' (role ${c.role.name}) holds ${prev?.toString() || 'nothing'} on agent '${this.ids[a]}', cannot recover ${res.toString()}`);
    }
    const rest = prev === res ? Resources.EMPTY : prev.subtract(res);
    if (rest.isEmpty()) { this.deleteAlloc(a, c.uid); c.agents--; } else this.setAlloc(a, c.uid, rest);
    this.avail[a] = this.avail[a]!.add(res);
    const p = this.tmp;
    p.fill(0);
    res.addPacked(p);
    const off = a * NDIMS;
    for (let d = 0; d < NDIMS; d++) this.availP[off + d] = this.availP[off + d]! + p[d]!;
    c.role.sorter.unallocated(c.idx, p, 0);
    this.roleSorter.unallocated(c.role.idx, p, 0);
  }

  // ------------------------------------------------------- allocation table

  /** What client `uid` holds on agent `a`, if anything. */
  private allocOf(a: number, uid: number): Resources | undefined {
    const h = this.holder[a]!;
    if (h === uid) return this.held[a];
    return h === MULTI ? this.multi[a]!.get(uid) : undefined;
  }

  private setAlloc(a: number, uid: number, res: Resources): void {
    const h = this.holder[a]!;
    if (h === 0 || h === uid) { this.holder[a] = uid; this.held[a] = res; return; }
    if (h !== MULTI) {
      this.multi[a] = new Map([[h, this.held[a]!]]);
      this.holder[a] = MULTI;
      this.held[a] = undefined;
    }
    this.multi[a]!.set(uid, res);
  }

  private deleteAlloc(a: number, uid: number): void {
    const h = this.holder[a]!;
    if (h === uid) { this.holder[a] = 0; this.held[a] = undefined; return; }
    if (h !== MULTI) return;
    const m = this.multi[a]!;
    m.delete(uid);
    if (m.size === 1) {
      // Back to the inline form, so the common case stays map-free.
      const [[u, r]] = m;
      this.holder[a] = u!;
      this.held[a] = r;
      this.multi[a] = undefined;
    }
  }

  /** Every (client uid, resources) held on agent `a` (a copy: safe to release while iterating). */
  private allocsOf(a: number): [number, Resources][] {
    const h = this.holder[a]!;
    if (h === 0) return [];
    if (h === MULTI) return [...this.multi[a]!];
    return [[h, this.held[a]!]];
  }

  // ------------------------------------------------------------------ cycle

  allocate(now: number, agentIds?: Iterable<string>): OfferPlan {
    const plan: OfferPlan = [];
    const k = this.planCycle(now, agentIds, true);
    for (let i = 0; i < k; i++) {
      const c = this.planClients[i]!;
      plan.push({ frameworkId: c.fw.id, agentId: this.ids[this.planAgents[i]!]!, role: c.role.name, resources: this.planOffers[i]! });
    }
    this.plans.set(plan, {
      now, version: this.version, entries: plan.slice(), agents: this.planAgents.slice(0, k), clients: this.planClients.slice(0, k),
      packed: this.planPacked.slice(0, k * NDIMS), after: this.planAfter,
    });
    this.clearPlan();
    return plan;
  }

  /**
   * `commit(allocate(now, agentIds))` in one pass, without the plan: each offer
   * is applied as decided and then handed to `sink` — no plan entries, no
   * post-plan snapshots, no validation of a plan that cannot be stale. The
   * decisions and the resulting state are the same as allocate() + commit()
   * (tested). Returns the number of offers.
   */
  cycle(now: number, agentIds: Iterable<string> | undefined, sink: OfferSink): number {
    const k = this.planCycle(now, agentIds, false);
    this.version++;
    this.epoch++;
    if (now > this.clockHint) this.clockHint = now;
    this.filters.sweep(now);
    try {
      for (let i = 0; i < k; i++) {
        const c = this.planClients[i]!;
        sink(c.fw.id, this.ids[this.planAgents[i]!]!, c.role.name, this.planOffers[i]!);
      }
    } finally {
      this.clearPlan();
    }
    return k;
  }

  /**
   * Decides one cycle's offers into `planAgents/planClients/planOffers/planPacked`
   * and returns how many. With `tentative`, the sorters are restored afterwards
   * (their post-plan state kept in `planAfter` for a fast commit) and nothing
   * observable changes; the cycle works on `scratchP`, a copy of `availP`.
   * Without, every entry is committed as it is decided (sorters and agents),
   * and the cycle works on `availP` itself: each agent's packed state is then
   * read and written once, while it is in cache (the agents are visited in
   * shuffled order, so each visit is a cache miss).
   */
  private planCycle(now: number, agentIds: Iterable<string> | undefined, tentative: boolean): number {
    this.planN = 0;
    this.planAfter = [];
    this.syncTotals();
    const n = this.gatherCandidates(agentIds);
    if (n === 0 || this.roleSorter.activeCount === 0) return 0;

    this.order(this.candidates, n, { total: this.totalP, available: this.availP }, new Rng(mixSeed(this.seed, this.epoch)));

    if (tentative) {
      this.scratchP = grow(this.scratchP, this.availP.length);
      this.scratchP.set(this.availP);
      this.work = this.scratchP;
    } else {
      this.work = this.availP;
    }
    const cycleSeed = mixSeed(this.seed ^ 0x5bd1e995, this.epoch);
    const sorters: Sorter[] = [this.roleSorter];
    for (const role of this.roles.values()) sorters.push(role.sorter);
    const before = sorters.map((s) => s.snapshot());
    this.roleSorter.reseed(cycleSeed);
    for (const role of this.roles.values()) role.sorter.reseed(mixSeed(cycleSeed, role.idx + 1));
    this.curNow = now;
    let ok = false;
    try {
      this.visit(n);
      if (tentative && this.planN > 0) this.planAfter = sorters.map((s) => [s, s.snapshot()] as const);
      ok = true;
    } finally {
      // A failed cycle leaves no trace; a tentative one none either.
      if (!ok && !tentative) for (let i = this.planN - 1; i >= 0; i--) this.unapplyFromAgent(i);
      if (tentative || !ok) for (let i = 0; i < sorters.length; i++) sorters[i]!.restore(before[i]!);
      if (!ok) this.clearPlan();
      this.work = this.scratchP;
      this.cur = undefined;
      this.curRole = undefined;
    }
    return this.planN;
  }

  /** Drops the references the last plan held (framework records, resources). */
  private clearPlan(): void {
    // Overwrite rather than truncate: `length = 0` would free the backing stores and
    // the next cycle would regrow them (and pay the write barriers) element by element.
    this.planClients.fill(NO_CLIENT, 0, this.planN);
    this.planOffers.fill(Resources.EMPTY, 0, this.planN);
    this.planN = 0;
    this.planAfter = [];
  }

  /**
   * Plans the offers of `candidates[0 … n)`, in order.
   *
   * Fast path, for an unreserved agent of packed scalars only (the common
   * case): the whole agent goes to the first client `pick()` would visit — the
   * top of the role sorter's heap, then of that role's framework sorter — when
   * that client may take it (GPU rule, no blocking filter). That is exactly
   * the first thing the general path would try, so the outcome is the same;
   * anything else (reserved or non-scalar agents, an ineligible top, a sorter
   * without `first()`) takes the general path (`offerAgent`).
   */
  private visit(n: number): void {
    const cand = this.candidates;
    const flags = this.aflags;
    const sp = this.work;
    const roleSorter = this.roleSorter;
    const fast = this.fastMins && roleSorter.first !== undefined;
    for (let i = 0; i < n; i++) {
      const a = cand[i]!;
      const f = flags[a]!;
      if (fast && (f & (RESERVED | EXACT)) === EXACT) {
        const off = a * NDIMS;
        if (!this.allocatableExact(sp, off)) continue;
        const ri = roleSorter.first!();
        const role = ri >= 0 ? this.rolesByIdx[ri]! : undefined;
        const ci = role?.sorter.first?.() ?? -1;
        if (ci >= 0) {
          const c = role!.clients[ci]!;
          const offer = this.avail[a]!;
          if (((f & GPUS) === 0 || c.fw.gpuAware) && !this.filters.blocks(c.uid, a, this.curNow, sp, off, offer, true)) {
            this.record(a, c, offer, sp, off);
            sp.fill(0, off, off + NDIMS); // (already 0 when committing as we go)
            continue;
          }
        }
      }
      this.offerAgent(this.agents[a]!);
    }
  }

  /** Adds one entry to the plan being built and applies it to the sorters. */
  private record(a: number, c: ClientRec, offer: Resources, packed: Float64Array, off: number): void {
    const k = this.planN++;
    const role = c.role;
    if (this.planAgents.length <= k) this.planAgents = grow(this.planAgents, k + 1);
    this.planAgents[k] = a;
    if (k < this.planClients.length) {
      this.planClients[k] = c;
      this.planOffers[k] = offer;
    } else {
      this.planClients.push(c);
      this.planOffers.push(offer);
    }
    if (this.planPacked.length < (k + 1) * NDIMS) this.planPacked = grow(this.planPacked, (k + 1) * NDIMS);
    for (let d = 0; d < NDIMS; d++) this.planPacked[k * NDIMS + d] = packed[off + d]!;
    role.sorter.allocated(c.idx, packed, off);
    this.roleSorter.allocated(role.idx, packed, off);
    // Committing as we go: `packed` may alias availP, so apply from the plan's copy.
    if (this.work === this.availP) this.applyToAgent(a, c, offer, this.planPacked, k * NDIMS);
  }

  /** Undoes the agent side of plan entry `i` of a failed committing cycle (the sorters are restored). */
  private unapplyFromAgent(i: number): void {
    const a = this.planAgents[i]!;
    const c = this.planClients[i]!;
    const res = this.planOffers[i]!;
    const off = a * NDIMS;
    for (let d = 0; d < NDIMS; d++) this.availP[off + d] = this.availP[off + d]! + this.planPacked[i * NDIMS + d]!;
    this.avail[a] = this.avail[a]!.add(res);
    const prev = this.allocOf(a, c.uid)!;
    const rest = prev === res ? Resources.EMPTY : prev.subtract(res);
    if (rest.isEmpty()) { this.deleteAlloc(a, c.uid); c.agents--; } else this.setAlloc(a, c.uid, rest);
  }

  /** Fills `candidates` with the active agents to visit (deduplicated); returns how many. */
  private gatherCandidates(agentIds: Iterable<string> | undefined): number {
    this.candidates = grow(this.candidates, this.agents.length);
    let n = 0;
    if (agentIds === undefined) {
      const flags = this.aflags;
      for (let a = 0; a < this.agents.length; a++) if ((flags[a]! & (LIVE | ACTIVE)) === (LIVE | ACTIVE)) this.candidates[n++] = a;
      return n;
    }
    if (this.seen.length < this.agents.length) this.seen = new Uint32Array(this.candidates.length);
    const stamp = (this.stamp = (this.stamp + 1) >>> 0 || 1);
    for (const id of agentIds) {
      const rec = this.agentById.get(id);
      if (!rec || !(this.aflags[rec.idx]! & ACTIVE) || this.seen[rec.idx] === stamp) continue;
      this.seen[rec.idx] = stamp;
      this.candidates[n++] = rec.idx;
    }
    return n;
  }

  /** Plans the offers of one agent (tentatively applied to the sorters and `scratchP`). */
  private offerAgent(rec: AgentRec): void {
    this.cur = rec;
    const available = this.avail[rec.idx]!;
    if (!rec.reserved) {
      // Everything on the agent may go to any role, so one offer takes it all.
      const off = rec.idx * NDIMS;
      if (!this.allocatable(this.work, off, available)) return;
      this.curOffer = available;
      this.curPacked = this.work;
      this.curOff = off;
      this.roleSorter.pick(this.acceptRole);
      return;
    }
    // Reservations split the agent: each pick offers what one role may use; repeat
    // until no role takes anything.
    this.curRemaining = available;
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
    const offer = this.curOffer;
    this.record(rec.idx, role.clients[ci]!, offer, this.curPacked, this.curOff);
    const off = rec.idx * NDIMS;
    if (!rec.reserved) {
      this.work.fill(0, off, off + NDIMS);
    } else {
      // When committing as we go, record() already took it from availP (= work).
      if (this.work !== this.availP) for (let d = 0; d < NDIMS; d++) this.work[off + d] = this.work[off + d]! - this.tmp2[d]!;
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

  /**
   * `allocatable()` for an agent of packed scalars only (its other scalars are
   * 0), valid when `fastMins`: every minimum needs some packed dimension > 0,
   * so passing one implies the offer is not empty.
   */
  private allocatableExact(p: Float64Array, off: number): boolean {
    for (let i = 0; i < this.mins.length; i++) {
      const m = this.mins[i]!;
      let ok = true;
      for (let k = 0; k < m.dims.length; k++) if (p[off + m.dims[k]!]! < m.milli[k]!) { ok = false; break; }
      for (let k = 0; ok && k < m.other.length; k++) if (0 < m.other[k]![1]) ok = false;
      if (ok) return true;
    }
    return false;
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
      for (let i = 0; i < plan.length; i++) this.applyToAgent(meta.agents[i]!, meta.clients[i]!, plan[i]!.resources, meta.packed, i * NDIMS);
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
        const left = richLeft.get(rec.idx) ?? this.avail[rec.idx]!;
        if (!left.contains(e.resources)) throw staleOffer(e.agentId, e.resources);
        richLeft.set(rec.idx, left.subtract(e.resources));
      }
      recs.push(rec);
      clients.push(c);
    }
    for (let i = 0; i < plan.length; i++) this.apply(recs[i]!.idx, clients[i]!, plan[i]!.resources, packed, i * NDIMS);
  }

  /** Pushes a changed cluster total to every sorter (shares are over it). */
  private syncTotals(): void {
    if (!this.totalDirty) return;
    this.roleSorter.setTotal(this.clusterP);
    for (const role of this.roles.values()) role.sorter.setTotal(this.clusterP);
    this.totalDirty = false;
  }

  // --------------------------------------------------------------- queries

  agentAvailable(agentId: string): Resources | undefined {
    const rec = this.agentById.get(agentId);
    return rec && this.avail[rec.idx];
  }

  agentAllocated(agentId: string): Resources | undefined {
    const rec = this.agentById.get(agentId);
    if (!rec) return undefined;
    let sum = Resources.EMPTY;
    for (const [, r] of this.allocsOf(rec.idx)) sum = sum.add(r);
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
      let sum = this.avail[rec.idx]!;
      for (const [uid, r] of this.allocsOf(rec.idx)) {
        sum = sum.add(r);
        let q = perClient.get(uid);
        if (!q) perClient.set(uid, (q = new Float64Array(NDIMS)));
        r.addPacked(q);
      }
      if (!sum.equals(rec.total)) throw new BerthError('CONFLICT', `invariant: agent ${rec.id}: available + allocated = ${sum} ≠ total ${rec.total}`);
      p.fill(0);
      this.avail[rec.idx]!.addPacked(p);
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
