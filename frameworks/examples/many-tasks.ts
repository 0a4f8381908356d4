/**
 * Launch-throughput check (issue #3): N short tasks (`sleep 0.2; echo ok` by
 * default) against a master, until every one is FINISHED. Updates are
 * de-duplicated by uuid (the agent resends until acknowledged, so duplicates
 * are normal) and each is acknowledged by hand. Prints counts as JSON and
 * exits nonzero if any task ended in anything but TASK_FINISHED.
 *
 *   node dist/frameworks/examples/many-tasks.js --master http://127.0.0.1:5050 -n 200
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { connect, isTerminal, OfferPool, task, type Dialer, type TaskSpec, type TaskState } from '../sdk/index.js';

export interface ManyTasksOptions {
  master: string | Dialer;
  n?: number;
  cmd?: string;
  cpus?: number;
  mem?: number;
  /** Give up after this long (default 120 s). */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface ManyTasksResult {
  launched: number;
  finished: number;
  failed: number;
  /** Terminal states other than FINISHED, by state. */
  failures: Partial<Record<TaskState, number>>;
  updates: number;
  duplicates: number;
  acknowledged: number;
  ms: number;
  timedOut: boolean;
}

export async function runManyTasks(opts: ManyTasksOptions): Promise<ManyTasksResult> {
  const n = opts.n ?? 200;
  const log = opts.log ?? (() => undefined);
  const t0 = performance.now();
  const fw = await connect({ master: opts.master, framework: { name: 'many-tasks' }, autoAcknowledge: false });
  const pending: TaskSpec[] = [];
  for (let i = 0; i < n; i++) pending.push(task({ id: `many-${i}`, cmd: opts.cmd ?? 'sleep 0.2; echo ok', cpus: opts.cpus ?? 0.1, mem: opts.mem ?? 32 }));
  const r: ManyTasksResult = { launched: 0, finished: 0, failed: 0, failures: {}, updates: 0, duplicates: 0, acknowledged: 0, ms: 0, timedOut: false };
  const seen = new Set<string>();
  const terminal = new Set<string>();

  const result = new Promise<void>((resolve) => {
    const timer = setTimeout(() => { r.timedOut = true; resolve(); }, opts.timeoutMs ?? 120_000);
    const check = (): void => { if (terminal.size >= n) { clearTimeout(timer); resolve(); } };

    fw.on('offers', async (offers) => {
      const pool = new OfferPool(offers);
      while (pending.length > 0 && pool.place(pending[0]!)) pending.shift();
      const launched = await fw.acceptPool(pool, { refuseSeconds: pending.length > 0 ? 0 : 30 });
      r.launched += launched.length;
      if (launched.length) log(`launched ${launched.length} (total ${r.launched}/${n})`);
      if (pending.length === 0) await fw.suppress();
    });
    fw.on('update', async (st) => {
      r.updates++;
      if (st.uuid) {
        if (seen.has(st.uuid)) r.duplicates++;
        seen.add(st.uuid);
        // Acknowledge duplicates too: a resend means our earlier acknowledgement may have been lost.
        await fw.acknowledge(st);
        r.acknowledged++;
      }
      const id = st.task_id.value;
      if (!isTerminal(st.state) || terminal.has(id)) return;
      terminal.add(id);
      if (st.state === 'TASK_FINISHED') r.finished++;
      else {
        r.failed++;
        r.failures[st.state] = (r.failures[st.state] ?? 0) + 1;
        log(`${id}: ${st.state} ${st.reason ?? ''} ${st.message ?? ''}`);
      }
      check();
    });
    fw.on('error', (e) => { log(`error: ${e.message}`); if (e.fatal) { clearTimeout(timer); resolve(); } });
  });
  await result;
  r.ms = Math.round(performance.now() - t0);
  await fw.teardown().catch(() => fw.close());
  return r;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      master: { type: 'string', default: 'http://127.0.0.1:5050' },
      n: { type: 'string', short: 'n', default: '200' },
      cmd: { type: 'string' },
      timeout: { type: 'string', default: '120' },
    },
  });
  runManyTasks({ master: values.master!, n: Number(values.n), cmd: values.cmd, timeoutMs: Number(values.timeout) * 1000, log: (l) => console.error(l) })
    .then((r) => {
      console.log(JSON.stringify(r));
      process.exit(r.failed === 0 && !r.timedOut && r.finished === Number(values.n) ? 0 : 1);
    }, (e: Error) => { console.error(e.message); process.exit(1); });
}
