/**
 * The native transport adapter: framework and agent connections (WebSocket,
 * in-memory, later NATS) turned into calls on the master's parts. Beside
 * `http/`, which does the same for the Mesos HTTP API.
 *
 * A connection arrives already authenticated (or refused) by its transport:
 * `conn.principal` is who it proved to be, undefined when authentication is
 * off. When the master requires authentication, a connection without a
 * principal is closed before any message is handled.
 *
 * Invariants:
 *  - A framework connection's first useful message is SUBSCRIBE; every later
 *    call must name the subscribed framework.
 *  - An agent connection speaks only after it registered; then only for itself.
 */
import { BerthError } from '../../proto/errors.js';
import type { Conn } from '../../proto/transport/types.js';
import { AGENT_PROTOCOL_VERSION, type AgentToMaster, type Call, type Event, type MasterToAgent } from '../../proto/types.js';
import type { Master } from '../master.js';
import type { FrameworkSink } from '../records.js';
import type { TimerHandle } from '../../proto/clock.js';

/** Native transport: the first message must be SUBSCRIBE; later ones are calls. */
export function attachFrameworkConn(master: Master, conn: Conn<Call, Event>): void {
  if (master.authenticateFrameworks && conn.principal === undefined) {
    conn.send({ type: 'ERROR', error: { message: 'Authentication required: the master needs framework credentials' } });
    conn.close('unauthenticated');
    return;
  }
  let frameworkId: string | undefined;
  const sink: FrameworkSink = { kind: 'native', send: (ev) => conn.send(ev), close: (r) => conn.close(r) };
  const handshake = closeUnless(master, conn, () => frameworkId !== undefined, 'SUBSCRIBE');
  conn.onMessage((call) => {
    if (master.stopped) return;
    if (call.type === 'SUBSCRIBE') {
      master.subscribe(call, sink, conn.principal).then((id) => { frameworkId = id; master.clock.clearTimeout(handshake); }).catch((e: Error) => {
        conn.send({ type: 'ERROR', error: { message: e.message } });
        conn.close('subscribe failed');
      });
      return;
    }
    try {
      if (!frameworkId) throw new BerthError('FORBIDDEN', 'Framework is not subscribed');
      if (call.framework_id?.value !== frameworkId) throw new BerthError('INVALID', `call.framework_id '${call.framework_id?.value ?? ''}' does not match the subscribed framework '${frameworkId}'`);
      master.receive(frameworkId, call, sink, conn.principal);
    } catch (e) {
      master.counters.callsInvalid++;
      // Not a Mesos ERROR (which means "abort"): the SDK surfaces it as a rejected call.
      conn.send({ type: 'ERROR', error: { message: `call rejected: ${(e as Error).message}` } });
    }
  });
  conn.onClose(() => { master.clock.clearTimeout(handshake); master.detach(sink); });
}

/** Closes `conn` if `done()` is still false after the handshake timeout (idle peers do not pile up). */
function closeUnless(master: Master, conn: { close(r: string): void; readonly closed: boolean }, done: () => boolean, what: string): TimerHandle {
  return master.clock.setTimeout(() => {
    if (!done() && !conn.closed) conn.close(`no ${what} within ${master.limits.handshakeTimeoutMs} ms`);
  }, master.limits.handshakeTimeoutMs);
}

export function attachAgentConn(master: Master, conn: Conn<AgentToMaster, MasterToAgent>): void {
  const log = master.log;
  if (master.authenticateAgents && conn.principal === undefined) {
    conn.send({ version: AGENT_PROTOCOL_VERSION, error: { message: 'Authentication required: the master needs agent credentials (berth agent --credential FILE)', code: 'FORBIDDEN' } });
    conn.close('unauthenticated');
    return;
  }
  const agents = master.parts.agents;
  const tasks = master.parts.tasks;
  let agentId: string | undefined;
  const handshake = closeUnless(master, conn, () => agentId !== undefined, 'registration');
  conn.onMessage((msg) => {
    if (master.stopped) return;
    try {
      if (msg.version !== AGENT_PROTOCOL_VERSION) {
        conn.send({ version: AGENT_PROTOCOL_VERSION, error: { message: `unsupported agent protocol version ${msg.version}`, code: 'UNSUPPORTED' } });
        conn.close('protocol version');
        return;
      }
      if (msg.register || msg.reregister) {
        void agents.admit(conn, msg, conn.principal).then((id) => { agentId = id; master.clock.clearTimeout(handshake); }).catch((e: Error) => {
          log.warn({ err: e.message, remote: conn.remote }, 'agent registration failed');
          conn.send({ version: AGENT_PROTOCOL_VERSION, error: { message: e.message, code: e instanceof BerthError ? e.code : undefined } });
          if (e instanceof BerthError && e.code === 'FORBIDDEN') conn.close('registration refused');
        });
        return;
      }
      const agent = agentId ? agents.get(agentId) : undefined;
      if (!agent || agent.conn !== conn) {
        log.debug({ conn: conn.id }, 'ignoring agent message before registration');
        return;
      }
      if (msg.pong) agents.pong(agent);
      else if (msg.status_update) tasks.statusUpdate(agent, msg.status_update.framework_id.value, msg.status_update.status);
      else if (msg.usage) tasks.usage(agent, msg.usage.containers ?? []);
    } catch (e) {
      log.warn({ err: (e as Error).message, agent: agentId }, 'bad agent message');
    }
  });
  conn.onClose((reason) => {
    master.clock.clearTimeout(handshake);
    const agent = agentId ? agents.get(agentId) : undefined;
    if (agent && agent.conn === conn) agents.disconnected(agent, reason);
  });
}
