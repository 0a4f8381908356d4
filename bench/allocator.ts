/**
 * `npm run bench -- allocator`: one allocation cycle at 10,000 agents
 * (cpus 24, mem 4096) × 1,000 frameworks, single role.
 *
 *  - allocator.cycle.full: allocate()+commit() of a cycle that offers all
 *    agents (nothing outstanding before it);
 *  - allocator.cycle.decline: Mesos' DeclineOffers benchmark — every framework
 *    declines every offer with a long filter, round after round, so filters
 *    accumulate; median cycle over the rounds;
 *  - allocator.heap_per_agent: retained heap per agent with every agent offered.
 *
 * Baseline: `NaiveAllocator` below, the obvious design (per agent, compute every
 * framework's share from Resources objects, sort them all, scan the framework's
 * filter list), measured in the same run at 1,000 agents and extrapolated
 * linearly to 10,000 (it is linear in agents at a fixed framework count; this
 * flatters it in the decline case, where its filter scans also grow).
 *
 * Options: --agents N --frameworks N --rounds N --reps N --seed N.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { performance } from 'node:perf_hooks';
import { HierarchicalAllocator } from '../master/allocator/hierarchical.js';
import { Resources } from '../proto/resources.js';
import type { OfferPlan } from '../master/allocator/types.js';
import { emit, median, progress } from './report.js';

const ROLE = 'role1';
const AGENT_RESOURCES = 'cpus:24;mem:4096';
const LONG_FILTER_SECONDS = 365 * 24 * 3600;
const MESOS_1_8_MS = 1100;

function opt(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= args.length) return dflt;
  const v = Number(args[i + 1]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

const fwId = (i: number): string => `framework-${String(i).padStart(4, '0')}`;
const agentId = (i: number): string => `agent-${String(i).padStart(5, '0')}`;

function build(agents: number, frameworks: number, seed: number): HierarchicalAllocator {
  const a = new HierarchicalAllocator({ seed });
  for (let i = 0; i < frameworks; i++) a.addFramework(fwId(i), { roles: [ROLE] });
  for (let i = 0; i < agents; i++) a.addAgent(agentId(i), Resources.parse(AGENT_RESOURCES));
  return a;
}

function timeCycle(a: HierarchicalAllocator, now: number): { ms: number; plan: OfferPlan } {
  const t0 = performance.now();
  const plan = a.allocate(now);
  a.commit(plan);
  return { ms: performance.now() - t0, plan };
}

function recoverAll(a: HierarchicalAllocator, plan: OfferPlan, refuseSeconds: number, now: number): number {
  const t0 = performance.now();
  for (const o of plan) a.recoverResources(o.frameworkId, o.agentId, o.role, o.resources, refuseSeconds, now);
  return performance.now() - t0;
}

/** Full cycles: each rep offers every agent, then everything is returned (refuse 0). */
function fullCycles(a: HierarchicalAllocator, reps: number, expect: number): number[] {
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const now = r * 1000;
    const { ms, plan } = timeCycle(a, now);
    if (plan.length !== expect) throw new Error(`full cycle offered ${plan.length} agents, expected ${expect}`);
    times.push(ms);
    recoverAll(a, plan, 0, now);
  }
  return times;
}

/** DeclineOffers: every offer declined with a long filter, round after round. */
function declineRounds(a: HierarchicalAllocator, rounds: number): { cycle: number[]; recover: number[]; offers: number[] } {
  const cycle: number[] = [];
  const recover: number[] = [];
  const offers: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const now = r * 1000;
    const { ms, plan } = timeCycle(a, now);
    cycle.push(ms);
    offers.push(plan.length);
    recover.push(recoverAll(a, plan, LONG_FILTER_SECONDS, now));
  }
  return { cycle, recover, offers };
}

// ------------------------------------------------------------------------------------------
// The obvious design, as the reference: rich Resources everywhere, a full sort per agent.

interface NaiveFramework { id: string; allocated: Resources; count: number; filters: { agent: string; refused: Resources; expiry: number }[] }
interface NaiveAgent { id: string; total: Resources; available: Resources }

class NaiveAllocator {
  readonly agents: NaiveAgent[] = [];
  readonly frameworks: NaiveFramework[] = [];
  private total = Resources.EMPTY;
  private seedState: number;
  constructor(seed: number) { this.seedState = seed || 1; }

  addAgent(id: string, total: Resources): void { this.agents.push({ id, total, available: total }); this.total = this.total.add(total); }
  addFramework(id: string): void { this.frameworks.push({ id, allocated: Resources.EMPTY, count: 0, filters: [] }); }

  private share(f: NaiveFramework): number {
    let s = 0;
    for (const name of ['cpus', 'mem', 'disk', 'gpus']) {
      const t = this.total.scalar(name);
      if (t > 0) s = Math.max(s, f.allocated.scalar(name) / t);
    }
    return s;
  }

  /** allocate + commit in one go (the naive design has no separate plan). */
  cycle(now: number): OfferPlan {
    const plan: OfferPlan = [];
    const order = [...this.agents];
    for (let i = order.length - 1; i > 0; i--) {
      this.seedState = (this.seedState * 1103515245 + 12345) >>> 0;
      const j = this.seedState % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const agent of order) {
      if (agent.available.isEmpty()) continue;
      const sorted = this.frameworks.map((f) => ({ f, share: this.share(f) }))
        .sort((x, y) => x.share - y.share || x.f.count - y.f.count || (x.f.id < y.f.id ? -1 : 1));
      for (const { f } of sorted) {
        const filtered = f.filters.some((flt) => flt.agent === agent.id && flt.expiry > now && flt.refused.contains(agent.available));
        if (filtered) continue;
        plan.push({ frameworkId: f.id, agentId: agent.id, role: ROLE, resources: agent.available });
        f.allocated = f.allocated.add(agent.available);
        f.count++;
        agent.available = Resources.EMPTY;
        break;
      }
    }
    return plan;
  }

  recover(o: OfferPlan[number], refuseSeconds: number, now: number): void {
    const f = this.frameworks.find((x) => x.id === o.frameworkId)!;
    const agent = this.agents.find((x) => x.id === o.agentId)!;
    f.allocated = f.allocated.subtract(o.resources);
    agent.available = agent.available.add(o.resources);
    if (refuseSeconds > 0) f.filters.push({ agent: agent.id, refused: o.resources, expiry: now + refuseSeconds * 1000 });
  }
}

function naiveBuild(agents: number, frameworks: number, seed: number): NaiveAllocator {
  const n = new NaiveAllocator(seed);
  for (let i = 0; i < frameworks; i++) n.addFramework(fwId(i));
  for (let i = 0; i < agents; i++) n.addAgent(agentId(i), Resources.parse(AGENT_RESOURCES));
  return n;
}

function naiveFull(n: NaiveAllocator, reps: number): number[] {
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const plan = n.cycle(r * 1000);
    times.push(performance.now() - t0);
    for (const o of plan) n.recover(o, 0, r * 1000);
  }
  return times;
}

function naiveDecline(n: NaiveAllocator, rounds: number): number[] {
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const plan = n.cycle(r * 1000);
    times.push(performance.now() - t0);
    for (const o of plan) n.recover(o, LONG_FILTER_SECONDS, r * 1000);
  }
  return times;
}

// ------------------------------------------------------------------------------------------

function gcFunction(): (() => void) | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

function heapAfterGc(gc: () => void): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

const round = (x: number): number => Math.round(x * 100) / 100;

export async function run(args: string[]): Promise<void> {
  const agents = opt(args, 'agents', 10_000);
  const frameworks = opt(args, 'frameworks', 1_000);
  const rounds = Math.max(20, opt(args, 'rounds', 25));
  const reps = opt(args, 'reps', 15);
  const seed = opt(args, 'seed', 1);
  const naiveAgents = Math.min(agents, 1_000);
  const scale = agents / naiveAgents;
  const common = { agents, frameworks, roles: 1, agent_resources: AGENT_RESOURCES, seed, mesos_1_8_ms: MESOS_1_8_MS };

  // Warm up the JIT on a smaller instance of both workloads.
  progress('allocator: warm-up');
  fullCycles(build(2_000, frameworks, seed), 5, 2_000);
  declineRounds(build(2_000, frameworks, seed), 5);

  progress(`allocator: full cycle at ${agents}×${frameworks}`);
  const full = fullCycles(build(agents, frameworks, seed), reps, agents);
  progress(`allocator: decline rounds at ${agents}×${frameworks}`);
  const a = build(agents, frameworks, seed);
  const dec = declineRounds(a, rounds);
  const filters = a.filterCount();

  progress(`allocator: same cycles at ${naiveAgents} agents (ours)`);
  const full1k = fullCycles(build(naiveAgents, frameworks, seed), reps, naiveAgents);
  const dec1k = declineRounds(build(naiveAgents, frameworks, seed), rounds);

  progress(`allocator: naive reference at ${naiveAgents}×${frameworks}`);
  naiveFull(naiveBuild(200, frameworks, seed), 2); // warm-up
  const nFull = naiveFull(naiveBuild(naiveAgents, frameworks, seed), 3);
  const naiveRounds = 6;
  const nDec = naiveDecline(naiveBuild(naiveAgents, frameworks, seed), naiveRounds);

  emit({
    name: 'allocator.cycle.full', value: round(median(full)), unit: 'ms', baseline: round(median(nFull) * scale),
    params: {
      ...common, reps, min: round(Math.min(...full)), max: round(Math.max(...full)), offers: agents,
      ours_at_1000_agents_ms: round(median(full1k)),
      baseline_is: `naive allocator (full sort of Resources shares per agent) measured at ${naiveAgents} agents × ${frameworks} frameworks, ×${scale} extrapolated`,
      baseline_measured_ms: round(median(nFull)), baseline_min: round(Math.min(...nFull) * scale), baseline_max: round(Math.max(...nFull) * scale),
    },
  });
  emit({
    name: 'allocator.cycle.decline', value: round(median(dec.cycle)), unit: 'ms', baseline: round(median(nDec) * scale),
    params: {
      ...common, rounds, min: round(Math.min(...dec.cycle)), max: round(Math.max(...dec.cycle)),
      offers_per_round_min: Math.min(...dec.offers), offers_per_round_max: Math.max(...dec.offers),
      filters_at_end: filters, refuse_seconds: LONG_FILTER_SECONDS,
      recover_all_offers_ms_median: round(median(dec.recover)),
      ours_at_1000_agents_ms: round(median(dec1k.cycle)),
      baseline_is: `naive allocator measured at ${naiveAgents} agents × ${frameworks} frameworks over ${naiveRounds} rounds, ×${scale} extrapolated (filters grow with agents too, so this understates it)`,
      baseline_measured_ms: round(median(nDec)), baseline_min: round(Math.min(...nDec) * scale), baseline_max: round(Math.max(...nDec) * scale),
    },
  });

  const gc = gcFunction();
  if (!gc) {
    progress('allocator: no gc function (run node with --expose-gc); heap figure skipped');
    return;
  }
  const base = heapAfterGc(gc);
  const h = new HierarchicalAllocator({ seed });
  for (let i = 0; i < frameworks; i++) h.addFramework(fwId(i), { roles: [ROLE] });
  const withFrameworks = heapAfterGc(gc);
  for (let i = 0; i < agents; i++) h.addAgent(agentId(i), Resources.parse(AGENT_RESOURCES));
  const idle = heapAfterGc(gc);
  const plan = h.allocate(0);
  h.commit(plan);
  const offered = heapAfterGc(gc);
  // The naive design's agents, for reference: the same agents as rich objects only.
  const n = naiveBuild(0, 0, seed);
  const beforeNaive = heapAfterGc(gc);
  for (let i = 0; i < agents; i++) n.addAgent(agentId(i), Resources.parse(AGENT_RESOURCES));
  const naive = heapAfterGc(gc);
  emit({
    name: 'allocator.heap_per_agent', value: Math.round((offered - withFrameworks) / agents), unit: 'bytes',
    baseline: Math.round((naive - beforeNaive) / agents),
    params: {
      agents, frameworks, measured: 'retained heap after gc, every agent holding one outstanding offer (plan entries included)',
      idle_bytes_per_agent: Math.round((idle - withFrameworks) / agents),
      frameworks_bytes_each: Math.round((withFrameworks - base) / frameworks),
      baseline_is: 'naive allocator agent records (id, total and available Resources) without offers',
      plan_entries_retained: plan.length,
    },
  });
  // Keep both alive until measured.
  if (h.filterCount() < 0 || n.agents.length < 0) progress('unreachable');

  if (args.includes('--no-master')) return;
  // The whole master's heap at the same scale (bench/master-heap.ts drives the real Master).
  const tasksPerAgent = 10;
  progress(`allocator: master heap at ${agents} agents × ${tasksPerAgent} tasks`);
  let m: { perAgent: number; perTask: number; agents: number; tasks: number };
  try {
    const mod = (await import('./master-heap.js')) as { measureMasterHeap: (agents: number, tasksPerAgent: number, progress?: (m: string) => void) => Promise<typeof m> };
    m = await mod.measureMasterHeap(agents, tasksPerAgent, progress);
  } catch (e) {
    progress(`allocator: master heap not measured: ${(e as Error).message}`);
    return;
  }
  const target = { baseline_is: 'target from issue #2 (≤ 2 KiB per task), not a measurement' };
  emit({ name: 'master.heap_per_agent', value: Math.round(m.perAgent), unit: 'bytes', baseline: null, params: { agents: m.agents, measured: 'real Master, in-memory transport, after gc; agents with cpus:24;mem:4096;ports:[31000-32000]', no_baseline: 'no reference design to compare; allocator share is allocator.heap_per_agent' } });
  emit({ name: 'master.heap_per_task', value: Math.round(m.perTask), unit: 'bytes', baseline: 2048, params: { agents: m.agents, tasks: m.tasks, ...target } });
}
