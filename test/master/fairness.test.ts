/**
 * DRF through the whole master: frameworks that take one task per offer and
 * decline the rest end at the allocations Dominant Resource Fairness predicts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cluster, settle, task, type TestFramework } from './harness.js';
import { HierarchicalAllocator } from '../../master/allocator/hierarchical.js';
import { Resources } from '../../proto/resources.js';
import type { Offer } from '../../proto/types.js';

/** Each framework launches one task of `demand` per offer if it fits, declining the rest (refuse 0); a full offer is declined for long. */
function greedy(fw: TestFramework, demand: string, counter: { n: number }): void {
  const need = Resources.parse(demand);
  fw.onEvent = (ev) => {
    if (ev.type !== 'OFFERS') return;
    for (const offer of ev.offers!.offers ?? []) {
      queueMicrotask(() => answer(fw, offer, need, demand, counter));
    }
  };
}

function answer(fw: TestFramework, offer: Offer, need: Resources, demand: string, counter: { n: number }): void {
  if (Resources.from(offer.resources).contains(need)) {
    counter.n++;
    fw.launch(offer, [task(`${fw.info.name}-${counter.n}`, offer.agent_id.value, demand)], 0);
  } else {
    fw.decline(offer, 3600);
  }
}

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
  const allocator = new HierarchicalAllocator({ weights: { gold: 2, silver: 1 } });
  const c = await cluster({ allocator });
  try {
    const g = { n: 0 }; const s = { n: 0 };
    const fg = await c.framework({ name: 'gold', role: 'gold' });
    greedy(fg, 'cpus:1;mem:1024', g);
    const fs = await c.framework({ name: 'silver', role: 'silver' });
    greedy(fs, 'cpus:1;mem:1024', s);
    for (let i = 0; i < 10; i++) await c.agent(`n${i}`, 'cpus:8;mem:16384');
    await settle();
    assert.is(g.n + s.n, 80, 'the cluster is full');
    const ratio = c.master.allocator.roleShare('gold') / c.master.allocator.roleShare('silver');
    assert.ok(Math.abs(ratio - 2) / 2 <= 0.05, `gold:silver dominant share ratio ${ratio.toFixed(3)} is 2 within 5%`);
  } finally { await c.stop(); }
});

test.run();
