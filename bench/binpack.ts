/**
 * `npm run bench -- binpack` / `berth bench binpack`: the bin-packing
 * laboratory (docs/binpack.md). Replays a workload against each strategy —
 * through the real master and allocator for the offer-path strategies — finds
 * the machines each needs (Borg-style compaction) and compares them with the
 * lower bound. Prints a table (stderr) and JSON-line figures (stdout), and
 * writes an HTML report with SVG charts.
 *
 *   --workload default|quick|google:PATH|alibaba:PATH   (default: default; quick with --quick)
 *   --strategies a,b,…   default,best-fit,worst-fit,tetris,monolithic,ffd (all)
 *   --seeds N            seeds 1…N (default 3; 1 with --quick)
 *   --quick              the quick mix and one seed: under 2 minutes
 *   --pending-after S    a task is pending if not placed within S virtual seconds (default 10)
 *   --sample S           metrics sample period in virtual seconds (default 10)
 *   --max-tasks N        trace readers keep at most N tasks (default 20000)
 *   --report PATH        HTML report (default bench-results/binpack-report.html)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { BerthError } from '../proto/errors.js';
import { runLab, summarise, type LabResult } from './binpack/lab.js';
import { charts, html, textTable } from './binpack/report.js';
import { parseStrategies, ALL_STRATEGIES } from './binpack/strategies/index.js';
import { readAlibaba2018, readGoogle2011 } from './binpack/traces.js';
import { DEFAULT_MIX, generateMix, QUICK_MIX, type Workload } from './binpack/workload.js';
import { emit, progress } from './report.js';

const posInt = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got '${v}'`);
  return n;
};
const posNum = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got '${v}'`);
  return n;
};

export interface BinpackArgs {
  workload: string; strategies: string[]; seeds: number; quick: boolean; pendingAfter: number; sample: number; maxTasks: number; report: string;
}

export function parseArgs(args: string[]): BinpackArgs {
  const cmd = new Command('binpack').exitOverride().allowUnknownOption().allowExcessArguments()
    .option('--workload <spec>', 'default | quick | google:PATH | alibaba:PATH')
    .option('--strategies <list>', `comma-separated: ${ALL_STRATEGIES.join(',')}`, ALL_STRATEGIES.join(','))
    .option('--seeds <n>', 'number of seeds', posInt('--seeds'))
    .option('--quick', 'quick mix, one seed', false)
    .option('--pending-after <s>', 'pending threshold, virtual seconds', posNum('--pending-after'), 10)
    .option('--sample <s>', 'sample period, virtual seconds', posNum('--sample'), 10)
    .option('--max-tasks <n>', 'trace readers keep at most N tasks', posInt('--max-tasks'), 20_000)
    .option('--report <path>', 'HTML report path', join(process.env.BERTH_BENCH_OUT ?? 'bench-results', 'binpack-report.html'));
  cmd.parse(args, { from: 'user' });
  const o = cmd.opts();
  return {
    workload: o.workload ?? (o.quick ? 'quick' : 'default'), strategies: parseStrategies(o.strategies), seeds: o.seeds ?? (o.quick ? 1 : 3),
    quick: !!o.quick, pendingAfter: o.pendingAfter, sample: o.sample, maxTasks: o.maxTasks, report: o.report,
  };
}

/** Resolves a workload spec to a per-seed factory (traces are read once; their seed only varies the allocator). */
export async function workloadFactory(spec: string, maxTasks: number): Promise<(seed: number) => Workload> {
  if (spec === 'default') return (seed) => generateMix(DEFAULT_MIX, seed, 'default mix');
  if (spec === 'quick') return (seed) => generateMix(QUICK_MIX, seed, 'quick mix');
  const m = /^(google|alibaba):(.+)$/.exec(spec);
  if (!m) throw new BerthError('INVALID', `--workload: expected default, quick, google:PATH or alibaba:PATH, got '${spec}'`);
  const read = m[1] === 'google' ? await readGoogle2011(m[2]!, { maxTasks }) : await readAlibaba2018(m[2]!, { maxTasks });
  for (const [why, count] of Object.entries(read.skipped)) progress(`${m[1]} trace: skipped ${count} rows: ${why}`);
  return () => read.workload;
}

export function emitFigures(r: LabResult): void {
  const s = summarise(r);
  const params = { workload: r.workload, seeds: r.options.seeds.length, tasks: r.tasks, pending_after_s: r.options.pendingAfterMs / 1000 };
  for (const x of s) {
    emit({ name: `binpack.machines_needed.${x.strategy}`, value: x.machines, unit: 'machines', baseline: x.lb, params: { ...params, ratio_to_lower_bound: x.ratio, min: x.min, max: x.max, ratio_min: x.ratioMin, ratio_max: x.ratioMax } });
  }
  const best = s.reduce((a, b) => (b.ratio < a.ratio ? b : a));
  emit({ name: 'binpack.best_ratio', value: best.ratio, unit: 'x lower bound', baseline: 1, params: { ...params, strategy: best.strategy, target: 1.05 } });
  const online = s.filter((x) => x.strategy !== 'ffd');
  const bestOnline = online.length ? online.reduce((a, b) => (b.ratio < a.ratio ? b : a)) : undefined;
  if (bestOnline && bestOnline !== best) emit({ name: 'binpack.best_online_ratio', value: bestOnline.ratio, unit: 'x lower bound', baseline: 1, params: { ...params, strategy: bestOnline.strategy } });
  const def = s.find((x) => x.strategy === 'default');
  if (def) emit({ name: 'binpack.default_gap', value: def.machines / best.machines, unit: 'x best', baseline: 1, params: { ...params, best: best.strategy, default_ratio: def.ratio } });
  const mono = s.find((x) => x.strategy === 'monolithic');
  if (mono && def) emit({ name: 'binpack.two_level_cost', value: def.machines / mono.machines, unit: 'x monolithic', baseline: 1, params: { ...params, monolithic_ratio: mono.ratio, default_ratio: def.ratio } });
  if (mono) emit({ name: 'binpack.monolithic_gap', value: mono.machines / best.machines, unit: 'x best', baseline: 1, params: { ...params, best: best.strategy } });
}

export async function run(args: string[]): Promise<void> {
  const a = parseArgs(args);
  const factory = await workloadFactory(a.workload, a.maxTasks);
  const seeds = Array.from({ length: a.seeds }, (_, i) => i + 1);
  // Probes per strategy are not known in advance; the bar counts strategy × seed units and shows the latest probe.
  const bar = new SingleBar({ format: 'binpack [{bar}] {value}/{total} {label}', stream: process.stderr, hideCursor: true, clearOnComplete: true, noTTYOutput: true, notTTYSchedule: 10_000 }, Presets.shades_classic);
  const units = a.strategies.length * seeds.length;
  bar.start(units, 0, { label: '' });
  let lastKey = '';
  let done = 0;
  const t0 = performance.now();
  const result = await runLab(factory, {
    strategies: a.strategies, seeds, pendingAfterMs: a.pendingAfter * 1000, sampleMs: a.sample * 1000,
    onProbe: (label) => {
      const key = label.split(':')[0]!;
      if (key !== lastKey) { if (lastKey) done++; lastKey = key; }
      bar.update(Math.min(done, units), { label });
    },
  });
  bar.update(units, { label: 'done' });
  bar.stop();
  process.stderr.write(`${textTable(result)}\n`);
  emitFigures(result);
  mkdirSync(dirname(a.report), { recursive: true });
  writeFileSync(a.report, html(result, `Berth bin-packing laboratory: ${result.workload}`));
  for (const [name, svg] of Object.entries(charts(result))) writeFileSync(join(dirname(a.report), `binpack-${name}.svg`), svg);
  progress(`report: ${a.report} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
