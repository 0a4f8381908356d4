/**
 * Workloads for the bin-packing laboratory: what arrives, when, how big, for
 * how long. A workload is data (sorted by arrival), so the same one is replayed
 * against every strategy; it comes from the seeded generator below or from a
 * trace reader (traces.ts).
 *
 * The generator's shape follows published analyses of production traces; each
 * parameter says where its shape comes from. Absolute rates and scales are the
 * laboratory's calibration (chosen so the default mix fills ~100 machines and
 * a `--quick` run finishes in seconds); the shapes are what the sources give:
 *
 *  [G11] Reiss, Tumanov, Ganger, Katz, Kozuch. "Heterogeneity and dynamicity of
 *        clouds at scale: Google trace analysis", SoCC 2012 (cluster-data 2011):
 *        most jobs are short batch jobs with few tasks, a heavy tail of jobs with
 *        thousands of tasks; task durations heavy-tailed (most minutes, a few
 *        run for the whole trace); requests are small fractions of a machine and
 *        vary continuously; cpu and memory requests are positively correlated
 *        but with a wide spread of cpu:memory ratios.
 *  [G19] Tirmazi et al. "Borg: the next generation", EuroSys 2020 (cluster-data
 *        2019): the same heavy tails, stronger (the top 1% of jobs by size use
 *        the large majority of resources); Poisson-like arrivals at minute scale.
 *  [A18] Alibaba cluster-trace-v2018 (schema.md) and its analyses (Guo et al.,
 *        IWQoS 2019): batch instances are short (seconds to minutes) and small
 *        (plan_cpu mostly 50-100 = 0.5-1 core on 96-core machines, many batch
 *        tasks far smaller), colocated with long-running online services that
 *        live for the whole 8 days.
 */
import { Rng } from '../../master/allocator/rng.js';

export type TaskClass = 'batch' | 'service';

export interface WorkTask {
  /** Unique in the workload. */
  id: string;
  job: string;
  cls: TaskClass;
  /** Virtual ms from the start of the run. */
  arrival: number;
  /** Virtual ms it runs once placed; Infinity for a service (runs until the run ends). */
  duration: number;
  cpus: number;
  /** MB. */
  mem: number;
}

export interface Machine { cpus: number; mem: number }

export interface Workload {
  name: string;
  machine: Machine;
  /** Arrivals happen in [0, horizon); services run until the horizon. */
  horizonMs: number;
  /** Sorted by arrival, then id. */
  tasks: WorkTask[];
}

export interface MixParams {
  /** Virtual length of the arrival window (ms). */
  horizonMs: number;
  machine: Machine;
  /** Poisson arrival rate of batch jobs, per virtual minute [G19: Poisson-like at minute scale]. */
  batchJobsPerMin: number;
  /** Poisson arrival rate of service jobs, per virtual minute. */
  serviceJobsPerMin: number;
  /** Services present at time 0 (a cell is never empty of services [A18]). */
  initialServiceJobs: number;
  /** Tasks per batch job: 1 + Pareto(α) − 1, capped [G11: most jobs 1 task, a heavy tail of thousands]. */
  batchTasksAlpha: number;
  batchTasksMax: number;
  /** Tasks per service job: uniform in [1, max]. */
  serviceTasksMax: number;
  /** Batch duration: lognormal (median s, σ), capped at the horizon [G11, A18: heavy-tailed, median minutes]. */
  batchDurationMedianS: number;
  batchDurationSigma: number;
  /** Batch cpu: lognormal (median cores, σ), clamped [min, max] [A18: many batch tasks well under 1 core]. */
  batchCpuMedian: number;
  batchCpuSigma: number;
  /** Service cpu: lognormal (median cores, σ), clamped [min, max]. */
  serviceCpuMedian: number;
  serviceCpuSigma: number;
  cpuMin: number;
  cpuMax: number;
  /** mem = cpus × memPerCpuMedian × lognormal(σ) [G11: correlated cpu:mem with a wide spread]. */
  memPerCpuMedianMb: number;
  memPerCpuSigma: number;
  memMinMb: number;
}

/** The default mix: ~100 busy 32-core machines of batch and services over 20 virtual minutes. */
export const DEFAULT_MIX: MixParams = {
  horizonMs: 20 * 60_000,
  machine: { cpus: 32, mem: 131_072 },
  batchJobsPerMin: 25,
  serviceJobsPerMin: 1,
  initialServiceJobs: 100,
  batchTasksAlpha: 1.1,
  batchTasksMax: 400,
  serviceTasksMax: 20,
  batchDurationMedianS: 90,
  batchDurationSigma: 1.4,
  batchCpuMedian: 0.15,
  batchCpuSigma: 1.2,
  serviceCpuMedian: 1.5,
  serviceCpuSigma: 0.8,
  cpuMin: 0.01,
  cpuMax: 16,
  memPerCpuMedianMb: 3072,
  memPerCpuSigma: 0.7,
  memMinMb: 16,
};

/** A smaller mix for `--quick`: same shapes, about half the load, 10 virtual minutes. */
export const QUICK_MIX: MixParams = {
  ...DEFAULT_MIX,
  horizonMs: 10 * 60_000,
  batchJobsPerMin: 12,
  serviceJobsPerMin: 0.5,
  initialServiceJobs: 40,
  batchTasksMax: 200,
};

/** Standard normal by Box-Muller from the seeded generator (two draws per value, deterministic). */
function normal(rng: Rng): number {
  const u = Math.max(rng.next(), 1e-12);
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
const lognormal = (rng: Rng, median: number, sigma: number): number => median * Math.exp(sigma * normal(rng));
/** Exponential inter-arrival for a Poisson process of `perMs`. */
const expo = (rng: Rng, perMs: number): number => -Math.log(Math.max(1 - rng.next(), 1e-12)) / perMs;
const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));
/** Amounts are kept to Mesos precision (thousandths of a cpu, whole MB). */
const milli = (x: number): number => Math.round(x * 1000) / 1000;

/** Generates a batch + service mix. Same params and seed → the same workload, value for value. */
export function generateMix(params: MixParams, seed: number, name = 'mix'): Workload {
  const rng = new Rng(seed);
  const p = params;
  const tasks: WorkTask[] = [];
  let jobN = 0;
  const size = (cls: TaskClass): { cpus: number; mem: number } => {
    const cpus = milli(clamp(cls === 'batch' ? lognormal(rng, p.batchCpuMedian, p.batchCpuSigma) : lognormal(rng, p.serviceCpuMedian, p.serviceCpuSigma), p.cpuMin, Math.min(p.cpuMax, p.machine.cpus)));
    const mem = Math.round(clamp(cpus * lognormal(rng, p.memPerCpuMedianMb, p.memPerCpuSigma), p.memMinMb, p.machine.mem / 2));
    return { cpus, mem };
  };
  const addJob = (cls: TaskClass, at: number): void => {
    const job = `${cls}-${jobN++}`;
    const n = cls === 'batch'
      ? Math.min(p.batchTasksMax, Math.floor(1 / Math.pow(Math.max(1 - rng.next(), 1e-12), 1 / p.batchTasksAlpha)))
      : 1 + rng.below(p.serviceTasksMax);
    // Tasks of a job share a shape (one binary, one request) as in the traces [G11].
    const shape = size(cls);
    const medianMs = p.batchDurationMedianS * 1000;
    for (let i = 0; i < n; i++) {
      const duration = cls === 'service' ? Infinity
        : Math.max(1000, Math.min(p.horizonMs, Math.round(lognormal(rng, medianMs, p.batchDurationSigma))));
      tasks.push({ id: `${job}-${i}`, job, cls, arrival: Math.round(at), duration, cpus: shape.cpus, mem: shape.mem });
    }
  };
  for (let i = 0; i < p.initialServiceJobs; i++) addJob('service', 0);
  for (const [cls, perMin] of [['batch', p.batchJobsPerMin], ['service', p.serviceJobsPerMin]] as const) {
    if (perMin <= 0) continue;
    for (let t = expo(rng, perMin / 60_000); t < p.horizonMs; t += expo(rng, perMin / 60_000)) addJob(cls, t);
  }
  return { name, machine: p.machine, horizonMs: p.horizonMs, tasks: sortTasks(tasks) };
}

export function sortTasks(tasks: WorkTask[]): WorkTask[] {
  return tasks.sort((a, b) => a.arrival - b.arrival || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
