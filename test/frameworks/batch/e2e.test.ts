/**
 * The batch framework end to end with real processes: a master, `berth agent` processes running
 * real tasks in real sandboxes, and the framework behind its REST API. Each test names the
 * behaviour a user relies on; outcomes are checked from the API and from the sandboxes' files.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../../proto/clock.js';
import type { BatchEvent } from '../../../frameworks/batch/engine.js';
import { call, exited, job, sandboxStdouts, spawnBatch, startBatchCluster, until, waitJob, type BatchCluster } from './cluster.js';

let c: BatchCluster | undefined;
const scratch: string[] = [];
const tmp = (): string => { const d = mkdtempSync(path.join(tmpdir(), 'berth-batch-t-')); scratch.push(d); return d; };

const t = suite('batch framework end to end (real processes)');
t.after.each(async () => {
  await c?.stop();
  c = undefined;
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

t('a 1,000-task job (completions 1000, parallelism 50) runs every index exactly once to success, as the sandboxes show', async () => {
  c = await startBatchCluster({ agents: ['cpus:2.5;mem:2048;disk:1000', 'cpus:2.5;mem:2048;disk:1000'] });
  await call(c.api, 'POST', '/v1/jobs', { id: 'thousand', cmd: 'echo "index=$BERTH_TASK_INDEX of $BERTH_ARRAY_SIZE"', cpus: 0.1, mem: 32, completions: 1000, parallelism: 50 });
  const j = await waitJob(c.api, 'thousand', 300_000);
  assert.is(j.state, 'SUCCEEDED', JSON.stringify(j.counts));
  assert.is(j.counts.SUCCEEDED, 1000);
  assert.ok(j.indices.every((i) => i.attempts.length === 1), 'one attempt per index');
  const seen = new Map<number, number>();
  for (const text of sandboxStdouts(c.dir).values()) {
    const m = /^index=(\d+) of 1000\n$/.exec(text);
    if (m) seen.set(Number(m[1]), (seen.get(Number(m[1])) ?? 0) + 1);
  }
  assert.is(seen.size, 1000, 'every index ran');
  assert.ok([...seen.values()].every((n) => n === 1), 'no index ran twice');
});

t('an index that fails twice then succeeds shows 3 attempts, and only that index retried', async () => {
  c = await startBatchCluster({ agents: ['cpus:2;mem:2048'] });
  const d = tmp();
  // A counter file per index outside the sandbox: index 7 exits 1 on its first two runs.
  const cmd = `f=${d}/c$BERTH_TASK_INDEX; n=$(cat $f 2>/dev/null || echo 0); echo $((n+1)) > $f; [ "$BERTH_TASK_INDEX" != 7 ] || [ $n -ge 2 ]`;
  await call(c.api, 'POST', '/v1/jobs', { id: 'flaky', cmd, cpus: 0.1, mem: 32, array: '0-9', retries: 3, backoffSeconds: 0.05 });
  const j = await waitJob(c.api, 'flaky', 60_000);
  assert.is(j.state, 'SUCCEEDED');
  const i7 = j.indices.find((i) => i.index === 7)!;
  assert.is(i7.attempts.length, 3);
  assert.equal(i7.attempts.map((a) => a.exitCode), [1, 1, 0]);
  assert.ok(j.indices.filter((i) => i.index !== 7).every((i) => i.attempts.length === 1), 'the other indices ran once');
  // Exponential backoff: the second retry waited at least twice the first.
  const [a1, a2, a3] = i7.attempts;
  assert.ok(a2!.launchedAt - a1!.endedAt! >= 40 && a3!.launchedAt - a2!.endedAt! >= 90, 'backoff 50 ms then 100 ms');
});

t('a 3-job DAG runs in order, and a failed parent fails its child with the reason', async () => {
  c = await startBatchCluster({ agents: ['cpus:2;mem:2048'] });
  await call(c.api, 'POST', '/v1/jobs', `jobs:
  - { id: extract, cmd: "sleep 0.2", cpus: 0.1, mem: 32 }
  - { id: transform, cmd: "sleep 0.2", cpus: 0.1, mem: 32, dependsOn: [extract] }
  - { id: load, cmd: "true", cpus: 0.1, mem: 32, dependsOn: [transform] }
  - { id: broken, cmd: "exit 3", cpus: 0.1, mem: 32 }
  - { id: after-broken, cmd: "true", cpus: 0.1, mem: 32, dependsOn: [broken] }
`);
  const [e, tr, l] = [await waitJob(c.api, 'extract', 30_000), await waitJob(c.api, 'transform', 30_000), await waitJob(c.api, 'load', 30_000)];
  for (const j of [e, tr, l]) assert.is(j.state, 'SUCCEEDED', j.id);
  const first = (j: typeof e): number => Math.min(...j.indices.map((i) => i.attempts[0]!.launchedAt));
  const last = (j: typeof e): number => Math.max(...j.indices.map((i) => i.attempts.at(-1)!.endedAt!));
  assert.ok(first(tr) >= last(e), 'transform started after extract ended');
  assert.ok(first(l) >= last(tr), 'load started after transform ended');
  const child = await waitJob(c.api, 'after-broken', 30_000);
  assert.is(child.state, 'FAILED');
  assert.match(child.reason ?? '', /dependency 'broken' FAILED/);
  assert.ok(child.indices.every((i) => i.attempts.length === 0), 'the child never ran');
});

t('a cron job fires on schedule under the injected clock, and Forbid skips a run that would overlap', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 26, 8, 59, 30));
  c = await startBatchCluster({ agents: ['cpus:2;mem:2048'], clock });
  const events: BatchEvent[] = [];
  c.batch!.engine.on((e) => events.push(e));
  const d = tmp();
  // 10:00 in Paris is 09:00 UTC in November.
  await call(c.api, 'POST', '/v1/jobs', { id: 'nightly', cmd: `touch ${d}/ran-$BERTH_JOB_ID; while [ ! -f ${d}/go ]; do sleep 0.05; done`, cpus: 0.1, mem: 32, schedule: { cron: '0 10 * * *', timeZone: 'Europe/Paris', concurrencyPolicy: 'Forbid' } });
  clock.advance(20_000);
  assert.is(events.filter((e) => e.type === 'cron').length, 0, 'nothing before 10:00 Paris');
  clock.advance(10_000);
  const fired = events.find((e) => e.type === 'cron' && e.action === 'fired') as Extract<BatchEvent, { type: 'cron' }> | undefined;
  assert.ok(fired, 'fired at 09:00 UTC');
  assert.is(fired!.at, Date.UTC(2026, 10, 26, 9, 0, 0));
  await until(() => existsSync(path.join(d, `ran-${fired!.run}`)), 30_000, 'the run to start a real task');
  clock.advance(24 * 3600_000);
  const skipped = events.find((e) => e.type === 'cron' && e.action === 'skipped') as Extract<BatchEvent, { type: 'cron' }> | undefined;
  assert.ok(skipped, 'the next day is skipped while the first run still runs');
  assert.match(skipped!.reason ?? '', /Forbid/);
  writeFileSync(path.join(d, 'go'), '');
  const run = await waitJob(c.api, fired!.run!, 30_000);
  assert.is(run.state, 'SUCCEEDED');
  const cron = (await call<{ runs: string[] }>(c.api, 'GET', '/v1/jobs/nightly')).body;
  assert.equal(cron.runs, [fired!.run]);
});

t('a gang of 4 x 1 cpu with 3 free cpus starts no task until a 4th cpu frees, then starts all 4 together', async () => {
  c = await startBatchCluster({ agents: ['cpus:4;mem:4096'], gangHoldMs: 60_000 });
  const d = tmp();
  await call(c.api, 'POST', '/v1/jobs', { id: 'blocker', cmd: `while [ ! -f ${d}/free ]; do sleep 0.05; done`, cpus: 1, mem: 32 });
  await until(async () => (await job(c!.api, 'blocker')).counts.RUNNING === 1, 30_000, 'the blocker to run');
  await call(c.api, 'POST', '/v1/jobs', { id: 'mpi', cmd: 'sleep 0.2', cpus: 1, mem: 32, completions: 4, gang: true });
  await until(async () => /gang/.test((await job(c!.api, 'mpi')).waitingFor ?? ''), 30_000, 'the gang to hold offers');
  const held = await job(c.api, 'mpi');
  assert.ok(held.indices.every((i) => i.attempts.length === 0), 'no gang task started with 3 cpus free');
  writeFileSync(path.join(d, 'free'), '');
  const b = await waitJob(c.api, 'blocker', 30_000);
  const g = await waitJob(c.api, 'mpi', 30_000);
  assert.is(g.state, 'SUCCEEDED');
  const launches = g.indices.map((i) => i.attempts[0]!.launchedAt);
  assert.ok(Math.max(...launches) - Math.min(...launches) < 50, 'all 4 launched in one round');
  assert.ok(Math.min(...launches) >= b.indices[0]!.attempts[0]!.endedAt! - 5, 'after the blocker freed its cpu');
});

t('two competing gangs on too few cpus for both never deadlock: each starts whole and both finish', async () => {
  c = await startBatchCluster({ agents: ['cpus:2;mem:2048', 'cpus:2;mem:2048'], gangHoldMs: 500 });
  await call(c.api, 'POST', '/v1/jobs', [
    { id: 'gang-a', cmd: 'sleep 0.3', cpus: 1, mem: 32, completions: 3, gang: true },
    { id: 'gang-b', cmd: 'sleep 0.3', cpus: 1, mem: 32, completions: 3, gang: true },
  ]);
  const a = await waitJob(c.api, 'gang-a', 60_000);
  const b = await waitJob(c.api, 'gang-b', 60_000);
  for (const g of [a, b]) {
    assert.is(g.state, 'SUCCEEDED', g.id);
    const l = g.indices.map((i) => i.attempts[0]!.launchedAt);
    assert.ok(Math.max(...l) - Math.min(...l) < 50, `${g.id} launched whole`);
  }
  // The second gang may start while the first one's last task still runs (1 + 3 cpus fit in
  // 4): what must never happen is a gang half-started, which the launch spread above rules out.
});

t('two queues weighted 3:1 under contention receive cpu-seconds within 10% of 3:1', async () => {
  c = await startBatchCluster({ agents: ['cpus:4;mem:4096'], queues: [{ name: 'research', weight: 3 }, { name: 'adhoc', weight: 1 }] });
  await call(c.api, 'POST', '/v1/jobs', [
    { id: 'r', cmd: 'sleep 0.5', cpus: 0.5, mem: 32, completions: 80, queue: 'research' },
    { id: 'a', cmd: 'sleep 0.5', cpus: 0.5, mem: 32, completions: 80, queue: 'adhoc' },
  ]);
  // Contention lasts while both queues still have tasks waiting: until the first one launches its last task.
  const r = await waitJob(c.api, 'r', 120_000);
  const a = await job(c.api, 'a');
  await call(c.api, 'DELETE', '/v1/jobs/a');
  const lastLaunch = (j: typeof r): number => Math.max(...j.indices.flatMap((i) => i.attempts.map((x) => x.launchedAt)));
  const t0 = Math.min(...r.indices.map((i) => i.attempts[0]!.launchedAt));
  const t1 = Math.min(lastLaunch(r), lastLaunch(a));
  const cpuSeconds = (j: typeof r): number => j.indices.flatMap((i) => i.attempts).reduce((s, x) => {
    if (x.startedAt === undefined) return s;
    const lo = Math.max(t0, x.startedAt); const hi = Math.min(t1, x.endedAt ?? t1);
    return s + Math.max(0, hi - lo) * 0.5 / 1000;
  }, 0);
  const ratio = cpuSeconds(r) / cpuSeconds(a);
  assert.ok(t1 - t0 > 3000, `a contention window of some seconds (${t1 - t0} ms)`);
  assert.ok(Math.abs(ratio - 3) <= 0.3, `cpu-seconds ratio ${ratio.toFixed(2)} (research ${cpuSeconds(r).toFixed(1)}, adhoc ${cpuSeconds(a).toFixed(1)})`);
});

t('the framework SIGKILLed mid-job and restarted loses no task and runs none twice', async () => {
  c = await startBatchCluster({ agents: ['cpus:2;mem:2048', 'cpus:2;mem:2048'], inProcess: false });
  const work = path.join(c.dir, 'batch');
  let b = await spawnBatch(c.hostPort, work);
  try {
    await call(b.api, 'POST', '/v1/jobs', { id: 'survivor', cmd: 'echo "i=$BERTH_TASK_INDEX"; sleep 0.3', cpus: 0.1, mem: 32, completions: 200, parallelism: 30 });
    await until(async () => (await job(b.api, 'survivor')).counts.SUCCEEDED! >= 40, 120_000, '40 indices done');
    await exited(b.child, 'SIGKILL');
    b = await spawnBatch(c.hostPort, work);
    const j = await waitJob(b.api, 'survivor', 180_000);
    assert.is(j.state, 'SUCCEEDED', JSON.stringify(j.counts));
    const seen = new Map<number, number>();
    for (const text of sandboxStdouts(c.dir).values()) {
      const m = /^i=(\d+)\n$/.exec(text);
      if (m) seen.set(Number(m[1]), (seen.get(Number(m[1])) ?? 0) + 1);
    }
    assert.is(seen.size, 200, 'no index lost');
    const twice = [...seen].filter(([, n]) => n > 1).map(([i]) => i);
    assert.equal(twice, [], 'no index ran twice');
    // Attempts that never reached the master do not count as runs.
    assert.ok(j.indices.every((i) => i.attempts.filter((a) => !a.free).length === 1));
  } finally {
    await exited(b.child);
  }
});

t('bad input: invalid spec 422 naming the field, malformed body 400, DAG cycle named, unknown queue, nothing partially created', async () => {
  c = await startBatchCluster({ agents: ['cpus:1;mem:1024'] });
  const bad = async (body: unknown): Promise<{ status: number; body: { error: string; field?: string } }> => call(c!.api, 'POST', '/v1/jobs', body, [400, 409, 413, 422]);
  let r = await bad({ cmd: 'true', cpus: -1, mem: 32 });
  assert.is(r.status, 422);
  assert.is(r.body.field, 'cpus');
  assert.match(r.body.error, /^cpus: must be > 0/);
  r = await bad({ cmd: 'true', cpus: 1, mem: 32, array: '5-1' });
  assert.is(r.status, 422);
  assert.match(r.body.error, /^array: range '5-1' is descending/);
  r = await bad({ cmd: 'true', cpus: 1, mem: 32, constraints: [['hostname', 'UNIQ']] });
  assert.is(r.status, 422);
  assert.match(r.body.error, /constraints\[0\]\[1\]/);
  r = await bad('{"cmd": "true", "cpus": ');
  assert.is(r.status, 400);
  r = await bad({ cmd: 'true', cpus: 1, mem: 32, queue: 'nope' });
  assert.is(r.status, 422);
  assert.match(r.body.error, /unknown queue 'nope' \(queues: default\)/);
  r = await bad([
    { id: 'a', cmd: 'true', cpus: 0.1, mem: 32, dependsOn: ['c'] },
    { id: 'b', cmd: 'true', cpus: 0.1, mem: 32, dependsOn: ['a'] },
    { id: 'c', cmd: 'true', cpus: 0.1, mem: 32, dependsOn: ['b'] },
  ]);
  assert.is(r.status, 422);
  assert.match(r.body.error, /dependency cycle: a → c → b → a/);
  r = await bad([{ id: 'fine', cmd: 'true', cpus: 0.1, mem: 32 }, { id: 'broken', cmd: '', cpus: 0.1, mem: 32 }]);
  assert.is(r.status, 422);
  assert.match(r.body.error, /^jobs\[1\]\.cmd: required/);
  const list = (await call<{ jobs: unknown[] }>(c.api, 'GET', '/v1/jobs')).body;
  assert.is(list.jobs.length, 0, 'nothing of a rejected submission was created');
  await call(c.api, 'POST', '/v1/jobs', { id: 'once', cmd: 'true', cpus: 0.1, mem: 32 });
  r = await bad({ id: 'once', cmd: 'true', cpus: 0.1, mem: 32 });
  assert.is(r.status, 409);
  assert.is((await call(c.api, 'GET', '/v1/jobs/missing', undefined, [404])).status, 404);
});

t('events stream a job\'s progress as SSE; logs read a task\'s stdout and stderr from its agent\'s sandbox through the API and the CLI', async () => {
  c = await startBatchCluster({ agents: ['cpus:1;mem:1024'] });
  // Server-Sent Events: the job's progress as it happens.
  const ac = new AbortController();
  const events = await fetch(`${c.api}/v1/events?job=talk`, { signal: ac.signal });
  assert.is(events.headers.get('content-type'), 'text/event-stream');
  let sse = '';
  const reading = (async () => {
    const dec = new TextDecoder();
    try { for await (const chunk of events.body!) { sse += dec.decode(chunk as Uint8Array); if (/"state":"SUCCEEDED","counts"/.test(sse)) break; } } catch { /* aborted */ }
  })();
  await call(c.api, 'POST', '/v1/jobs', { id: 'talk', cmd: 'echo "out $BERTH_TASK_INDEX"; echo "err $BERTH_TASK_INDEX" >&2', cpus: 0.1, mem: 32, array: '3-4' });
  await waitJob(c.api, 'talk', 30_000);
  await Promise.race([reading, new Promise((r) => setTimeout(r, 5000))]);
  ac.abort();
  assert.match(sse, /event: job\ndata: \{"type":"job","id":"talk","state":"PENDING"/);
  assert.match(sse, /event: index\ndata: \{"type":"index","job":"talk","index":4,"state":"SUCCEEDED","attempt":1,"exitCode":0\}/);
  assert.match(sse, /"id":"talk","state":"SUCCEEDED"/);
  const out = await (await fetch(`${c.api}/v1/jobs/talk/logs?index=4`)).text();
  assert.is(out, 'out 4\n');
  const err = await (await fetch(`${c.api}/v1/jobs/talk/logs?index=3&stream=stderr`)).text();
  assert.match(err, /err 3\n$/);
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { cli } = await import('./cluster.js');
  const r = await promisify(execFile)(process.execPath, [cli, 'job', '--api', c.api, 'logs', 'talk', '--index', '3']);
  assert.is(r.stdout, 'out 3\n');
  const ls = await promisify(execFile)(process.execPath, [cli, 'job', '--api', c.api, 'ls']);
  assert.match(ls.stdout, /talk\s+SUCCEEDED\s+default\s+2\/2/);
  void readFileSync;
});

t.run();
