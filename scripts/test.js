// Runs the uvu suites compiled into dist/test (one process, files in order) and
// ends with the plain totals line `N passed, N failed[, N skipped]` taken from
// uvu's own summary. Optional argument: a regex to select test files.
import { spawn } from 'node:child_process';

const pattern = process.argv[2] ? `^(?=.*(?:${process.argv[2]})).*\\.test\\.js$` : '\\.test\\.js$';
const child = spawn(process.execPath, ['node_modules/uvu/bin.js', 'dist/test', pattern], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, BERTH_TEST: '1' },
});
let out = '';
child.stdout.on('data', (d) => { out += d.toString(); process.stdout.write(d); });
child.on('close', (code) => {
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = /Total:\s+(\d+)/.exec(plain);
  const passed = /Passed:\s+(\d+)/.exec(plain);
  const skipped = /Skipped:\s+(\d+)/.exec(plain);
  if (!total || !passed) {
    console.log('0 passed, 1 failed');
    console.error('test runner did not report totals (a suite crashed before finishing)');
    process.exit(code || 1);
  }
  const t = Number(total[1]); const p = Number(passed[1]); const s = Number(skipped?.[1] ?? 0);
  const failed = t - p;
  console.log(`${p} passed, ${failed} failed${s ? `, ${s} skipped` : ''}`);
  process.exit(failed > 0 ? 1 : code ?? 0);
});
