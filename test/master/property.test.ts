/**
 * A seeded property test over random sequences of cluster events — agents
 * added and lost, launches, terminal updates, declines, offer timeouts —
 * checking after every step that on every agent used + offered + available
 * equals its total, i.e. no resource is offered twice or lost.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cluster, settle, task, type TestAgent, type TestFramework } from './harness.js';
import { Resources } from '../../proto/resources.js';
import { isTerminal } from '../../proto/types.js';
import type { Master } from '../../master/master.js';
import { Rng } from '../../master/allocator/rng.js';


function checkInvariants(master: Master, step: string): void {
  for (const agent of master.agents.values()) {
    if (agent.status !== 'ACTIVE' && agent.status !== 'DISCONNECTED') continue;
    let used = Resources.EMPTY;
    for (const t of agent.tasks.values()) if (!isTerminal(t.state) && t.state !== 'TASK_UNREACHABLE') used = used.add(Resources.from(t.resources));
    let offered = Resources.EMPTY;
    for (const oid of agent.offers) {
      const o = master.offers.get(oid)!;
      assert.ok(o, `${step}: agent ${agent.id} lists a missing offer`);
      // No resource in two outstanding offers: each offer must fit in what the others leave.
      assert.ok(agent.total.subtract(offered).subtract(used).contains(o.resources), `${step}: offer ${oid} overlaps another offer or a task on ${agent.id}`);
      offered = offered.add(o.resources);
    }
    const available = master.allocator.agentAvailable(agent.id)!;
    const sum = used.add(offered).add(available);
    assert.ok(sum.equals(agent.total), `${step}: on ${agent.id} used ${used} + offered ${offered} + available ${available} != total ${agent.total}`);
  }
}

for (const seed of [1, 2, 3, 42, 1234]) {
  test(`seed ${seed}: on every agent used + offered + available = total after every step, and no resource is in two offers`, async () => {
    const rng = new Rng(seed);
    const rand = (): number => rng.next();
    const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(rand() * xs.length)];
    const c = await cluster({ offerTimeoutMs: 7_000, agentPingIntervalMs: 1000, maxMissedPings: 2 });
    try {
      const frameworks: TestFramework[] = [];
      for (let i = 0; i < 3; i++) frameworks.push(await c.framework({ name: `f${i}`, role: i === 2 ? 'batch' : 'dev' }));
      const agents: TestAgent[] = [];
      const running: { fw: TestFramework; agent: TestAgent; id: string }[] = [];
      let n = 0;
      for (let step = 0; step < 150; step++) {
        const r = rand();
        let what = '';
        if (r < 0.12 || agents.length === 0) {
          what = 'add agent';
          agents.push(await c.agent(`h${step}`, `cpus:${1 + Math.floor(rand() * 8)};mem:${512 * (1 + Math.floor(rand() * 8))};ports:[${31000 + step * 10}-${31009 + step * 10}]`));
        } else if (r < 0.17) {
          what = 'lose agent';
          const a = pick(agents)!;
          a.answerPings = false;
          a.disconnect();
          agents.splice(agents.indexOf(a), 1);
          for (let i = running.length - 1; i >= 0; i--) if (running[i]!.agent === a) running.splice(i, 1);
          await c.tick(3_500);
        } else if (r < 0.55) {
          what = 'launch';
          const fw = pick(frameworks)!;
          const offer = pick(fw.outstanding());
          const agent = offer && agents.find((a) => a.id === offer.agent_id.value);
          if (offer && agent) {
            const cpus = 0.1 + Math.floor(rand() * 10) / 10;
            const id = `t${n++}`;
            fw.launch(offer, [task(id, agent.id, `cpus:${cpus};mem:${32 * (1 + Math.floor(rand() * 4))}`)], Math.floor(rand() * 3));
            running.push({ fw, agent, id });
          }
        } else if (r < 0.75) {
          what = 'terminal update';
          const t = pick(running);
          if (t) {
            t.agent.update(t.fw.id, t.id, pick(['TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED'] as const)!);
            running.splice(running.indexOf(t), 1);
          }
        } else if (r < 0.9) {
          what = 'decline';
          const fw = pick(frameworks)!;
          const offer = pick(fw.outstanding());
          if (offer) fw.decline(offer, Math.floor(rand() * 4));
        } else {
          what = 'time passes';
          await c.tick(1000 + Math.floor(rand() * 4000));
        }
        await settle();
        checkInvariants(c.master, `step ${step} (${what})`);
      }
      assert.ok(n > 10, `the sequence launched tasks (${n})`);
    } finally { await c.stop(); }
  });
}

test.run();
