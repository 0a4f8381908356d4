/**
 * The fairness policy behind one interface (Mesos `sorter/sorter.hpp`): a
 * Sorter orders its clients (roles in the role sorter, frameworks of one role
 * in a framework sorter) for the allocator. Policies: `drf.ts`, `random.ts`.
 *
 * Clients are named by strings at the edges and by dense indices on the hot
 * path: `add()` returns an index that stays valid until `remove()`; indices of
 * removed clients are reused.
 *
 * Allocations are given in packed form: `NDIMS` scalar dimensions (see
 * `proto/resources.ts` `SCALAR_DIMS`) in thousandths, read from
 * `packed[offset … offset + NDIMS)`. Shares are over the cluster total passed to
 * `setTotal()` (the sum of all agents' totals, as Mesos); a dimension whose
 * total is 0 does not count.
 *
 * `pick()` is the hot-path ordered iteration: it visits active clients in the
 * policy's order until `accept` returns true and returns that client. `accept`
 * may call `allocated()` on the client it accepts (and on other sorters); it
 * must not call `pick()` on the same sorter (nesting a framework sorter's pick
 * inside the role sorter's pick is fine).
 *
 * `snapshot()`/`restore()` bracket a tentative cycle: `allocate()` must be a
 * pure decision, yet shares must rise as offers are planned, so the allocator
 * applies planned allocations for real and restores the snapshot afterwards.
 * It also snapshots the state *after* planning, so committing that plan
 * unchanged is one `restore()` instead of replaying every allocation.
 */
import { BerthError } from '../../../proto/errors.js';
import { NDIMS } from '../../../proto/resources.js';

export interface Sorter {
  /** Adds an inactive client with no allocation; returns its index. Throws CONFLICT if present. */
  add(name: string): number;
  /** Removes a client (and its allocation bookkeeping). Unknown names are ignored. */
  remove(name: string): void;
  /** Index of a client, or -1. */
  indexOf(name: string): number;
  nameOf(index: number): string;
  /** Only active clients are sorted and picked. */
  activate(name: string): void;
  deactivate(name: string): void;
  isActive(name: string): boolean;
  /** Weight of a client (default 1); ordering uses share / weight. May be set before `add`. */
  setWeight(name: string, weight: number): void;
  /** Cluster total per packed dimension, in thousandths. */
  setTotal(total: Float64Array): void;

  /** Adds to a client's allocation; counts one allocation for the `compareDRF` tie-break. */
  allocated(index: number, packed: Float64Array, offset: number): void;
  /** Subtracts from a client's allocation (saturating at 0 per dimension). */
  unallocated(index: number, packed: Float64Array, offset: number): void;
  /** Adds a client's packed allocation into `out[offset…]`. */
  allocation(index: number, out: Float64Array, offset: number): void;
  /** Dominant share (unweighted): max over dimensions of allocated / total. */
  share(index: number): number;

  /** Active clients' names in order (for tests, metrics, /state). */
  sort(): string[];
  /** Visits active clients in order until `accept` returns true; returns that index or -1. */
  pick(accept: (index: number) => boolean): number;
  /**
   * Optional fast path: the client `pick()` would visit first, without
   * visiting it or changing any state, or -1 (none, or the policy cannot say
   * without drawing randomness). The allocator offers to it directly when it
   * accepts, and falls back to `pick()` otherwise — the same outcome.
   */
  first?(): number;

  /** Starts a new cycle's randomness (policies without randomness ignore it). */
  reseed(seed: number): void;
  /** Captures allocations, counts, order and randomness (not the client set). */
  snapshot(): SorterSnapshot;
  /** Returns to a snapshot; throws CONFLICT if clients were added, removed, (de)activated or re-weighted since. */
  restore(s: SorterSnapshot): void;

  /** Number of clients / active clients. */
  readonly size: number;
  readonly activeCount: number;
}

/** Opaque to callers; each policy stores what it needs. */
export interface SorterSnapshot {
  readonly owner: object;
  /** The sorter's shape (client set, activity, weights, total) when taken. */
  readonly shape: number;
}

export type SorterKind = 'drf' | 'random';
export type SorterFactory = () => Sorter;

/** Grows a typed array to at least `n` elements, keeping its contents. */
export function grow<T extends Float64Array | Int32Array | Uint8Array>(a: T, n: number): T {
  if (a.length >= n) return a;
  let cap = Math.max(16, a.length);
  while (cap < n) cap *= 2;
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a);
  return b;
}

/**
 * Client bookkeeping shared by every policy: names ↔ indices, weights,
 * activity, packed allocations, allocation counts and shares.
 *
 * Invariants: `alloc[i*NDIMS + d] >= 0` and integral (thousandths), so shares
 * computed from it are exact functions of the state and restoring a snapshot restores
 * them bit for bit; `count[i]` only grows while `i` lives (it counts
 * allocations made, as Mesos' `Allocation.count`, to rotate among equal shares).
 */
export abstract class ClientTable {
  protected names: (string | undefined)[] = [];
  protected byName = new Map<string, number>();
  protected free: number[] = [];
  protected pendingWeights = new Map<string, number>();
  protected weight = new Float64Array(16);
  protected active = new Uint8Array(16);
  protected alloc = new Float64Array(16 * NDIMS);
  protected count = new Float64Array(16);
  /** share / weight, kept current for every live client. */
  protected key = new Float64Array(16);
  protected invTotal = new Float64Array(NDIMS);
  protected nActive = 0;
  /** Bumped whenever clients, activity, weights or the total change: what a snapshot cannot restore. */
  protected shape = 0;

  get size(): number { return this.byName.size; }
  get activeCount(): number { return this.nActive; }

  add(name: string): number {
    if (this.byName.has(name)) throw new BerthError('CONFLICT', `sorter: client '${name}' already added`);
    const i = this.free.length > 0 ? this.free.pop()! : this.names.length;
    if (i === this.names.length) this.names.push(name); else this.names[i] = name;
    this.byName.set(name, i);
    const n = this.names.length;
    this.weight = grow(this.weight, n);
    this.active = grow(this.active, n);
    this.alloc = grow(this.alloc, n * NDIMS);
    this.count = grow(this.count, n);
    this.key = grow(this.key, n);
    this.weight[i] = this.pendingWeights.get(name) ?? 1;
    this.active[i] = 0;
    this.alloc.fill(0, i * NDIMS, (i + 1) * NDIMS);
    this.count[i] = 0;
    this.key[i] = 0;
    this.shape++;
    this.onAdd(i);
    return i;
  }

  remove(name: string): void {
    const i = this.byName.get(name);
    if (i === undefined) return;
    if (this.active[i]) this.deactivate(name);
    this.shape++;
    this.onRemove(i);
    this.byName.delete(name);
    this.names[i] = undefined;
    this.free.push(i);
  }

  indexOf(name: string): number { return this.byName.get(name) ?? -1; }

  nameOf(index: number): string {
    const n = this.names[index];
    if (n === undefined) throw new BerthError('NOT_FOUND', `sorter: no client at index ${index}`);
    return n;
  }

  isActive(name: string): boolean {
    const i = this.byName.get(name);
    return i !== undefined && this.active[i] === 1;
  }

  activate(name: string): void {
    const i = this.must(name);
    if (this.active[i]) return;
    this.active[i] = 1;
    this.nActive++;
    this.shape++;
    this.onActivate(i);
  }

  deactivate(name: string): void {
    const i = this.must(name);
    if (!this.active[i]) return;
    this.active[i] = 0;
    this.nActive--;
    this.shape++;
    this.onDeactivate(i);
  }

  setWeight(name: string, weight: number): void {
    if (!(weight > 0) || !Number.isFinite(weight)) throw new BerthError('INVALID', `sorter: weight of '${name}' must be a positive finite number, got ${weight}`);
    this.pendingWeights.set(name, weight);
    const i = this.byName.get(name);
    if (i === undefined) return;
    this.weight[i] = weight;
    this.shape++;
    this.updateKey(i);
  }

  setTotal(total: Float64Array): void {
    for (let d = 0; d < NDIMS; d++) this.invTotal[d] = total[d]! > 0 ? 1 / total[d]! : 0;
    for (let i = 0; i < this.names.length; i++) if (this.names[i] !== undefined) this.key[i] = this.computeKey(i);
    this.shape++;
    this.onKeysChanged();
  }

  allocated(index: number, packed: Float64Array, offset: number): void {
    const base = index * NDIMS;
    for (let d = 0; d < NDIMS; d++) this.alloc[base + d] = this.alloc[base + d]! + packed[offset + d]!;
    this.count[index] = this.count[index]! + 1;
    this.updateKey(index);
  }

  unallocated(index: number, packed: Float64Array, offset: number): void {
    const base = index * NDIMS;
    for (let d = 0; d < NDIMS; d++) this.alloc[base + d] = Math.max(0, this.alloc[base + d]! - packed[offset + d]!);
    this.updateKey(index);
  }

  allocation(index: number, out: Float64Array, offset: number): void {
    const base = index * NDIMS;
    for (let d = 0; d < NDIMS; d++) out[offset + d] = out[offset + d]! + this.alloc[base + d]!;
  }

  share(index: number): number {
    const base = index * NDIMS;
    let s = 0;
    for (let d = 0; d < NDIMS; d++) {
      const x = this.alloc[base + d]! * this.invTotal[d]!;
      if (x > s) s = x;
    }
    return s;
  }

  protected computeKey(i: number): number { return this.share(i) / this.weight[i]!; }

  private updateKey(i: number): void {
    const k = this.computeKey(i);
    const old = this.key[i]!;
    this.key[i] = k;
    this.onKeyChanged(i, old);
  }

  protected must(name: string): number {
    const i = this.byName.get(name);
    if (i === undefined) throw new BerthError('NOT_FOUND', `sorter: unknown client '${name}'`);
    return i;
  }

  // Policy hooks.
  protected abstract onAdd(i: number): void;
  protected abstract onRemove(i: number): void;
  protected abstract onActivate(i: number): void;
  protected abstract onDeactivate(i: number): void;
  /**
   * `key[i]` changed from `old` (allocation or weight). Counts never decrease, so
   * a client whose key did not decrease can only move later in the order, and one
   * whose key decreased only earlier.
   */
  protected abstract onKeyChanged(i: number, old: number): void;
  /** Every key may have changed (total changed). */
  protected abstract onKeysChanged(): void;

  /** The table part of a snapshot: what allocated()/unallocated() change. */
  protected saveTable(): TableState {
    const n = this.names.length;
    return {
      owner: this, shape: this.shape, n,
      alloc: this.alloc.slice(0, n * NDIMS), count: this.count.slice(0, n), key: this.key.slice(0, n),
    };
  }

  protected restoreTable(s: SorterSnapshot): TableState {
    const t = s as TableState;
    if (t.owner !== this || t.shape !== this.shape || t.n !== this.names.length) {
      throw new BerthError('CONFLICT', 'sorter: snapshot does not match the current clients');
    }
    this.alloc.set(t.alloc);
    this.count.set(t.count);
    this.key.set(t.key);
    return t;
  }
}

export interface TableState extends SorterSnapshot {
  readonly n: number;
  readonly alloc: Float64Array;
  readonly count: Float64Array;
  readonly key: Float64Array;
}
