/**
 * The SDK's framework client: subscribes over a Transport, delivers events to
 * callbacks and async iterators, makes calls, acknowledges updates, and
 * resubscribes with the same framework id after a lost connection.
 *
 * Lifecycle (one state at a time; `assertNever` keeps switches total):
 *   CONNECTING   first subscription in progress (`connect()` has not resolved)
 *   SUBSCRIBED   a live link; calls go out on it
 *   RECONNECTING link lost; resubscribing with backoff + jitter until the
 *                failover timeout would have removed the framework
 *   CLOSED       `close()`/`teardown()`, a fatal ERROR, or failover gave up;
 *                terminal, iterators end
 *
 * Invariants:
 *  - Events are delivered in arrival order, one at a time per framework: an
 *    async callback finishes before the next event is handed to any callback
 *    (a single drain loop over one queue).
 *  - With autoAcknowledge, an update carrying a uuid is acknowledged after
 *    every 'update' callback for it has finished without throwing; a callback
 *    that throws leaves it unacknowledged, so the agent redelivers it.
 *  - Updates without a uuid (master-generated: reconciliation, TASK_LOST…)
 *    are never acknowledged, as Mesos requires.
 *  - A link that goes quiet for 3 heartbeat intervals is treated as lost.
 */
import os from 'node:os';
import { backoffDelay, type Clock, RealClock, type TimerHandle } from '../../proto/clock.js';
import { BerthError } from '../../proto/errors.js';
import { logger, type Logger } from '../../proto/log.js';
import { WsDialer } from '../../proto/transport/ws.js';
import type { Dialer } from '../../proto/transport/types.js';
import { findCredential, findTls, type ClientSecurity, type Credential, type TlsClientOptions } from '../../proto/transport/credentials.js';
import type {
  Call, Event, FrameworkCapabilityType, FrameworkInfo, MasterInfo, Offer, Operation, TaskInfo, TaskStatus,
} from '../../proto/types.js';
import { OfferPool, taskInfo, type TaskSpec } from './tasks.js';
import { HttpTransport, NativeTransport, type HttpEncoding, type Link, type Transport } from './transport.js';

type State = 'CONNECTING' | 'SUBSCRIBED' | 'RECONNECTING' | 'CLOSED';

function assertNever(x: never): never { throw new Error(`unexpected state ${String(x)}`); }

/** FrameworkInfo in plain terms; everything but `name` has a default. */
export interface FrameworkOptions {
  name: string;
  /** Default: the current OS user. */
  user?: string;
  /** Roles to subscribe with (MULTI_ROLE is added automatically). Default ['*']. */
  roles?: string[];
  /** Seconds the master keeps the framework's tasks after its connection is lost. The SDK reconnects within it. */
  failover_timeout?: number;
  checkpoint?: boolean;
  capabilities?: FrameworkCapabilityType[];
  hostname?: string;
  principal?: string;
  webui_url?: string;
  labels?: Record<string, string>;
}

export interface ConnectOptions {
  /**
   * `berth://host:port` (native WebSocket), `http://host:port` (Mesos v1 HTTP API), or a Dialer
   * (e.g. a MemoryNetwork, for tests and the simulator).
   */
  master: string | Dialer;
  framework: FrameworkOptions;
  /** Acknowledge each update once its 'update' callbacks have run (default true). */
  autoAcknowledge?: boolean;
  /** Resubscribe as this existing framework (failover of a previous process). */
  frameworkId?: string;
  /** Roles to start suppressed (no offers until revive). */
  suppressedRoles?: string[];
  /** HTTP API encoding (default json). */
  encoding?: HttpEncoding;
  /**
   * Principal and secret for a master that authenticates frameworks (HTTP Basic on every
   * request and on the native upgrade). Default: $BERTH_CREDENTIAL (a file), or
   * $BERTH_PRINCIPAL + $BERTH_SECRET, or `<workDir>/credential`; none = unauthenticated. Set `principal` in
   * `framework` too, or the master binds the framework to this one.
   */
  credential?: Credential;
  /**
   * TLS: the CA that signed the master's certificate (PEM), and a client certificate and key
   * if the master asks for one. Default: $BERTH_TLS_CA / $BERTH_TLS_CERT / $BERTH_TLS_KEY
   * (file paths). Giving it (or an https:// / berths:// master) makes the SDK use TLS.
   */
  tls?: TlsClientOptions;
  /** A framework's work dir: `<workDir>/credential` is used when no credential is given otherwise. */
  workDir?: string;
  /** Reconnect policy: backoff from `baseMs` doubling to `maxMs`, with jitter. `false` disables. */
  reconnect?: { baseMs?: number; maxMs?: number } | false;
  /** How long `connect()` keeps retrying an unreachable master (default 10 s). */
  connectTimeoutMs?: number;
  clock?: Clock;
  log?: Logger;
}

export interface SubscribedInfo {
  frameworkId: string;
  heartbeatIntervalSeconds: number;
  masterInfo?: MasterInfo;
  /** True when this is a resubscription after a lost connection. */
  reconnected: boolean;
}

/** An error the framework should hear about; `fatal` ones close the framework. */
export interface FrameworkError {
  message: string;
  fatal: boolean;
  /** Where it came from: the master (ERROR event or rejected call), the connection, or a callback. */
  source: 'master' | 'call' | 'connection' | 'callback';
  cause?: unknown;
}

/** Everything `events()` yields, as a tagged union. */
export type FrameworkEvent =
  | { type: 'subscribed'; info: SubscribedInfo }
  | { type: 'offers'; offers: Offer[] }
  | { type: 'rescind'; offerId: string }
  | { type: 'update'; status: TaskStatus }
  | { type: 'message'; agentId: string; executorId: string; data: string }
  | { type: 'failure'; agentId?: string; executorId?: string; status?: number }
  | { type: 'error'; error: FrameworkError }
  | { type: 'heartbeat' }
  | { type: 'disconnected'; reason: string; willReconnect: boolean };

/** Callback argument per event name. */
export interface EventArgs {
  subscribed: SubscribedInfo;
  offers: Offer[];
  rescind: string;
  update: TaskStatus;
  message: { agentId: string; executorId: string; data: string };
  failure: { agentId?: string; executorId?: string; status?: number };
  error: FrameworkError;
  heartbeat: undefined;
  disconnected: { reason: string; willReconnect: boolean };
}
export type EventName = keyof EventArgs;
export type Callback<K extends EventName> = (arg: EventArgs[K]) => void | Promise<void>;

function argOf(ev: FrameworkEvent): EventArgs[EventName] {
  switch (ev.type) {
    case 'subscribed': return ev.info;
    case 'offers': return ev.offers;
    case 'rescind': return ev.offerId;
    case 'update': return ev.status;
    case 'message': return { agentId: ev.agentId, executorId: ev.executorId, data: ev.data };
    case 'failure': return { agentId: ev.agentId, executorId: ev.executorId, status: ev.status };
    case 'error': return ev.error;
    case 'heartbeat': return undefined;
    case 'disconnected': return { reason: ev.reason, willReconnect: ev.willReconnect };
    default: return assertNever(ev);
  }
}

/** A bounded async queue behind each `events()` iterator. */
class EventIterator implements AsyncIterableIterator<FrameworkEvent> {
  private buf: FrameworkEvent[] = [];
  private waiting?: (r: IteratorResult<FrameworkEvent>) => void;
  done = false;
  constructor(private readonly detach: (it: EventIterator) => void, private readonly max: number) {}

  push(ev: FrameworkEvent): void {
    if (this.done) return;
    if (this.waiting) { const w = this.waiting; this.waiting = undefined; w({ value: ev, done: false }); return; }
    // An iterator nobody reads must not grow without bound: the oldest heartbeats go first, then the oldest events.
    if (this.buf.length >= this.max) {
      const hb = this.buf.findIndex((e) => e.type === 'heartbeat');
      this.buf.splice(hb >= 0 ? hb : 0, 1);
    }
    this.buf.push(ev);
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    if (this.waiting) { const w = this.waiting; this.waiting = undefined; w({ value: undefined, done: true }); }
  }

  next(): Promise<IteratorResult<FrameworkEvent>> {
    const ev = this.buf.shift();
    if (ev) return Promise.resolve({ value: ev, done: false });
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((r) => { this.waiting = r; });
  }

  return(): Promise<IteratorResult<FrameworkEvent>> {
    this.buf = [];
    this.end();
    this.detach(this);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<FrameworkEvent> { return this; }
}

const CALL_REJECTED = 'call rejected: ';
/** Event types held for a listener rather than dropped (see `parked`). */
const PARKABLE = new Set<EventName>(['offers', 'update', 'rescind', 'message', 'failure']);
const MAX_PARKED = 10_000;

export class Framework {
  private state: State = 'CONNECTING';
  private link?: Link;
  private id?: string;
  private info: FrameworkInfo;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly callbacks = new Map<EventName, Callback<EventName>[]>();
  private readonly iterators = new Set<EventIterator>();
  /** Events awaiting delivery: `queue[qHead…]` (a head index, not shift(): O(1) per event at any backlog). */
  private queue: FrameworkEvent[] = [];
  private qHead = 0;
  /**
   * Events that arrived while nobody listened for their type (typically OFFERS right behind
   * SUBSCRIBED, before the caller's `await connect()` continuation registered `on('offers')`).
   * They are held, oldest first and bounded, and delivered to the first listener of their type:
   * dropping them would leave offers outstanding (unanswerable) and updates unacknowledged.
   */
  private readonly parked: FrameworkEvent[] = [];
  private draining = false;
  private watchdog?: TimerHandle;
  private retryTimer?: TimerHandle;
  private heartbeatMs = 15_000;
  private attempt = 0;
  private disconnectedAt = 0;
  private tearingDown = false;
  /**
   * Held while a retry timer is the only thing pending (RealClock timers are unref'd): a
   * framework that is resubscribing must keep its process alive, as it would with a socket open.
   */
  private keepAlive?: NodeJS.Timeout;
  private subscribedOnce?: { resolve: () => void; reject: (e: Error) => void };
  /** Offers received and not yet answered or rescinded. */
  readonly offers = new Map<string, Offer>();

  constructor(private readonly opts: ConnectOptions) {
    this.clock = opts.clock ?? new RealClock();
    this.log = opts.log ?? logger('sdk', { framework: opts.framework.name });
    this.transport = makeTransport(opts.master, opts.encoding, {
      credential: opts.credential ?? findCredential({ workDir: opts.workDir }),
      tls: opts.tls ?? findTls(),
    });
    this.info = frameworkInfo(opts.framework, opts.frameworkId);
  }

  /** The framework id (known once subscribed). */
  get frameworkId(): string {
    if (!this.id) throw new BerthError('CONFLICT', 'not subscribed yet');
    return this.id;
  }
  get connected(): boolean { return this.state === 'SUBSCRIBED'; }
  get closed(): boolean { return this.state === 'CLOSED'; }
  get transportKind(): 'native' | 'http' { return this.transport.kind; }
  get frameworkInfo(): FrameworkInfo { return this.info; }

  // ------------------------------------------------------------ events

  /** Registers a callback; returns a function that removes it. Callbacks run one at a time, in order. */
  on<K extends EventName>(name: K, cb: Callback<K>): () => void {
    const list = this.callbacks.get(name) ?? [];
    list.push(cb as Callback<EventName>);
    this.callbacks.set(name, list);
    this.unpark((ev) => ev.type === name);
    return () => {
      const l = this.callbacks.get(name);
      if (l) l.splice(l.indexOf(cb as Callback<EventName>), 1);
    };
  }

  /** Every event from now on, until the framework closes. `max` bounds the unread backlog. */
  events(max = 10_000): AsyncIterableIterator<FrameworkEvent> {
    const it = new EventIterator((x) => this.iterators.delete(x), max);
    if (this.state === 'CLOSED') it.end(); else this.iterators.add(it);
    for (const ev of this.parked) it.push(ev);
    this.unpark(() => true);
    return it;
  }

  /** Moves held events matching `pred` back to the front of the delivery queue, in arrival order. */
  private unpark(pred: (ev: FrameworkEvent) => boolean): void {
    const back = this.parked.filter(pred);
    if (back.length === 0) return;
    for (let i = this.parked.length - 1; i >= 0; i--) if (pred(this.parked[i]!)) this.parked.splice(i, 1);
    this.queue.splice(this.qHead, 0, ...back);
    // Deliver on a later microtask: a callback must never run inside the `on()` that registers it.
    queueMicrotask(() => { if (!this.draining) void this.drain(); });
  }

  private emit(ev: FrameworkEvent): void {
    for (const it of this.iterators) it.push(ev);
    this.queue.push(ev);
    if (!this.draining) void this.drain();
  }

  private nextEvent(): FrameworkEvent | undefined {
    if (this.qHead >= this.queue.length) {
      if (this.qHead > 0) { this.queue = []; this.qHead = 0; }
      return undefined;
    }
    const ev = this.queue[this.qHead++];
    // Reclaim the consumed prefix once it dominates, so a long backlog costs O(1) amortised per event.
    if (this.qHead >= 4096 && this.qHead * 2 >= this.queue.length) { this.queue = this.queue.slice(this.qHead); this.qHead = 0; }
    return ev;
  }

  /** The single delivery loop: one event at a time through every callback for it. */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let ev = this.nextEvent(); ev; ev = this.nextEvent()) {
        // After close/teardown only the closing error is delivered: offers and updates queued
        // behind it could not be acted on (every call would fail).
        if (this.state === 'CLOSED' && ev.type !== 'error') continue;
        // With auto-acknowledgement an update nobody listens for is simply acknowledged (holding it
        // would stall the task's update stream); without it, it waits for a listener.
        const autoAcked = ev.type === 'update' && this.opts.autoAcknowledge !== false;
        if (PARKABLE.has(ev.type) && !autoAcked && !(this.callbacks.get(ev.type)?.length) && this.iterators.size === 0) {
          if (this.parked.length < MAX_PARKED) this.parked.push(ev);
          else this.log.warn({ event: ev.type }, 'dropping an event nobody listens for (backlog full)');
          continue;
        }
        let ok = true;
        for (const cb of [...(this.callbacks.get(ev.type) ?? [])]) {
          try {
            await cb(argOf(ev));
          } catch (e) {
            ok = false;
            this.log.warn({ err: (e as Error).message, event: ev.type }, 'callback threw');
            if (ev.type !== 'error') this.emit({ type: 'error', error: { message: `${ev.type} callback threw: ${(e as Error).message}`, fatal: false, source: 'callback', cause: e } });
          }
        }
        if (ev.type === 'update' && ok && this.opts.autoAcknowledge !== false && ev.status.uuid && ev.status.agent_id) {
          await this.acknowledge(ev.status).catch((e: Error) => this.log.debug({ err: e.message }, 'auto-acknowledge failed; the update will be redelivered'));
        }
      }
    } finally {
      this.draining = false;
    }
  }

  // ------------------------------------------------------------ lifecycle

  /** Subscribes; resolves once SUBSCRIBED arrived. */
  async start(): Promise<this> {
    const done = new Promise<void>((resolve, reject) => { this.subscribedOnce = { resolve, reject }; });
    const deadline = this.clock.now() + (this.opts.connectTimeoutMs ?? 10_000);
    const tryOnce = async (): Promise<void> => {
      try {
        await this.subscribe();
      } catch (e) {
        const err = e as BerthError;
        // An unreachable master is retried until the deadline; a refusal (4xx, ERROR) is final.
        if (err.code === 'IO' && this.clock.now() < deadline && this.state === 'CONNECTING') {
          this.holdProcess(true);
          this.retryTimer = this.clock.setTimeout(() => { this.holdProcess(false); void tryOnce(); }, this.nextDelay());
          return;
        }
        this.fail(err);
      }
    };
    await tryOnce();
    await done;
    return this;
  }

  private nextDelay(): number {
    const r = this.opts.reconnect === false ? {} : this.opts.reconnect ?? {};
    return backoffDelay(this.attempt++, r.baseMs ?? 250, r.maxMs ?? 10_000);
  }

  private subscribeCall(): Call {
    const call: Call = { type: 'SUBSCRIBE', subscribe: { framework_info: this.info } };
    if (this.opts.suppressedRoles?.length && this.id === undefined) call.subscribe!.suppressed_roles = this.opts.suppressedRoles;
    if (this.info.id) call.framework_id = this.info.id;
    return call;
  }

  /** One subscription attempt. Events flow into `onLinkEvent` as soon as the link is up. */
  private async subscribe(): Promise<void> {
    let link: Link | undefined;
    let gotSubscribed = false;
    const pending: Event[] = [];
    link = await this.transport.open(this.subscribeCall(), {
      onEvent: (ev) => {
        if (!link) { pending.push(ev); return; }
        if (!gotSubscribed && ev.type === 'ERROR') {
          // Refused before SUBSCRIBED (native transport): the subscription failed (fail() closes the link).
          this.fail(new BerthError('FORBIDDEN', ev.error?.message ?? 'subscription refused'));
          return;
        }
        if (ev.type === 'SUBSCRIBED') gotSubscribed = true;
        this.onLinkEvent(link, ev);
      },
      onClose: (reason) => { if (link) this.onLinkClosed(link, reason); },
    });
    if (this.state === 'CLOSED') { link.close(); return; }
    this.link = link;
    for (const ev of pending.splice(0)) {
      if (!gotSubscribed && ev.type === 'ERROR') { this.fail(new BerthError('FORBIDDEN', ev.error?.message ?? 'subscription refused')); return; }
      if (ev.type === 'SUBSCRIBED') gotSubscribed = true;
      this.onLinkEvent(link, ev);
    }
  }

  private onLinkEvent(link: Link, ev: Event): void {
    if (link !== this.link || this.state === 'CLOSED') return;
    this.feedWatchdog();
    switch (ev.type) {
      case 'SUBSCRIBED': {
        const s = ev.subscribed!;
        const reconnected = this.id !== undefined;
        this.id = s.framework_id.value;
        this.info = { ...this.info, id: { value: this.id } };
        this.heartbeatMs = (s.heartbeat_interval_seconds ?? 15) * 1000;
        this.state = 'SUBSCRIBED';
        this.attempt = 0;
        this.offers.clear();
        this.feedWatchdog();
        this.log.info({ framework_id: this.id, transport: this.transport.kind, reconnected }, 'subscribed');
        this.emit({ type: 'subscribed', info: { frameworkId: this.id, heartbeatIntervalSeconds: s.heartbeat_interval_seconds ?? 15, masterInfo: s.master_info, reconnected } });
        this.subscribedOnce?.resolve();
        this.subscribedOnce = undefined;
        return;
      }
      case 'OFFERS': {
        const offers = ev.offers?.offers ?? [];
        for (const o of offers) this.offers.set(o.id.value, o);
        this.emit({ type: 'offers', offers });
        return;
      }
      case 'RESCIND':
        this.offers.delete(ev.rescind!.offer_id.value);
        this.emit({ type: 'rescind', offerId: ev.rescind!.offer_id.value });
        return;
      case 'UPDATE': this.emit({ type: 'update', status: ev.update!.status }); return;
      case 'MESSAGE': this.emit({ type: 'message', agentId: ev.message!.agent_id.value, executorId: ev.message!.executor_id.value, data: ev.message!.data }); return;
      case 'FAILURE': this.emit({ type: 'failure', agentId: ev.failure?.agent_id?.value, executorId: ev.failure?.executor_id?.value, status: ev.failure?.status }); return;
      case 'HEARTBEAT': this.emit({ type: 'heartbeat' }); return;
      case 'ERROR': {
        const msg = ev.error?.message ?? 'unknown error';
        if (msg.startsWith(CALL_REJECTED)) {
          // Native transport: a call was refused; nothing changed and the subscription stands.
          this.emit({ type: 'error', error: { message: msg.slice(CALL_REJECTED.length), fatal: false, source: 'call' } });
          return;
        }
        // Mesos semantics: ERROR means the framework must stop (removed, failed over by another instance…).
        this.fail(new BerthError('FORBIDDEN', msg), 'master');
        return;
      }
      case 'INVERSE_OFFERS': case 'RESCIND_INVERSE_OFFER': case 'UPDATE_OPERATION_STATUS': case 'UNKNOWN': case undefined:
        this.log.debug({ type: ev.type }, 'ignoring event Berth does not use');
        return;
      default: assertNever(ev.type);
    }
  }

  private feedWatchdog(): void {
    this.clock.clearTimeout(this.watchdog);
    if (this.state !== 'SUBSCRIBED') return;
    const link = this.link;
    this.watchdog = this.clock.setTimeout(() => {
      if (this.link !== link || this.state !== 'SUBSCRIBED') return;
      this.log.warn({ ms: this.heartbeatMs * 3 }, 'no heartbeat from the master; reconnecting');
      link?.close();
    }, this.heartbeatMs * 3);
  }

  private failoverTimeoutMs(): number { return (this.info.failover_timeout ?? 0) * 1000; }

  private onLinkClosed(link: Link, reason: string): void {
    if (link !== this.link) return;
    this.link = undefined;
    this.clock.clearTimeout(this.watchdog);
    if (this.tearingDown) { this.shutdown(); return; }
    switch (this.state) {
      case 'CLOSED': return;
      case 'CONNECTING':
        // The link died before SUBSCRIBED: start() decides (retry or fail).
        this.fail(new BerthError('IO', `connection closed before SUBSCRIBED: ${reason}`));
        return;
      case 'RECONNECTING': return;
      case 'SUBSCRIBED': break;
      default: assertNever(this.state);
    }
    const willReconnect = this.opts.reconnect !== false && this.failoverTimeoutMs() > 0;
    this.offers.clear();
    this.emit({ type: 'disconnected', reason, willReconnect });
    if (!willReconnect) {
      this.fail(new BerthError('IO', `connection lost (${reason}) and failover_timeout is 0: the master has removed the framework`), 'connection');
      return;
    }
    this.state = 'RECONNECTING';
    this.disconnectedAt = this.clock.now();
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = this.nextDelay();
    if (this.clock.now() + delay - this.disconnectedAt >= this.failoverTimeoutMs()) {
      this.fail(new BerthError('IO', 'could not resubscribe within failover_timeout; the master will have removed the framework'), 'connection');
      return;
    }
    this.log.info({ delay_ms: delay, attempt: this.attempt }, 'resubscribing');
    this.holdProcess(true);
    this.retryTimer = this.clock.setTimeout(() => {
      this.holdProcess(false);
      if (this.state !== 'RECONNECTING') return;
      this.subscribe().catch((e: BerthError) => {
        if (this.state !== 'RECONNECTING') return;
        if (e.code === 'IO') this.scheduleReconnect();
        else this.fail(e, 'master');
      });
    }, delay);
  }

  /** Ends the framework: CLOSED, iterators finish, `connect()` rejects if still pending. */
  private fail(err: BerthError, source: FrameworkError['source'] = 'connection'): void {
    if (this.state === 'CLOSED') return;
    this.log.warn({ err: err.message }, 'framework closing');
    this.emit({ type: 'error', error: { message: err.message, fatal: true, source, cause: err } });
    this.shutdown();
    this.subscribedOnce?.reject(err);
    this.subscribedOnce = undefined;
  }

  private holdProcess(on: boolean): void {
    if (on && !this.keepAlive) this.keepAlive = setInterval(() => undefined, 1 << 30);
    if (!on && this.keepAlive) { clearInterval(this.keepAlive); this.keepAlive = undefined; }
  }

  private shutdown(): void {
    this.state = 'CLOSED';
    this.holdProcess(false);
    this.clock.clearTimeout(this.watchdog);
    this.clock.clearTimeout(this.retryTimer);
    const link = this.link;
    this.link = undefined;
    link?.close();
    for (const it of this.iterators) it.end();
    this.iterators.clear();
  }

  /**
   * Closes the connection without tearing the framework down: the master keeps its tasks for
   * failover_timeout, and another process can resume it with `connect({frameworkId})`.
   */
  close(): void {
    if (this.state === 'CLOSED') return;
    this.shutdown();
    this.subscribedOnce?.reject(new BerthError('CONFLICT', 'closed before subscribing'));
    this.subscribedOnce = undefined;
  }

  /** Resolves once every queued event has been through its callbacks. */
  async idle(): Promise<void> {
    while (this.draining || this.queue.length > this.qHead) await new Promise((r) => setImmediate(r));
  }

  // ------------------------------------------------------------ calls

  /** Sends a raw Call (framework_id filled in). Everything else is built on this. */
  async call(c: Call): Promise<void> {
    const link = this.link;
    if (this.state !== 'SUBSCRIBED' || !link) throw new BerthError('IO', `cannot send ${c.type ?? 'call'}: not subscribed (${this.state.toLowerCase()})`);
    await link.call({ ...c, framework_id: { value: this.frameworkId } });
  }

  /** ACCEPT offers with operations, or with tasks (wrapped in one LAUNCH). */
  async accept(offerIds: string | string[], operations: Operation[] | TaskInfo[], filters?: { refuseSeconds?: number }): Promise<void> {
    const ids = (Array.isArray(offerIds) ? offerIds : [offerIds]);
    const ops: Operation[] = operations.length > 0 && 'task_id' in operations[0]!
      ? [{ type: 'LAUNCH', launch: { task_infos: operations as TaskInfo[] } }]
      : (operations as Operation[]);
    for (const id of ids) this.offers.delete(id);
    await this.call({ type: 'ACCEPT', accept: { offer_ids: ids.map((value) => ({ value })), operations: ops, filters: refuse(filters?.refuseSeconds) } });
  }

  /**
   * Launches tasks on one offer (or several offers of one agent). TaskSpecs are carved out of
   * the offer in order; a spec that does not fit throws before anything is sent.
   */
  async launch(offer: Offer | Offer[], tasks: (TaskInfo | TaskSpec)[] | TaskInfo | TaskSpec, filters?: { refuseSeconds?: number }): Promise<TaskInfo[]> {
    const offers = Array.isArray(offer) ? offer : [offer];
    const list = Array.isArray(tasks) ? tasks : [tasks];
    const pool = new OfferPool(offers);
    const infos: TaskInfo[] = list.map((t) => {
      if ('task_id' in t) return t;
      const info = offers.length === 1 ? taskInfo(t, offers[0]!) : pool.place(t);
      if (!info) throw new BerthError('INVALID', `task ${t.id ?? t.name ?? ''} does not fit in the offers`);
      return info;
    });
    await this.accept(offers.map((o) => o.id.value), infos, filters);
    return infos;
  }

  /** Launches everything placed in `pool` and declines the offers it left unused. */
  async acceptPool(pool: OfferPool, filters?: { refuseSeconds?: number }): Promise<TaskInfo[]> {
    const launched: TaskInfo[] = [];
    const work: Promise<void>[] = [];
    for (const { offer, tasks } of pool.launches()) {
      launched.push(...tasks);
      work.push(this.accept(offer.id.value, tasks, filters));
    }
    const unused = pool.unused();
    if (unused.length > 0) work.push(this.decline(unused.map((o) => o.id.value), filters?.refuseSeconds));
    await Promise.all(work);
    return launched;
  }

  async decline(offerIds: string | string[], refuseSeconds?: number): Promise<void> {
    const ids = Array.isArray(offerIds) ? offerIds : [offerIds];
    for (const id of ids) this.offers.delete(id);
    await this.call({ type: 'DECLINE', decline: { offer_ids: ids.map((value) => ({ value })), filters: refuse(refuseSeconds) } });
  }

  async kill(taskId: string, agentId?: string): Promise<void> {
    await this.call({ type: 'KILL', kill: { task_id: { value: taskId }, ...(agentId ? { agent_id: { value: agentId } } : {}) } });
  }

  /** Acknowledges an update (only those with a uuid need it; others are ignored). */
  async acknowledge(status: TaskStatus): Promise<void> {
    if (!status.uuid || !status.agent_id) return;
    await this.call({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: status.agent_id, task_id: status.task_id, uuid: status.uuid } });
  }

  /** Explicit reconciliation of the given tasks, or implicit (all tasks the master knows) with none. */
  async reconcile(tasks: (string | { taskId: string; agentId?: string })[] = []): Promise<void> {
    const list = tasks.map((t) => (typeof t === 'string' ? { task_id: { value: t } } : { task_id: { value: t.taskId }, ...(t.agentId ? { agent_id: { value: t.agentId } } : {}) }));
    await this.call({ type: 'RECONCILE', reconcile: { tasks: list } });
  }

  async revive(roles?: string[]): Promise<void> { await this.call({ type: 'REVIVE', revive: roles ? { roles } : {} }); }
  async suppress(roles?: string[]): Promise<void> { await this.call({ type: 'SUPPRESS', suppress: roles ? { roles } : {} }); }

  /** Changes the FrameworkInfo (name, roles, capabilities…) without resubscribing. */
  async updateFramework(changes: Partial<FrameworkOptions>, suppressedRoles?: string[]): Promise<void> {
    const info = frameworkInfo({ ...fromInfo(this.info), ...changes }, this.frameworkId);
    await this.call({ type: 'UPDATE_FRAMEWORK', update_framework: { framework_info: info, ...(suppressedRoles ? { suppressed_roles: suppressedRoles } : {}) } });
    this.info = info;
  }

  /** Removes the framework from the cluster: its tasks are killed. Closes the client. */
  async teardown(): Promise<void> {
    this.tearingDown = true;
    try {
      await this.call({ type: 'TEARDOWN' });
    } finally {
      this.close();
    }
  }
}

function refuse(seconds: number | undefined): { refuse_seconds: number } | undefined {
  return seconds === undefined ? undefined : { refuse_seconds: seconds };
}

function makeTransport(master: string | Dialer, encoding: HttpEncoding | undefined, security: ClientSecurity): Transport {
  if (typeof master !== 'string') return new NativeTransport(master, 'in-process');
  const m = /^([a-z]+):\/\/([^/]+)/i.exec(master);
  const scheme = m?.[1]?.toLowerCase();
  if (!m) return new NativeTransport(new WsDialer(master, security), `berth://${master}`);
  if (scheme === 'berth' || scheme === 'ws') return new NativeTransport(new WsDialer(m[2]!, security), `berth://${m[2]!}`);
  if (scheme === 'berths' || scheme === 'wss') return new NativeTransport(new WsDialer(`wss://${m[2]!}`, security), `berths://${m[2]!}`);
  if (scheme === 'http' || scheme === 'https') return new HttpTransport(master, encoding, security);
  throw new BerthError('INVALID', `master '${master}': use berth://host:port (native), berths:// (native over TLS) or http(s)://host:port (Mesos HTTP API)`);
}

function frameworkInfo(f: FrameworkOptions, id?: string): FrameworkInfo {
  const roles = f.roles ?? ['*'];
  const caps = new Set<FrameworkCapabilityType>(f.capabilities ?? []);
  caps.add('MULTI_ROLE');
  const info: FrameworkInfo = {
    user: f.user ?? safeUser(), name: f.name, roles,
    capabilities: [...caps].map((type) => ({ type })),
  };
  if (id) info.id = { value: id };
  if (f.failover_timeout !== undefined) info.failover_timeout = f.failover_timeout;
  if (f.checkpoint !== undefined) info.checkpoint = f.checkpoint;
  if (f.hostname !== undefined) info.hostname = f.hostname;
  if (f.principal !== undefined) info.principal = f.principal;
  if (f.webui_url !== undefined) info.webui_url = f.webui_url;
  if (f.labels) info.labels = { labels: Object.entries(f.labels).map(([key, value]) => ({ key, value })) };
  return info;
}

function fromInfo(info: FrameworkInfo): FrameworkOptions {
  return {
    name: info.name, user: info.user, roles: info.roles, failover_timeout: info.failover_timeout, checkpoint: info.checkpoint,
    capabilities: (info.capabilities ?? []).map((c) => c.type).filter((t): t is FrameworkCapabilityType => !!t),
    hostname: info.hostname, principal: info.principal, webui_url: info.webui_url,
    labels: info.labels?.labels ? Object.fromEntries(info.labels.labels.map((l) => [l.key, l.value ?? ''])) : undefined,
  };
}

function safeUser(): string {
  try { return os.userInfo().username; } catch { return 'root'; }
}

/** Connects a framework; resolves once it is SUBSCRIBED. */
export async function connect(opts: ConnectOptions): Promise<Framework> {
  return new Framework(opts).start();
}
