/**
 * Trace readers on small synthetic files in the real column layouts: Google
 * cluster-data 2011 task_events (13 columns) and Alibaba cluster-trace-v2018
 * batch_task (9 columns).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError } from '../../proto/errors.js';
import { readAlibaba2018, readGoogle2011 } from '../../bench/binpack/traces.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/sim/fixtures');

test('Google 2011 task_events: arrival at SUBMIT, duration SCHEDULE→terminal, requests scaled to the machine, production priority is a service', async () => {
  const { workload, skipped } = await readGoogle2011(path.join(fixtures, 'google-2011-task_events.csv'), { machine: { cpus: 32, mem: 65536 } });
  const byId = new Map(workload.tasks.map((t) => [t.id, t]));
  assert.equal([...byId.keys()].sort(), ['g-6000-0', 'g-6000-1', 'g-7000-0']);
  const t0 = byId.get('g-6000-0')!;
  assert.is(t0.arrival, 0, 'first SUBMIT (timestamp 0, before the trace) is time 0');
  assert.is(t0.duration, 120_000, 'SCHEDULE at 600 s, FINISH at 720 s');
  assert.is(t0.cpus, 2, '0.0625 of a 32-core machine');
  assert.is(t0.mem, Math.round(0.03 * 65536));
  assert.is(t0.cls, 'batch');
  const t1 = byId.get('g-6000-1')!;
  assert.is(t1.arrival, 601_000);
  assert.is(t1.duration, 60_000, 'KILL ends a task too');
  const svc = byId.get('g-7000-0')!;
  assert.is(svc.cls, 'service', 'priority 10 and never terminated');
  assert.is(svc.duration, Infinity);
  assert.is(skipped['column count is not 13'], 1);
  assert.is(skipped['no cpu or memory request'], 1);
  assert.is(workload.tasks[0]!.id, 'g-6000-0', 'sorted by arrival');
});

test('Alibaba 2018 batch_task: instance_num tasks per row at start_time for end−start seconds, plan_cpu 100 = 1 core, plan_mem normalised', async () => {
  const { workload, skipped } = await readAlibaba2018(path.join(fixtures, 'alibaba-2018-batch_task.csv'), { machine: { cpus: 96, mem: 100_000 } });
  assert.is(workload.tasks.length, 13, '10 + 2 + 1 instances');
  const m1 = workload.tasks.filter((t) => t.job === 'a-j_1' && t.id.includes('-M1-'));
  assert.is(m1.length, 10);
  assert.is(m1[0]!.arrival, 0, 'the earliest start is time 0');
  assert.is(m1[0]!.duration, 60_000);
  assert.is(m1[0]!.cpus, 0.5);
  assert.is(m1[0]!.mem, 390, '0.39% of 100,000 MB');
  const r2 = workload.tasks.find((t) => t.id === 'a-j_1-R2_1-0')!;
  assert.is(r2.arrival, 60_000);
  assert.is(r2.cpus, 1);
  assert.is(skipped['no positive duration'], 1, 'a running task has end_time 0');
  assert.is(skipped['instance_num not a positive integer'], 1);
  assert.ok(workload.tasks.every((t) => t.cls === 'batch'));
});

test('a trace file with no usable row is an error naming the file and the first bad line', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-trace-'));
  try {
    const file = path.join(dir, 'bad.csv');
    await writeFile(file, 'a,b,c\n');
    try {
      await readAlibaba2018(file);
      assert.unreachable('should have thrown');
    } catch (e) {
      assert.instance(e, BerthError);
      assert.match((e as Error).message, file);
      assert.match((e as Error).message, 'line 1: 3 columns');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
