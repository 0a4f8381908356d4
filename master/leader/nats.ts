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
 *
 * Fast takeover from a dead leader: every contender answers requests on its
 * own liveness subject (`<prefix>.lease.alive.<master_id>`) over the lease
 * connection. A standby probes the holder's subject each round; NATS answers
 * "no responders" at once when no connection holds that subscription, i.e. the
 * holder's process died or its lease connection is gone. After PROBE_CONFIRM
 * such answers in a row the standby takes the key over (the same CAS) without
 * waiting out the ttl. Safe: a holder that is alive but lost its lease
 * connection fences itself on the disconnect, and anything it still sends is
 * fenced by the new epoch (clients) and by compare-and-set (registry). A holder
 * that is alive but unreachable (a partition, a hung process) keeps its
 * subscription on the server, so it gets no shortcut: the ttl rule applies.
 */
import type { KV, NatsConnection, Subscription } from 'nats';
import { openBucket } from '../../proto/transport/nats.js';
import type { Logger } from '../../proto/log.js';
import { LEADER_KEY, leaderBucket, type LeaderRecord } from '../../proto/transport/nats-detector.js';
import type { LeaderState, MasterContender } from './types.js';

export const DEFAULT_LEASE_TTL_MS = 3_000;
/** The leader steps down when this fraction of the ttl passed without a successful renewal. */
export const FENCE_FRACTION = 0.7;
/** Consecutive "no responders" answers from the holder's liveness subject before a standby takes over. */
export const PROBE_CONFIRM = 2;
/** Longest gap between two campaign / renewal rounds. */
const MAX_ROUND_MS = 100;

export const aliveSubject = (prefix: string, masterId: string): string => `${prefix}.lease.alive.${masterId}`;

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
  /** Consecutive rounds in which the holder's liveness subject had no responders (and which holder). */
  private deadProbes = 0;
  private probedHolder = '';
  private aliveSub?: Subscription;
  /** The term's Master accepts sessions (published in the record). */
  private ready = false;
  private renewNow = false;

  constructor(private readonly nc: NatsConnection, private readonly o: NatsContenderOptions) {
    this.ttl = o.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  onStateChange(cb: (s: LeaderState, e: number) => void): void { this.cbs.push(cb); }

  async start(): Promise<void> {
    // A renewal lost in flight (a NATS node or stream leader changing) must not hold the next one
    // back past the fence deadline: each lease request times out after ttl/4.
    this.kv = await openBucket(this.nc, leaderBucket(this.o.prefix ?? 'berth'), this.o.replicas ?? 1, 30_000, 1, Math.max(50, Math.floor(this.ttl / 4)));
    // Liveness before campaigning: a standby that sees this master hold the key must find it alive.
    this.aliveSub = this.nc.subscribe(aliveSubject(this.o.prefix ?? 'berth', this.o.record.master_id), { callback: (err, m) => { if (!err) m.respond(); } });
    await this.nc.flush();
    // A leader that lost its lease connection can no longer show it is alive: a standby may take
    // over at once, so it steps down at once.
    void (async () => {
      for await (const st of this.nc.status()) {
        if (st.type === 'disconnect' && this.state === 'leading') this.fence(`lease connection to NATS lost (${String(st.data)})`);
      }
    })().catch(() => { /* connection closed */ });
    const period = Math.max(20, Math.min(MAX_ROUND_MS, Math.floor(this.ttl / 6)));
    this.timer = setInterval(() => { void this.tick(); }, period);
    this.timer.unref();
    void this.tick();
  }

  /**
   * The Master of this term listens: publish `ready` with the next renewal (at once), so clients
   * that waited for it dial now. Ignored unless leading in `epoch`.
   */
  markReady(epoch: number): void {
    if (this.state !== 'leading' || this.epoch !== epoch || this.ready) return;
    this.ready = true;
    this.renewNow = true;
    void this.tick();
  }

  private set(s: LeaderState): void {
    if (this.state === s) return;
    this.ready = false;
    this.o.log?.info({ from: this.state, to: s, epoch: this.epoch }, `leader state ${this.state} -> ${s}`);
    this.state = s;
    for (const cb of this.cbs) cb(s, this.epoch);
  }

  /** A campaign write carries no epoch (its own revision becomes it); a renewal carries the term's. */
  private value(epoch?: number): Uint8Array {
    const r: LeaderRecord = { ...this.o.record, ttl_ms: this.ttl, ready: this.ready, ...(epoch ? { epoch } : {}) };
    return new TextEncoder().encode(JSON.stringify(r));
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped || !this.kv) return;
    this.busy = true;
    try {
      switch (this.state) {
        case 'standby': await this.campaign(); break;
        case 'leading': if (this.renewNow || now() - this.okSentAt >= this.ttl / 3) { this.renewNow = false; await this.renew(); } break;
        case 'fenced': if (now() - this.fencedAt >= this.ttl) { this.seenRev = -1; this.set('standby'); } break;
      }
    } catch (e) {
      if (this.state === 'leading') this.o.log?.warn({ err: (e as Error).message, sinceOkMs: Math.round(now() - this.okSentAt) }, 'lease renewal failed');
      else this.o.log?.debug({ err: (e as Error).message, state: this.state }, 'leader lease round failed');
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
      if (e.revision !== this.seenRev) { this.seenRev = e.revision; this.seenAt = t; }
      if (t - this.seenAt < this.ttl && !(await this.holderGone(e.value))) return;
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

  /**
   * True once the holder's liveness subject answered "no responders" PROBE_CONFIRM rounds in a
   * row. A timeout or any other error proves nothing (the holder may be slow or partitioned).
   */
  private async holderGone(value: Uint8Array): Promise<boolean> {
    let holder: string;
    try { holder = (JSON.parse(new TextDecoder().decode(value)) as LeaderRecord).master_id; } catch { return false; }
    if (holder !== this.probedHolder) { this.probedHolder = holder; this.deadProbes = 0; }
    if (holder === this.o.record.master_id) return false;
    try {
      await this.nc.request(aliveSubject(this.o.prefix ?? 'berth', holder), new Uint8Array(0), { timeout: Math.max(50, Math.floor(this.ttl / 4)) });
      this.deadProbes = 0;
    } catch (e) {
      if (/503|no responders/i.test(String((e as Error).message))) this.deadProbes++;
      else this.deadProbes = 0;
    }
    if (this.deadProbes < PROBE_CONFIRM) return false;
    this.o.log?.warn({ holder, probes: this.deadProbes }, 'the lease holder has no live connection; taking over without waiting out the ttl');
    return true;
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
    this.aliveSub?.unsubscribe();
    if (this.timer) clearInterval(this.timer);
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    if (this.state === 'leading' && this.kv) {
      // Release the lease so a standby need not wait out the ttl.
      try { await this.kv.delete(LEADER_KEY, { previousSeq: this.myRev }); } catch { /* someone else holds it, or NATS is gone */ }
    }
    this.set('standby');
  }
}
