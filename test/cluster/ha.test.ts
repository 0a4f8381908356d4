/**
 * Chaos on real processes (loopback): a 3-node NATS cluster, 3 masters with
 * --nats (R3 registry), 2 posix agents with --nats, and a framework on the SDK
 * following the leader through NATS. The leading master is SIGKILLed while the
 * framework launches 300 tasks.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NatsCluster } from '../../cli/nats-server.js';
import { natsDialer } from '../../cli/cluster.js';
import { NatsLeaderDetector } from '../../proto/transport/nats-detector.js';
import { runChaosFramework } from './chaos-framework.js';
import { checked, until } from './harness.js';
import { json, Procs, type Proc } from './procs.js';

interface ClusterView { self: { state: string; url: string; epoch: number }; masters: { url: string; state: string }[] }

test('chaos: SIGKILL the leading master while a framework launches 300 tasks', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-ha-'));
  const procs = new Procs();
  let nats: NatsCluster | undefined;
  let client: Awaited<ReturnType<typeof natsDialer>> | undefined;
  try {
    nats = await NatsCluster.start({ nodes: 3, dir: path.join(dir, 'nats') });
    const natsArgs = nats.urls.flatMap((u) => ['--nats', u]);
    const masters: { proc: Proc; url: string }[] = [];
    for (let i = 0; i < 3; i++) {
      const p = procs.berth(`master${i}`, ['master', ...natsArgs, '--port', '0', '--replicas', '3', '--lease-ttl', '3000', '--agent-reregister-timeout', '60000', '--allocation-interval', '200']);
      const m = await p.waitFor(/berth master at (http:\/\/\S+)/, 60_000);
      masters.push({ proc: p, url: m[1]! });
    }
    for (let i = 0; i < 2; i++) {
      const a = procs.berth(`agent${i}`, ['agent', ...natsArgs, '--port', '0', '--containerizer', 'posix', '--work-dir', path.join(dir, `agent${i}`), '--resources', 'cpus:8;mem:4096']);
      await a.waitFor(/berth agent at/, 30_000);
    }
    const leaderOf = async (): Promise<string | undefined> => {
      for (const m of masters) {
        if (!m.proc.alive) continue;
        const v = await json<ClusterView>(`${m.url}/cluster`).catch(() => undefined);
        if (v?.self.state === 'leading') return m.url;
      }
      return undefined;
    };
    await until('a leader with both agents', async () => {
      const l = await leaderOf();
      if (!l) return false;
      // A leader still loading its term (or answering an error) has no slaves list yet.
      const s = await json<{ slaves?: unknown[] }>(`${l}/state`).catch(() => ({ slaves: [] }));
      return (s.slaves ?? []).length === 2;
    }, 60_000);
    const first = (await leaderOf())!;
    client = await natsDialer({ servers: nats.urls }, 'berth');
    let killedAt = 0;
    let newLeaderMs = -1;
    // The moment a standby wins is when its lease write lands: watch the leader key itself.
    const detector = await NatsLeaderDetector.start(client.nc, 'berth');
    const killLeader = async (): Promise<void> => {
      const victim = masters.find((m) => m.url === first)!;
      const old = detector.current()!.master_id;
      killedAt = performance.now();
      const elected = new Promise<void>((resolve) => {
        const off = detector.onChange((l) => { if (l && l.master_id !== old) { newLeaderMs = performance.now() - killedAt; off(); resolve(); } });
      });
      await victim.proc.kill('SIGKILL');
      await elected;
      await until('the new leader answers as leading', async () => { const l = await leaderOf(); return !!l && l !== first; }, 30_000);
      await detector.close();
    };
    let killing: Promise<void> | undefined;
    const r = await runChaosFramework({
      dialer: client.dialer, n: 300, cmd: 'sleep 1.5; echo ok', timeoutMs: 240_000,
      log: process.env.BERTH_CHAOS_DEBUG ? (l) => process.stderr.write(`fw: ${l}\n`) : undefined,
      onLaunched: (n) => { if (n >= 100 && !killing) killing = killLeader(); },
    });
    await killing;
    if (process.env.BERTH_CHAOS_DEBUG) for (const p of procs.all) process.stderr.write(p.out.split('\n').filter((l) => !l.includes('"level":20')).map((l) => `${p.tag}: ${l.slice(0, 400)}`).join('\n') + '\n');
    const second = (await leaderOf())!;
    const states = [...r.terminal.values()];
    const notFinished = [...r.terminal.entries()].filter(([, s]) => s !== 'TASK_FINISHED');
    const dup = [...r.finishedCount.entries()].filter(([, c]) => c !== 1);
    assert.not.ok(r.timedOut, `all 300 tasks reached a terminal state (got ${r.terminal.size})`);
    assert.is(states.length, 300);
    assert.equal(notFinished, [], 'every task FINISHED');
    assert.equal(dup, [], 'each task FINISHED exactly once');
    assert.equal(r.lostWhileLive, [], 'no reconciliation answered LOST for a live task');
    assert.is(r.frameworkIds.size, 1, 'the framework kept its id');
    assert.ok(r.subscriptions >= 2, 'the framework resubscribed to the new leader');
    assert.ok(newLeaderMs >= 0 && newLeaderMs < 5_000, `a standby led within 5 s (took ${Math.round(newLeaderMs)} ms)`);
    assert.ok(second !== first);
    checked(`leader ${first} SIGKILLed after 100 launches; ${second} led after ${Math.round(newLeaderMs)} ms; 300/300 FINISHED once each; ${r.relaunched.length} launches lost in flight were relaunched after LOST for never-started tasks; 0 LOST for live tasks; framework id kept over ${r.subscriptions} subscriptions`);
  } finally {
    await client?.close().catch(() => {});
    await procs.killAll();
    await nats?.stop();
    // posix tasks are process groups of the (killed) agents; wait for stragglers to exit with their sleeps.
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
