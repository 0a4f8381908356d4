/**
 * Seeded property test: random sequences of agent churn, offers, launches,
 * terminal updates, declines (with filters), rescinds, suppress/revive and
 * activity changes. After every step:
 *  - on every agent, what the test holds (outstanding offers + running tasks)
 *    plus what the allocator says is available equals the agent's total;
 *  - nothing is held twice: the holdings on an agent fit in its total, and no
 *    port is in two holdings;
 *  - the allocator's packed and rich forms agree (`checkInvariants`);
 *  - offers carry only unreserved resources or ones reserved for their role;
 *  - `allocate()` is pure (the same plan twice, no state change).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Resources } from '../../../proto/resources.js';
import { HierarchicalAllocator } from '../../../master/allocator/hierarchical.js';
import { Rng } from '../../../master/allocator/rng.js';
import type { AllocatorOptions } from '../../../master/allocator/types.js';

interface Holding { fw: string; agent: string; role: string; res: Resources; kind: 'offer' | 'task' }

const ROLES = ['r0', 'r1', 'r2'];

function randomAgentResources(rng: Rng): Resources {
  const parts = [`cpus:${1 + rng.below(16)}`, `mem:${256 * (1 + rng.below(32))}`];
  if (rng.next() < 0.3) parts.push(`disk:${1000 * (1 + rng.below(10))}`);
  if (rng.next() < 0.4) { const p = 31000 + rng.below(100); parts.push(`ports:[${p}-${p + rng.below(20)}]`); }
  if (rng.next() < 0.25) parts.push(`cpus(${ROLES[rng.below(3)]}):${1 + rng.below(4)};mem(${ROLES[rng.below(3)]}):512`);
  if (rng.next() < 0.1) parts.push('gpus:1');
  return Resources.parse(parts.join(';'));
}

/** A task's share of an offer: about half of each scalar, the first port. */
function taskOf(offer: Resources, rng: Rng): Resources {
  const list = [];
  for (const e of offer.entries()) {
    if (e.type === 'SCALAR') {
      const milli = Math.floor(e.milli * rng.next());
      if (milli > 0) list.push({ name: e.name, type: 'SCALAR' as const, scalar: { value: milli / 1000 }, ...(e.role !== '*' ? { role: e.role } : {}) });
    } else if (e.type === 'RANGES' && e.ranges.length > 0) {
      const b = e.ranges[0]![0];
      list.push({ name: e.name, type: 'RANGES' as const, ranges: { range: [{ begin: b, end: b }] }, ...(e.role !== '*' ? { role: e.role } : {}) });
    }
  }
  return Resources.from(list);
}

function check(a: HierarchicalAllocator, agents: Map<string, Resources>, held: Holding[], step: string): void {
  a.checkInvariants();
  for (const [id, total] of agents) {
    const mine = held.filter((h) => h.agent === id);
    let sum = Resources.EMPTY;
    let ports = 0;
    for (const h of mine) { sum = sum.add(h.res); ports += h.res.rangeCount('ports'); }
    assert.ok(total.contains(sum), `${step}: agent ${id} holdings ${sum} exceed total ${total}`);
    assert.is(ports, sum.rangeCount('ports'), `${step}: agent ${id}: a port is held twice`);
    assert.ok(sum.add(a.agentAvailable(id)!).equals(total), `${step}: agent ${id}: held ${sum} + available ${a.agentAvailable(id)} ≠ total ${total}`);
    assert.ok(a.agentAllocated(id)!.equals(sum), `${step}: agent ${id}: allocator says ${a.agentAllocated(id)}, test holds ${sum}`);
  }
}

interface Stats { offers: number; launches: number; filtered: number; reservedOffers: number }

function runSequence(seed: number, steps: number, opts: AllocatorOptions, stats: Stats): void {
  const rng = new Rng(seed);
  const a = new HierarchicalAllocator({ seed, ...opts });
  const agents = new Map<string, Resources>();
  const frameworks = new Map<string, string[]>();
  let held: Holding[] = [];
  let now = 0;
  let nextId = 0;
  const pick = <T>(xs: T[]): T | undefined => (xs.length === 0 ? undefined : xs[rng.below(xs.length)]);

  for (let i = 0; i < steps; i++) {
    now += rng.below(3000);
    const op = rng.below(14);
    let step = `seed ${seed} step ${i} op ${op}`;
    switch (op) {
      case 0: case 1: {
        const id = `a${nextId++}`;
        const total = randomAgentResources(rng);
        a.addAgent(id, total);
        agents.set(id, total);
        step += ` addAgent ${id} ${total}`;
        break;
      }
      case 2: {
        const id = pick([...agents.keys()]);
        if (!id || rng.next() < 0.5) break;
        a.removeAgent(id);
        agents.delete(id);
        held = held.filter((h) => h.agent !== id);
        step += ` removeAgent ${id}`;
        break;
      }
      case 3: {
        const id = `f${nextId++}`;
        const roles = ROLES.filter(() => rng.next() < 0.5);
        if (roles.length === 0) roles.push(pick(ROLES)!);
        a.addFramework(id, { roles, gpuAware: rng.next() < 0.3 });
        frameworks.set(id, roles);
        step += ` addFramework ${id} ${roles}`;
        break;
      }
      case 4: {
        const id = pick([...frameworks.keys()]);
        if (!id || rng.next() < 0.6) break;
        a.removeFramework(id);
        frameworks.delete(id);
        held = held.filter((h) => h.fw !== id);
        step += ` removeFramework ${id}`;
        break;
      }
      case 5: case 6: case 7: {
        const some = rng.next() < 0.3 ? [...agents.keys()].filter(() => rng.next() < 0.5) : undefined;
        const plan = a.allocate(now, some);
        const again = a.allocate(now, some);
        assert.equal(again.map((o) => `${o.frameworkId}${o.agentId}${o.role}${o.resources}`), plan.map((o) => `${o.frameworkId}${o.agentId}${o.role}${o.resources}`), `${step}: allocate is pure`);
        check(a, agents, held, `${step} (after allocate, before commit)`);
        // A copy of the plan takes commit's validating path; the plan itself its fast path.
        a.commit(rng.next() < 0.3 ? plan.slice() : plan);
        for (const o of plan) {
          assert.ok(frameworks.get(o.frameworkId)!.includes(o.role), `${step}: offer to a role the framework does not hold`);
          for (const e of o.resources.entries()) assert.ok(e.role === '*' || e.role === o.role, `${step}: ${e.name}(${e.role}) offered to role ${o.role}`);
          held.push({ fw: o.frameworkId, agent: o.agentId, role: o.role, res: o.resources, kind: 'offer' });
          stats.offers++;
          if (o.resources.reserved().size > 0) stats.reservedOffers++;
        }
        stats.filtered = Math.max(stats.filtered, a.filterCount());
        step += ` cycle ${plan.length} offers`;
        break;
      }
      case 8: case 9: {
        // Accept: launch a task from an offer, decline the rest (maybe with a filter).
        const offers = held.filter((h) => h.kind === 'offer');
        const o = pick(offers);
        if (!o) break;
        const task = taskOf(o.res, rng);
        const rest = o.res.subtract(task);
        held = held.filter((h) => h !== o);
        if (!task.isEmpty()) { held.push({ ...o, res: task, kind: 'task' }); stats.launches++; }
        a.recoverResources(o.fw, o.agent, o.role, rest, rng.next() < 0.5 ? 0 : 1 + rng.below(10), now);
        step += ` launch ${task} on ${o.agent}`;
        break;
      }
      case 10: {
        // Terminal update, or decline/rescind a whole offer.
        const h = pick(held);
        if (!h) break;
        held = held.filter((x) => x !== h);
        a.recoverResources(h.fw, h.agent, h.role, h.res, h.kind === 'offer' && rng.next() < 0.7 ? 1 + rng.below(30) : 0, now);
        step += ` recover ${h.kind} ${h.res}`;
        break;
      }
      case 11: {
        const id = pick([...frameworks.keys()]);
        if (!id) break;
        if (rng.next() < 0.5) a.suppress(id, rng.next() < 0.5 ? undefined : [pick(frameworks.get(id)!)!]);
        else a.revive(id);
        break;
      }
      case 12: {
        const id = pick([...frameworks.keys()]);
        if (id) a.setFrameworkActive(id, rng.next() < 0.7);
        break;
      }
      case 13: {
        const id = pick([...agents.keys()]);
        if (id) a.setAgentActive(id, rng.next() < 0.8);
        break;
      }
    }
    check(a, agents, held, step);
  }
}

test('property: allocated + available = total and nothing is held twice, over random sequences (drf, spread)', () => {
  const stats: Stats = { offers: 0, launches: 0, filtered: 0, reservedOffers: 0 };
  for (let seed = 1; seed <= 25; seed++) runSequence(seed, 300, {}, stats);
  // The sequences must actually exercise the allocator.
  assert.ok(stats.offers > 500 && stats.launches > 200 && stats.filtered > 3 && stats.reservedOffers > 20, JSON.stringify(stats));
});

test('property: the same over random sorters and the pack strategy', () => {
  const stats: Stats = { offers: 0, launches: 0, filtered: 0, reservedOffers: 0 };
  for (let seed = 100; seed <= 115; seed++) runSequence(seed, 300, { roleSorter: 'random', frameworkSorter: 'random', strategy: 'pack', weights: { r1: 2 } }, stats);
  assert.ok(stats.offers > 300 && stats.launches > 100, JSON.stringify(stats));
});

test.run();
