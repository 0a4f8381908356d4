/**
 * Trust boundaries of the master core, each an attack that used to work:
 * agents speaking for other agents' tasks, re-registrations that dropped
 * tasks silently, registry poisoning that stopped the master from starting,
 * unbounded frameworks and RECONCILE sizes, and failover timers clamped at
 * 24.8 days. Injected clock, in-memory peers.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cluster, settle, task, TestFramework } from './harness.js';
import { FileRegistry } from '../../master/registry/file.js';
import { silentLogger } from '../../proto/log.js';
import type { Call } from '../../proto/types.js';
import { LocalAuthorizer } from '../../master/auth/acls.js';
import type { MemoryRegistry } from '../../master/registry/types.js';

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try { await p; } catch (e) { assert.match((e as Error).message, re); return; }
  assert.unreachable(`expected a rejection matching ${re}`);
}

test('an agent forging an update for a task on another agent is dropped and counted, never relayed', async () => {
  const c = await cluster();
  try {
    const honest = await c.agent('honest', 'cpus:2;mem:1024');
    const fw = await c.framework();
    fw.launch(fw.outstanding()[0]!, [task('t1', honest.id, 'cpus:1;mem:128')]);
    await settle();
    assert.is(honest.launched.length, 1);
    const rogue = await c.agent('rogue', 'cpus:1;mem:512');
    const before = fw.updates().length;
    rogue.update(fw.id, 't1', 'TASK_FAILED');
    rogue.update(fw.id, 'never-launched', 'TASK_RUNNING');
    await settle();
    assert.is(fw.updates().length, before, 'the framework heard nothing');
    assert.is(c.master.task(fw.id, 't1')?.state, 'TASK_STAGING', 'the task is untouched');
    assert.is(c.master.counters.invalidStatusUpdates, 2, 'both counted');
    honest.update(fw.id, 't1', 'TASK_RUNNING');
    await settle();
    assert.is(fw.updates().at(-1)?.state, 'TASK_RUNNING', 'the placing agent is still heard');
  } finally { await c.stop(); }
});

for (const [name, caps, expected] of [
  ['TASK_LOST to a framework that is not partition-aware', [], 'TASK_LOST'],
  ['TASK_GONE to a partition-aware framework', [{ type: 'PARTITION_AWARE' as const }], 'TASK_GONE'],
] as const) {
  test(`a known agent re-registering without a task yields ${name}, and its resources are offered again`, async () => {
    const c = await cluster();
    try {
      const agent = await c.agent('a1', 'cpus:2;mem:1024');
      const fw = await c.framework({ capabilities: [...caps] });
      fw.launch(fw.outstanding()[0]!, [task('keep', agent.id, 'cpus:1;mem:128'), task('lost', agent.id, 'cpus:0.5;mem:128')], 0);
      await settle();
      agent.update(fw.id, 'keep', 'TASK_RUNNING');
      agent.update(fw.id, 'lost', 'TASK_RUNNING');
      await settle();
      // The agent reconnects (without the master noticing the drop) reporting only one task.
      const keep = agent.launched.find((l) => l.task.task_id.value === 'keep')!;
      await agent.connect({ tasks: [{ framework_id: fw.id, task: keep.task, state: 'TASK_RUNNING' }] });
      await settle();
      const gone = fw.updates().find((u) => u.task_id.value === 'lost' && u.source === 'SOURCE_MASTER');
      assert.is(gone?.state, expected);
      assert.is(gone?.reason, 'REASON_AGENT_RESTARTED');
      assert.is(c.master.agent(agent.id)?.status, 'ACTIVE', 'the agent is active again (nothing threw halfway)');
      assert.is(c.master.task(fw.id, 'keep')?.state, 'TASK_RUNNING');
      const allocated = c.master.allocator.agentAllocated(agent.id)!;
      const available = c.master.allocator.agentAvailable(agent.id)!;
      assert.is(allocated.add(available).toString(), 'cpus:2;mem:1024', 'available + allocated = total');
      assert.ok(allocated.scalar('cpus') >= 1, 'the kept task is still counted');
    } finally { await c.stop(); }
  });
}

test('poisoned SUBSCRIBE and UPDATE_FRAMEWORK (MULTI_ROLE, no roles) are refused before the registry, and the master restarts cleanly', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-poison-'));
  try {
    const c = await cluster({ registry: new FileRegistry(dir, silentLogger) });
    const bad = new TestFramework(c.master, { capabilities: [{ type: 'MULTI_ROLE' }], roles: [] });
    await rejects(bad.subscribe(), /roles must name at least one role/);
    const fw = await c.framework();
    const upd: Omit<Call, 'framework_id'> = {
      type: 'UPDATE_FRAMEWORK',
      update_framework: { framework_info: { user: 'root', name: 'test', id: { value: fw.id }, capabilities: [{ type: 'MULTI_ROLE' }], roles: [] } },
    };
    assert.throws(() => fw.call(upd), /roles must name at least one role/);
    assert.throws(() => fw.call({ type: 'UPDATE_FRAMEWORK', update_framework: { framework_info: { user: 'someone-else', name: 'test', id: { value: fw.id } } } }), /FrameworkInfo.user/);
    assert.throws(() => fw.call({ type: 'UPDATE_FRAMEWORK', update_framework: { framework_info: { user: 'root', name: 'test', id: { value: fw.id }, principal: 'admin' } } }), /FrameworkInfo.principal/);
    const bigLabel: Omit<Call, 'framework_id'> = {
      type: 'UPDATE_FRAMEWORK',
      update_framework: { framework_info: { user: 'root', name: 'test', id: { value: fw.id }, labels: { labels: [{ key: 'k', value: 'x'.repeat(1 << 20) }] } } },
    };
    assert.throws(() => fw.call(bigLabel), /keep labels small/);
    await c.stop();
    const again = await cluster({ registry: new FileRegistry(dir, silentLogger) });
    try {
      assert.ok(again.master.framework(fw.id), 'the good framework is back');
      assert.is(again.master.frameworks.size, 1, 'nothing poisoned was stored');
    } finally { await again.stop(); }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('frameworks per principal are bounded: the one over the limit is refused with the limit named', async () => {
  const c = await cluster({ limits: { frameworksPerPrincipal: 3 } });
  try {
    for (let i = 0; i < 3; i++) await c.framework({ name: `f${i}`, principal: 'p' });
    await rejects(new TestFramework(c.master, { principal: 'p' }).subscribe(), /already has 3 frameworks/);
    await c.framework({ name: 'other', principal: 'q' }); // another principal has its own budget
    assert.is(c.master.frameworks.size, 4);
  } finally { await c.stop(); }
});

test('a RECONCILE naming more tasks than the bound is refused whole', async () => {
  const c = await cluster({ limits: { reconcileTasks: 10 } });
  try {
    const fw = await c.framework();
    const tasks = Array.from({ length: 11 }, (_, i) => ({ task_id: { value: `t${i}` } }));
    assert.throws(() => fw.call({ type: 'RECONCILE', reconcile: { tasks } }), /at most 10/);
    assert.not.ok(fw.updates().length, 'no events were generated');
  } finally { await c.stop(); }
});

test('a failover timeout of 30 days is honoured: the framework is kept past 24.8 days and removed after 30', async () => {
  const c = await cluster({ agentPingIntervalMs: 3_600_000, allocationIntervalMs: 3_600_000 });
  try {
    const fw = await c.framework({ failover_timeout: 30 * 86_400 });
    fw.disconnect();
    c.clock.advance(25 * 86_400_000);
    await settle();
    assert.ok(c.master.framework(fw.id), 'still there at 25 days');
    c.clock.advance(5 * 86_400_000 - 1000);
    await settle();
    assert.ok(c.master.framework(fw.id), 'still there just before 30 days');
    c.clock.advance(2000);
    await settle();
    assert.not.ok(c.master.framework(fw.id), 'removed at 30 days');
  } finally { await c.stop(); }
});

test('run_tasks ACL: a task as a user the principal may not use gets TASK_ERROR (unauthorized); /state never shows task environments', async () => {
  const acls = LocalAuthorizer.parse(JSON.stringify({
    run_tasks: [{ principals: { values: ['web'] }, users: { values: ['nobody'] } }, { principals: { type: 'ANY' }, users: { type: 'NONE' } }],
  }), 'test acls');
  const c = await cluster({ authorizer: acls });
  try {
    const agent = await c.agent('a1', 'cpus:4;mem:4096');
    const fw = await c.framework({ principal: 'web', user: 'nobody' });
    const asRoot = { ...task('as-root', agent.id, 'cpus:1;mem:128'), command: { value: 'id', user: 'root' } };
    const asNobody = { ...task('as-nobody', agent.id, 'cpus:1;mem:128'), command: { value: 'id', environment: { variables: [{ name: 'TOKEN', value: 's3cr3t-value' }] } } };
    fw.launch(fw.outstanding()[0]!, [asRoot, asNobody]);
    await settle();
    const err = fw.updates().find((u) => u.task_id.value === 'as-root');
    assert.is(err?.state, 'TASK_ERROR');
    assert.is(err?.reason, 'REASON_TASK_UNAUTHORIZED');
    assert.match(err?.message ?? '', /not authorized to run tasks as user 'root'/);
    assert.equal(agent.launched.map((l) => l.task.task_id.value), ['as-nobody']);
    const state = JSON.stringify(c.master.state());
    assert.ok(state.includes('as-nobody'), 'the task is listed');
    assert.not.ok(state.includes('s3cr3t-value'), 'its environment is not');
  } finally { await c.stop(); }
});

test('unreachability is durable before frameworks hear of it, survives a restart, and an agent gone past --registry-max-agent-age is removed', async () => {
  const c = await cluster({ agentPingIntervalMs: 1000, maxMissedPings: 1, registryMaxAgentAgeMs: 60_000 });
  const registry = c.registry as MemoryRegistry;
  try {
    const agent = await c.agent('a1', 'cpus:2;mem:1024');
    const fw = await c.framework();
    fw.launch(fw.outstanding()[0]!, [task('t1', agent.id, 'cpus:1;mem:128')]);
    await settle();
    agent.update(fw.id, 't1', 'TASK_RUNNING');
    agent.answerPings = false;
    await c.tick(3000);
    assert.is(c.master.agent(agent.id)?.status, 'UNREACHABLE');
    const lostAt = fw.updates().findIndex((u) => u.state === 'TASK_LOST');
    assert.ok(lostAt >= 0, 'TASK_LOST sent');
    assert.ok(registry.events.some((e) => e.type === 'agent_unreachable' && e.agent_id === agent.id), 'persisted');
    // A restart on the same registry remembers it is unreachable (not merely "recovered").
    const c2 = await cluster({ registry, agentPingIntervalMs: 1000, registryMaxAgentAgeMs: 60_000 });
    try {
      assert.is(c2.master.agent(agent.id)?.status, 'UNREACHABLE');
    } finally { await c2.stop(); }
    await c.tick(61_000, 1000);
    assert.not.ok(c.master.agent(agent.id), 'removed past the max age');
    assert.ok(registry.events.some((e) => e.type === 'agent_removed' && e.agent_id === agent.id), 'removal persisted');
  } finally { await c.stop(); }
});

test('unreachable agents beyond --registry-max-agent-count are removed, oldest first', async () => {
  const c = await cluster({ agentPingIntervalMs: 1000, maxMissedPings: 1, registryMaxAgentCount: 2 });
  try {
    const agents = [];
    for (let i = 0; i < 3; i++) {
      const a = await c.agent(`a${i}`, 'cpus:1;mem:256');
      agents.push(a);
    }
    for (const a of agents) { a.answerPings = false; await c.tick(3000, 500); }
    await c.tick(2000, 500);
    assert.not.ok(c.master.agent(agents[0]!.id), 'the oldest unreachable agent was removed');
    assert.is(c.master.agent(agents[1]!.id)?.status, 'UNREACHABLE');
    assert.is(c.master.agent(agents[2]!.id)?.status, 'UNREACHABLE');
  } finally { await c.stop(); }
});

test('a native connection that never subscribes or registers is closed after the handshake timeout', async () => {
  const c = await cluster({ limits: { handshakeTimeoutMs: 10_000 }, agentPingIntervalMs: 3_600_000 });
  try {
    const idleFw = await c.net.dialFramework();
    const idleAgent = await c.net.dialAgent();
    const reasons: string[] = [];
    idleFw.onClose((r) => reasons.push(r));
    idleAgent.onClose((r) => reasons.push(r));
    const live = await c.framework();
    await c.tick(9_000);
    assert.not.ok(idleFw.closed || idleAgent.closed, 'open within the timeout');
    await c.tick(1_500);
    await settle();
    assert.ok(idleFw.closed && idleAgent.closed, 'both closed');
    assert.ok(reasons.some((r) => /no SUBSCRIBE within 10000 ms/.test(r)) && reasons.some((r) => /no registration within/.test(r)), reasons.join('; '));
    assert.is(c.master.framework(live.id)?.status, 'CONNECTED', 'subscribed peers are untouched');
  } finally { await c.stop(); }
});

test.run();
