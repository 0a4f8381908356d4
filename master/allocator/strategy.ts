/**
 * Placement strategies: the order in which one cycle visits agents. Earlier
 * agents go to the frameworks with the lowest shares, so the order decides
 * where work lands.
 *
 *  - `spread` (default, Mesos-like): least-allocated agents first, ties in a
 *    seeded random order (Mesos shuffles agents every cycle, which spreads
 *    load and avoids always favouring the same agents).
 *  - `pack`: most-allocated agents first (best-fit), ties by the order given
 *    (agent index), so load concentrates and whole agents stay free.
 *
 * A strategy is one small function, so more (e.g. attribute-aware) plug in
 * next to these. It must not allocate per agent: buckets live in reusable
 * typed arrays and are counting-sorted.
 */
import { NDIMS } from '../../proto/resources.js';
import type { Rng } from './rng.js';

/** Packed per-agent state, `NDIMS` values per agent index, in thousandths. */
export interface AgentView {
  readonly total: Float64Array;
  readonly available: Float64Array;
}

/** Reorders `agents[0 … n)` (agent indices) in place. */
export type AgentOrder = (agents: Int32Array, n: number, view: AgentView, rng: Rng) => void;

const LEVELS = 1024; // utilisation buckets; finer distinctions do not matter for placement

const counts = new Int32Array(LEVELS + 1);
let copy = new Int32Array(0);
/** Bucket per agent index (reused). */
let keyOf = new Uint16Array(0);

/** Dominant utilisation of an agent, bucketed to [0, LEVELS). */
function utilisation(view: AgentView, a: number): number {
  let u = 0;
  const base = a * NDIMS;
  for (let d = 0; d < NDIMS; d++) {
    const t = view.total[base + d]!;
    if (t > 0) {
      const x = (t - view.available[base + d]!) / t;
      if (x > u) u = x;
    }
  }
  return Math.min(LEVELS - 1, Math.floor(u * LEVELS));
}

/**
 * Sorts `agents` by `bucket(a)` ascending, ties by current position (stable):
 * a counting sort over the LEVELS buckets, O(n + LEVELS) with no comparison
 * sort (a Float64 key sort cost ~10 ms at 100k agents). `bucket` is called
 * once per agent, in the order given — callers pass agents in index order
 * where they can, so the per-agent state is read sequentially.
 */
function sortByBucket(agents: Int32Array, n: number, keyOf: Uint16Array): void {
  if (copy.length < n) copy = new Int32Array(n);
  counts.fill(0);
  for (let i = 0; i < n; i++) counts[keyOf[agents[i]!]! + 1]!++;
  if (n === 0 || counts[keyOf[agents[0]!]! + 1] === n) return; // one bucket: already in order
  for (let b = 1; b <= LEVELS; b++) counts[b]! += counts[b - 1]!;
  copy.set(agents.subarray(0, n));
  // counts[b] is now the first slot of bucket b; filling in position order keeps ties stable.
  for (let i = 0; i < n; i++) { const a = copy[i]!; agents[counts[keyOf[a]!]!++] = a; }
}

/** Fills `keyOf[a]` for `agents[0 … n)` (read in the given order) with `f(a)`. */
function keys(agents: Int32Array, n: number, f: (a: number) => number): Uint16Array {
  let max = 0;
  for (let i = 0; i < n; i++) if (agents[i]! > max) max = agents[i]!;
  if (keyOf.length <= max) keyOf = new Uint16Array(Math.max(max + 1, keyOf.length * 2));
  for (let i = 0; i < n; i++) { const a = agents[i]!; keyOf[a] = f(a); }
  return keyOf;
}

export const spread: AgentOrder = (agents, n, view, rng) => {
  // Utilisation first, while `agents` is still in the caller's (index) order.
  const k = keys(agents, n, (a) => utilisation(view, a));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const x = agents[i]!; agents[i] = agents[j]!; agents[j] = x;
  }
  sortByBucket(agents, n, k);
};

export const pack: AgentOrder = (agents, n, view) => {
  sortByBucket(agents, n, keys(agents, n, (a) => LEVELS - 1 - utilisation(view, a)));
};

export const STRATEGIES: Record<'spread' | 'pack', AgentOrder> = { spread, pack };
