/**
 * The two ways an SDK framework reaches a master, behind one small interface:
 *  - native (`berth://host:port`, or any Dialer such as MemoryNetwork): one
 *    connection carrying protobuf Call/Event frames both ways;
 *  - Mesos v1 HTTP (`http://host:port`): SUBSCRIBE opens a chunked RecordIO
 *    event stream; every other call is a POST carrying Mesos-Stream-Id.
 *
 * A Link is one subscription's connection. It reports every event in order
 * and then, exactly once, that it closed. Calls on the HTTP link go out one
 * at a time on one keep-alive connection, so the master sees them in the
 * order the framework made them (as over the native link).
 */
import http from 'node:http';
import https from 'node:https';
import { CALL, decode, encode, EVENT } from '../../proto/codec.js';
import { BerthError, type ErrorCode } from '../../proto/errors.js';
import { RecordIODecoder } from '../../proto/recordio.js';
import type { Conn, Dialer } from '../../proto/transport/types.js';
import type { Call, Event } from '../../proto/types.js';
import { basicAuthorization, type ClientSecurity } from '../../proto/transport/credentials.js';

export interface LinkHandlers {
  onEvent(ev: Event): void;
  /** Called once when the link ends for any reason (not called if `open` rejects). */
  onClose(reason: string): void;
}

export interface Link {
  /** Native: resolves once written; HTTP: once the master answered 2xx (rejects with its error otherwise). */
  call(c: Call): Promise<void>;
  close(): void;
  readonly kind: 'native' | 'http';
}

export interface Transport {
  readonly kind: 'native' | 'http';
  readonly endpoint: string;
  /** Sends SUBSCRIBE. Resolves when the link is up (events, SUBSCRIBED first, follow); rejects if refused. */
  open(subscribe: Call, h: LinkHandlers): Promise<Link>;
}

// ---------------------------------------------------------------- native

export class NativeTransport implements Transport {
  readonly kind = 'native';
  constructor(private readonly dialer: Dialer, readonly endpoint: string) {}

  async open(subscribe: Call, h: LinkHandlers): Promise<Link> {
    let conn: Conn<Event, Call>;
    try {
      conn = await this.dialer.dialFramework();
    } catch (e) {
      throw new BerthError('IO', `cannot reach master at ${this.endpoint}: ${(e as Error).message}`);
    }
    let closed = false;
    conn.onMessage((ev) => { if (!closed) h.onEvent(ev); });
    conn.onClose((reason) => {
      if (closed) return;
      closed = true;
      h.onClose(reason);
    });
    conn.send(subscribe);
    return {
      kind: 'native',
      call: async (c) => {
        if (closed || conn.closed) throw new BerthError('IO', 'not connected to the master');
        conn.send(c);
      },
      close: () => conn.close('framework closing'),
    };
  }
}

// ---------------------------------------------------------------- HTTP

export type HttpEncoding = 'json' | 'protobuf';
const MEDIA: Record<HttpEncoding, string> = { json: 'application/json', protobuf: 'application/x-protobuf' };

/** HTTP status → the error code a caller switches on. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 413) return 'TOO_LARGE';
  if (status === 406 || status === 415 || status === 501) return 'UNSUPPORTED';
  if (status >= 500) return 'IO';
  return 'INVALID';
}

/** An error answered by the master over HTTP, with its status. */
export class HttpCallError extends BerthError {
  override name = 'HttpCallError';
  constructor(readonly status: number, message: string) {
    super(codeForStatus(status), `${status}: ${message}`);
  }
}

export class HttpTransport implements Transport {
  readonly kind = 'http';
  private readonly base: URL;

  private readonly mod: typeof http | typeof https;
  private readonly auth: Record<string, string>;
  private readonly tlsOpts: https.AgentOptions;

  constructor(endpoint: string, private readonly encoding: HttpEncoding = 'json', security: ClientSecurity = {}) {
    this.base = new URL('/api/v1/scheduler', endpoint);
    if (security.tls && this.base.protocol === 'http:') this.base.protocol = 'https:';
    this.mod = this.base.protocol === 'https:' ? https : http;
    this.auth = security.credential ? { authorization: basicAuthorization(security.credential) } : {};
    this.tlsOpts = security.tls ? { ca: security.tls.ca, cert: security.tls.cert, key: security.tls.key } : {};
  }

  private agent(opts: http.AgentOptions): http.Agent {
    return this.mod === https ? new https.Agent({ ...opts, ...this.tlsOpts }) : new http.Agent(opts);
  }

  get endpoint(): string { return this.base.origin; }

  private body(c: Call): Buffer {
    return this.encoding === 'json' ? Buffer.from(JSON.stringify(c)) : Buffer.from(encode(CALL, c));
  }

  private parse(rec: Buffer): Event {
    return this.encoding === 'json' ? (JSON.parse(rec.toString('utf8')) as Event) : decode<Event>(EVENT, rec);
  }

  open(subscribe: Call, h: LinkHandlers): Promise<Link> {
    const media = MEDIA[this.encoding];
    // One socket for the stream, one keep-alive socket for the calls (in order, one at a time).
    const streamAgent = this.agent({ keepAlive: false });
    const callAgent = this.agent({ keepAlive: true, maxSockets: 1 });
    return new Promise((resolve, reject) => {
      const body = this.body(subscribe);
      const req = this.mod.request(this.base, {
        method: 'POST', agent: streamAgent,
        headers: { ...this.auth, 'content-type': media, accept: media, 'content-length': body.length },
      }, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(new HttpCallError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
          res.on('error', (e) => reject(new BerthError('IO', e.message)));
          return;
        }
        const streamId = String(res.headers['mesos-stream-id'] ?? '');
        const decoder = new RecordIODecoder();
        let closed = false;
        // Calls in flight when the stream ends (TEARDOWN's own 202, typically) still get their
        // answer: the call connection is released only once they are done.
        let inflight = 0;
        const release = (): void => { if (closed && inflight === 0) callAgent.destroy(); };
        const finish = (reason: string): void => {
          if (closed) return;
          closed = true;
          release();
          h.onClose(reason);
        };
        res.on('data', (chunk: Buffer) => {
          if (closed) return;
          let recs: Buffer[];
          try {
            recs = decoder.push(chunk);
            for (const rec of recs) h.onEvent(this.parse(rec));
          } catch (e) {
            req.destroy();
            finish(`bad event stream: ${(e as Error).message}`);
          }
        });
        res.on('end', () => finish('event stream ended'));
        res.on('close', () => finish('event stream closed'));
        res.on('error', (e) => finish(`event stream error: ${e.message}`));
        resolve({
          kind: 'http',
          call: (c) => {
            if (closed) return Promise.reject(new BerthError('IO', 'not connected to the master'));
            inflight++;
            return this.post(c, streamId, callAgent).finally(() => { inflight--; release(); });
          },
          close: () => { req.destroy(); res.destroy(); finish('framework closing'); },
        });
      });
      req.on('error', (e) => reject(new BerthError('IO', `cannot reach master at ${this.endpoint}: ${e.message}`)));
      req.end(body);
    });
  }

  private post(c: Call, streamId: string, agent: http.Agent): Promise<void> {
    const body = this.body(c);
    return new Promise((resolve, reject) => {
      const req = this.mod.request(this.base, {
        method: 'POST', agent,
        headers: { ...this.auth, 'content-type': MEDIA[this.encoding], 'mesos-stream-id': streamId, 'content-length': body.length },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const s = res.statusCode ?? 0;
          if (s >= 200 && s < 300) resolve();
          else reject(new HttpCallError(s, Buffer.concat(chunks).toString('utf8')));
        });
        res.on('error', (e) => reject(new BerthError('IO', e.message)));
      });
      req.on('error', (e) => reject(new BerthError('IO', `${c.type ?? 'call'} failed: ${e.message}`)));
      req.end(body);
    });
  }
}
