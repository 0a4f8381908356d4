/**
 * The agent's link to the master: one state machine that dials, registers or
 * reregisters, watches the master's liveness and redials with backoff.
 *
 * Invariants:
 *  - At most one connection is current; frames and closes of an older one are ignored.
 *  - Launches, kills and acks are handed on only in 'running' (registered); every other
 *    frame is logged as ignored with the state that made it so.
 *  - A master silent for 5 ping intervals (or not answering Register within the
 *    registration timeout) is treated as gone: the link is closed and redialed.
 *  - Redials back off exponentially with jitter, reset by a successful registration.
 *  - A dialer that knows the leader (NATS) reports each newly elected one: then the link
 *    redials within LEADER_CHANGE_JITTER_MS (a random delay, so thousands of agents do not
 *    arrive in the same millisecond) instead of waiting out a backoff that grew while no
 *    master led, and the backoff starts over.
 */
import { backoffDelay, type Clock, type TimerHandle } from '../proto/clock.js';
import type { Logger } from '../proto/log.js';
import type { Conn, Dialer } from '../proto/transport/types.js';
import { AGENT_PROTOCOL_VERSION, type AgentToMaster, type MasterToAgent } from '../proto/types.js';

/** The agent's connection state machine (Mesos: RECOVERING, DISCONNECTED, RUNNING, TERMINATING). */
export type AgentState =
  /** Reading checkpoints and re-adopting containers; not talking to any master yet. */
  | 'recovering'
  /** No link to a master; a dial is scheduled (backoff with jitter). */
  | 'disconnected'
  /** Link up, Register/Reregister sent, waiting for Registered. */
  | 'registering'
  /** Registered: launches and kills are accepted, updates flow. */
  | 'running'
  /** `stop()` was called; everything is being shut down (tasks keep running). */
  | 'terminating';

export type Registration = Pick<AgentToMaster, 'register' | 'reregister'>;

/** Longest random delay before redialing a newly elected leader. */
export const LEADER_CHANGE_JITTER_MS = 250;

/** A dialer that can tell when a new leader is elected (proto/transport/nats.ts NatsDialer). */
interface LeaderAwareDialer extends Dialer { onLeaderChange(cb: () => void): () => void }
const leaderAware = (d: Dialer): d is LeaderAwareDialer => typeof (d as Partial<LeaderAwareDialer>).onLeaderChange === 'function';
export type Registered = NonNullable<MasterToAgent['registered']>;

export interface MasterLinkOptions {
  dialer: Dialer;
  clock: Clock;
  log: Logger;
  /** The Register or Reregister frame to send on each new connection. */
  registration: () => Registration;
  /** Registered arrived: the agent adopts the id (may reject to refuse it). */
  onRegistered: (r: Registered) => void;
  /** A frame the agent acts on once registered (launch, kill, ack, shutdown_framework). */
  onFrame: (m: MasterToAgent) => void;
  registrationTimeoutMs?: number;
  redialBaseMs?: number;
  redialMaxMs?: number;
}

export class MasterLink {
  private current: AgentState = 'recovering';
  private conn: Conn<MasterToAgent, AgentToMaster> | undefined;
  private redialAttempt = 0;
  private redialTimer: TimerHandle | undefined;
  private silenceTimer: TimerHandle | undefined;
  private silenceMs: number;
  private readonly listeners: ((s: AgentState) => void)[] = [];
  masterId: string | undefined;
  /** Set when a new leader was elected: the next redial is prompt (jitter only). */
  private leaderChanged = false;
  private offLeader: (() => void) | undefined;

  constructor(private readonly opts: MasterLinkOptions) {
    this.silenceMs = opts.registrationTimeoutMs ?? 10_000;
    if (leaderAware(opts.dialer)) this.offLeader = opts.dialer.onLeaderChange(() => this.onNewLeader());
  }

  /** A new leader: redial it soon, whatever the backoff had grown to. */
  private onNewLeader(): void {
    if (this.current === 'terminating' || this.current === 'recovering') return;
    this.leaderChanged = true;
    // Waiting out a backoff: cut it short. (A live link is closed by the dialer; onClose redials.)
    if (this.current === 'disconnected' && this.redialTimer) this.scheduleRedial('a new leader was elected');
  }

  get state(): AgentState { return this.current; }

  /** Called on every transition (the agent starts and stops its usage reports with 'running'). */
  onState(f: (s: AgentState) => void): void { this.listeners.push(f); }

  private enter(s: AgentState): void {
    if (this.current === s) return;
    this.current = s;
    for (const f of this.listeners) f(s);
  }

  /** Recovery is done: start dialing. */
  start(): void {
    if (this.current !== 'recovering') return;
    this.enter('disconnected');
    void this.dial();
  }

  stop(): void {
    this.enter('terminating');
    this.offLeader?.();
    this.opts.clock.clearTimeout(this.redialTimer);
    this.opts.clock.clearTimeout(this.silenceTimer);
    this.conn?.close('agent stopping');
    this.conn = undefined;
  }

  /** Sends a frame; false when there is no link (callers retry or drop by their own rules). */
  send(msg: Omit<AgentToMaster, 'version'>): boolean {
    const conn = this.conn;
    if (!conn || conn.closed) return false;
    conn.send({ version: AGENT_PROTOCOL_VERSION, ...msg });
    return true;
  }

  /** Sends only when registered: status updates and usage must not precede Registered. */
  sendRegistered(msg: Omit<AgentToMaster, 'version'>): boolean {
    return this.current === 'running' && this.send(msg);
  }

  private async dial(): Promise<void> {
    if (this.current !== 'disconnected') return;
    let conn: Conn<MasterToAgent, AgentToMaster>;
    try {
      conn = await this.opts.dialer.dialAgent();
    } catch (e) {
      this.scheduleRedial(`dial failed: ${(e as Error).message}`);
      return;
    }
    if (this.current !== 'disconnected') { conn.close('agent no longer dialing'); return; }
    this.conn = conn;
    this.enter('registering');
    conn.onMessage((m) => this.onMessage(conn, m));
    conn.onClose((reason) => this.onClose(conn, reason));
    this.armSilence(this.opts.registrationTimeoutMs ?? 10_000);
    this.send(this.opts.registration());
  }

  private scheduleRedial(why: string): void {
    if (this.current === 'terminating') return;
    this.enter('disconnected');
    let delay: number;
    if (this.leaderChanged) {
      this.leaderChanged = false;
      this.redialAttempt = 0;
      delay = Math.round(Math.random() * LEADER_CHANGE_JITTER_MS);
    } else {
      delay = backoffDelay(this.redialAttempt++, this.opts.redialBaseMs ?? 1000, this.opts.redialMaxMs ?? 30_000);
    }
    this.opts.log.info({ why, delayMs: delay, attempt: this.redialAttempt }, 'Redialing the master');
    this.opts.clock.clearTimeout(this.redialTimer);
    this.redialTimer = this.opts.clock.setTimeout(() => { this.redialTimer = undefined; void this.dial(); }, delay);
  }

  private onClose(conn: Conn<MasterToAgent, AgentToMaster>, reason: string): void {
    if (conn !== this.conn) return;
    this.conn = undefined;
    this.opts.clock.clearTimeout(this.silenceTimer);
    if (this.current === 'terminating') return;
    this.opts.log.warn({ reason }, 'Lost the link to the master');
    this.scheduleRedial(`link closed: ${reason}`);
  }

  /** Any frame from the master proves it alive; silence past the limit means it is gone. */
  private armSilence(ms: number): void {
    this.opts.clock.clearTimeout(this.silenceTimer);
    this.silenceTimer = this.opts.clock.setTimeout(() => {
      this.silenceTimer = undefined;
      const conn = this.conn;
      if (!conn) return;
      this.opts.log.warn({ silentMs: ms, state: this.current }, 'Master silent for too long; reconnecting');
      conn.close('master silent');
      // Memory and ws links report close asynchronously; do not wait for it to redial.
      this.onClose(conn, 'master silent');
    }, ms);
  }

  private onMessage(conn: Conn<MasterToAgent, AgentToMaster>, m: MasterToAgent): void {
    if (conn !== this.conn || this.current === 'terminating') return;
    if (m.version !== AGENT_PROTOCOL_VERSION) {
      this.opts.log.error({ version: m.version }, `Ignoring frame of protocol version ${m.version}; this agent speaks ${AGENT_PROTOCOL_VERSION}`);
      return;
    }
    if (this.current === 'running') this.armSilence(this.silenceMs);
    if (m.registered) { this.registered(m.registered); return; }
    if (m.ping) { this.send({ pong: { seq: m.ping.seq ?? 0 } }); return; }
    if (m.error) { this.opts.log.error({ message: m.error.message, code: m.error.code }, 'Master reported an error'); return; }
    if (this.current !== 'running') {
      this.opts.log.warn({ frame: Object.keys(m).filter((k) => k !== 'version'), state: this.current }, 'Ignoring frame because the agent is not registered');
      return;
    }
    this.opts.onFrame(m);
  }

  private registered(r: Registered): void {
    if (this.current !== 'registering') {
      this.opts.log.warn({ state: this.current }, 'Ignoring Registered because the agent is not registering');
      return;
    }
    this.masterId = r.master_id;
    this.silenceMs = 5 * 1000 * (r.ping_interval_seconds ?? 15);
    this.redialAttempt = 0;
    this.armSilence(this.silenceMs);
    // 'running' first: what onRegistered resends (unacknowledged updates) may go out at once.
    this.enter('running');
    this.opts.onRegistered(r);
  }
}
