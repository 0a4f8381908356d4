import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileRegistry } from '../../master/registry/file.js';

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

test('corruption before the last line fails loudly with the line number', withDir(async (dir) => {
  writeFileSync(path.join(dir, 'registry.log'), '{"type":"master_started","master_id":"m","at":1}\n{oops\n{"type":"master_started","master_id":"m","at":2}\n');
  try {
    await new FileRegistry(dir).load();
    assert.unreachable('corrupt registry must not load');
  } catch (e) {
    assert.match((e as Error).message, /line 2 is corrupt/);
  }
}));

test.run();
