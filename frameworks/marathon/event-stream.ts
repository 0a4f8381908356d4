/**
 * A client of Marathon's `GET /v2/events` (Server-Sent Events): one reader for
 * everything that watches a Marathon (the bench, the end-to-end tests, tools).
 * Framing is eventsource-parser's; this adds the `event_type` filter, JSON data,
 * a `ready` promise (resolved once the server accepted the subscription, so no
 * event after it is missed) and a bounded memory of what arrived.
 *
 *   const s = new MarathonEventStream(url, ['status_update_event']);
 *   s.on((type, data) => …);  await s.ready;  …  s.close();
 */
import { createParser } from 'eventsource-parser';

export interface MarathonEvent { type: string; data: any }

export class MarathonEventStream {
  /** The last `keep` events (oldest first). */
  readonly events: MarathonEvent[] = [];
  /** Resolves once subscribed; rejects if the subscription failed. */
  readonly ready: Promise<void>;
  /** Resolves when the stream ends (closed, or the server went away). */
  readonly ended: Promise<void>;
  private readonly ctrl = new AbortController();
  private readonly listeners: ((type: string, data: any) => void)[] = [];

  constructor(base: string, types: string[] = [], private readonly keep = 10_000) {
    const q = types.map((t) => `event_type=${encodeURIComponent(t)}`).join('&');
    let endedResolve!: () => void;
    this.ended = new Promise((r) => { endedResolve = r; });
    this.ready = fetch(`${base}/v2/events${q ? `?${q}` : ''}`, { signal: this.ctrl.signal, headers: { Accept: 'text/event-stream' } }).then((res) => {
      if (!res.ok || !res.body) throw new Error(`GET ${base}/v2/events: ${res.status}`);
      const parser = createParser({
        onEvent: (e) => {
          if (!e.event) return;
          let data: unknown;
          try { data = JSON.parse(e.data); } catch { return; }
          this.events.push({ type: e.event, data });
          if (this.events.length > this.keep) this.events.shift();
          for (const l of this.listeners) l(e.event, data);
        },
      });
      void (async () => {
        const dec = new TextDecoder();
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(dec.decode(chunk, { stream: true }));
        } catch { /* closed */ } finally { endedResolve(); }
      })();
    });
    this.ready.catch(() => endedResolve());
  }

  /** Calls `fn` for every event from now on. */
  on(fn: (type: string, data: any) => void): this { this.listeners.push(fn); return this; }

  /** The data of the remembered events of one type. */
  of(type: string): any[] { return this.events.filter((e) => e.type === type).map((e) => e.data); }

  close(): void { this.ctrl.abort(); }
}
