/**
 * `npm run bench -- NAME [NAME…]`: runs the named suites (bench/NAME.ts, each
 * exporting `run(args)`), or lists them. Figures: JSON lines on stdout.
 */
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync, writeFileSync } from 'node:fs';
import { chartSvg, emitted, progress } from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
const suites = readdirSync(here).filter((f) => f.endsWith('.js') && !['main.js', 'report.js'].includes(f) && !f.includes('-')).map((f) => f.slice(0, -3));

// Suite names are the bare words that name a suite; a bare word right after a flag is that
// flag's value (`--reps 2`); any other bare word is a mistake worth reporting.
const args = process.argv.slice(2);
const names = args.filter((a) => suites.includes(a));
const stray = args.filter((a, i) => !a.startsWith('-') && !suites.includes(a) && !(args[i - 1]?.startsWith('--') && !args[i - 1]!.includes('=')));
if (names.length === 0 || stray.length > 0) {
  if (stray.length > 0) process.stderr.write(`unknown bench suite '${stray[0]}'\n`);
  process.stderr.write(`usage: npm run bench -- <suite>… [--flag value]\nsuites: ${suites.join(', ')}\n`);
  process.exit(2);
}
const outDir = process.env.BERTH_BENCH_OUT ?? 'bench-results';
for (const name of names) {
  progress(`bench ${name}`);
  const mod = (await import(`./${name}.js`)) as { run: (args: string[]) => Promise<void> };
  const first = emitted.length;
  await mod.run(process.argv.slice(2));
  const figures = emitted.slice(first);
  if (figures.length > 0) {
    mkdirSync(outDir, { recursive: true });
    const file = `${outDir}/${name}.svg`;
    writeFileSync(file, chartSvg(`npm run bench -- ${name}`, figures));
    progress(`chart: ${file}`);
  }
}
process.exit(0);
