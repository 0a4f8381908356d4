/**
 * The simulation kit's clock and loop: timers fire in (time, creation) order
 * whatever the mix of scheduling and cancelling, and `SimLoop` settles every
 * reaction before moving time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng } from '../../master/allocator/rng.js';
import { DeferQueue, SimLoop, VirtualClock } from '../../sim/clock.js';
import type { TimerHandle } from '../../proto/clock.js';

test('timers fire in (time, creation) order under random scheduling and cancelling, as a sorted reference says', () => {
  for (const seed of [1, 2, 3]) {
    const rng = new Rng(seed);
    const c = new VirtualClock(0);
    const fired: number[] = [];
    const live = new Map<number, { at: number; seq: number; h: TimerHandle }>();
    let seq = 0;
    for (let i = 0; i < 5000; i++) {
      if (live.size > 0 && rng.next() < 0.4) {
        const keys = [...live.keys()];
        const k = keys[rng.below(keys.length)]!;
        c.clearTimeout(live.get(k)!.h);
        live.delete(k);
      } else {
        const id = seq++;
        const at = rng.below(1000);
        live.set(id, { at, seq: id, h: c.setTimeout(() => fired.push(id), at) });
      }
    }
    const expected = [...live.values()].sort((x, y) => x.at - y.at || x.seq - y.seq).map((x) => x.seq);
    assert.is(c.timers, live.size);
    c.advance(1000);
    assert.equal(fired, expected, `seed ${seed}`);
    assert.is(c.timers, 0);
  }
});

test('nextDue skips cancelled timers and fireNext stops at the bound', () => {
  const c = new VirtualClock(0);
  const h = c.setTimeout(() => undefined, 5);
  let ran = 0;
  c.setTimeout(() => ran++, 10);
  c.clearTimeout(h);
  assert.is(c.nextDue(), 10);
  assert.is(c.fireNext(9), false);
  assert.is(ran, 0);
  assert.is(c.fireNext(10), true);
  assert.is(c.now(), 10);
  assert.is(c.nextDue(), undefined);
});

test('SimLoop runs deferred work and the microtasks it causes before moving time, and advance fires each timer once', async () => {
  const loop = new SimLoop(new VirtualClock(0), new DeferQueue());
  const log: string[] = [];
  loop.scheduler.defer(() => { log.push('deferred'); void Promise.resolve().then(() => { log.push('microtask'); loop.scheduler.defer(() => log.push('deferred again')); }); });
  loop.clock.setTimeout(() => log.push(`timer@${loop.clock.now()}`), 50);
  await loop.settle();
  assert.equal(log, ['deferred', 'microtask', 'deferred again']);
  await loop.advance(100);
  assert.equal(log, ['deferred', 'microtask', 'deferred again', 'timer@50']);
  assert.is(loop.clock.now(), 100);
});

test.run();
