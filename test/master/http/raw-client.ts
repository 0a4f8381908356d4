/**
 * Raw HTTP for the scheduler API tests: node:http and the wire, no SDK.
 * `request` sends a body either with Content-Length or chunked without it;
 * `openStream` keeps a SUBSCRIBE response open and decodes its RecordIO
 * records as they arrive, also keeping every raw byte for re-reading.
 */
import http from 'node:http';
import { decodeEvent } from '../../../proto/codec.js';
import { RecordIODecoder } from '../../../proto/recordio.js';
import type { Event } from '../../../proto/types.js';

export interface RawResponse { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body as these many chunks with Transfer-Encoding: chunked and no Content-Length. */
  chunked?: number;
}

const agent = new http.Agent({ keepAlive: false });

export function request(url: string, opts: RequestOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const body = typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body;
    const headers: Record<string, string> = { ...opts.headers };
    if (body && !opts.chunked) headers['content-length'] = String(body.length);
    const req = http.request(url, { method: opts.method ?? 'POST', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body && opts.chunked) {
      const n = Math.max(1, opts.chunked);
      const size = Math.ceil(body.length / n);
      for (let i = 0; i < body.length; i += size) req.write(body.subarray(i, i + size));
    } else if (body) req.write(body);
    req.end();
  });
}

/** An open SUBSCRIBE stream. */
export class RawStream {
  readonly raw: Buffer[] = [];
  readonly events: Event[] = [];
  private readonly decoder = new RecordIODecoder();
  private waiters: { pred: (e: Event) => boolean; from: number; resolve: (e: Event) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  ended = false;

  constructor(readonly res: http.IncomingMessage, private readonly req: http.ClientRequest, readonly contentType: string) {
    res.on('data', (c: Buffer) => {
      this.raw.push(c);
      for (const rec of this.decoder.push(c)) {
        const ev = contentType === 'application/json' ? (JSON.parse(rec.toString('utf8')) as Event) : decodeEvent(rec);
        this.events.push(ev);
      }
      this.check();
    });
    const end = (): void => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error('stream ended')); }
    };
    res.on('end', end);
    res.on('close', end);
    res.on('error', end);
  }

  get streamId(): string { return String(this.res.headers['mesos-stream-id'] ?? ''); }

  private check(): void {
    for (const w of [...this.waiters]) {
      const ev = this.events.slice(w.from).find(w.pred);
      if (ev) {
        clearTimeout(w.timer);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(ev);
      }
    }
  }

  /** The first event (counting from index `from`) that satisfies `pred`. */
  waitFor(pred: (e: Event) => boolean, timeoutMs = 5000, from = 0): Promise<Event> {
    const found = this.events.slice(from).find(pred);
    if (found) return Promise.resolve(found);
    if (this.ended) return Promise.reject(new Error('stream ended'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`timed out waiting for an event; got ${this.events.map((e) => e.type).join(',')}`));
      }, timeoutMs);
      this.waiters.push({ pred, from, resolve, reject, timer });
    });
  }

  close(): void {
    this.req.destroy();
    this.res.destroy();
  }
}

/** Opens a SUBSCRIBE; resolves with the stream on 200, rejects with the status and body otherwise. */
export function openStream(url: string, body: Buffer | string, headers: Record<string, string>): Promise<RawStream> {
  return new Promise((resolve, reject) => {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    const req = http.request(`${url}/api/v1/scheduler`, { method: 'POST', headers: { ...headers, 'content-length': String(buf.length) }, agent }, (res) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => reject(Object.assign(new Error(`SUBSCRIBE answered ${res.statusCode}: ${Buffer.concat(chunks).toString()}`), { status: res.statusCode })));
        return;
      }
      resolve(new RawStream(res, req, String(res.headers['content-type'])));
    });
    req.on('error', reject);
    req.end(buf);
  });
}
