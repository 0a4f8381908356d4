/**
 * Bench output convention (DESIGN.md): one JSON object per figure on stdout,
 * a human table on stderr. Every figure carries the baseline it is compared
 * to, measured in the same run; timings are medians with min/max in params.
 */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: number | null;
  params?: Record<string, unknown>;
}

export function emit(f: Figure): void {
  process.stdout.write(JSON.stringify(f) + '\n');
  const base = f.baseline === undefined || f.baseline === null ? '' : `  (baseline ${fmt(f.baseline)} ${f.unit}, ratio ${fmt(f.value / f.baseline)})`;
  process.stderr.write(`${f.name.padEnd(44)} ${fmt(f.value).padStart(12)} ${f.unit}${base}\n`);
}

export function progress(msg: string): void { process.stderr.write(`… ${msg}\n`); }

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(3);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
