/**
 * The whole product as a user runs it: `berth up` (a master and two agent
 * processes), `berth state`, and the many-tasks example launching 200 short
 * tasks through the Mesos HTTP API. Every task must finish, write `ok` to its
 * sandbox stdout, and every update must arrive and be acknowledged.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runManyTasks } from '../../frameworks/examples/many-tasks.js';
import { connect, task } from '../../frameworks/sdk/index.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
const run = promisify(execFile);

let up: ChildProcess | undefined;
let dir = '';
let url = '';

async function startUp(): Promise<string> {
  dir = mkdtempSync(path.join(tmpdir(), 'berth-up-'));
  up = spawn(process.execPath, [cli, 'up', '--port', '0', '--work-dir', dir], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn' },
  });
  let err = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`berth up did not come up:\n${err}`)), 30_000);
    up!.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /berth is up: master (http:\/\/\S+)/.exec(err);
      if (m) { clearTimeout(t); resolve(m[1]!); }
    });
    up!.once('exit', (code) => { clearTimeout(t); reject(new Error(`berth up exited ${code}:\n${err}`)); });
  });
}

async function agentsRegistered(n: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const s = (await (await fetch(`${url}/state`)).json()) as { slaves: unknown[] };
    if (s.slaves.length >= n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('agents did not register');
}

function stdoutFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = path.join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e === 'stdout' && p.includes(`${path.sep}runs${path.sep}`)) out.push(p);
    }
  };
  walk(root);
  return out;
}

test.before(async () => {
  url = await startUp();
  await agentsRegistered(2);
});

test.after(async () => {
  if (up && up.exitCode === null) {
    const exited = new Promise((r) => up!.once('exit', r));
    up.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (up.exitCode === null) up.kill('SIGKILL');
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('berth state shows the two agents of berth up with their resources', async () => {
  const { stdout } = await run(process.execPath, [cli, 'state', '--master', url]);
  assert.match(stdout, /agents: 2\b/);
  assert.is((stdout.match(/^\s+total cpus/gm) ?? []).length, 2);
});

test('200 short tasks all reach FINISHED, each stdout holds ok, and every update arrives once after dedup and is acknowledged', async () => {
  const r = await runManyTasks({ master: url, n: 200, timeoutMs: 180_000 });
  assert.is(r.timedOut, false);
  assert.is(r.launched, 200);
  assert.is(r.finished, 200, JSON.stringify(r.failures));
  assert.is(r.failed, 0);
  // STARTING, RUNNING and FINISHED for each task, each uuid counted once; every delivery acknowledged.
  assert.is(r.updates - r.duplicates, 600);
  assert.is(r.acknowledged, r.updates);
  const files = stdoutFiles(dir).filter((f) => /many-\d+/.test(f));
  assert.is(files.length, 200, 'one sandbox per task');
  for (const f of files) assert.is(readFileSync(f, 'utf8'), 'ok\n', f);
});

test('usage of a running task reaches the master: /state carries its statistics and berth state shows them', async () => {
  const fw = await connect({ master: url, framework: { name: 'usage-check' } });
  let launched = false;
  try {
    fw.on('offers', async (offers) => {
      const offer = offers[0]!;
      if (fw.offers.size > 0 && !launched) {
        launched = true;
        await fw.launch(offer, task({ id: 'usage-1', cmd: 'sleep 60', cpus: 0.1, mem: 64 }));
      }
    });
    let stats: Record<string, number> | undefined;
    for (let i = 0; i < 150 && !stats; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const s = (await (await fetch(`${url}/state`)).json()) as { frameworks: { name: string; tasks: { id: string; statistics?: Record<string, number> }[] }[] };
      stats = s.frameworks.find((f) => f.name === 'usage-check')?.tasks.find((t) => t.id === 'usage-1')?.statistics;
    }
    if (!stats) {
      const s = (await (await fetch(`${url}/state`)).json()) as { frameworks: { name: string; tasks: unknown[]; offers: unknown[] }[] };
      const fwState = s.frameworks.find((f) => f.name === 'usage-check');
      assert.unreachable(`no statistics within 15 s; launched=${launched}; framework: ${JSON.stringify(fwState)}`);
    }
    assert.is(stats!.mem_limit_bytes, 64 * 2 ** 20, 'memory limit from the task resources');
    assert.ok((stats!.mem_rss_bytes ?? stats!.mem_total_bytes ?? 0) > 0, 'memory in use is measured');
    const { stdout } = await run(process.execPath, [cli, 'state', '--master', url]);
    assert.match(stdout, /usage-1\s+running\s+mem [\d.]+\/64\.0 MiB/, stdout);
  } finally {
    await fw.teardown().catch(() => fw.close());
  }
});

test.run();
