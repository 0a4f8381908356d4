/** What every Store backend (memory, file, NATS KV) must do alike; used by each backend's suite. */
import * as assert from 'uvu/assert';
import { BerthError, type Store } from '../../../frameworks/sdk/index.js';

/** Asserts `p` rejects with a BerthError of `code` whose message matches `re`. */
export async function rejects(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  try { await p; assert.unreachable('resolved'); } catch (e) {
    assert.instance(e, BerthError);
    assert.is((e as BerthError).code, code);
    assert.match((e as Error).message, re);
  }
}

/**
 * Compare-and-set on revisions: create only at revision 0, update only at the current revision
 * (CONFLICT names the revisions and the key), delete at the current revision. Returns the
 * revision the deleted key last had.
 */
export async function checkCompareAndSet(s: Store): Promise<number> {
  const r1 = await s.put('apps/web', 'v1', { expectRevision: 0 });
  await rejects(s.put('apps/web', 'again', { expectRevision: 0 }), 'CONFLICT', /expected revision 0, found 1/);
  const r2 = await s.put('apps/web', 'v2', { expectRevision: r1 });
  assert.ok(r2 > r1);
  await rejects(s.put('apps/web', 'v3', { expectRevision: r1 }), 'CONFLICT', /apps\/web/);
  assert.equal(await s.get('apps/web'), { key: 'apps/web', value: 'v2', revision: r2 });
  assert.is(await s.delete('apps/web', { expectRevision: r2 }), true);
  assert.is(await s.get('apps/web'), undefined);
  return r2;
}
