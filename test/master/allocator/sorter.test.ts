/** The sorters on their own: DRF order and tie-breaks, random reproducibility, checkpoints. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NDIMS, Resources } from '../../../proto/resources.js';
import { DRFSorter } from '../../../master/allocator/sorter/drf.js';
import { RandomSorter } from '../../../master/allocator/sorter/random.js';
import type { Sorter } from '../../../master/allocator/sorter/sorter.js';
import { HierarchicalAllocator } from '../../../master/allocator/hierarchical.js';

function packed(s: string): Float64Array {
  const p = new Float64Array(NDIMS);
  Resources.parse(s).addPacked(p);
  return p;
}

function setup(s: Sorter, names: string[]): void {
  s.setTotal(packed('cpus:100;mem:1000'));
  for (const n of names) { s.add(n); s.activate(n); }
}

test('DRF sorts by dominant share, then allocation count, then name', () => {
  const s = new DRFSorter();
  setup(s, ['c', 'b', 'a']);
  assert.equal(s.sort(), ['a', 'b', 'c']);
  s.allocated(s.indexOf('a'), packed('cpus:10'), 0); // share 0.1
  s.allocated(s.indexOf('b'), packed('mem:50'), 0);  // share 0.05
  assert.equal(s.sort(), ['c', 'b', 'a']);
  s.allocated(s.indexOf('c'), packed('cpus:5'), 0);  // share 0.05, like b
  s.allocated(s.indexOf('c'), packed('cpus:0'), 0);  // c now has 2 allocations, b 1
  assert.equal(s.sort(), ['b', 'c', 'a']);
  s.unallocated(s.indexOf('a'), packed('cpus:10'), 0);
  assert.equal(s.sort()[0], 'a');
});

test('DRF orders by share divided by weight', () => {
  const s = new DRFSorter();
  setup(s, ['heavy', 'light']);
  s.setWeight('heavy', 2);
  s.allocated(s.indexOf('heavy'), packed('cpus:30'), 0); // 0.3 / 2 = 0.15
  s.allocated(s.indexOf('light'), packed('cpus:20'), 0); // 0.2
  assert.equal(s.sort(), ['heavy', 'light']);
  assert.ok(Math.abs(s.share(s.indexOf('heavy')) - 0.3) < 1e-12);
});

test('pick skips clients the visitor refuses and keeps the order intact', () => {
  const s = new DRFSorter();
  setup(s, ['a', 'b', 'c', 'd']);
  const got = s.pick((i) => s.nameOf(i) === 'c');
  assert.is(s.nameOf(got), 'c');
  assert.equal(s.sort(), ['a', 'b', 'c', 'd']);
  assert.is(s.pick(() => false), -1);
  s.deactivate('a');
  assert.equal(s.sort(), ['b', 'c', 'd']);
});

test('snapshot and restore bring back shares, counts and order, and replay identically', () => {
  for (const s of [new DRFSorter(), new RandomSorter(3)] as Sorter[]) {
    setup(s, ['a', 'b', 'c']);
    s.allocated(s.indexOf('b'), packed('cpus:10'), 0);
    const before = [s.share(0), s.share(1), s.share(2)];
    const snap = s.snapshot();
    const first = s.pick((i) => { s.allocated(i, packed('cpus:50'), 0); return true; });
    s.pick(() => false);
    const after = s.snapshot();
    const afterShares = [s.share(0), s.share(1), s.share(2)];
    s.restore(snap);
    assert.equal([s.share(0), s.share(1), s.share(2)], before);
    assert.is(s.pick((i) => { s.allocated(i, packed('cpus:50'), 0); return true; }), first, 'replays identically');
    s.restore(after);
    assert.equal([s.share(0), s.share(1), s.share(2)], afterShares);
    s.add('d');
    assert.throws(() => s.restore(snap), /does not match/);
  }
});

test('random sorter is reproducible with the same seed and varies with another', () => {
  const orders = (seed: number): string[][] => {
    const s = new RandomSorter(seed);
    setup(s, Array.from({ length: 20 }, (_, i) => `c${i}`));
    return [s.sort(), s.sort(), s.sort()];
  };
  assert.equal(orders(42), orders(42));
  assert.not.equal(orders(42), orders(43));
  assert.not.equal(orders(42)[0], orders(42)[1], 'a fresh order per sort');
});

test('random sorters make an allocator reproducible with the same seed', () => {
  const run = (seed: number): string[] => {
    const a = new HierarchicalAllocator({ roleSorter: 'random', frameworkSorter: 'random', seed });
    for (let i = 0; i < 30; i++) a.addAgent(`a${i}`, Resources.parse('cpus:4;mem:4096'));
    for (let i = 0; i < 10; i++) a.addFramework(`f${i}`, { roles: [`r${i % 3}`] });
    const out: string[] = [];
    for (let t = 0; t < 3; t++) {
      const plan = a.allocate(t * 1000);
      a.commit(plan);
      for (const o of plan) {
        out.push(`${o.frameworkId}@${o.agentId}`);
        a.recoverResources(o.frameworkId, o.agentId, o.role, o.resources, 0, t * 1000);
      }
    }
    return out;
  };
  assert.equal(run(5), run(5));
  assert.not.equal(run(5), run(6));
});

test('random sorter honours weights on average', () => {
  const s = new RandomSorter(1);
  setup(s, ['w3', 'w1']);
  s.setWeight('w3', 3);
  let firsts = 0;
  for (let i = 0; i < 4000; i++) if (s.sort()[0] === 'w3') firsts++;
  assert.ok(Math.abs(firsts / 4000 - 0.75) < 0.03, `w3 first ${firsts / 4000}`);
});

test.run();
