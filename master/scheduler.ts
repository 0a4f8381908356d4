/**
 * The master's deferred work (a coalesced allocation run, a registry group
 * commit) goes through one seam, so a simulator can run it on its own
 * schedule instead of the event loop's. The default is `setImmediate`: after
 * the I/O already queued, before any timer.
 */
export interface DeferredScheduler {
  /** Runs `fn` soon, after the current turn; never re-entrantly. */
  defer(fn: () => void): void;
}

export const immediateScheduler: DeferredScheduler = {
  defer(fn) { setImmediate(fn); },
};
