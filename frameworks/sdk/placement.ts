/**
 * The placement pipeline: which offers can hold a task, which of them is best,
 * and — when none can — why not, counted.
 *
 * Shape (Nomad's feasible/rank stack, Kubernetes' Filter/Score):
 *
 *   candidates (one per offer, with what is left of it)
 *     → feasibility checks, cheapest first   (resources, ports, constraints…)
 *     → scorers, weighted sum, higher wins  (none = first fit in offer order)
 *     → a Placement, or counted Reasons
 *
 * Both bundled frameworks and the bin-packing laboratory place through this one
 * pipeline; a strategy is a Scorer, a rule is a FeasibilityCheck, each a small
 * value that can live in a file of its own.
 *
 * Invariants:
 *  - A candidate's free list only shrinks while a Placer lives: a task placed on
 *    it takes its resources at once, so two placements never share a resource.
 *  - Within one `place()` call for `count` identical tasks, an offer that lacked
 *    resources for one of them lacks them for every later one (free lists only
 *    shrink), so it is not checked again: placing n tasks over m offers costs
 *    O(n + m) checks without scorers and O(n·m') with them (m' = offers still
 *    able to hold a task).
 *  - Ties between equal scores go to the earlier offer (the order the master sent
 *    them), so placement is deterministic for a given offer order.
 *  - Reasons count offers, not checks: an offer is counted once under every check
 *    it failed (as Kubernetes lists every insufficient resource), so "37 offers
 *    lacked mem" reads literally.
 */
import { BerthError } from '../../proto/errors.js';
import type { Attribute, Offer } from '../../proto/types.js';
import { FreeList, type Picked, type ResourceDemand } from './tasks.js';

// ---------------------------------------------------------------------------
// Constraints (Marathon's `[field, operator, value]`).

export const CONSTRAINT_OPERATORS = ['UNIQUE', 'CLUSTER', 'GROUP_BY', 'LIKE', 'UNLIKE', 'MAX_PER', 'IS'] as const;
export type ConstraintOperator = (typeof CONSTRAINT_OPERATORS)[number];
/** `['hostname', 'UNIQUE']`, `['rack', 'GROUP_BY', '3']`, `['zone', 'LIKE', 'us-.*']`… */
export type Constraint = readonly [field: string, operator: ConstraintOperator, value?: string];

const MAX_CONSTRAINTS = 64;
const MAX_PATTERN = 1024;

/**
 * Checks one constraint as written by a user (JSON), returning it typed or throwing
 * INVALID with the path at fault (`constraints[2][1]: unknown operator 'UNIQ'…`).
 */
export function parseConstraint(raw: unknown, path = 'constraint'): Constraint {
  if (!Array.isArray(raw) || raw.length < 2 || raw.length > 3) {
    throw new BerthError('INVALID', `${path}: a constraint is [field, operator] or [field, operator, value]`);
  }
  const [field, op, value] = raw as unknown[];
  if (typeof field !== 'string' || field === '' || field.length > 256) throw new BerthError('INVALID', `${path}[0]: field must be a non-empty string of at most 256 characters`);
  if (typeof op !== 'string' || !(CONSTRAINT_OPERATORS as readonly string[]).includes(op)) {
    throw new BerthError('INVALID', `${path}[1]: unknown operator '${String(op)}' (one of ${CONSTRAINT_OPERATORS.join(', ')})`);
  }
  if (value !== undefined && typeof value !== 'string') throw new BerthError('INVALID', `${path}[2]: value must be a string`);
  const operator = op as ConstraintOperator;
  switch (operator) {
    case 'UNIQUE': break;
    case 'CLUSTER': break;
    case 'GROUP_BY':
      if (value !== undefined && !/^[1-9][0-9]{0,5}$/.test(value)) throw new BerthError('INVALID', `${path}[2]: GROUP_BY takes a positive whole number of groups`);
      break;
    case 'MAX_PER':
      if (value === undefined || !/^[1-9][0-9]{0,8}$/.test(value)) throw new BerthError('INVALID', `${path}[2]: MAX_PER needs a positive whole number`);
      break;
    case 'LIKE': case 'UNLIKE':
      if (value === undefined) throw new BerthError('INVALID', `${path}[2]: ${operator} needs a regular expression`);
      if (value.length > MAX_PATTERN) throw new BerthError('INVALID', `${path}[2]: pattern longer than ${MAX_PATTERN} characters`);
      try { new RegExp(value); } catch (e) { throw new BerthError('INVALID', `${path}[2]: invalid regular expression: ${(e as Error).message}`); }
      break;
    case 'IS':
      if (value === undefined) throw new BerthError('INVALID', `${path}[2]: IS needs a value`);
      break;
    default: assertNever(operator);
  }
  return value === undefined ? [field, operator] : [field, operator, value];
}

/** Checks a list of constraints (at most 64), naming `path[i]` on the first bad one. */
export function parseConstraints(raw: unknown, path = 'constraints'): Constraint[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new BerthError('INVALID', `${path}: must be an array of constraints`);
  if (raw.length > MAX_CONSTRAINTS) throw new BerthError('INVALID', `${path}: at most ${MAX_CONSTRAINTS} constraints`);
  return raw.map((c, i) => parseConstraint(c, `${path}[${i}]`));
}

/** `hostname:UNIQUE`, `rack:GROUP_BY:3` — the form reasons and logs use. */
export function constraintText(c: Constraint): string {
  return c[2] === undefined ? `${c[0]}:${c[1]}` : `${c[0]}:${c[1]}:${c[2]}`;
}

function assertNever(x: never): never { throw new Error(`unexpected ${String(x)}`); }

// ---------------------------------------------------------------------------
// Agent facts and group counts.

/** What constraints look at: an agent's hostname and attributes as text. */
export interface AgentFacts {
  agentId: string;
  hostname: string;
  /** Attribute values in text form (TEXT as is, SCALAR as a number, RANGES `[a-b,c-d]`, SET `{x,y}`). */
  attributes: Readonly<Record<string, string>>;
}

/** Attribute text as Mesos prints it. */
export function attributeText(a: Attribute): string {
  switch (a.type) {
    case 'TEXT': return a.text?.value ?? '';
    case 'SCALAR': return String(a.scalar?.value ?? 0);
    case 'RANGES': return `[${(a.ranges?.range ?? []).map((r) => `${r.begin}-${r.end}`).join(',')}]`;
    case 'SET': return `{${(a.set?.item ?? []).join(',')}}`;
    default: return '';
  }
}

/** The facts of the agent an offer comes from. */
export function agentFacts(offer: Offer): AgentFacts {
  const attributes: Record<string, string> = {};
  for (const a of offer.attributes ?? []) attributes[a.name] = attributeText(a);
  return { agentId: offer.agent_id.value, hostname: offer.hostname, attributes };
}

/** A field's value on an agent: `hostname` (or Marathon's `@hostname`) or an attribute; undefined if absent. */
export function fieldValue(facts: AgentFacts, field: string): string | undefined {
  if (field === 'hostname' || field === '@hostname') return facts.hostname;
  if (field === '@agentid' || field === '@agentId') return facts.agentId;
  const name = field.startsWith('@') ? field.slice(1) : field;
  return Object.prototype.hasOwnProperty.call(facts.attributes, name) ? facts.attributes[name] : undefined;
}

/**
 * How many instances of one group (an app, a job) run where: per constrained field,
 * a count per value. The framework keeps one per group, adds an instance when it
 * launches (or learns of) one and removes it when the instance ends; placements made
 * through a Placer are added automatically.
 */
export class InstanceCounts {
  private readonly byField = new Map<string, Map<string, number>>();
  private readonly agents: AgentFacts[] = [];

  /** `fields`: the constrained fields to count (others are ignored). */
  constructor(private readonly fields: readonly string[]) {
    for (const f of fields) this.byField.set(f, new Map());
  }

  static for(constraints: readonly Constraint[]): InstanceCounts {
    return new InstanceCounts([...new Set(constraints.map((c) => c[0]))]);
  }

  add(facts: AgentFacts): void { this.bump(facts, 1); }
  remove(facts: AgentFacts): void { this.bump(facts, -1); }

  /** Instances on agents whose `field` is `value`. */
  count(field: string, value: string): number { return this.byField.get(field)?.get(value) ?? 0; }

  /** Values of `field` that hold at least one instance, with their counts. */
  values(field: string): ReadonlyMap<string, number> { return this.byField.get(field) ?? new Map(); }

  /** Total instances counted. */
  get size(): number { return this.agents.length; }

  private bump(facts: AgentFacts, by: 1 | -1): void {
    if (by === 1) this.agents.push(facts);
    else {
      const i = this.agents.findIndex((a) => a.agentId === facts.agentId);
      if (i < 0) return;
      this.agents.splice(i, 1);
    }
    for (const f of this.fields) {
      const v = fieldValue(facts, f);
      if (v === undefined) continue;
      const m = this.byField.get(f)!;
      const n = (m.get(v) ?? 0) + by;
      if (n <= 0) m.delete(v); else m.set(v, n);
    }
  }
}

// ---------------------------------------------------------------------------
// The pipeline's values.

/** One offer while tasks are being carved out of it. */
export interface Candidate {
  readonly offer: Offer;
  readonly facts: AgentFacts;
  /** What is left of the offer. */
  readonly free: FreeList;
  /** Tasks placed on it so far by this Placer. */
  placed: number;
}

/** What to place: one task's demand, its group's constraints and instance counts. */
export interface PlacementRequest {
  demand: ResourceDemand;
  constraints?: readonly Constraint[];
  /** Instances of the same group already running (or placed): needed by UNIQUE, CLUSTER, GROUP_BY, MAX_PER. */
  group?: InstanceCounts;
}

/**
 * A rule an offer must pass. Returns undefined when it passes, else a short stable
 * reason (`insufficient mem`, `constraint hostname:UNIQUE`) — or several.
 */
export interface FeasibilityCheck {
  readonly name: string;
  check(c: Candidate, req: PlacementRequest, ctx: CheckContext): string | readonly string[] | undefined;
}

/** What a check may know beyond one offer. */
export interface CheckContext {
  /** The values `field` takes across all offers of the batch (GROUP_BY learns the groups from offers, as Marathon). */
  offeredValues(field: string): ReadonlySet<string>;
}

/**
 * A preference among feasible offers: higher is better. Scores are combined as a
 * weighted sum; with no scorers the first feasible offer (offer order) wins.
 */
export interface Scorer {
  readonly name: string;
  readonly weight?: number;
  score(c: Candidate, req: PlacementRequest, ctx: ScoreContext): number;
}

/** What a scorer may know beyond the offer: an agent's full capacity, when the caller knows it. */
export interface ScoreContext {
  /** Thousandths of each scalar resource the whole agent has; undefined when unknown (then the offer's own size is used). */
  capacity(agentId: string): Readonly<Record<string, number>> | undefined;
}

export interface Placement {
  offer: Offer;
  facts: AgentFacts;
  picked: Picked;
}

/** Why nothing fitted: reason → number of offers that failed it. */
export type Reasons = Record<string, number>;

export interface PlacementResult {
  placements: Placement[];
  /** How many of the requested tasks found no offer. */
  unplaced: number;
  /** Reasons counted over the offers examined for the first task that found none (empty when all were placed). */
  reasons: Reasons;
}

/** `insufficient mem on 37 offers; constraint hostname:UNIQUE on 3` — most frequent first. */
export function describeReasons(reasons: Reasons): string {
  const parts = Object.entries(reasons).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (parts.length === 0) return 'no offers';
  return parts.map(([r, n]) => `${r} on ${n} offer${n === 1 ? '' : 's'}`).join('; ');
}

// ---------------------------------------------------------------------------
// Built-in feasibility checks.

const SCALAR_NAMES = ['cpus', 'mem', 'disk', 'gpus'] as const;

/** Enough cpus, mem, disk and gpus. */
export const resourcesCheck: FeasibilityCheck = {
  name: 'resources',
  check(c, req) {
    // The common answer (it fits) allocates nothing; reasons are built only on failure.
    if (c.free.fitsScalars(req.demand)) return undefined;
    const lacking = c.free.lacking({ ...req.demand, ports: 0 });
    return lacking.length ? lacking.map((n) => `insufficient ${n}`) : undefined;
  },
};

/** Enough free host ports. */
export const portsCheck: FeasibilityCheck = {
  name: 'ports',
  check(c, req) {
    const n = req.demand.ports ?? 0;
    return n > 0 && c.free.portCount() < n ? 'insufficient ports' : undefined;
  },
};

const regexCache = new Map<string, RegExp>();
function fullMatch(pattern: string, text: string): boolean {
  let re = regexCache.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${pattern})$`);
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(pattern, re);
  }
  return re.test(text);
}

/** Whether one constraint admits one more instance of the group on this agent (Marathon's semantics). */
export function meetsConstraint(c: Constraint, facts: AgentFacts, group: InstanceCounts | undefined, offered: ReadonlySet<string> = new Set()): boolean {
  const [field, op, value] = c;
  const v = fieldValue(facts, field);
  // An agent without the field: only UNLIKE can be satisfied (it is not like anything).
  if (v === undefined) return op === 'UNLIKE';
  const count = (x: string) => group?.count(field, x) ?? 0;
  switch (op) {
    case 'UNIQUE': return count(v) === 0;
    case 'CLUSTER': {
      if (value !== undefined && value !== '') return v === value;
      const held = group?.values(field);
      // No instance yet: any value starts the cluster; then all must share it.
      return !held || held.size === 0 || held.has(v);
    }
    case 'GROUP_BY': {
      // Spread evenly over every value known from instances and offers: admit an
      // instance where the count is at the minimum. With a group count n, values not
      // yet known may exist, so while fewer than n are known the minimum is 0.
      const held = group?.values(field) ?? new Map<string, number>();
      const known = new Set([...held.keys(), ...offered, v]);
      let min = Infinity;
      for (const k of known) min = Math.min(min, held.get(k) ?? 0);
      if (value && known.size < Number(value)) min = 0;
      return count(v) <= min;
    }
    case 'LIKE': return fullMatch(value!, v);
    case 'UNLIKE': return !fullMatch(value!, v);
    case 'MAX_PER': return count(v) < Number(value);
    case 'IS': return v === value;
    default: return assertNever(op);
  }
}

/** Every constraint of the request. */
export const constraintsCheck: FeasibilityCheck = {
  name: 'constraints',
  check(c, req, ctx) {
    if (!req.constraints?.length) return undefined;
    const out: string[] = [];
    for (const con of req.constraints) {
      const offered = con[1] === 'GROUP_BY' ? ctx.offeredValues(con[0]) : undefined;
      if (!meetsConstraint(con, c.facts, req.group, offered)) out.push(`constraint ${constraintText(con)}`);
    }
    return out.length ? out : undefined;
  },
};

/** The default checks, cheapest first. */
export const DEFAULT_CHECKS: readonly FeasibilityCheck[] = [resourcesCheck, portsCheck, constraintsCheck];

// ---------------------------------------------------------------------------
// Built-in scorers (bin-packing strategies).

function sizeOf(c: Candidate, ctx: ScoreContext, name: string): number {
  return ctx.capacity(c.facts.agentId)?.[name] ?? 0;
}

/** Fractions of each asked-for dimension left on the agent after placing the task (0 = full). */
function leftoverFractions(c: Candidate, req: PlacementRequest, ctx: ScoreContext): number[] {
  const out: number[] = [];
  for (const n of SCALAR_NAMES) {
    const need = Math.round((req.demand[n] ?? 0) * 1000);
    const free = c.free.amount(n);
    const size = sizeOf(c, ctx, n) || free;
    if (size <= 0 || (need === 0 && n === 'gpus')) continue;
    out.push((free - need) / size);
  }
  return out;
}

/** Best fit: the agent the task leaves fullest (smallest sum of leftover fractions). Packs. */
export const bestFit: Scorer = {
  name: 'best-fit',
  score(c, req, ctx) { return -leftoverFractions(c, req, ctx).reduce((a, b) => a + b, 0); },
};

/** Worst fit: the agent with the most left after the task. Spreads load. */
export const worstFit: Scorer = {
  name: 'worst-fit',
  score(c, req, ctx) { return leftoverFractions(c, req, ctx).reduce((a, b) => a + b, 0); },
};

/**
 * Tetris' alignment score: the dot product of the task's demand and the agent's free
 * resources, each normalised by the agent's size — large when the task asks for what
 * the agent has plenty of, so complementary tasks fill a machine in every dimension.
 */
export const alignment: Scorer = {
  name: 'alignment',
  score(c, req, ctx) {
    let dot = 0;
    for (const n of SCALAR_NAMES) {
      const need = Math.round((req.demand[n] ?? 0) * 1000);
      if (need === 0) continue;
      const free = c.free.amount(n);
      const size = sizeOf(c, ctx, n) || free;
      if (size <= 0) continue;
      dot += (need / size) * (free / size);
    }
    return dot;
  },
};

/** Fewest instances of the same group on the agent's hostname first (soft spread). */
export const spreadGroup: Scorer = {
  name: 'spread-group',
  score(c, req) { return -(req.group?.count('hostname', c.facts.hostname) ?? 0) - c.placed * 1e-3; },
};

export const SCORERS: Readonly<Record<string, Scorer>> = {
  'best-fit': bestFit, 'worst-fit': worstFit, alignment, 'spread-group': spreadGroup,
};

// ---------------------------------------------------------------------------
// The Placer.

export interface PlacerOptions {
  checks?: readonly FeasibilityCheck[];
  scorers?: readonly Scorer[];
  /** Agent capacities for scorers; default: unknown (the offer's size stands in). */
  capacity?: ScoreContext['capacity'];
}

const NO_CAPACITY: ScoreContext = { capacity: () => undefined };

/** Whether demand `a` needs at least as much as `b` of every scalar and of ports. */
function covers(a: ResourceDemand, b: ResourceDemand): boolean {
  return (a.cpus ?? 0) >= (b.cpus ?? 0) && (a.mem ?? 0) >= (b.mem ?? 0) && (a.disk ?? 0) >= (b.disk ?? 0)
    && (a.gpus ?? 0) >= (b.gpus ?? 0) && (a.ports ?? 0) >= (b.ports ?? 0);
}

/**
 * Places tasks into one batch of offers. Keeps what is left of each offer, so many
 * tasks of many groups can be placed into the same batch; `launches()` then says
 * which offers to ACCEPT with which placements and `unused()` which to DECLINE.
 */
export class Placer {
  private readonly candidates: Candidate[];
  private readonly checks: readonly FeasibilityCheck[];
  private readonly scorers: readonly Scorer[];
  private readonly ctx: ScoreContext;
  private readonly placed = new Map<Candidate, Placement[]>();
  /** First fit: where the last request's scan stopped, and its demand (see `place`). */
  private ff: { demand: ResourceDemand; cursor: number } | undefined;
  private readonly offered = new Map<string, Set<string>>();
  private readonly checkCtx: CheckContext = {
    offeredValues: (field) => {
      let vals = this.offered.get(field);
      if (!vals) {
        vals = new Set();
        for (const c of this.candidates) { const v = fieldValue(c.facts, field); if (v !== undefined) vals.add(v); }
        this.offered.set(field, vals);
      }
      return vals;
    },
  };

  constructor(offers: readonly Offer[], opts: PlacerOptions = {}) {
    this.candidates = offers.map((offer) => ({ offer, facts: agentFacts(offer), free: new FreeList(offer.resources ?? []), placed: 0 }));
    this.checks = opts.checks ?? DEFAULT_CHECKS;
    this.scorers = opts.scorers ?? [];
    this.ctx = opts.capacity ? { capacity: opts.capacity } : NO_CAPACITY;
  }

  /**
   * Places up to `count` identical tasks of one request, one at a time (each sees
   * the instances placed before it, so UNIQUE and GROUP_BY hold within a batch).
   * Placements are added to `req.group`.
   */
  place(req: PlacementRequest, count = 1): PlacementResult {
    const placements: Placement[] = [];
    // Offers that lacked resources for this request, with what they failed: they fail every later task too.
    const exhausted = new Map<Candidate, string[]>();
    const firstFit = this.scorers.length === 0;
    // First fit: every offer before the cursor is exhausted (lacks resources for this demand).
    // Offers only shrink within a Placer, so offers exhausted for an earlier demand are
    // exhausted for any demand at least as large in every dimension: start past them
    // (a round placing many jobs of one shape would otherwise rescan them for each job).
    const start = firstFit && this.ff && covers(req.demand, this.ff.demand) ? this.ff.cursor : 0;
    let cursor = start;
    for (let k = 0; k < count; k++) {
      let best: Candidate | undefined;
      let bestScore = -Infinity;
      let failedNow: Map<Candidate, string[]> | undefined; // made only when an offer fails for a non-resource reason
      for (let i = firstFit ? cursor : 0; i < this.candidates.length; i++) {
        const c = this.candidates[i]!;
        if (exhausted.has(c)) { if (firstFit && i === cursor) cursor++; continue; }
        const failed = this.failures(c, req);
        if (failed) {
          if (failed.some((r) => r.startsWith('insufficient'))) {
            exhausted.set(c, failed);
            if (firstFit && i === cursor) cursor++;
          } else (failedNow ??= new Map()).set(c, failed);
          continue;
        }
        if (firstFit) { best = c; break; }
        const s = this.score(c, req);
        if (s > bestScore) { bestScore = s; best = c; }
      }
      if (!best) {
        if (firstFit) this.ff = { demand: { ...req.demand }, cursor }; // a copy: callers may reuse their demand object
        const reasons: Reasons = {};
        for (let i = 0; i < this.candidates.length; i++) {
          const c = this.candidates[i]!;
          const failed = exhausted.get(c) ?? failedNow?.get(c) ?? (i < start ? this.failures(c, req) : undefined) ?? [];
          for (const r of failed) reasons[r] = (reasons[r] ?? 0) + 1;
        }
        return { placements, unplaced: count - k, reasons };
      }
      const picked = best.free.take(req.demand)!;
      best.placed++;
      const p: Placement = { offer: best.offer, facts: best.facts, picked };
      placements.push(p);
      let list = this.placed.get(best);
      if (!list) { list = []; this.placed.set(best, list); }
      list.push(p);
      req.group?.add(best.facts);
    }
    if (firstFit) this.ff = { demand: { ...req.demand }, cursor }; // a copy: callers may reuse their demand object
    return { placements, unplaced: 0, reasons: {} };
  }

  /** Offers with at least one placement, with their placements, in offer order. */
  launches(): { offer: Offer; placements: Placement[] }[] {
    return this.candidates.filter((c) => this.placed.has(c)).map((c) => ({ offer: c.offer, placements: this.placed.get(c)! }));
  }

  /** Offers nothing was placed on. */
  unused(): Offer[] { return this.candidates.filter((c) => !this.placed.has(c)).map((c) => c.offer); }

  /** Number of offers. */
  get size(): number { return this.candidates.length; }

  private failures(c: Candidate, req: PlacementRequest): string[] | undefined {
    let out: string[] | undefined;
    for (const chk of this.checks) {
      const r = chk.check(c, req, this.checkCtx);
      if (r === undefined) continue;
      out ??= [];
      if (typeof r === 'string') out.push(r); else out.push(...r);
    }
    return out;
  }

  private score(c: Candidate, req: PlacementRequest): number {
    let s = 0;
    for (const sc of this.scorers) s += (sc.weight ?? 1) * sc.score(c, req, this.ctx);
    return s;
  }
}

