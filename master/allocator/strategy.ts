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
 * next to these. It must not allocate per agent: keys are packed into one
 * reusable Float64Array and sorted natively.
 */
import { BerthError } from '../../proto/errors.js';
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
const POS_BITS = 2 ** 21; // tie-break position field; bounds agents per cycle

let keys = new Float64Array(0);
let copy = new Int32Array(0);

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

/** Sorts `agents` by `bucket(a)` ascending, ties by current position (stable). */
function sortByBucket(agents: Int32Array, n: number, bucket: (a: number) => number): void {
  if (n > POS_BITS) throw new BerthError('TOO_LARGE', `strategy: at most ${POS_BITS} agents per cycle`);
  if (keys.length < n) { keys = new Float64Array(n); copy = new Int32Array(n); }
  let same = true;
  let first = -1;
  for (let i = 0; i < n; i++) {
    const b = bucket(agents[i]!);
    if (i === 0) first = b; else if (b !== first) same = false;
    keys[i] = b * POS_BITS + i;
  }
  if (same) return; // already in order
  copy.set(agents.subarray(0, n));
  const k = keys.subarray(0, n);
  k.sort();
  for (let i = 0; i < n; i++) agents[i] = copy[k[i]! % POS_BITS]!;
}

export const spread: AgentOrder = (agents, n, view, rng) => {
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const x = agents[i]!; agents[i] = agents[j]!; agents[j] = x;
  }
  sortByBucket(agents, n, (a) => utilisation(view, a));
};

export const pack: AgentOrder = (agents, n, view) => {
  sortByBucket(agents, n, (a) => LEVELS - 1 - utilisation(view, a));
};

export const STRATEGIES: Record<'spread' | 'pack', AgentOrder> = { spread, pack };
