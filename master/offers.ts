/**
 * The offer book: every outstanding offer, who it was made to, from which
 * agent, for which role, and its timeout.
 *
 * Invariant (with the allocator): a resource is in exactly one of available
 * (allocator pool), offered (one outstanding offer here) or used (one live
 * task). Offers and tasks both count as allocated in the allocator; every
 * path that ends an offer without a launch — decline, rescind, timeout, an
 * invalid ACCEPT — goes through `release`/`rescind`, which return the
 * resources to the pool, so available + offered + used = total holds.
 */
import { isTerminal, type Offer } from '../proto/types.js';
import type { Resources } from '../proto/resources.js';
import type { MasterContext } from './core.js';
import type { AgentRec, FrameworkRec, OfferRec, OfferView } from './records.js';

export class OfferBook {
  private readonly byId = new Map<string, OfferRec>();
  private nextOffer = 0;

  constructor(private readonly ctx: MasterContext) {}

  get all(): ReadonlyMap<string, OfferView> { return this.byId; }
  get(id: string): OfferRec | undefined { return this.byId.get(id); }
  get size(): number { return this.byId.size; }
  values(): IterableIterator<OfferRec> { return this.byId.values(); }

  stop(): void { for (const o of this.byId.values()) this.ctx.clock.clearTimeout(o.timer); }

  /** Records an offer of `resources` (already committed in the allocator) and returns its wire form. */
  make(fw: FrameworkRec, agent: AgentRec, role: string, resources: Resources): Offer {
    const ctx = this.ctx;
    const id = `${ctx.id}-O${this.nextOffer++}`;
    const rec: OfferRec = { id, frameworkId: fw.id, agentId: agent.id, role, resources };
    if (ctx.opts.offerTimeoutMs) rec.timer = ctx.clock.setTimeout(() => this.rescind(id, 'offer timeout'), ctx.opts.offerTimeoutMs);
    this.byId.set(id, rec);
    fw.offers.add(id);
    agent.offers.add(id);
    const [host, portStr] = splitEndpoint(agent.endpoint, agent.info.hostname, agent.info.port);
    const executorIds = [];
    for (const t of agent.tasks.values()) if (t.frameworkId === fw.id && !isTerminal(t.state)) executorIds.push({ value: t.id });
    return {
      id: { value: id },
      framework_id: { value: fw.id },
      agent_id: { value: agent.id },
      hostname: agent.info.hostname,
      url: { scheme: 'http', address: { hostname: agent.info.hostname, ip: host, port: portStr }, path: '/slave(1)' },
      resources: resources.toWire(role),
      attributes: agent.info.attributes ?? [],
      executor_ids: executorIds,
      allocation_info: { role },
    };
  }

  /**
   * Takes an offer out of the book WITHOUT returning its resources: the caller now holds
   * them (an ACCEPT launching from them) and must recover what it does not use.
   */
  take(offer: OfferRec): void {
    this.ctx.clock.clearTimeout(offer.timer);
    this.byId.delete(offer.id);
    this.ctx.frameworks.get(offer.frameworkId)?.offers.delete(offer.id);
    this.ctx.agents.get(offer.agentId)?.offers.delete(offer.id);
  }

  /** Ends an offer and returns its resources to the pool, optionally filtered for its framework. */
  release(offer: OfferRec, refuseSeconds?: number): void {
    this.take(offer);
    this.ctx.allocator.recoverResources(offer.frameworkId, offer.agentId, offer.role, offer.resources, refuseSeconds, this.ctx.clock.now());
    this.ctx.allocation.request(offer.agentId);
  }

  /** Withdraws an offer: resources go back to the pool and the framework gets RESCIND (if it can hear). */
  rescind(offerId: string, why: string, notify = true): void {
    const offer = this.byId.get(offerId);
    if (!offer) return;
    this.take(offer);
    this.ctx.counters.offersRescinded++;
    this.ctx.allocator.recoverResources(offer.frameworkId, offer.agentId, offer.role, offer.resources);
    if (notify) this.ctx.frameworks.get(offer.frameworkId)?.sink?.send({ type: 'RESCIND', rescind: { offer_id: { value: offerId } } });
    this.ctx.log.debug({ offer_id: offerId, why }, 'offer rescinded');
    this.ctx.allocation.request(offer.agentId);
  }
}

function splitEndpoint(endpoint: string | undefined, hostname: string, port: number | undefined): [string, number] {
  if (endpoint) {
    const i = endpoint.lastIndexOf(':');
    if (i > 0) return [endpoint.slice(0, i).replace(/^\[|\]$/g, ''), Number(endpoint.slice(i + 1))];
  }
  return [hostname, port ?? 5051];
}
