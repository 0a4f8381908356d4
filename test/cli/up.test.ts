/**
 * `berth up`'s flags for the mix: --agent-resources declares each agent's resources (each keeps
 * its own port slice unless ports are given), and bad values of it, --weights or the framework
 * roles stop `berth up` before anything starts, naming the flag.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { declared } from '../../cli/up.js';
import { berthCli } from '../helpers/berth-up.js';

test('--agent-resources gives every agent the declared resources and its own slice of ports', () => {
  const split = ['cpus:1;mem:100;ports:[31000-31499]', 'cpus:1;mem:100;ports:[31500-32000]'];
  assert.equal(declared('cpus:8;mem:16384', split), ['cpus:8;mem:16384;ports:[31000-31499]', 'cpus:8;mem:16384;ports:[31500-32000]']);
  assert.equal(declared('cpus:8;ports:[40000-40010]', split), ['cpus:8;ports:[40000-40010]', 'cpus:8;ports:[40000-40010]'], 'given ports are kept');
});

test('bad --agent-resources is refused naming the flag', () => {
  assert.throws(() => declared('cpus:lots', ['cpus:1;ports:[1-2]']), /--agent-resources: /);
});

test('berth up refuses bad --weights, --batch-role and --agent-resources (and --weights with --cluster) before starting anything', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-up-flags-'));
  try {
    const cases: [string[], RegExp][] = [
      [['--weights', 'batch=0'], /--weights\[batch\]: a weight must be a positive finite number/],
      [['--batch-role', '../x'], /--batch-role: invalid role '\.\.\/x'/],
      [['--agent-resources', 'cpus:lots'], /--agent-resources: /],
      [['--cluster', '3', '--weights', 'a=2'], /--cluster does not take --weights yet/],
    ];
    for (const [args, re] of cases) {
      const r = spawnSync(process.execPath, [berthCli, 'up', '--port', '0', '--work-dir', path.join(dir, 'w'), '--no-batch', '--no-marathon', ...args],
        { encoding: 'utf8', timeout: 30_000, env: { ...process.env, BERTH_LOG_LEVEL: 'warn' } });
      assert.is.not(r.status, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
      // Nothing was started: no agent work dir was made.
      assert.equal(readdirSync(dir).filter((d) => d.startsWith('w') && readdirSync(path.join(dir, d)).some((x) => x.startsWith('agent-'))), [], args.join(' '));
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
