/**
 * WebSocket transport (the embedded default). The master's single HTTP port
 * accepts upgrades on WS_AGENT_PATH and WS_SCHEDULER_PATH; each frame is one
 * binary protobuf message. Frames over WS_MAX_PAYLOAD, text frames and frames
 * that do not decode close the connection with a coded reason (1003/1007/1009)
 * without touching any other connection.
 *
 * Invariants:
 *  - An upgrade passes the listener's gate (origin, host, credentials) before
 *    the WebSocket handshake completes; a refused one gets a plain HTTP status
 *    and its socket is destroyed. The gate's principal travels on the Conn.
 *  - A connection whose peer stops reading is cut (1008) once more than
 *    `maxBacklogBytes` are queued for it: the sender never buffers without bound.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import {
  decodeAgentToMaster, decodeCall, decodeEvent, decodeMasterToAgent,
  encodeAgentToMaster, encodeCall, encodeEvent, encodeMasterToAgent,
} from '../codec.js';
import type { AgentToMaster, Call, Event, MasterToAgent } from '../types.js';
import { type Conn, type Dialer, type MasterListener, WS_AGENT_PATH, WS_MAX_PAYLOAD, WS_SCHEDULER_PATH } from './types.js';
import { basicAuthorization, type ClientSecurity } from './credentials.js';

let nextId = 1;

/** Default bytes queued on one connection before its reader counts as stopped (as the HTTP event stream's). */
export const WS_MAX_BACKLOG = 64 << 20;

class WsConn<In, Out> implements Conn<In, Out> {
  readonly id = `ws-${nextId++}`;
  private msgCbs: ((m: In) => void)[] = [];
  private closeCbs: ((r: string) => void)[] = [];
  closed = false;

  constructor(
    private readonly ws: WebSocket,
    readonly remote: string,
    private readonly enc: (m: Out) => Uint8Array,
    private readonly dec: (b: Uint8Array) => In,
    private readonly maxBacklog = WS_MAX_BACKLOG,
    readonly principal?: string,
  ) {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => {
      if (!isBinary) { ws.close(1003, 'binary protobuf frames only'); return; }
      let msg: In;
      try {
        msg = this.dec(data as Buffer);
      } catch (e) {
        ws.close(1007, String((e as Error).message).slice(0, 120));
        return;
      }
      for (const cb of this.msgCbs) cb(msg);
    });
    ws.on('close', (code, reason) => this.fireClose(`${code}${reason.length ? ` ${reason.toString()}` : ''}`));
    ws.on('error', (err) => this.fireClose(`error: ${err.message}`));
  }

  private fireClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const cb of this.closeCbs) cb(reason);
  }

  send(msg: Out): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount > this.maxBacklog) {
      // The peer stopped reading. Cut it now rather than hold its backlog: frameworks fail
      // over and get their unacknowledged updates again; agents reregister.
      const backlog = this.ws.bufferedAmount;
      this.ws.terminate();
      this.fireClose(`1008 send backlog of ${backlog} bytes exceeds ${this.maxBacklog}: the peer stopped reading`);
      return;
    }
    this.corkUntilNextTick();
    this.ws.send(this.enc(msg), { binary: true });
  }

  /**
   * Frames sent in one tick leave in one write: the socket stays corked until the next tick, so a
   * burst (an agent's status updates, the master's offers and updates) costs one writev syscall,
   * not one per frame (those writes were a fifth of a busy agent's CPU). Latency is unchanged: the
   * uncork runs before any I/O of the next loop turn.
   */
  private corked = false;
  private corkUntilNextTick(): void {
    if (this.corked) return;
    // ws keeps its net.Socket private; without it (never in practice) frames are simply written one by one.
    const sock = (this.ws as unknown as { _socket?: Duplex })._socket;
    if (!sock) return;
    this.corked = true;
    sock.cork();
    process.nextTick(() => { this.corked = false; sock.uncork(); });
  }
  close(reason = 'closed'): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, reason.slice(0, 120));
    this.fireClose(reason);
  }
  onMessage(cb: (m: In) => void): void { this.msgCbs.push(cb); }
  onClose(cb: (r: string) => void): void { this.closeCbs.push(cb); }
}

/** What the gate decides for one upgrade: go ahead as `principal` (undefined: anonymous), or refuse. */
export type GateResult = { principal?: string } | { status: number; message: string; headers?: Record<string, string> };
export type UpgradeGate = (req: IncomingMessage, kind: 'agent' | 'framework') => GateResult;

export interface WsListenerOptions {
  /** Checks every upgrade before the handshake (origin, host, credentials). Default: accept all. */
  gate?: UpgradeGate;
  /** Bytes queued on one connection before it is cut (default WS_MAX_BACKLOG). */
  maxBacklogBytes?: number;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 421: 'Misdirected Request', 503: 'Service Unavailable' };

/** Accepts agent and framework WebSockets on an existing HTTP server. */
export class WsListener implements MasterListener {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD });
  private agentCbs: ((c: Conn<AgentToMaster, MasterToAgent>) => void)[] = [];
  private fwCbs: ((c: Conn<Call, Event>) => void)[] = [];

  constructor(private readonly opts: WsListenerOptions = {}) {}

  /** Returns true if it took the upgrade (accepted or refused with a status). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_AGENT_PATH && path !== WS_SCHEDULER_PATH) return false;
    const kind = path === WS_AGENT_PATH ? 'agent' : 'framework';
    const verdict = this.opts.gate?.(req, kind) ?? {};
    if ('status' in verdict) {
      const body = Buffer.from(verdict.message);
      const headers = Object.entries({ ...verdict.headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': String(body.length), connection: 'close' })
        .map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 ${verdict.status} ${STATUS_TEXT[verdict.status] ?? 'Refused'}\r\n${headers}\r\n`), body]));
      setTimeout(() => socket.destroy(), 1000).unref();
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
      const backlog = this.opts.maxBacklogBytes ?? WS_MAX_BACKLOG;
      if (kind === 'agent') {
        const c = new WsConn<AgentToMaster, MasterToAgent>(ws, remote, encodeMasterToAgent, decodeAgentToMaster, backlog, verdict.principal);
        for (const cb of this.agentCbs) cb(c);
      } else {
        const c = new WsConn<Call, Event>(ws, remote, encodeEvent, decodeCall, backlog, verdict.principal);
        for (const cb of this.fwCbs) cb(c);
      }
    });
    return true;
  }

  attach(server: Server): void {
    server.on('upgrade', (req, socket, head) => {
      if (!this.handleUpgrade(req, socket, head)) socket.destroy();
    });
  }

  onAgent(cb: (c: Conn<AgentToMaster, MasterToAgent>) => void): void { this.agentCbs.push(cb); }
  onFramework(cb: (c: Conn<Call, Event>) => void): void { this.fwCbs.push(cb); }

  /** Open connections (for limits and metrics). */
  get size(): number { return this.wss.clients.size; }

  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

function open(url: string, sec: ClientSecurity): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (sec.credential) headers.authorization = basicAuthorization(sec.credential);
    const ws = new WebSocket(url, {
      maxPayload: WS_MAX_PAYLOAD, perMessageDeflate: false, headers,
      ...(sec.tls ? { ca: sec.tls.ca, cert: sec.tls.cert, key: sec.tls.key } : {}),
    });
    ws.once('open', () => { ws.removeAllListeners('error'); ws.removeAllListeners('unexpected-response'); resolve(ws); });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reject(new Error(`master refused the connection: ${res.statusCode} ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`)));
      res.on('error', reject);
    });
    ws.once('error', (e) => reject(e));
  });
}

/**
 * Dials a master at `host:port` (or a ws(s):// / http(s):// URL), presenting `security`'s
 * credential on the upgrade and verifying the master's certificate against `security.tls.ca`
 * (TLS is used when `security.tls` is given or the URL says https/wss). Reconnecting is the
 * caller's policy.
 */
export class WsDialer implements Dialer {
  private readonly base: string;
  constructor(master: string, private readonly security: ClientSecurity = {}) {
    const tlsUrl = /^(https|wss):\/\//i.test(master);
    const m = master.replace(/^(https?|wss?|berths?):\/\//i, '').replace(/\/.*$/, '');
    this.base = `${tlsUrl || security.tls ? 'wss' : 'ws'}://${m}`;
  }
  async dialAgent(): Promise<Conn<MasterToAgent, AgentToMaster>> {
    const ws = await open(this.base + WS_AGENT_PATH, this.security);
    return new WsConn<MasterToAgent, AgentToMaster>(ws, this.base, encodeAgentToMaster, decodeMasterToAgent);
  }
  async dialFramework(): Promise<Conn<Event, Call>> {
    const ws = await open(this.base + WS_SCHEDULER_PATH, this.security);
    return new WsConn<Event, Call>(ws, this.base, encodeCall, decodeEvent);
  }
}
