/**
 * Trace readers: turn a production trace file into a Workload.
 *
 * Google cluster-data 2011 `task_events` (schema v2.1, 13 columns, no header):
 *   0 timestamp (µs; 0 = before the trace, 2^63-1 = after), 1 missing info,
 *   2 job ID, 3 task index, 4 machine ID, 5 event type (0 SUBMIT, 1 SCHEDULE,
 *   2 EVICT, 3 FAIL, 4 FINISH, 5 KILL, 6 LOST, 7 UPDATE_PENDING,
 *   8 UPDATE_RUNNING), 6 user, 7 scheduling class, 8 priority, 9 CPU request,
 *   10 memory request, 11 disk request, 12 different-machines restriction.
 *   Requests are normalised to the largest machine (1.0). A task arrives at its
 *   first SUBMIT and runs from its first SCHEDULE to the first terminal event
 *   after it (2-6); one still running at the end of the file is a service.
 *   Production priorities (9-11) count as services, the rest as batch.
 *
 * Alibaba cluster-trace-v2018 `batch_task` (schema.md §1.5, 9 columns, no header):
 *   task_name, instance_num, job_name, task_type, status, start_time (s),
 *   end_time (s), plan_cpu (100 = 1 core), plan_mem (normalised, [0, 100]).
 *   Each row becomes `instance_num` batch tasks arriving at start_time and
 *   running end_time − start_time. Rows without a positive duration or
 *   request are skipped (the trace has them) and counted.
 *
 * Bad rows never abort a read: they are counted per reason, and a file with no
 * usable row is an error naming the file and the first bad line.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { BerthError } from '../../proto/errors.js';
import { sortTasks, type Machine, type WorkTask, type Workload } from './workload.js';

export interface TraceOptions {
  /** Machine shape the normalised requests are scaled to. */
  machine?: Machine;
  /** Keep at most this many tasks (in file order); default 1,000,000. */
  maxTasks?: number;
  /** Time scale: virtual ms per trace second (default 1000: real time). */
  msPerSecond?: number;
}

export interface TraceRead { workload: Workload; skipped: Record<string, number> }

const GOOGLE_MACHINE: Machine = { cpus: 32, mem: 131_072 };
/** Alibaba 2018 machines: 96 cores (machine_meta cpu_num); memory normalised to 100. */
const ALIBABA_MACHINE: Machine = { cpus: 96, mem: 393_216 };
const MAX_TASKS = 1_000_000;

async function* lines(path: string): AsyncGenerator<[number, string]> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) { n++; if (line.trim() !== '') yield [n, line]; }
}

function bump(m: Record<string, number>, k: string): void { m[k] = (m[k] ?? 0) + 1; }

export async function readGoogle2011(path: string, opts: TraceOptions = {}): Promise<TraceRead> {
  const machine = opts.machine ?? GOOGLE_MACHINE;
  const scale = (opts.msPerSecond ?? 1000) / 1e6; // µs → virtual ms
  const max = opts.maxTasks ?? MAX_TASKS;
  interface T { id: string; job: string; submit?: number; start?: number; end?: number; cpu: number; mem: number; prio: number }
  const byKey = new Map<string, T>();
  const skipped: Record<string, number> = {};
  let firstBad: string | undefined;
  let t0 = Infinity;
  let last = 0;
  for await (const [n, line] of lines(path)) {
    const c = line.split(',');
    if (c.length !== 13) { bump(skipped, 'column count is not 13'); firstBad ??= `line ${n}: ${c.length} columns`; continue; }
    const ts = Number(c[0]);
    const type = Number(c[5]);
    if (!Number.isFinite(ts) || !Number.isInteger(type) || type < 0 || type > 8 || c[2] === '' || c[3] === '') {
      bump(skipped, 'bad timestamp, event type, job ID or task index'); firstBad ??= `line ${n}`; continue;
    }
    if (ts >= 2 ** 63 - 1 || ts > 9e18) continue; // "after the trace"
    const key = `${c[2]}-${c[3]}`;
    let t = byKey.get(key);
    if (!t) {
      if (byKey.size >= max) { bump(skipped, 'beyond maxTasks'); continue; }
      t = { id: `g-${key}`, job: `g-${c[2]}`, cpu: 0, mem: 0, prio: 0 };
      byKey.set(key, t);
    }
    if (c[9] !== '') t.cpu = Number(c[9]);
    if (c[10] !== '') t.mem = Number(c[10]);
    if (c[8] !== '') t.prio = Number(c[8]);
    if (type === 0 && t.submit === undefined) t.submit = ts;
    else if (type === 1 && t.start === undefined) t.start = ts;
    else if (type >= 2 && type <= 6 && t.start !== undefined && t.end === undefined) t.end = ts;
    if (ts < t0) t0 = ts;
    if (ts > last) last = ts;
  }
  const tasks: WorkTask[] = [];
  for (const t of byKey.values()) {
    if (t.submit === undefined && t.start === undefined) { bump(skipped, 'no SUBMIT or SCHEDULE'); continue; }
    if (!(t.cpu > 0) || !(t.mem > 0)) { bump(skipped, 'no cpu or memory request'); continue; }
    const arrival = ((t.submit ?? t.start)! - t0) * scale;
    const service = t.prio >= 9 || (t.start !== undefined && t.end === undefined);
    const duration = service ? Infinity : t.start === undefined || t.end === undefined ? 0 : (t.end - t.start) * scale;
    if (!service && !(duration > 0)) { bump(skipped, 'never ran to a terminal event'); continue; }
    tasks.push({
      id: t.id, job: t.job, cls: service ? 'service' : 'batch', arrival: Math.round(arrival),
      duration: service ? Infinity : Math.max(1, Math.round(duration)),
      cpus: Math.max(0.001, Math.round(t.cpu * machine.cpus * 1000) / 1000), mem: Math.max(1, Math.round(t.mem * machine.mem)),
    });
  }
  return finish(path, 'google-2011', machine, tasks, (last - t0) * scale, skipped, firstBad);
}

export async function readAlibaba2018(path: string, opts: TraceOptions = {}): Promise<TraceRead> {
  const machine = opts.machine ?? ALIBABA_MACHINE;
  const scale = opts.msPerSecond ?? 1000;
  const max = opts.maxTasks ?? MAX_TASKS;
  const skipped: Record<string, number> = {};
  let firstBad: string | undefined;
  const tasks: WorkTask[] = [];
  let t0 = Infinity;
  let last = 0;
  const rows: { name: string; n: number; job: string; start: number; end: number; cpu: number; mem: number }[] = [];
  for await (const [n, line] of lines(path)) {
    const c = line.split(',');
    if (c.length !== 9) { bump(skipped, 'column count is not 9'); firstBad ??= `line ${n}: ${c.length} columns`; continue; }
    const [name, inst, job, , , start, end, cpu, mem] = c as [string, string, string, string, string, string, string, string, string];
    const row = { name, n: Number(inst), job, start: Number(start), end: Number(end), cpu: Number(cpu), mem: Number(mem) };
    if (!Number.isInteger(row.n) || row.n <= 0) { bump(skipped, 'instance_num not a positive integer'); firstBad ??= `line ${n}: instance_num '${inst}'`; continue; }
    if (!(row.end > row.start) || !(row.start >= 0)) { bump(skipped, 'no positive duration'); continue; }
    if (!(row.cpu > 0) || !(row.mem > 0)) { bump(skipped, 'no plan_cpu or plan_mem'); continue; }
    rows.push(row);
    if (row.start < t0) t0 = row.start;
    if (row.end > last) last = row.end;
  }
  outer: for (const r of rows) {
    for (let i = 0; i < r.n; i++) {
      if (tasks.length >= max) { bump(skipped, 'beyond maxTasks'); break outer; }
      tasks.push({
        id: `a-${r.job}-${r.name}-${i}`, job: `a-${r.job}`, cls: 'batch',
        arrival: Math.round((r.start - t0) * scale), duration: Math.round((r.end - r.start) * scale),
        cpus: Math.round(r.cpu * 10) / 1000, mem: Math.max(1, Math.round((r.mem / 100) * machine.mem)),
      });
    }
  }
  return finish(path, 'alibaba-2018', machine, tasks, (last - t0) * scale, skipped, firstBad);
}

function finish(path: string, kind: string, machine: Machine, tasks: WorkTask[], spanMs: number, skipped: Record<string, number>, firstBad?: string): TraceRead {
  if (tasks.length === 0) throw new BerthError('INVALID', `${kind} trace ${path}: no usable task${firstBad ? ` (first bad row: ${firstBad})` : ''}`);
  const horizonMs = Math.max(1, Math.round(spanMs), ...tasks.map((t) => t.arrival + 1));
  return { workload: { name: kind, machine, horizonMs, tasks: sortTasks(tasks) }, skipped };
}
