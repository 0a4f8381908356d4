/** The decline-filter store on its own: blocking rule, chains, clearing, lazy expiry. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NDIMS, Resources } from '../../../proto/resources.js';
import { OfferFilters } from '../../../master/allocator/filters.js';
import { HierarchicalAllocator } from '../../../master/allocator/hierarchical.js';

const R = (s: string): Resources => Resources.parse(s);
function P(r: Resources): Float64Array { const p = new Float64Array(NDIMS); r.addPacked(p); return p; }

function blocks(f: OfferFilters, client: number, agent: number, now: number, offer: string, exact = true): boolean {
  const r = R(offer);
  return f.blocks(client, agent, now, P(r), 0, r, exact);
}

test('a filter blocks offers within what was refused, until it expires', () => {
  const f = new OfferFilters();
  f.add(1, 40, R('cpus:4;mem:1024'), 0, 5000);
  assert.ok(blocks(f, 1, 40, 0, 'cpus:4;mem:1024'));
  assert.ok(blocks(f, 1, 40, 4999, 'cpus:2;mem:512'));
  assert.not.ok(blocks(f, 1, 40, 5000, 'cpus:4;mem:1024'), 'expired');
  assert.not.ok(blocks(f, 1, 40, 0, 'cpus:5;mem:1024'), 'more than refused');
  assert.not.ok(blocks(f, 2, 40, 0, 'cpus:1'), 'another client');
  assert.not.ok(blocks(f, 1, 41, 0, 'cpus:1'), 'another agent');
});

test('non-scalar resources are compared on the rich form', () => {
  const f = new OfferFilters();
  f.add(1, 0, R('cpus:4;ports:[31000-31010]'), 0, 5000);
  assert.ok(blocks(f, 1, 0, 0, 'cpus:4;ports:[31000-31005]', false));
  assert.not.ok(blocks(f, 1, 0, 0, 'cpus:4;ports:[31000-31020]', false));
});

test('several filters of one pair: each may block; dominated ones are replaced', () => {
  const f = new OfferFilters();
  f.add(1, 0, R('cpus:4'), 0, 10_000);
  f.add(1, 0, R('mem:512'), 0, 5_000);
  assert.is(f.count, 2);
  assert.ok(blocks(f, 1, 0, 1, 'cpus:3'));
  assert.ok(blocks(f, 1, 0, 1, 'mem:100'));
  f.add(1, 0, R('cpus:8;mem:1024'), 1, 20_000); // contains both and outlives them
  assert.is(f.count, 1);
});

test('clearClient, clearAgent and sweep keep the count and the index consistent', () => {
  const f = new OfferFilters();
  for (let a = 0; a < 100; a++) f.add(1, a, R('cpus:1'), 0, a < 50 ? 1000 : 9000);
  for (let a = 0; a < 100; a += 2) f.add(2, a, R('cpus:1'), 0, 9000);
  assert.is(f.count, 150);
  f.clearAgent(98);
  assert.is(f.count, 148);
  assert.not.ok(f.mayBlock(1, 98));
  f.sweep(1000);
  assert.is(f.count, 98);
  assert.not.ok(f.mayBlock(1, 10));
  assert.ok(f.mayBlock(1, 70));
  f.clearClient(1);
  assert.is(f.count, 49);
  assert.not.ok(f.mayBlock(1, 70));
  assert.ok(blocks(f, 2, 96, 0, 'cpus:1'));
  f.sweep(9000);
  assert.is(f.count, 0);
});

test('a filter does not outlive its agent when the agent index is reused', () => {
  const a = new HierarchicalAllocator();
  a.addAgent('old', R('cpus:4;mem:1024'));
  a.addFramework('f', { roles: ['r'] });
  const plan = a.allocate(0);
  a.commit(plan);
  a.recoverResources('f', 'old', 'r', plan[0]!.resources, 3600, 0);
  a.removeAgent('old');
  assert.is(a.filterCount(), 0);
  a.addAgent('new', R('cpus:4;mem:1024'));
  assert.equal(a.allocate(1).map((o) => o.agentId), ['new']);
});

test.run();
