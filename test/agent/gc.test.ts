/**
 * Sandbox GC (agent/gc.ts) through a real agent and real tasks: finished sandboxes go after the
 * delay, young ones stay and remain readable through /files; a disk above the watermark makes
 * the oldest go first; a live task's sandbox is never collected.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../proto/clock.js';
import { commandTask, waitFor } from './fake-master.js';
import { startHarness, type Harness } from './harness.js';

const sandboxes = (h: Harness, tid: string): string[] => {
  const runs = join(h.workDir, 'frameworks', 'fw-1', 'executors', tid, 'runs');
  return existsSync(runs) ? readdirSync(runs).map((c) => join(runs, c)) : [];
};

async function finish(h: Harness, tid: string): Promise<string> {
  h.master.launch(commandTask(tid, 'echo out'));
  await waitFor(() => h.master.states(tid).includes('TASK_FINISHED'), `${tid} FINISHED`);
  await waitFor(() => h.agent.gc.pending > 0 && sandboxes(h, tid).length === 1 && !(h.agent.stateView().tasks as { id: string }[]).some((t) => t.id === tid), `${tid} forgotten`);
  return sandboxes(h, tid)[0]!;
}

test('GC removes sandboxes older than --gc-delay and keeps younger ones (readable meanwhile) and live ones', async () => {
  const clock = new ManualClock(1_000_000);
  const h = await startHarness({ agent: { gcClock: clock, gcDelayMs: 3_600_000, gcCheckMs: 60_000, diskWatermarkGc: 1 } });
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    const old = await finish(h, 'old');
    h.master.launch(commandTask('live', 'sleep 300'));
    await waitFor(() => h.master.states('live').includes('TASK_RUNNING'), 'live RUNNING');
    clock.advance(3_000_000);
    const young = await finish(h, 'young');
    assert.ok(existsSync(old) && existsSync(young));
    const res = await fetch(`http://${h.agent.endpoint}/files/read?path=${encodeURIComponent(join(old, 'stdout'))}`);
    assert.equal(await res.json(), { data: 'out\n', offset: 0 }, 'a finished sandbox is readable within the delay');
    clock.advance(700_000); // old: 3.7 ks after its end; young: 0.7 ks
    await h.agent.gc.run();
    assert.not.ok(existsSync(old), 'the old sandbox is gone');
    assert.not.ok(existsSync(join(h.workDir, 'frameworks', 'fw-1', 'executors', 'old')), 'with its empty parents');
    assert.ok(existsSync(young), 'the young one stays');
    assert.is(sandboxes(h, 'live').length, 1, 'a live task\'s sandbox is never collected');
  } finally {
    await h.cleanup();
  }
});

test('above the disk watermark the oldest finished sandboxes go before their delay', async () => {
  const clock = new ManualClock(1_000_000);
  let usage = 0.5;
  const h = await startHarness({ agent: { gcClock: clock, gcDelayMs: 3_600_000, diskWatermarkGc: 0.8 } });
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    const a = await finish(h, 'a');
    clock.advance(1000);
    const b = await finish(h, 'b');
    // The real filesystem's usage is the host's; the GC's reading of it is what this test sets.
    (h.agent.gc as unknown as { o: { diskUsage: () => Promise<number> } }).o.diskUsage = async () => usage;
    await h.agent.gc.run();
    assert.ok(existsSync(a) && existsSync(b), 'below the watermark nothing goes early');
    usage = 0.85;
    const gc = h.agent.gc as unknown as { o: { diskUsage: () => Promise<number> } };
    gc.o.diskUsage = async () => { const u = usage; usage = 0.75; return u; };
    await h.agent.gc.run();
    assert.not.ok(existsSync(a), 'the oldest went');
    assert.ok(existsSync(b), 'and only as many as needed');
  } finally {
    await h.cleanup();
  }
});

test.run();
