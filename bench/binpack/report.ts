/**
 * The laboratory's outputs: a text table (stderr), JSON-line figures (stdout,
 * bench/report.ts convention) and a self-contained HTML report with SVG
 * charts. Everything but wall time and placements/s is a deterministic
 * function of the workload, strategies and seeds.
 */
import { summarise, type LabResult, type StrategyRun } from './lab.js';
import type { RunMetrics } from './metrics.js';
import { barChart, lineChart } from './svg.js';

export interface Row {
  strategy: string;
  machines: number; min: number; max: number; lb: number; ratio: number;
  util: number[]; stranded: number[]; frag: number[];
  pendP50: number[]; pendP99: number[];
  makespanS: number; jctMeanS: number; offersPerLaunch: number; wallMs: number; placementsPerS: number;
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export function rows(r: LabResult): Row[] {
  return summarise(r).map((s) => {
    const ms = s.runs.map((x) => x.metrics).filter((m): m is RunMetrics => !!m);
    const avg = (g: (m: RunMetrics) => number): number => mean(ms.map(g));
    return {
      strategy: s.strategy, machines: s.machines, min: s.min, max: s.max, lb: s.lb, ratio: s.ratio,
      util: [0, 1].map((d) => avg((m) => m.util[d]!)), stranded: [0, 1].map((d) => avg((m) => m.stranded[d]!)),
      frag: [0, 1].map((d) => avg((m) => m.frag[d]!)),
      pendP50: [avg((m) => m.pendingP50.batch), avg((m) => m.pendingP50.service)],
      pendP99: [avg((m) => m.pendingP99.batch), avg((m) => m.pendingP99.service)],
      makespanS: avg((m) => m.makespanS), jctMeanS: avg((m) => m.jctMeanS), offersPerLaunch: avg((m) => m.offersPerLaunch),
      wallMs: avg((m) => m.wallMs), placementsPerS: avg((m) => m.placementsPerS),
    };
  });
}

const n = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : '—');
const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '—');

export const COLUMNS = ['strategy', 'machines [min-max]', 'lower bound', 'ratio', 'util cpu/mem', 'stranded cpu/mem', 'frag cpu/mem',
  'pending p50/p99 batch s', 'pending p50/p99 service s', 'makespan s', 'JCT mean s', 'offers/launch', 'wall ms', 'placements/s'];

export function cells(x: Row): string[] {
  return [
    x.strategy, `${n(x.machines, 1)} [${x.min}-${x.max}]`, n(x.lb, 1), n(x.ratio, 3),
    `${pct(x.util[0]!)}/${pct(x.util[1]!)}`, `${pct(x.stranded[0]!)}/${pct(x.stranded[1]!)}`, `${pct(x.frag[0]!)}/${pct(x.frag[1]!)}`,
    `${n(x.pendP50[0]!, 1)}/${n(x.pendP99[0]!, 1)}`, `${n(x.pendP50[1]!, 1)}/${n(x.pendP99[1]!, 1)}`,
    n(x.makespanS, 0), n(x.jctMeanS, 1), n(x.offersPerLaunch, 2), n(x.wallMs, 0), n(x.placementsPerS, 0),
  ];
}

export function textTable(r: LabResult): string {
  const body = rows(r).map(cells);
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
  const line = (cs: string[]): string => cs.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(COLUMNS), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** The charts, by file-friendly name. Time series and CDFs show the first seed. */
export function charts(r: LabResult): Record<string, string> {
  const rs = rows(r);
  const first = (s: string): StrategyRun | undefined => r.runs.find((x) => x.strategy === s && x.metrics);
  const timed = r.options.strategies.filter((s) => first(s));
  const lb = mean(r.runs.filter((x) => x.strategy === r.options.strategies[0]).map((x) => x.lowerBound));
  const out: Record<string, string> = {};
  out['machines'] = barChart(`Machines needed (≤ ${0.2}% pending after ${r.options.pendingAfterMs / 1000} s), mean and min/max over ${r.options.seeds.length} seed(s)`,
    rs.map((x) => ({ label: x.strategy, value: x.machines, min: x.min, max: x.max })), 'machines', { value: lb, label: `lower bound ${n(lb, 1)}` });
  for (const [d, dim] of [[0, 'cpu'], [1, 'memory']] as const) {
    out[`util-${dim}`] = lineChart(`Allocated ${dim} over time, each strategy at its own machines-needed size (seed ${r.options.seeds[0]})`,
      timed.map((s) => { const m = first(s)!.metrics!; return { name: s, xs: m.series.t, ys: m.series.util[d]! }; }), 'virtual time (s)', `share of cluster ${dim}`, { yMax: 1 });
  }
  out['stranded'] = barChart('Stranded capacity: free on machines full in another dimension (mean over time and seeds)',
    rs.filter((x) => Number.isFinite(x.stranded[0]!)).flatMap((x) => [{ label: `${x.strategy} cpu`, value: x.stranded[0]! * 100 }, { label: `${x.strategy} mem`, value: x.stranded[1]! * 100 }]), '% of cluster');
  out['pending-cdf'] = lineChart(`Pending time CDF, batch tasks (seed ${r.options.seeds[0]})`,
    timed.map((s) => { const c = first(s)!.metrics!.pendingCdf.batch; return { name: s, xs: c, ys: c.map((_, q) => q / 100) }; }), 'pending time (virtual s)', 'share of tasks', { yMax: 1 });
  return out;
}

const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function html(r: LabResult, title: string): string {
  const body = rows(r).map(cells);
  const table = `<table><thead><tr>${COLUMNS.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>`
    + body.map((b) => `<tr>${b.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('') + '</tbody></table>';
  const svgs = Object.values(charts(r)).map((s) => `<figure>${s}</figure>`).join('\n');
  const o = r.options;
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}figure{margin:16px 0}</style></head><body>
<h1>${esc(title)}</h1>
<p>Workload <b>${esc(r.workload)}</b> (${r.tasks.join(', ')} tasks per seed); seeds ${o.seeds.join(', ')}; strategies ${o.strategies.join(', ')};
pending after ${o.pendingAfterMs / 1000} s of virtual time; samples every ${o.sampleMs / 1000} s. Metrics are at each strategy's own machines-needed size;
means over seeds. Wall time and placements/s are real time; everything else replays bit for bit from the seed.</p>
${table}
${svgs}
</body></html>
`;
}
