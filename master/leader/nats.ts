/**
 * Leader election among N masters through one JetStream KV key with a lease.
 *
 * The leader renews the key every ttl/3 by compare-and-set on the revision it
 * last wrote. A standby polls the key; once it has seen the same revision for
 * a whole ttl it takes the key over by compare-and-set on that revision (or
 * creates it when absent or deleted). Only one CAS can win a revision, so at
 * most one master wins a term; the winning write's revision is the term's epoch.
 *
 * Safety (the deposed leader stops before the new one acts): the leader fences
 * itself at lastOkRenewSentAt + FENCE_FRACTION × ttl. A standby can take over
 * no earlier than ttl after it OBSERVED that renewal, and observation happens
 * after the send, so with clocks running at the same rate the old leader is
 * fenced at least (1 − FENCE_FRACTION) × ttl before the takeover. The fence
 * check runs on its own timer: it does not wait for a hung renewal.
 */
import type { KV, NatsConnection } from 'nats';
import { openBucket } from '../../proto/transport/nats.js';
import type { Logger } from '../../proto/log.js';
import { LEADER_KEY, leaderBucket, type LeaderRecord } from '../../proto/transport/nats-detector.js';
import type { LeaderState, MasterContender } from './types.js';

export const DEFAULT_LEASE_TTL_MS = 3_000;
/** The leader steps down when this fraction of the ttl passed without a successful renewal. */
export const FENCE_FRACTION = 0.7;

export interface NatsContenderOptions {
  prefix?: string;
  /** What the leader publishes about itself (epoch and ttl are filled in). */
  record: Omit<LeaderRecord, 'epoch' | 'ttl_ms'>;
  ttlMs?: number;
  /** Replicas of the leader bucket (3 on a 3-node NATS cluster). */
  replicas?: number;
  log?: Logger;
}

const now = (): number => performance.now();

export { openBucket };

function isCasFailure(e: unknown): boolean {
  const m = String((e as Error)?.message ?? e);
  return /wrong last sequence|key exists|10071|10164/i.test(m);
}

export class NatsLeaseContender implements MasterContender {
  state: LeaderState = 'standby';
  epoch = 0;
  private kv?: KV;
  private readonly ttl: number;
  private cbs: ((s: LeaderState, e: number) => void)[] = [];
  private timer?: NodeJS.Timeout;
  private fenceTimer?: NodeJS.Timeout;
  private busy = false;
  private stopped = false;
  /** Standby: the revision seen and when it was first seen. */
  private seenRev = -1;
  private seenAt = 0;
  /** Leading: the revision we last wrote, and when the last successful renewal was sent. */
  private myRev = 0;
  private okSentAt = 0;
  private fencedAt = 0;

  constructor(private readonly nc: NatsConnection, private readonly o: NatsContenderOptions) {
    this.ttl = o.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  onStateChange(cb: (s: LeaderState, e: number) => void): void { this.cbs.push(cb); }

  async start(): Promise<void> {
    // A renewal lost in flight (a NATS node or stream leader changing) must not hold the next one
    // back past the fence deadline: each lease request times out after ttl/4.
    this.kv = await openBucket(this.nc, leaderBucket(this.o.prefix ?? 'berth'), this.o.replicas ?? 1, 30_000, 1, Math.max(50, Math.floor(this.ttl / 4)));
    const period = Math.max(20, Math.floor(this.ttl / 6));
    this.timer = setInterval(() => { void this.tick(); }, period);
    this.timer.unref();
    void this.tick();
  }

  private set(s: LeaderState): void {
    if (this.state === s) return;
    this.o.log?.info({ from: this.state, to: s, epoch: this.epoch }, `leader state ${this.state} -> ${s}`);
    this.state = s;
    for (const cb of this.cbs) cb(s, this.epoch);
  }

  /** A campaign write carries no epoch (its own revision becomes it); a renewal carries the term's. */
  private value(epoch?: number): Uint8Array {
    const r: LeaderRecord = { ...this.o.record, ttl_ms: this.ttl, ...(epoch ? { epoch } : {}) };
    return new TextEncoder().encode(JSON.stringify(r));
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped || !this.kv) return;
    this.busy = true;
    try {
      switch (this.state) {
        case 'standby': await this.campaign(); break;
        case 'leading': if (now() - this.okSentAt >= this.ttl / 3) await this.renew(); break;
        case 'fenced': if (now() - this.fencedAt >= this.ttl) { this.seenRev = -1; this.set('standby'); } break;
      }
    } catch (e) {
      this.o.log?.debug({ err: (e as Error).message, state: this.state }, 'leader lease round failed');
    } finally {
      this.busy = false;
    }
  }

  private async campaign(): Promise<void> {
    const kv = this.kv!;
    const e = await kv.get(LEADER_KEY);
    const t = now();
    let won = 0;
    if (!e || e.operation !== 'PUT') {
      const sent = now();
      try { won = await kv.create(LEADER_KEY, this.value()); } catch (err) { if (!isCasFailure(err)) throw err; return; }
      this.okSentAt = sent;
    } else {
      if (e.revision !== this.seenRev) { this.seenRev = e.revision; this.seenAt = t; return; }
      if (t - this.seenAt < this.ttl) return;
      const sent = now();
      try { won = await kv.update(LEADER_KEY, this.value(), e.revision); } catch (err) { if (!isCasFailure(err)) throw err; return; }
      this.okSentAt = sent;
    }
    if (this.stopped) return;
    this.epoch = won;
    this.myRev = won;
    this.armFence();
    this.set('leading');
  }

  private async renew(): Promise<void> {
    const sent = now();
    const epoch = this.epoch;
    try {
      const rev = await this.kv!.update(LEADER_KEY, this.value(epoch), this.myRev);
      if (this.state !== 'leading' || this.epoch !== epoch) return;
      this.myRev = rev;
      this.okSentAt = sent;
      this.armFence();
    } catch (err) {
      if (isCasFailure(err) && this.state === 'leading') this.fence('another master took the lease');
      else throw err;
    }
  }

  private armFence(): void {
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    const at = this.okSentAt + FENCE_FRACTION * this.ttl;
    this.fenceTimer = setTimeout(() => {
      if (this.state !== 'leading') return;
      // Timers may fire a little before performance.now() reaches `at`: then wait again, never skip.
      if (now() >= at) this.fence(`no successful lease renewal for ${Math.round(FENCE_FRACTION * this.ttl)} ms`);
      else this.armFence();
    }, Math.max(1, Math.ceil(at - now())));
    this.fenceTimer.unref();
  }

  /** Gives up a term this master cannot serve (its Master failed to start, its registry was fenced). */
  stepDown(why: string): void {
    if (this.state === 'leading') this.fence(why);
  }

  private fence(why: string): void {
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    this.o.log?.warn({ epoch: this.epoch, why }, 'fenced: stepping down');
    this.fencedAt = now();
    this.set('fenced');
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    if (this.state === 'leading' && this.kv) {
      // Release the lease so a standby need not wait out the ttl.
      try { await this.kv.delete(LEADER_KEY, { previousSeq: this.myRev }); } catch { /* someone else holds it, or NATS is gone */ }
    }
    this.set('standby');
  }
}
