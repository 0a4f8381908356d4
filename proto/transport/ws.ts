/**
 * WebSocket transport (the embedded default). The master's single HTTP port
 * accepts upgrades on WS_AGENT_PATH and WS_SCHEDULER_PATH; each frame is one
 * binary protobuf message. Frames over WS_MAX_PAYLOAD, text frames and frames
 * that do not decode close the connection with a coded reason (1003/1007/1009)
 * without touching any other connection.
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

let nextId = 1;

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
    this.ws.send(this.enc(msg), { binary: true });
  }
  close(reason = 'closed'): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, reason.slice(0, 120));
    this.fireClose(reason);
  }
  onMessage(cb: (m: In) => void): void { this.msgCbs.push(cb); }
  onClose(cb: (r: string) => void): void { this.closeCbs.push(cb); }
}

/** Accepts agent and framework WebSockets on an existing HTTP server. */
export class WsListener implements MasterListener {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD });
  private agentCbs: ((c: Conn<AgentToMaster, MasterToAgent>) => void)[] = [];
  private fwCbs: ((c: Conn<Call, Event>) => void)[] = [];

  /** Returns true if it took the upgrade. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_AGENT_PATH && path !== WS_SCHEDULER_PATH) return false;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
      if (path === WS_AGENT_PATH) {
        const c = new WsConn<AgentToMaster, MasterToAgent>(ws, remote, encodeMasterToAgent, decodeAgentToMaster);
        for (const cb of this.agentCbs) cb(c);
      } else {
        const c = new WsConn<Call, Event>(ws, remote, encodeEvent, decodeCall);
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

  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: WS_MAX_PAYLOAD, perMessageDeflate: false });
    ws.once('open', () => { ws.removeAllListeners('error'); resolve(ws); });
    ws.once('error', (e) => reject(e));
  });
}

/** Dials a master at `host:port` (or a ws:// / http:// URL). Reconnecting is the caller's policy. */
export class WsDialer implements Dialer {
  private readonly base: string;
  constructor(master: string) {
    const m = master.replace(/^(https?|wss?|berth):\/\//, '').replace(/\/.*$/, '');
    this.base = `ws://${m}`;
  }
  async dialAgent(): Promise<Conn<MasterToAgent, AgentToMaster>> {
    const ws = await open(this.base + WS_AGENT_PATH);
    return new WsConn<MasterToAgent, AgentToMaster>(ws, this.base, encodeAgentToMaster, decodeMasterToAgent);
  }
  async dialFramework(): Promise<Conn<Event, Call>> {
    const ws = await open(this.base + WS_SCHEDULER_PATH);
    return new WsConn<Event, Call>(ws, this.base, encodeCall, decodeEvent);
  }
}
