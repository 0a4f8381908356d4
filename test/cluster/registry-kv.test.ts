/**
 * The JetStream KV registry against a real nats-server: the file registry's
 * semantics (replay after restart, retired framework ids), fencing of a
 * deposed master by compare-and-set, compaction, and no acknowledged write lost
 * when 1 of 3 NATS servers is SIGKILLed under writes (R3).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KvRegistry, KvRegistryMirror } from '../../master/registry/kv.js';
import { checked, client, until, withNats } from './harness.js';

test('events appended before a master restart are replayed from KV after it', () => withNats(1, async (c, conns) => {
  const nc = await client(c, conns);
  const r1 = new KvRegistry(nc, { prefix: 't1' });
  await r1.load();
  await Promise.all([
    r1.append({ type: 'master_started', master_id: 'm1', at: 0 }),
    r1.append({ type: 'agent_admitted', agent_id: 'a1', info: { hostname: 'h1' }, at: 1 }),
    r1.append({ type: 'agent_admitted', agent_id: 'odd.id/x', info: { hostname: 'h2' }, at: 1 }),
    r1.append({ type: 'framework_added', framework_id: 'f1', info: { user: 'u', name: 'n' }, at: 2 }),
    r1.append({ type: 'framework_added', framework_id: 'f2', info: { user: 'u', name: 'm' }, at: 3 }),
  ]);
  await r1.append({ type: 'framework_removed', framework_id: 'f2', at: 4 });
  await r1.append({ type: 'agent_removed', agent_id: 'a1', at: 5 });
  await r1.append({ type: 'agent_unreachable', agent_id: 'odd.id/x', at: 6 });
  await r1.close();
  const s = await new KvRegistry(await client(c, conns), { prefix: 't1' }).load();
  assert.equal([...s.agents.keys()], ['odd.id/x']);
  assert.equal([...s.frameworks.keys()], ['f1']);
  assert.ok(s.removedFrameworks.has('f2'), 'a removed framework id stays retired');
  assert.is(s.starts, 1);
  assert.equal([...s.unreachable!], [['odd.id/x', 6]], 'an unreachable agent keeps its time');
  checked('agents, unreachable marks, frameworks, retired ids and start count survive; ids with dots and slashes round-trip');
}));

test('a warm standby loads from its mirror the same registry a cold read gives, and still fences the old leader', () => withNats(1, async (c, conns) => {
  const mirror = new KvRegistryMirror(await client(c, conns), { prefix: 'tm' });
  await mirror.start();
  let fenced = '';
  const r1 = new KvRegistry(await client(c, conns), { prefix: 'tm', onFenced: (w) => { fenced = w; } });
  await r1.load();
  await Promise.all(Array.from({ length: 300 }, (_, i) => r1.append({ type: 'agent_admitted', agent_id: `a${i}`, info: { hostname: `h${i}` }, at: i })));
  await r1.append({ type: 'framework_added', framework_id: 'f1', info: { user: 'u', name: 'n' }, at: 1 });
  await r1.append({ type: 'agent_removed', agent_id: 'a7', at: 2 });
  await r1.append({ type: 'agent_unreachable', agent_id: 'a9', at: 3 });
  const logged: Record<string, unknown>[] = [];
  const log = { info: (o: Record<string, unknown>) => logged.push(o), warn: () => undefined, debug: () => undefined, error: () => undefined } as never;
  const next = new KvRegistry(await client(c, conns), { prefix: 'tm', mirror, log });
  const warm = await next.load();
  const cold = await new KvRegistry(await client(c, conns), { prefix: 'tm' }).load();
  assert.is(logged.find((o) => 'from' in o)?.from, 'mirror', 'the warm load came from the mirror');
  assert.equal([...warm.agents.keys()].sort(), [...cold.agents.keys()].sort());
  assert.is(warm.agents.size, 299);
  assert.equal([...warm.frameworks.keys()], ['f1']);
  assert.equal([...warm.unreachable!], [['a9', 3]]);
  assert.is(warm.starts, cold.starts);
  assert.not.ok(fenced);
  await next.append({ type: 'master_started', master_id: 'next', at: 4 });
  await r1.append({ type: 'framework_added', framework_id: 'f2', info: { user: 'u', name: 'n' }, at: 4 }).catch(() => undefined);
  assert.ok(fenced, 'the previous writer is fenced after a warm load too');
  mirror.close();
  checked('300 agents, a removal, an unreachable mark and a framework: mirror load equals a cold read; the old writer fenced');
}));

test('a master that loaded the registry fences the previous one: the old master\'s next write fails', () => withNats(1, async (c, conns) => {
  let fencedWhy = '';
  const old = new KvRegistry(await client(c, conns), { prefix: 't2', onFenced: (w) => { fencedWhy = w; } });
  await old.load();
  await old.append({ type: 'master_started', master_id: 'old', at: 0 });
  const next = new KvRegistry(await client(c, conns), { prefix: 't2' });
  await next.load();
  await next.append({ type: 'master_started', master_id: 'new', at: 1 });
  try {
    await old.append({ type: 'agent_admitted', agent_id: 'late', info: { hostname: 'h' }, at: 2 });
    assert.unreachable('a deposed master must not write');
  } catch (e) {
    assert.match((e as Error).message, /fenced/);
  }
  assert.ok(fencedWhy, 'onFenced fired');
  await next.append({ type: 'agent_admitted', agent_id: 'ok', info: { hostname: 'h' }, at: 3 });
  const s = await new KvRegistry(await client(c, conns), { prefix: 't2' }).load();
  assert.equal([...s.agents.keys()], ['ok']);
  checked('stale write rejected by CAS, not stored; the new master keeps writing');
}));

test('compaction drops delete markers and keeps the state and the CAS base', () => withNats(1, async (c, conns) => {
  const nc = await client(c, conns);
  const r = new KvRegistry(nc, { prefix: 't3' });
  await r.load();
  for (let i = 0; i < 50; i++) await r.append({ type: 'agent_admitted', agent_id: `a${i}`, info: { hostname: 'h' }, at: i });
  for (let i = 0; i < 40; i++) await r.append({ type: 'agent_removed', agent_id: `a${i}`, at: i });
  const purged = await r.compact();
  assert.ok(purged >= 40, `purged ${purged} markers`);
  await r.append({ type: 'agent_admitted', agent_id: 'after', info: { hostname: 'h' }, at: 99 });
  const s = await new KvRegistry(await client(c, conns), { prefix: 't3' }).load();
  assert.is(s.agents.size, 11);
  assert.ok(s.agents.has('after'));
  checked(`${purged} delete markers purged; writes after compaction still pass CAS`);
}));

test('chaos: SIGKILL 1 of 3 NATS servers during registry writes loses no acknowledged write (R3)', () => withNats(3, async (c, conns) => {
  const victim = c.nodes[0]!;
  // The writer talks to the victim first, so the kill hits writes in flight on its own connection.
  const nc = await client(c, conns, [victim.url, ...c.urls.slice(1)]);
  const r = new KvRegistry(nc, { prefix: 't4', replicas: 3 });
  await r.load();
  const acked: string[] = [];
  const failed: string[] = [];
  let n = 0;
  let stop = false;
  const writer = (async () => {
    while (!stop) {
      const burst = Array.from({ length: 20 }, () => `a${n++}`);
      await Promise.all(burst.map((id) => r.append({ type: 'agent_admitted', agent_id: id, info: { hostname: id }, at: 0 })
        .then(() => { acked.push(id); }, () => { failed.push(id); })));
    }
  })();
  await until('200 writes acknowledged', () => acked.length >= 200);
  await victim.kill('SIGKILL');
  const atKill = acked.length;
  await until('400 more writes acknowledged after the kill', () => acked.length >= atKill + 400, 60_000);
  await victim.start();
  await until('200 more writes after the node rejoined', () => acked.length >= atKill + 600, 60_000);
  stop = true;
  await writer;
  const s = await new KvRegistry(await client(c, conns, c.urls.slice(1)), { prefix: 't4', replicas: 3 }).load();
  const missing = acked.filter((id) => !s.agents.has(id));
  assert.equal(missing, [], 'every acknowledged write is in the registry');
  assert.equal(failed, [], 'no write failed (a node death is retried, not fenced)');
  checked(`${acked.length} acknowledged writes all present after killing and restarting 1 of 3 nodes (${r.stats.retries} retry rounds, ${r.stats.duplicates} duplicates answered)`);
}));

test.run();
