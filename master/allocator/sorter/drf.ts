/**
 * Dominant Resource Fairness (Ghodsi et al., NSDI'11), as Mesos' DRFSorter:
 * clients are ordered by weighted dominant share (share / weight), then by the
 * number of allocations made to them, then by name (`compareDRF`), so the
 * order is a total order and fully deterministic.
 *
 * Data structure: an indexed binary min-heap over the active clients.
 * Invariants:
 *  - `heap[0 … heapSize)` holds exactly the active clients, each once, and
 *    `pos[c]` is c's slot in it (-1 when not in the heap);
 *  - every parent is `before()` its children under the current keys — every
 *    mutation of a key (allocated/unallocated/weight/total) re-sifts the
 *    client, so the minimum is always `heap[0]`.
 * Allocating to the first client is therefore O(log n), and `pick()` that
 * skips k ineligible clients costs O((k + 1) log n) — Mesos re-sorts every
 * client (O(n log n)) whenever the sort is dirty.
 */
import { BerthError } from '../../../proto/errors.js';
import { ClientTable, grow, type Sorter, type SorterSnapshot, type TableState } from './sorter.js';

interface DRFState extends TableState {
  readonly heap: Int32Array;
  readonly pos: Int32Array;
  readonly heapSize: number;
}

export class DRFSorter extends ClientTable implements Sorter {
  private heap = new Int32Array(16);
  private pos = new Int32Array(16).fill(-1);
  private heapSize = 0;
  private popped = new Int32Array(16);
  private picking = false;
  /**
   * Name order as numbers: `rank[i] < rank[j]` ⇔ `names[i] < names[j]`, and
   * `byRank` lists live clients by name. The last compareDRF tie-break reads
   * ranks instead of comparing strings (ties are common: equal agents give
   * equal shares). Kept on add/remove (O(clients), rare); relative order of
   * live clients never changes, so the heap stays valid.
   */
  private rank = new Float64Array(16);
  private readonly byRank: number[] = [];

  /** compareDRF: true when client a sorts strictly before b. */
  private before(a: number, b: number): boolean {
    const ka = this.key[a]!, kb = this.key[b]!;
    if (ka !== kb) return ka < kb;
    const ca = this.count[a]!, cb = this.count[b]!;
    if (ca !== cb) return ca < cb;
    return this.rank[a]! < this.rank[b]!;
  }

  private renumber(from: number): void {
    for (let r = from; r < this.byRank.length; r++) this.rank[this.byRank[r]!] = r;
  }

  private siftUp(slot: number): void {
    const h = this.heap;
    const c = h[slot]!;
    while (slot > 0) {
      const parent = (slot - 1) >> 1;
      const p = h[parent]!;
      if (!this.before(c, p)) break;
      h[slot] = p;
      this.pos[p] = slot;
      slot = parent;
    }
    h[slot] = c;
    this.pos[c] = slot;
  }

  private siftDown(slot: number): void {
    const h = this.heap;
    const n = this.heapSize;
    const c = h[slot]!;
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(h[child + 1]!, h[child]!)) child++;
      const m = h[child]!;
      if (!this.before(m, c)) break;
      h[slot] = m;
      this.pos[m] = slot;
      slot = child;
    }
    h[slot] = c;
    this.pos[c] = slot;
  }

  private push(c: number): void {
    const slot = this.heapSize++;
    this.heap[slot] = c;
    this.pos[c] = slot;
    this.siftUp(slot);
  }

  private removeAt(slot: number): void {
    const c = this.heap[slot]!;
    this.pos[c] = -1;
    const last = --this.heapSize;
    if (slot === last) return;
    const m = this.heap[last]!;
    this.heap[slot] = m;
    this.pos[m] = slot;
    this.siftUp(slot);
    this.siftDown(this.pos[m]!);
  }

  protected onAdd(i: number): void {
    const n = this.names.length;
    this.heap = grow(this.heap, n);
    this.popped = grow(this.popped, n);
    if (this.pos.length < n) {
      const old = this.pos.length;
      this.pos = grow(this.pos, n);
      this.pos.fill(-1, old);
    }
    this.pos[i] = -1;
    this.rank = grow(this.rank, n);
    const name = this.names[i]!;
    let lo = 0, hi = this.byRank.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.names[this.byRank[mid]!]! < name) lo = mid + 1; else hi = mid; }
    this.byRank.splice(lo, 0, i);
    this.renumber(lo);
  }

  protected onRemove(i: number): void {
    // deactivate() already took it out of the heap.
    const r = this.rank[i]!;
    this.byRank.splice(r, 1);
    this.renumber(r);
  }

  /** The client `pick()` would offer to first (the heap top), or -1. */
  first(): number { return this.heapSize > 0 ? this.heap[0]! : -1; }
  protected onActivate(i: number): void { this.push(i); }
  protected onDeactivate(i: number): void { if (this.pos[i]! >= 0) this.removeAt(this.pos[i]!); }

  protected onKeyChanged(i: number, old: number): void {
    const slot = this.pos[i]!;
    if (slot < 0) return; // inactive, or popped by a running pick(): re-pushed with its new key
    if (this.key[i]! >= old) this.siftDown(slot); else this.siftUp(slot);
  }

  protected onKeysChanged(): void {
    for (let s = (this.heapSize >> 1) - 1; s >= 0; s--) this.siftDown(s);
  }

  sort(): string[] {
    const xs = Array.from(this.heap.subarray(0, this.heapSize));
    xs.sort((a, b) => (this.before(a, b) ? -1 : this.before(b, a) ? 1 : 0));
    return xs.map((i) => this.names[i]!);
  }

  pick(accept: (index: number) => boolean): number {
    if (this.picking) throw new BerthError('CONFLICT', 'DRFSorter.pick is not reentrant');
    if (this.heapSize === 0) return -1;
    this.picking = true;
    try {
      // Common case: the least-served client takes it; allocated() re-sifts it in place.
      const top = this.heap[0]!;
      if (accept(top)) return top;
      // Otherwise pop clients in order until one accepts, then put every popped one back
      // (with whatever key it has now). Popped clients have pos = -1, so allocated() on
      // them only updates the key.
      let k = 0;
      let chosen = -1;
      while (this.heapSize > 0) {
        const c = this.heap[0]!;
        this.removeAt(0);
        this.popped[k++] = c;
        if (c !== top && accept(c)) { chosen = c; break; }
      }
      for (let j = 0; j < k; j++) this.push(this.popped[j]!);
      return chosen;
    } finally {
      this.picking = false;
    }
  }

  reseed(_seed: number): void { /* deterministic policy */ }

  snapshot(): SorterSnapshot {
    const n = this.names.length;
    const st: DRFState = { ...this.saveTable(), heap: this.heap.slice(0, n), pos: this.pos.slice(0, n), heapSize: this.heapSize };
    return st;
  }

  restore(s: SorterSnapshot): void {
    const st = this.restoreTable(s) as DRFState;
    // Keys are back to the snapshot's, for which its heap is valid.
    this.heap.set(st.heap);
    this.pos.set(st.pos);
    this.heapSize = st.heapSize;
  }
}
