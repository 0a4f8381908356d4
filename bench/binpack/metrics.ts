/**
 * What a run is judged by. Dimensions are cpus and mem (index 0 and 1), in
 * integer units internally (thousandths of a cpu, MB) so sums are exact.
 *
 * Lower bound on machines (issue #12): the maximum over time of, for each
 * dimension d, max(⌈concurrent demand in d / machine size in d⌉, number of
 * concurrent items larger than half a machine in d). Per dimension, because a
 * cpu-heavy and a memory-heavy item can share a machine, so summing shapes
 * across dimensions would not be a bound. "Concurrent" uses the workload's own
 * timeline: each task from its arrival for its duration (services until the
 * horizon) — no schedule can run the work on fewer machines without delaying it.
 */
import { percentile } from '../report.js';
import type { Machine, TaskClass, Workload, WorkTask } from './workload.js';

export const NDIM = 2;
export const units = (t: { cpus: number; mem: number }): [number, number] => [Math.round(t.cpus * 1000), Math.round(t.mem)];

/** End of a task on the workload's own timeline (services run to the horizon). */
export function intrinsicEnd(t: WorkTask, horizonMs: number): number {
  return t.duration === Infinity ? Math.max(horizonMs, t.arrival + 1) : t.arrival + t.duration;
}

export function lowerBound(w: Workload): number {
  const cap = units(w.machine);
  const ev: { t: number; delta: 1 | -1; u: [number, number] }[] = [];
  for (const task of w.tasks) {
    const u = units(task);
    ev.push({ t: task.arrival, delta: 1, u }, { t: intrinsicEnd(task, w.horizonMs), delta: -1, u });
  }
  // Ends before starts at the same instant: a task ending at t frees room for one starting at t.
  ev.sort((a, b) => a.t - b.t || a.delta - b.delta);
  const sum = [0, 0];
  const large = [0, 0];
  let lb = 0;
  for (let i = 0; i < ev.length; i++) {
    const e = ev[i]!;
    for (let d = 0; d < NDIM; d++) {
      sum[d]! += e.delta * e.u[d]!;
      if (e.u[d]! * 2 > cap[d]!) large[d]! += e.delta;
    }
    if (i + 1 < ev.length && ev[i + 1]!.t === e.t) continue; // evaluate once per instant
    for (let d = 0; d < NDIM; d++) lb = Math.max(lb, Math.ceil(sum[d]! / cap[d]!), large[d]!);
  }
  return lb;
}

/** The workload's median task shape: fragmentation counts free space that cannot hold it. */
export function medianTask(w: Workload): [number, number] {
  const c = w.tasks.map((t) => units(t)[0]).sort((a, b) => a - b);
  const m = w.tasks.map((t) => units(t)[1]).sort((a, b) => a - b);
  return [c[c.length >> 1] ?? 0, m[m.length >> 1] ?? 0];
}

/** A machine counts as full in a dimension when less than this share of it is free. */
export const FULL_BELOW = 0.05;

export interface Series { t: number[]; util: number[][]; stranded: number[][]; frag: number[][] }

export interface RunMetrics {
  strategy: string;
  machines: number;
  tasks: number;
  placed: number;
  /** Tasks not placed within pendingAfter of arrival (or never). */
  pending: number;
  /** Time-weighted utilisation per dimension over [0, end]. */
  util: number[];
  /** Mean over samples of free capacity on machines full in another dimension, as a share of the cluster. */
  stranded: number[];
  /** Mean over samples of the share of free capacity on machines that cannot hold the median task. */
  frag: number[];
  pendingP50: Record<TaskClass, number>;
  pendingP99: Record<TaskClass, number>;
  /** Pending-time quantiles (s) per class at 0,1,…,100 %, for the CDF chart. */
  pendingCdf: Record<TaskClass, number[]>;
  makespanS: number;
  jctMeanS: number;
  jctP50S: number;
  jctP99S: number;
  offersPerLaunch: number;
  wallMs: number;
  placementsPerS: number;
  series: Series;
}

/**
 * Collects a run's usage as tasks start and end on machines. Utilisation is an
 * exact integral (usage is piecewise constant between events); stranded
 * capacity and fragmentation are sampled every `sampleMs` of virtual time.
 */
export class Collector {
  readonly used: Float64Array;
  private readonly cap: [number, number];
  private readonly area = [0, 0];
  private readonly total = [0, 0];
  private last = 0;
  readonly placedAt: Float64Array;
  readonly finishedAt: Float64Array;
  readonly series: Series = { t: [], util: [[], []], stranded: [[], []], frag: [[], []] };
  private readonly sums = { stranded: [0, 0], frag: [0, 0], n: 0 };

  constructor(readonly w: Workload, readonly machines: number, private readonly ref: [number, number]) {
    this.used = new Float64Array(machines * NDIM);
    this.cap = units(w.machine);
    this.placedAt = new Float64Array(w.tasks.length).fill(NaN);
    this.finishedAt = new Float64Array(w.tasks.length).fill(NaN);
  }

  private advanceTo(now: number): void {
    const dt = now - this.last;
    if (dt > 0) for (let d = 0; d < NDIM; d++) this.area[d]! += this.total[d]! * dt;
    this.last = Math.max(this.last, now);
  }

  start(taskIdx: number, machine: number, now: number): void {
    this.advanceTo(now);
    const u = units(this.w.tasks[taskIdx]!);
    for (let d = 0; d < NDIM; d++) { this.used[machine * NDIM + d]! += u[d]!; this.total[d]! += u[d]!; }
    this.placedAt[taskIdx] = now;
  }

  end(taskIdx: number, machine: number, now: number): void {
    this.advanceTo(now);
    const u = units(this.w.tasks[taskIdx]!);
    for (let d = 0; d < NDIM; d++) { this.used[machine * NDIM + d]! -= u[d]!; this.total[d]! -= u[d]!; }
    this.finishedAt[taskIdx] = now;
  }

  sample(now: number): void {
    this.advanceTo(now);
    const stranded = [0, 0];
    const fragFree = [0, 0];
    const free = [0, 0];
    for (let m = 0; m < this.machines; m++) {
      const f0 = this.cap[0] - this.used[m * NDIM]!;
      const f1 = this.cap[1] - this.used[m * NDIM + 1]!;
      const full0 = f0 < FULL_BELOW * this.cap[0];
      const full1 = f1 < FULL_BELOW * this.cap[1];
      if (full1) stranded[0]! += f0;
      if (full0) stranded[1]! += f1;
      free[0]! += f0; free[1]! += f1;
      if (f0 < this.ref[0] || f1 < this.ref[1]) { fragFree[0]! += f0; fragFree[1]! += f1; }
    }
    this.series.t.push(now / 1000);
    for (let d = 0; d < NDIM; d++) {
      const capTotal = this.cap[d]! * this.machines;
      const s = stranded[d]! / capTotal;
      const fr = free[d]! > 0 ? fragFree[d]! / free[d]! : 0;
      this.series.util[d]!.push(this.total[d]! / capTotal);
      this.series.stranded[d]!.push(s);
      this.series.frag[d]!.push(fr);
      this.sums.stranded[d]! += s;
      this.sums.frag[d]! += fr;
    }
    this.sums.n++;
  }

  finish(strategy: string, end: number, pendingAfterMs: number, extra: { offersPerLaunch: number; wallMs: number }): RunMetrics {
    this.advanceTo(end);
    const w = this.w;
    const waits: Record<TaskClass, number[]> = { batch: [], service: [] };
    let placed = 0;
    let pending = 0;
    let makespan = 0;
    const jobs = new Map<string, { first: number; last: number; done: boolean }>();
    for (let i = 0; i < w.tasks.length; i++) {
      const t = w.tasks[i]!;
      const at = this.placedAt[i]!;
      const wait = Number.isNaN(at) ? end - t.arrival : at - t.arrival;
      if (!Number.isNaN(at)) placed++;
      if (Number.isNaN(at) || wait > pendingAfterMs) pending++;
      waits[t.cls].push(wait / 1000);
      if (t.cls === 'batch') {
        const fin = this.finishedAt[i]!;
        if (!Number.isNaN(fin)) makespan = Math.max(makespan, fin);
        const j = jobs.get(t.job) ?? { first: Infinity, last: 0, done: true };
        j.first = Math.min(j.first, t.arrival);
        if (Number.isNaN(fin)) j.done = false; else j.last = Math.max(j.last, fin);
        jobs.set(t.job, j);
      }
    }
    const jct = [...jobs.values()].filter((j) => j.done).map((j) => (j.last - j.first) / 1000);
    const cdf = (xs: number[]): number[] => {
      const s = [...xs].sort((a, b) => a - b);
      return Array.from({ length: 101 }, (_, q) => (s.length ? s[Math.min(s.length - 1, Math.floor((q / 100) * (s.length - 1)))]! : 0));
    };
    const n = Math.max(1, this.sums.n);
    return {
      strategy, machines: this.machines, tasks: w.tasks.length, placed, pending,
      util: [0, 1].map((d) => (end > 0 ? this.area[d]! / (this.cap[d]! * this.machines * end) : 0)),
      stranded: [0, 1].map((d) => this.sums.stranded[d]! / n),
      frag: [0, 1].map((d) => this.sums.frag[d]! / n),
      pendingP50: { batch: percentile(waits.batch, 50) || 0, service: percentile(waits.service, 50) || 0 },
      pendingP99: { batch: percentile(waits.batch, 99) || 0, service: percentile(waits.service, 99) || 0 },
      pendingCdf: { batch: cdf(waits.batch), service: cdf(waits.service) },
      makespanS: makespan / 1000,
      jctMeanS: jct.length ? jct.reduce((a, b) => a + b, 0) / jct.length : 0,
      jctP50S: percentile(jct, 50) || 0,
      jctP99S: percentile(jct, 99) || 0,
      offersPerLaunch: extra.offersPerLaunch,
      wallMs: extra.wallMs,
      placementsPerS: extra.wallMs > 0 ? placed / (extra.wallMs / 1000) : 0,
      series: this.series,
    };
  }
}

export type { Machine };
