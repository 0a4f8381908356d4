/**
 * In-process cluster for master tests: a real Master on a ManualClock and a
 * MemoryNetwork, scripted agents that speak berth.agent, and frameworks that
 * are plain event sinks. No sockets, no sleeps: `settle()` drains pending
 * microtasks/immediates, `clock.advance()` moves time.
 */
import { ManualClock } from '../../proto/clock.js';
import { MemoryNetwork } from '../../proto/transport/memory.js';
import type { Conn } from '../../proto/transport/types.js';
import type {
  AgentToMaster, Call, Event, FrameworkInfo, MasterToAgent, Offer, Resource, TaskInfo, TaskState, TaskStatus,
} from '../../proto/types.js';
import { Resources } from '../../proto/resources.js';
import { Master, type FrameworkSink, type MasterOptions } from '../../master/master.js';
import { MemoryRegistry, type Registry } from '../../master/registry/types.js';
import { silentLogger } from '../../proto/log.js';
import { newUuidBase64 } from '../../proto/uuid.js';

export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

export class TestAgent {
  conn!: Conn<MasterToAgent, AgentToMaster>;
  id = '';
  readonly launched: { framework_id: string; task: TaskInfo }[] = [];
  readonly killed: string[] = [];
  readonly acks: string[] = [];
  readonly shutdowns: string[] = [];
  answerPings = true;

  constructor(readonly net: MemoryNetwork, readonly hostname: string, readonly resources: string, readonly attributes: Record<string, string> = {}) {}

  private agentInfo(): { hostname: string; resources: Resource[]; attributes: { name: string; type: 'TEXT'; text: { value: string } }[]; id?: { value: string } } {
    const info = {
      hostname: this.hostname,
      resources: Resources.parse(this.resources).toWire(),
      attributes: Object.entries(this.attributes).map(([name, value]) => ({ name, type: 'TEXT' as const, text: { value } })),
    };
    return this.id ? { ...info, id: { value: this.id } } : info;
  }

  async connect(reregister?: { tasks: { framework_id: string; task: TaskInfo; state: TaskState }[] }): Promise<void> {
    this.conn = await this.net.dialAgent();
    this.conn.onMessage((m) => {
      if (m.registered) this.id = m.registered.agent_id.value;
      if (m.ping && this.answerPings) this.conn.send({ version: 1, pong: { seq: m.ping.seq } });
      if (m.launch) this.launched.push({ framework_id: m.launch.framework.id!.value, task: m.launch.task });
      if (m.kill) this.killed.push(m.kill.task_id.value);
      if (m.ack) this.acks.push(m.ack.uuid);
      if (m.shutdown_framework) this.shutdowns.push(m.shutdown_framework.framework_id.value);
    });
    if (reregister) {
      this.conn.send({
        version: 1,
        reregister: {
          agent_info: this.agentInfo(), endpoint: `${this.hostname}:5051`,
          tasks: reregister.tasks.map((t) => ({ framework_id: { value: t.framework_id }, task: t.task, state: t.state })),
        },
      });
    } else {
      this.conn.send({ version: 1, register: { agent_info: this.agentInfo(), endpoint: `${this.hostname}:5051` } });
    }
    await settle();
  }

  /** Sends a status update (with a fresh uuid) for a task; returns the uuid. */
  update(frameworkId: string, taskId: string, state: TaskState, extra: Partial<TaskStatus> = {}): string {
    const uuid = newUuidBase64();
    this.conn.send({
      version: 1,
      status_update: {
        framework_id: { value: frameworkId },
        status: { task_id: { value: taskId }, state, uuid, agent_id: { value: this.id }, source: 'SOURCE_EXECUTOR', timestamp: Date.now() / 1000, ...extra },
      },
    });
    return uuid;
  }

  disconnect(): void { this.conn.close('test'); }
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
  clock: ManualClock;
  net: MemoryNetwork;
  registry: Registry;
  agent(hostname: string, resources: string, attributes?: Record<string, string>): Promise<TestAgent>;
  framework(info?: Partial<FrameworkInfo>): Promise<TestFramework>;
  /** Advances the clock in small steps, letting peers answer (pings, acks) in between. */
  tick(ms: number, step?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function cluster(opts: MasterOptions = {}): Promise<Cluster> {
  const clock = new ManualClock();
  const net = new MemoryNetwork();
  const registry = opts.registry ?? new MemoryRegistry();
  const master = new Master({ clock, registry, log: silentLogger, allocationIntervalMs: 1000, ...opts });
  master.listen(net);
  await master.start();
  return {
    master, clock, net, registry,
    async agent(hostname, resources, attributes) {
      const a = new TestAgent(net, hostname, resources, attributes);
      await a.connect();
      return a;
    },
    async framework(info = {}) {
      const f = new TestFramework(master, info);
      await f.subscribe();
      return f;
    },
    async tick(ms, step = 250) {
      for (let left = ms; left > 0; left -= step) {
        clock.advance(Math.min(step, left));
        await settle(3);
      }
    },
    async stop() { await master.stop(); },
  };
}
