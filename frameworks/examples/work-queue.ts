/**
 * A work-queue framework: drains a list of shell commands, at most
 * `parallel` at a time, retrying each failed command up to `retries` times
 * with exponential backoff. When the queue is empty it suppresses offers;
 * when a retry becomes due it revives them.
 *
 *   node dist/frameworks/examples/work-queue.js --master http://127.0.0.1:5050 \
 *        --retries 2 --parallel 4 'echo one' 'sleep 1; echo two' 'exit 3'
 *   … or --file commands.txt (one command per line)
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { connect, isTerminal, OfferPool, task, type Dialer, type TaskState } from '../sdk/index.js';

export interface WorkQueueOptions {
  master: string | Dialer;
  commands: string[];
  retries?: number;
  parallel?: number;
  cpus?: number;
  mem?: number;
  /** First retry delay; doubles per attempt (default 500 ms). */
  backoffMs?: number;
  log?: (line: string) => void;
}

export interface JobResult { cmd: string; attempts: number; state: TaskState }

/** Drains the queue; resolves with one result per command, in input order. */
export async function runWorkQueue(opts: WorkQueueOptions): Promise<JobResult[]> {
  const log = opts.log ?? (() => undefined);
  const retries = opts.retries ?? 2;
  const parallel = opts.parallel ?? 8;
  const jobs = opts.commands.map((cmd, i) => ({ i, cmd, attempts: 0, state: 'TASK_STAGING' as TaskState, readyAt: 0, running: false, done: false }));
  const byTask = new Map<string, (typeof jobs)[number]>();
  const fw = await connect({ master: opts.master, framework: { name: 'work-queue' } });
  const retryTimers = new Set<NodeJS.Timeout>();

  const finished = new Promise<void>((resolve) => {
    const maybeDone = (): void => { if (jobs.every((j) => j.done)) resolve(); };
    // A few ms of slack: the revive timer and readyAt are set from the same delay.
    const ready = () => jobs.filter((j) => !j.done && !j.running && j.readyAt <= Date.now() + 5);
    const running = () => jobs.filter((j) => j.running).length;

    fw.on('offers', async (offers) => {
      const pool = new OfferPool(offers);
      for (const j of ready()) {
        if (running() >= parallel) break;
        const info = pool.place(task({ id: `job-${j.i}-try-${j.attempts + 1}`, cmd: j.cmd, cpus: opts.cpus ?? 0.1, mem: opts.mem ?? 32 }));
        if (!info) break;
        j.attempts++;
        j.running = true;
        byTask.set(info.task_id.value, j);
        log(`start job ${j.i} (attempt ${j.attempts}): ${j.cmd}`);
      }
      await fw.acceptPool(pool, { refuseSeconds: 1 });
      if (ready().length === 0) await fw.suppress();
    });

    fw.on('update', async (st) => {
      const j = byTask.get(st.task_id.value);
      if (!j || !isTerminal(st.state) || !j.running) return;
      j.running = false;
      j.state = st.state;
      if (st.state === 'TASK_FINISHED') {
        j.done = true;
        log(`job ${j.i} finished`);
      } else if (j.attempts > retries) {
        j.done = true;
        log(`job ${j.i} failed for good after ${j.attempts} attempts: ${st.state} ${st.message ?? ''}`);
      } else {
        const delay = (opts.backoffMs ?? 500) * 2 ** (j.attempts - 1);
        j.readyAt = Date.now() + delay;
        log(`job ${j.i} ${st.state}; retrying in ${delay} ms`);
        const t = setTimeout(() => { retryTimers.delete(t); void fw.revive().catch(() => undefined); }, delay);
        retryTimers.add(t);
      }
      if (ready().length > 0) await fw.revive();
      maybeDone();
    });
    fw.on('error', (e) => { log(`error: ${e.message}`); if (e.fatal) resolve(); });
    maybeDone();
  });
  await finished;
  for (const t of retryTimers) clearTimeout(t);
  await fw.teardown().catch(() => fw.close());
  return jobs.map((j) => ({ cmd: j.cmd, attempts: j.attempts, state: j.state }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      master: { type: 'string', default: 'http://127.0.0.1:5050' },
      file: { type: 'string' },
      retries: { type: 'string', default: '2' },
      parallel: { type: 'string', default: '8' },
    },
  });
  const commands = values.file ? readFileSync(values.file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')) : positionals;
  if (commands.length === 0) { console.error('usage: work-queue --master URL [--file F] CMD…'); process.exit(2); }
  runWorkQueue({ master: values.master!, commands, retries: Number(values.retries), parallel: Number(values.parallel), log: (l) => console.error(l) })
    .then((results) => {
      for (const r of results) console.log(`${r.state.padEnd(14)} attempts=${r.attempts}  ${r.cmd}`);
      process.exit(results.every((r) => r.state === 'TASK_FINISHED') ? 0 : 1);
    }, (e: Error) => { console.error(e.message); process.exit(1); });
}
