/**
 * The agent's master link redials a newly elected leader at once (with a small
 * jitter) instead of waiting out a backoff that grew while no master answered.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LEADER_CHANGE_JITTER_MS, MasterLink } from '../../agent/master-link.js';
import { ManualClock } from '../../proto/clock.js';
import { silentLogger } from '../../proto/log.js';
import type { Dialer } from '../../proto/transport/types.js';

class LeaderDialer {
  dials = 0;
  private cbs: (() => void)[] = [];
  dialAgent(): Promise<never> { this.dials++; return Promise.reject(new Error('no leading master')); }
  dialFramework(): Promise<never> { return Promise.reject(new Error('unused')); }
  onLeaderChange(cb: () => void): () => void { this.cbs.push(cb); return () => { this.cbs = this.cbs.filter((c) => c !== cb); }; }
  elect(): void { for (const cb of this.cbs) cb(); }
}

const flush = async (): Promise<void> => { for (let i = 0; i < 5; i++) await Promise.resolve(); };

test('a new leader cuts a grown redial backoff short: the link redials within the jitter', async () => {
  const clock = new ManualClock();
  const d = new LeaderDialer();
  const link = new MasterLink({
    dialer: d as unknown as Dialer, clock, log: silentLogger, registration: () => ({ register: undefined }),
    onRegistered: () => undefined, onFrame: () => undefined, redialBaseMs: 1000, redialMaxMs: 30_000,
  });
  link.start();
  await flush();
  // Six failed dials: the backoff has grown to 16-32 s.
  for (let i = 0; i < 6; i++) { clock.advance(2 ** i * 1000); await flush(); }
  const before = d.dials;
  clock.advance(LEADER_CHANGE_JITTER_MS);
  await flush();
  assert.is(d.dials, before, 'no dial within the jitter while the backoff runs');
  d.elect();
  clock.advance(LEADER_CHANGE_JITTER_MS);
  await flush();
  assert.is(d.dials, before + 1, 'a newly elected leader is dialed within the jitter');
  link.stop();
  d.elect();
  clock.advance(60_000);
  await flush();
  assert.is(d.dials, before + 1, 'a stopped link does not dial');
});

test.run();
