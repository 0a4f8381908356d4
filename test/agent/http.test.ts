import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { commandTask, waitFor } from './fake-master.js';
import { startHarness, type Harness } from './harness.js';

async function get(h: Harness, path: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://${h.agent.endpoint}${path}`);
  return { status: res.status, body: await res.json() };
}

test('agent HTTP: health, state, statistics, sandbox reads and refused escapes', async () => {
  const h = await startHarness();
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('web', 'echo line1; echo line2; sleep 300', { mem: 64, cpus: 0.5 }));
    await waitFor(() => h.master.states('web').includes('TASK_RUNNING'), 'RUNNING');
    const sandbox = (h.agent.stateView().tasks as { sandbox: string }[])[0]!.sandbox;
    await waitFor(async () => ((await get(h, `/files/read?path=${encodeURIComponent(join(sandbox, 'stdout'))}`)).body as { data: string }).data === 'line1\nline2\n', 'stdout readable');

    assert.equal((await get(h, '/health')).body, { status: 'ok', state: 'running', agent_id: 'agent-1' });
    const state = (await get(h, '/state')).body as { id: string; tasks: { id: string; state: string }[] };
    assert.is(state.id, 'agent-1');
    assert.equal(state.tasks.map((t) => [t.id, t.state]), [['web', 'TASK_RUNNING']]);

    const stats = (await get(h, '/monitor/statistics')).body as { framework_id: string; executor_id: string; statistics: Record<string, number> }[];
    assert.is(stats.length, 1);
    assert.is(stats[0]!.executor_id, 'web');
    assert.is(stats[0]!.statistics.cpus_limit, 0.5);
    assert.is(stats[0]!.statistics.mem_limit_bytes, 64 * 1024 * 1024);
    assert.ok(stats[0]!.statistics.mem_rss_bytes! > 0, 'rss measured');
    assert.ok(stats[0]!.statistics.processes! >= 1);

    // Paging: offset/length, work-dir relative path, task-relative path, and size probe with offset -1.
    const rel = relative(h.workDir, join(sandbox, 'stdout'));
    assert.equal((await get(h, `/files/read?path=${encodeURIComponent(rel)}&offset=6&length=5`)).body, { data: 'line2', offset: 6 });
    assert.equal((await get(h, '/files/read?task_id=web&path=stdout&offset=-1')).body, { data: '', offset: 12 });
    const listing = (await get(h, `/files/browse?path=${encodeURIComponent(sandbox)}`)).body as { path: string }[];
    assert.equal(listing.map((e) => e.path.split('/').pop()), ['stderr', 'stdout']);

    // Escapes.
    const dotdot = await get(h, `/files/read?path=${encodeURIComponent(sandbox + '/../../../../../../meta/agent.json')}`);
    assert.is(dotdot.status, 403);
    assert.match((dotdot.body as { error: string }).error, /'\.\.'/);
    assert.is((await get(h, '/files/read?path=/etc/passwd')).status, 403);
    assert.is((await get(h, '/files/read?task_id=web&path=../../../meta/agent.json')).status, 403);
    symlinkSync('/etc', join(sandbox, 'escape'));
    writeFileSync(join(sandbox, 'inside'), 'ok');
    symlinkSync(join(sandbox, 'inside'), join(sandbox, 'link-in'));
    const viaLink = await get(h, '/files/read?task_id=web&path=escape/passwd');
    assert.is(viaLink.status, 403);
    assert.match((viaLink.body as { error: string }).error, /links are never followed/);
    // Not even a link that stays inside is followed: whether it does can change after any check.
    assert.is((await get(h, '/files/read?task_id=web&path=link-in')).status, 403);
    assert.equal((await get(h, '/files/read?task_id=web&path=inside')).body, { data: 'ok', offset: 0 });
    assert.is((await get(h, '/files/read?task_id=web&path=missing')).status, 404);
    assert.is((await get(h, '/nope')).status, 404);
  } finally {
    await h.cleanup();
  }
});

test('10,000 reads of a path a process keeps swapping between a file and a symlink to a root-only file never return a byte of it', async () => {
  const h = await startHarness();
  const secretDir = mkdtempSync(join(tmpdir(), 'berth-secret-'));
  let swapper: ChildProcess | undefined;
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    const secret = join(secretDir, 'secret');
    writeFileSync(secret, 'TOP-SECRET', { mode: 0o600 });
    h.master.launch(commandTask('racer', 'sleep 300'));
    let sandbox = '';
    await waitFor(() => { sandbox = ((h.agent.stateView().tasks as { id: string; sandbox: string }[]).find((t) => t.id === 'racer')?.sandbox) ?? ''; return sandbox !== '' && existsSync(join(sandbox, 'stdout')); }, 'sandbox');
    mkdirSync(join(sandbox, 'real'));
    writeFileSync(join(sandbox, 'real', 'f'), 'inside');
    // A real process flips `f` (a file or a link to the secret) and `d` (a directory or a link to
    // the secret's directory) as fast as it can, atomically by rename.
    swapper = spawn('/bin/sh', ['-c', `cd "$1" && while :; do
      ln -sfn "$2" l1 && mv -T l1 f; echo inside > t1 && mv -T t1 f
      ln -sfn "$3" l2 && mv -T l2 d; rm -rf d2; cp -r real d2 && mv -T d2 d 2>/dev/null
    done`, 'swapper', sandbox, secret, secretDir], { stdio: 'ignore', detached: true });
    let leaked = 0; let served = 0;
    for (let i = 0; i < 10_000; i++) {
      const path = i % 2 === 0 ? 'f' : 'd/secret';
      const r = await get(h, `/files/read?task_id=racer&path=${path}`);
      if (r.status === 200) served++;
      if (JSON.stringify(r.body).includes('TOP-SECRET')) leaked++;
    }
    assert.is(leaked, 0, 'no byte of the secret was served');
    assert.ok(served > 0, 'the race was real: some reads hit the regular file');
  } finally {
    if (swapper?.pid) { try { process.kill(-swapper.pid, 'SIGKILL'); } catch { /* gone */ } }
    await h.cleanup();
    rmSync(secretDir, { recursive: true, force: true });
  }
});

test.run();
