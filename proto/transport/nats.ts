/**
 * NATS transport (cluster mode): the same Conn / Dialer / MasterListener as
 * the WebSocket transport, with the same protobuf frames, over a NATS cluster.
 *
 * Subjects (prefix `berth` by default):
 *   <p>.master.<masterId>.connect.agent|framework   request/reply: open a session
 *   <p>.master.<masterId>.s.<sid>                     client → master frames of session sid
 *   <p>.agent.<sid> / <p>.framework.<sid>             master → client frames of session sid
 * A dialer finds the leading master through a LeaderDetector (the leader key in
 * JetStream KV), so agents and frameworks need nothing but the NATS URLs.
 *
 * Headers: `B-Epoch` on every master → client frame (the master's leadership
 * epoch); `B-Chunk: i/n` when a frame is larger than the server's max_payload;
 * `B-Close: reason` ends a session; `B-Ping` is a heartbeat with no body.
 *
 * Invariants:
 *  - Fencing: a client drops every frame whose epoch is lower than the highest
 *    epoch it has seen (from its detector or any frame), so a deposed master can
 *    no longer launch or kill anything; it closes its session when the detector
 *    names a different leader, so the agent or framework re-registers with it.
 *  - NATS does not report a peer's death: each side sends a ping when it has
 *    sent nothing for `heartbeatMs` and closes the session after
 *    `3 × heartbeatMs` without hearing anything.
 *  - Bounded: sessions per listener, pending connects, and a reassembled
 *    chunked frame (NATS_MAX_FRAME) are all limited; a violation closes only
 *    the session at fault.
 */
import { readFileSync } from 'node:fs';
import {
  connect, credsAuthenticator, headers as natsHeaders, nuid,
  type ConnectionOptions, type KV, type KvEntry, type Msg, type MsgHdrs, type NatsConnection, type Subscription,
} from 'nats';
import {
  decodeAgentToMaster, decodeCall, decodeEvent, decodeMasterToAgent,
  encodeAgentToMaster, encodeCall, encodeEvent, encodeMasterToAgent,
} from '../codec.js';
import { BerthError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AgentToMaster, Call, Event, MasterToAgent } from '../types.js';
import type { LeaderDetector } from './nats-detector.js';
import type { Conn, Dialer, MasterListener } from './types.js';

/** Largest frame after reassembly (bytes), as WS_MAX_PAYLOAD. */
export const NATS_MAX_FRAME = 16 << 20;
/** Sessions one master accepts at once (agents + frameworks). */
export const NATS_MAX_SESSIONS = 200_000;
export const DEFAULT_HEARTBEAT_MS = 5_000;
export const DEFAULT_READY_JITTER_MS = 250;
/** Frames a master handles per macrotask before yielding to timers and I/O. */
const DELIVER_BATCH = 64;

/** What a user gives to reach NATS: URLs, and credentials/TLS where their cluster needs them. */
export interface NatsOptions {
  servers: string[];
  /** A NATS .creds file (JWT + nkey seed). */
  credsFile?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** TLS: CA to trust, and a client certificate/key for mutual TLS. */
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Connection name shown by the server's monitoring. */
  name?: string;
}

/** Parses `--nats a,b --nats c` into a list; every entry must be a nats:// or tls:// URL or host:port. */
export function parseNatsUrls(values: string | string[]): string[] {
  const list = (Array.isArray(values) ? values : [values]).flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new BerthError('INVALID', '--nats: give at least one NATS URL (nats://host:4222)');
  for (const u of list) {
    if (!/^((nats|tls|ws|wss):\/\/)?[^\s/]+(:\d+)?$/.test(u)) throw new BerthError('INVALID', `--nats: '${u}' is not a NATS URL (nats://host:port)`);
  }
  return list;
}

/** Connects with reconnects forever (a cluster member outlives any one NATS node). */
export async function connectNats(o: NatsOptions): Promise<NatsConnection> {
  const opts: ConnectionOptions = {
    servers: o.servers,
    name: o.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Notice a dead server within ~4 s, so a client moves to a live node quickly.
    pingInterval: 2_000,
    maxPingOut: 2,
    waitOnFirstConnect: true,
    timeout: 10_000,
  };
  if (o.credsFile) opts.authenticator = credsAuthenticator(readFileSync(o.credsFile));
  if (o.user !== undefined) { opts.user = o.user; opts.pass = o.pass; }
  if (o.token !== undefined) opts.token = o.token;
  if (o.tlsCaFile || o.tlsCertFile || o.tlsKeyFile) {
    opts.tls = { caFile: o.tlsCaFile, certFile: o.tlsCertFile, keyFile: o.tlsKeyFile };
  }
  try {
    return await connect(opts);
  } catch (e) {
    throw new BerthError('IO', `cannot connect to NATS ${o.servers.join(',')}: ${(e as Error).message}`);
  }
}

/** Creates (or binds) a KV bucket, retrying while JetStream elects its meta leader. */
export async function openBucket(nc: NatsConnection, bucket: string, replicas: number, timeoutMs = 30_000, history = 1, requestTimeoutMs = 5_000): Promise<KV> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await nc.jetstream({ timeout: requestTimeoutMs }).views.kv(bucket, { history, replicas });
    } catch (e) {
      if (performance.now() > until) throw new BerthError('IO', `cannot open KV bucket ${bucket} (replicas ${replicas}): ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * Every current entry of a KV bucket (last value per key, delete markers included), read once.
 * The end is the entry the server delivered with nothing pending after it (`delta` 0). nats.js's
 * own "initialized" signal is not used for that: it counts deliveries, and an ordered consumer
 * reset (a NATS node dying) makes it fire early, which would truncate the read. It only tells an
 * empty bucket apart (nothing received and nothing to come).
 */
export async function readAll(kv: KV, each: (e: KvEntry) => void): Promise<void> {
  let initialized = false;
  const w = await kv.watch({ key: '>', initializedFn: () => { initialized = true; } });
  if (initialized && w.getReceived() === 0) { w.stop(); return; }
  for await (const e of w) {
    each(e);
    if (e.delta === 0) break;
  }
  w.stop();
}

const te = new TextEncoder();
const td = new TextDecoder();
const HDR_EPOCH = 'B-Epoch';
const HDR_CHUNK = 'B-Chunk';
const HDR_CLOSE = 'B-Close';
const HDR_PING = 'B-Ping';

let nextId = 1;

interface ConnOpts<In, Out> {
  nc: NatsConnection;
  /** Where this side publishes. */
  to: string;
  remote: string;
  enc: (m: Out) => Uint8Array;
  dec: (b: Uint8Array) => In;
  heartbeatMs: number;
  /** Master side: the epoch stamped on every frame. */
  epoch?: number;
  /** Client side: drop frames older than this (a function: the detector's highest epoch moves). */
  minEpoch?: () => number;
  log?: Logger;
  onStale?: () => void;
}

class NatsConn<In, Out> implements Conn<In, Out> {
  readonly id = `nats-${nextId++}`;
  readonly remote: string;
  private msgCbs: ((m: In) => void)[] = [];
  private closeCbs: ((r: string) => void)[] = [];
  private chunks: Uint8Array[] = [];
  private chunkBytes = 0;
  private lastSent = performance.now();
  private lastHeard = performance.now();
  private hbTimer?: NodeJS.Timeout;
  /** Frames that arrived before the first onMessage (a dialer hands the conn over after a round trip). */
  private early: In[] = [];
  closed = false;
  /** Released on close (the dialer's per-session subscription). */
  cleanup?: () => void;

  constructor(private readonly o: ConnOpts<In, Out>) {
    this.remote = o.remote;
    if (o.heartbeatMs > 0) {
      this.hbTimer = setInterval(() => this.tick(), Math.max(10, Math.floor(o.heartbeatMs / 2)));
      this.hbTimer.unref();
    }
  }

  private tick(): void {
    const t = performance.now();
    if (t - this.lastHeard > 3 * this.o.heartbeatMs) { this.shutdown(`no frame or heartbeat for ${3 * this.o.heartbeatMs} ms`, true); return; }
    if (t - this.lastSent >= this.o.heartbeatMs) this.publish(new Uint8Array(0), (h) => h.set(HDR_PING, '1'));
  }

  private publish(data: Uint8Array, hdr?: (h: MsgHdrs) => void): void {
    const h = natsHeaders();
    if (this.o.epoch !== undefined) h.set(HDR_EPOCH, String(this.o.epoch));
    hdr?.(h);
    try {
      this.o.nc.publish(this.o.to, data, { headers: h });
      this.lastSent = performance.now();
    } catch (e) {
      this.shutdown(`publish failed: ${(e as Error).message}`, false);
    }
  }

  /** One inbound NATS message of this session. */
  deliver(m: Msg): void {
    if (this.closed) return;
    const h = m.headers;
    if (this.o.minEpoch) {
      const ep = Number(h?.get(HDR_EPOCH) || 0);
      if (ep < this.o.minEpoch()) {
        this.o.log?.warn({ epoch: ep, current: this.o.minEpoch(), conn: this.id }, 'Ignoring frame from a master with an older epoch (stale master)');
        this.o.onStale?.();
        return;
      }
    }
    this.lastHeard = performance.now();
    if (h?.get(HDR_PING)) return;
    const closing = h?.get(HDR_CLOSE);
    if (closing) { this.shutdown(`peer closed: ${closing}`, false); return; }
    let body = m.data;
    const chunk = h?.get(HDR_CHUNK);
    if (chunk) {
      const [i, n] = chunk.split('/').map(Number) as [number, number];
      this.chunkBytes += body.length;
      if (this.chunkBytes > NATS_MAX_FRAME || i !== this.chunks.length + 1 || n > 4096) {
        this.close(`chunked frame invalid or over ${NATS_MAX_FRAME} bytes`);
        return;
      }
      this.chunks.push(body);
      if (i < n) return;
      body = Buffer.concat(this.chunks);
      this.chunks = [];
      this.chunkBytes = 0;
    }
    let msg: In;
    try {
      msg = this.o.dec(body);
    } catch (e) {
      this.close(`bad frame: ${String((e as Error).message).slice(0, 120)}`);
      return;
    }
    if (this.msgCbs.length === 0) { if (this.early.length < 10_000) this.early.push(msg); return; }
    for (const cb of this.msgCbs) cb(msg);
  }

  send(msg: Out): void {
    if (this.closed) return;
    const data = this.o.enc(msg);
    const max = Math.max(1024, (this.o.nc.info?.max_payload ?? 1 << 20) - 4096);
    if (data.length <= max) { this.publish(data); return; }
    if (data.length > NATS_MAX_FRAME) { this.o.log?.error({ bytes: data.length }, 'dropping a frame over NATS_MAX_FRAME'); return; }
    const n = Math.ceil(data.length / max);
    for (let i = 0; i < n; i++) this.publish(data.subarray(i * max, (i + 1) * max), (h) => h.set(HDR_CHUNK, `${i + 1}/${n}`));
  }

  close(reason = 'closed'): void {
    if (this.closed) return;
    this.publish(new Uint8Array(0), (h) => h.set(HDR_CLOSE, reason.slice(0, 120) || 'closed'));
    this.shutdown(reason, false);
  }

  /** Local end of the session (no frame sent). */
  shutdown(reason: string, _timedOut: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (this.hbTimer) clearInterval(this.hbTimer);
    this.cleanup?.();
    for (const cb of this.closeCbs) cb(reason);
  }

  onMessage(cb: (m: In) => void): void {
    this.msgCbs.push(cb);
    if (this.early.length) {
      const early = this.early;
      this.early = [];
      queueMicrotask(() => { for (const m of early) for (const c of this.msgCbs) c(m); });
    }
  }
  onClose(cb: (r: string) => void): void { this.closeCbs.push(cb); }
}

interface Hello { to: string }
interface Welcome { to: string; epoch: number; master_id: string }

export interface NatsListenerOptions {
  prefix?: string;
  masterId: string;
  /** Leadership epoch stamped on every frame (0 in standalone mode). */
  epoch: number;
  heartbeatMs?: number;
  log?: Logger;
}

/** The master's side: answers connect requests on its own subjects, one wildcard subscription for all sessions. */
export class NatsListener implements MasterListener {
  private agentCbs: ((c: Conn<AgentToMaster, MasterToAgent>) => void)[] = [];
  private fwCbs: ((c: Conn<Call, Event>) => void)[] = [];
  private readonly sessions = new Map<string, NatsConn<unknown, unknown>>();
  private subs: Subscription[] = [];
  private readonly base: string;
  private readonly prefix: string;

  constructor(private readonly nc: NatsConnection, private readonly o: NatsListenerOptions) {
    this.prefix = o.prefix ?? 'berth';
    this.base = `${this.prefix}.master.${o.masterId}`;
    this.subs.push(nc.subscribe(`${this.base}.s.*`, { callback: (err, m) => { if (!err) this.route(m); } }));
    this.subs.push(nc.subscribe(`${this.base}.connect.agent`, { callback: (err, m) => { if (!err) this.accept(m, 'agent'); } }));
    this.subs.push(nc.subscribe(`${this.base}.connect.framework`, { callback: (err, m) => { if (!err) this.accept(m, 'framework'); } }));
  }

  /** Resolves once the server has the subscriptions, so a dialer that sees this master elected finds it. */
  async ready(): Promise<void> { await this.nc.flush(); }

  /**
   * Inbound frames are queued and handled at most DELIVER_BATCH per macrotask: a storm (every
   * agent re-registering after a failover) must not hold the event loop for seconds, or the
   * leader's own lease renewals and timers would starve and it would fence itself.
   */
  private inbound: Msg[] = [];
  private draining = false;

  private route(m: Msg): void {
    this.inbound.push(m);
    if (!this.draining) { this.draining = true; setImmediate(() => this.drain()); }
  }

  private drain(): void {
    const batch = this.inbound.splice(0, DELIVER_BATCH);
    for (const m of batch) this.sessions.get(m.subject.slice(this.base.length + 3))?.deliver(m);
    if (this.inbound.length > 0) setImmediate(() => this.drain());
    else this.draining = false;
  }

  private accept(m: Msg, kind: 'agent' | 'framework'): void {
    let hello: Hello;
    try {
      hello = JSON.parse(td.decode(m.data)) as Hello;
    } catch {
      m.respond(te.encode(JSON.stringify({ error: 'connect: body must be JSON {"to": subject}' })));
      return;
    }
    const want = `${this.prefix}.${kind}.`;
    if (typeof hello.to !== 'string' || !hello.to.startsWith(want) || hello.to.length > 256 || /[\s*>]/.test(hello.to)) {
      m.respond(te.encode(JSON.stringify({ error: `connect: 'to' must be a subject under ${want}` })));
      return;
    }
    if (this.sessions.size >= NATS_MAX_SESSIONS) {
      m.respond(te.encode(JSON.stringify({ error: `master has ${NATS_MAX_SESSIONS} sessions` })));
      return;
    }
    const sid = nuid.next();
    const common = { nc: this.nc, to: hello.to, remote: hello.to, heartbeatMs: this.o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, epoch: this.o.epoch, log: this.o.log };
    const conn = kind === 'agent'
      ? new NatsConn<AgentToMaster, MasterToAgent>({ ...common, enc: encodeMasterToAgent, dec: decodeAgentToMaster })
      : new NatsConn<Call, Event>({ ...common, enc: encodeEvent, dec: decodeCall });
    this.sessions.set(sid, conn as NatsConn<unknown, unknown>);
    conn.cleanup = () => this.sessions.delete(sid);
    // Hand the conn to the master before replying: frames can follow the reply immediately.
    if (kind === 'agent') for (const cb of this.agentCbs) cb(conn as Conn<AgentToMaster, MasterToAgent>);
    else for (const cb of this.fwCbs) cb(conn as Conn<Call, Event>);
    const welcome: Welcome = { to: `${this.base}.s.${sid}`, epoch: this.o.epoch, master_id: this.o.masterId };
    m.respond(te.encode(JSON.stringify(welcome)));
  }

  onAgent(cb: (c: Conn<AgentToMaster, MasterToAgent>) => void): void { this.agentCbs.push(cb); }
  onFramework(cb: (c: Conn<Call, Event>) => void): void { this.fwCbs.push(cb); }

  get sessionCount(): number { return this.sessions.size; }

  /** Stops accepting and ends every session (a master stepping down). */
  close(reason = 'master stopped'): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    for (const c of [...this.sessions.values()]) c.close(reason);
    this.sessions.clear();
  }
}

export interface NatsDialerOptions {
  prefix?: string;
  detector: LeaderDetector;
  /** How long a dial waits for a leader to be elected (default 30 s). */
  leaderWaitMs?: number;
  /** Longest random delay before connecting to a leader that just became ready (default 250 ms). */
  readyJitterMs?: number;
  heartbeatMs?: number;
  log?: Logger;
}

/**
 * The client's side. Each dial opens a session with the leader the detector
 * names; the session closes itself when a different leader is elected.
 */
export class NatsDialer implements Dialer {
  private readonly prefix: string;
  /** Frames dropped because they came from a master with an older epoch (for tests and metrics). */
  staleFramesDropped = 0;

  constructor(private readonly nc: NatsConnection, private readonly o: NatsDialerOptions) {
    this.prefix = o.prefix ?? 'berth';
  }

  /**
   * Called when a new leader is elected (not when the lease merely lapses): a client redials at
   * once, with its own jitter, instead of waiting out a backoff grown while there was no leader.
   */
  onLeaderChange(cb: () => void): () => void {
    const cur = this.o.detector.current();
    let last = cur?.ready ? cur : undefined;
    return this.o.detector.onChange((l) => {
      if (!l?.ready) return;
      if (l.master_id !== last?.master_id || l.epoch !== last?.epoch) cb();
      last = l;
    });
  }

  dialAgent(): Promise<Conn<MasterToAgent, AgentToMaster>> {
    return this.dial<MasterToAgent, AgentToMaster>('agent', encodeAgentToMaster, decodeMasterToAgent);
  }
  dialFramework(): Promise<Conn<Event, Call>> {
    return this.dial<Event, Call>('framework', encodeCall, decodeEvent);
  }

  private async dial<In, Out>(kind: 'agent' | 'framework', enc: (m: Out) => Uint8Array, dec: (b: Uint8Array) => In): Promise<Conn<In, Out>> {
    const d = this.o.detector;
    const waitMs = this.o.leaderWaitMs ?? 30_000;
    const until = performance.now() + waitMs;
    const inbox = `${this.prefix}.${kind}.${nuid.next()}`;
    let conn: NatsConn<In, Out> | undefined;
    const sub = this.nc.subscribe(inbox, { callback: (err, m) => { if (!err) conn?.deliver(m); } });
    let welcome: Welcome & { error?: string };
    // Dial only a leader that says it listens (`ready` in its record). Clients that had to wait
    // for that moment spread their connects over a random delay, so a failover's thousands of
    // re-registrations do not land in the same millisecond.
    const waited = !d.current()?.ready;
    let leader = await d.waitForLeader(waitMs, true).catch((e: Error) => { sub.unsubscribe(); throw e; });
    if (waited) await new Promise((r) => setTimeout(r, Math.random() * (this.o.readyJitterMs ?? DEFAULT_READY_JITTER_MS)));
    await this.nc.flush();
    // A leader that is ready but whose subscriptions have not reached this client's NATS node yet
    // answers "no responders": retry with a short backoff (not through the caller's).
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = await this.nc.request(`${this.prefix}.master.${leader.master_id}.connect.${kind}`,
          te.encode(JSON.stringify({ to: inbox } satisfies Hello)), { timeout: 5_000 });
        welcome = JSON.parse(td.decode(reply.data)) as Welcome & { error?: string };
        break;
      } catch (e) {
        const noResponders = /503|no responders/i.test(String((e as Error).message));
        if (!noResponders || performance.now() > until) {
          sub.unsubscribe();
          throw new BerthError('IO', `cannot open a ${kind} session with master ${leader.master_id}: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2)));
        leader = await d.waitForLeader(Math.max(1, until - performance.now()), true).catch((err: Error) => { sub.unsubscribe(); throw err; });
      }
    }
    if (welcome.error) { sub.unsubscribe(); throw new BerthError('IO', welcome.error); }
    if (welcome.epoch < d.highestEpoch) { sub.unsubscribe(); throw new BerthError('CONFLICT', `master ${welcome.master_id} has epoch ${welcome.epoch}, older than ${d.highestEpoch}`); }
    const epoch = welcome.epoch;
    conn = new NatsConn<In, Out>({
      nc: this.nc, to: welcome.to, remote: `${welcome.master_id}@nats`, enc, dec,
      heartbeatMs: this.o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      minEpoch: () => Math.max(epoch, d.highestEpoch), log: this.o.log,
      onStale: () => { this.staleFramesDropped++; },
    });
    const c = conn;
    const off = d.onChange((l) => {
      if (l && (l.master_id !== welcome.master_id || l.epoch !== epoch)) c.close(`leader changed to ${l.master_id} (epoch ${l.epoch})`);
    });
    c.cleanup = () => { off(); sub.unsubscribe(); };
    return c;
  }
}
