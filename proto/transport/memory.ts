/**
 * In-process transport: a pair of connected Conns per dial. Delivery is
 * asynchronous (a microtask), like a socket, so code under test cannot come to
 * rely on re-entrant delivery; messages are passed by reference (the sender
 * must not mutate what it sent). Links can be cut to simulate failures.
 */
import type { Conn, Dialer, MasterListener } from './types.js';
import type { AgentToMaster, Call, Event, MasterToAgent } from '../types.js';

let nextConnId = 1;

class MemoryConn<In, Out> implements Conn<In, Out> {
  readonly id = `mem-${nextConnId++}`;
  readonly remote = 'memory';
  peer!: MemoryConn<Out, In>;
  private msgCbs: ((m: In) => void)[] = [];
  private closeCbs: ((r: string) => void)[] = [];
  closed = false;
  /** When set, outgoing messages are silently dropped (a test's DROP hook). */
  drop?: (msg: Out) => boolean;

  send(msg: Out): void {
    if (this.closed || this.drop?.(msg)) return;
    const peer = this.peer;
    queueMicrotask(() => { if (!peer.closed) for (const cb of peer.msgCbs) cb(msg); });
  }
  close(reason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.peer.closed = true;
    const peer = this.peer;
    queueMicrotask(() => {
      for (const cb of this.closeCbs) cb(reason);
      for (const cb of peer.closeCbs) cb(reason);
    });
  }
  onMessage(cb: (m: In) => void): void { this.msgCbs.push(cb); }
  onClose(cb: (r: string) => void): void { this.closeCbs.push(cb); }
}

export function connPair<A, B>(): [Conn<A, B>, Conn<B, A>] {
  const a = new MemoryConn<A, B>();
  const b = new MemoryConn<B, A>();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export class MemoryNetwork implements MasterListener, Dialer {
  private agentCbs: ((c: Conn<AgentToMaster, MasterToAgent>) => void)[] = [];
  private fwCbs: ((c: Conn<Call, Event>) => void)[] = [];
  /** Every live master-side connection, so tests can cut links. */
  readonly conns = new Set<Conn<unknown, unknown>>();

  onAgent(cb: (c: Conn<AgentToMaster, MasterToAgent>) => void): void { this.agentCbs.push(cb); }
  onFramework(cb: (c: Conn<Call, Event>) => void): void { this.fwCbs.push(cb); }

  async dialAgent(): Promise<Conn<MasterToAgent, AgentToMaster>> {
    const [server, client] = connPair<AgentToMaster, MasterToAgent>();
    this.track(server as Conn<unknown, unknown>);
    for (const cb of this.agentCbs) cb(server);
    return client;
  }
  async dialFramework(): Promise<Conn<Event, Call>> {
    const [server, client] = connPair<Call, Event>();
    this.track(server as Conn<unknown, unknown>);
    for (const cb of this.fwCbs) cb(server);
    return client;
  }
  private track(c: Conn<unknown, unknown>): void {
    this.conns.add(c);
    c.onClose(() => this.conns.delete(c));
  }
}
