/**
 * chaos: the bundled frameworks in cluster mode (`--nats`), SIGKILLed while
 * their tasks run and restarted "elsewhere" (another work dir: nothing local
 * survives, only the NATS KV bucket). The new process must come back as the
 * same framework, know every task its predecessor started, and then do more
 * work on that knowledge (Marathon scales the app up; batch finishes the job):
 * a process that forgot a task would start it again, and the task files
 * (tasks.ts) would show it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { checked, until } from './harness.js';
import { withNatsMaster, type Env } from './single.js';
import { json, type Proc } from './procs.js';
import { runs } from './tasks.js';

interface MasterState { frameworks: { id: string; name: string; tasks: { id: string; state: string }[] }[] }

const withCluster = (fn: (e: Env) => Promise<void>): Promise<void> => withNatsMaster('berth-fwchaos-', 'cpus:4;mem:2048', fn);

const running = async (url: string, fid: string): Promise<string[]> => {
  const s = await json<MasterState>(`${url}/state`).catch(() => ({ frameworks: [] }) as MasterState);
  return (s.frameworks.find((f) => f.id === fid)?.tasks ?? []).filter((t) => t.state === 'TASK_RUNNING').map((t) => t.id).sort();
};

async function post(url: string, body: unknown, method = 'POST'): Promise<void> {
  const r = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${await r.text()}`);
}

test('chaos: Marathon SIGKILLed under NATS resumes elsewhere from KV state: same framework id, no duplicate instance', () => withCluster(async (e) => {
  const start = (tag: string): Proc => e.procs.berth(tag, ['marathon', ...e.natsArgs, '--port', '0', '--work-dir', path.join(e.dir, tag)]);
  const a = start('marathon-a');
  const [, apiA, fid] = await a.waitFor(/berth marathon at (\S+) \(framework (\S+)\)/, 60_000);
  const cmd = `echo $$ >> ${e.marks}/$MESOS_TASK_ID.runs; exec sleep 600`;
  await post(`${apiA}/v2/apps`, { id: '/web', cmd, instances: 3, cpus: 0.05, mem: 16 });
  await until('3 instances running', async () => (await running(e.url, fid!)).length === 3, 60_000);
  const before = await running(e.url, fid!);
  await a.kill('SIGKILL');
  const b = start('marathon-b');
  const [, apiB, fidB] = await b.waitFor(/berth marathon at (\S+) \(framework (\S+)\)/, 60_000);
  assert.is(fidB, fid, 'the restarted Marathon subscribed as the same framework');
  const app = await json<{ app: { instances: number } }>(`${apiB}/v2/apps/web`);
  assert.is(app.app.instances, 3, 'the app definition came back from the KV store');
  // Act on what it recovered: scale to 4. A Marathon that forgot its instances would start 4 more.
  await post(`${apiB}/v2/apps/web`, { instances: 4 }, 'PUT');
  await until('4 instances running', async () => (await running(e.url, fid!)).length === 4, 60_000);
  await until('Marathon reports 4 running and no deployment', async () => {
    const x = await json<{ app: { tasksRunning: number; deployments: unknown[] } }>(`${apiB}/v2/apps/web`).catch(() => undefined);
    return x?.app.tasksRunning === 4 && x.app.deployments.length === 0;
  }, 60_000);
  const after = await running(e.url, fid!);
  assert.ok(before.every((t) => after.includes(t)), 'the 3 instances started before the SIGKILL still run');
  // RUNNING is reported once the task's process exists; its first line may still be on its way.
  await until('the 4 running instances wrote their files', () => runs(e.marks).size >= 4, 10_000);
  const started = runs(e.marks);
  assert.is(started.size, 4, 'exactly 4 instances were ever started');
  assert.equal([...started.values()], [1, 1, 1, 1], 'none started twice');
  checked(`Marathon ${fid} SIGKILLed with 3 instances; restarted on another work dir: same id, app read from KV, scaled to 4 by starting exactly 1 more`);
}));

test('chaos: the batch framework SIGKILLed under NATS resumes elsewhere from KV state: same framework id, no index run twice, none lost', () => withCluster(async (e) => {
  const start = (tag: string): Proc => e.procs.berth(tag, ['batch', ...e.natsArgs, '--port', '0', '--work-dir', path.join(e.dir, tag)]);
  const a = start('batch-a');
  const [, apiA, fid] = await a.waitFor(/batch API at (\S+) \(framework (\S+)\)/, 60_000);
  const cmd = `echo $$ >> ${e.marks}/idx-$BERTH_TASK_INDEX.runs; exec sleep 3`;
  await post(`${apiA}/v1/jobs`, { id: 'chaos', cmd, cpus: 0.05, mem: 16, completions: 6, parallelism: 3 });
  await until('the first 3 indices running', async () => (await running(e.url, fid!)).length === 3, 60_000);
  await a.kill('SIGKILL');
  const b = start('batch-b');
  const [, apiB, fidB] = await b.waitFor(/batch API at (\S+) \(framework (\S+)\)/, 60_000);
  assert.is(fidB, fid, 'the restarted batch framework subscribed as the same framework');
  await until('the job succeeds', async () => (await json<{ state: string }>(`${apiB}/v1/jobs/chaos`).catch(() => ({ state: '' }))).state === 'SUCCEEDED', 90_000);
  const started = runs(e.marks);
  assert.equal([...started.keys()].sort(), ['idx-0', 'idx-1', 'idx-2', 'idx-3', 'idx-4', 'idx-5'], 'every index ran');
  assert.equal([...started.values()], [1, 1, 1, 1, 1, 1], 'no index ran twice');
  checked(`batch ${fid} SIGKILLed with 3 of 6 indices running; restarted on another work dir: same id, job read from KV, SUCCEEDED with each index run exactly once`);
}));

test.run();
