/**
 * The frameworks' state store: compare-and-set revisions, durability across a
 * reopen, compaction, torn tails, bounds, private file modes.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileStore, MemoryStore, type Store } from '../../../frameworks/sdk/index.js';
import { checkCompareAndSet, rejects } from './store-contract.js';

const t = suite('framework state store');
const dirs: string[] = [];
const tmp = () => { const d = mkdtempSync(path.join(tmpdir(), 'berth-store-')); dirs.push(d); return path.join(d, 'state'); };
t.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });


for (const [name, make] of [['memory', async () => new MemoryStore()], ['file', async () => FileStore.open(tmp())]] as [string, () => Promise<Store>][]) {
  t(`${name}: compare-and-set accepts the current revision and refuses a stale one`, async () => {
    const s = await make();
    await checkCompareAndSet(s);
    await s.close();
  });

  t(`${name}: bad keys and oversized values are refused naming the key`, async () => {
    const s = await make();
    await rejects(s.put('../etc', 'x'), 'INVALID', /store key '\.\.\/etc'/);
    await rejects(s.put('a b', 'x'), 'INVALID', /a b/);
    await rejects(s.put('big', 'x'.repeat((1 << 20) + 1)), 'TOO_LARGE', /big/);
    assert.equal(await s.list(), []);
    await s.close();
  });

  t(`${name}: list returns a prefix in key order`, async () => {
    const s = await make();
    await Promise.all(['jobs/b', 'jobs/a', 'apps/x', 'jobs/c'].map((k) => s.put(k, k)));
    assert.equal((await s.list('jobs/')).map((e) => e.key), ['jobs/a', 'jobs/b', 'jobs/c']);
    await s.close();
  });
}

t('file: every acknowledged write survives a reopen, deletes included', async () => {
  const dir = tmp();
  const s = await FileStore.open(dir);
  await Promise.all(Array.from({ length: 500 }, (_, i) => s.put(`k/${i}`, `v${i}`)));
  await s.delete('k/7');
  const rev = await s.put('k/8', 'changed');
  await s.close();
  const again = await FileStore.open(dir);
  assert.is((await again.list('k/')).length, 499);
  assert.equal(await again.get('k/8'), { key: 'k/8', value: 'changed', revision: rev });
  assert.is(await again.get('k/7'), undefined);
  assert.ok((await again.put('k/9', 'x')) > rev, 'revisions keep growing after a reopen');
  await again.close();
});

t('file: compaction bounds the log and keeps revisions growing', async () => {
  const dir = tmp();
  const s = await FileStore.open(dir, { compactSlack: 100 });
  let last = 0;
  for (let i = 0; i < 1000; i++) last = await s.put('hot', String(i));
  await s.put('gone', 'x');
  await s.delete('gone');
  await s.close();
  const lines = readFileSync(path.join(dir, 'store.log'), 'utf8').trim().split('\n').length;
  assert.ok(lines < 200, `log has ${lines} lines after 1002 writes to 2 keys`);
  const again = await FileStore.open(dir);
  assert.equal(await again.get('hot'), { key: 'hot', value: '999', revision: last });
  assert.ok((await again.put('hot', 'n')) > last + 2);
  await again.close();
});

t('file: a torn last line is dropped, a corrupt middle line fails the open naming it', async () => {
  const dir = tmp();
  const s = await FileStore.open(dir);
  await s.put('a', '1');
  await s.close();
  const file = path.join(dir, 'store.log');
  appendFileSync(file, '{"k":"b","v":"2","r');
  const again = await FileStore.open(dir);
  assert.equal((await again.list()).map((e) => e.key), ['a']);
  await again.put('c', '3');
  await again.close();
  writeFileSync(file, `${readFileSync(file, 'utf8')}garbage\n{"k":"d","v":"4","r":9}\n`);
  try { await FileStore.open(dir); assert.unreachable('opened'); } catch (e) { assert.match((e as Error).message, /line 3 is corrupt/); }
});

t('file: the directory is 0700 and the log 0600 (values may hold secrets)', async () => {
  const dir = tmp();
  const s = await FileStore.open(dir, { compactSlack: 1 });
  for (let i = 0; i < 10; i++) await s.put('x', String(i));
  await s.close();
  assert.is(statSync(dir).mode & 0o777, 0o700);
  assert.is(statSync(path.join(dir, 'store.log')).mode & 0o777, 0o600);
});

t('a full store refuses new keys and keeps the old ones', async () => {
  const s = new MemoryStore(2);
  await s.put('a', '1');
  await s.put('b', '2');
  await rejects(s.put('c', '3'), 'TOO_LARGE', /'c' not written/);
  await s.put('a', 'updated');
  assert.equal((await s.list()).map((e) => e.value), ['updated', '2']);
});

t.run();
