/**
 * The laboratory: for each seed, one workload; for each strategy, Borg-style
 * compaction — the smallest cluster that runs the workload with at most 0.2%
 * of tasks pending (not placed within `pendingAfterMs` of arrival) — and the
 * metrics of the run at that size.
 *
 * Compaction assumes what Borg's does: needing no more machines as the cluster
 * grows (monotone). It starts from a hint (FFD's count, or the lower bound),
 * grows by 12.5% steps until a size passes, then bisects down to the lower
 * bound. A probe that passes its pending budget stops early (it can only fail).
 * FFD is offline: its machine count is exact by construction and it has no
 * time metrics.
 */
import { BerthError } from '../../proto/errors.js';
import { mixSeed } from '../../master/allocator/rng.js';
import { lowerBound, type RunMetrics } from './metrics.js';
import { runOfferPath } from './offer-path.js';
import { ffdMachines, runMonolithic } from './reference.js';
import { OFFER_STRATEGIES } from './strategies/index.js';
import type { Workload } from './workload.js';

export const PENDING_SHARE = 0.002;

export interface LabOptions {
  strategies: string[];
  seeds: number[];
  pendingAfterMs: number;
  sampleMs: number;
  /** Called after every probe run (for a progress bar). */
  onProbe?: (label: string) => void;
}

export interface StrategyRun {
  strategy: string;
  seed: number;
  lowerBound: number;
  machines: number;
  ratio: number;
  probes: number;
  /** Metrics at `machines` (undefined for ffd, which has no timeline). */
  metrics?: RunMetrics;
}

export interface LabResult {
  workload: string;
  tasks: number[];
  options: Omit<LabOptions, 'onProbe'>;
  runs: StrategyRun[];
}

async function probe(w: Workload, strategy: string, machines: number, seed: number, o: LabOptions, abort: boolean): Promise<RunMetrics | undefined> {
  const budget = Math.floor(PENDING_SHARE * w.tasks.length);
  const common = { pendingAfterMs: o.pendingAfterMs, sampleMs: o.sampleMs, abortOverPending: abort ? budget : undefined };
  const r = strategy === 'monolithic'
    ? runMonolithic(w, machines, common)
    : await runOfferPath(w, OFFER_STRATEGIES[strategy]!, machines, { ...common, seed: mixSeed(seed, machines) });
  o.onProbe?.(`${strategy} seed ${seed}: ${machines} machines${r ? `, ${r.pending} pending` : ', over budget'}`);
  if (!r || r.pending > budget) return undefined;
  return r;
}

/** Smallest passing cluster for one strategy, bounded below by `lb`. */
export async function compact(w: Workload, strategy: string, seed: number, lb: number, hint: number, o: LabOptions): Promise<StrategyRun> {
  let probes = 0;
  let hi = Math.max(lb, hint);
  let best: RunMetrics | undefined;
  const limit = Math.max(lb, w.tasks.length) * 2;
  for (;;) {
    probes++;
    best = await probe(w, strategy, hi, seed, o, true);
    if (best) break;
    if (hi >= limit) throw new BerthError('INVALID', `compaction: ${strategy} still leaves more than ${PENDING_SHARE * 100}% of tasks pending at ${hi} machines (a task larger than a machine?)`);
    hi = Math.min(limit, Math.max(hi + 1, Math.ceil(hi * 1.125)));
  }
  let lo = lb - 1; // below the lower bound nothing passes (assumed, not probed)
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    probes++;
    const r = await probe(w, strategy, mid, seed, o, true);
    if (r) { hi = mid; best = r; } else lo = mid;
  }
  return { strategy, seed, lowerBound: lb, machines: hi, ratio: hi / lb, probes, metrics: best };
}

export async function runLab(workloadFor: (seed: number) => Workload, o: LabOptions): Promise<LabResult> {
  const runs: StrategyRun[] = [];
  const tasks: number[] = [];
  let name = '';
  for (const seed of o.seeds) {
    const w = workloadFor(seed);
    name = w.name;
    tasks.push(w.tasks.length);
    const lb = lowerBound(w);
    const ffd = ffdMachines(w);
    for (const s of o.strategies) {
      if (s === 'ffd') {
        runs.push({ strategy: 'ffd', seed, lowerBound: lb, machines: ffd, ratio: ffd / lb, probes: 0 });
        o.onProbe?.(`ffd seed ${seed}: ${ffd} machines`);
        continue;
      }
      runs.push(await compact(w, s, seed, lb, ffd, o));
    }
  }
  const { onProbe: _ignored, ...options } = o;
  return { workload: name, tasks, options, runs };
}

/** Per strategy over seeds: mean, min and max of machines needed and of the ratio to the lower bound. */
export function summarise(r: LabResult): { strategy: string; machines: number; min: number; max: number; lb: number; ratio: number; ratioMin: number; ratioMax: number; runs: StrategyRun[] }[] {
  return r.options.strategies.map((s) => {
    const rs = r.runs.filter((x) => x.strategy === s);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    return {
      strategy: s, runs: rs,
      machines: mean(rs.map((x) => x.machines)), min: Math.min(...rs.map((x) => x.machines)), max: Math.max(...rs.map((x) => x.machines)),
      lb: mean(rs.map((x) => x.lowerBound)),
      ratio: mean(rs.map((x) => x.ratio)), ratioMin: Math.min(...rs.map((x) => x.ratio)), ratioMax: Math.max(...rs.map((x) => x.ratio)),
    };
  });
}
