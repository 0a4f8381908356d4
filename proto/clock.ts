/**
 * Time, injected. Every timeout, backoff and interval in Berth goes through a
 * Clock so tests and the bin-packing simulator can run hours of cluster time in
 * milliseconds (`ManualClock.advance`) without sleeping.
 */
export interface TimerHandle { readonly id: number }

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(h: TimerHandle | undefined): void;
}

export class RealClock implements Clock {
  private nextId = 1;
  private timers = new Map<number, NodeJS.Timeout>();
  now(): number { return Date.now(); }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    const t = setTimeout(() => { this.timers.delete(id); fn(); }, Math.max(0, ms));
    t.unref?.();
    this.timers.set(id, t);
    return { id };
  }
  clearTimeout(h: TimerHandle | undefined): void {
    if (!h) return;
    const t = this.timers.get(h.id);
    if (t) { clearTimeout(t); this.timers.delete(h.id); }
  }
}

interface Pending { id: number; at: number; seq: number; fn: () => void }

/**
 * A clock that only moves when told. Timers fire in (time, creation) order
 * during `advance`; a timer scheduled by a firing timer fires in the same
 * advance if it falls within the window.
 *
 * Timers live in a binary min-heap keyed by (at, seq), so scheduling and firing
 * cost O(log n) each — the bin-packing simulator runs 10,000 agents with a
 * resend timer per in-flight update. `clearTimeout` is lazy: the entry leaves
 * `live` at once and is dropped when it reaches the top of the heap; the heap
 * is rebuilt when cancelled entries outnumber live ones, so its size stays
 * within twice the live timers.
 */
export class ManualClock implements Clock {
  private t: number;
  private nextId = 1;
  private seq = 0;
  private heap: Pending[] = [];
  private readonly live = new Map<number, Pending>();
  constructor(start = 1_700_000_000_000) { this.t = start; }
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    const p: Pending = { id, at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.live.set(id, p);
    this.push(p);
    return { id };
  }
  clearTimeout(h: TimerHandle | undefined): void {
    if (!h || !this.live.delete(h.id)) return;
    if (this.heap.length > 64 && this.heap.length > 2 * this.live.size) this.rebuild();
  }
  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    while (this.fireNext(end)) { /* fire in order */ }
    this.t = end;
  }
  /** Time of the earliest live timer, or undefined when none is pending. */
  nextDue(): number | undefined {
    this.dropCancelledTop();
    return this.heap[0]?.at;
  }
  /**
   * Fires the earliest live timer if it is due at or before `until`, moving the
   * clock to its time. Returns false (and fires nothing) otherwise. The
   * simulator calls this one timer at a time so it can let peers react between
   * timers that share a timestamp.
   */
  fireNext(until = Infinity): boolean {
    this.dropCancelledTop();
    const top = this.heap[0];
    if (!top || top.at > until) return false;
    this.pop();
    this.live.delete(top.id);
    if (top.at > this.t) this.t = top.at;
    top.fn();
    return true;
  }
  /** Number of timers not yet fired. */
  get timers(): number { return this.live.size; }

  private dropCancelledTop(): void {
    while (this.heap.length > 0 && !this.live.has(this.heap[0]!.id)) this.pop();
  }
  private rebuild(): void {
    this.heap = [...this.live.values()];
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }
  private static less(a: Pending, b: Pending): boolean { return a.at < b.at || (a.at === b.at && a.seq < b.seq); }
  private push(p: Pending): void {
    const h = this.heap;
    h.push(p);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!ManualClock.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }
  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    this.down(0);
  }
  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && ManualClock.less(h[l]!, h[m]!)) m = l;
      if (r < n && ManualClock.less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

/** Exponential backoff with full jitter, bounded: attempt 0 → [0, base], doubling to `max`. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, rand: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + (rand() * cap) / 2);
}
