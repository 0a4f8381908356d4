/**
 * `berth job …` (a client of the batch REST API) and `berth batch` (runs the batch framework).
 *
 *   berth job submit FILE | -            a JSON or YAML spec (one job, a list, or {jobs: […]})
 *   berth job submit --cmd 'echo $BERTH_TASK_INDEX' --array 0-999 --cpus 0.1 --mem 32 [--wait]
 *   berth job ls | get ID | cancel ID | rerun ID | logs ID [--index N] | queues [--set a:3,b:1]
 *
 * `--wait` shows a live progress bar (done / running / failed / pending, rate, ETA) until the job
 * ends, and exits 0 only if it SUCCEEDED. `--json` prints the API's JSON instead of tables.
 * The API address comes from --api, else $BERTH_BATCH, else http://127.0.0.1:8090.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import { addNatsFlags, natsOptions, type NatsFlags } from './cluster.js';

const DEFAULT_API = process.env.BERTH_BATCH ?? 'http://127.0.0.1:8090';

class ApiError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

async function api(base: string, method: string, p: string, body?: string, contentType = 'application/json'): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${base.replace(/\/$/, '')}${p}`, { method, ...(body !== undefined ? { body, headers: { 'content-type': contentType } } : {}) });
  } catch (e) {
    throw new Error(`cannot reach the batch API at ${base} (${(e as Error).cause ? String((e as { cause: Error }).cause.message) : (e as Error).message}); is 'berth up' or 'berth batch' running? (--api or $BERTH_BATCH)`);
  }
  const text = await res.text();
  if (!res.ok) {
    let msg = text;
    try { msg = (JSON.parse(text) as { error?: string }).error ?? text; } catch { /* plain text */ }
    throw new ApiError(res.status, `${res.status}: ${msg}`);
  }
  if ((res.headers.get('content-type') ?? '').includes('json')) return JSON.parse(text);
  return text;
}

interface Summary {
  id: string; state: string; reason?: string; queue: string; priority: number; cmd: string; cpus: number; mem: number;
  completions: number; parallelism: number; counts: Record<string, number>; submittedAt: number; startedAt?: number; finishedAt?: number;
  waitingFor?: string; dependsOn?: string[]; schedule?: { cron: string; timeZone: string; concurrencyPolicy: string }; runs?: string[];
}
interface Detail extends Summary { indices: { index: number; state: string; attempts: { n: number; taskId: string; hostname?: string; startedAt?: number; endedAt?: number; state?: string; exitCode?: number; message?: string }[] }[]; indicesTotal: number }

/** A plain aligned table. */
function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

const ago = (ms?: number): string => {
  if (!ms) return '-';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86400)}d`;
};
const dur = (a?: number, b?: number): string => (a && b ? `${((b - a) / 1000).toFixed(1)}s` : a ? `${((Date.now() - a) / 1000).toFixed(0)}s…` : '-');
const done = (c: Record<string, number>): number => (c.SUCCEEDED ?? 0) + (c.FAILED ?? 0) + (c.CANCELLED ?? 0);
const pending = (c: Record<string, number>): number => (c.PENDING ?? 0) + (c.BACKOFF ?? 0);
const running = (c: Record<string, number>): number => (c.STARTING ?? 0) + (c.RUNNING ?? 0);

function printJobs(jobs: Summary[]): void {
  const rows = [['ID', 'STATE', 'QUEUE', 'DONE', 'RUNNING', 'FAILED', 'PENDING', 'AGE', 'DURATION', 'COMMAND']];
  for (const j of jobs) {
    rows.push([j.id, j.state, j.queue, `${j.counts.SUCCEEDED ?? 0}/${j.completions}`, String(running(j.counts)), String(j.counts.FAILED ?? 0), String(pending(j.counts)),
      ago(j.submittedAt), dur(j.startedAt, j.finishedAt), j.schedule ? `[cron ${j.schedule.cron}] ${j.cmd}` : j.cmd].map((x) => x.replace(/\s+/g, ' ').slice(0, 60)));
  }
  process.stdout.write(table(rows));
}

function printDetail(j: Detail): void {
  const lines = [
    ['id', j.id], ['state', j.state + (j.reason ? ` (${j.reason})` : '')], ['queue', `${j.queue} (priority ${j.priority})`],
    ['command', j.cmd], ['resources', `${j.cpus} cpus, ${j.mem} MiB per task`], ['indices', `${j.completions}, parallelism ${j.parallelism}`],
    ['progress', `${j.counts.SUCCEEDED ?? 0} succeeded, ${j.counts.FAILED ?? 0} failed, ${running(j.counts)} running, ${pending(j.counts)} pending, ${j.counts.CANCELLED ?? 0} cancelled`],
    ...(j.dependsOn ? [['depends on', j.dependsOn.join(', ')]] : []),
    ...(j.waitingFor ? [['waiting for', j.waitingFor]] : []),
    ...(j.schedule ? [['schedule', `${j.schedule.cron} (${j.schedule.timeZone}, ${j.schedule.concurrencyPolicy})`], ['runs', (j.runs ?? []).join(', ') || '-']] : []),
    ['submitted', new Date(j.submittedAt).toISOString()], ['duration', dur(j.startedAt, j.finishedAt)],
  ];
  process.stdout.write(table(lines.map(([k, v]) => [`${k}:`, v!])));
  if (j.indices.length === 0) return;
  const rows = [['INDEX', 'STATE', 'ATTEMPTS', 'EXIT', 'HOST', 'DURATION', 'LAST MESSAGE']];
  for (const i of j.indices) {
    const a = i.attempts.at(-1);
    rows.push([String(i.index), i.state, String(i.attempts.length), a?.exitCode === undefined ? '-' : String(a.exitCode), a?.hostname ?? '-', dur(a?.startedAt, a?.endedAt), (a?.message ?? '').slice(0, 50)]);
  }
  process.stdout.write('\n' + table(rows));
  if (j.indicesTotal > j.indices.length) process.stdout.write(`… ${j.indicesTotal - j.indices.length} more (use --all or --failed)\n`);
}

/** Polls the job and draws a progress bar on stderr until it ends; resolves with its last summary. */
async function waitFor(base: string, id: string, quiet: boolean): Promise<Summary> {
  const bar = quiet ? undefined : new cliProgress.SingleBar({
    format: `${id} [{bar}] {percentage}% | {value}/{total} done | {running} running | {failed} failed | {pending} pending | {rate}/s | ETA {eta_formatted}`,
    barCompleteChar: '█', barIncompleteChar: '░', hideCursor: true, etaBuffer: 50, fps: 8, noTTYOutput: true, notTTYSchedule: 2000, stream: process.stderr,
  });
  const t0 = Date.now();
  let started = false;
  for (;;) {
    const j = (await api(base, 'GET', `/v1/jobs/${encodeURIComponent(id)}?limit=1`)) as Summary;
    const fin = done(j.counts);
    const payload = { running: running(j.counts), failed: j.counts.FAILED ?? 0, pending: pending(j.counts), rate: (fin / Math.max(0.001, (Date.now() - t0) / 1000)).toFixed(1) };
    if (bar && !started && j.completions > 0) { bar.start(j.completions, fin, payload); started = true; }
    bar?.update(fin, payload);
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.state)) {
      bar?.stop();
      if (!quiet) process.stderr.write(`${j.id}: ${j.state}${j.reason ? ` (${j.reason})` : ''} in ${dur(j.startedAt ?? t0, j.finishedAt)}\n`);
      return j;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function collect(v: string, prev: string[]): string[] { return [...prev, v]; }
function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number (got '${v}')`);
    return n;
  };
}

export function registerJobCommands(program: Command): void {
  const job = program.command('job').description('submit and watch batch jobs (the batch framework\'s API)')
    .option('--api <url>', 'batch API URL', DEFAULT_API);
  const base = (cmd: Command): string => (cmd.optsWithGlobals() as { api: string }).api;

  job.command('submit')
    .description('submit a job from a JSON/YAML file (- for stdin) or from flags')
    .argument('[file]', 'spec file: one job, a list, or {jobs: [...]}')
    .option('--cmd <command>', 'shell command (sees $BERTH_TASK_INDEX, $BERTH_ARRAY_SIZE)')
    .option('--id <id>', 'job id')
    .option('--array <list>', "indices, e.g. '0-999' or '1,3,5-7'")
    .option('--completions <n>', 'number of indices (0..n-1)', num('--completions'))
    .option('--parallelism <n>', 'at most this many running at once', num('--parallelism'))
    .option('--cpus <n>', 'cpus per task', num('--cpus'), 0.1)
    .option('--mem <MiB>', 'memory per task', num('--mem'), 32)
    .option('--disk <MiB>', 'disk per task', num('--disk'))
    .option('--retries <n>', 'retries per index', num('--retries'))
    .option('--backoff <seconds>', 'first retry delay (doubles)', num('--backoff'))
    .option('--deadline <seconds>', 'activeDeadlineSeconds', num('--deadline'))
    .option('--priority <n>', 'priority within the queue', num('--priority'))
    .option('--queue <name>', 'queue')
    .option('--env <K=V>', 'environment variable (repeatable)', collect, [])
    .option('--depends-on <ids>', 'comma-separated job ids that must succeed first')
    .option('--gang', 'start all tasks together or none')
    .option('--schedule <cron>', "cron schedule, e.g. '*/5 * * * *'")
    .option('--tz <zone>', 'time zone of the schedule')
    .option('--concurrency <policy>', 'Allow | Forbid | Replace (cron)')
    .option('--wait', 'show progress until the job ends; exit 0 only if it succeeded')
    .option('--json', 'print JSON')
    .action(async (file: string | undefined, o: Record<string, unknown>, cmd: Command) => {
      let body: string;
      let type = 'application/json';
      if (file) {
        body = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
        if (/\.ya?ml$/i.test(file) || (file === '-' && !/^\s*[[{]/.test(body))) type = 'application/yaml';
      } else {
        if (!o.cmd) throw new InvalidArgumentError('give a spec FILE or --cmd');
        const env = Object.fromEntries((o.env as string[]).map((kv) => {
          const i = kv.indexOf('=');
          if (i <= 0) throw new InvalidArgumentError(`--env '${kv}': use NAME=value`);
          return [kv.slice(0, i), kv.slice(i + 1)];
        }));
        const spec: Record<string, unknown> = {
          cmd: o.cmd, cpus: o.cpus, mem: o.mem, id: o.id, array: o.array, completions: o.completions, parallelism: o.parallelism, disk: o.disk,
          retries: o.retries, backoffSeconds: o.backoff, activeDeadlineSeconds: o.deadline, priority: o.priority, queue: o.queue,
          ...(Object.keys(env).length ? { env } : {}),
          ...(o.dependsOn ? { dependsOn: String(o.dependsOn).split(',').map((s) => s.trim()).filter(Boolean) } : {}),
          ...(o.gang ? { gang: true } : {}),
          ...(o.schedule ? { schedule: { cron: o.schedule, ...(o.tz ? { timeZone: o.tz } : {}), ...(o.concurrency ? { concurrencyPolicy: o.concurrency } : {}) } } : {}),
        };
        for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
        body = JSON.stringify(spec);
      }
      const out = (await api(base(cmd), 'POST', '/v1/jobs', body, type)) as { jobs: Summary[] };
      if (!o.wait) {
        if (o.json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        else for (const j of out.jobs) process.stdout.write(`submitted ${j.id} (${j.completions} task${j.completions === 1 ? '' : 's'}, queue ${j.queue})\n`);
        return;
      }
      let ok = true;
      const finals: Summary[] = [];
      for (const j of out.jobs) {
        if (j.schedule) { process.stderr.write(`${j.id} is a cron job; not waiting\n`); continue; }
        const f = await waitFor(base(cmd), j.id, !!o.json);
        finals.push(f);
        ok &&= f.state === 'SUCCEEDED';
      }
      if (o.json) process.stdout.write(JSON.stringify({ jobs: finals }, null, 2) + '\n');
      if (!ok) process.exitCode = 1;
    });

  job.command('ls').description('list jobs, newest first')
    .option('--state <state>', 'only jobs in this state').option('--queue <name>', 'only this queue').option('--limit <n>', 'at most n', '100').option('--json', 'print JSON')
    .action(async (o: { state?: string; queue?: string; limit: string; json?: boolean }, cmd: Command) => {
      const q = new URLSearchParams({ limit: o.limit, ...(o.state ? { state: o.state } : {}), ...(o.queue ? { queue: o.queue } : {}) });
      const out = (await api(base(cmd), 'GET', `/v1/jobs?${q}`)) as { jobs: Summary[]; total: number };
      if (o.json) { process.stdout.write(JSON.stringify(out, null, 2) + '\n'); return; }
      if (out.jobs.length === 0) { process.stdout.write('no jobs\n'); return; }
      printJobs(out.jobs);
    });

  job.command('get').description('a job with its indices, attempts and exit codes').argument('<id>')
    .option('--failed', 'only failed indices').option('--all', 'every index (default: the first 50)').option('--wait', 'show progress until it ends').option('--json', 'print JSON')
    .action(async (id: string, o: { failed?: boolean; all?: boolean; wait?: boolean; json?: boolean }, cmd: Command) => {
      if (o.wait) { const f = await waitFor(base(cmd), id, !!o.json); if (f.state !== 'SUCCEEDED') process.exitCode = 1; }
      const q = new URLSearchParams({ limit: o.all ? '10000' : '50', ...(o.failed ? { indexState: 'FAILED' } : {}) });
      const j = (await api(base(cmd), 'GET', `/v1/jobs/${encodeURIComponent(id)}?${q}`)) as Detail;
      if (o.json) process.stdout.write(JSON.stringify(j, null, 2) + '\n'); else printDetail(j);
    });

  job.command('cancel').description('cancel a job: pending indices end, running tasks are killed').argument('<id>').option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }, cmd: Command) => {
      const j = (await api(base(cmd), 'DELETE', `/v1/jobs/${encodeURIComponent(id)}`)) as Summary;
      process.stdout.write(o.json ? JSON.stringify(j, null, 2) + '\n' : `${j.id}: ${j.state}${j.reason ? ` (${j.reason})` : ''}\n`);
    });

  job.command('rerun').description('run the failed and cancelled indices of a finished job again').argument('<id>').option('--wait', 'show progress').option('--json', 'print JSON')
    .action(async (id: string, o: { wait?: boolean; json?: boolean }, cmd: Command) => {
      const j = (await api(base(cmd), 'POST', `/v1/jobs/${encodeURIComponent(id)}/rerun`)) as Summary;
      if (o.wait) { const f = await waitFor(base(cmd), id, !!o.json); if (f.state !== 'SUCCEEDED') process.exitCode = 1; return; }
      process.stdout.write(o.json ? JSON.stringify(j, null, 2) + '\n' : `${j.id}: ${j.state}, ${pending(j.counts)} indices pending\n`);
    });

  job.command('logs').description("a task's stdout (or stderr), read from its agent's sandbox").argument('<id>')
    .option('--index <n>', 'index (default: the first)').option('--attempt <n>', 'attempt (default: the last)').option('--stderr', 'stderr instead of stdout')
    .action(async (id: string, o: { index?: string; attempt?: string; stderr?: boolean }, cmd: Command) => {
      const q = new URLSearchParams({ stream: o.stderr ? 'stderr' : 'stdout', ...(o.index ? { index: o.index } : {}), ...(o.attempt ? { attempt: o.attempt } : {}) });
      process.stdout.write(String(await api(base(cmd), 'GET', `/v1/jobs/${encodeURIComponent(id)}/logs?${q}`)));
    });

  job.command('queues').description('queues with weights, caps, usage and shares')
    .option('--set <list>', "create or change queues: 'name:weight[,name:weight…]'").option('--json', 'print JSON')
    .action(async (o: { set?: string; json?: boolean }, cmd: Command) => {
      for (const part of (o.set ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
        const [name, w] = part.split(':');
        await api(base(cmd), 'PUT', `/v1/queues/${encodeURIComponent(name ?? '')}`, JSON.stringify({ weight: w === undefined ? 1 : Number(w) }));
      }
      const out = (await api(base(cmd), 'GET', '/v1/queues')) as { queues: { name: string; weight: number; maxCpus?: number; maxMem?: number; maxTasks?: number; used: { cpus: number; mem: number; tasks: number }; share: number; cpuSeconds: number }[] };
      if (o.json) { process.stdout.write(JSON.stringify(out, null, 2) + '\n'); return; }
      const rows = [['QUEUE', 'WEIGHT', 'RUNNING', 'CPUS', 'MEM', 'SHARE', 'CPU-SECONDS', 'CAPS']];
      for (const q of out.queues) {
        const caps = [q.maxCpus && `cpus≤${q.maxCpus}`, q.maxMem && `mem≤${q.maxMem}`, q.maxTasks && `tasks≤${q.maxTasks}`].filter(Boolean).join(' ') || '-';
        rows.push([q.name, String(q.weight), String(q.used.tasks), q.used.cpus.toFixed(1), q.used.mem.toFixed(0), q.share.toFixed(3), q.cpuSeconds.toFixed(1), caps]);
      }
      process.stdout.write(table(rows));
    });
}

export function registerBatchCommand(program: Command): void {
  addNatsFlags(program.command('batch'))
    .description('run the batch framework (jobs, queues, DAGs, cron, gangs) with its REST API (with --nats: follows the leading master, jobs in NATS KV)')
    .option('--replicas <n>', 'cluster mode: replicas of the job store bucket (3 on a 3-node NATS cluster)', num('--replicas'), 1)
    .option('--master <url>', 'master: berth://host:port (native) or http://host:port', 'berth://127.0.0.1:5050')
    .option('--port <port>', 'API port (0 = any free port)', num('--port'), 8090)
    .option('--host <host>', 'API address to bind', '127.0.0.1')
    .option('--work-dir <dir>', 'where the job store lives', '.berth/batch')
    .option('--role <role>', 'role to subscribe with', '*')
    .option('--queues <list>', "queues to create: 'name:weight,…'")
    .option('--gang-hold <ms>', 'longest a gang holds offers waiting for the rest', num('--gang-hold'), 10_000)
    .action(async (o: NatsFlags & { master: string; port: number; host: string; workDir: string; role: string; queues?: string; gangHold: number; replicas: number }) => {
      const { startBatch } = await import('../frameworks/batch/service.js');
      const { parseQueuesFlag } = await import('../frameworks/batch/queues.js');
      const nats = natsOptions(o, 'berth-batch');
      const b = await startBatch({
        ...(nats ? { cluster: { nats, prefix: o.natsPrefix, replicas: o.replicas } } : {}),
        master: o.master, port: o.port, host: o.host, workDir: o.workDir, role: o.role, gangHoldMs: o.gangHold,
        ...(o.queues ? { queues: parseQueuesFlag(o.queues) } : {}),
      });
      process.stderr.write(`batch API at ${b.url} (framework ${b.framework.frameworkId})\n`);
      const stop = (): void => { void b.stop().then(() => process.exit(0)); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}

/**
 * For `berth up`: runs `berth batch` as a child process against the local master (its own
 * process, so the framework and the master use both cores). The API listens on 8090 when the
 * master has its default port, on any free port otherwise; the child prints its URL.
 */
export function upBatch(masterAddr: string, workDir: string, masterPort: number, role = '*'): { stop(): Promise<void> } {
  const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
  const child: ChildProcess = spawn(process.execPath, [cli, 'batch', '--master', `berth://${masterAddr}`, '--work-dir', path.join(workDir, 'batch'),
    '--port', masterPort === 5050 ? '8090' : '0', '--role', role], { stdio: ['ignore', 'inherit', 'inherit'] });
  return {
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    }),
  };
}
