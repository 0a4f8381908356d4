/**
 * Behaviour of the hierarchical DRF allocator, driven directly (no master):
 * time is the `now` argument, never the wall clock.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Resources } from '../../../proto/resources.js';
import { HierarchicalAllocator } from '../../../master/allocator/hierarchical.js';
import type { OfferPlan } from '../../../master/allocator/types.js';

const R = (s: string): Resources => Resources.parse(s);

/** One cycle: allocate at `now` and commit. */
function cycle(a: HierarchicalAllocator, now = 0, agents?: string[]): OfferPlan {
  const plan = a.allocate(now, agents);
  a.commit(plan);
  return plan;
}

function declineAll(a: HierarchicalAllocator, plan: OfferPlan, refuseSeconds: number, now: number): void {
  for (const o of plan) a.recoverResources(o.frameworkId, o.agentId, o.role, o.resources, refuseSeconds, now);
}

const summary = (plan: OfferPlan): string[] => plan.map((o) => `${o.frameworkId}@${o.agentId}/${o.role}:${o.resources.toString()}`);

test('DRF paper example: <1cpu,4GiB> and <3cpu,1GiB> tasks on 9cpu/18GiB end with 3 and 2 tasks', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('agent', R('cpus:9;mem:18432'));
  const demand: Record<string, Resources> = { A: R('cpus:1;mem:4096'), B: R('cpus:3;mem:1024') };
  const tasks: Record<string, number> = { A: 0, B: 0 };
  a.addFramework('A', { roles: ['analytics'] });
  a.addFramework('B', { roles: ['analytics'] });
  let idle = 0;
  for (let now = 0; idle < 3 && now < 100_000; now += 1000) {
    const plan = cycle(a, now);
    let launched = 0;
    for (const o of plan) {
      const need = demand[o.frameworkId]!;
      if (o.resources.contains(need)) {
        tasks[o.frameworkId]!++;
        launched++;
        a.recoverResources(o.frameworkId, o.agentId, o.role, o.resources.subtract(need), 0, now);
      } else {
        a.recoverResources(o.frameworkId, o.agentId, o.role, o.resources, 0, now);
      }
    }
    idle = launched === 0 ? idle + 1 : 0;
  }
  assert.equal(tasks, { A: 3, B: 2 });
  assert.ok(Math.abs(a.frameworkShare('A') - 2 / 3) < 1e-9, `A share ${a.frameworkShare('A')}`);
  assert.ok(Math.abs(a.frameworkShare('B') - 2 / 3) < 1e-9, `B share ${a.frameworkShare('B')}`);
});

test('role weights 2:1 settle at dominant shares 2:1 within 5%', () => {
  const a = new HierarchicalAllocator({ weights: { gold: 2 } });
  for (let i = 0; i < 50; i++) a.addAgent(`a${i}`, R('cpus:16;mem:65536'));
  for (const [fw, role] of [['g1', 'gold'], ['g2', 'gold'], ['b1', 'bronze'], ['b2', 'bronze']] as const) a.addFramework(fw, { roles: [role] });
  const task = R('cpus:1;mem:2048');
  for (let now = 0; now < 200_000; now += 1000) {
    const plan = cycle(a, now);
    if (plan.length === 0) break;
    for (const o of plan) {
      // Each framework launches one task per offer and returns the rest, as in the DRF paper.
      const rest = o.resources.contains(task) ? o.resources.subtract(task) : o.resources;
      a.recoverResources(o.frameworkId, o.agentId, o.role, rest, 0, now);
    }
    if (plan.every((o) => !o.resources.contains(task))) break;
  }
  const gold = a.roleShare('gold');
  const bronze = a.roleShare('bronze');
  assert.ok(gold > 0.5, `cluster should be mostly used, gold ${gold}`);
  assert.ok(Math.abs(gold / bronze - 2) / 2 < 0.05, `gold ${gold} / bronze ${bronze} = ${gold / bronze}`);
});

test('one offer is one agent\'s available resources for one framework and role, counted as allocated at once', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addAgent('a2', R('cpus:4;mem:1024'));
  a.addFramework('f1', { roles: ['r'] });
  a.addFramework('f2', { roles: ['r'] });
  const plan = cycle(a);
  assert.is(plan.length, 2);
  // Shares rise within the cycle: the second agent goes to the other framework.
  assert.equal(new Set(plan.map((o) => o.frameworkId)).size, 2);
  for (const o of plan) assert.ok(o.resources.equals(R('cpus:4;mem:1024')));
  assert.ok(a.agentAvailable('a1')!.isEmpty());
  assert.ok(a.agentAllocated('a1')!.equals(R('cpus:4;mem:1024')));
  assert.equal(cycle(a, 1), [], 'nothing left to offer');
});

test('allocate is a pure decision: same plan twice, state unchanged until commit', () => {
  const a = new HierarchicalAllocator({ seed: 7 });
  for (let i = 0; i < 20; i++) a.addAgent(`a${i}`, R('cpus:4;mem:4096'));
  for (let i = 0; i < 5; i++) a.addFramework(`f${i}`, { roles: ['r'] });
  const p1 = a.allocate(0);
  const p2 = a.allocate(0);
  assert.equal(summary(p1), summary(p2));
  assert.is(a.frameworkShare('f0'), 0);
  assert.ok(a.agentAvailable('a0')!.equals(R('cpus:4;mem:4096')));
  a.commit(p1);
  assert.ok(a.frameworkShare('f0') > 0);
  a.checkInvariants();
});

test('a stale plan is rejected whole by commit', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addAgent('a2', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'] });
  const plan = a.allocate(0);
  a.commit(plan);
  assert.throws(() => a.commit(plan), /stale plan/);
  a.checkInvariants();
});

test('a declined agent is not re-offered to that framework before refuse_seconds, and is after', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'] });
  const first = cycle(a, 0);
  assert.is(first.length, 1);
  declineAll(a, first, 5, 0);
  assert.is(a.filterCount(), 1);
  assert.equal(cycle(a, 1000), []);
  assert.equal(cycle(a, 4999), []);
  const again = cycle(a, 5000);
  assert.equal(summary(again), ['f@a1/r:cpus:4;mem:1024']);
});

test('a declined agent goes to the next framework meanwhile', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addFramework('f1', { roles: ['r'] });
  a.addFramework('f2', { roles: ['r'] });
  const first = cycle(a, 0);
  assert.equal(first.map((o) => o.frameworkId), ['f1']);
  declineAll(a, first, 60, 0);
  assert.equal(cycle(a, 1000).map((o) => o.frameworkId), ['f2']);
});

test('refuse_seconds 0 creates no filter', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'] });
  declineAll(a, cycle(a, 0), 0, 0);
  assert.is(a.filterCount(), 0);
  assert.is(cycle(a, 1).length, 1);
});

test('a filter does not block once the agent\'s available resources grow beyond what was refused', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:8;mem:4096'));
  a.addFramework('f', { roles: ['r'] });
  a.recoverAllocation('f', 'a1', 'r', R('cpus:4;mem:2048')); // a running task
  const offer = cycle(a, 0);
  assert.equal(summary(offer), ['f@a1/r:cpus:4;mem:2048']);
  declineAll(a, offer, 3600, 0);
  assert.equal(cycle(a, 1000), [], 'same resources: filtered');
  // The task ends: the agent now has more than was refused.
  a.recoverResources('f', 'a1', 'r', R('cpus:4;mem:2048'), 0, 2000);
  assert.equal(summary(cycle(a, 3000)), ['f@a1/r:cpus:8;mem:4096']);
});

test('expired filters are dropped lazily', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'] });
  declineAll(a, cycle(a, 0), 5, 0);
  assert.is(a.filterCount(), 1);
  const plan = cycle(a, 6000);
  assert.is(plan.length, 1);
  assert.is(a.filterCount(), 0);
});

test('suppress stops offers; revive restores them and clears filters', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addAgent('a2', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'] });
  const plan = cycle(a, 0);
  assert.is(plan.length, 2);
  declineAll(a, plan.slice(0, 1), 3600, 0);
  declineAll(a, plan.slice(1), 0, 0);
  a.suppress('f');
  assert.equal(cycle(a, 1000), []);
  a.revive('f');
  assert.is(a.filterCount(), 0);
  assert.equal(cycle(a, 2000).map((o) => o.agentId).sort(), ['a1', 'a2']);
});

test('suppress and revive are per role', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['x', 'y'] });
  a.suppress('f', ['x']);
  assert.equal(cycle(a, 0).map((o) => o.role), ['y']);
});

test('minimum allocatable resources: an agent with less than every minimum is not offered', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('tiny', R('cpus:0.005;mem:16'));
  a.addAgent('cpu-only', R('cpus:1;mem:16'));
  a.addAgent('mem-only', R('cpus:0.001;mem:64'));
  a.addFramework('f', { roles: ['r'] });
  assert.equal(cycle(a).map((o) => o.agentId).sort(), ['cpu-only', 'mem-only']);
  const b = new HierarchicalAllocator({ minAllocatable: [{ cpus: 1, mem: 128 }] });
  b.addAgent('small', R('cpus:2;mem:64'));
  b.addAgent('big', R('cpus:2;mem:256'));
  b.addFramework('f', { roles: ['r'] });
  assert.equal(cycle(b).map((o) => o.agentId), ['big']);
});

test('reserved resources are offered only to their role; unreserved ones to anyone', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus(db):4;mem(db):1024;cpus:2;mem:512'));
  a.addFramework('web', { roles: ['web'] });
  const toWeb = cycle(a, 0);
  assert.equal(summary(toWeb), ['web@a1/web:cpus:2;mem:512']);
  a.addFramework('db', { roles: ['db'] });
  const toDb = cycle(a, 1);
  assert.equal(summary(toDb), ['db@a1/db:cpus(db):4;mem(db):1024']);
  a.checkInvariants();
  // With both present from the start, db (lower id on a tie) takes everything it may use.
  const b = new HierarchicalAllocator();
  b.addAgent('a1', R('cpus(db):4;mem(db):1024;cpus:2;mem:512'));
  b.addFramework('web', { roles: ['web'] });
  b.addFramework('db', { roles: ['db'] });
  assert.equal(summary(cycle(b, 0)), ['db@a1/db:cpus(db):4;mem(db):1024;cpus:2;mem:512']);
});

test('agents with gpus are offered only to GPU-aware frameworks', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('gpu', R('cpus:8;mem:8192;gpus:2'));
  a.addAgent('plain', R('cpus:8;mem:8192'));
  a.addFramework('cpu-fw', { roles: ['r'] });
  assert.equal(cycle(a).map((o) => o.agentId), ['plain']);
  a.addFramework('gpu-fw', { roles: ['r'], gpuAware: true });
  assert.equal(summary(cycle(a, 1)), ['gpu-fw@gpu/r:cpus:8;mem:8192;gpus:2']);
});

test('inactive frameworks and inactive agents get and give no offers', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'], active: false });
  assert.equal(cycle(a), []);
  a.setFrameworkActive('f', true);
  a.setAgentActive('a1', false);
  assert.equal(cycle(a), []);
  a.setAgentActive('a1', true);
  assert.is(cycle(a).length, 1);
});

test('allocate can be limited to some agents', () => {
  const a = new HierarchicalAllocator();
  for (const id of ['a1', 'a2', 'a3']) a.addAgent(id, R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'] });
  assert.equal(cycle(a, 0, ['a2', 'a2', 'nope']).map((o) => o.agentId), ['a2']);
});

test('removing an agent or a framework returns its allocations', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:4;mem:1024'));
  a.addAgent('a2', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'] });
  a.addFramework('g', { roles: ['r'] });
  cycle(a);
  a.removeAgent('a1');
  a.checkInvariants();
  a.removeFramework('f');
  a.removeFramework('g');
  a.checkInvariants();
  assert.ok(a.agentAvailable('a2')!.equals(R('cpus:4;mem:1024')));
  assert.is(a.roleShare('r'), 0);
});

test('pack strategy fills the most-allocated agent first; spread the least', () => {
  for (const [strategy, want] of [['pack', 'busy'], ['spread', 'idle']] as const) {
    const a = new HierarchicalAllocator({ strategy });
    a.addAgent('busy', R('cpus:8;mem:8192'));
    a.addAgent('idle', R('cpus:8;mem:8192'));
    a.addFramework('old', { roles: ['r'] });
    a.recoverAllocation('old', 'busy', 'r', R('cpus:6;mem:6144'));
    a.addFramework('new', { roles: ['r'] });
    // 'new' has the lower share, so it gets the first agent visited.
    const first = cycle(a).find((o) => o.frameworkId === 'new')!;
    assert.is(first.agentId, want, strategy);
  }
});

test('typed errors for unknown ids, duplicates and bad weights', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('a1', R('cpus:1;mem:64'));
  assert.throws(() => a.addAgent('a1', R('cpus:1')), (e: Error) => e.name === 'BerthError' && /already added/.test(e.message));
  assert.throws(() => a.setAgentActive('zz', true), /unknown agent/);
  assert.throws(() => a.setWeight('r', 0), /positive/);
  assert.throws(() => a.addFramework('f', { roles: [] }), /no roles/);
  a.addFramework('f', { roles: ['r'] });
  assert.throws(() => a.recoverAllocation('f', 'a1', 'r', R('cpus:2')), /cannot hold/);
});

test.run();
