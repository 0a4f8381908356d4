/**
 * The allocation loop: when to run the allocator, and turning its plan into
 * offers. Runs on the interval tick (over every agent) and on triggers, which
 * coalesce into one deferred run over the agents whose resources changed
 * (Mesos's allocation candidates).
 */
import type { TimerHandle } from '../proto/clock.js';
import type { Offer } from '../proto/types.js';
import type { OfferPlan } from './allocator/types.js';
import type { MasterContext } from './core.js';

export class AllocationLoop {
  private timer?: TimerHandle;
  private pending = false;
  /** Agents whose resources changed since the last run ('all' after a framework-level change). */
  private candidates: Set<string> | 'all' = new Set();

  constructor(private readonly ctx: MasterContext) {}

  /** Set while allocation waits for recovered agents to re-register (bounded: see holdUntil). */
  private hold?: { expected: number; until: number };

  start(): void {
    const ctx = this.ctx;
    const expected = ctx.agents.recoveredAtStart;
    // After a failover, offers made before the agents are back would be a partial view: Mesos'
    // allocator pauses until enough agents re-registered, or a timeout.
    if (expected > 0) this.hold = { expected, until: ctx.clock.now() + (ctx.opts.allocationRecoveryTimeoutMs ?? 10_000) };
    this.scheduleTick();
  }

  /** True while offers wait for recovered agents; clears itself (and runs over every agent) once they are back. */
  private holding(): boolean {
    const h = this.hold;
    if (!h) return false;
    const back = h.expected - this.ctx.agents.recoveringCount();
    if (back < (this.ctx.opts.allocationRecoveryFactor ?? 0.8) * h.expected && this.ctx.clock.now() < h.until) return true;
    this.hold = undefined;
    this.ctx.log.info({ agents_back: back, expected: h.expected }, 'allocation resumes after recovery');
    this.request();
    return false;
  }
  stop(): void { this.ctx.clock.clearTimeout(this.timer); }

  /**
   * Asks for an allocation run soon; any number of requests before it runs coalesce into one.
   * A request naming an agent limits the run to the agents whose resources changed; one
   * without (a framework subscribed, revived, changed roles) runs over every agent.
   */
  request(agentId?: string): void {
    const ctx = this.ctx;
    if (ctx.stopped) return;
    if (agentId === undefined) this.candidates = 'all';
    else if (this.candidates !== 'all') this.candidates.add(agentId);
    if (this.pending) return;
    this.pending = true;
    ctx.scheduler.defer(() => {
      this.pending = false;
      const candidates = this.candidates;
      this.candidates = new Set();
      if (!ctx.stopped) this.runNow(candidates === 'all' ? undefined : candidates);
    });
  }

  private scheduleTick(): void {
    if (this.ctx.stopped) return;
    this.timer = this.ctx.clock.setTimeout(() => {
      // Interval runs counted apart from triggered ones: "within N allocation intervals" is
      // measured in these, on the master's own clock and event loop.
      this.ctx.counters.allocationTicks++;
      this.runNow();
      this.scheduleTick();
    }, this.ctx.opts.allocationIntervalMs);
  }

  /** Runs one allocation cycle now and sends the resulting offers. Returns how many were sent. */
  runNow(agentIds?: Iterable<string>): number {
    const ctx = this.ctx;
    if (this.holding()) return 0;
    const t0 = performance.now();
    // One pass: the allocator decides and commits each offer and hands it here (its `cycle`,
    // the same decisions as allocate() + commit() without the intermediate plan).
    let sent = 0;
    const stale: OfferPlan = [];
    const byFramework = new Map<string, Offer[]>();
    ctx.allocator.cycle(ctx.clock.now(), agentIds, (frameworkId, agentId, role, resources) => {
      const fw = ctx.frameworks.get(frameworkId);
      const agent = ctx.agents.get(agentId);
      if (!fw || !agent || fw.status !== 'CONNECTED' || agent.status !== 'ACTIVE') {
        // The allocator's view was stale: give the resources back once the cycle is over.
        stale.push({ frameworkId, agentId, role, resources });
        return;
      }
      sent++;
      const offer = ctx.offers.make(fw, agent, role, resources);
      let list = byFramework.get(fw.id);
      if (!list) byFramework.set(fw.id, (list = []));
      list.push(offer);
    });
    for (const e of stale) ctx.allocator.recoverResources(e.frameworkId, e.agentId, e.role, e.resources);
    for (const [fid, offers] of byFramework) {
      ctx.frameworks.get(fid)!.sink?.send({ type: 'OFFERS', offers: { offers } });
      ctx.counters.offersSent += offers.length;
    }
    const ms = performance.now() - t0;
    ctx.counters.allocationRuns++;
    ctx.counters.lastAllocationMs = ms;
    ctx.counters.allocationMsTotal += ms;
    return sent;
  }
}
