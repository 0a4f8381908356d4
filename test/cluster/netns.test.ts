/**
 * root: chaos with every component on its own "host": a network namespace per
 * NATS server, master and agent, joined by veth pairs to a bridge in a switch
 * namespace (addresses 10.213.x.y exist only inside the namespaces; nothing
 * touches the host's network). Partitions are real: a host's link goes down.
 * Every namespace is deleted afterwards, also when the test fails.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NatsCluster } from '../../cli/nats-server.js';
import { checked, until } from './harness.js';
import { Procs } from './procs.js';
import { logTimes, Net, rootTest } from './net.js';

rootTest('root: chaos: the leading master partitioned from NATS fences itself before the standby leads (netns hosts)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-netns-'));
  const net = new Net('10.213.7');
  const procs = new Procs();
  let nats: NatsCluster | undefined;
  try {
    const nh = [net.host('n1', 1), net.host('n2', 2), net.host('n3', 3)];
    const mh = [net.host('m1', 11), net.host('m2', 12)];
    nats = await NatsCluster.start({ nodes: 3, dir: path.join(dir, 'nats'), hosts: nh.map((h) => h.addr), netns: nh.map((h) => h.ns) });
    const natsArgs = nats.urls.flatMap((u) => ['--nats', u]);
    const masterArgs = (h: { addr: string }): string[] => ['master', ...natsArgs, '--host', h.addr, '--port', '5050', '--replicas', '3', '--lease-ttl', '3000', '--insecure'];
    const m1 = procs.berth('m1', masterArgs(mh[0]!), {}, ['ip', 'netns', 'exec', mh[0]!.ns]);
    await m1.waitFor(/"msg":"leading"/, 60_000);
    const m2 = procs.berth('m2', masterArgs(mh[1]!), {}, ['ip', 'netns', 'exec', mh[1]!.ns]);
    await m2.waitFor(/berth master at .*standby/, 60_000);
    await until('m1 leads its first term', () => logTimes(m1, /"msg":"leading"/).length > 0, 60_000);
    const cutAt = Date.now();
    net.link(mh[0]!.ns, false);
    await until('m2 leads', () => logTimes(m2, /"to":"leading"/).length > 0, 60_000);
    await until('m1 reports fenced', () => logTimes(m1, /"to":"fenced"/).length > 0, 30_000);
    const fencedAt = logTimes(m1, /"to":"fenced"/)[0]!;
    const ledAt = logTimes(m2, /"to":"leading"/)[0]!;
    assert.ok(fencedAt < ledAt, `m1 fenced at ${fencedAt - cutAt} ms after the cut, m2 led at ${ledAt - cutAt} ms`);
    assert.ok(m1.out.includes('term ended'), 'the partitioned master stopped its Master');
    // Heal: the old leader comes back as a standby, not as a second leader.
    net.link(mh[0]!.ns, true);
    await until('m1 back to standby', () => logTimes(m1, /"from":"fenced","to":"standby"/).length > 0, 30_000);
    await new Promise((r) => setTimeout(r, 4000));
    assert.is(logTimes(m1, /"to":"leading"/).length, 1, 'm1 did not lead again while m2 holds the lease');
    checked(`link of leader m1 cut: fenced after ${fencedAt - cutAt} ms, m2 led after ${ledAt - cutAt} ms; after healing m1 stays standby`);
  } finally {
    await procs.killAll();
    await nats?.stop();
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
