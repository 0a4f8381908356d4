/**
 * Leader election through a KV lease against real nats-servers: one leader at
 * a time, takeover after the lease lapses with a higher epoch, prompt handover
 * on release, and a leader cut off from NATS fencing itself BEFORE a standby
 * takes over (partition of the leader from the NATS majority, R3 bucket).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NatsConnection } from 'nats';
import { NatsLeaseContender } from '../../master/leader/nats.js';
import type { LeaderState } from '../../master/leader/types.js';
import { NatsLeaderDetector } from '../../proto/transport/nats-detector.js';
import { checked, client, until, withNats } from './harness.js';

const TTL = 2000;

function contender(nc: NatsConnection, id: string, prefix: string, replicas = 1) {
  const c = new NatsLeaseContender(nc, {
    prefix, ttlMs: TTL, replicas,
    record: { master_id: id, hostname: 'localhost', port: 1, url: `http://localhost/${id}`, pid: `master@${id}` },
  });
  const events: { state: LeaderState; epoch: number; at: number }[] = [];
  c.onStateChange((state, epoch) => events.push({ state, epoch, at: performance.now() }));
  return { c, events, id };
}

test('one of three masters leads; a standby leads with a higher epoch once the leader stops renewing', () => withNats(1, async (n, conns) => {
  const ms = await Promise.all(['m1', 'm2', 'm3'].map(async (id) => contender(await client(n, conns), id, 'l1')));
  for (const m of ms) await m.c.start();
  await until('a leader', () => ms.some((m) => m.c.state === 'leading'));
  await new Promise((r) => setTimeout(r, TTL * 2));
  assert.is(ms.filter((m) => m.c.state === 'leading').length, 1, 'exactly one leader after two lease periods');
  const first = ms.find((m) => m.c.state === 'leading')!;
  const det = await NatsLeaderDetector.start(await client(n, conns), 'l1');
  await until('detector sees the leader', () => det.current()?.master_id === first.id);
  // Crash without releasing: stop renewing (the process is gone; its key stays until the lease lapses).
  const nc0 = conns[ms.indexOf(first)]!;
  (first.c as unknown as { stopped: boolean }).stopped = true;
  await nc0.close();
  const t0 = performance.now();
  await until('a new leader', () => ms.some((m) => m !== first && m.c.state === 'leading'), 10_000);
  const took = performance.now() - t0;
  const second = ms.find((m) => m !== first && m.c.state === 'leading')!;
  assert.ok(second.c.epoch > first.c.epoch, `epoch ${second.c.epoch} > ${first.c.epoch}`);
  await until('detector follows', () => det.current()?.master_id === second.id);
  assert.is(det.highestEpoch, second.c.epoch);
  await det.close();
  for (const m of ms) await m.c.close();
  checked(`single leader; takeover in ${Math.round(took)} ms (ttl ${TTL}) with epoch ${first.c.epoch} -> ${second.c.epoch}; detector follows`);
}));

test('a leader that withdraws releases the lease: a standby leads without waiting out the ttl', () => withNats(1, async (n, conns) => {
  const a = contender(await client(n, conns), 'a', 'l2');
  await a.c.start();
  await until('a leads', () => a.c.state === 'leading');
  const b = contender(await client(n, conns), 'b', 'l2');
  await b.c.start();
  await new Promise((r) => setTimeout(r, TTL / 2));
  assert.is(b.c.state, 'standby');
  await a.c.close();
  await until('b leads', () => b.c.state === 'leading', 10_000);
  await b.c.close();
  checked('release hands over; standby stayed standby while the lease was held');
}));

test('chaos: a leader partitioned from the NATS majority fences itself before a standby leads (R3)', () => withNats(3, async (n, conns) => {
  // The leader talks only to node 1; the standby only to nodes 2 and 3.
  const lead = contender(await client(n, conns, [n.nodes[0]!.url]), 'lead', 'l3', 3);
  await lead.c.start();
  await until('lead leads', () => lead.c.state === 'leading', 20_000);
  const std = contender(await client(n, conns, n.urls.slice(1)), 'std', 'l3', 3);
  await std.c.start();
  await new Promise((r) => setTimeout(r, TTL));
  assert.is(std.c.state, 'standby');
  // Freeze node 1: the leader's link to the cluster hangs (no error, no ack) — a partition.
  n.nodes[0]!.proc!.kill('SIGSTOP');
  try {
    await until('standby leads', () => std.c.state === 'leading', 20_000);
    const fenced = lead.events.find((e) => e.state === 'fenced');
    const elected = std.events.find((e) => e.state === 'leading')!;
    assert.ok(fenced, 'the partitioned leader fenced itself');
    assert.ok(fenced!.at < elected.at, `fenced at ${Math.round(fenced!.at)} before the new leader at ${Math.round(elected.at)}`);
    assert.ok(std.c.epoch > lead.c.epoch);
    checked(`old leader fenced ${Math.round(elected.at - fenced!.at)} ms before the new leader (epoch ${lead.c.epoch} -> ${std.c.epoch})`);
  } finally {
    n.nodes[0]!.proc!.kill('SIGCONT');
    await std.c.close();
    await lead.c.close();
  }
}));

test.run();
