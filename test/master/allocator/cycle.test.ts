/**
 * `cycle()` (decide and commit in one pass, offers handed to a sink) against
 * `allocate()` + `commit()`: the same offers in the same order and the same
 * state afterwards, over seeded churn that exercises every path of the cycle —
 * several roles with weights, reserved agents, agents with ports and gpus,
 * decline filters, suppression and revival, agent removal, partial cycles —
 * under both sorters and both strategies. Plus the DRF name tie-break after
 * clients come and go (the sorter keeps name ranks instead of comparing names).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NDIMS, Resources } from '../../../proto/resources.js';
import { HierarchicalAllocator } from '../../../master/allocator/hierarchical.js';
import { DRFSorter } from '../../../master/allocator/sorter/drf.js';
import { Rng } from '../../../master/allocator/rng.js';
import type { AllocatorOptions, OfferPlanEntry } from '../../../master/allocator/types.js';

const ROLES = ['r0', 'r1', 'r2'];

function build(opts: AllocatorOptions, rng: Rng): { a: HierarchicalAllocator; agents: string[] } {
  const a = new HierarchicalAllocator(opts);
  for (let i = 0; i < 24; i++) a.addFramework(`fw${i}`, { roles: [ROLES[i % 3]!, ...(i % 7 === 0 ? [ROLES[(i + 1) % 3]!] : [])], gpuAware: i % 5 === 0 });
  const agents: string[] = [];
  for (let i = 0; i < 400; i++) {
    const parts = [`cpus:${1 + rng.below(16)}`, `mem:${256 * (1 + rng.below(32))}`];
    if (rng.next() < 0.1) parts.push('ports:[31000-31010]');
    if (rng.next() < 0.1) parts.push(`cpus(${ROLES[rng.below(3)]}):2`);
    if (rng.next() < 0.05) parts.push('gpus:1');
    a.addAgent(`ag${i}`, Resources.parse(parts.join(';')));
    agents.push(`ag${i}`);
  }
  return { a, agents };
}

const show = (o: OfferPlanEntry): string => `${o.frameworkId}@${o.agentId}/${o.role}:${o.resources.toString()}`;

for (const strategy of ['spread', 'pack'] as const) {
  for (const sorter of ['drf', 'random'] as const) {
    test(`cycle() makes the same offers and leaves the same state as allocate()+commit() (${strategy}, ${sorter})`, () => {
      const opts: AllocatorOptions = { seed: 7, strategy, frameworkSorter: sorter, weights: { r1: 2 } };
      // Two identical allocators driven by one script; only the cycle call differs.
      const rngA = new Rng(42);
      const rngB = new Rng(42);
      const A = build(opts, rngA);
      const B = build(opts, rngB);
      let outA: OfferPlanEntry[] = [];
      let outB: OfferPlanEntry[] = [];
      let offers = 0;
      for (let t = 0; t < 25; t++) {
        const now = t * 1000;
        const some = t % 3 === 2 ? A.agents.filter((_, i) => (i * 7 + t) % 9 === 0) : undefined;
        const plan = A.a.allocate(now, some);
        A.a.commit(plan);
        const got: OfferPlanEntry[] = [];
        const n = B.a.cycle(now, some, (frameworkId, agentId, role, resources) => got.push({ frameworkId, agentId, role, resources }));
        assert.is(n, got.length);
        assert.equal(got.map(show), plan.map(show), `cycle ${t}: offers differ`);
        offers += n;
        outA.push(...plan);
        outB.push(...got);
        // The same declines (some with filters) on both.
        const keepA: OfferPlanEntry[] = [];
        const keepB: OfferPlanEntry[] = [];
        for (let i = 0; i < outA.length; i++) {
          const x = rngA.next();
          const refuse = rngA.next() < 0.5 ? 5 : 0;
          if (x < 0.5) {
            A.a.recoverResources(outA[i]!.frameworkId, outA[i]!.agentId, outA[i]!.role, outA[i]!.resources, refuse, now);
            B.a.recoverResources(outB[i]!.frameworkId, outB[i]!.agentId, outB[i]!.role, outB[i]!.resources, refuse, now);
          } else { keepA.push(outA[i]!); keepB.push(outB[i]!); }
        }
        outA = keepA;
        outB = keepB;
        for (const { a } of [A, B]) {
          if (t % 5 === 4) a.suppress(`fw${t % 24}`);
          if (t % 5 === 0) a.revive(`fw${(t + 3) % 24}`);
          if (t === 10) a.removeAgent('ag5');
        }
        B.a.checkInvariants();
        for (const id of A.agents) {
          assert.ok(A.a.agentAvailable(id)?.equals(B.a.agentAvailable(id)!) ?? B.a.agentAvailable(id) === undefined, `cycle ${t}: ${id} available differs`);
        }
        for (let i = 0; i < 24; i++) assert.is(B.a.frameworkShare(`fw${i}`), A.a.frameworkShare(`fw${i}`));
        assert.is(B.a.filterCount(), A.a.filterCount());
      }
      assert.ok(offers > 500, `the script makes offers (${offers})`);
    });
  }
}

test('a cycle whose sink throws has still committed its offers (the sink sees committed state)', () => {
  const a = new HierarchicalAllocator({ seed: 1 });
  a.addFramework('f', { roles: ['r'] });
  a.addAgent('x', Resources.parse('cpus:2;mem:256'));
  assert.throws(() => a.cycle(0, undefined, () => { throw new Error('sink failed'); }), /sink failed/);
  assert.ok(a.agentAvailable('x')!.isEmpty());
  assert.ok(a.agentAllocated('x')!.equals(Resources.parse('cpus:2;mem:256')));
  a.checkInvariants();
});

test('DRF breaks equal shares by name after clients come and go', () => {
  const s = new DRFSorter();
  const p = new Float64Array(NDIMS);
  Resources.parse('cpus:100;mem:1000').addPacked(p);
  s.setTotal(p);
  for (const n of ['m', 'c', 'x', 'a']) { s.add(n); s.activate(n); }
  s.remove('c');
  for (const n of ['b', 'z', 'c']) { s.add(n); s.activate(n); }
  s.remove('x');
  assert.equal(s.sort(), ['a', 'b', 'c', 'm', 'z']);
  assert.is(s.nameOf(s.first()), 'a');
});

test.run();
