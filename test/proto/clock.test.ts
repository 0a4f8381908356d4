import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffDelay, ManualClock } from '../../proto/clock.js';

test('a manual clock fires timers in time order, including ones scheduled while advancing', () => {
  const c = new ManualClock(0);
  const fired: string[] = [];
  c.setTimeout(() => fired.push('b@20'), 20);
  c.setTimeout(() => { fired.push('a@10'); c.setTimeout(() => fired.push('c@15'), 5); }, 10);
  const h = c.setTimeout(() => fired.push('never'), 15);
  c.clearTimeout(h);
  c.advance(19);
  assert.equal(fired, ['a@10', 'c@15']);
  assert.is(c.now(), 19);
  c.advance(1);
  assert.equal(fired, ['a@10', 'c@15', 'b@20']);
});

test('backoff grows exponentially to its cap, with jitter inside [cap/2, cap]', () => {
  assert.is(backoffDelay(0, 100, 10_000, () => 0), 50);
  assert.is(backoffDelay(0, 100, 10_000, () => 1), 100);
  assert.is(backoffDelay(3, 100, 10_000, () => 1), 800);
  assert.is(backoffDelay(30, 100, 10_000, () => 1), 10_000);
});

test.run();
