/**
 * DRF through the whole master: frameworks that take one task per offer and
 * decline the rest end at the allocations Dominant Resource Fairness predicts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cluster, fillWithGoldAndSilver, greedy, settle } from './harness.js';
import { HierarchicalAllocator } from '../../master/allocator/hierarchical.js';

/** Each framework launches one task of `demand` per offer if it fits, declining the rest (refuse 0); a full offer is declined for long. */
test('DRF paper example: <1 cpu, 4 GiB> and <3 cpu, 1 GiB> tasks on 9 cpu / 18 GiB end with 3 and 2 tasks', async () => {
  const c = await cluster();
  try {
    const a = { n: 0 }; const b = { n: 0 };
    const fa = await c.framework({ name: 'A' });
    greedy(fa, 'cpus:1;mem:4096', a);
    const fb = await c.framework({ name: 'B' });
    greedy(fb, 'cpus:3;mem:1024', b);
    await c.agent('big', 'cpus:9;mem:18432');
    await settle();
    assert.is(a.n, 3, 'framework A runs 3 tasks');
    assert.is(b.n, 2, 'framework B runs 2 tasks');
    const sa = c.master.allocator.frameworkShare(fa.id);
    const sb = c.master.allocator.frameworkShare(fb.id);
    assert.ok(Math.abs(sa - 2 / 3) < 1e-9 && Math.abs(sb - 2 / 3) < 1e-9, `equal dominant shares of 2/3 (got ${sa}, ${sb})`);
  } finally { await c.stop(); }
});

test('role weights 2:1 settle at dominant shares 2:1 within 5% on a larger cluster', async () => {
  const c = await cluster({ allocator: new HierarchicalAllocator({ weights: { gold: 2, silver: 1 } }) });
  try {
    const { tasks, ratio } = await fillWithGoldAndSilver(c);
    assert.is(tasks, 80, 'the cluster is full');
    assert.ok(Math.abs(ratio - 2) / 2 <= 0.05, `gold:silver dominant share ratio ${ratio.toFixed(3)} is 2 within 5%`);
  } finally { await c.stop(); }
});

test.run();
