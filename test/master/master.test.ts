/**
 * Master behaviour with an injected clock and in-memory peers: offers and
 * filters, suppress/revive, offer timeout, launch validation, agent health,
 * framework failover, and restarts on the same registry.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cluster, settle, task, TestAgent, TestFramework } from './harness.js';
import { FileRegistry } from '../../master/registry/file.js';
import { silentLogger } from '../../proto/log.js';
import { Resources } from '../../proto/resources.js';
import type { TaskInfo } from '../../proto/types.js';

test('a declined agent is not re-offered to that framework before refuse_seconds, and is after', async () => {
  const c = await cluster();
  try {
    await c.agent('a1', 'cpus:4;mem:4096');
    const fw = await c.framework();
    const [offer] = fw.outstanding();
    assert.ok(offer, 'first offer arrives');
    fw.decline(offer!, 10);
    await settle();
    await c.tick(9_000);
    assert.is(fw.outstanding().length, 0, 'no offer before the filter expires');
    await c.tick(1_500);
    assert.is(fw.outstanding().length, 1, 'offered again once the filter expired');
    assert.is(fw.outstanding()[0]!.agent_id.value, offer!.agent_id.value);
  } finally { await c.stop(); }
});

test('suppress stops offers; revive restores them and clears decline filters', async () => {
  const c = await cluster();
  try {
    await c.agent('a1', 'cpus:4;mem:4096');
    const fw = await c.framework();
    fw.decline(fw.outstanding()[0]!, 3600);
    fw.call({ type: 'SUPPRESS', suppress: {} });
    await c.tick(5_000);
    assert.is(fw.outstanding().length, 0, 'suppressed and filtered: no offers');
    fw.call({ type: 'REVIVE', revive: {} });
    await settle();
    assert.is(fw.outstanding().length, 1, 'revive brings the agent back despite the hour-long filter');
  } finally { await c.stop(); }
});

test('an offer not answered within the offer timeout is rescinded and its resources return', async () => {
  const c = await cluster({ offerTimeoutMs: 30_000 });
  try {
    const agent = await c.agent('a1', 'cpus:2;mem:2048');
    const fw = await c.framework();
    const [offer] = fw.outstanding();
    assert.ok(offer);
    await c.tick(29_000);
    assert.not.ok(fw.events.some((e) => e.type === 'RESCIND'), 'not rescinded early');
    await c.tick(1_000);
    const rescind = fw.events.find((e) => e.type === 'RESCIND');
    assert.ok(rescind, 'rescinded at the timeout');
    assert.is(rescind!.rescind!.offer_id.value, offer!.id.value);
    // The whole agent is back: either in the pool or in a fresh offer, never in the rescinded one.
    const total = Resources.parse('cpus:2;mem:2048');
    const fresh = [...c.master.offers.values()].filter((o) => o.id !== offer!.id.value);
    assert.not.ok(c.master.offers.has(offer!.id.value), 'the rescinded offer is gone');
    assert.ok(c.master.allocator.agentAvailable(agent.id)!.equals(total) || (fresh.length === 1 && fresh[0]!.resources.equals(total)),
      'its resources were recovered (and possibly re-offered whole)');
  } finally { await c.stop(); }
});

const invalidTasks: [string, (agentId: string) => TaskInfo, string][] = [
  ['empty task id', (a) => task('', a, 'cpus:1;mem:128'), 'task_id must not be empty'],
  ['task id "."', (a) => task('.', a, 'cpus:1;mem:128'), "task_id '.'"],
  ['task id ".."', (a) => task('..', a, 'cpus:1;mem:128'), "task_id '..'"],
  ['task id with "/"', (a) => task('a/b', a, 'cpus:1;mem:128'), "must not contain '/'"],
  ['task id with a control character', (a) => task('a\u0001b', a, 'cpus:1;mem:128'), 'control characters'],
  ['task id over 255 bytes', (a) => task('x'.repeat(256), a, 'cpus:1;mem:128'), 'longer than 255 bytes'],
  ['resources not in the offer', (a) => task('big', a, 'cpus:100;mem:128'), 'not contained in the offered resources'],
  ['negative resources', (a) => ({ ...task('neg', a, 'cpus:1;mem:128'), resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: -1 } }, { name: 'mem', type: 'SCALAR', scalar: { value: 128 } }] }), 'is negative'],
  ['NaN resources', (a) => ({ ...task('nan', a, 'cpus:1;mem:128'), resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: NaN } }] }), 'is NaN'],
  ['zero resources', (a) => ({ ...task('zero', a, 'cpus:1;mem:128'), resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 0 } }, { name: 'mem', type: 'SCALAR', scalar: { value: 128 } }] }), 'must be positive'],
  ['a near-empty task (below 0.01 cpus and 32 MB)', (a) => task('tiny', a, 'cpus:0.005;mem:16'), 'must hold at least 0.01 cpus or 32 MB mem'],
  ['wrong agent id', () => task('elsewhere', 'not-this-agent', 'cpus:1;mem:128'), 'agent_id'],
  ['no command', (a) => ({ ...task('nocmd', a, 'cpus:1;mem:128'), command: undefined }), 'command must be set'],
  ['a health check without a type', (a) => ({ ...task('hc', a, 'cpus:1;mem:128'), health_check: { tcp: { port: 80 } } }), 'health_check.type must be COMMAND, HTTP or TCP'],
  ['a TCP health check on port 0', (a) => ({ ...task('hc0', a, 'cpus:1;mem:128'), health_check: { type: 'TCP', tcp: { port: 0 } } }), 'health_check.tcp.port 0'],
  ['an HTTP health check with a negative interval', (a) => ({ ...task('hcn', a, 'cpus:1;mem:128'), health_check: { type: 'HTTP', interval_seconds: -1, http: { port: 8080 } } }), 'health_check.interval_seconds must not be negative'],
  ['an HTTP health check with an ftp scheme', (a) => ({ ...task('hcs', a, 'cpus:1;mem:128'), health_check: { type: 'HTTP', http: { port: 8080, scheme: 'ftp' } } }), "health_check.http.scheme must be 'http' or 'https'"],
  ['a health check timeout over a day', (a) => ({ ...task('hct', a, 'cpus:1;mem:128'), health_check: { type: 'TCP', timeout_seconds: 1e9, tcp: { port: 80 } } }), 'health_check.timeout_seconds must be at most'],
  ['a COMMAND health check without a command', (a) => ({ ...task('hcc', a, 'cpus:1;mem:128'), health_check: { type: 'COMMAND' } }), 'health_check.command must be set'],
  ['a check whose type and field differ', (a) => ({ ...task('ck', a, 'cpus:1;mem:128'), check: { type: 'HTTP', tcp: { port: 80 } } }), 'check.tcp does not match type HTTP'],
  ['a URI with an empty value', (a) => ({ ...task('uri', a, 'cpus:1;mem:128'), command: { value: 'true', uris: [{ value: '' }] } }), 'command.uris[0].value must not be empty'],
  ['a URI of an unsupported scheme', (a) => ({ ...task('urs', a, 'cpus:1;mem:128'), command: { value: 'true', uris: [{ value: 'ftp://x/y.tgz' }] } }), "command.uris[0].value 'ftp://x/y.tgz'"],
  ['a URI output_file escaping the sandbox', (a) => ({ ...task('uro', a, 'cpus:1;mem:128'), command: { value: 'true', uris: [{ value: 'http://x/y.tgz', output_file: '../y' }] } }), 'command.uris[0].output_file'],
  ['too many URIs', (a) => ({ ...task('urn', a, 'cpus:1;mem:128'), command: { value: 'true', uris: Array.from({ length: 65 }, () => ({ value: '/bin/true' })) } }), 'command.uris has 65 entries'],
  ['a Docker container', (a) => ({ ...task('dock', a, 'cpus:1;mem:128'), container: { type: 'DOCKER' } }), 'container.type DOCKER'],
];

for (const [name, make, expected] of invalidTasks) {
  test(`an invalid launch (${name}) gets TASK_ERROR naming the field and leaves allocator totals unchanged`, async () => {
    const c = await cluster();
    try {
      const agent = await c.agent('a1', 'cpus:4;mem:4096');
      const fw = await c.framework();
      const [offer] = fw.outstanding();
      const before = c.master.allocator.agentAllocated(agent.id)!.add(c.master.allocator.agentAvailable(agent.id)!);
      fw.launch(offer!, [make(agent.id)], 0);
      await settle();
      const err = fw.updates().find((u) => u.state === 'TASK_ERROR');
      assert.ok(err, 'TASK_ERROR sent');
      assert.is(err!.reason, 'REASON_TASK_INVALID');
      assert.ok(err!.message!.includes(expected), `message '${err!.message}' names '${expected}'`);
      assert.is(agent.launched.length, 0, 'nothing reached the agent');
      // With the offer gone and no task launched, everything is back in the pool (or re-offered).
      for (const o of fw.outstanding()) fw.decline(o, 3600);
      await settle();
      assert.ok(c.master.allocator.agentAvailable(agent.id)!.equals(before), 'available = total again');
      assert.ok(c.master.allocator.agentAllocated(agent.id)!.isEmpty(), 'nothing left allocated');
    } finally { await c.stop(); }
  });
}

test('health checks, checks and URIs that are valid reach the agent unchanged in the launch', async () => {
  const c = await cluster();
  try {
    const agent = await c.agent('a1', 'cpus:4;mem:4096');
    const fw = await c.framework();
    const t: TaskInfo = {
      ...task('checked', agent.id, 'cpus:1;mem:128'),
      command: {
        value: './run.sh',
        uris: [{ value: 'https://example.com/app.tgz', extract: true, cache: false }, { value: 'file:///opt/tool', executable: true, output_file: 'bin/tool' }, { value: '/etc/hosts' }],
      },
      health_check: { type: 'HTTP', delay_seconds: 0, interval_seconds: 1, timeout_seconds: 2, consecutive_failures: 3, grace_period_seconds: 5, http: { port: 8080, path: '/health', scheme: 'http', statuses: [200] } },
      check: { type: 'COMMAND', interval_seconds: 5, command: { command: { value: 'test -f ready' } } },
    };
    fw.launch(fw.outstanding()[0]!, [t]);
    await settle();
    assert.not.ok(fw.updates().some((u) => u.state === 'TASK_ERROR'), 'no TASK_ERROR');
    assert.is(agent.launched.length, 1, 'launched');
    const sent = agent.launched[0]!.task;
    assert.equal(sent.health_check, t.health_check);
    assert.equal(sent.check, t.check);
    assert.equal(sent.command?.uris, t.command?.uris);
  } finally { await c.stop(); }
});

test('a duplicate task id gets TASK_ERROR while the first task launches', async () => {
  const c = await cluster();
  try {
    const agent = await c.agent('a1', 'cpus:4;mem:4096');
    const fw = await c.framework();
    fw.launch(fw.outstanding()[0]!, [task('t1', agent.id, 'cpus:1;mem:128'), task('t1', agent.id, 'cpus:1;mem:128')]);
    await settle();
    assert.is(agent.launched.length, 1);
    const err = fw.updates().find((u) => u.state === 'TASK_ERROR');
    assert.ok(err?.message?.includes("task_id 't1' is already in use"), err?.message);
  } finally { await c.stop(); }
});

test('an agent that stops answering pings is marked unreachable: partition-aware frameworks get TASK_UNREACHABLE, others TASK_LOST', async () => {
  const c = await cluster({ agentPingIntervalMs: 1000, maxMissedPings: 3 });
  try {
    const agent = await c.agent('a1', 'cpus:4;mem:4096');
    const aware = await c.framework({ name: 'aware', capabilities: [{ type: 'PARTITION_AWARE' }] });
    const plain = await c.framework({ name: 'plain' });
    // Each framework launches one task on the agent (offers go to one framework at a time).
    for (let i = 0; i < 4 && !(agent.launched.some((l) => l.framework_id === aware.id) && agent.launched.some((l) => l.framework_id === plain.id)); i++) {
      for (const fw of [aware, plain]) {
        const o = fw.outstanding()[0];
        if (o && !agent.launched.some((l) => l.framework_id === fw.id)) fw.launch(o, [task(`t-${fw.info.name}`, agent.id, 'cpus:1;mem:128')], 0);
      }
      await settle();
    }
    agent.update(aware.id, 't-aware', 'TASK_RUNNING');
    agent.update(plain.id, 't-plain', 'TASK_RUNNING');
    await settle();
    agent.answerPings = false;
    await c.tick(3_500);
    assert.is(c.master.agent(agent.id)!.status, 'ACTIVE', 'still active within the ping budget');
    await c.tick(1_000);
    assert.is(c.master.agent(agent.id)!.status, 'UNREACHABLE');
    const a = aware.updates().find((u) => u.task_id.value === 't-aware' && u.source === 'SOURCE_MASTER');
    const p = plain.updates().find((u) => u.task_id.value === 't-plain' && u.source === 'SOURCE_MASTER');
    assert.is(a?.state, 'TASK_UNREACHABLE');
    assert.is(p?.state, 'TASK_LOST');
    assert.ok(a?.unreachable_time, 'unreachable_time is set');
  } finally { await c.stop(); }
});

test('a framework that reconnects within failover_timeout keeps its tasks; one that does not has them killed', async () => {
  const c = await cluster();
  try {
    const agent = await c.agent('a1', 'cpus:4;mem:4096');
    const keep = await c.framework({ name: 'keep', failover_timeout: 60 });
    keep.launch(keep.outstanding()[0]!, [task('k1', agent.id, 'cpus:1;mem:128')], 3600);
    await settle();
    const lose = await c.framework({ name: 'lose', failover_timeout: 10 });
    for (let i = 0; i < 3 && lose.outstanding().length === 0; i++) await c.tick(1000);
    lose.launch(lose.outstanding()[0]!, [task('l1', agent.id, 'cpus:1;mem:128')], 0);
    await settle();
    assert.is(agent.launched.length, 2);

    keep.disconnect();
    lose.disconnect();
    await c.tick(9_000);
    const again = new TestFramework(c.master, { name: 'keep' });
    again.id = keep.id;
    await again.subscribe({ failover_timeout: 60 });
    assert.is(again.id, keep.id, 'same framework id after failover');
    await c.tick(2_000);
    assert.ok(c.master.framework(keep.id)?.tasks.has('k1'), 'reconnected framework keeps its task');
    assert.not.ok(c.master.framework(lose.id), 'the other framework was removed at its failover timeout');
    assert.ok(agent.shutdowns.includes(lose.id), "the agent was told to kill the removed framework's tasks");
    assert.not.ok(agent.shutdowns.includes(keep.id));
  } finally { await c.stop(); }
});

test('a master restarted on the same registry keeps framework and agent ids, and they reregister', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-reg-'));
  try {
    const c1 = await cluster({ registry: new FileRegistry(dir, silentLogger) });
    const agent = await c1.agent('a1', 'cpus:4;mem:4096');
    const fw = await c1.framework({ failover_timeout: 3600 });
    fw.launch(fw.outstanding()[0]!, [task('t1', agent.id, 'cpus:1;mem:256')], 0);
    await settle();
    const launched = agent.launched[0]!.task;
    await c1.stop();

    const c2 = await cluster({ registry: new FileRegistry(dir, silentLogger) });
    try {
      assert.ok(c2.master.framework(fw.id), 'framework known from the registry');
      assert.is(c2.master.agent(agent.id)?.status, 'RECOVERED', 'agent known from the registry');
      const back = new TestAgent(c2.net, 'a1', 'cpus:4;mem:4096');
      back.id = agent.id;
      await back.connect({ tasks: [{ framework_id: fw.id, task: launched, state: 'TASK_RUNNING' }] });
      assert.is(back.id, agent.id, 'agent keeps its id');
      const fw2 = new TestFramework(c2.master, {});
      fw2.id = fw.id;
      await fw2.subscribe({ failover_timeout: 3600 });
      assert.is(fw2.id, fw.id, 'framework keeps its id');
      assert.is(c2.master.task(fw.id, 't1')?.state, 'TASK_RUNNING', 'task rebuilt from the agent report');
      const used = c2.master.allocator.agentAllocated(agent.id)!;
      assert.ok(used.contains(Resources.parse('cpus:1;mem:256')), 'its resources are accounted as used');
    } finally { await c2.stop(); }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('status updates are forwarded until acknowledged, acks relayed to the agent, and terminal updates free resources', async () => {
  const c = await cluster();
  try {
    const agent = await c.agent('a1', 'cpus:2;mem:1024');
    const fw = await c.framework();
    fw.launch(fw.outstanding()[0]!, [task('t1', agent.id, 'cpus:2;mem:1024')], 0);
    await settle();
    const u1 = agent.update(fw.id, 't1', 'TASK_RUNNING');
    await settle();
    agent.update(fw.id, 't1', 'TASK_RUNNING', { uuid: u1 }); // agent resend of the same update
    await settle();
    assert.is(fw.updates().filter((u) => u.uuid === u1).length, 2, 'each delivery is forwarded until acknowledged');
    fw.call({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: { value: agent.id }, task_id: { value: 't1' }, uuid: u1 } });
    await settle();
    assert.ok(agent.acks.includes(u1), 'ack relayed to the agent');
    assert.ok(c.master.allocator.agentAvailable(agent.id)!.isEmpty(), 'task holds everything');
    agent.update(fw.id, 't1', 'TASK_FINISHED');
    await settle();
    assert.ok(fw.outstanding().length === 1, 'resources of the finished task are offered again');
    assert.is(c.master.task(fw.id, 't1')?.state, 'TASK_FINISHED');
  } finally { await c.stop(); }
});

test('reconciliation: implicit returns every live task, explicit answers unknown tasks with TASK_LOST', async () => {
  const c = await cluster();
  try {
    const agent = await c.agent('a1', 'cpus:2;mem:1024');
    const fw = await c.framework();
    fw.launch(fw.outstanding()[0]!, [task('t1', agent.id, 'cpus:1;mem:128')], 0);
    await settle();
    agent.update(fw.id, 't1', 'TASK_RUNNING');
    await settle();
    const n = fw.updates().length;
    fw.call({ type: 'RECONCILE', reconcile: {} });
    fw.call({ type: 'RECONCILE', reconcile: { tasks: [{ task_id: { value: 'ghost' } }] } });
    await settle();
    const fresh = fw.updates().slice(n);
    assert.equal(fresh.map((u) => [u.task_id.value, u.state, u.reason]), [
      ['t1', 'TASK_RUNNING', 'REASON_RECONCILIATION'],
      ['ghost', 'TASK_LOST', 'REASON_RECONCILIATION'],
    ]);
    assert.ok(fresh.every((u) => u.uuid === undefined), 'reconciliation updates need no acknowledgement');
  } finally { await c.stop(); }
});

test.run();
