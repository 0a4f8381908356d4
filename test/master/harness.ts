/**
 * In-process cluster for master tests, on the simulation kit: a real Master on
 * a virtual clock and a MemoryNetwork, simulated agents (sim/agent.ts, in
 * 'manual' mode: they record what the master asks and the test sends their
 * updates), and frameworks that are plain event sinks. No sockets, no sleeps:
 * `settle()` runs until nothing is in flight, `tick()` moves virtual time,
 * firing timers one at a time and settling after each.
 */
import { MemoryNetwork } from '../../proto/transport/memory.js';
import type { Call, Event, FrameworkInfo, Offer, TaskInfo, TaskStatus } from '../../proto/types.js';
import { Resources } from '../../proto/resources.js';
import { Master, type FrameworkSink, type MasterOptions } from '../../master/master.js';
import { MemoryRegistry, type Registry } from '../../master/registry/types.js';
import { silentLogger } from '../../proto/log.js';
import { DeferQueue, SimLoop, VirtualClock } from '../../sim/clock.js';
import { SimAgent, type ReregisterReport } from '../../sim/agent.js';

/**
 * Every cluster of this module defers the master's work to this one queue, so
 * the free `settle()` tests call can drain whichever cluster is running (the
 * suites run one test at a time).
 */
const deferred = new DeferQueue();

/**
 * Runs until no message, microtask or deferred allocation is left in flight.
 * `_rounds` is accepted for older callers and ignored: settling is exact.
 */
export async function settle(_rounds?: number): Promise<void> {
  await new SimLoop(undefined, deferred).settle();
}

/** A simulated agent that records and answers nothing but pings: the test scripts its updates. */
export class TestAgent extends SimAgent {
  constructor(readonly net: MemoryNetwork, hostname: string, resources: string, attributes: Record<string, string> = {}, clock?: VirtualClock) {
    super({ dialer: net, hostname, resources, attributes, script: 'manual', record: true, resendMs: 0, clock });
  }

  override async connect(reregister?: ReregisterReport): Promise<string> {
    const id = await super.connect(reregister);
    await settle();
    return id;
  }
}

export class TestFramework implements FrameworkSink {
  readonly kind = 'test';
  id = '';
  readonly events: Event[] = [];
  closed?: string;
  /** Called for every event as it arrives (after it is recorded). */
  onEvent?: (ev: Event) => void;

  constructor(readonly master: Master, readonly info: Partial<FrameworkInfo> = {}) {}

  send(ev: Event): void {
    this.events.push(ev);
    this.onEvent?.(ev);
  }
  close(reason: string): void { this.closed = reason; }

  async subscribe(extra: Partial<FrameworkInfo> = {}): Promise<string> {
    this.closed = undefined;
    const info: FrameworkInfo = { user: 'root', name: 'test', ...this.info, ...extra, ...(this.id ? { id: { value: this.id } } : {}) };
    this.id = await this.master.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: info } }, this);
    await settle();
    return this.id;
  }

  call(call: Omit<Call, 'framework_id'>): void {
    this.master.receive(this.id, { ...call, framework_id: { value: this.id } }, this);
  }

  /** Offers received and not yet answered or rescinded. */
  outstanding(): Offer[] {
    const rescinded = new Set(this.events.filter((e) => e.type === 'RESCIND').map((e) => e.rescind!.offer_id.value));
    const answered = this.answered;
    return this.events.filter((e) => e.type === 'OFFERS').flatMap((e) => e.offers!.offers ?? [])
      .filter((o) => !rescinded.has(o.id.value) && !answered.has(o.id.value));
  }
  readonly answered = new Set<string>();

  decline(offer: Offer, refuseSeconds?: number): void {
    this.answered.add(offer.id.value);
    this.call({ type: 'DECLINE', decline: { offer_ids: [offer.id], ...(refuseSeconds !== undefined ? { filters: { refuse_seconds: refuseSeconds } } : {}) } });
  }

  launch(offer: Offer, tasks: TaskInfo[], refuseSeconds?: number): void {
    this.answered.add(offer.id.value);
    this.call({
      type: 'ACCEPT',
      accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: tasks } }], ...(refuseSeconds !== undefined ? { filters: { refuse_seconds: refuseSeconds } } : {}) },
    });
  }

  updates(): TaskStatus[] { return this.events.filter((e) => e.type === 'UPDATE').map((e) => e.update!.status); }
  offersReceived(): Offer[] { return this.events.filter((e) => e.type === 'OFFERS').flatMap((e) => e.offers!.offers ?? []); }
  disconnect(): void { this.master.detach(this); }
}

export function task(id: string, agentId: string, resources: string, cmd = 'true'): TaskInfo {
  return { name: id, task_id: { value: id }, agent_id: { value: agentId }, resources: Resources.parse(resources).toWire(), command: { value: cmd } };
}

export interface Cluster {
  master: Master;
  clock: VirtualClock;
  loop: SimLoop;
  net: MemoryNetwork;
  registry: Registry;
  agent(hostname: string, resources: string, attributes?: Record<string, string>): Promise<TestAgent>;
  framework(info?: Partial<FrameworkInfo>): Promise<TestFramework>;
  /**
   * Advances virtual time, firing timers one instant at a time and letting peers answer (pings,
   * acks) in between. `_step` is accepted for older callers and ignored: every timer is its own step.
   */
  tick(ms: number, _step?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function cluster(opts: MasterOptions = {}): Promise<Cluster> {
  const clock = new VirtualClock();
  const loop = new SimLoop(clock, deferred);
  const net = new MemoryNetwork();
  const registry = opts.registry ?? new MemoryRegistry();
  const master = new Master({ clock, scheduler: deferred, registry, log: silentLogger, allocationIntervalMs: 1000, ...opts });
  master.listen(net);
  await master.start();
  return {
    master, clock, loop, net, registry,
    async agent(hostname, resources, attributes) {
      const a = new TestAgent(net, hostname, resources, attributes, clock);
      await a.connect();
      return a;
    },
    async framework(info = {}) {
      const f = new TestFramework(master, info);
      await f.subscribe();
      return f;
    },
    async tick(ms) { await loop.advance(ms); },
    async stop() { await master.stop(); },
  };
}

/** A framework that launches one task of `demand` on every offer that holds it and declines the rest for an hour. */
export function greedy(fw: TestFramework, demand: string, counter: { n: number }): void {
  const need = Resources.parse(demand);
  fw.onEvent = (ev) => {
    if (ev.type !== 'OFFERS') return;
    for (const offer of ev.offers!.offers ?? []) {
      queueMicrotask(() => {
        if (Resources.from(offer.resources).contains(need)) {
          counter.n++;
          fw.launch(offer, [task(`${fw.info.name}-${counter.n}`, offer.agent_id.value, demand)], 0);
        } else fw.decline(offer, 3600);
      });
    }
  };
}

/**
 * Two greedy frameworks in roles `gold` and `silver` fill ten 8-cpu agents with 1-cpu tasks;
 * returns the tasks launched and gold's dominant share over silver's (the cluster's weights decide it).
 */
export async function fillWithGoldAndSilver(c: Cluster): Promise<{ tasks: number; ratio: number }> {
  const g = { n: 0 }; const s = { n: 0 };
  greedy(await c.framework({ name: 'gold', role: 'gold' }), 'cpus:1;mem:1024', g);
  greedy(await c.framework({ name: 'silver', role: 'silver' }), 'cpus:1;mem:1024', s);
  for (let i = 0; i < 10; i++) await c.agent(`n${i}`, 'cpus:8;mem:16384');
  await settle();
  return { tasks: g.n + s.n, ratio: c.master.allocator.roleShare('gold') / c.master.allocator.roleShare('silver') };
}
