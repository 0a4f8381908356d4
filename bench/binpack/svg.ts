/**
 * Self-contained SVG charts for the laboratory's report (no library found that
 * renders SVG server-side without a DOM or a headless browser, so these are
 * written directly: a line chart and a bar chart with min/max whiskers).
 * Output is deterministic text: the same numbers give the same bytes.
 */
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const f = (n: number): string => (Math.round(n * 10) / 10).toString();

export interface Line { name: string; xs: number[]; ys: number[] }
export interface Bar { label: string; value: number; min?: number; max?: number }

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return `${Math.round(v / 100) / 10}k`;
  if (Math.abs(v) >= 10) return String(Math.round(v));
  return String(Math.round(v * 100) / 100);
}

function frame(title: string, w: number, h: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">`
    + `<rect width="${w}" height="${h}" fill="#fff"/><text x="${w / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>${body}</svg>`;
}

export function lineChart(title: string, lines: Line[], xLabel: string, yLabel: string, opts: { yMax?: number; xMax?: number } = {}): string {
  const W = 720, H = 360, L = 60, R = 150, T = 30, B = 45;
  const pw = W - L - R, ph = H - T - B;
  const xMax = niceMax(opts.xMax ?? Math.max(1e-9, ...lines.flatMap((l) => l.xs)));
  const yMax = opts.yMax ?? niceMax(Math.max(1e-9, ...lines.flatMap((l) => l.ys)));
  const X = (x: number): number => L + (Math.min(x, xMax) / xMax) * pw;
  const Y = (y: number): number => T + ph - (Math.min(y, yMax) / yMax) * ph;
  let body = '';
  for (let i = 0; i <= 5; i++) {
    const yv = (yMax * i) / 5, xv = (xMax * i) / 5;
    body += `<line x1="${L}" x2="${L + pw}" y1="${f(Y(yv))}" y2="${f(Y(yv))}" stroke="#eee"/><text x="${L - 6}" y="${f(Y(yv) + 4)}" text-anchor="end">${fmtTick(yv)}</text>`;
    body += `<text x="${f(X(xv))}" y="${T + ph + 16}" text-anchor="middle">${fmtTick(xv)}</text>`;
  }
  body += `<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`;
  body += `<text x="${L + pw / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`;
  body += `<text transform="translate(14 ${T + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`;
  lines.forEach((l, i) => {
    const c = PALETTE[i % PALETTE.length]!;
    const pts = l.xs.map((x, k) => `${f(X(x))},${f(Y(l.ys[k]!))}`).join(' ');
    body += `<polyline fill="none" stroke="${c}" stroke-width="1.6" points="${pts}"/>`;
    body += `<rect x="${L + pw + 12}" y="${T + 8 + i * 18}" width="12" height="3" fill="${c}"/><text x="${L + pw + 30}" y="${T + 13 + i * 18}">${esc(l.name)}</text>`;
  });
  return frame(title, W, H, body);
}

export function barChart(title: string, bars: Bar[], yLabel: string, ref?: { value: number; label: string }): string {
  const W = 720, H = 360, L = 60, R = 20, T = 30, B = 60;
  const pw = W - L - R, ph = H - T - B;
  const yMax = niceMax(Math.max(ref?.value ?? 0, ...bars.map((b) => b.max ?? b.value)) * 1.05);
  const Y = (y: number): number => T + ph - (y / yMax) * ph;
  const slot = pw / Math.max(1, bars.length);
  let body = '';
  for (let i = 0; i <= 5; i++) {
    const yv = (yMax * i) / 5;
    body += `<line x1="${L}" x2="${L + pw}" y1="${f(Y(yv))}" y2="${f(Y(yv))}" stroke="#eee"/><text x="${L - 6}" y="${f(Y(yv) + 4)}" text-anchor="end">${fmtTick(yv)}</text>`;
  }
  bars.forEach((b, i) => {
    const c = PALETTE[i % PALETTE.length]!;
    const x = L + i * slot + slot * 0.2, bw = slot * 0.6;
    body += `<rect x="${f(x)}" y="${f(Y(b.value))}" width="${f(bw)}" height="${f(T + ph - Y(b.value))}" fill="${c}"/>`;
    if (b.min !== undefined && b.max !== undefined) {
      const cx = x + bw / 2;
      body += `<line x1="${f(cx)}" x2="${f(cx)}" y1="${f(Y(b.min))}" y2="${f(Y(b.max))}" stroke="#000"/>`
        + `<line x1="${f(cx - 6)}" x2="${f(cx + 6)}" y1="${f(Y(b.min))}" y2="${f(Y(b.min))}" stroke="#000"/>`
        + `<line x1="${f(cx - 6)}" x2="${f(cx + 6)}" y1="${f(Y(b.max))}" y2="${f(Y(b.max))}" stroke="#000"/>`;
    }
    body += `<text x="${f(x + bw / 2)}" y="${f(Y(b.max ?? b.value) - 6)}" text-anchor="middle">${fmtTick(b.value)}</text>`;
    body += `<text x="${f(x + bw / 2)}" y="${T + ph + 16}" text-anchor="middle">${esc(b.label)}</text>`;
  });
  if (ref) {
    body += `<line x1="${L}" x2="${L + pw}" y1="${f(Y(ref.value))}" y2="${f(Y(ref.value))}" stroke="#000" stroke-dasharray="6 4"/>`
      + `<text x="${L + pw - 4}" y="${f(Y(ref.value) - 5)}" text-anchor="end">${esc(ref.label)}</text>`;
  }
  body += `<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`;
  body += `<text transform="translate(14 ${T + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`;
  return frame(title, W, H, body);
}
