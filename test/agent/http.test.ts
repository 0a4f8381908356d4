import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { symlinkSync, writeFileSync } from 'node:fs';
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
    assert.match((viaLink.body as { error: string }).error, /resolves outside its sandbox/);
    assert.equal((await get(h, '/files/read?task_id=web&path=link-in')).body, { data: 'ok', offset: 0 });
    assert.is((await get(h, '/files/read?task_id=web&path=missing')).status, 404);
    assert.is((await get(h, '/nope')).status, 404);
  } finally {
    await h.cleanup();
  }
});

test.run();
