/**
 * The frameworks' Store on JetStream KV (real nats-server): the same contract
 * as the file store (CAS on revisions, bounds, prefix lists), and state that a
 * framework restarted on another connection finds again, also after a NATS
 * node of an R3 bucket is SIGKILLed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KvStore } from '../../frameworks/sdk/index.js';
import { checkCompareAndSet, rejects } from '../frameworks/sdk/store-contract.js';
import { checked, client, withNats } from './harness.js';


test('KV store: compare-and-set, bounds and prefix lists behave as the file store', () => withNats(1, async (n, conns) => {
  const s = await KvStore.open(await client(n, conns), { bucket: 'st1' });
  const r2 = await checkCompareAndSet(s);
  assert.ok((await s.put('apps/web', 'again', { expectRevision: 0 })) > r2, 'a deleted key can be created again');
  await rejects(s.put('../etc', 'x'), 'INVALID', /store key '\.\.\/etc'/);
  await rejects(s.put('big', 'x'.repeat((1 << 20) + 1)), 'TOO_LARGE', /big/);
  await Promise.all(['jobs/b', 'jobs/a', 'apps/x', 'jobs/c'].map((k) => s.put(k, k)));
  assert.equal((await s.list('jobs/')).map((e) => e.key), ['jobs/a', 'jobs/b', 'jobs/c']);
  checked('CAS create/update/delete, CONFLICT names the revisions, INVALID/TOO_LARGE, ordered prefix list');
}));

test('chaos: KV store state written before a NATS node SIGKILL is read back by a restarted framework (R3)', () => withNats(3, async (n, conns) => {
  const s = await KvStore.open(await client(n, conns, [n.nodes[0]!.url, ...n.urls.slice(1)]), { bucket: 'st2', replicas: 3 });
  const revs = await Promise.all(Array.from({ length: 200 }, (_, i) => s.put(`jobs/${String(i).padStart(3, '0')}`, `state-${i}`)));
  await n.nodes[0]!.kill('SIGKILL');
  const more = await s.put('framework_id', 'fw-1', { expectRevision: 0 });
  const again = await KvStore.open(await client(n, conns, n.urls.slice(1)), { bucket: 'st2', replicas: 3 });
  const jobs = await again.list('jobs/');
  assert.is(jobs.length, 200);
  assert.equal(jobs.map((j) => j.revision), revs, 'each record kept the revision its put resolved with');
  assert.is((await again.get('framework_id'))?.revision, more);
  checked('200 job records and a CAS write made while the cluster re-elected read back from the surviving 2 of 3 nodes');
}));

test.run();
