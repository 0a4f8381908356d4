/**
 * `npm run bench -- NAME [NAME…]`: runs the named suites (bench/NAME.ts, each
 * exporting `run(args)`), or lists them. Figures: JSON lines on stdout.
 */
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progress } from './report.js';

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
for (const name of names) {
  progress(`bench ${name}`);
  const mod = (await import(`./${name}.js`)) as { run: (args: string[]) => Promise<void> };
  await mod.run(process.argv.slice(2));
}
process.exit(0);
