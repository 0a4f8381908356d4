/**
 * The whole product as a user runs it: `berth up` (a master and two agent
 * processes), `berth state`, and the many-tasks example launching 200 short
 * tasks through the Mesos HTTP API. Every task must finish, write `ok` to its
 * sandbox stdout, and every update must arrive and be acknowledged.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runManyTasks } from '../../frameworks/examples/many-tasks.js';
import { connect, task } from '../../frameworks/sdk/index.js';
import { startBerthUp, type BerthUp } from '../helpers/berth-up.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
const run = promisify(execFile);

let up: BerthUp | undefined;
let dir = '';
let url = '';

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
  up = await startBerthUp({ agents: 2 });
  dir = up.dir;
  url = up.master;
});

test.after(async () => { await up?.stop(); });

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

// ---- agents on one host never harm each other ------------------------------------------------

/** Pids whose argv contains every one of `parts` in order, as separate arguments. */
function pidsByArgv(...parts: string[]): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let argv: string[];
    try { argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    const at = argv.indexOf(parts[0]!);
    if (at >= 0 && parts.every((p, i) => argv[at + i] === p)) out.push(Number(e));
  }
  return out;
}

/** Field 22 of /proc/PID/stat: with the pid it identifies one process for good. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch { return undefined; }
}

interface Sleeper { pid: number; start: string }

/** Launches `sleep <arg>` on each agent of `berth up` whose attribute `agent` is the given index; resolves once all are RUNNING, with their host pids. */
async function sleepersOn(fw: Awaited<ReturnType<typeof connect>>, wants: { index: number; arg: string }[]): Promise<Sleeper[]> {
  const idOf = (w: { index: number; arg: string }): string => `sleeper-${w.index}-${w.arg}`;
  const pending = new Set(wants.map(idOf));
  const running = new Promise<void>((resolve, reject) => {
    fw.on('update', (st) => {
      if (!pending.has(st.task_id.value) && !wants.some((w) => idOf(w) === st.task_id.value)) return;
      if (st.state === 'TASK_RUNNING') { pending.delete(st.task_id.value); if (pending.size === 0) resolve(); }
      else if (st.state !== 'TASK_STARTING' && st.state !== 'TASK_STAGING') reject(new Error(`${st.task_id.value}: ${st.state} ${st.message ?? ''}`));
    });
  });
  const launched = new Set<number>();
  fw.on('offers', async (offers) => {
    for (const o of offers) {
      const w = wants.find((x) => !launched.has(x.index) && (o.attributes ?? []).some((a) => a.name === 'agent' && String(a.scalar?.value ?? a.text?.value) === String(x.index)));
      if (w) { launched.add(w.index); await fw.launch(o, task({ id: idOf(w), cmd: `exec sleep ${w.arg}`, cpus: 0.1, mem: 32 })); }
      else await fw.decline(o.id.value, 0).catch(() => undefined);
    }
  });
  await running;
  const out: Sleeper[] = [];
  for (const w of wants) {
    for (let i = 0; ; i++) {
      const [pid] = pidsByArgv('sleep', w.arg);
      const start = pid === undefined ? undefined : startTimeOf(pid);
      if (pid !== undefined && start !== undefined) { out.push({ pid, start }); break; }
      if (i > 100) throw new Error(`${idOf(w)} runs but its process was not found`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return out;
}

const stillRuns = (s: Sleeper): boolean => startTimeOf(s.pid) === s.start;

async function agentEndpoint(index: number): Promise<string | undefined> {
  const s = (await (await fetch(`${url}/state`)).json()) as { slaves: { endpoint?: string; active: boolean; attributes: Record<string, unknown> }[] };
  return s.slaves.find((a) => a.active && String(a.attributes['agent']) === String(index))?.endpoint;
}

test('an agent of berth up that is SIGKILLed is restarted and recovers its task, and the other agent\'s task is untouched', async () => {
  const fw = await connect({ master: url, framework: { name: 'neighbours' } });
  try {
    const unique = `${process.pid}${Date.now() % 100000}`;
    const [on0, on1] = await sleepersOn(fw, [{ index: 0, arg: `600.${unique}0` }, { index: 1, arg: `600.${unique}1` }]) as [Sleeper, Sleeper];
    const before = await agentEndpoint(1);
    const [agent1] = pidsByArgv('--work-dir', path.join(dir, 'agent-1'));
    assert.ok(agent1, 'agent-1 process found');
    process.kill(agent1!, 'SIGKILL');
    // The restarted agent has recovered once it is registered again (recovery comes first).
    let after: string | undefined;
    for (let i = 0; i < 300 && (!after || after === before); i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await agentEndpoint(1);
    }
    assert.ok(after && after !== before, 'agent-1 came back under a new endpoint');
    const [restarted] = pidsByArgv('--work-dir', path.join(dir, 'agent-1'));
    assert.ok(restarted !== undefined && restarted !== agent1, 'berth up started a new agent-1 process');
    assert.ok(stillRuns(on0), "agent-0's task still runs");
    assert.ok(stillRuns(on1), "agent-1's own task was recovered, not killed");
  } finally {
    await fw.teardown().catch(() => fw.close());
  }
});

test('a second agent started on the same host touches no existing task', async () => {
  const fw = await connect({ master: url, framework: { name: 'newcomer' } });
  let extra: ChildProcess | undefined;
  try {
    const [on0] = await sleepersOn(fw, [{ index: 0, arg: `601.${process.pid}${Date.now() % 100000}` }]) as [Sleeper];
    const masterAddr = new URL(url).host;
    extra = spawn(process.execPath, [cli, 'agent', '--master', masterAddr, '--work-dir', path.join(dir, 'extra-agent'), '--port', '0', '--attributes', 'agent:9', '--resources', 'cpus:0.5;mem:64;disk:64;ports:[30000-30010]'],
      { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn' } });
    let registered: string | undefined;
    for (let i = 0; i < 300 && !registered; i++) {
      await new Promise((r) => setTimeout(r, 100));
      registered = await agentEndpoint(9);
    }
    assert.ok(registered, 'the second agent registered (its recovery is done)');
    assert.ok(stillRuns(on0), 'the existing task still runs');
  } finally {
    if (extra && extra.exitCode === null) {
      const gone = new Promise((r) => extra!.once('exit', r));
      extra.kill('SIGTERM');
      await gone;
    }
    await fw.teardown().catch(() => fw.close());
  }
});

test.run();
