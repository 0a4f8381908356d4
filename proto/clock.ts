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
 */
export class ManualClock implements Clock {
  private t: number;
  private nextId = 1;
  private seq = 0;
  private pending = new Map<number, Pending>();
  constructor(start = 1_700_000_000_000) { this.t = start; }
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.pending.set(id, { id, at: this.t + Math.max(0, ms), seq: this.seq++, fn });
    return { id };
  }
  clearTimeout(h: TimerHandle | undefined): void { if (h) this.pending.delete(h.id); }
  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.pending.values()) {
        if (p.at <= end && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      }
      if (!next) break;
      this.pending.delete(next.id);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }
  /** Number of timers not yet fired. */
  get timers(): number { return this.pending.size; }
}

/** Exponential backoff with full jitter, bounded: attempt 0 → [0, base], doubling to `max`. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, rand: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + (rand() * cap) / 2);
}
