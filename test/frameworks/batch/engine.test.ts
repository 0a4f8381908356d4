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
import { defaultScript, FakeAgent, type TaskStep } from '../../helpers/fake-agent.js';

const until = async (cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

interface Env { net: MemoryNetwork; master: Master; agents: FakeAgent[]; batch: RunningBatch; events: BatchEvent[]; clock: ManualClock; store: MemoryStore }

async function env(opts: { agents?: number; resources?: string; script?: (t: TaskInfo) => TaskStep[]; clock?: ManualClock; store?: MemoryStore } = {}): Promise<Env> {
  const net = new MemoryNetwork();
  const master = new Master({ registry: new MemoryRegistry(), log: silentLogger, allocationIntervalMs: 50 });
  master.listen(net);
  await master.start();
  const agents: FakeAgent[] = [];
  for (let i = 0; i < (opts.agents ?? 2); i++) {
    agents.push(await FakeAgent.start({ dialer: net, hostname: `agent-${i}`, resources: opts.resources ?? 'cpus:4;mem:4096;disk:1000', script: opts.script, resendMs: 200 }));
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

t.run();
