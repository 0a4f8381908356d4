import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileRegistry } from '../../master/registry/file.js';
import { apply, emptyState, MAX_REMOVED_FRAMEWORKS, rememberRemoved } from '../../master/registry/types.js';
import type { Logger } from '../../proto/log.js';

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-registry-'));
    try { await fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
  };
}

test('events appended before a restart are replayed after it', withDir(async (dir) => {
  const r1 = new FileRegistry(dir);
  await r1.load();
  await Promise.all([
    r1.append({ type: 'agent_admitted', agent_id: 'a1', info: { hostname: 'h1' }, at: 1 }),
    r1.append({ type: 'framework_added', framework_id: 'f1', info: { user: 'u', name: 'n' }, at: 2 }),
    r1.append({ type: 'framework_added', framework_id: 'f2', info: { user: 'u', name: 'm' }, at: 3 }),
  ]);
  await r1.append({ type: 'framework_removed', framework_id: 'f2', at: 4 });
  await r1.close();
  const s = await new FileRegistry(dir).load();
  assert.equal([...s.agents.keys()], ['a1']);
  assert.equal([...s.frameworks.keys()], ['f1']);
  assert.ok(s.removedFrameworks.has('f2'), 'a removed framework id stays retired');
}));

test('a torn last line (crash mid-write) is dropped and later appends stay readable', withDir(async (dir) => {
  const r1 = new FileRegistry(dir);
  await r1.load();
  await r1.append({ type: 'agent_admitted', agent_id: 'a1', info: { hostname: 'h1' }, at: 1 });
  await r1.close();
  appendFileSync(path.join(dir, 'registry.log'), '{"type":"agent_admi');
  const r2 = new FileRegistry(dir);
  const s = await r2.load();
  assert.equal([...s.agents.keys()], ['a1']);
  await r2.append({ type: 'agent_admitted', agent_id: 'a2', info: { hostname: 'h2' }, at: 2 });
  await r2.close();
  const s3 = await new FileRegistry(dir).load();
  assert.equal([...s3.agents.keys()], ['a1', 'a2']);
  assert.ok(readFileSync(path.join(dir, 'registry.log'), 'utf8').endsWith('\n'));
}));

test('a corrupt or invalid middle entry is quarantined with a loud log, not fatal; the entries around it load', withDir(async (dir) => {
  writeFileSync(path.join(dir, 'registry.log'), [
    '{"type":"master_started","master_id":"m","at":1}',
    '{oops',
    '{"type":"framework_added","framework_id":"bad","info":{"user":"u","name":"n","roles":[],"capabilities":[{"type":"MULTI_ROLE"}]},"at":2}',
    '{"type":"framework_added","framework_id":"good","info":{"user":"u","name":"n"},"at":3}',
    '',
  ].join('\n'));
  const logged: string[] = [];
  const log = { error: (_o: unknown, msg: string) => logged.push(msg), warn: () => undefined, info: () => undefined } as unknown as Logger;
  const r = new FileRegistry(dir, log);
  const s = await r.load();
  assert.equal([...s.frameworks.keys()], ['good']);
  assert.is(s.starts, 1);
  assert.is(r.lastLoad.quarantined, 2);
  assert.ok(logged.every((m) => /QUARANTINED/.test(m)) && logged.length === 2, 'each quarantined entry is logged');
  const q = readFileSync(path.join(dir, 'registry.quarantine'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: number; why: string });
  assert.equal(q.map((e) => e.line), [2, 3]);
  assert.match(q[1]!.why, /roles must name at least one role/);
  await r.append({ type: 'framework_added', framework_id: 'later', info: { user: 'u', name: 'n' }, at: 4 });
  await r.close();
  const again = await new FileRegistry(dir).load();
  assert.equal([...again.frameworks.keys()], ['good', 'later'], 'the next start is clean');
}));

test('an invalid event is refused at append and nothing is written', withDir(async (dir) => {
  const r = new FileRegistry(dir);
  await r.load();
  try {
    await r.append({ type: 'framework_added', framework_id: '../x', info: { user: 'u', name: 'n' }, at: 1 });
    assert.unreachable('must refuse');
  } catch (e) { assert.match((e as Error).message, /refusing to store/); }
  await r.close();
  assert.is(readFileSync(path.join(dir, 'registry.log'), 'utf8'), '');
}));

test('compaction: a snapshot plus a short tail gives the same state as the whole log; a crash before truncation double-applies nothing', withDir(async (dir) => {
  const r = new FileRegistry(dir, undefined, undefined, { compactEvery: 50 });
  await r.load();
  for (let i = 0; i < 120; i++) {
    await r.append({ type: 'framework_added', framework_id: `f${i}`, info: { user: 'u', name: `n${i}` }, at: i });
    if (i % 3 === 0) await r.append({ type: 'framework_removed', framework_id: `f${i}`, at: i });
  }
  await r.close();
  assert.ok(existsSync(path.join(dir, 'registry.snapshot')), 'a snapshot was written');
  const tail = readFileSync(path.join(dir, 'registry.log'), 'utf8').trim().split('\n').filter(Boolean).length;
  assert.ok(tail < 50, `the log holds only the tail (${tail} lines)`);
  const r2 = new FileRegistry(dir, undefined, undefined, { compactEvery: 50 });
  const s = await r2.load();
  await r2.close();
  assert.ok(r2.lastLoad.fromSnapshot);
  assert.is(s.frameworks.size, 80);
  assert.is(s.removedFrameworks.size, 40);
  // A crash after the snapshot rename but before the log was emptied: old lines are skipped by seq.
  const snapSeq = (JSON.parse(readFileSync(path.join(dir, 'registry.snapshot'), 'utf8')) as { seq: number }).seq;
  appendFileSync(path.join(dir, 'registry.log'), `${JSON.stringify({ seq: snapSeq, type: 'framework_removed', framework_id: 'f1', at: 1 })}\n`);
  const s3 = await new FileRegistry(dir).load();
  assert.ok(s3.frameworks.has('f1'), 'a line the snapshot already holds is not applied again');
}));

test.run();

test('the removed-framework ids the registry remembers are bounded: the oldest are forgotten first, a re-removed id counts as new', () => {
  const removed = new Set<string>();
  for (let i = 0; i < 10; i++) rememberRemoved(removed, `f${i}`, 4);
  assert.equal([...removed], ['f6', 'f7', 'f8', 'f9']);
  rememberRemoved(removed, 'f6', 4);
  rememberRemoved(removed, 'f10', 4);
  assert.equal([...removed], ['f8', 'f9', 'f6', 'f10']);
  // Replay applies the same bound as live removal.
  const s = emptyState();
  for (let i = 0; i < MAX_REMOVED_FRAMEWORKS + 3; i++) apply(s, { type: 'framework_removed', framework_id: `x${i}`, at: i });
  assert.is(s.removedFrameworks.size, MAX_REMOVED_FRAMEWORKS);
  assert.not.ok(s.removedFrameworks.has('x2'));
  assert.ok(s.removedFrameworks.has(`x${MAX_REMOVED_FRAMEWORKS + 2}`));
});
