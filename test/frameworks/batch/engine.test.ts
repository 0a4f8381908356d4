/**
 * The batch engine against a real master with simulated agents (no processes): in-process over
 * a MemoryNetwork where the clock matters (cron, backoff), so behaviour is checked without
 * sleeping. The end-to-end suites with real processes are in e2e.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Master } from '../../../master/master.js';
import { MemoryRegistry } from '../../../master/registry/types.js';
import { ManualClock } from '../../../proto/clock.js';
import { silentLogger } from '../../../proto/log.js';
import { MemoryNetwork, MemoryStore, type TaskInfo } from '../../../frameworks/sdk/index.js';
import { startBatch, type RunningBatch } from '../../../frameworks/batch/service.js';
import type { BatchEvent } from '../../../frameworks/batch/engine.js';
import { S } from '../../../frameworks/batch/model.js';
import { defaultScript, SimAgent, holdScript, type TaskStep } from '../../../sim/agent.js';

const until = async (cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

interface Env { net: MemoryNetwork; master: Master; agents: SimAgent[]; batch: RunningBatch; events: BatchEvent[]; clock: ManualClock; store: MemoryStore }

async function env(opts: { agents?: number; resources?: string; script?: (t: TaskInfo) => TaskStep[]; clock?: ManualClock; store?: MemoryStore } = {}): Promise<Env> {
  const net = new MemoryNetwork();
  const master = new Master({ registry: new MemoryRegistry(), log: silentLogger, allocationIntervalMs: 50 });
  master.listen(net);
  await master.start();
  const agents: SimAgent[] = [];
  for (let i = 0; i < (opts.agents ?? 2); i++) {
    agents.push(await SimAgent.start({ dialer: net, hostname: `agent-${i}`, resources: opts.resources ?? 'cpus:4;mem:4096;disk:1000', script: opts.script, resendMs: 200 }));
  }
  const clock = opts.clock ?? new ManualClock(Date.UTC(2026, 10, 26, 12, 0, 0));
  const store = opts.store ?? new MemoryStore();
  const batch = await startBatch({ master: net, store, noApi: true, clock, log: silentLogger, gangHoldMs: 1_000 });
  const events: BatchEvent[] = [];
  batch.engine.on((e) => events.push(e));
  return { net, master, agents, batch, events, clock, store };
}

async function close(e: Env | undefined): Promise<void> {
  if (!e) return;
  await e.batch.stop();
  for (const a of e.agents) a.stop();
  await e.master.stop();
}

const t = suite('batch engine (simulated agents)');
let e: Env | undefined;
t.after.each(async () => { await close(e); e = undefined; });

t('an array job runs every index once with BERTH_TASK_INDEX and the array size in its environment', async () => {
  const seen: TaskInfo[] = [];
  e = await env({ script: (ti) => { seen.push(ti); return defaultScript(ti); } });
  const [job] = await e.batch.engine.submit([{ id: 'arr', cmd: 'true', cpus: 0.1, mem: 32, array: '0-99', parallelism: 20 }]);
  await until(() => job!.terminal, 10_000, 'job done');
  assert.is(job!.state, 'SUCCEEDED');
  const idx = seen.map((ti) => ti.command!.environment!.variables!.find((v) => v.name === 'BERTH_TASK_INDEX')!.value).map(Number).sort((a, b) => a - b);
  assert.equal(idx, Array.from({ length: 100 }, (_, i) => i));
  const size = seen[0]!.command!.environment!.variables!.find((v) => v.name === 'BERTH_ARRAY_SIZE')!.value;
  assert.is(size, '100');
});

t('cancel ends pending indices and kills running tasks; the job ends CANCELLED', async () => {
  e = await env({ script: holdScript });
  const [job] = await e.batch.engine.submit([{ id: 'long', cmd: 'sleep 100', cpus: 1, mem: 32, completions: 20 }]);
  await until(() => job!.counts[S.RUNNING] === 8, 5000, '8 running (2 agents x 4 cpus)');
  await e.batch.engine.cancel('long');
  await until(() => job!.terminal, 5000, 'cancelled');
  assert.is(job!.state, 'CANCELLED');
  assert.is(job!.countsByName().CANCELLED, 20);
  assert.is(e.agents.reduce((n, a) => n + a.stats.kills, 0), 8);
});

t('activeDeadlineSeconds on the injected clock fails the job with DeadlineExceeded and kills its tasks', async () => {
  e = await env({ script: holdScript });
  const [job] = await e.batch.engine.submit([{ id: 'slow', cmd: 'sleep 100', cpus: 1, mem: 32, completions: 2, activeDeadlineSeconds: 60 }]);
  await until(() => job!.counts[S.RUNNING] === 2, 5000, 'running');
  e.clock.advance(59_000);
  assert.is(job!.state, 'RUNNING');
  e.clock.advance(1_000);
  await until(() => job!.terminal, 5000, 'deadline');
  assert.is(job!.state, 'FAILED');
  assert.match(job!.reason ?? '', /DeadlineExceeded/);
});

t('retries back off exponentially on the injected clock, per index; rerun gives failed indices a fresh budget', async () => {
  e = await env({ script: (ti) => (ti.task_id.value.startsWith('flaky.3.') ? [{ state: 'TASK_RUNNING', afterMs: 0 }, { state: 'TASK_FAILED', afterMs: 0, message: 'Command exited with status 2' }] : defaultScript(ti)) });
  const [job] = await e.batch.engine.submit([{ id: 'flaky', cmd: 'x', cpus: 0.1, mem: 32, completions: 5, retries: 2, backoffSeconds: 10 }]);
  const attempts = (): number => job!.attempts[3]?.length ?? 0;
  await until(() => attempts() === 1 && job!.st[3] === S.BACKOFF, 5000, 'first failure');
  e.clock.advance(9_999);
  await new Promise((r) => setTimeout(r, 50));
  assert.is(attempts(), 1, 'no retry before 10 s');
  e.clock.advance(1);
  await until(() => attempts() === 2 && job!.st[3] === S.BACKOFF, 5000, 'second failure');
  e.clock.advance(19_999);
  await new Promise((r) => setTimeout(r, 50));
  assert.is(attempts(), 2, 'the second retry waits 20 s');
  e.clock.advance(1);
  await until(() => job!.terminal, 5000, 'done');
  assert.is(job!.state, 'FAILED');
  assert.equal(job!.attempts[3]!.map((a) => a.exitCode), [2, 2, 2]);
  assert.ok([0, 1, 2, 4].every((p) => job!.attempts[p]!.length === 1));
  await e.batch.engine.rerun('flaky');
  await until(() => (job!.attempts[3]?.length ?? 0) === 4, 5000, 'rerun launches index 3 again');
  assert.is(job!.state, 'RUNNING');
});

t('cron: the time zone is honoured, Replace cancels the running run, a run missed past startingDeadlineSeconds is skipped', async () => {
  e = await env({ script: holdScript });
  // 2026-11-26 12:00 UTC = 21:00 in Tokyo.
  await e.batch.engine.submit([{ id: 'tokyo', cmd: 'sleep 100', cpus: 0.1, mem: 32, schedule: { cron: '30 21 * * *', timeZone: 'Asia/Tokyo', concurrencyPolicy: 'Replace' } }]);
  e.clock.advance(30 * 60_000);
  const fired = e.events.filter((x) => x.type === 'cron' && x.action === 'fired') as Extract<BatchEvent, { type: 'cron' }>[];
  assert.is(fired.length, 1);
  assert.is(fired[0]!.at, Date.UTC(2026, 10, 26, 12, 30));
  const first = fired[0]!.run!;
  await until(() => e!.batch.engine.jobs.get(first)?.counts[S.RUNNING] === 1, 5000, 'first run running');
  e.clock.advance(24 * 3600_000);
  await until(() => e!.batch.engine.jobs.get(first)?.state === 'CANCELLED', 5000, 'first run replaced');
  assert.ok(e.events.some((x) => x.type === 'cron' && x.action === 'replaced'));
  // A run due while the clock jumps far past it (framework down) is skipped with a deadline.
  await e.batch.engine.submit([{ id: 'strict', cmd: 'true', cpus: 0.1, mem: 32, schedule: { cron: '0 * * * *', startingDeadlineSeconds: 60 } }]);
  const cronJob = e.batch.engine.jobs.get('strict')!;
  cronJob.lastFire = e.clock.now() - 2 * 3600_000; // as if restored from the store after 2 h down
  (e.batch.engine as unknown as { armCron(j: unknown): void }).armCron(cronJob);
  e.clock.advance(0);
  assert.ok(e.events.some((x) => x.type === 'cron' && x.job === 'strict' && x.action === 'missed'), 'missed run skipped');
});

t('a gang that cannot fit holds offers only for the bounded time, then releases them to other work', async () => {
  e = await env({ agents: 1, resources: 'cpus:2;mem:2048', script: holdScript });
  const [gang, small] = await e.batch.engine.submit([
    { id: 'big-gang', cmd: 'sleep 100', cpus: 1, mem: 32, completions: 3, gang: true, priority: 10 },
    { id: 'small', cmd: 'sleep 100', cpus: 1, mem: 32 },
  ]);
  await until(() => /gang/.test(gang!.waitingFor ?? ''), 5000, 'gang holding');
  assert.is(small!.counts[S.RUNNING], 0, 'the lower-priority job waits while the gang holds');
  e.clock.advance(1_000); // gangHoldMs
  await until(() => small!.counts[S.RUNNING] === 1, 5000, 'small job runs once the hold is released');
  assert.is(gang!.running, 0, 'the gang never half-started');
});

t('an offer it cannot use is declined at once with a short filter (none is held); idle it suppresses, new work revives', async () => {
  e = await env({ agents: 1, resources: 'cpus:4;mem:4096', script: holdScript });
  const fw = e.batch.framework;
  const calls: { call: string; refuse?: number }[] = [];
  const spy = fw as unknown as Record<'decline' | 'suppress' | 'revive', (...a: unknown[]) => Promise<void>>;
  for (const name of ['decline', 'suppress', 'revive'] as const) {
    const orig = spy[name].bind(fw);
    spy[name] = (...a: unknown[]) => { calls.push({ call: name, ...(name === 'decline' ? { refuse: a[1] as number } : {}) }); return orig(...a); };
  }
  // At its parallelism the job can use nothing more: the rest of the agent is declined whenever offered.
  const [capped] = await e.batch.engine.submit([{ id: 'capped', cmd: 'sleep 100', cpus: 0.1, mem: 32, completions: 50, parallelism: 2 }]);
  await until(() => capped!.running === 2, 5000, '2 running');
  await until(() => calls.some((c) => c.call === 'decline'), 5000, 'the unusable rest to be offered again and declined');
  const refusals = calls.filter((c) => c.call === 'decline').map((c) => c.refuse);
  assert.ok(refusals.every((s) => s !== undefined && s <= 1), `declined with a short filter while work waits (${JSON.stringify(refusals)})`);
  const outstanding = (): number => [...e!.master.offers.values()].filter((o) => o.frameworkId === fw.frameworkId).length;
  await until(() => outstanding() === 0, 5000, 'no offer held by the batch framework');
  assert.is(capped!.running, 2, 'still at its parallelism');
  // Nothing pending once cancelled: it suppresses.
  await e.batch.engine.cancel('capped');
  await until(() => capped!.terminal && calls.some((c) => c.call === 'suppress'), 5000, 'suppress once idle');
  // New work revives it and runs.
  const before = calls.filter((c) => c.call === 'revive').length;
  const [next] = await e.batch.engine.submit([{ id: 'next', cmd: 'sleep 100', cpus: 0.1, mem: 32 }]);
  await until(() => next!.running === 1, 5000, 'the new job to run');
  assert.ok(calls.filter((c) => c.call === 'revive').length > before, 'revived for new work');
});

t('queue caps bound running tasks whatever the share', async () => {
  e = await env({ script: holdScript });
  await e.batch.engine.setQueue('capped', { weight: 10, maxTasks: 3 });
  const [job] = await e.batch.engine.submit([{ id: 'many', cmd: 'sleep 100', cpus: 0.1, mem: 32, completions: 50, queue: 'capped' }]);
  await until(() => job!.running === 3, 5000, '3 running');
  await new Promise((r) => setTimeout(r, 300));
  assert.is(job!.running, 3);
});

t('state survives a restart on the same store: finished indices stay done, in-flight ones are reconciled, nothing runs twice', async () => {
  const store = new MemoryStore();
  const launched: string[] = [];
  e = await env({ store, script: (ti) => { launched.push(ti.task_id.value); return holdScript(); } });
  const [job] = await e.batch.engine.submit([{ id: 'keep', cmd: 'sleep 100', cpus: 1, mem: 32, completions: 10 }]);
  await until(() => job!.running === 8, 5000, '8 running');
  const fid = e.batch.framework.frameworkId;
  // The process "dies": the engine stops without a word to the master.
  e.batch.framework.close();
  await e.batch.engine.close();
  const again = await startBatch({ master: e.net, store, noApi: true, clock: e.clock, log: silentLogger });
  e.batch = again;
  assert.is(again.framework.frameworkId, fid, 'resubscribed as the same framework');
  const j2 = again.engine.jobs.get('keep')!;
  assert.is(j2.running, 8, 'in-flight attempts restored');
  await until(() => j2.counts[S.RUNNING] === 8, 5000, 'reconciled as RUNNING');
  await new Promise((r) => setTimeout(r, 200));
  assert.is(launched.length, 8, 'no index launched again while its task runs');
});

t.run();
