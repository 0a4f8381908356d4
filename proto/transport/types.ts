/**
 * One transport interface, several implementations: `memory` (in-process, for
 * tests and the simulator: no sockets, no encoding), `ws` (the embedded
 * default: one WebSocket per agent or framework, protobuf frames) and, later,
 * `nats`. Messages cross it in their JSON form (proto/types.ts); encoding, if
 * any, is the implementation's business.
 */
import type { AgentToMaster, Call, Event, MasterToAgent } from '../types.js';

export interface Conn<In, Out> {
  /** Unique per connection, for logs. */
  readonly id: string;
  /** Peer address for logs ("127.0.0.1:53211", "memory"). */
  readonly remote: string;
  /**
   * Who the peer proved to be when the connection was set up (transport credentials or a
   * client certificate); undefined when it did not authenticate.
   */
  readonly principal?: string;
  /** Queues a message; never throws (a dead connection drops it and reports close). */
  send(msg: Out): void;
  close(reason?: string): void;
  onMessage(cb: (msg: In) => void): void;
  /** Called once, when either side closes or the link fails. */
  onClose(cb: (reason: string) => void): void;
  readonly closed: boolean;
}

/** Master side: where agent and framework connections arrive. */
export interface MasterListener {
  onAgent(cb: (conn: Conn<AgentToMaster, MasterToAgent>) => void): void;
  onFramework(cb: (conn: Conn<Call, Event>) => void): void;
}

/** Client side: how an agent or SDK framework reaches the master. */
export interface Dialer {
  dialAgent(): Promise<Conn<MasterToAgent, AgentToMaster>>;
  dialFramework(): Promise<Conn<Event, Call>>;
}

export const WS_AGENT_PATH = '/api/v1/berth/agent';
export const WS_SCHEDULER_PATH = '/api/v1/berth/scheduler';
/** Largest frame accepted on a WebSocket (bytes). */
export const WS_MAX_PAYLOAD = 16 << 20;
