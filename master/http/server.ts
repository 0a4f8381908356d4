/**
 * The master's one port: HTTP endpoints plus WebSocket upgrades for agents and
 * native-transport frameworks, over TLS when configured. Routes are exact
 * paths in a table, each with its kind (public, readonly, readwrite,
 * framework); each handler owns its method checks. Request bodies are bounded
 * (MAX_BODY_BYTES).
 *
 * Invariants (the edge, before any handler runs):
 *  - The Host header names this listener (DNS-rebinding defence) — for every
 *    WebSocket upgrade, and for every request on a loopback listener, where
 *    unauthenticated access is allowed.
 *  - A WebSocket upgrade carrying an Origin (a browser page) is refused.
 *  - The caller is authenticated as its route's kind requires (401 with a
 *    Basic challenge otherwise); the principal reaches the handler via
 *    `principalOf(req)`.
 *  - Connections are bounded in number and in how long a request may take to
 *    arrive, so idle or slow unauthenticated peers cannot pile up.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { WsListener } from '../../proto/transport/ws.js';
import type { Master } from '../master.js';
import type { Logger } from '../../proto/log.js';
import { authenticate, HostCheck, isLoopback, OPEN_POLICY, type AuthPolicy, type EndpointKind } from '../auth/edge.js';

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export const MAX_BODY_BYTES = 16 << 20;

export interface ServerSecurity {
  auth?: AuthPolicy;
  /** PEM contents: the master's certificate and key; `ca` makes client certificates mandatory. */
  tls?: { cert: string; key: string; ca?: string };
  /** Extra names the Host header may use (e.g. a load balancer's name). */
  allowedHosts?: string[];
  /** Open connections at most (HTTP and WebSocket together); beyond, new ones are refused. */
  maxConnections?: number;
  /** Bytes queued on one WebSocket before its reader counts as stopped. */
  wsMaxBacklogBytes?: number;
}

const principals = new WeakMap<IncomingMessage, string>();
/** The principal the edge authenticated for this request (undefined: anonymous). */
export function principalOf(req: IncomingMessage): string | undefined { return principals.get(req); }

export class MasterHttpServer {
  readonly server: http.Server;
  readonly ws: WsListener;
  readonly auth: AuthPolicy;
  readonly tls: boolean;
  private routes = new Map<string, { handler: Handler; kind: EndpointKind }>();
  private hostCheck = new HostCheck('127.0.0.1');
  private loopback = true;
  private port = 0;

  constructor(readonly master: Master, private readonly log: Logger, private readonly security: ServerSecurity = {}) {
    this.auth = security.auth ?? OPEN_POLICY;
    this.tls = !!security.tls;
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.dispatch(req, res);
    this.server = security.tls
      ? https.createServer({ cert: security.tls.cert, key: security.tls.key, ca: security.tls.ca, requestCert: !!security.tls.ca, rejectUnauthorized: !!security.tls.ca }, handler)
      : http.createServer(handler);
    this.server.keepAliveTimeout = 65_000;
    // A request must arrive whole in bounded time: slow or idle peers do not hold sockets forever.
    this.server.headersTimeout = 15_000;
    this.server.requestTimeout = 60_000;
    this.server.maxConnections = security.maxConnections ?? 10_000;
    this.ws = new WsListener({
      maxBacklogBytes: security.wsMaxBacklogBytes,
      gate: (req, kind) => {
        if (req.headers.origin !== undefined) return { status: 403, message: `WebSocket upgrades from a browser origin (${String(req.headers.origin).slice(0, 100)}) are refused` };
        if (!this.hostCheck.allows(req.headers.host, this.port)) return { status: 421, message: `Host '${String(req.headers.host ?? '').slice(0, 100)}' does not name this master` };
        const a = authenticate(req, this.auth, kind);
        if (!a.ok) return { status: a.status, message: a.message, headers: a.headers };
        return { principal: a.principal };
      },
    });
    this.ws.attach(this.server);
    master.authenticateAgents = this.auth.agents;
    master.authenticateFrameworks = this.auth.frameworks;
    master.listen(this.ws);
    this.route('/health', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    }, 'public');
  }

  /** Registers `handler` for `path`; `kind` says who may call it (readonly by default). */
  route(path: string, handler: Handler, kind: EndpointKind = 'readonly'): void { this.routes.set(path, { handler, kind }); }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (this.loopback && !this.hostCheck.allows(req.headers.host, this.port)) {
      req.resume();
      sendJson(res, 421, { error: `Host '${String(req.headers.host ?? '').slice(0, 100)}' does not name this master` });
      return;
    }
    const route = this.routes.get(url.pathname) ?? this.routes.get(url.pathname.replace(/\/$/, ''));
    if (!route) { req.resume(); sendJson(res, 404, { error: `No endpoint ${url.pathname}` }); return; }
    const a = authenticate(req, this.auth, route.kind);
    if (!a.ok) {
      req.resume();
      const body = Buffer.from(a.message);
      res.writeHead(a.status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length, ...a.headers });
      res.end(body);
      return;
    }
    if (a.principal !== undefined) principals.set(req, a.principal);
    Promise.resolve()
      .then(() => route.handler(req, res, url))
      .catch((e: Error) => {
        this.log.error({ err: e.message, path: url.pathname }, 'endpoint failed');
        if (!res.headersSent) sendJson(res, 500, { error: e.message });
        else res.destroy();
      });
  }

  /**
   * For a server whose socket someone else owns (cluster mode: the leader gate in
   * master/leader/run.ts forwards requests to it): the port and host listen() would set.
   */
  servedAt(port: number, host: string): void {
    this.port = port;
    this.loopback = isLoopback(host);
    this.hostCheck = new HostCheck(host, [...(this.security.allowedHosts ?? []), this.master.opts.hostname ?? 'localhost']);
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve(); });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.loopback = isLoopback(host);
    this.hostCheck = new HostCheck(host, [...(this.security.allowedHosts ?? []), this.master.opts.hostname ?? 'localhost']);
    return this.port;
  }

  async close(): Promise<void> {
    this.ws.close();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a request body (chunked or not) up to `limit` bytes; rejects with a 413-worthy error beyond. */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) { reject(Object.assign(new Error(`request body exceeds ${limit} bytes`), { status: 413 })); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', (e) => reject(e));
  });
}
