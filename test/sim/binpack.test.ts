/**
 * The bin-packing laboratory on workloads small enough to compute by hand, and
 * its determinism: the same seed gives the same numbers, bit for bit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lowerBound } from '../../bench/binpack/metrics.js';
import { ffdMachines, runMonolithic } from '../../bench/binpack/reference.js';
import { runOfferPath } from '../../bench/binpack/offer-path.js';
import { compact, runLab, type LabResult } from '../../bench/binpack/lab.js';
import { OFFER_STRATEGIES } from '../../bench/binpack/strategies/index.js';
import { generateMix, QUICK_MIX, type Workload, type WorkTask } from '../../bench/binpack/workload.js';

const svc = (id: string, cpus: number, mem: number): WorkTask => ({ id, job: id, cls: 'service', arrival: 0, duration: Infinity, cpus, mem });

/**
 * Machines of 4 cpus / 4096 MB. Four services from t=0: two cpu-heavy (3 cpus,
 * 1024 MB) and two memory-heavy (1 cpu, 3072 MB); one batch task taking a whole
 * machine from 10 s to 30 s. Horizon 100 s.
 *  - lower bound: during [10 s, 30 s) cpu demand is 3+3+1+1+4 = 12 cpus → 3
 *    machines (memory alike, and three items over half a machine in each
 *    dimension) → 3.
 *  - FFD (largest normalised dimension, then sum; ties by id): e (1.0) opens
 *    m0; a (0.75) cannot share m0 during e → m1; b cannot join a (6 cpus) → m2;
 *    c fits beside a (4 cpus, 4096 MB) → m1; d beside b → m2. 3 machines.
 *  - utilisation on 3 machines over 100 s: cpu (8×100 + 4×20) / (3×4×100) =
 *    880/1200; memory (8192×100 + 4096×20) / (3×4096×100) = 880/1200.
 */
const tiny: Workload = {
  name: 'tiny', machine: { cpus: 4, mem: 4096 }, horizonMs: 100_000,
  tasks: [svc('a', 3, 1024), svc('b', 3, 1024), svc('c', 1, 3072), svc('d', 1, 3072),
    { id: 'e', job: 'e', cls: 'batch', arrival: 10_000, duration: 20_000, cpus: 4, mem: 4096 }],
};
const opts = { pendingAfterMs: 10_000, sampleMs: 10_000 };

test('tiny workload: the lower bound and FFD machine count match the hand computation', () => {
  assert.is(lowerBound(tiny), 3);
  assert.is(ffdMachines(tiny), 3);
});

test('tiny workload through the real master with best-fit: fits on 3 machines with the hand-computed utilisation', async () => {
  const r = await runOfferPath(tiny, OFFER_STRATEGIES['best-fit']!, 3, { ...opts, seed: 1 });
  assert.ok(r);
  assert.is(r.placed, 5);
  assert.is(r.pending, 0);
  assert.is(r.util[0], 880 / 1200);
  assert.is(r.util[1], 880 / 1200);
  assert.is(r.makespanS, 30, 'the batch task ran from 10 s to 30 s');
  const c = await compact(tiny, 'best-fit', 1, lowerBound(tiny), 5, { strategies: ['best-fit'], seeds: [1], ...opts });
  assert.is(c.machines, 3, 'compaction finds the 3-machine cluster');
  assert.is(c.ratio, 1);
});

test('tiny workload: worst-fit puts each service on its own machine, so the whole-machine task needs a fifth', async () => {
  const r = await runOfferPath(tiny, OFFER_STRATEGIES['worst-fit']!, 3, { ...opts, seed: 1 });
  assert.ok(r);
  assert.is(r.pending, 1, 'task e found no empty machine');
  const c = await compact(tiny, 'worst-fit', 1, 3, 3, { strategies: ['worst-fit'], seeds: [1], ...opts });
  assert.is(c.machines, 5, 'four machines each hold one service; e needs an empty one');
});

test('tiny workload: the monolithic global best-fit reference matches the same numbers', () => {
  const r = runMonolithic(tiny, 3, opts)!;
  assert.is(r.pending, 0);
  assert.is(r.util[0], 880 / 1200);
  assert.is(r.util[1], 880 / 1200);
});

/**
 * Machines of 4 cpus / 4096 MB, batch only: small tasks x1 (t=0) and x2 (t=1 s),
 * 1 cpu / 1024 MB for 100 s, then a whole-machine task at t=5 s for 10 s.
 * Lower bound 2 (6 cpus during [5 s, 15 s)). Packing the small tasks together
 * leaves a machine empty for the big one.
 */
const holes: Workload = {
  name: 'holes', machine: { cpus: 4, mem: 4096 }, horizonMs: 120_000,
  tasks: [
    { id: 'x1', job: 'x1', cls: 'batch', arrival: 0, duration: 100_000, cpus: 1, mem: 1024 },
    { id: 'x2', job: 'x2', cls: 'batch', arrival: 1000, duration: 100_000, cpus: 1, mem: 1024 },
    { id: 'big', job: 'big', cls: 'batch', arrival: 5000, duration: 10_000, cpus: 4, mem: 4096 },
  ],
};

test('class-aware packs batch tasks together, so a later whole-machine task finds an empty machine at once', async () => {
  assert.is(lowerBound(holes), 2);
  const r = await runOfferPath(holes, OFFER_STRATEGIES['class-aware']!, 2, { ...opts, seed: 1 });
  assert.ok(r);
  assert.is(r.pending, 0, 'the big task was placed at once');
  const c = await compact(holes, 'class-aware', 1, 2, 2, { strategies: ['class-aware'], seeds: [1], ...opts });
  assert.is(c.machines, 2);
  assert.is(c.ratio, 1);
});

/** Everything but real time. */
function replayable(r: LabResult): string {
  return JSON.stringify(r, (k, v) => (k === 'wallMs' || k === 'placementsPerS' ? undefined : v));
}

test('two lab runs with the same seed give identical results, bit for bit; another seed differs', async () => {
  const mix = { ...QUICK_MIX, horizonMs: 3 * 60_000, initialServiceJobs: 6, batchJobsPerMin: 6, serviceJobsPerMin: 0.5, batchTasksMax: 40 };
  const lab = (seed: number): Promise<LabResult> => runLab((s) => generateMix(mix, s), { strategies: ['default', 'tetris', 'monolithic', 'ffd'], seeds: [seed], ...opts });
  const a = replayable(await lab(7));
  const b = replayable(await lab(7));
  assert.ok(a === b, 'same seed, same results');
  assert.not.ok(a === replayable(await lab(8)), 'a different seed gives a different workload');
});

test.run();
