/**
 * The Mesos v1 scheduler HTTP API (`POST /api/v1/scheduler`) and the operator
 * endpoints a Mesos user reaches for. `master/main.ts` calls `installRoutes`.
 *
 * The scheduler endpoint follows Mesos's `Master::Http::scheduler` check for
 * check, in the same order, so an existing v1 HTTP framework sees the same
 * status codes and messages:
 *   method (405) → Content-Type (400 missing / 415 other) → body (413, 400
 *   malformed, 501 unknown call type) → SUBSCRIBE: Mesos-Stream-Id must be
 *   absent (400), Accept (406), FrameworkInfo (400/403) → 200 RecordIO stream;
 *   other calls: framework_id (400), framework known (400 "Framework cannot be
 *   found"), subscribed (403), over HTTP (403), Mesos-Stream-Id present and
 *   current (400), call valid (400) → 202 (UPDATE_FRAMEWORK: 200).
 *
 * Invariants:
 *  - A call is answered with an error only if it changed nothing: every check
 *    above runs before `master.receive`, which itself validates before effects.
 *  - At most one HTTP stream per framework id is current (`streams`); the
 *    master closes the previous sink on failover, and a closed stream is
 *    detached from the master exactly once (the response's 'close').
 *  - Each RecordIO record is written with one `res.write`, so with chunked
 *    transfer encoding it travels as exactly one HTTP chunk, as Mesos writes it.
 *  - A stream whose reader stops reading is cut once MAX_STREAM_BACKLOG bytes
 *    are queued in it: the master never buffers without bound for one framework.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CALL, decode, fromJson } from '../../proto/codec.js';
import { BerthError, type ErrorCode } from '../../proto/errors.js';
import { encodeRecord } from '../../proto/recordio.js';
import type { Call, Event } from '../../proto/types.js';
import { logger } from '../../proto/log.js';
import type { FrameworkSink, Master } from '../master.js';
import { MAX_BODY_BYTES, principalOf, type MasterHttpServer } from './server.js';
import { APPLICATION_JSON, APPLICATION_PROTOBUF, bareMediaType, encodeEventAs, negotiateStream, type MediaType } from './media.js';
import { installOperatorRoutes } from './operator.js';

export const SCHEDULER_PATH = '/api/v1/scheduler';
export const STREAM_ID_HEADER = 'Mesos-Stream-Id';
/** Bytes queued in one event stream beyond which the stream is closed (a reader that stopped reading). */
export const MAX_STREAM_BACKLOG = 64 << 20;

/** An HTTP failure with its status; thrown inside the handler, answered in one place. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/**
 * BerthError code → HTTP status for the scheduler API (one table). NOT_FOUND is 400 because
 * Mesos answers a call for an unknown framework with 400 "Framework cannot be found";
 * UNSUPPORTED is 400 because the call is well-formed but asks for a feature Berth lacks
 * (Mesos likewise answers unsupported operations with 400, not 501).
 */
export const SCHEDULER_STATUS: Readonly<Record<ErrorCode, number>> = {
  BAD_MESSAGE: 400,
  INVALID: 400,
  UNSUPPORTED: 400,
  NOT_FOUND: 400,
  FORBIDDEN: 403,
  CONFLICT: 409,
  TOO_LARGE: 413,
  IO: 503,
};

/** The HTTP form of any error met while handling a scheduler call. */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof BerthError) return new HttpError(SCHEDULER_STATUS[e.code] ?? 500, e.message);
  const status = (e as { status?: unknown }).status;
  if (typeof status === 'number') return new HttpError(status, (e as Error).message);
  return new HttpError(500, (e as Error)?.message ?? String(e));
}

interface HttpStream {
  streamId: string;
  sink: FrameworkSink;
}

/** The scheduler endpoint's state: the current HTTP stream of each framework. */
export class SchedulerApi {
  private readonly streams = new Map<string, HttpStream>();
  private readonly log = logger('scheduler-api');
  /** Calls answered, by HTTP status (for /metrics). */
  readonly statusCounts = new Map<number, number>();

  constructor(private readonly master: Master) {}

  /** Number of open HTTP event streams. */
  get openStreams(): number { return this.streams.size; }

  readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      await this.handleCall(req, res);
    } catch (e) {
      const err = toHttpError(e);
      if (err.status >= 500 && err.status !== 501) this.log.error({ err: err.message }, 'scheduler call failed');
      this.count(err.status);
      if (res.headersSent) { res.destroy(); return; }
      const body = Buffer.from(err.message);
      res.writeHead(err.status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length, ...err.headers });
      res.end(body);
    }
  };

  private count(status: number): void { this.statusCounts.set(status, (this.statusCounts.get(status) ?? 0) + 1); }

  private async handleCall(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') {
      req.resume();
      throw new HttpError(405, `Expecting one of { 'POST' }, but received '${req.method ?? ''}'`, { allow: 'POST' });
    }
    const contentType = req.headers['content-type'];
    if (contentType === undefined) {
      req.resume();
      throw new HttpError(400, "Expecting 'Content-Type' to be present");
    }
    const media = bareMediaType(contentType);
    if (media !== APPLICATION_JSON && media !== APPLICATION_PROTOBUF) {
      req.resume();
      throw new HttpError(415, `Expecting 'Content-Type' of ${APPLICATION_JSON} or ${APPLICATION_PROTOBUF}`);
    }
    const body = await readBoundedBody(req, MAX_BODY_BYTES);
    const call = parseCall(media, body);

    if (call.type === 'SUBSCRIBE') {
      await this.subscribe(call, req, res);
      return;
    }
    this.precheck(call, req);
    const stream = this.streams.get(call.framework_id!.value)!;
    this.master.receive(call.framework_id!.value, call, stream.sink, principalOf(req));
    const status = call.type === 'UPDATE_FRAMEWORK' ? 200 : 202;
    this.count(status);
    res.writeHead(status, { 'content-length': 0 });
    res.end();
  }

  /** Every check Mesos makes of a non-SUBSCRIBE call before handling it, in Mesos's order. */
  private precheck(call: Call, req: IncomingMessage): void {
    const id = call.framework_id?.value;
    if (id === undefined) throw new HttpError(400, "Expecting 'framework_id' to be present");
    this.master.requireSubscribed(id); // 400 "Framework cannot be found" / 403 "Framework is not subscribed"
    const stream = this.streams.get(id);
    if (!stream) throw new HttpError(403, 'Framework is not connected via HTTP');
    const given = headerValue(req, STREAM_ID_HEADER);
    if (given === undefined) throw new HttpError(400, `All non-subscribe calls should include the '${STREAM_ID_HEADER}' header`);
    if (given !== stream.streamId) {
      throw new HttpError(400, `The stream ID '${given}' included in this request didn't match the stream ID currently associated with framework ID ${id}`);
    }
    this.master.validateCall(call);
  }

  private async subscribe(call: Call, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (headerValue(req, STREAM_ID_HEADER) !== undefined) {
      throw new HttpError(400, `Subscribe calls should not include the '${STREAM_ID_HEADER}' header`);
    }
    const media = negotiateStream(req.headers.accept);
    if (!media) throw new HttpError(406, `Expecting 'Accept' to allow '${APPLICATION_JSON}' or '${APPLICATION_PROTOBUF}'`);

    const streamId = randomUUID();
    const stream = new EventStream(res, media, this.log);
    let frameworkId: string | undefined;
    const sink: FrameworkSink = {
      kind: 'http',
      send: (ev) => stream.send(ev),
      close: (reason) => {
        if (frameworkId !== undefined && this.streams.get(frameworkId)?.sink === sink) this.streams.delete(frameworkId);
        stream.end(reason);
      },
    };
    // The client may hang up before SUBSCRIBED is sent; the close handler covers both cases.
    res.on('close', () => {
      stream.closed = true;
      if (frameworkId !== undefined && this.streams.get(frameworkId)?.sink === sink) this.streams.delete(frameworkId);
      this.master.detach(sink);
    });
    // Events the master sends during subscribe (SUBSCRIBED, resent updates) are held by the
    // stream until the 200 is written; a failed subscribe answers 4xx with nothing streamed.
    frameworkId = await this.master.subscribe(call, sink, principalOf(req));
    if (stream.closed) { this.master.detach(sink); return; }
    this.streams.set(frameworkId, { streamId, sink });
    this.count(200);
    stream.open({ 'content-type': media, [STREAM_ID_HEADER]: streamId, 'cache-control': 'no-cache' });
    this.log.info({ framework_id: frameworkId, stream_id: streamId, media }, 'framework subscribed over HTTP');
  }
}

/** A chunked RecordIO event stream on one response. */
class EventStream {
  private pending: Event[] | undefined = [];
  closed = false;

  constructor(private readonly res: ServerResponse, private readonly media: MediaType, private readonly log: ReturnType<typeof logger>) {}

  open(headers: Record<string, string>): void {
    this.res.writeHead(200, headers);
    this.res.socket?.setNoDelay(true);
    const held = this.pending ?? [];
    this.pending = undefined;
    for (const ev of held) this.write(ev);
  }

  send(ev: Event): void {
    if (this.closed) return;
    if (this.pending) { this.pending.push(ev); return; }
    this.write(ev);
  }

  private write(ev: Event): void {
    if (this.closed) return;
    if (this.res.writableLength > MAX_STREAM_BACKLOG) {
      this.log.warn({ backlog: this.res.writableLength }, 'closing an event stream whose reader stopped reading');
      this.closed = true;
      this.res.destroy();
      return;
    }
    // One write = one chunk: the whole record, length header included.
    this.res.write(encodeRecord(encodeEventAs(this.media, ev)));
  }

  end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.log.debug({ reason }, 'event stream closed by the master');
    if (this.pending) {
      // Closed before it opened (failed over during subscribe): nothing was promised yet.
      this.pending = undefined;
      this.res.destroy();
      return;
    }
    this.res.end();
  }
}

/**
 * Reads the body (Content-Length or chunked) up to `limit` bytes. Beyond it the rest is
 * discarded, not buffered, so the client still gets a clean 413 rather than a reset; a body
 * that keeps coming for more than DISCARD_LIMIT bytes past the bound gets the connection cut.
 */
const DISCARD_LIMIT = 64 << 20;
function readBoundedBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
      else if (size > limit + DISCARD_LIMIT) req.destroy();
    });
    req.on('end', () => {
      if (size > limit) reject(new HttpError(413, `Request body exceeds ${limit} bytes`, { connection: 'close' }));
      else resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (e) => reject(new HttpError(400, `Failed to read request body: ${e.message}`)));
    req.on('aborted', () => reject(new HttpError(400, 'Request body was cut short')));
  });
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Decodes a Call from the request body; unknown call types are 501, anything else malformed 400. */
export function parseCall(media: MediaType, body: Buffer): Call {
  let call: Call;
  try {
    if (media === APPLICATION_JSON) {
      let obj: unknown;
      try {
        obj = JSON.parse(body.toString('utf8'));
      } catch (e) {
        throw new HttpError(400, `Failed to parse body into JSON: ${(e as Error).message}`);
      }
      call = fromJson<Call>(CALL, obj);
    } else {
      call = decode<Call>(CALL, body);
    }
  } catch (e) {
    if (e instanceof HttpError) throw e;
    if (e instanceof BerthError && e.code === 'BAD_MESSAGE' && /^type: unknown /.test(e.message)) {
      throw new HttpError(501, `Received an unknown call type: ${e.message}`);
    }
    if (e instanceof BerthError) throw new HttpError(SCHEDULER_STATUS[e.code], `Failed to validate scheduler::Call: ${e.message}`);
    throw e;
  }
  if (call.type === undefined) throw new HttpError(400, "Failed to validate scheduler::Call: Expecting 'type' to be present");
  if (call.type === 'UNKNOWN') throw new HttpError(501, "Received 'UNKNOWN' call");
  return call;
}

/** Entry point called by master/main.ts. */
export function installRoutes(server: MasterHttpServer): void {
  const api = new SchedulerApi(server.master);
  server.route(SCHEDULER_PATH, api.handle, 'framework');
  installOperatorRoutes(server, api);
}
