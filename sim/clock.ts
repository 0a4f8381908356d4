/**
 * The simulation kit's time: a virtual clock (proto/clock.ts's ManualClock, a
 * timer heap) and a deferred-work queue standing in for `setImmediate`, plus
 * the loop that advances them together.
 *
 * Invariant of `SimLoop.settle()`: on return no deferred work is queued and no
 * microtask is pending — every message sent over the MemoryNetwork has been
 * delivered and every reaction to it has run. Only timers remain, so moving the
 * clock to the next timer is the only way anything else can happen. That is
 * what makes a run deterministic (same inputs, same order of events) and
 * independent of real time.
 */
import { ManualClock } from '../proto/clock.js';
import type { DeferredScheduler } from '../master/scheduler.js';

export { ManualClock } from '../proto/clock.js';

/** A virtual clock; the name the simulator uses for ManualClock. */
export class VirtualClock extends ManualClock {}

/** FIFO of deferred work, drained by `SimLoop.settle()` instead of the event loop. */
export class DeferQueue implements DeferredScheduler {
  private q: (() => void)[] = [];
  defer(fn: () => void): void { this.q.push(fn); }
  get size(): number { return this.q.length; }
  /** Runs what is queued now (work deferred meanwhile waits for the next call). Returns how many ran. */
  runQueued(): number {
    const batch = this.q;
    this.q = [];
    for (const fn of batch) fn();
    return batch.length;
  }
}

const realImmediate = (): Promise<void> => new Promise((r) => setImmediate(r));

export class SimLoop {
  constructor(readonly clock: VirtualClock = new VirtualClock(), readonly scheduler: DeferQueue = new DeferQueue()) {}

  /**
   * Drains microtasks and deferred work until both are empty. One real
   * `setImmediate` flushes every microtask chain queued before it; deferred
   * work then runs, and the loop repeats until a round finds nothing deferred.
   * `extraRounds` covers code that still defers through the real setImmediate
   * (each round lets one such hop run).
   */
  async settle(extraRounds = 0): Promise<void> {
    let idle = 0;
    for (;;) {
      await realImmediate();
      if (this.scheduler.runQueued() > 0) { idle = 0; continue; }
      if (idle++ >= extraRounds) return;
    }
  }

  /**
   * Runs until virtual time `until` (absolute ms): fires timers one at a
   * time in (time, creation) order, settling after each, then sets the clock
   * to `until`.
   */
  async runUntil(until: number): Promise<void> {
    await this.settle();
    for (;;) {
      const next = this.clock.nextDue();
      if (next === undefined || next > until) break;
      // Fire every timer due at this instant before settling: they were all
      // scheduled before any reaction to them could be, so their order is fixed.
      while (this.clock.nextDue() === next) this.clock.fireNext(next);
      await this.settle();
    }
    if (until > this.clock.now()) this.clock.advance(until - this.clock.now());
  }

  /** Advances virtual time by `ms`, settling after each timer. */
  async advance(ms: number): Promise<void> { await this.runUntil(this.clock.now() + ms); }
}
