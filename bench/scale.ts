/**
 * `npm run bench -- scale`: one allocation cycle of the real allocator
 * (master/allocator/hierarchical.ts) against agent count — 1k, 5k, 10k, 20k,
 * 50k and 100k agents (cpus 24, mem 4096) × 1,000 frameworks in one role.
 *
 *  - scale.cycle.full.<N>: one full cycle that offers every agent (nothing
 *    outstanding before it) through `cycle()` — decide and commit in one pass,
 *    each offer handed to a sink (here: stored in preallocated arrays, so the
 *    bench can return it) — median of reps, everything returned between reps.
 *    Baseline: Mesos 1.8's full cycle, ~1.1 s at 10k agents (the issue's
 *    figure), scaled linearly in agents.
 *  - scale.cycle.full_cpu.<N>: the same cycles' CPU time (the machine is shared).
 *  - scale.cycle.full_plan.<N>: the same full cycle through allocate() + commit()
 *    (the pure plan, then its commit — what master/allocation.ts runs); its
 *    baseline is the `cycle()` figure of the same run.
 *  - scale.cycle.incremental.<N>: one agent's resources changed (one of its
 *    offers declined, refuse 0) and the cycle runs over that agent only (the
 *    master's allocation candidates); median of reps. Baseline: the full cycle
 *    at the same size, measured in this run.
 * Targets: full at 100k ≤ 100 ms; incremental ≤ 1 ms at any size.
 *
 *   --sizes 1000,5000,… --frameworks N (1000) --reps N (5 full / 200 incremental)
 */
import { HierarchicalAllocator } from '../master/allocator/hierarchical.js';
import { Resources } from '../proto/resources.js';
import type { OfferPlan } from '../master/allocator/types.js';
import { emit, median, progress } from './report.js';

const ROLE = 'role1';
const MESOS_1_8_MS_PER_10K = 1100;

function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : undefined;
}
const num = (args: string[], name: string, d: number): number => {
  const v = Number(opt(args, name));
  return Number.isInteger(v) && v > 0 ? v : d;
};

export interface ScalePoint { agents: number; full: number[]; fullCpu: number[]; fullPlan: number[]; incremental: number[] }

export function measure(agents: number, frameworks: number, fullReps: number, incReps: number): ScalePoint {
  const a = new HierarchicalAllocator({ seed: 1 });
  for (let i = 0; i < frameworks; i++) a.addFramework(`fw-${String(i).padStart(4, '0')}`, { roles: [ROLE] });
  const total = Resources.parse('cpus:24;mem:4096');
  const ids: string[] = [];
  for (let i = 0; i < agents; i++) { const id = `agent-${String(i).padStart(6, '0')}`; ids.push(id); a.addAgent(id, total); }
  const full: number[] = [];
  const fullCpu: number[] = [];
  const fullPlan: number[] = [];
  // The sink's storage, allocated once: the bench returns every offer between reps.
  const fws: string[] = new Array<string>(agents).fill('');
  const ags: string[] = new Array<string>(agents).fill('');
  const roles: string[] = new Array<string>(agents).fill('');
  const res: Resources[] = new Array<Resources>(agents).fill(Resources.EMPTY);
  let k = 0;
  const sink = (f: string, ag: string, role: string, r: Resources): void => { fws[k] = f; ags[k] = ag; roles[k] = role; res[k] = r; k++; };
  const giveBack = (now: number): void => { for (let i = 0; i < k; i++) a.recoverResources(fws[i]!, ags[i]!, roles[i]!, res[i]!, 0, now); };
  for (let r = 0; r < fullReps + 1; r++) {
    k = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    a.cycle(r * 1000, undefined, sink);
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    if (k !== agents) throw new Error(`full cycle offered ${k} agents, expected ${agents}`);
    if (r > 0) { full.push(ms); fullCpu.push((c.user + c.system) / 1000); } // the first is warm-up
    giveBack(r * 1000);
    // The same cycle as a plan and its commit, interleaved so both see the same machine load.
    const t1 = performance.now();
    const plan = a.allocate(r * 1000 + 500);
    a.commit(plan);
    if (r > 0) fullPlan.push(performance.now() - t1);
    if (plan.length !== agents) throw new Error(`full plan offered ${plan.length} agents, expected ${agents}`);
    for (const o of plan) a.recoverResources(o.frameworkId, o.agentId, o.role, o.resources, 0, r * 1000 + 500);
  }
  k = 0;
  a.cycle((fullReps + 1) * 1000, undefined, sink);
  const plan: OfferPlan = [];
  for (let i = 0; i < k; i++) plan.push({ frameworkId: fws[i]!, agentId: ags[i]!, role: roles[i]!, resources: res[i]! });
  // Every agent is offered now. Each rep returns one agent's offer and re-runs the cycle for it alone.
  const incremental: number[] = [];
  const now = (fullReps + 2) * 1000;
  const byAgent = new Map(plan.map((o) => [o.agentId, o]));
  for (let r = 0; r < incReps + 5; r++) {
    const id = ids[(r * 7919) % agents]!;
    const o = byAgent.get(id)!;
    a.recoverResources(o.frameworkId, o.agentId, o.role, o.resources, 0, now);
    const t0 = performance.now();
    k = 0;
    a.cycle(now, [id], sink);
    const ms = performance.now() - t0;
    if (k !== 1) throw new Error(`incremental cycle offered ${k} agents, expected 1`);
    byAgent.set(id, { frameworkId: fws[0]!, agentId: ags[0]!, role: roles[0]!, resources: res[0]! });
    if (r >= 5) incremental.push(ms);
  }
  return { agents, full, fullCpu, fullPlan, incremental };
}

export async function run(args: string[]): Promise<void> {
  const sizes = (opt(args, 'sizes') ?? '1000,5000,10000,20000,50000,100000').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
  const frameworks = num(args, 'frameworks', 1000);
  const fullReps = num(args, 'reps', 5);
  for (const n of sizes) {
    progress(`scale: ${n} agents × ${frameworks} frameworks`);
    const p = measure(n, frameworks, fullReps, 200);
    const full = median(p.full);
    const inc = median(p.incremental);
    const params = { agents: n, frameworks, reps: p.full.length, min: Math.min(...p.full), max: Math.max(...p.full) };
    emit({ name: `scale.cycle.full.${n}`, value: full, unit: 'ms', baseline: MESOS_1_8_MS_PER_10K * (n / 10_000), params: { ...params, baseline_is: 'Mesos 1.8 ~1.1 s at 10k agents, linear', target_ms_at_100k: 100 } });
    emit({ name: `scale.cycle.full_cpu.${n}`, value: median(p.fullCpu), unit: 'ms', baseline: full, params: { agents: n, frameworks, baseline_is: 'wall time of the same cycles (the machine is shared)' } });
    emit({ name: `scale.cycle.full_plan.${n}`, value: median(p.fullPlan), unit: 'ms', baseline: full, params: { agents: n, frameworks, reps: p.fullPlan.length, min: Math.min(...p.fullPlan), max: Math.max(...p.fullPlan), baseline_is: 'cycle() (decide+commit in one pass) at the same size, same run' } });
    emit({ name: `scale.cycle.incremental.${n}`, value: inc, unit: 'ms', baseline: full, params: { agents: n, frameworks, reps: p.incremental.length, min: Math.min(...p.incremental), max: Math.max(...p.incremental), p99: p.incremental.sort((x, y) => x - y)[Math.floor(p.incremental.length * 0.99)], baseline_is: 'full cycle at the same size, same run', target_ms: 1 } });
  }
}
