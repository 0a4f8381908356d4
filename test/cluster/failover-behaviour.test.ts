/**
 * Failover behaviour as Mesos, on one master restarted on its registry (the
 * same code runs after a leader change): until a task's agent re-registers,
 * explicit reconciliation gives NO answer for it (never TASK_LOST for a task
 * that may be running); implicit reconciliation returns the tasks agents
 * reported; offers wait for the agents to come back (bounded); agents that never
 * return become unreachable after the re-registration timeout and only then is
 * their task reported lost.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryRegistry } from '../../master/registry/types.js';
import { cluster, settle, task, TestAgent, TestFramework } from '../master/harness.js';
import { checked } from './harness.js';

test('after a restart, reconciliation gives no answer for tasks on agents not back yet, and offers wait for agents', async () => {
  const registry = new MemoryRegistry();
  const c1 = await cluster({ registry });
  const a1 = await c1.agent('h1', 'cpus:2;mem:1024');
  const a2 = await c1.agent('h2', 'cpus:2;mem:1024');
  const fw = await c1.framework({ failover_timeout: 3600 });
  const offers = fw.outstanding();
  const on = (o: typeof offers[number]) => o.agent_id.value;
  fw.launch(offers.find((o) => on(o) === a1.id)!, [task('t1', a1.id, 'cpus:1;mem:128')], 0);
  fw.launch(offers.find((o) => on(o) === a2.id)!, [task('t2', a2.id, 'cpus:1;mem:128')], 0);
  await settle();
  const t1 = a1.launched[0]!.task;
  await c1.stop();

  const c2 = await cluster({ registry, agentReregisterTimeoutMs: 60_000, allocationRecoveryTimeoutMs: 30_000 });
  try {
    const fw2 = new TestFramework(c2.master, {});
    fw2.id = fw.id;
    await fw2.subscribe({ failover_timeout: 3600 });
    const back = new TestAgent(c2.net, 'h1', 'cpus:2;mem:1024');
    back.id = a1.id;
    await back.connect({ tasks: [{ framework_id: fw.id, task: t1, state: 'TASK_RUNNING' }] });
    await c2.tick(2_000);
    assert.is(fw2.outstanding().length, 0, 'no offers while 1 of 2 recovered agents is back (below 80%)');
    fw2.events.length = 0;
    fw2.call({ type: 'RECONCILE', reconcile: { tasks: [{ task_id: { value: 't2' }, agent_id: { value: a2.id } }, { task_id: { value: 't1' }, agent_id: { value: a1.id } }] } });
    fw2.call({ type: 'RECONCILE', reconcile: { tasks: [{ task_id: { value: 't2' } }] } });
    await settle();
    const answers = fw2.updates().map((u) => `${u.task_id.value}:${u.state}`);
    assert.equal(answers, ['t1:TASK_RUNNING'], 'only the task whose agent is back is answered');
    fw2.events.length = 0;
    fw2.call({ type: 'RECONCILE', reconcile: { tasks: [] } });
    await settle();
    assert.equal(fw2.updates().map((u) => `${u.task_id.value}:${u.state}`), ['t1:TASK_RUNNING'], 'implicit: every task the agents reported');
    await c2.tick(30_000);
    assert.ok(fw2.outstanding().length > 0, 'offers resume after the bounded wait');
    await c2.tick(31_000);
    assert.is(c2.master.agent(a2.id)?.status, 'UNREACHABLE', 'an agent that never returns becomes unreachable after the timeout');
    fw2.events.length = 0;
    fw2.call({ type: 'RECONCILE', reconcile: { tasks: [{ task_id: { value: 't2' }, agent_id: { value: a2.id } }] } });
    await settle();
    assert.equal(fw2.updates().map((u) => `${u.task_id.value}:${u.state}`), ['t2:TASK_LOST'], 'answered once the agent is declared unreachable');
    checked('no LOST for t2 while its agent may return; t1 answered RUNNING; offers held then resumed; t2 LOST after the re-registration timeout');
  } finally { await c2.stop(); }
});

test('offers resume as soon as enough recovered agents re-registered', async () => {
  const registry = new MemoryRegistry();
  const c1 = await cluster({ registry });
  const agents = [];
  for (let i = 0; i < 5; i++) agents.push(await c1.agent(`h${i}`, 'cpus:1;mem:512'));
  await c1.stop();
  const c2 = await cluster({ registry, allocationRecoveryTimeoutMs: 600_000 });
  try {
    const fw = await c2.framework();
    for (const [i, a] of agents.entries()) {
      const back = new TestAgent(c2.net, `h${i}`, 'cpus:1;mem:512');
      back.id = a.id;
      await back.connect({ tasks: [] });
      await c2.tick(1_000);
      const offered = fw.outstanding().length;
      if (i < 3) assert.is(offered, 0, `${i + 1} of 5 back: still waiting`);
      else assert.ok(offered > 0, `${i + 1} of 5 back (>= 80%): offers made`);
    }
    checked('allocation paused until 4 of 5 recovered agents re-registered');
  } finally { await c2.stop(); }
});

test.run();
