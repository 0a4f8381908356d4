import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { ManualClock } from '../../proto/clock.js';
import type { StatusUpdateMessage, TaskState } from '../../proto/types.js';
import { Checkpoint, type UpdateRecord } from '../../agent/checkpoint.js';
import { StatusUpdateManager, type UpdateJournal } from '../../agent/status-update-manager.js';
import { FRAMEWORK, commandTask, settle, waitFor } from './fake-master.js';
import { startHarness, tempDir } from './harness.js';

class MemJournal implements UpdateJournal {
  readonly records: { tid: string; r: UpdateRecord; sync: boolean }[] = [];
  async appendUpdates(_fid: string, tid: string, records: UpdateRecord[], sync: boolean): Promise<void> {
    for (const r of records) this.records.push({ tid, r, sync });
  }
}

function upd(tid: string, state: TaskState): StatusUpdateMessage {
  return { framework_id: { value: 'fw' }, status: { task_id: { value: tid }, state } };
}

function setup(): { clock: ManualClock; journal: MemJournal; sent: { at: number; u: StatusUpdateMessage }[]; sum: StatusUpdateManager; closed: string[] } {
  const clock = new ManualClock(0);
  const journal = new MemJournal();
  const sent: { at: number; u: StatusUpdateMessage }[] = [];
  const closed: string[] = [];
  const sum = new StatusUpdateManager({ clock, journal, send: (u) => { sent.push({ at: clock.now(), u }); return true; }, onClosed: (_f, t) => closed.push(t) });
  return { clock, journal, sent, sum, closed };
}

test('an update is journaled (fsync) before it is sent and gets a 16-byte uuid', async () => {
  const { journal, sent, sum } = setup();
  await sum.update(upd('t', 'TASK_RUNNING'));
  assert.is(journal.records.length, 1);
  assert.ok(journal.records[0]!.sync, 'update records are synced');
  assert.is(sent.length, 1);
  assert.is(Buffer.from(sent[0]!.u.status.uuid!, 'base64').length, 16);
});

test('an unacknowledged update is resent with doubling intervals, capped', async () => {
  const { clock, sent, sum } = setup();
  await sum.update(upd('t', 'TASK_RUNNING'));
  clock.advance(400_000);
  const gaps = sent.slice(1).map((s, i) => s.at - sent[i]!.at);
  assert.equal(gaps.slice(0, 8), [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
  assert.ok(sent.every((s) => s.u.status.uuid === sent[0]!.u.status.uuid), 'same update each time');
});

test('only the head is in flight; order is preserved; duplicate and unknown acks are ignored', async () => {
  const { sent, sum } = setup();
  await sum.update(upd('t', 'TASK_STARTING'));
  await sum.update(upd('t', 'TASK_RUNNING'));
  await sum.update(upd('t', 'TASK_FINISHED'));
  await sum.update(upd('other', 'TASK_RUNNING'));
  assert.equal(sent.map((s) => s.u.status.state), ['TASK_STARTING', 'TASK_RUNNING'], 'one head per stream');
  const starting = sent[0]!.u.status.uuid!;
  assert.ok(await sum.acknowledge('fw', 't', starting));
  assert.not.ok(await sum.acknowledge('fw', 't', starting), 'duplicate ack ignored');
  assert.not.ok(await sum.acknowledge('fw', 't', 'bm9wZQ=='), 'unknown uuid ignored');
  assert.not.ok(await sum.acknowledge('fw', 'nope', starting), 'unknown task ignored');
  assert.equal(sent.map((s) => s.u.status.state), ['TASK_STARTING', 'TASK_RUNNING', 'TASK_RUNNING']);
});

test("a terminal update's ack closes the stream; resends happen at once on reconnection", async () => {
  const { clock, sent, sum, closed } = setup();
  await sum.update(upd('t', 'TASK_FINISHED'));
  clock.advance(500);
  sum.reconnected();
  assert.is(sent.length, 2, 'resent immediately on reconnection');
  assert.is(sent[1]!.at, 500);
  await sum.update(upd('t', 'TASK_RUNNING'));
  assert.is(sent.length, 2, 'nothing is produced after a terminal update');
  await sum.acknowledge('fw', 't', sent[0]!.u.status.uuid!);
  await settle();
  assert.equal(closed, ['t']);
  assert.not.ok(sum.has('fw', 't'));
  assert.is(clock.timers, 0, 'no retry timer left');
});

test('streams are rebuilt from the checkpoint: torn tail dropped, acked updates skipped', async () => {
  const dir = tempDir();
  try {
    const cp = new Checkpoint(dir);
    const a = upd('t', 'TASK_STARTING'); a.status.uuid = 'YQ==';
    const b = upd('t', 'TASK_RUNNING'); b.status.uuid = 'Yg==';
    await cp.appendUpdates('fw', 't', [{ type: 'update', update: a }, { type: 'ack', uuid: 'YQ==' }, { type: 'update', update: b }], true);
    const { appendFileSync } = await import('node:fs');
    appendFileSync(cp.logFile, '{"t":"upd');
    const rec = await new Checkpoint(dir).recover();
    const { sum, sent } = setup();
    sum.recover('fw', 't', rec.tasks[0]!.updates);
    sum.reconnected();
    assert.equal(sent.map((s) => s.u.status.uuid), ['Yg==']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent: a framework that never acknowledges sees the update resent with growing intervals (injected clock)', async () => {
  const clock = new ManualClock(1_000_000);
  const h = await startHarness({ clock, master: { autoAck: false } });
  try {
    h.master.now = () => clock.now();
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('slow-ack', 'sleep 300'));
    await waitFor(() => h.master.updates.length === 1, 'first STARTING');
    for (let i = 0; i < 6; i++) {
      clock.advance(1000 * 2 ** i);
      const n = i + 2;
      await waitFor(() => h.master.updates.length >= n, `resend ${i + 1}`);
    }
    const at = h.master.updates.map((u) => u.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    assert.equal(gaps, [1000, 2000, 4000, 8000, 16000, 32000]);
    assert.ok(h.master.updates.every((u) => u.msg.status.state === 'TASK_STARTING'), 'RUNNING waits behind the unacked STARTING');
    h.master.ack(h.master.updates[0]!.msg);
    await waitFor(() => h.master.states('slow-ack').includes('TASK_RUNNING'), 'RUNNING after the ack');
    assert.is(h.agent.taskPid(FRAMEWORK.id!.value, 'slow-ack') !== undefined, true);
  } finally {
    await h.cleanup();
  }
});

test.run();
