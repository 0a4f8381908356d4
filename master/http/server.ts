/**
 * The master's one port: HTTP endpoints plus WebSocket upgrades for agents and
 * native-transport frameworks. Routes are exact paths in a table; each handler
 * owns its method checks. Request bodies are bounded (MAX_BODY_BYTES).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WsListener } from '../../proto/transport/ws.js';
import type { Master } from '../master.js';
import type { Logger } from '../../proto/log.js';

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export const MAX_BODY_BYTES = 16 << 20;

export class MasterHttpServer {
  readonly server: http.Server;
  readonly ws = new WsListener();
  private routes = new Map<string, Handler>();

  constructor(readonly master: Master, private readonly log: Logger) {
    this.server = http.createServer((req, res) => this.dispatch(req, res));
    this.server.keepAliveTimeout = 65_000;
    this.ws.attach(this.server);
    master.listen(this.ws);
    this.route('/health', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    });
  }

  route(path: string, handler: Handler): void { this.routes.set(path, handler); }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const handler = this.routes.get(url.pathname) ?? this.routes.get(url.pathname.replace(/\/$/, ''));
    if (!handler) { sendJson(res, 404, { error: `No endpoint ${url.pathname}` }); return; }
    Promise.resolve()
      .then(() => handler(req, res, url))
      .catch((e: Error) => {
        this.log.error({ err: e.message, path: url.pathname }, 'endpoint failed');
        if (!res.headersSent) sendJson(res, 500, { error: e.message });
        else res.destroy();
      });
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve(); });
    });
    return (this.server.address() as AddressInfo).port;
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
    req.on('error', reject);
  });
}
