/**
 * root: chaos: an agent partitioned from everything (its host's link down),
 * every component on its own network-namespace host. Mesos' semantics: once
 * the agent misses its pings it is unreachable, and its tasks are reported
 * TASK_UNREACHABLE to partition-aware frameworks and TASK_LOST to the others;
 * the tasks keep running on the agent. On heal the agent re-registers with the
 * same id, the master tells both frameworks the tasks run again
 * (REASON_AGENT_REREGISTERED) and explicit reconciliation answers RUNNING. No
 * task is started twice.
 */
import * as assert from 'uvu/assert';
import { test } from 'uvu';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NatsCluster } from '../../cli/nats-server.js';
import { checked, until } from './harness.js';
import { Net, nsJson, rootTest } from './net.js';
import { Procs, type Proc } from './procs.js';
import { countedCmd, killTasks, runs } from './tasks.js';

const updates = (fw: Proc, state: string, reason?: string): string[] =>
  fw.events().filter((e) => e.ev === 'update' && e.state === state && (reason === undefined || e.reason === reason)).map((e) => e.task);

rootTest('root: chaos: a partitioned agent becomes unreachable (UNREACHABLE / LOST per partition-awareness), then re-registers and reconciles on heal', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-partition-'));
  chmodSync(dir, 0o755);
  const marks = path.join(dir, 'runs');
  mkdirSync(marks, { mode: 0o777 });
  chmodSync(marks, 0o777);
  const net = new Net('10.213.8');
  const procs = new Procs();
  let nats: NatsCluster | undefined;
  let agent: Proc | undefined;
  try {
    const nh = net.host('n1', 1);
    const mh = net.host('m1', 11);
    const ah = net.host('a1', 21);
    const fh = net.host('f1', 31);
    nats = await NatsCluster.start({ nodes: 1, dir: path.join(dir, 'nats'), hosts: [nh.addr], netns: [nh.ns] });
    const natsArgs = nats.urls.flatMap((u) => ['--nats', u]);
    const m = procs.berth('master', ['master', ...natsArgs, '--host', mh.addr, '--port', '5050', '--insecure', '--agent-ping-interval', '500', '--allocation-interval', '200'], {}, ['ip', 'netns', 'exec', mh.ns]);
    await m.waitFor(/"msg":"leading"/, 60_000);
    const masterUrl = `http://${mh.addr}:5050`;
    agent = procs.berth('agent', ['agent', ...natsArgs, '--host', ah.addr, '--port', '0', '--insecure', '--containerizer', 'posix', '--cleanup-on-exit',
      '--work-dir', path.join(dir, 'agent'), '--resources', 'cpus:2;mem:1024'], {}, ['ip', 'netns', 'exec', ah.ns]);
    const agentId = (await agent.waitFor(/"agentId":"([^"]+)"[^\n]*Registered with the master/, 60_000))[1]!;
    const fwArgs = ['--nats', nats.urls.join(','), '--tasks', '2', '--cmd', countedCmd(marks, 600)];
    const aware = procs.fixture('fw-aware', 'fw-proc', [...fwArgs, '--partition-aware', '--prefix', 'aware-'], ['ip', 'netns', 'exec', fh.ns]);
    const plain = procs.fixture('fw-plain', 'fw-proc', [...fwArgs, '--prefix', 'plain-'], ['ip', 'netns', 'exec', fh.ns]);
    for (const fw of [aware, plain]) await until(`${fw.tag}: 2 tasks running`, () => updates(fw, 'TASK_RUNNING').length === 2, 60_000);

    const cutAt = Date.now();
    net.link(ah.ns, false);
    await until('partition-aware framework hears TASK_UNREACHABLE for both tasks', () => updates(aware, 'TASK_UNREACHABLE').length === 2, 30_000);
    await until('the other framework hears TASK_LOST for both tasks', () => updates(plain, 'TASK_LOST').length === 2, 30_000);
    const unreachableMs = Date.now() - cutAt;
    assert.equal(updates(aware, 'TASK_LOST'), [], 'a partition-aware framework is never told LOST for a partitioned task');
    const state = nsJson<{ slaves: { id: string; active: boolean }[]; unreachable_slaves?: unknown[] }>(fh.ns, `${masterUrl}/state`);
    assert.not.ok(state.slaves.some((s) => s.id === agentId && s.active), 'the master no longer counts the agent as active');

    const healAt = Date.now();
    net.link(ah.ns, true);
    for (const fw of [aware, plain]) {
      await until(`${fw.tag}: both tasks RUNNING again after the agent re-registered`, () => updates(fw, 'TASK_RUNNING', 'REASON_AGENT_REREGISTERED').length === 2, 60_000);
    }
    const backMs = Date.now() - healAt;
    assert.ok([...agent.out.matchAll(/"agentId":"([^"]+)"[^\n]*Registered with the master/g)].every((x) => x[1] === agentId), 'the agent re-registered under the same id');
    // Explicit reconciliation of every task: the master answers RUNNING (the agent is back).
    const before = updates(aware, 'TASK_RUNNING').length;
    aware.p.kill('SIGUSR2');
    await until('reconciliation answers RUNNING for both tasks', () => updates(aware, 'TASK_RUNNING').length >= before + 2, 20_000);
    const started = runs(marks);
    assert.is(started.size, 4, '4 tasks started');
    assert.equal([...started.values()], [1, 1, 1, 1], 'no task started twice');
    const after = nsJson<{ slaves: { id: string; active: boolean }[] }>(fh.ns, `${masterUrl}/state`);
    assert.ok(after.slaves.some((s) => s.id === agentId && s.active), 'the agent is active again');
    checked(`agent link cut: its tasks UNREACHABLE (partition-aware) / LOST (not) after ${unreachableMs} ms; healed: re-registered as ${agentId} and both frameworks heard RUNNING after ${backMs} ms; reconciliation answers RUNNING; each task started once`);
  } finally {
    // The agent takes its tasks down on SIGTERM (--cleanup-on-exit); the pids catch any it could not.
    await agent?.kill('SIGTERM').catch(() => {});
    await procs.killAll();
    killTasks(marks);
    await nats?.stop();
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
