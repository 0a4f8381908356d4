/**
 * JetStream KV registry (cluster mode): the file registry's interface and
 * semantics over a Raft-replicated KV bucket (`<prefix>_registry`, replicas
 * configurable: 3 on a 3-node NATS cluster).
 *
 * Layout — one key per durable fact, so the bucket IS the compacted registry
 * (history 1 per key; compact() purges delete markers):
 *   meta.started          {starts, master_id, at}
 *   agents.<id>           {id, info, unreachable_at?}  (deleted when the agent is removed)
 *   frameworks.<id>       {id, info}            (deleted when the framework is removed)
 *   removed.<id>          {id, at}              (a removed framework id stays retired)
 *
 * Invariants:
 *  - Every write is compare-and-set on the bucket's stream sequence
 *    (Nats-Expected-Last-Sequence): it succeeds only if nothing was written
 *    since this master's previous write. A new leader writes `meta.started`
 *    when it loads, so every later write of a deposed leader fails: the
 *    registry is fenced, and `onFenced` fires.
 *  - append() resolves only after a quorum of replicas stored the write (the
 *    JetStream ack). Writes are pipelined in order; a transient failure (a NATS
 *    node dying under the write) retries the first unconfirmed write with its
 *    original message id, so a write the stream already stored is answered as
 *    a duplicate, never applied twice, and the writes behind it keep their order.
 *  - Bounded: at most MAX_QUEUED writes wait; transient failures are retried for
 *    at most RETRY_FOR_MS, then every waiting append fails (the master must step down).
 */
import { headers as natsHeaders, nuid, type JetStreamClient, type KV, type NatsConnection, type PubAck } from 'nats';
import { BerthError } from '../../proto/errors.js';
import type { Logger } from '../../proto/log.js';
import { openBucket, readAll } from '../../proto/transport/nats.js';
import type { AgentInfo, FrameworkInfo } from '../../proto/types.js';
import { rememberRemoved, type Registry, type RegistryEvent, type RegistryState } from './types.js';

export const MAX_QUEUED = 100_000;
const BATCH = 512;
const RETRY_FOR_MS = 30_000;

export interface KvRegistryOptions {
  prefix?: string;
  replicas?: number;
  log?: Logger;
  /** Called once when a write fails because another master wrote since (this one is deposed). */
  onFenced?: (why: string) => void;
  /** A live copy of the bucket kept while standing by: load() takes it instead of reading every key. */
  mirror?: KvRegistryMirror;
}

/** How long load() waits for the mirror to reach the stream's last sequence before reading the bucket itself. */
const MIRROR_CATCH_UP_MS = 1_000;

type EntryValue = { id: string; info?: unknown; starts?: number; unreachable_at?: number };

/** One stored key into the state being rebuilt. */
function applyEntry(s: RegistryState, bucket: string, key: string, v: EntryValue): void {
  const [kind] = key.split('.', 1);
  switch (kind) {
    case 'meta': if (key === 'meta.started') s.starts = v.starts ?? 0; break;
    case 'agents':
      s.agents.set(v.id, v.info as AgentInfo);
      if (v.unreachable_at !== undefined) s.unreachable!.set(v.id, v.unreachable_at);
      break;
    case 'frameworks': s.frameworks.set(v.id, v.info as FrameworkInfo); break;
    case 'removed': rememberRemoved(s.removedFrameworks, v.id); break;
    default: throw new BerthError('IO', `registry bucket ${bucket}: unknown key ${key}`);
  }
}

/**
 * A warm standby's copy of the registry bucket: one watch over every key, kept for the life of
 * the master process, so a new leader's load() costs a copy of what it already holds instead of
 * reading every key over NATS (about 1 s per 1,000 agents on a loaded R3 cluster).
 *
 * Invariants: entries are applied in stream order and `maxRev` is the last one applied; a
 * revision that does not grow means the watch's consumer was reset (NATS node loss) and is
 * replaying from the start, so the copy is rebuilt from what follows. snapshot(seq) answers only
 * once maxRev >= seq, so it never returns less than the stream held when the caller looked.
 */
/** How often a short registry read (see load) is retried, 250 ms apart. */
const READ_ATTEMPTS = 40;

export class KvRegistryMirror {
  private readonly entries = new Map<string, EntryValue | null>();
  private maxRev = 0;
  private waiters: (() => void)[] = [];
  private watcher?: { stop(): void };
  private closed = false;

  constructor(private readonly nc: NatsConnection, private readonly o: { prefix?: string; replicas?: number; log?: Logger } = {}) {}

  private get bucket(): string { return `${this.o.prefix ?? 'berth'}_registry`; }

  async start(): Promise<void> {
    const kv = await openBucket(this.nc, this.bucket, this.o.replicas ?? 1);
    const w = await kv.watch({ key: '>' });
    this.watcher = w;
    void (async () => {
      for await (const e of w) {
        if (e.revision <= this.maxRev) this.entries.clear(); // consumer reset: replay from the start
        this.maxRev = e.revision;
        try {
          this.entries.set(e.key, e.operation === 'PUT' ? e.json<EntryValue>() : null);
        } catch (err) {
          this.o.log?.warn({ key: e.key, err: (err as Error).message }, 'registry mirror: unreadable entry (load will read the bucket)');
          this.entries.set(e.key, { id: '' });
        }
        if (this.waiters.length) { const ws = this.waiters; this.waiters = []; for (const f of ws) f(); }
      }
    })().catch((err: Error) => { if (!this.closed) this.o.log?.warn({ err: err.message }, 'registry mirror stopped'); });
  }

  /** The registry as of the mirror's latest entry, once that is at least `seq`; undefined after `waitMs`. */
  async snapshot(seq: number, waitMs: number): Promise<{ state: RegistryState; maxRev: number; tombstones: number } | undefined> {
    const until = performance.now() + waitMs;
    while (this.maxRev < seq) {
      const left = until - performance.now();
      if (left <= 0 || this.closed) return undefined;
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
    const s: RegistryState = { agents: new Map(), frameworks: new Map(), removedFrameworks: new Set(), starts: 0, unreachable: new Map() };
    let tombstones = 0;
    for (const [key, v] of this.entries) {
      if (v === null) { tombstones++; continue; }
      if (!v.id && !key.startsWith('meta.')) return undefined; // an unreadable entry: let load() read the bucket
      applyEntry(s, this.bucket, key, v);
    }
    return { state: s, maxRev: this.maxRev, tombstones };
  }

  close(): void {
    this.closed = true;
    this.watcher?.stop();
    for (const f of this.waiters) f();
    this.waiters = [];
  }
}

interface Write {
  subject: string;
  data: Uint8Array;
  del: boolean;
  msgID: string;
  /** Fixed at first send, kept across retries. */
  expect?: number;
  done: (e?: Error) => void;
}

/** KV keys allow [-/_=.a-zA-Z0-9]; ids outside `[-_a-zA-Z0-9]` (dots would add tokens) are base64url'd behind '='. */
export function keyToken(id: string): string {
  return /^[-_a-zA-Z0-9]+$/.test(id) ? id : `=${Buffer.from(id, 'utf8').toString('base64url')}`;
}

const te = new TextEncoder();
const json = (v: unknown): Uint8Array => te.encode(JSON.stringify(v));

export class KvRegistry implements Registry {
  private kv?: KV;
  private js?: JetStreamClient;
  private bucket: string;
  private stream: string;
  /** Stream sequence of this master's last confirmed write (the CAS base). */
  private seq = 0;
  /** Next expected sequence to hand out (confirmed + in flight). */
  private nextExpect = 0;
  private queue: Write[] = [];
  private writing = false;
  private fenced?: string;
  private starts = 0;
  /** Agent infos as stored: agent_unreachable rewrites the agent's key with its info. */
  private agentInfos = new Map<string, AgentInfo>();
  private closed = false;
  /** Figures for /metrics and the bench. */
  readonly stats = { writes: 0, retries: 0, duplicates: 0 };

  constructor(private readonly nc: NatsConnection, private readonly o: KvRegistryOptions = {}) {
    this.bucket = `${o.prefix ?? 'berth'}_registry`;
    this.stream = `KV_${this.bucket}`;
  }

  async load(): Promise<RegistryState> {
    const t0 = performance.now();
    this.kv = await openBucket(this.nc, this.bucket, this.o.replicas ?? 1);
    const tOpen = performance.now();
    this.js = this.nc.jetstream({ timeout: 5_000 });
    const jsm = await this.nc.jetstreamManager({ timeout: 5_000 });
    // The CAS base is read BEFORE the keys: a write that lands in between makes our first write fail
    // (and the master retry its start), instead of being silently missed.
    const info = await jsm.streams.info(this.stream);
    const lastSeq = info.state.last_seq;
    // With history 1 every stored message is the current entry of one key (a delete marker too).
    const stored = info.state.messages;
    let s: RegistryState = { agents: new Map(), frameworks: new Map(), removedFrameworks: new Set(), starts: 0, unreachable: new Map() };
    let maxRev = 0;
    let tombstones = 0;
    // A warm standby's mirror already holds the keys: take its copy once it has seen lastSeq.
    const warm = await this.o.mirror?.snapshot(lastSeq, MIRROR_CATCH_UP_MS);
    if (warm) {
      ({ state: s, maxRev, tombstones } = warm);
    } else {
      // The stream info above comes from the stream's leader; the watch's consumer may be served
      // by a replica still catching up (a node that just rejoined), which delivers a consistent
      // but short view: acknowledged writes missing. So a read that delivered fewer entries
      // than the leader stores is read again until it is whole (or the load fails, loudly).
      for (let attempt = 0; ; attempt++) {
        const fresh: RegistryState = { agents: new Map(), frameworks: new Map(), removedFrameworks: new Set(), starts: 0, unreachable: new Map() };
        let got = 0; let rev = 0; let tomb = 0;
        await readAll(this.kv, (e) => {
          if (e.revision > lastSeq) { rev = Math.max(rev, e.revision); return; }
          got++;
          rev = Math.max(rev, e.revision);
          if (e.operation !== 'PUT') { tomb++; return; }
          applyEntry(fresh, this.bucket, e.key, e.json<EntryValue>());
        });
        if (got >= stored || rev > lastSeq) { s = fresh; maxRev = rev; tombstones = tomb; break; }
        if (attempt >= READ_ATTEMPTS) throw new BerthError('IO', `registry ${this.bucket}: read ${got} of the ${stored} entries its stream leader stores, ${READ_ATTEMPTS + 1} times (a replica not catching up?)`);
        this.o.log?.warn({ got, stored, attempt }, 'registry read short (a replica catching up served it): reading again');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    const tRead = performance.now();
    for (const id of s.removedFrameworks) s.frameworks.delete(id);
    if (maxRev > lastSeq) throw new BerthError('CONFLICT', `registry ${this.bucket} was written during load (another master is active)`);
    this.seq = lastSeq;
    this.nextExpect = lastSeq;
    this.starts = s.starts;
    this.agentInfos = new Map(s.agents);
    if (tombstones > 1000) await this.compact();
    this.o.log?.info({ agents: s.agents.size, frameworks: s.frameworks.size, from: warm ? 'mirror' : 'bucket', openMs: Math.round(tOpen - t0), readMs: Math.round(tRead - tOpen), totalMs: Math.round(performance.now() - t0) }, 'registry loaded from KV');
    return s;
  }

  /** Drops delete markers (compaction); the stream sequence, and so the CAS base, does not move. */
  async compact(): Promise<number> {
    // purgeDeletes is on the implementation (nats.js v2), not on the KV interface.
    const r = await (this.kv as KV & { purgeDeletes(olderMillis?: number): Promise<{ purged: number }> }).purgeDeletes(0);
    return r.purged;
  }

  append(ev: RegistryEvent): Promise<void> {
    if (!this.kv) return Promise.reject(new BerthError('IO', 'registry not loaded'));
    if (this.fenced) return Promise.reject(new BerthError('CONFLICT', `registry fenced: ${this.fenced}`));
    if (this.closed) return Promise.reject(new BerthError('IO', 'registry closed'));
    const ops = this.ops(ev);
    if (this.queue.length + ops.length > MAX_QUEUED) return Promise.reject(new BerthError('TOO_LARGE', `registry: over ${MAX_QUEUED} writes waiting`));
    if (ops.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let left = ops.length;
      let failed = false;
      for (const op of ops) {
        this.queue.push({
          ...op, msgID: nuid.next(),
          done: (e) => {
            if (failed) return;
            if (e) { failed = true; reject(e); return; }
            if (--left === 0) resolve();
          },
        });
      }
      if (!this.writing) { this.writing = true; setImmediate(() => { void this.pump(); }); }
    });
  }

  private ops(ev: RegistryEvent): { subject: string; data: Uint8Array; del: boolean }[] {
    const subj = (k: string): string => `$KV.${this.bucket}.${k}`;
    switch (ev.type) {
      case 'master_started':
        return [{ subject: subj('meta.started'), data: json({ starts: ++this.starts, master_id: ev.master_id, at: ev.at }), del: false }];
      case 'agent_admitted':
        this.agentInfos.set(ev.agent_id, ev.info);
        return [{ subject: subj(`agents.${keyToken(ev.agent_id)}`), data: json({ id: ev.agent_id, info: ev.info }), del: false }];
      case 'agent_unreachable': {
        const info = this.agentInfos.get(ev.agent_id);
        if (!info) return []; // as replay: unreachable only means something for a known agent
        return [{ subject: subj(`agents.${keyToken(ev.agent_id)}`), data: json({ id: ev.agent_id, info, unreachable_at: ev.at }), del: false }];
      }
      case 'agent_removed':
        this.agentInfos.delete(ev.agent_id);
        return [{ subject: subj(`agents.${keyToken(ev.agent_id)}`), data: new Uint8Array(0), del: true }];
      case 'framework_added':
      case 'framework_updated':
        return [{ subject: subj(`frameworks.${keyToken(ev.framework_id)}`), data: json({ id: ev.framework_id, info: ev.info }), del: false }];
      case 'framework_removed':
        return [
          { subject: subj(`removed.${keyToken(ev.framework_id)}`), data: json({ id: ev.framework_id, at: ev.at }), del: false },
          { subject: subj(`frameworks.${keyToken(ev.framework_id)}`), data: new Uint8Array(0), del: true },
        ];
      default:
        throw new BerthError('UNSUPPORTED', `KV registry: event type ${(ev as { type: string }).type} has no key mapping`);
    }
  }

  private publish(w: Write): Promise<PubAck> {
    const h = natsHeaders();
    if (w.del) h.set('KV-Operation', 'DEL');
    return this.js!.publish(w.subject, w.data, { msgID: w.msgID, expect: { lastSequence: w.expect! }, headers: h });
  }

  /** Sends writes in order, BATCH at a time; see the class comment for the retry rule. */
  private async pump(): Promise<void> {
    let retryingSince = 0;
    while (this.queue.length > 0 && !this.fenced) {
      const batch = this.queue.slice(0, BATCH);
      for (const w of batch) if (w.expect === undefined) w.expect = this.nextExpect++;
      const results = await Promise.allSettled(batch.map((w) => this.publish(w)));
      let i = 0;
      for (; i < batch.length; i++) {
        const r = results[i]!;
        const w = batch[i]!;
        if (r.status === 'fulfilled') {
          if (r.value.duplicate) this.stats.duplicates++;
          this.seq = r.value.seq;
          this.stats.writes++;
          w.done();
          continue;
        }
        const msg = String((r.reason as Error)?.message ?? r.reason);
        // Every write before this one is confirmed, so a sequence mismatch here means another writer.
        if (/wrong last sequence|10071/i.test(msg)) { this.fence(`another master wrote the registry (${msg})`); return; }
        break;
      }
      this.queue.splice(0, i);
      if (i === batch.length) { retryingSince = 0; continue; }
      // A transient failure at batch[i]: everything from it on is retried in order with the same ids.
      this.stats.retries++;
      if (!retryingSince) retryingSince = performance.now();
      if (performance.now() - retryingSince > RETRY_FOR_MS) { this.fence(`registry writes failing for ${RETRY_FOR_MS} ms`); return; }
      await new Promise((r) => setTimeout(r, 100));
    }
    this.writing = false;
  }

  private fence(why: string): void {
    if (this.fenced) return;
    this.fenced = why;
    this.o.log?.error({ why }, 'registry fenced');
    const err = new BerthError('CONFLICT', `registry fenced: ${why}`);
    for (const w of this.queue.splice(0)) w.done(err);
    this.writing = false;
    this.o.onFenced?.(why);
  }

  get isFenced(): boolean { return !!this.fenced; }

  async close(): Promise<void> {
    while (this.writing && !this.fenced) await new Promise((r) => setTimeout(r, 5));
    this.closed = true;
  }
}
