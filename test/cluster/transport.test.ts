/**
 * The NATS transport against a real nats-server: sessions found through the
 * leader detector carry protobuf frames both ways, large frames arrive whole,
 * frames from a master with an older epoch are dropped, a session follows a
 * change of leader, and a vanished peer is noticed by heartbeats.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { headers, type NatsConnection } from 'nats';
import { encodeMasterToAgent } from '../../proto/codec.js';
import { NatsLeaseContender } from '../../master/leader/nats.js';
import { NatsLeaderDetector } from '../../proto/transport/nats-detector.js';
import { NatsDialer, NatsListener } from '../../proto/transport/nats.js';
import type { AgentToMaster, Call, Event, MasterToAgent } from '../../proto/types.js';
import type { Conn } from '../../proto/transport/types.js';
import { checked, client, until, withNats } from './harness.js';

async function elect(nc: NatsConnection, id: string, prefix: string, ttlMs = 1000): Promise<NatsLeaseContender> {
  const c = new NatsLeaseContender(nc, { prefix, ttlMs, record: { master_id: id, hostname: 'h', port: 1, url: 'http://h:1', pid: `master@${id}` } });
  await c.start();
  await until(`${id} leads`, () => c.state === 'leading');
  return c;
}

test('agent and framework sessions over NATS carry protobuf frames both ways and close on either side', () => withNats(1, async (n, conns) => {
  const mnc = await client(n, conns);
  const lead = await elect(mnc, 'm1', 't1');
  const listener = new NatsListener(mnc, { prefix: 't1', masterId: 'm1', epoch: lead.epoch });
  await listener.ready();
  lead.markReady(lead.epoch);
  const agents: Conn<AgentToMaster, MasterToAgent>[] = [];
  const fws: Conn<Call, Event>[] = [];
  listener.onAgent((c) => { agents.push(c); c.onMessage((m) => { if (m.pong) c.send({ version: 1, ping: { seq: (m.pong.seq ?? 0) + 1 } }); }); });
  listener.onFramework((c) => { fws.push(c); c.onMessage((m) => { if (m.type === 'SUBSCRIBE') c.send({ type: 'HEARTBEAT' }); }); });
  const cnc = await client(n, conns);
  const det = await NatsLeaderDetector.start(cnc, 't1');
  const dialer = new NatsDialer(cnc, { prefix: 't1', detector: det });
  const a = await dialer.dialAgent();
  const got: MasterToAgent[] = [];
  a.onMessage((m) => got.push(m));
  a.send({ version: 1, pong: { seq: 41 } });
  await until('ping reply', () => got.length === 1);
  assert.is(got[0]!.ping?.seq, 42);
  const f = await dialer.dialFramework();
  const evs: Event[] = [];
  f.onMessage((e) => evs.push(e));
  f.send({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'n' } } });
  await until('heartbeat event', () => evs.length === 1);
  assert.is(evs[0]!.type, 'HEARTBEAT');
  let masterSaw = '';
  agents[0]!.onClose((r) => { masterSaw = r; });
  a.close('agent stopping');
  await until('master sees the close', () => masterSaw !== '');
  assert.match(masterSaw, /agent stopping/);
  let fwSaw = '';
  f.onClose((r) => { fwSaw = r; });
  listener.close('master stopped');
  await until('framework sees the close', () => fwSaw !== '');
  assert.is(listener.sessionCount, 0);
  await det.close();
  await lead.close();
  checked('agent pong->ping and framework SUBSCRIBE->HEARTBEAT round trips; close reasons reach the peer both ways');
}));

test('a frame larger than the server max_payload arrives whole', () => withNats(1, async (n, conns) => {
  const mnc = await client(n, conns);
  const lead = await elect(mnc, 'm1', 't2');
  const listener = new NatsListener(mnc, { prefix: 't2', masterId: 'm1', epoch: lead.epoch });
  await listener.ready();
  lead.markReady(lead.epoch);
  const offers = Array.from({ length: 3000 }, (_, i) => ({
    id: { value: `o${i}` }, framework_id: { value: 'f' }, agent_id: { value: `a${i}` }, hostname: `host-${i}`,
    resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 4 } }, { name: 'mem', type: 'SCALAR', scalar: { value: 8192 } }],
  }));
  const big = { type: 'OFFERS', offers: { offers } } as unknown as Event;
  listener.onFramework((c) => c.onMessage(() => c.send(big)));
  const det = await NatsLeaderDetector.start(await client(n, conns), 't2');
  const f = await new NatsDialer(conns[1]!, { prefix: 't2', detector: det }).dialFramework();
  let ev: Event | undefined;
  f.onMessage((e) => { ev = e; });
  f.send({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'n' } } });
  await until('big event', () => ev !== undefined);
  const got = (ev as unknown as { offers: { offers: { hostname: string }[] } }).offers.offers;
  assert.is(got.length, offers.length);
  assert.is(got[2999]!.hostname, 'host-2999');
  f.close(); listener.close(); await det.close(); await lead.close();
  checked(`OFFERS event with ${got.length} offers delivered intact through a 64 KB max_payload (chunked)`);
}, { maxPayload: '64KB' }));

test('chaos: a stale master (older epoch) sends a launch; the client drops it and follows the new leader', () => withNats(1, async (n, conns) => {
  const nc1 = await client(n, conns);
  const old = await elect(nc1, 'old', 't3', 500);
  const oldListener = new NatsListener(nc1, { prefix: 't3', masterId: 'old', epoch: old.epoch });
  await oldListener.ready();
  old.markReady(old.epoch);
  let oldConn: Conn<AgentToMaster, MasterToAgent> | undefined;
  oldListener.onAgent((c) => { oldConn = c; });
  const anc = await client(n, conns);
  const det = await NatsLeaderDetector.start(anc, 't3');
  const dialer = new NatsDialer(anc, { prefix: 't3', detector: det });
  const a = await dialer.dialAgent();
  let closedWhy = '';
  a.onClose((r) => { closedWhy = r; });
  const got: MasterToAgent[] = [];
  a.onMessage((m) => got.push(m));
  await until('old master has the session', () => !!oldConn);
  // The old master stops renewing (a GC pause, a partition); a new master wins a later epoch.
  (old as unknown as { stopped: boolean }).stopped = true;
  const nc2 = await client(n, conns);
  const next = await elect(nc2, 'new', 't3', 500);
  assert.ok(next.epoch > old.epoch);
  await until('client closed its session with the deposed master', () => closedWhy !== '');
  assert.match(closedWhy, /leader changed/);
  // The deposed master, unaware, still sends a launch on the session it had.
  const launch: MasterToAgent = { version: 1, launch: { framework: { user: 'u', name: 'n' }, task: { name: 't', task_id: { value: 't1' }, agent_id: { value: 'a' }, resources: [] } } };
  (oldConn as unknown as { closed: boolean }).closed = false;
  oldConn!.send(launch);
  // A second, fresh session the agent opens goes to the new leader, which can still launch.
  const newListener = new NatsListener(nc2, { prefix: 't3', masterId: 'new', epoch: next.epoch });
  await newListener.ready();
  next.markReady(next.epoch);
  newListener.onAgent((c) => c.onMessage(() => c.send(launch)));
  const b = await dialer.dialAgent();
  const gotB: MasterToAgent[] = [];
  b.onMessage((m) => gotB.push(m));
  b.send({ version: 1, pong: {} });
  await until('launch from the new leader', () => gotB.length === 1);
  // The stale master learns the live session's subject and publishes a launch on it with its epoch.
  const inbox = [...(newListener as unknown as { sessions: Map<string, { remote: string }> }).sessions.values()][0]!.remote;
  const h = headers();
  h.set('B-Epoch', String(old.epoch));
  nc1.publish(inbox, encodeMasterToAgent(launch), { headers: h });
  b.send({ version: 1, pong: {} });
  await until('second launch from the new leader', () => gotB.length === 2);
  assert.is(dialer.staleFramesDropped, 1, 'the stale frame on the live session was dropped');
  assert.equal(got, [], 'nothing from the stale master reached the agent');
  b.close(); newListener.close(); oldListener.close();
  await det.close(); await next.close(); await old.close();
  checked(`session closed on leader change (epoch ${old.epoch} -> ${next.epoch}); stale launch not delivered; new leader's launch delivered`);
}));

test('a session whose peer vanishes without a word closes after three missed heartbeats', () => withNats(1, async (n, conns) => {
  const mnc = await client(n, conns);
  const lead = await elect(mnc, 'm1', 't4');
  const listener = new NatsListener(mnc, { prefix: 't4', masterId: 'm1', epoch: lead.epoch, heartbeatMs: 100 });
  await listener.ready();
  lead.markReady(lead.epoch);
  let why = '';
  listener.onAgent((c) => c.onClose((r) => { why = r; }));
  const cnc = await client(n, conns);
  const det = await NatsLeaderDetector.start(cnc, 't4');
  await new NatsDialer(cnc, { prefix: 't4', detector: det, heartbeatMs: 100 }).dialAgent();
  await new Promise((r) => setTimeout(r, 500));
  assert.is(why, '', 'heartbeats keep an idle session open');
  await det.close();
  await cnc.close(); // the agent's process is gone: no close frame
  await until('master closes the session', () => why !== '', 5_000);
  assert.match(why, /no frame or heartbeat/);
  listener.close(); await lead.close();
  checked('idle session kept alive by heartbeats; silent peer detected');
}));

test.run();
