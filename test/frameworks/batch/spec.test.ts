/**
 * Job specs, arrays, queues and the DAG check as pure functions: table-driven, each case naming
 * the field a user would be told about.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cronError, nextFire } from '../../../frameworks/batch/cron.js';
import { findCycle } from '../../../frameworks/batch/dag.js';
import { normalizeQueue, parseQueuesFlag, Queues } from '../../../frameworks/batch/queues.js';
import { indexAt, normalizeJob, parseArray, parseSubmission, positionOf, SpecError } from '../../../frameworks/batch/spec.js';
import { exitCodeOf, parseTaskId, taskIdOf } from '../../../frameworks/batch/model.js';

const t = suite('batch specs');
const ok = { cmd: 'true', cpus: 0.1, mem: 32 };

t('arrays expand Slurm-style lists into ranges without materialising indices', () => {
  assert.equal(parseArray('0-999'), { ranges: [[0, 999]], count: 1000 });
  assert.equal(parseArray('1,3,5-7'), { ranges: [[1, 1], [3, 3], [5, 7]], count: 5 });
  assert.equal(parseArray('0-4,5-9'), { ranges: [[0, 9]], count: 10 }, 'adjacent ranges merge');
  const l = parseArray('10-12,20-21');
  assert.equal([0, 1, 2, 3, 4].map((i) => indexAt(l, i)), [10, 11, 12, 20, 21]);
  assert.is(positionOf(l, 20), 3);
  assert.is(positionOf(l, 15), -1);
});

t('bad specs are refused with the field named', () => {
  const cases: [unknown, string][] = [
    [{ ...ok, cpus: 0 }, 'cpus'],
    [{ ...ok, mem: '32' }, 'mem'],
    [{ cpus: 1, mem: 1 }, 'cmd'],
    [{ ...ok, id: 'Bad/Id' }, 'id'],
    [{ ...ok, array: '9-1' }, 'array'],
    [{ ...ok, array: '0-200000' }, 'array'],
    [{ ...ok, array: '0-9', completions: 10 }, 'completions'],
    [{ ...ok, parallelism: 0 }, 'parallelism'],
    [{ ...ok, retries: -1 }, 'retries'],
    [{ ...ok, env: { 'BAD-NAME': 'x' } }, 'env.BAD-NAME'],
    [{ ...ok, labels: { a: 1 } }, 'labels.a'],
    [{ ...ok, dependsOn: ['x', 'x'] }, 'dependsOn'],
    [{ ...ok, id: 'me', dependsOn: ['me'] }, 'dependsOn'],
    [{ ...ok, gang: true, completions: 4, parallelism: 2 }, 'parallelism'],
    [{ ...ok, schedule: { cron: 'every day' } }, 'schedule.cron'],
    [{ ...ok, schedule: { cron: '0 * * * *', timeZone: 'Mars/Olympus' } }, 'schedule.timeZone'],
    [{ ...ok, schedule: { cron: '0 * * * *', concurrencyPolicy: 'Sometimes' } }, 'schedule.concurrencyPolicy'],
    [{ ...ok, cpu: 1 }, 'cpu'],
  ];
  for (const [raw, field] of cases) {
    try {
      normalizeJob(raw, '', cronError);
      assert.unreachable(`accepted ${JSON.stringify(raw)}`);
    } catch (e) {
      assert.instance(e, SpecError, JSON.stringify(raw));
      assert.is((e as SpecError).field, field, (e as Error).message);
    }
  }
});

t('defaults are filled in', () => {
  const j = normalizeJob({ ...ok, array: '5-9' }, '', cronError);
  assert.is(j.completions, 5);
  assert.is(j.parallelism, 5);
  assert.is(j.queue, 'default');
  assert.is(j.retries, 0);
  assert.is(j.onParentFailure, 'fail');
});

t('submissions parse as JSON or YAML, one job or many; malformed text is BAD_MESSAGE', () => {
  assert.is(parseSubmission('{"cmd":"true"}').length, 1);
  assert.is(parseSubmission('[{"cmd":"a"},{"cmd":"b"}]').length, 2);
  assert.is(parseSubmission('jobs:\n  - cmd: a\n  - cmd: b\n', 'application/yaml').length, 2);
  assert.is(parseSubmission('cmd: true\ncpus: 1\n').length, 1);
  assert.throws(() => parseSubmission('{"cmd": '), (e: Error & { code?: string }) => e.code === 'BAD_MESSAGE');
  assert.throws(() => parseSubmission('42'), (e: Error & { code?: string }) => e.code === 'BAD_MESSAGE');
});

t('the DAG check names the cycle', () => {
  assert.is(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), undefined);
  assert.equal(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), ['a', 'b', 'c', 'a']);
  assert.equal(findCycle(new Map([['x', ['y']], ['y', ['y']]])), ['y', 'y']);
});

t('cron expressions are read in their time zone', () => {
  assert.is(cronError('0 9 * * *', 'UTC'), undefined);
  assert.ok(cronError('61 * * * *', 'UTC'));
  // 09:00 in New York on 2026-11-26 (EST, UTC-5) is 14:00 UTC.
  assert.is(nextFire('0 9 * * *', 'America/New_York', Date.UTC(2026, 10, 26, 12, 0)), Date.UTC(2026, 10, 26, 14, 0));
});

t('queues: weighted dominant share picks the lowest, caps bound, names are checked', () => {
  const q = new Queues([{ name: 'a', weight: 3 }, { name: 'b', weight: 1 }]);
  const a = q.get('a')!; const b = q.get('b')!;
  a.used.cpus = 3; b.used.cpus = 1;
  const total = { cpus: 10, mem: 1000 };
  assert.ok(Math.abs(q.share(a, total) - q.share(b, total)) < 1e-12, '3:1 usage at weights 3:1 is an equal share');
  b.used.mem = 500; // b's dominant resource is now mem
  assert.is(q.pick([a, b], total), a);
  assert.equal(parseQueuesFlag('x:2,y'), [{ name: 'x', weight: 2 }, { name: 'y', weight: 1 }]);
  assert.throws(() => normalizeQueue('ok', { weight: 0 }), /weight/);
  assert.throws(() => normalizeQueue('Bad Name', {}), /queue name/);
  const capped = new Queues([{ name: 'c', weight: 1, maxTasks: 1 }]).get('c')!;
  assert.ok(new Queues().fits(capped, 1, 1));
  capped.used.tasks = 1;
  assert.not.ok(new Queues().fits(capped, 1, 1));
});

t('task ids carry job, index and attempt; exit codes are read from agent messages', () => {
  assert.equal(parseTaskId(taskIdOf('render-1', 42, 3)), { jobId: 'render-1', index: 42, attempt: 3 });
  assert.is(parseTaskId('someone-else'), undefined);
  assert.is(exitCodeOf('Command exited with status 3'), 3);
  assert.is(exitCodeOf('Killed by signal 9'), undefined);
});

t.run();
