/**
 * Marathon's event bus, served as Server-Sent Events on `GET /v2/events`
 * (`event: <eventType>\ndata: <json>\n\n`), with the `event_type` filter.
 *
 * Invariants:
 *  - Publishing never blocks and never grows without bound: a subscriber whose
 *    socket cannot keep up (more than MAX_BACKLOG bytes buffered) is dropped,
 *    as Marathon drops slow SSE consumers, rather than slowing the scheduler.
 *  - At most MAX_SUBSCRIBERS streams are open at once; more get 503.
 *  - Every event carries `eventType` and an ISO 8601 UTC `timestamp`.
 */
import type { ServerResponse } from 'node:http';

export const MAX_SUBSCRIBERS = 256;
const MAX_BACKLOG = 8 * 1024 * 1024;

export interface MarathonEvent { eventType: string; timestamp: string; [k: string]: unknown }

interface Subscriber { res: ServerResponse; types?: Set<string>; corked?: boolean }

export class EventBus {
  private readonly subs = new Set<Subscriber>();
  private readonly listeners = new Set<(e: MarathonEvent) => void>();
  constructor(private readonly now: () => number) {}

  /** Publishes `eventType` with `fields` to every matching stream and in-process listener. */
  publish(eventType: string, fields: Record<string, unknown>): void {
    const ev: MarathonEvent = { ...fields, eventType, timestamp: new Date(this.now()).toISOString() };
    for (const l of this.listeners) l(ev);
    if (this.subs.size === 0) return;
    let frame: string | undefined;
    for (const s of this.subs) {
      if (s.types && !s.types.has(eventType)) continue;
      if (s.res.writableLength > MAX_BACKLOG) { this.drop(s); continue; }
      frame ??= `event: ${eventType}\ndata: ${JSON.stringify(ev)}\n\n`;
      // A burst of events (hundreds of status updates in one turn) leaves in one write per stream.
      if (!s.corked) { s.corked = true; s.res.cork(); process.nextTick(() => { s.corked = false; s.res.uncork(); }); }
      s.res.write(frame);
    }
  }

  /** In-process listener (the CLI's progress display and tests use the HTTP stream instead). */
  listen(fn: (e: MarathonEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get subscribers(): number { return this.subs.size; }

  /** Attaches an SSE response; false if the subscriber limit is reached. */
  attach(res: ServerResponse, remoteAddress: string, types: string[]): boolean {
    if (this.subs.size >= MAX_SUBSCRIBERS) return false;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    const s: Subscriber = { res, ...(types.length ? { types: new Set(types) } : {}) };
    this.subs.add(s);
    res.on('close', () => this.subs.delete(s));
    const attached = { remoteAddress, eventType: 'event_stream_attached', timestamp: new Date(this.now()).toISOString() };
    if (!s.types || s.types.has('event_stream_attached')) res.write(`event: event_stream_attached\ndata: ${JSON.stringify(attached)}\n\n`);
    else res.write(':\n\n');
    return true;
  }

  /** Ends every stream (shutdown). */
  close(): void { for (const s of [...this.subs]) this.drop(s); }

  private drop(s: Subscriber): void {
    this.subs.delete(s);
    s.res.end();
  }
}
