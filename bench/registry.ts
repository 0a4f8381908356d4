/**
 * `npm run bench -- registry`: the master's file registry under a long life.
 * 100,000 appends (frameworks subscribing, updating and leaving, agents coming
 * and going, master restarts), group-committed as the master issues them; then
 * a restart: loading the compacted registry (snapshot + tail) against loading
 * the same 100,000 events as one whole log (compaction off), in the same run.
 *
 * Flags: --events N (default 100000), --reps N (restart repetitions, default 5).
 */
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileRegistry } from '../master/registry/file.js';
import type { RegistryEvent } from '../master/registry/types.js';
import { emit, median, progress } from './report.js';

function flag(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

/** A long life of a master: most frameworks come and go; a few hundred stay; agents churn. */
function* lifetime(n: number): Generator<RegistryEvent> {
  const live: string[] = [];
  let f = 0; let a = 0;
  for (let i = 0; i < n; i++) {
    const at = 1_700_000_000_000 + i;
    const k = i % 10;
    if (i % 5000 === 0) yield { type: 'master_started', master_id: `m${i}`, at };
    else if (k < 3 || live.length === 0) {
      const id = `fw-${f++}`;
      live.push(id);
      yield { type: 'framework_added', framework_id: id, info: { user: 'svc', name: `job ${id}`, roles: ['batch'], capabilities: [{ type: 'MULTI_ROLE' }], failover_timeout: 604800, labels: { labels: [{ key: 'team', value: 'data' }] } }, at };
    } else if (k < 5) {
      const id = live[i % live.length]!;
      yield { type: 'framework_updated', framework_id: id, info: { user: 'svc', name: `job ${id} v${i}`, roles: ['batch'], capabilities: [{ type: 'MULTI_ROLE' }], failover_timeout: 604800 }, at };
    } else if (k < 8 && live.length > 300) {
      yield { type: 'framework_removed', framework_id: live.splice(i % live.length, 1)[0]!, at };
    } else {
      const id = `agent-${a++ % 2000}`;
      yield k === 9
        ? { type: 'agent_unreachable', agent_id: id, at }
        : { type: 'agent_admitted', agent_id: id, info: { hostname: `host-${id}`, resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 16 } }, { name: 'mem', type: 'SCALAR', scalar: { value: 65536 } }] }, at };
    }
  }
}

/** Appends every event as the master would (many in flight: group commit), returns ms. */
async function fill(dir: string, n: number, compactEvery: number): Promise<number> {
  const r = new FileRegistry(dir, undefined, undefined, { compactEvery });
  await r.load();
  const t0 = performance.now();
  let batch: Promise<void>[] = [];
  for (const ev of lifetime(n)) {
    batch.push(r.append(ev));
    if (batch.length === 1000) { await Promise.all(batch); batch = []; }
  }
  await Promise.all(batch);
  const ms = performance.now() - t0;
  await r.close();
  return ms;
}

async function restart(dir: string, reps: number): Promise<{ ms: number[]; frameworks: number; fromSnapshot: boolean; tail: number }> {
  const ms: number[] = [];
  let frameworks = 0; let fromSnapshot = false; let tail = 0;
  for (let i = 0; i < reps; i++) {
    // Compaction at load is off here, so every repetition reads the same files.
    const r = new FileRegistry(dir, undefined, undefined, { compactEvery: Number.MAX_SAFE_INTEGER });
    const t0 = performance.now();
    const s = await r.load();
    ms.push(performance.now() - t0);
    frameworks = s.frameworks.size; fromSnapshot = r.lastLoad.fromSnapshot; tail = r.lastLoad.tailEvents;
    await r.close();
  }
  return { ms, frameworks, fromSnapshot, tail };
}

const size = (f: string): number => (existsSync(f) ? statSync(f).size : 0);

export async function run(args: string[]): Promise<void> {
  const n = flag(args, 'events', 100_000);
  const reps = flag(args, 'reps', 5);
  const compacted = mkdtempSync(path.join(tmpdir(), 'berth-bench-registry-c-'));
  const whole = mkdtempSync(path.join(tmpdir(), 'berth-bench-registry-w-'));
  try {
    progress(`appending ${n} events with compaction (every 10,000)`);
    const appendMs = await fill(compacted, n, 10_000);
    progress(`appending the same ${n} events as one log (no compaction)`);
    const wholeMs = await fill(whole, n, Number.MAX_SAFE_INTEGER);
    emit({ name: 'registry.append.throughput', value: n / (appendMs / 1000), unit: 'events/s', baseline: n / (wholeMs / 1000), params: { events: n, baseline: 'same appends, compaction off' } });

    progress(`restarting ${reps}× from each`);
    const fromSnap = await restart(compacted, reps);
    const fromLog = await restart(whole, reps);
    if (fromSnap.frameworks !== fromLog.frameworks) throw new Error(`states differ: ${fromSnap.frameworks} vs ${fromLog.frameworks} frameworks`);
    emit({
      name: 'registry.restart.load', value: median(fromSnap.ms), unit: 'ms', baseline: median(fromLog.ms),
      params: {
        events: n, reps, min: Math.min(...fromSnap.ms), max: Math.max(...fromSnap.ms), baseline_min: Math.min(...fromLog.ms), baseline_max: Math.max(...fromLog.ms),
        from_snapshot: fromSnap.fromSnapshot, tail_events: fromSnap.tail, live_frameworks: fromSnap.frameworks, baseline: 'whole log replayed',
      },
    });
    emit({
      name: 'registry.restart.bytes_read', value: size(path.join(compacted, 'registry.snapshot')) + size(path.join(compacted, 'registry.log')), unit: 'bytes',
      baseline: size(path.join(whole, 'registry.log')), params: { events: n },
    });
  } finally {
    rmSync(compacted, { recursive: true, force: true });
    rmSync(whole, { recursive: true, force: true });
  }
}
