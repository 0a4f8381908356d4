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

/** Every figure emitted in this process, for the chart written at the end of a suite. */
export const emitted: Figure[] = [];

export function emit(f: Figure): void {
  emitted.push(f);
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

const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * An SVG chart of figures against their baselines: one row per figure, two bars scaled to
 * the larger of the pair (value dark, baseline light), labelled with numbers, unit and ratio.
 * Figures without a baseline are listed with their value only.
 */
export function chartSvg(title: string, figures: Figure[]): string {
  const rowH = 34;
  const labelW = 300;
  const barW = 360;
  const width = labelW + barW + 190;
  const height = 48 + figures.length * rowH;
  const rows = figures.map((f, i) => {
    const y = 40 + i * rowH;
    const base = typeof f.baseline === 'number' && Number.isFinite(f.baseline) ? f.baseline : undefined;
    const max = Math.max(Math.abs(f.value), Math.abs(base ?? 0)) || 1;
    const w = (v: number): number => Math.max(1, (Math.abs(v) / max) * barW);
    const ratio = base ? `  ×${(f.value / base).toFixed(2)} of baseline` : '';
    return [
      `<text x="8" y="${y + 14}" font-size="12">${esc(f.name)}</text>`,
      `<rect x="${labelW}" y="${y + 2}" width="${w(f.value).toFixed(1)}" height="12" fill="#2b6cb0"/>`,
      base !== undefined ? `<rect x="${labelW}" y="${y + 16}" width="${w(base).toFixed(1)}" height="8" fill="#a0aec0"/>` : '',
      `<text x="${labelW + barW + 8}" y="${y + 12}" font-size="11">${esc(`${fmt(f.value)} ${f.unit}`)}</text>`,
      base !== undefined ? `<text x="${labelW + barW + 8}" y="${y + 25}" font-size="10" fill="#4a5568">${esc(`base ${fmt(base)}${ratio}`)}</text>` : '',
    ].join('');
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/><text x="8" y="22" font-size="15" font-weight="bold">${esc(title)}</text>` +
    `<text x="${labelW}" y="22" font-size="10" fill="#4a5568">dark: Berth   light: baseline measured in the same run</text>` +
    rows.join('') + '</svg>\n';
}
