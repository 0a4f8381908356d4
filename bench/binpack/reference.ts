/**
 * Two references computed without the master:
 *
 *  - `ffd`: offline First-Fit-Decreasing over the whole timeline. Items are
 *    sorted by their largest normalised dimension, then by the sum of their
 *    normalised dimensions (both descending, ties by id); each goes to the
 *    first machine that has room for it during its whole lifetime (arrival to
 *    arrival + duration, services to the horizon). It knows the future, so it
 *    is a packing target, not a schedule a scheduler could follow.
 *  - `monolithic`: an online scheduler with a global view and no offers (the
 *    Omega paper's monolithic baseline): at every arrival and every
 *    completion, pending tasks in arrival order each go to the feasible machine
 *    with the least normalised capacity left (global best fit). It runs on the
 *    same virtual timeline and is measured by the same Collector as the offer
 *    path, so the gap between them is the cost of two-level scheduling.
 */
import { Collector, intrinsicEnd, medianTask, NDIM, units, type RunMetrics } from './metrics.js';
import type { Workload } from './workload.js';

/** Machines FFD needs for the workload. */
export function ffdMachines(w: Workload): number {
  const cap = units(w.machine);
  const items = w.tasks.map((t, i) => {
    const u = units(t);
    const n = [u[0] / cap[0], u[1] / cap[1]];
    return { i, id: t.id, u, start: t.arrival, end: intrinsicEnd(t, w.horizonMs), big: Math.max(n[0]!, n[1]!), sum: n[0]! + n[1]! };
  });
  items.sort((a, b) => b.big - a.big || b.sum - a.sum || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  // Each machine keeps a step function of usage: sorted change points with usage after each.
  // An item fits when usage + item ≤ capacity at every change point inside its interval.
  const machines: { times: number[]; use: [number, number][] }[] = [];
  const usageAt = (m: { times: number[]; use: [number, number][] }, t: number): number => {
    let lo = 0, hi = m.times.length - 1, ans = -1;
    while (lo <= hi) { const mid = (lo + hi) >> 1; if (m.times[mid]! <= t) { ans = mid; lo = mid + 1; } else hi = mid - 1; }
    return ans;
  };
  const fits = (m: { times: number[]; use: [number, number][] }, it: (typeof items)[0]): boolean => {
    let k = usageAt(m, it.start);
    const startUse = k >= 0 ? m.use[k]! : [0, 0];
    for (let d = 0; d < NDIM; d++) if (startUse[d]! + it.u[d]! > cap[d]!) return false;
    for (k = k + 1; k < m.times.length && m.times[k]! < it.end; k++) {
      for (let d = 0; d < NDIM; d++) if (m.use[k]![d]! + it.u[d]! > cap[d]!) return false;
    }
    return true;
  };
  const insertPoint = (m: { times: number[]; use: [number, number][] }, t: number): number => {
    const k = usageAt(m, t);
    if (k >= 0 && m.times[k] === t) return k;
    const prev: [number, number] = k >= 0 ? [...m.use[k]!] as [number, number] : [0, 0];
    m.times.splice(k + 1, 0, t);
    m.use.splice(k + 1, 0, prev);
    return k + 1;
  };
  const place = (m: { times: number[]; use: [number, number][] }, it: (typeof items)[0]): void => {
    const a = insertPoint(m, it.start);
    insertPoint(m, it.end);
    for (let k = a; k < m.times.length && m.times[k]! < it.end; k++) for (let d = 0; d < NDIM; d++) m.use[k]![d]! += it.u[d]!;
  };
  for (const it of items) {
    let m = machines.find((x) => fits(x, it));
    if (!m) { m = { times: [], use: [] }; machines.push(m); }
    place(m, it);
  }
  return machines.length;
}

export interface MonolithicOptions { pendingAfterMs: number; sampleMs: number; abortOverPending?: number }

/** Runs the monolithic global best-fit scheduler on `machines` machines; undefined if aborted for pending. */
export function runMonolithic(w: Workload, machines: number, o: MonolithicOptions): RunMetrics | undefined {
  const t0 = performance.now();
  const cap = units(w.machine);
  const col = new Collector(w, machines, medianTask(w));
  const free = new Float64Array(machines * NDIM);
  for (let m = 0; m < machines; m++) { free[m * NDIM] = cap[0]; free[m * NDIM + 1] = cap[1]; }
  // Completions: a binary heap of [time, taskIdx, machine] would be faster; a sorted insert is enough at lab sizes.
  const ends: { t: number; i: number; m: number }[] = [];
  const pending: number[] = [];
  let next = 0;
  let nextSample = 0;
  let overdue = 0;
  const counted = new Uint8Array(w.tasks.length);
  let lastTime = 0;
  const tasks = w.tasks;
  const horizon = w.horizonMs;
  const cutoff = horizon * 4 + o.pendingAfterMs;
  for (;;) {
    const tArr = next < tasks.length ? tasks[next]!.arrival : Infinity;
    const tEnd = ends.length ? ends[0]!.t : Infinity;
    let now = Math.min(tArr, tEnd);
    if (now === Infinity) now = Math.max(horizon, lastTime);
    while (nextSample <= Math.min(now, cutoff)) { col.sample(nextSample); nextSample += o.sampleMs; }
    if (now > cutoff || (now >= horizon && next >= tasks.length && ends.length === 0 && pending.length === 0)) {
      now = Math.min(Math.max(now, horizon), cutoff);
      lastTime = now;
      break;
    }
    lastTime = now;
    while (ends.length && ends[0]!.t === now) {
      const e = ends.shift()!;
      const u = units(tasks[e.i]!);
      free[e.m * NDIM]! += u[0]; free[e.m * NDIM + 1]! += u[1];
      col.end(e.i, e.m, now);
    }
    while (next < tasks.length && tasks[next]!.arrival === now) pending.push(next++);
    // Global best fit for each pending task, in arrival order.
    let keep = 0;
    for (let p = 0; p < pending.length; p++) {
      const i = pending[p]!;
      const u = units(tasks[i]!);
      let best = -1;
      let bestLeft = Infinity;
      for (let m = 0; m < machines; m++) {
        const f0 = free[m * NDIM]! - u[0];
        const f1 = free[m * NDIM + 1]! - u[1];
        if (f0 < 0 || f1 < 0) continue;
        const left = f0 / cap[0] + f1 / cap[1];
        if (left < bestLeft) { bestLeft = left; best = m; }
      }
      if (best < 0) {
        pending[keep++] = i;
        if (!counted[i] && now - tasks[i]!.arrival > o.pendingAfterMs) { counted[i] = 1; overdue++; }
        continue;
      }
      free[best * NDIM]! -= u[0]; free[best * NDIM + 1]! -= u[1];
      col.start(i, best, now);
      const end = tasks[i]!.duration === Infinity ? Infinity : now + tasks[i]!.duration;
      if (end !== Infinity) {
        let lo = 0, hi = ends.length;
        while (lo < hi) { const mid = (lo + hi) >> 1; if (ends[mid]!.t <= end) lo = mid + 1; else hi = mid; }
        ends.splice(lo, 0, { t: end, i, m: best });
      }
    }
    pending.length = keep;
    if (o.abortOverPending !== undefined && overdue > o.abortOverPending) return undefined;
  }
  return col.finish('monolithic', lastTime, o.pendingAfterMs, { offersPerLaunch: 0, wallMs: performance.now() - t0 });
}
