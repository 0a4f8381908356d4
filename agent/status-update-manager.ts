/**
 * Reliable status updates: the agent's half of "no update is ever lost".
 *
 * One stream per task. Invariants:
 *  - An update is durable (appended to the task's stream file and fsynced)
 *    before it is first sent, so an agent killed at any instant resends it after
 *    restart instead of forgetting it.
 *  - Only the head of a stream is in flight; the next update is sent once the
 *    head is acknowledged, so the master and framework see a task's updates in
 *    the order they were produced.
 *  - The head is resent with bounded exponential backoff (base, doubling, up
 *    to max; deterministic, from the injected clock) until an ack with its
 *    uuid arrives, and immediately when the link to the master comes back.
 *  - An ack that is not for the head (duplicate, late, unknown) is ignored.
 *  - The ack of a terminal update closes the stream: nothing more is produced
 *    for the task and its checkpoint may be removed (`onClosed`).
 *
 * Acks are appended without fsync: losing one to a crash only makes the agent
 * resend an update the framework already has, which it dedupes by uuid.
 */
import { newUuidBase64 } from '../proto/uuid.js';
import type { Clock, TimerHandle } from '../proto/clock.js';
import { silentLogger, type Logger } from '../proto/log.js';
import { isTerminal, type StatusUpdateMessage } from '../proto/types.js';
import type { UpdateRecord } from './checkpoint.js';

/** Where streams are made durable (the agent's Checkpoint, or a fake in tests). */
export interface UpdateJournal {
  appendUpdates(fid: string, tid: string, records: UpdateRecord[], sync: boolean): Promise<void>;
}

export interface StatusUpdateManagerOptions {
  clock: Clock;
  journal: UpdateJournal;
  /** Sends one update to the master; returns false when there is no link (the retry timer covers it). */
  send: (u: StatusUpdateMessage) => boolean;
  /** Called once a stream's terminal update is acknowledged. */
  onClosed?: (fid: string, tid: string, last: StatusUpdateMessage) => void;
  baseMs?: number;
  maxMs?: number;
  log?: Logger;
}

interface Stream {
  fid: string;
  tid: string;
  /** Durable, unacknowledged updates in production order; pending[0] is in flight. */
  pending: StatusUpdateMessage[];
  /** Latest update produced (acked or not), for reregistration reports. */
  latest?: StatusUpdateMessage;
  /** Serializes journal writes so the file order is the production order. */
  chain: Promise<void>;
  attempt: number;
  timer?: TimerHandle;
  /** A terminal update is durable; nothing may follow it. */
  terminated: boolean;
  /** A terminal update is being made durable. */
  terminating?: boolean;
}

/** A fresh uuid for a status update (16 bytes, base64). */
export const newUuid = newUuidBase64;

const key = (fid: string, tid: string): string => `${fid}\u0000${tid}`;

export class StatusUpdateManager {
  private readonly streams = new Map<string, Stream>();
  private readonly clock: Clock;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: StatusUpdateManagerOptions) {
    this.clock = opts.clock;
    this.baseMs = opts.baseMs ?? 1000;
    this.maxMs = opts.maxMs ?? 60_000;
    this.log = opts.log ?? silentLogger;
  }

  /** The delay before the (attempt+1)-th resend: base·2^attempt, capped at max. */
  retryDelay(attempt: number): number {
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(attempt, 30));
  }

  /**
   * Adds an update to its task's stream (assigning a uuid if it has none); resolves once it is
   * durable. Throws if the stream already ended with a terminal update.
   */
  async update(u: StatusUpdateMessage): Promise<void> {
    const fid = u.framework_id.value;
    const tid = u.status.task_id.value;
    const s = this.stream(fid, tid);
    if (s.terminated || s.terminating) {
      this.log.warn({ framework: fid, task: tid, state: u.status.state }, 'Ignoring update after a terminal one');
      return;
    }
    u.status.uuid ??= newUuid();
    const terminal = isTerminal(u.status.state);
    // Durable before visible: the stream counts as terminated (and the update as its latest, which
    // reregistration reports) only once the append is durable. Meanwhile `terminating` keeps
    // later updates out; a failed append lifts it, so nothing claims an end that was not recorded.
    if (terminal) s.terminating = true;
    const done = s.chain.then(() => this.opts.journal.appendUpdates(fid, tid, [{ type: 'update', update: u }], true));
    s.chain = done.catch(() => undefined);
    try {
      await done;
    } catch (e) {
      if (terminal) s.terminating = false;
      throw e;
    }
    if (terminal) s.terminated = true;
    s.latest = u;
    s.pending.push(u);
    if (s.pending.length === 1) this.sendHead(s);
  }

  /** Handles an ack from the master. Returns true when it acknowledged the head of its stream. */
  async acknowledge(fid: string, tid: string, uuid: string): Promise<boolean> {
    const s = this.streams.get(key(fid, tid));
    const head = s?.pending[0];
    if (!s || !head || head.status.uuid !== uuid) {
      this.log.debug({ framework: fid, task: tid, uuid }, 'Ignoring ack that is not for the head of a stream');
      return false;
    }
    s.pending.shift();
    this.clock.clearTimeout(s.timer);
    s.timer = undefined;
    s.attempt = 0;
    const done = s.chain.then(() => this.opts.journal.appendUpdates(fid, tid, [{ type: 'ack', uuid }], false));
    s.chain = done.catch(() => undefined);
    if (s.pending.length > 0) {
      this.sendHead(s);
    } else if (s.terminated && isTerminal(head.status.state)) {
      this.streams.delete(key(fid, tid));
      await s.chain;
      this.opts.onClosed?.(fid, tid, head);
    }
    await done.catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'Cannot record ack'));
    return true;
  }

  /** The link to the master is back: resend every head now, with backoff restarted. */
  reconnected(): void {
    for (const s of this.streams.values()) {
      if (s.pending.length === 0) continue;
      s.attempt = 0;
      this.sendHead(s);
    }
  }

  /** Rebuilds streams from their journals (replayed: updates minus acks, in order). Sends nothing. */
  recover(fid: string, tid: string, records: UpdateRecord[]): void {
    const s = this.stream(fid, tid);
    for (const r of records) {
      if (r.type === 'update') {
        s.pending.push(r.update);
        s.latest = r.update;
        if (isTerminal(r.update.status.state)) s.terminated = true;
      } else {
        const i = s.pending.findIndex((u) => u.status.uuid === r.uuid);
        // Acks are only ever written for the head, so i is 0; anything else is ignored as on the wire.
        if (i === 0) s.pending.shift();
      }
    }
    if (s.pending.length === 0 && s.terminated) this.streams.delete(key(fid, tid));
  }

  /** Latest update produced for a task, if its stream is open. */
  latest(fid: string, tid: string): StatusUpdateMessage | undefined {
    return this.streams.get(key(fid, tid))?.latest;
  }

  /** True when the task's stream holds unacknowledged updates or is open. */
  has(fid: string, tid: string): boolean { return this.streams.has(key(fid, tid)); }

  /** True when a stream ended with a terminal update whose ack is still awaited. */
  terminated(fid: string, tid: string): boolean { return this.streams.get(key(fid, tid))?.terminated ?? false; }

  /** Unacknowledged updates across all streams (for /state and tests). */
  pendingCount(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.pending.length;
    return n;
  }

  /** Stops retry timers (the agent is stopping); streams stay on disk. */
  close(): void {
    this.closed = true;
    for (const s of this.streams.values()) { this.clock.clearTimeout(s.timer); s.timer = undefined; }
  }

  private stream(fid: string, tid: string): Stream {
    const k = key(fid, tid);
    let s = this.streams.get(k);
    if (!s) {
      s = { fid, tid, pending: [], chain: Promise.resolve(), attempt: 0, terminated: false };
      this.streams.set(k, s);
    }
    return s;
  }

  private sendHead(s: Stream): void {
    const head = s.pending[0];
    if (!head || this.closed) return;
    this.clock.clearTimeout(s.timer);
    const sent = this.opts.send(head);
    const delay = this.retryDelay(s.attempt);
    if (s.attempt > 0 || !sent) {
      this.log.debug({ framework: s.fid, task: s.tid, uuid: head.status.uuid, attempt: s.attempt, sent, nextMs: delay }, 'Status update (re)sent');
    }
    s.attempt++;
    s.timer = this.clock.setTimeout(() => {
      s.timer = undefined;
      if (s.pending[0] === head) this.sendHead(s);
    }, delay);
  }
}
