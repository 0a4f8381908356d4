/**
 * Random fairness (Mesos' RandomSorter): clients are visited in a weighted
 * random order, drawn afresh for every `pick()` / `sort()` from a seeded PRNG.
 * Shares are still tracked (for metrics and `share()`), but do not order.
 *
 * Invariants:
 *  - `list[0 … nActive)` holds exactly the active clients and `at[c]` is c's
 *    slot (-1 when inactive); `pick()` permutes the list in place (a lazy
 *    Fisher–Yates), which is why the list is part of the snapshot: the order
 *    drawn is a function of (seed, list), so a restored cycle replays
 *    identically.
 *  - Nothing here logs; the seed is chosen (and logged) by the master.
 */
import { BerthError } from '../../../proto/errors.js';
import { Rng } from '../rng.js';
import { ClientTable, grow, type Sorter, type SorterSnapshot, type TableState } from './sorter.js';

interface RandomState extends TableState {
  readonly list: Int32Array;
  readonly at: Int32Array;
  readonly rng: number;
}

export class RandomSorter extends ClientTable implements Sorter {
  private list = new Int32Array(16);
  private at = new Int32Array(16).fill(-1);
  private rng: Rng;
  private picking = false;

  constructor(seed = 0) {
    super();
    this.rng = new Rng(seed);
  }

  protected onAdd(i: number): void {
    const n = this.names.length;
    this.list = grow(this.list, n);
    if (this.at.length < n) {
      const old = this.at.length;
      this.at = grow(this.at, n);
      this.at.fill(-1, old);
    }
    this.at[i] = -1;
  }
  protected onRemove(_i: number): void { /* deactivate() already unlisted it */ }

  protected onActivate(i: number): void {
    // nActive was already incremented by the table.
    const slot = this.nActive - 1;
    this.list[slot] = i;
    this.at[i] = slot;
  }

  protected onDeactivate(i: number): void {
    // nActive was already decremented: the last listed client sits at slot nActive.
    const slot = this.at[i]!;
    const last = this.nActive;
    const m = this.list[last]!;
    this.list[slot] = m;
    this.at[m] = slot;
    this.at[i] = -1;
  }

  protected onKeyChanged(_i: number, _old: number): void { /* order does not depend on shares */ }
  protected onKeysChanged(): void { /* idem */ }

  private swap(a: number, b: number): void {
    const x = this.list[a]!, y = this.list[b]!;
    this.list[a] = y; this.at[y] = a;
    this.list[b] = x; this.at[x] = b;
  }

  /** Chooses the client for slot `i` among slots [i, n): uniform, or proportional to weight. */
  private draw(i: number, n: number, weighted: boolean): void {
    let j: number;
    if (!weighted) {
      j = i + this.rng.below(n - i);
    } else {
      let sum = 0;
      for (let s = i; s < n; s++) sum += this.weight[this.list[s]!]!;
      let r = this.rng.next() * sum;
      j = n - 1;
      for (let s = i; s < n; s++) {
        r -= this.weight[this.list[s]!]!;
        if (r < 0) { j = s; break; }
      }
    }
    this.swap(i, j);
  }

  private weightedShape = -1;
  private weightedCache = false;

  /** Whether active clients' weights differ (then draws are weighted, O(n) each). Cached per shape. */
  private weighted(): boolean {
    if (this.weightedShape === this.shape) return this.weightedCache;
    this.weightedShape = this.shape;
    this.weightedCache = this.weightsDiffer();
    return this.weightedCache;
  }

  private weightsDiffer(): boolean {
    const n = this.nActive;
    if (n === 0) return false;
    const w0 = this.weight[this.list[0]!]!;
    for (let s = 1; s < n; s++) if (this.weight[this.list[s]!]! !== w0) return true;
    return false;
  }

  sort(): string[] {
    const n = this.nActive;
    const weighted = this.weighted();
    for (let i = 0; i < n; i++) this.draw(i, n, weighted);
    return Array.from(this.list.subarray(0, n), (c) => this.names[c]!);
  }

  pick(accept: (index: number) => boolean): number {
    if (this.picking) throw new BerthError('CONFLICT', 'RandomSorter.pick is not reentrant');
    this.picking = true;
    try {
      const n = this.nActive;
      const weighted = this.weighted();
      for (let i = 0; i < n; i++) {
        this.draw(i, n, weighted);
        const c = this.list[i]!;
        if (accept(c)) return c;
      }
      return -1;
    } finally {
      this.picking = false;
    }
  }

  reseed(seed: number): void { this.rng.state = seed >>> 0; }

  snapshot(): SorterSnapshot {
    const n = this.names.length;
    const st: RandomState = { ...this.saveTable(), list: this.list.slice(0, n), at: this.at.slice(0, n), rng: this.rng.state };
    return st;
  }

  restore(s: SorterSnapshot): void {
    const st = this.restoreTable(s) as RandomState;
    this.list.set(st.list);
    this.at.set(st.at);
    this.rng.state = st.rng;
  }
}
