/**
 * One run of a workload through the real two-level path: the real Master and
 * HierarchicalAllocator (DRF), simulated agents (sim/agent.ts) over the
 * in-process MemoryNetwork, and one SDK framework per task class (batch,
 * service) whose placement is the strategy under test — all on the virtual
 * clock, so twenty cluster-minutes take a fraction of a second and a seed
 * replays bit for bit.
 *
 * The frameworks behave like well-mannered Mesos frameworks: they revive when
 * work arrives, place queued tasks in arrival order into the offers they hold
 * (skipping a task that fits nowhere rather than blocking the queue), decline
 * what they cannot use with a 1 s filter, and suppress when their queue is
 * empty. A task's pending time runs from its arrival to its launch on an agent.
 */
import { connect, Placer, type Framework, type Offer, type Placement, type PlacerOptions, type TaskInfo } from '../../frameworks/sdk/index.js';
import { Master } from '../../master/master.js';
import { HierarchicalAllocator } from '../../master/allocator/hierarchical.js';
import { MemoryRegistry } from '../../master/registry/types.js';
import { silentLogger } from '../../proto/log.js';
import { MemoryNetwork } from '../../proto/transport/memory.js';
import { SimAgent, type TaskStep } from '../../sim/agent.js';
import { SimLoop } from '../../sim/clock.js';
import { Collector, medianTask, type RunMetrics } from './metrics.js';
import type { Strategy } from './strategies/index.js';
import type { TaskClass, Workload } from './workload.js';

export interface OfferRunOptions {
  pendingAfterMs: number;
  sampleMs: number;
  seed: number;
  /** Stop early (returning undefined) once more tasks than this are known to be pending. */
  abortOverPending?: number;
  /** Tasks considered per offer round, from the head of a framework's queue (default 4096). */
  window?: number;
}

const CLASSES: TaskClass[] = ['batch', 'service'];
/**
 * Refuse time for an offer nothing in the queue fits. Long is safe: the filter
 * lifts as soon as the agent frees resources (the allocator's rule), and the
 * framework revives (clearing its filters) whenever new work arrives.
 */
const DECLINE_REFUSE_S = 30;

interface FwState { fw: Framework; queue: number[]; suppressed: boolean; placerOpts: PlacerOptions }

export async function runOfferPath(w: Workload, strategy: Strategy, machines: number, o: OfferRunOptions): Promise<RunMetrics | undefined> {
  const wall0 = performance.now();
  const loop = new SimLoop();
  const clock = loop.clock;
  const t0 = clock.now();
  const rel = (): number => clock.now() - t0;
  const master = new Master({
    clock, scheduler: loop.scheduler, registry: new MemoryRegistry(), log: silentLogger,
    allocator: new HierarchicalAllocator({ seed: o.seed }),
    allocationIntervalMs: 1000, agentPingIntervalMs: 30_000, heartbeatIntervalSeconds: 600, defaultRefuseSeconds: 1,
  });
  const net = new MemoryNetwork();
  master.listen(net);
  await master.start();

  const tasks = w.tasks;
  const index = new Map<string, number>();
  for (let i = 0; i < tasks.length; i++) index.set(tasks[i]!.id, i);
  const col = new Collector(w, machines, medianTask(w));
  const machineOf = new Map<SimAgent, number>();
  let batchLeft = 0;
  for (const t of tasks) if (t.cls === 'batch') batchLeft++;

  const script = (info: TaskInfo): TaskStep[] => {
    const t = tasks[index.get(info.task_id.value)!]!;
    return t.duration === Infinity ? [{ state: 'TASK_RUNNING', afterMs: 0 }]
      : [{ state: 'TASK_RUNNING', afterMs: 0 }, { state: 'TASK_FINISHED', afterMs: t.duration }];
  };
  const observer = {
    launched: (a: SimAgent, info: TaskInfo) => col.start(index.get(info.task_id.value)!, machineOf.get(a)!, rel()),
    ended: (a: SimAgent, info: TaskInfo) => {
      const i = index.get(info.task_id.value)!;
      col.end(i, machineOf.get(a)!, rel());
      if (tasks[i]!.cls === 'batch') batchLeft--;
    },
  };
  const res = `cpus:${w.machine.cpus};mem:${w.machine.mem}`;
  const agents: SimAgent[] = [];
  for (let m = 0; m < machines; m++) {
    const a = new SimAgent({ dialer: net, hostname: `m${m}`, resources: res, script, resendMs: 0, clock, observer });
    machineOf.set(a, m);
    agents.push(a);
    void a.connect();
  }
  await loop.settle();

  // Scorers normalise by the agent's whole size (thousandths), not by what is left of the offer.
  const size = { cpus: Math.round(w.machine.cpus * 1000), mem: Math.round(w.machine.mem * 1000) };
  const placerOpts = (cls: TaskClass): PlacerOptions => ({ scorers: strategy.scorersFor?.[cls] ?? strategy.scorers, capacity: () => size });
  const window = o.window ?? 4096;
  const sizeKey = (i: number): number => {
    const t = tasks[i]!;
    const c = t.cpus / w.machine.cpus, m = t.mem / w.machine.mem;
    return Math.max(c, m) * 4 + (c + m); // largest dimension first, then the sum (both ≤ 1 per dimension)
  };
  const fws = new Map<TaskClass, FwState>();
  /**
   * One offer round: the queue in arrival order, a job's consecutive tasks as
   * one request (they share a shape), through the SDK's Placer; a job that does
   * not fit (wholly or partly) keeps its unplaced tasks queued and the round
   * goes on with the next job — no head-of-line blocking.
   */
  const place = (st: FwState, offers: Offer[]): void => {
    if (st.queue.length === 0) {
      void st.fw.decline(offers.map((x) => x.id.value), 60).catch(() => undefined);
      if (!st.suppressed) { st.suppressed = true; void st.fw.suppress().catch(() => undefined); }
      return;
    }
    const placer = new Placer(offers, st.placerOpts);
    const taskOf = new Map<Placement, number>();
    const q = st.queue;
    if (strategy.order === 'largest-first') {
      // Stable: equal sizes keep arrival order, and a job's tasks stay together (one shape).
      q.sort((x, y) => sizeKey(y) - sizeKey(x) || x - y);
    }
    let keep = 0;
    let considered = 0;
    for (let p = 0; p < q.length;) {
      const first = tasks[q[p]!]!;
      let end = p + 1;
      while (end < q.length && tasks[q[end]!]!.job === first.job) end++;
      if (considered >= window) { while (p < end) q[keep++] = q[p++]!; continue; }
      considered += end - p;
      const r = placer.place({ demand: { cpus: first.cpus, mem: first.mem } }, end - p);
      for (let k = 0; k < r.placements.length; k++) taskOf.set(r.placements[k]!, q[p + k]!);
      for (let k = r.placements.length; k < end - p; k++) q[keep++] = q[p + k]!;
      p = end;
    }
    q.length = keep;
    for (const { offer, placements } of placer.launches()) {
      const infos: TaskInfo[] = placements.map((pl) => {
        const t = tasks[taskOf.get(pl)!]!;
        return { name: t.id, task_id: { value: t.id }, agent_id: offer.agent_id, command: { value: 'true' }, resources: pl.picked.resources };
      });
      void st.fw.launch(offer, infos, { refuseSeconds: 1 }).catch(() => undefined);
    }
    const unused = placer.unused().map((x) => x.id.value);
    if (unused.length > 0) void st.fw.decline(unused, DECLINE_REFUSE_S).catch(() => undefined);
  };
  for (const cls of CLASSES) {
    const pending = connect({ master: net, framework: { name: cls, user: 'sim' }, clock, log: silentLogger, reconnect: false, suppressedRoles: ['*'] });
    await loop.settle();
    const fw = await pending;
    const st: FwState = { fw, queue: [], suppressed: true, placerOpts: placerOpts(cls) };
    fw.on('offers', (offers) => place(st, offers));
    fws.set(cls, st);
  }
  await loop.settle();

  // Arrivals: one timer for the next arrival instant, re-armed as it fires (keeps the heap small).
  let next = 0;
  const arrive = (): void => {
    const now = rel();
    const woke = new Set<FwState>();
    while (next < tasks.length && tasks[next]!.arrival <= now) {
      const st = fws.get(tasks[next]!.cls)!;
      st.queue.push(next++);
      woke.add(st);
    }
    for (const st of woke) { st.suppressed = false; void st.fw.revive().catch(() => undefined); }
    if (next < tasks.length) clock.setTimeout(arrive, tasks[next]!.arrival - now);
  };
  clock.setTimeout(arrive, tasks[0]?.arrival ?? 0);

  // Pending watch: a task whose deadline passes unplaced is pending for good.
  let watched = 0;
  let overdue = 0;
  const watch = (): void => {
    const now = rel();
    while (watched < tasks.length && tasks[watched]!.arrival + o.pendingAfterMs <= now) {
      const at = col.placedAt[watched]!;
      if (Number.isNaN(at) || at - tasks[watched]!.arrival > o.pendingAfterMs) overdue++;
      watched++;
    }
  };
  let nextSample = 0;
  const cutoff = w.horizonMs * 4 + o.pendingAfterMs;
  let aborted = false;
  for (;;) {
    const due = clock.nextDue();
    if (due === undefined) break;
    const t = due - t0;
    while (nextSample <= t && nextSample <= cutoff) { col.sample(nextSample); nextSample += o.sampleMs; }
    if (t > cutoff) break;
    if (t >= w.horizonMs && next >= tasks.length && batchLeft === 0) break;
    while (clock.nextDue() === due) clock.fireNext(due);
    await loop.settle();
    watch();
    if (o.abortOverPending !== undefined && overdue > o.abortOverPending) { aborted = true; break; }
  }
  const end = Math.min(Math.max(rel(), w.horizonMs), cutoff);
  const launched = master.counters.tasksLaunched;
  const offersPerLaunch = launched > 0 ? master.counters.offersSent / launched : 0;
  for (const st of fws.values()) st.fw.close();
  for (const a of agents) a.stop();
  await master.stop();
  await loop.settle();
  if (aborted) return undefined;
  return col.finish(strategy.name, end, o.pendingAfterMs, { offersPerLaunch, wallMs: performance.now() - wall0 });
}
