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

const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
if (names.length === 0) {
  process.stderr.write(`usage: npm run bench -- <suite>…\nsuites: ${suites.join(', ')}\n`);
  process.exit(2);
}
for (const name of names) {
  if (!suites.includes(name)) {
    process.stderr.write(`unknown bench suite '${name}'; suites: ${suites.join(', ')}\n`);
    process.exit(2);
  }
}
for (const name of names) {
  progress(`bench ${name}`);
  const mod = (await import(`./${name}.js`)) as { run: (args: string[]) => Promise<void> };
  await mod.run(process.argv.slice(2));
}
process.exit(0);
