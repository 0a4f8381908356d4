/**
 * Where the leading master is, as every cluster member learns it: one key in a
 * JetStream KV bucket (`<prefix>_leader`, key `master`) that the leader keeps
 * renewing with compare-and-set on its revision (master/leader/nats.ts writes
 * it). This file is the reading side (Mesos' MasterDetector), shared by agents,
 * the SDK and the masters themselves; it belongs to the wire because the record
 * is part of the cluster protocol.
 *
 * Invariants:
 *  - The epoch of a term is the KV revision of the write that won the term, so
 *    epochs only grow: a later term always has a larger epoch.
 *  - A record not renewed within its `ttl_ms` (as observed on this process's
 *    monotonic clock) is no leader: the detector reports none until a write comes.
 */
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import { BerthError } from '../errors.js';

export const LEADER_KEY = 'master';
export const leaderBucket = (prefix: string): string => `${prefix}_leader`;

/** The value of the leader key. */
export interface LeaderRecord {
  master_id: string;
  /** Revision that won this term; absent only in the first write of a term (then: that write's revision). */
  epoch?: number;
  hostname: string;
  port: number;
  /** The leader's HTTP base URL (Mesos HTTP API, /state). */
  url: string;
  /** Mesos-style pid, `master@host:port`. */
  pid: string;
  /** Lease length: a standby may take over once this long passes without a renewal (the leader renews every ttl/3). */
  ttl_ms: number;
  /**
   * False from the write that wins a term until the new leader has loaded the registry and
   * listens; then a renewal sets it. Clients dial only a ready leader, so thousands of them do
   * not poll a master that cannot answer yet. Absent (older writers): ready.
   */
  ready?: boolean;
}

export interface Leader extends Required<LeaderRecord> {
  revision: number;
}

/** Mesos' MasterDetector: who leads now, and a callback on every change. */
export interface LeaderDetector {
  current(): Leader | undefined;
  /** Called with the new leader (or undefined when the lease lapsed) each time it changes. */
  onChange(cb: (l: Leader | undefined) => void): () => void;
  /** Resolves with the leader, waiting up to timeoutMs for one (with `ready`: for one that accepts sessions). */
  waitForLeader(timeoutMs: number, ready?: boolean): Promise<Leader>;
  /** Highest epoch ever seen: anything older is a stale master. */
  readonly highestEpoch: number;
  close(): Promise<void>;
}

const now = (): number => performance.now();

export function leaderFromEntry(e: KvEntry): Leader | undefined {
  if (e.operation !== 'PUT' || e.value.length === 0) return undefined;
  const r = JSON.parse(new TextDecoder().decode(e.value)) as LeaderRecord;
  return { ...r, epoch: r.epoch ?? e.revision, ready: r.ready ?? true, revision: e.revision };
}

export class NatsLeaderDetector implements LeaderDetector {
  private leader?: Leader;
  private seenAt = 0;
  private lapseTimer?: NodeJS.Timeout;
  private cbs = new Set<(l: Leader | undefined) => void>();
  private watcher?: QueuedIterator<KvEntry>;
  private closed = false;
  highestEpoch = 0;
  kv?: KV;

  private constructor(private readonly nc: NatsConnection, private readonly prefix: string) {}

  /** Binds to the leader bucket (waiting for a master to create it) and starts watching. */
  static async start(nc: NatsConnection, prefix = 'berth', bindTimeoutMs = 60_000): Promise<NatsLeaderDetector> {
    const d = new NatsLeaderDetector(nc, prefix);
    await d.bind(bindTimeoutMs);
    return d;
  }

  private async bind(timeoutMs: number): Promise<void> {
    const js = this.nc.jetstream();
    const until = now() + timeoutMs;
    for (;;) {
      try {
        this.kv = await js.views.kv(leaderBucket(this.prefix), { bindOnly: true });
        break;
      } catch (e) {
        if (now() > until) throw new BerthError('IO', `no leader bucket ${leaderBucket(this.prefix)} on NATS after ${timeoutMs} ms (is a master running?): ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    this.watcher = await this.kv.watch({ key: LEADER_KEY });
    void (async () => {
      try {
        for await (const e of this.watcher!) this.observe(leaderFromEntry(e));
      } catch { /* closed */ }
    })();
  }

  /** Also fed by the contender with its own writes, so a leader knows itself without a round trip. */
  observe(l: Leader | undefined): void {
    if (this.closed) return;
    const prev = this.leader;
    if (l) {
      if (l.epoch < this.highestEpoch) return; // a stale write cannot make an old master current again
      this.highestEpoch = l.epoch;
      this.seenAt = now();
      this.armLapse(l.ttl_ms);
    }
    this.leader = l;
    if (prev?.master_id !== l?.master_id || prev?.epoch !== l?.epoch || prev?.ready !== l?.ready) for (const cb of [...this.cbs]) cb(l);
  }

  private armLapse(ttl: number): void {
    if (this.lapseTimer) clearTimeout(this.lapseTimer);
    this.lapseTimer = setTimeout(() => {
      if (now() - this.seenAt >= ttl && this.leader) {
        this.leader = undefined;
        for (const cb of [...this.cbs]) cb(undefined);
      }
    }, ttl + 5);
    this.lapseTimer.unref();
  }

  /** When the last renewal of the current leader was seen (monotonic ms), for takeover decisions. */
  get lastSeenAt(): number { return this.seenAt; }

  current(): Leader | undefined { return this.leader; }

  onChange(cb: (l: Leader | undefined) => void): () => void {
    this.cbs.add(cb);
    return () => this.cbs.delete(cb);
  }

  waitForLeader(timeoutMs: number, ready = false): Promise<Leader> {
    const ok = (l: Leader | undefined): l is Leader => !!l && (!ready || l.ready);
    if (ok(this.leader)) return Promise.resolve(this.leader);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { off(); reject(new BerthError('IO', `no ${ready ? 'ready ' : ''}leading master within ${timeoutMs} ms`)); }, timeoutMs);
      const off = this.onChange((l) => { if (ok(l)) { clearTimeout(t); off(); resolve(l); } });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.lapseTimer) clearTimeout(this.lapseTimer);
    this.watcher?.stop();
    this.cbs.clear();
  }
}
