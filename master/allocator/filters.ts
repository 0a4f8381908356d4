/**
 * Decline filters (Mesos' RefusedOfferFilter): when a framework declines an
 * offer with `refuse_seconds > 0`, it is not offered that agent again (for that
 * role) while the filter lives AND what the agent would offer is contained in
 * what was refused. If the agent's available resources grow beyond the refused
 * ones, the filter no longer blocks (the framework may want the larger offer).
 *
 * Keys: a client is one (framework, role) pair, named by a uid that is never
 * reused; agents by the allocator's dense index (reused after removal, which is
 * why `clearAgent()` must run when an agent is removed).
 *
 * Layout, for the hot path: a cycle asks "may client c be offered agent a?"
 * once per visited agent, in shuffled agent order. The answer is almost always
 * "no filter", so each client has a bitset over agent indices (one bit per
 * (client, agent) pair that has filters): a check is one lookup in a small hot
 * Map plus one word read, and only a set bit reaches the per-agent Map with
 * the filter records. The refused resources' packed form lives in one pooled
 * Float64Array (a typed array per filter costs ~10× in memory and GC work, and
 * DeclineOffers keeps hundreds of thousands of filters).
 *
 * Invariants:
 *  - bit a of `byClient.get(c).bits` is set ⇔ `byAgent[a].get(c)` exists, and
 *    `byClient.get(c).pairs` counts those bits (the entry exists iff > 0);
 *  - `count` is the number of filter records (chained ones included), expired
 *    but not yet swept ones included; expired filters never block, and are
 *    dropped lazily (`sweep()`, and on `add()` to the same pair);
 *  - every record owns one pool slot; a dropped record returns it;
 *  - `minExpiry` ≤ the expiry of every stored filter, so `sweep(now)` with
 *    now < minExpiry is O(1).
 */
import { NDIMS, type Resources } from '../../proto/resources.js';

export interface RefusedOfferFilter {
  /** Milliseconds; the filter blocks while `now < expiry`. */
  readonly expiry: number;
  readonly refused: Resources;
  /** Slot in the pool: `refused`'s scalar dimensions in thousandths at `pool[slot*NDIMS …]`. */
  readonly slot: number;
  /** Other live filters of the same (client, agent) pair. */
  readonly next: RefusedOfferFilter | undefined;
}

interface ClientFilters {
  bits: Uint32Array;
  pairs: number;
}

/** At most this many filters per (client, agent); the one expiring first is dropped. */
const MAX_CHAIN = 8;

export class OfferFilters {
  private byAgent: (Map<number, RefusedOfferFilter> | undefined)[] = [];
  private readonly byClient = new Map<number, ClientFilters>();
  private n = 0;
  private minExpiry = Infinity;
  private pool = new Float64Array(64 * NDIMS);
  private freeSlots: number[] = [];
  private nextSlot = 0;

  get count(): number { return this.n; }

  /** Cheap pre-check: false means no filter of `client` on `agent` exists. */
  mayBlock(client: number, agent: number): boolean {
    const cf = this.byClient.get(client);
    if (cf === undefined) return false;
    const w = agent >>> 5;
    return w < cf.bits.length && (cf.bits[w]! & (1 << (agent & 31))) !== 0;
  }

  add(client: number, agent: number, refused: Resources, now: number, expiry: number): void {
    if (!(expiry > now)) return;
    // Grow densely: a sparse write would turn the array into a slow dictionary.
    while (this.byAgent.length <= agent) this.byAgent.push(undefined);
    let m = this.byAgent[agent];
    if (!m) this.byAgent[agent] = m = new Map();
    const old = m.get(client);
    if (old === undefined) {
      // The common case: the pair's first filter.
      m.set(client, { expiry, refused, slot: this.takeSlot(refused), next: undefined });
      this.n++;
      this.markPair(client, agent);
      if (expiry < this.minExpiry) this.minExpiry = expiry;
      return;
    }
    // Keep the older filters that still say something the new one does not.
    let kept: RefusedOfferFilter[] = [];
    for (let f: RefusedOfferFilter | undefined = old; f; f = f.next) {
      if (f.expiry <= now || (f.expiry <= expiry && refused.contains(f.refused))) this.forget(f);
      else kept.push(f);
    }
    if (kept.length >= MAX_CHAIN) {
      kept.sort((x, y) => y.expiry - x.expiry);
      for (const f of kept.slice(MAX_CHAIN - 1)) this.forget(f);
      kept = kept.slice(0, MAX_CHAIN - 1);
    }
    let head: RefusedOfferFilter = { expiry, refused, slot: this.takeSlot(refused), next: undefined };
    for (const f of kept) head = { expiry: f.expiry, refused: f.refused, slot: f.slot, next: head };
    m.set(client, head);
    this.n++;
    if (expiry < this.minExpiry) this.minExpiry = expiry;
  }

  /**
   * Whether a live filter of `client` on `agent` blocks an offer of `offerPacked`
   * (at `offset`) / `offerRich`. With `exact`, the agent has only packed scalar
   * dimensions, so packed containment decides; otherwise the rich form does
   * (ranges, sets, other scalars).
   */
  blocks(client: number, agent: number, now: number, offerPacked: Float64Array, offset: number, offerRich: Resources, exact: boolean): boolean {
    if (!this.mayBlock(client, agent)) return false;
    for (let f = this.byAgent[agent]!.get(client); f; f = f.next) {
      if (f.expiry <= now) continue;
      let within = true;
      const base = f.slot * NDIMS;
      for (let d = 0; d < NDIMS; d++) if (offerPacked[offset + d]! > this.pool[base + d]!) { within = false; break; }
      if (within && (exact || f.refused.contains(offerRich))) return true;
    }
    return false;
  }

  /** Drops every filter of a client (revive). */
  clearClient(client: number): void {
    const cf = this.byClient.get(client);
    if (!cf) return;
    for (let w = 0; w < cf.bits.length; w++) {
      let word = cf.bits[w]!;
      while (word !== 0) {
        const bit = 31 - Math.clz32(word);
        word &= ~(1 << bit);
        this.dropPair(client, w * 32 + bit);
      }
    }
  }

  /** Drops every filter on an agent (removed; its index may be reused). */
  clearAgent(agent: number): void {
    const m = this.byAgent[agent];
    if (!m) return;
    for (const c of [...m.keys()]) this.dropPair(c, agent);
  }

  /** Drops expired filters; O(1) unless some filter has expired since the last sweep. */
  sweep(now: number): void {
    if (now < this.minExpiry) return;
    let min = Infinity;
    for (let a = 0; a < this.byAgent.length; a++) {
      const m = this.byAgent[a];
      if (!m) continue;
      for (const [c, head] of [...m]) {
        let live: RefusedOfferFilter | undefined;
        for (let f: RefusedOfferFilter | undefined = head; f; f = f.next) {
          if (f.expiry <= now) { this.forget(f); continue; }
          live = { expiry: f.expiry, refused: f.refused, slot: f.slot, next: live };
          if (f.expiry < min) min = f.expiry;
        }
        if (live) m.set(c, live);
        else this.unlinkPair(c, a);
      }
    }
    this.minExpiry = min;
  }

  private takeSlot(refused: Resources): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.nextSlot++;
      if ((slot + 1) * NDIMS > this.pool.length) {
        const bigger = new Float64Array(this.pool.length * 2);
        bigger.set(this.pool);
        this.pool = bigger;
      }
    }
    this.pool.fill(0, slot * NDIMS, (slot + 1) * NDIMS);
    refused.addPacked(this.pool, slot * NDIMS);
    return slot;
  }

  /** Forgets one filter record (its slot returns to the pool). */
  private forget(f: RefusedOfferFilter): void {
    this.freeSlots.push(f.slot);
    this.n--;
  }

  private markPair(client: number, agent: number): void {
    let cf = this.byClient.get(client);
    if (!cf) this.byClient.set(client, (cf = { bits: new Uint32Array(Math.max(8, (agent >>> 5) + 1)), pairs: 0 }));
    const w = agent >>> 5;
    if (w >= cf.bits.length) {
      let len = cf.bits.length;
      while (len <= w) len *= 2;
      const bigger = new Uint32Array(len);
      bigger.set(cf.bits);
      cf.bits = bigger;
    }
    cf.bits[w] = cf.bits[w]! | (1 << (agent & 31));
    cf.pairs++;
  }

  /** Drops all records of a pair. */
  private dropPair(client: number, agent: number): void {
    const m = this.byAgent[agent];
    const head = m?.get(client);
    if (!head) return;
    for (let f: RefusedOfferFilter | undefined = head; f; f = f.next) this.forget(f);
    this.unlinkPair(client, agent);
  }

  /** Removes a pair whose records were already forgotten from both indexes. */
  private unlinkPair(client: number, agent: number): void {
    const m = this.byAgent[agent]!;
    m.delete(client);
    if (m.size === 0) this.byAgent[agent] = undefined;
    const cf = this.byClient.get(client)!;
    cf.bits[agent >>> 5] = cf.bits[agent >>> 5]! & ~(1 << (agent & 31));
    if (--cf.pairs === 0) this.byClient.delete(client);
  }
}
