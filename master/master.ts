/**
 * The master: one event loop that owns the cluster state (agents, frameworks,
 * offers, tasks), drives the allocator, and relays launches, kills, status
 * updates and acknowledgements between frameworks and agents.
 *
 * Invariants:
 *  - Every change that must survive a restart (agent admitted, framework
 *    added/updated/removed) is appended to the registry BEFORE anyone is told
 *    about it (Registered to the agent, SUBSCRIBED to the framework).
 *  - A resource is in exactly one of: available (allocator), offered (one
 *    outstanding offer), used (one live task). Offers and tasks are both counted
 *    as allocated by the allocator; rescind/decline/terminal updates return them.
 *  - A status update carrying a uuid is forwarded to its framework on every
 *    (re)delivery until the framework acknowledges that uuid; the agent keeps
 *    resending until the master relays the acknowledgement.
 *  - Nothing on this path assumes real time or sockets: time comes from the
 *    injected Clock, peers are Conn / FrameworkSink objects, so the same master
 *    runs behind WebSockets, behind HTTP streams and inside the simulator.
 */
import { LRUCache } from 'lru-cache';
import { BerthError } from '../proto/errors.js';
import { type Clock, RealClock, type Scheduler, immediateScheduler, type TimerHandle } from '../proto/clock.js';
import { Resources } from '../proto/resources.js';
import { logger as makeLogger, type Logger } from '../proto/log.js';
import type { Conn, MasterListener } from '../proto/transport/types.js';
import {
  AGENT_PROTOCOL_VERSION, isTerminal,
  type AgentInfo, type AgentReregister, type AgentToMaster, type Call, type Event, type FrameworkInfo, type MasterInfo,
  type MasterToAgent, type Offer, type Resource, type ResourceStatistics, type TaskInfo, type TaskState,
  type TaskStatus, type TaskStatusReason,
} from '../proto/types.js';
import type { Allocator, OfferPlan } from './allocator/types.js';
import { HierarchicalAllocator } from './allocator/hierarchical.js';
import { MemoryRegistry, type Registry } from './registry/types.js';
import { frameworkRoles, validateFrameworkInfo, validateTask } from './validation.js';
import { idError } from '../proto/ids.js';
import { newMasterId } from './ids.js';
import { isUuidBase64 } from '../proto/uuid.js';

export const MASTER_VERSION = '0.1.0';

/** Where a framework's events go: a WebSocket, an HTTP RecordIO stream, or a simulator callback. */
export interface FrameworkSink {
  readonly kind: string;
  send(ev: Event): void;
  close(reason: string): void;
}

export interface MasterOptions {
  clock?: Clock;
  /** Runs deferred work (the coalesced allocation run); default setImmediate. */
  scheduler?: Scheduler;
  registry?: Registry;
  allocator?: Allocator;
  log?: Logger;
  /** Allocation interval (default 1000 ms); triggers in between are coalesced. */
  allocationIntervalMs?: number;
  /** Rescind an offer not answered within this time; 0/undefined = never (as Mesos). */
  offerTimeoutMs?: number;
  /** The master pings every agent this often (default 5000 ms)… */
  agentPingIntervalMs?: number;
  /** …and marks it unreachable after this many unanswered pings (default 3). */
  maxMissedPings?: number;
  /** Agents known from the registry must reregister within this time after a master start (default 10 min). */
  agentReregisterTimeoutMs?: number;
  /** Seconds between HEARTBEAT events (default 15, as Mesos). */
  heartbeatIntervalSeconds?: number;
  /** Bounded histories. */
  maxCompletedTasks?: number;
  maxCompletedFrameworks?: number;
  hostname?: string;
  port?: number;
  /** Default refuse_seconds when a DECLINE/ACCEPT has no filters (Mesos: 5). */
  defaultRefuseSeconds?: number;
}

/** Agent lifecycle as the master sees it. */
type AgentStatus =
  /** Connected and registered: offers are made from it. */
  | 'ACTIVE'
  /** Connection lost; waiting for it to come back before it is declared unreachable. */
  | 'DISCONNECTED'
  /** Known from the registry after a master restart; it has not reregistered yet. */
  | 'RECOVERED'
  /** Missed its pings (or never came back): its tasks were reported unreachable/lost. */
  | 'UNREACHABLE';

/** Framework lifecycle. */
type FrameworkStatus =
  /** Subscribed with a live event stream. */
  | 'CONNECTED'
  /** Stream lost; failover timer running; tasks kept. */
  | 'DISCONNECTED'
  /** Known from the registry after a master restart; waiting for it to resubscribe. */
  | 'RECOVERED';

export interface TaskRec {
  id: string;
  name: string;
  frameworkId: string;
  agentId: string;
  role: string;
  state: TaskState;
  /** Wire resources as launched (kept instead of a Resources object: smaller, built on demand). */
  resources: Resource[];
  /** Latest status seen (from the agent or made by the master). */
  status?: TaskStatus;
  labels?: TaskInfo['labels'];
  user?: string;
  startedAt?: number;
  statistics?: ResourceStatistics;
}

interface AgentRec {
  id: string;
  info: AgentInfo;
  total: Resources;
  status: AgentStatus;
  conn?: Conn<AgentToMaster, MasterToAgent>;
  endpoint?: string;
  version?: string;
  missedPings: number;
  registeredAt: number;
  unreachableAt?: number;
  /** `${frameworkId}\u0000${taskId}` → task. */
  tasks: Map<string, TaskRec>;
  offers: Set<string>;
}

interface FrameworkRec {
  id: string;
  info: FrameworkInfo;
  roles: string[];
  status: FrameworkStatus;
  sink?: FrameworkSink;
  failoverTimer?: TimerHandle;
  heartbeatTimer?: TimerHandle;
  registeredAt: number;
  reregisteredAt?: number;
  tasks: Map<string, TaskRec>;
  offers: Set<string>;
  /** Latest unacknowledged update per task (uuid'd), resent when the framework resubscribes. */
  unacked: Map<string, TaskStatus>;
  partitionAware: boolean;
  gpuAware: boolean;
}

interface OfferRec {
  id: string;
  frameworkId: string;
  agentId: string;
  role: string;
  resources: Resources;
  timer?: TimerHandle;
}

export interface CompletedFramework {
  id: string;
  info: FrameworkInfo;
  removedAt: number;
  reason: string;
}

const key = (frameworkId: string, taskId: string): string => `${frameworkId}\u0000${taskId}`;

export class Master {
  readonly clock: Clock;
  readonly registry: Registry;
  readonly allocator: Allocator;
  readonly log: Logger;
  readonly opts: Required<Pick<MasterOptions,
    'allocationIntervalMs' | 'agentPingIntervalMs' | 'maxMissedPings' | 'agentReregisterTimeoutMs' |
    'heartbeatIntervalSeconds' | 'defaultRefuseSeconds'>> & MasterOptions;

  id = '';
  startedAt = 0;
  info!: MasterInfo;

  readonly agents = new Map<string, AgentRec>();
  readonly frameworks = new Map<string, FrameworkRec>();
  readonly offers = new Map<string, OfferRec>();
  readonly completedTasks: LRUCache<string, TaskRec>;
  readonly completedFrameworks: LRUCache<string, CompletedFramework>;
  private removedFrameworkIds = new Set<string>();

  private nextAgent = 0;
  private nextFramework = 0;
  private nextOffer = 0;
  private allocationTimer?: TimerHandle;
  private pingTimer?: TimerHandle;
  private allocationPending = false;
  /** Agents whose resources changed since the last run ('all' after a framework-level change). */
  private candidates: Set<string> | 'all' = new Set();
  private stopped = false;

  /** Counters for /metrics (Mesos metric names where they exist). */
  readonly counters = {
    tasksLaunched: 0, tasksFinished: 0, tasksFailed: 0, tasksKilled: 0, tasksLost: 0, tasksError: 0,
    tasksDropped: 0, tasksUnreachable: 0, tasksGone: 0,
    offersSent: 0, offersDeclined: 0, offersRescinded: 0, offersAccepted: 0,
    statusUpdates: 0, acknowledgements: 0, callsInvalid: 0,
    allocationRuns: 0, lastAllocationMs: 0, allocationMsTotal: 0,
    agentsRemoved: 0, agentsUnreachable: 0, frameworksRemoved: 0,
  };

  constructor(options: MasterOptions = {}) {
    this.opts = {
      allocationIntervalMs: 1000,
      agentPingIntervalMs: 5000,
      maxMissedPings: 3,
      agentReregisterTimeoutMs: 600_000,
      heartbeatIntervalSeconds: 15,
      defaultRefuseSeconds: 5,
      ...options,
    };
    this.clock = options.clock ?? new RealClock();
    this.registry = options.registry ?? new MemoryRegistry();
    this.allocator = options.allocator ?? new HierarchicalAllocator();
    this.log = options.log ?? makeLogger('master');
    this.completedTasks = new LRUCache({ max: options.maxCompletedTasks ?? 10_000 });
    this.completedFrameworks = new LRUCache({ max: options.maxCompletedFrameworks ?? 100 });
  }

  /** Loads the registry, records this start, and begins the allocation and ping loops. */
  async start(): Promise<void> {
    this.startedAt = this.clock.now();
    this.id = newMasterId(this.startedAt);
    const host = this.opts.hostname ?? 'localhost';
    const port = this.opts.port ?? 5050;
    this.info = {
      id: this.id, ip: 0x7f000001, port, pid: `master@${host}:${port}`, hostname: host, version: MASTER_VERSION,
      address: { hostname: host, ip: '127.0.0.1', port },
    };
    const state = await this.registry.load();
    await this.registry.append({ type: 'master_started', master_id: this.id, at: this.startedAt });
    this.removedFrameworkIds = state.removedFrameworks;
    for (const [id, info] of state.frameworks) {
      this.frameworks.set(id, this.newFrameworkRec(id, info, 'RECOVERED'));
      this.allocator.addFramework(id, { roles: frameworkRoles(info), active: false, gpuAware: hasCap(info, 'GPU_RESOURCES') });
      this.startFailoverTimer(this.frameworks.get(id)!);
    }
    for (const [id, info] of state.agents) {
      this.agents.set(id, {
        id, info, total: Resources.from(info.resources), status: 'RECOVERED', missedPings: 0,
        registeredAt: this.startedAt, tasks: new Map(), offers: new Set(),
      });
    }
    this.log.info({ master_id: this.id, frameworks: state.frameworks.size, agents: state.agents.size, starts: state.starts }, 'master started');
    this.scheduleAllocationTick();
    this.schedulePingTick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clock.clearTimeout(this.allocationTimer);
    this.clock.clearTimeout(this.pingTimer);
    for (const fw of this.frameworks.values()) {
      this.clock.clearTimeout(fw.failoverTimer);
      this.clock.clearTimeout(fw.heartbeatTimer);
      fw.sink?.close('master stopping');
    }
    for (const o of this.offers.values()) this.clock.clearTimeout(o.timer);
    for (const a of this.agents.values()) a.conn?.close('master stopping');
    await this.registry.close();
  }

  /** Accepts agent and native-framework connections from a transport. */
  listen(listener: MasterListener): void {
    listener.onAgent((conn) => this.attachAgent(conn));
    listener.onFramework((conn) => this.attachFrameworkConn(conn));
  }

  // ---------------------------------------------------------------- agents

  attachAgent(conn: Conn<AgentToMaster, MasterToAgent>): void {
    let agentId: string | undefined;
    conn.onMessage((msg) => {
      if (this.stopped) return;
      try {
        if (msg.version !== AGENT_PROTOCOL_VERSION) {
          conn.send({ version: AGENT_PROTOCOL_VERSION, error: { message: `unsupported agent protocol version ${msg.version}`, code: 'UNSUPPORTED' } });
          conn.close('protocol version');
          return;
        }
        if (msg.register || msg.reregister) {
          void this.admitAgent(conn, msg).then((id) => { agentId = id; }).catch((e: Error) => {
            this.log.warn({ err: e.message }, 'agent registration failed');
            conn.send({ version: AGENT_PROTOCOL_VERSION, error: { message: e.message } });
          });
          return;
        }
        const agent = agentId ? this.agents.get(agentId) : undefined;
        if (!agent || agent.conn !== conn) {
          this.log.debug({ conn: conn.id }, 'ignoring agent message before registration');
          return;
        }
        if (msg.pong) agent.missedPings = 0;
        else if (msg.status_update) this.handleStatusUpdate(agent, msg.status_update.framework_id.value, msg.status_update.status);
        else if (msg.usage) {
          for (const c of msg.usage.containers ?? []) {
            const t = agent.tasks.get(key(c.framework_id.value, c.task_id.value));
            if (t) t.statistics = c.statistics;
          }
        }
      } catch (e) {
        this.log.warn({ err: (e as Error).message, agent: agentId }, 'bad agent message');
      }
    });
    conn.onClose((reason) => {
      const agent = agentId ? this.agents.get(agentId) : undefined;
      if (agent && agent.conn === conn) this.agentDisconnected(agent, reason);
    });
  }

  private async admitAgent(conn: Conn<AgentToMaster, MasterToAgent>, msg: AgentToMaster): Promise<string> {
    const rereg: AgentReregister | undefined = msg.reregister;
    const reg = rereg ?? msg.register!;
    const info = reg.agent_info;
    const total = Resources.from(info.resources);
    let id = rereg ? info.id?.value : undefined;
    if (id !== undefined) {
      const err = idError('agent_info.id', id);
      if (err) throw new BerthError('INVALID', err);
    }
    let agent = id ? this.agents.get(id) : undefined;
    if (!id) id = `${this.id}-S${this.nextAgent++}`;
    const infoWithId: AgentInfo = { ...info, id: { value: id } };
    if (!agent) await this.registry.append({ type: 'agent_admitted', agent_id: id, info: infoWithId, at: this.clock.now() });
    if (this.stopped || conn.closed) return id;

    const wasActive = agent?.status === 'ACTIVE' || agent?.status === 'DISCONNECTED';
    if (agent && agent.conn && agent.conn !== conn) agent.conn.close('agent reconnected');
    if (!agent) {
      agent = { id, info: infoWithId, total, status: 'ACTIVE', missedPings: 0, registeredAt: this.clock.now(), tasks: new Map(), offers: new Set() };
      this.agents.set(id, agent);
    }
    const previousStatus = agent.status;
    agent.info = infoWithId;
    agent.total = total;
    agent.conn = conn;
    agent.endpoint = reg.endpoint;
    agent.version = reg.version;
    agent.missedPings = 0;
    agent.status = 'ACTIVE';
    if (wasActive) {
      // A reconnect the master had not noticed yet: its offers predate the agent's report.
      for (const oid of [...agent.offers]) this.rescindOffer(oid, 'agent reregistered');
      this.allocator.removeAgent(id); // re-added below with the reported tasks
    }
    this.allocator.addAgent(id, total, attributesOf(infoWithId));
    if (rereg) this.reconcileAgentTasks(agent, rereg, previousStatus);
    conn.send({ version: AGENT_PROTOCOL_VERSION, registered: { agent_id: { value: id }, ping_interval_seconds: this.opts.agentPingIntervalMs / 1000, master_id: this.id } });
    this.log.info({ agent_id: id, hostname: info.hostname, resources: total.toString(), reregistered: !!rereg, tasks: rereg?.tasks?.length ?? 0 }, rereg ? 'agent reregistered' : 'agent registered');
    this.requestAllocation(id);
    return id;
  }

  /** Rebuilds the tasks of a reregistering agent from its report; the agent is the source of truth. */
  private reconcileAgentTasks(agent: AgentRec, rereg: AgentReregister, previous: AgentStatus): void {
    const reported = new Set<string>();
    const killFrameworks = new Set<string>();
    for (const report of rereg.tasks ?? []) {
      const fid = report.framework_id.value;
      const tid = report.task.task_id.value;
      const k = key(fid, tid);
      reported.add(k);
      if (isTerminal(report.state)) continue; // its terminal update travels through the update stream
      const fw = this.frameworks.get(fid);
      if (!fw) {
        if (this.removedFrameworkIds.has(fid) || this.completedFrameworks.has(fid)) killFrameworks.add(fid);
        else this.log.warn({ framework_id: fid, task_id: tid }, 'agent reports a task of an unknown framework; keeping it');
        if (!this.removedFrameworkIds.has(fid) && !this.completedFrameworks.has(fid)) {
          // Unknown but not removed: the framework may resubscribe (master lost it). Track as recovered.
          const info: FrameworkInfo = rereg.frameworks?.find((f) => f.id?.value === fid) ?? { user: 'unknown', name: 'unknown', id: { value: fid } };
          const rec = this.newFrameworkRec(fid, info, 'RECOVERED');
          this.frameworks.set(fid, rec);
          this.allocator.addFramework(fid, { roles: frameworkRoles(info), active: false, gpuAware: hasCap(info, 'GPU_RESOURCES') });
          this.startFailoverTimer(rec);
        } else continue;
      }
      const fwRec = this.frameworks.get(fid)!;
      let task = agent.tasks.get(k);
      const role = report.task.resources?.find((r) => r.allocation_info?.role)?.allocation_info?.role ?? fwRec.roles[0] ?? '*';
      const wasUnreachable = task?.state === 'TASK_UNREACHABLE';
      if (!task) {
        task = {
          id: tid, name: report.task.name, frameworkId: fid, agentId: agent.id, role, state: report.state,
          resources: report.task.resources ?? [], labels: report.task.labels,
        };
        agent.tasks.set(k, task);
        fwRec.tasks.set(tid, task);
      }
      task.state = report.state;
      if (report.latest_status) task.status = report.latest_status;
      this.allocator.recoverAllocation(fid, agent.id, role, Resources.from(task.resources));
      if (wasUnreachable || previous === 'UNREACHABLE') {
        this.sendUpdate(fwRec, this.masterStatus(task, report.state, 'REASON_AGENT_REREGISTERED', `Agent ${agent.id} reregistered`));
      }
    }
    // Tasks the master believed were on this agent but the agent no longer has: gone.
    for (const [k, task] of agent.tasks) {
      if (reported.has(k)) continue;
      const fw = this.frameworks.get(task.frameworkId);
      agent.tasks.delete(k);
      fw?.tasks.delete(task.id);
      if (task.state !== 'TASK_UNREACHABLE') this.allocator.recoverResources(task.frameworkId, agent.id, task.role, Resources.from(task.resources));
      const state: TaskState = fw?.partitionAware ? 'TASK_GONE' : 'TASK_LOST';
      task.state = state;
      this.completedTasks.set(k, task);
      if (fw) this.sendUpdate(fw, this.masterStatus(task, state, 'REASON_AGENT_RESTARTED', `Task is no longer known to agent ${agent.id}`));
    }
    for (const fid of killFrameworks) agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, shutdown_framework: { framework_id: { value: fid } } });
  }

  private agentDisconnected(agent: AgentRec, reason: string): void {
    agent.conn = undefined;
    if (agent.status !== 'ACTIVE') return;
    agent.status = 'DISCONNECTED';
    this.allocator.setAgentActive(agent.id, false);
    for (const oid of [...agent.offers]) this.rescindOffer(oid, 'agent disconnected');
    this.log.warn({ agent_id: agent.id, reason }, 'agent disconnected');
  }

  private schedulePingTick(): void {
    if (this.stopped) return;
    this.pingTimer = this.clock.setTimeout(() => { this.pingTick(); this.schedulePingTick(); }, this.opts.agentPingIntervalMs);
  }

  /** Health checking: each tick counts a missed ping for every agent that has not answered since the last one. */
  private pingTick(): void {
    const now = this.clock.now();
    for (const agent of this.agents.values()) {
      if (agent.status === 'RECOVERED') {
        if (now - this.startedAt >= this.opts.agentReregisterTimeoutMs) this.markUnreachable(agent, 'did not reregister after master failover');
        continue;
      }
      if (agent.status !== 'ACTIVE' && agent.status !== 'DISCONNECTED') continue;
      if (agent.missedPings >= this.opts.maxMissedPings) {
        this.markUnreachable(agent, `missed ${agent.missedPings} pings`);
        continue;
      }
      agent.missedPings++;
      agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, ping: { seq: now } });
    }
  }

  private markUnreachable(agent: AgentRec, why: string): void {
    const wasInAllocator = agent.status === 'ACTIVE' || agent.status === 'DISCONNECTED';
    agent.status = 'UNREACHABLE';
    agent.unreachableAt = this.clock.now();
    this.counters.agentsUnreachable++;
    for (const oid of [...agent.offers]) this.rescindOffer(oid, 'agent unreachable');
    const nanos = agent.unreachableAt * 1e6;
    for (const task of agent.tasks.values()) {
      if (isTerminal(task.state) || task.state === 'TASK_UNREACHABLE') continue;
      task.state = 'TASK_UNREACHABLE';
      this.counters.tasksUnreachable++;
      const fw = this.frameworks.get(task.frameworkId);
      if (!fw) continue;
      const state: TaskState = fw.partitionAware ? 'TASK_UNREACHABLE' : 'TASK_LOST';
      const st = this.masterStatus(task, state, 'REASON_AGENT_REMOVED', `Agent ${agent.id} is unreachable: ${why}`);
      st.unreachable_time = { nanoseconds: nanos };
      this.sendUpdate(fw, st);
    }
    if (wasInAllocator) this.allocator.removeAgent(agent.id);
    agent.conn?.close('marked unreachable');
    agent.conn = undefined;
    this.log.warn({ agent_id: agent.id, why, tasks: agent.tasks.size }, 'agent unreachable');
  }

  // ------------------------------------------------------------ frameworks

  /** Native transport: the first message must be SUBSCRIBE; later ones are calls. */
  attachFrameworkConn(conn: Conn<Call, Event>): void {
    let frameworkId: string | undefined;
    const sink: FrameworkSink = { kind: 'native', send: (ev) => conn.send(ev), close: (r) => conn.close(r) };
    conn.onMessage((call) => {
      if (this.stopped) return;
      if (call.type === 'SUBSCRIBE') {
        this.subscribe(call, sink).then((id) => { frameworkId = id; }).catch((e: Error) => {
          conn.send({ type: 'ERROR', error: { message: e.message } });
          conn.close('subscribe failed');
        });
        return;
      }
      try {
        if (!frameworkId) throw new BerthError('FORBIDDEN', 'Framework is not subscribed');
        if (call.framework_id?.value !== frameworkId) throw new BerthError('INVALID', `call.framework_id '${call.framework_id?.value ?? ''}' does not match the subscribed framework '${frameworkId}'`);
        this.receive(frameworkId, call, sink);
      } catch (e) {
        this.counters.callsInvalid++;
        // Not a Mesos ERROR (which means "abort"): the SDK surfaces it as a rejected call.
        conn.send({ type: 'ERROR', error: { message: `call rejected: ${(e as Error).message}` } });
      }
    });
    conn.onClose(() => this.detach(sink));
  }

  /**
   * SUBSCRIBE: registers a new framework or fails over an existing one to `sink`.
   * Resolves with the framework id once SUBSCRIBED has been sent.
   */
  async subscribe(call: Call, sink: FrameworkSink): Promise<string> {
    const sub = call.subscribe;
    if (!sub) throw new BerthError('INVALID', "SUBSCRIBE call is missing 'subscribe'");
    const info = sub.framework_info;
    validateFrameworkInfo(info);
    if (call.framework_id && info.id && call.framework_id.value !== info.id.value) {
      throw new BerthError('INVALID', "'framework_id' differs from 'subscribe.framework_info.id'");
    }
    const roles = frameworkRoles(info);
    let id = info.id?.value;
    if (id && (this.removedFrameworkIds.has(id) || this.completedFrameworks.has(id))) {
      throw new BerthError('FORBIDDEN', `Framework ${id} has been removed`);
    }
    let fw = id ? this.frameworks.get(id) : undefined;
    if (!id) id = `${this.id}-${String(this.nextFramework++).padStart(4, '0')}`;
    const stored: FrameworkInfo = { ...info, id: { value: id } };
    await this.registry.append({ type: fw ? 'framework_updated' : 'framework_added', framework_id: id, info: stored, at: this.clock.now() });
    if (this.stopped) throw new BerthError('CONFLICT', 'master is stopping');

    const opts = { roles, gpuAware: hasCap(info, 'GPU_RESOURCES'), suppressedRoles: sub.suppressed_roles ?? [] };
    if (!fw) {
      fw = this.newFrameworkRec(id, stored, 'CONNECTED');
      this.frameworks.set(id, fw);
      this.allocator.addFramework(id, { ...opts, active: true });
    } else {
      if (fw.sink && fw.sink !== sink) {
        const old = fw.sink;
        fw.sink = undefined;
        old.send({ type: 'ERROR', error: { message: 'Framework failed over' } });
        old.close('framework failed over');
      }
      for (const oid of [...fw.offers]) this.rescindOffer(oid, 'framework failed over', false);
      this.clock.clearTimeout(fw.failoverTimer);
      fw.failoverTimer = undefined;
      fw.info = stored;
      fw.roles = roles;
      fw.partitionAware = hasCap(info, 'PARTITION_AWARE');
      fw.gpuAware = opts.gpuAware;
      fw.status = 'CONNECTED';
      fw.reregisteredAt = this.clock.now();
      this.allocator.updateFramework(id, { ...opts, active: true });
      this.allocator.setFrameworkActive(id, true);
    }
    if (opts.suppressedRoles.length > 0) this.allocator.suppress(id, opts.suppressedRoles);
    fw.sink = sink;
    sink.send({
      type: 'SUBSCRIBED',
      subscribed: { framework_id: { value: id }, heartbeat_interval_seconds: this.opts.heartbeatIntervalSeconds, master_info: this.info },
    });
    for (const status of fw.unacked.values()) sink.send({ type: 'UPDATE', update: { status } });
    this.startHeartbeats(fw);
    this.log.info({ framework_id: id, name: info.name, roles, failover: !!info.id }, info.id ? 'framework resubscribed' : 'framework subscribed');
    this.requestAllocation();
    return id;
  }

  /** The event stream of `sink` ended (socket closed, HTTP response finished). */
  detach(sink: FrameworkSink): void {
    for (const fw of this.frameworks.values()) {
      if (fw.sink !== sink) continue;
      fw.sink = undefined;
      fw.status = 'DISCONNECTED';
      this.clock.clearTimeout(fw.heartbeatTimer);
      this.allocator.setFrameworkActive(fw.id, false);
      for (const oid of [...fw.offers]) this.rescindOffer(oid, 'framework disconnected', false);
      this.startFailoverTimer(fw);
      this.log.warn({ framework_id: fw.id, failover_timeout: fw.info.failover_timeout ?? 0 }, 'framework disconnected');
    }
  }

  private startFailoverTimer(fw: FrameworkRec): void {
    if (this.stopped) return; // a stream closing during stop() must not schedule a registry write after close
    this.clock.clearTimeout(fw.failoverTimer);
    const ms = Math.min((fw.info.failover_timeout ?? 0) * 1000, 2 ** 31 - 1);
    fw.failoverTimer = this.clock.setTimeout(() => {
      fw.failoverTimer = undefined;
      if (fw.status !== 'CONNECTED') this.removeFramework(fw, 'failover timeout expired').catch((e: Error) => this.log.error({ err: e.message }, 'framework removal failed'));
    }, ms);
  }

  private startHeartbeats(fw: FrameworkRec): void {
    this.clock.clearTimeout(fw.heartbeatTimer);
    const tick = (): void => {
      if (fw.status !== 'CONNECTED' || !fw.sink) return;
      fw.sink.send({ type: 'HEARTBEAT' });
      fw.heartbeatTimer = this.clock.setTimeout(tick, this.opts.heartbeatIntervalSeconds * 1000);
    };
    fw.heartbeatTimer = this.clock.setTimeout(tick, this.opts.heartbeatIntervalSeconds * 1000);
  }

  private newFrameworkRec(id: string, info: FrameworkInfo, status: FrameworkStatus): FrameworkRec {
    return {
      id, info, roles: frameworkRoles(info), status, registeredAt: this.clock.now(), tasks: new Map(), offers: new Set(),
      unacked: new Map(), partitionAware: hasCap(info, 'PARTITION_AWARE'), gpuAware: hasCap(info, 'GPU_RESOURCES'),
    };
  }

  /** Checks that `frameworkId` may make calls now; throws the error the HTTP API reports. */
  requireSubscribed(frameworkId: string | undefined, sink?: FrameworkSink): FrameworkRec {
    if (!frameworkId) throw new BerthError('INVALID', "Expecting 'framework_id' to be present");
    const fw = this.frameworks.get(frameworkId);
    if (!fw) throw new BerthError('NOT_FOUND', 'Framework cannot be found');
    if (fw.status !== 'CONNECTED' || (sink && fw.sink !== sink)) throw new BerthError('FORBIDDEN', 'Framework is not subscribed');
    return fw;
  }

  /**
   * Checks a call before any effect; throws BerthError for anything the master will not do.
   * Split from `receive` so the HTTP API can answer 4xx/5xx without partial effects.
   */
  validateCall(call: Call): void {
    switch (call.type) {
      case 'ACCEPT': {
        for (const op of call.accept?.operations ?? []) {
          if (op.type === 'LAUNCH') continue;
          if (op.type === 'LAUNCH_GROUP') throw new BerthError('UNSUPPORTED', 'LAUNCH_GROUP is not supported yet; launch the tasks with LAUNCH');
          throw new BerthError('UNSUPPORTED', `Offer operation ${op.type ?? 'UNKNOWN'} is not supported yet (only LAUNCH)`);
        }
        return;
      }
      case 'DECLINE': case 'REVIVE': case 'SUPPRESS': case 'TEARDOWN': case 'REQUEST':
        return;
      case 'UPDATE_FRAMEWORK': {
        const upd = call.update_framework;
        if (!upd) throw new BerthError('INVALID', "Expecting 'update_framework' to be present");
        validateFrameworkInfo(upd.framework_info);
        const id = upd.framework_info.id?.value;
        if (id !== undefined && id !== call.framework_id?.value) throw new BerthError('INVALID', 'update_framework.framework_info.id does not match the framework');
        return;
      }
      case 'KILL':
        if (!call.kill) throw new BerthError('INVALID', "Expecting 'kill' to be present");
        return;
      case 'SHUTDOWN':
        if (!call.shutdown) throw new BerthError('INVALID', "Expecting 'shutdown' to be present");
        return;
      case 'ACKNOWLEDGE': {
        const a = call.acknowledge;
        if (!a) throw new BerthError('INVALID', "Expecting 'acknowledge' to be present");
        if (!isUuidBase64(a.uuid)) throw new BerthError('INVALID', "acknowledge.uuid is not a valid UUID (16 bytes, base64 in JSON)");
        return;
      }
      case 'RECONCILE':
        return;
      case 'MESSAGE':
        throw new BerthError('UNSUPPORTED', 'MESSAGE: custom executors are not supported, so there is no executor to message');
      case 'ACCEPT_INVERSE_OFFERS': case 'DECLINE_INVERSE_OFFERS':
        throw new BerthError('UNSUPPORTED', `${call.type}: Berth does not send inverse offers (maintenance is not supported yet)`);
      case 'ACKNOWLEDGE_OPERATION_STATUS': case 'RECONCILE_OPERATIONS':
        throw new BerthError('UNSUPPORTED', `${call.type}: operation feedback is not supported yet`);
      case 'SUBSCRIBE':
        throw new BerthError('INVALID', 'SUBSCRIBE must open a new event stream');
      default:
        throw new BerthError('UNSUPPORTED', `Unknown call type ${call.type ?? 'UNKNOWN'}`);
    }
  }

  /** Handles one call of a subscribed framework. Throws BerthError on a rejected call (nothing changed). */
  receive(frameworkId: string, call: Call, sink?: FrameworkSink): void {
    const fw = this.requireSubscribed(frameworkId, sink);
    this.validateCall(call);
    switch (call.type) {
      case 'TEARDOWN': this.removeFramework(fw, 'framework requested teardown').catch((e: Error) => this.log.error({ err: e.message }, 'teardown failed')); return;
      case 'ACCEPT': this.accept(fw, call.accept!); return;
      case 'DECLINE': {
        const refuse = this.refuseSeconds(call.decline?.filters?.refuse_seconds);
        for (const oid of call.decline?.offer_ids ?? []) {
          const offer = this.offers.get(oid.value);
          if (!offer || offer.frameworkId !== fw.id) continue; // stale offer: nothing to decline (as Mesos)
          this.removeOffer(offer);
          this.counters.offersDeclined++;
          this.allocator.recoverResources(fw.id, offer.agentId, offer.role, offer.resources, refuse, this.clock.now());
          this.requestAllocation(offer.agentId);
        }
        return;
      }
      case 'REVIVE':
        this.allocator.revive(fw.id, nonEmpty(call.revive?.roles));
        this.requestAllocation();
        return;
      case 'SUPPRESS':
        this.allocator.suppress(fw.id, nonEmpty(call.suppress?.roles));
        return;
      case 'KILL': this.kill(fw, call.kill!.task_id.value, call.kill!.kill_policy); return;
      case 'SHUTDOWN': this.kill(fw, call.shutdown!.executor_id.value); return; // command tasks: executor id = task id
      case 'ACKNOWLEDGE': this.acknowledge(fw, call.acknowledge!); return;
      case 'RECONCILE': this.reconcile(fw, call.reconcile?.tasks ?? []); return;
      case 'REQUEST': return; // the hierarchical allocator ignores requests, as in Mesos
      case 'UPDATE_FRAMEWORK': this.updateFramework(fw, call).catch((e: Error) => this.log.error({ err: e.message, framework_id: fw.id }, 'update_framework failed')); return;
      default: return;
    }
  }

  private refuseSeconds(v: number | undefined): number {
    if (v === undefined || v < 0) return this.opts.defaultRefuseSeconds;
    return Math.min(v, 365 * 24 * 3600);
  }

  /** Already checked by validateCall; persists, then applies. */
  private async updateFramework(fw: FrameworkRec, call: Call): Promise<void> {
    const upd = call.update_framework!;
    const info = upd.framework_info;
    const stored: FrameworkInfo = { ...info, id: { value: fw.id } };
    await this.registry.append({ type: 'framework_updated', framework_id: fw.id, info: stored, at: this.clock.now() });
    fw.info = stored;
    fw.roles = frameworkRoles(stored);
    fw.partitionAware = hasCap(stored, 'PARTITION_AWARE');
    fw.gpuAware = hasCap(stored, 'GPU_RESOURCES');
    for (const oid of [...fw.offers]) {
      const o = this.offers.get(oid);
      if (o && !fw.roles.includes(o.role)) this.rescindOffer(oid, 'role removed');
    }
    this.allocator.updateFramework(fw.id, { roles: fw.roles, gpuAware: fw.gpuAware, suppressedRoles: upd.suppressed_roles ?? [], active: fw.status === 'CONNECTED' });
    if (upd.suppressed_roles?.length) this.allocator.suppress(fw.id, upd.suppressed_roles);
    this.requestAllocation();
  }

  /** Removes a framework: its offers are rescinded, its tasks killed on their agents, its id retired. */
  async removeFramework(fw: FrameworkRec, reason: string): Promise<void> {
    if (!this.frameworks.has(fw.id)) return;
    this.frameworks.delete(fw.id);
    this.removedFrameworkIds.add(fw.id);
    this.clock.clearTimeout(fw.failoverTimer);
    this.clock.clearTimeout(fw.heartbeatTimer);
    for (const oid of [...fw.offers]) this.rescindOffer(oid, reason, false);
    const agents = new Set<string>();
    for (const task of fw.tasks.values()) {
      const agent = this.agents.get(task.agentId);
      agent?.tasks.delete(key(fw.id, task.id));
      if (task.state !== 'TASK_UNREACHABLE' && agent && agent.status !== 'UNREACHABLE') {
        this.allocator.recoverResources(fw.id, task.agentId, task.role, Resources.from(task.resources));
      }
      task.state = 'TASK_KILLED';
      this.completedTasks.set(key(fw.id, task.id), task);
      agents.add(task.agentId);
    }
    for (const aid of agents) {
      this.agents.get(aid)?.conn?.send({ version: AGENT_PROTOCOL_VERSION, shutdown_framework: { framework_id: { value: fw.id } } });
    }
    this.allocator.removeFramework(fw.id);
    this.completedFrameworks.set(fw.id, { id: fw.id, info: fw.info, removedAt: this.clock.now(), reason });
    this.counters.frameworksRemoved++;
    fw.sink?.close(reason);
    fw.sink = undefined;
    this.log.info({ framework_id: fw.id, reason, tasks: fw.tasks.size }, 'framework removed');
    this.requestAllocation();
    await this.registry.append({ type: 'framework_removed', framework_id: fw.id, at: this.clock.now() });
  }

  // ------------------------------------------------------------- offers

  /**
   * Asks for an allocation run soon; any number of requests before it runs coalesce into one
   * (Mesos's allocation candidates). A request naming an agent limits the run to the agents
   * whose resources changed; one without (a framework subscribed, revived, changed roles) runs
   * over every agent. The interval tick always runs over every agent.
   */
  requestAllocation(agentId?: string): void {
    if (this.stopped) return;
    if (agentId === undefined) this.candidates = 'all';
    else if (this.candidates !== 'all') this.candidates.add(agentId);
    if (this.allocationPending) return;
    this.allocationPending = true;
    (this.opts.scheduler ?? immediateScheduler).defer(() => {
      this.allocationPending = false;
      const candidates = this.candidates;
      this.candidates = new Set();
      if (!this.stopped) this.allocateNow(candidates === 'all' ? undefined : candidates);
    });
  }

  private scheduleAllocationTick(): void {
    if (this.stopped) return;
    this.allocationTimer = this.clock.setTimeout(() => {
      this.allocateNow();
      this.scheduleAllocationTick();
    }, this.opts.allocationIntervalMs);
  }

  /** Runs one allocation cycle now and sends the resulting offers. Returns the plan (for tests and benches). */
  allocateNow(agentIds?: Iterable<string>): OfferPlan {
    const t0 = performance.now();
    const plan = this.allocator.allocate(this.clock.now(), agentIds);
    this.allocator.commit(plan);
    const byFramework = new Map<string, Offer[]>();
    for (const entry of plan) {
      const fw = this.frameworks.get(entry.frameworkId);
      const agent = this.agents.get(entry.agentId);
      if (!fw || !agent || fw.status !== 'CONNECTED' || agent.status !== 'ACTIVE') {
        // The allocator's view was stale: give the resources straight back.
        this.allocator.recoverResources(entry.frameworkId, entry.agentId, entry.role, entry.resources);
        continue;
      }
      const offer = this.makeOffer(fw, agent, entry.role, entry.resources);
      let list = byFramework.get(fw.id);
      if (!list) byFramework.set(fw.id, (list = []));
      list.push(offer);
    }
    for (const [fid, offers] of byFramework) {
      this.frameworks.get(fid)!.sink?.send({ type: 'OFFERS', offers: { offers } });
      this.counters.offersSent += offers.length;
    }
    const ms = performance.now() - t0;
    this.counters.allocationRuns++;
    this.counters.lastAllocationMs = ms;
    this.counters.allocationMsTotal += ms;
    return plan;
  }

  private makeOffer(fw: FrameworkRec, agent: AgentRec, role: string, resources: Resources): Offer {
    const id = `${this.id}-O${this.nextOffer++}`;
    const rec: OfferRec = { id, frameworkId: fw.id, agentId: agent.id, role, resources };
    if (this.opts.offerTimeoutMs) rec.timer = this.clock.setTimeout(() => this.rescindOffer(id, 'offer timeout'), this.opts.offerTimeoutMs);
    this.offers.set(id, rec);
    fw.offers.add(id);
    agent.offers.add(id);
    const [host, portStr] = splitEndpoint(agent.endpoint, agent.info);
    const executorIds = [];
    for (const t of agent.tasks.values()) if (t.frameworkId === fw.id && !isTerminal(t.state)) executorIds.push({ value: t.id });
    return {
      id: { value: id },
      framework_id: { value: fw.id },
      agent_id: { value: agent.id },
      hostname: agent.info.hostname,
      url: { scheme: 'http', address: { hostname: agent.info.hostname, ip: host, port: portStr }, path: '/slave(1)' },
      resources: resources.toWire(role),
      attributes: agent.info.attributes ?? [],
      executor_ids: executorIds,
      allocation_info: { role },
    };
  }

  private removeOffer(offer: OfferRec): void {
    this.clock.clearTimeout(offer.timer);
    this.offers.delete(offer.id);
    this.frameworks.get(offer.frameworkId)?.offers.delete(offer.id);
    this.agents.get(offer.agentId)?.offers.delete(offer.id);
  }

  /** Withdraws an offer: resources go back to the pool and the framework gets RESCIND (if it can hear). */
  rescindOffer(offerId: string, why: string, notify = true): void {
    const offer = this.offers.get(offerId);
    if (!offer) return;
    this.removeOffer(offer);
    this.counters.offersRescinded++;
    this.allocator.recoverResources(offer.frameworkId, offer.agentId, offer.role, offer.resources);
    if (notify) this.frameworks.get(offer.frameworkId)?.sink?.send({ type: 'RESCIND', rescind: { offer_id: { value: offerId } } });
    this.log.debug({ offer_id: offerId, why }, 'offer rescinded');
    this.requestAllocation(offer.agentId);
  }

  // ------------------------------------------------------------- tasks

  private accept(fw: FrameworkRec, accept: NonNullable<Call['accept']>): void {
    const launches: TaskInfo[] = [];
    for (const op of accept.operations ?? []) for (const t of op.launch?.task_infos ?? []) launches.push(t);
    const refuse = this.refuseSeconds(accept.filters?.refuse_seconds);

    // 1. The offers: all must be outstanding, this framework's, distinct, on one agent, for one role.
    const offers: OfferRec[] = [];
    let offerError: string | undefined;
    const seen = new Set<string>();
    for (const oid of accept.offer_ids ?? []) {
      const o = this.offers.get(oid.value);
      if (seen.has(oid.value)) offerError = `Duplicate offer ${oid.value} in ACCEPT`;
      else if (!o) offerError = `Offer ${oid.value} is no longer valid`;
      else if (o.frameworkId !== fw.id) offerError = `Offer ${oid.value} belongs to another framework`;
      else {
        if (offers.length > 0 && (o.agentId !== offers[0]!.agentId)) offerError = `Offers ${offers[0]!.id} and ${o.id} are on different agents`;
        if (offers.length > 0 && (o.role !== offers[0]!.role)) offerError = `Offers ${offers[0]!.id} and ${o.id} are for different roles`;
        offers.push(o);
      }
      seen.add(oid.value);
    }
    if (!offerError && offers.length === 0) offerError = 'ACCEPT names no offers';
    if (offerError) {
      // Nothing launched: every valid offer returns whole, without a filter.
      for (const o of offers) {
        this.removeOffer(o);
        this.allocator.recoverResources(fw.id, o.agentId, o.role, o.resources);
        this.requestAllocation(o.agentId);
      }
      const state: TaskState = fw.partitionAware ? 'TASK_DROPPED' : 'TASK_LOST';
      for (const t of launches) {
        this.sendUpdate(fw, this.taskInfoStatus(t, state, 'REASON_INVALID_OFFERS', offerError));
      }
      this.counters.callsInvalid++;
      return;
    }

    const agent = this.agents.get(offers[0]!.agentId)!;
    const role = offers[0]!.role;
    let offered = Resources.EMPTY;
    for (const o of offers) {
      this.removeOffer(o);
      offered = offered.add(o.resources);
    }
    this.counters.offersAccepted += offers.length;

    // 2. The tasks, in order; each valid one claims its resources from what remains.
    let remaining = offered;
    const liveIds = new Set(fw.tasks.keys());
    for (const t of launches) {
      const err = validateTask(t, { agentId: agent.id, role, liveTaskIds: liveIds, remaining });
      if (err) {
        this.counters.tasksError++;
        this.sendUpdate(fw, this.taskInfoStatus(t, 'TASK_ERROR', 'REASON_TASK_INVALID', `Task ${t.task_id?.value ?? ''} is invalid: ${err}`));
        continue;
      }
      const need = Resources.from(t.resources);
      remaining = remaining.subtract(need);
      liveIds.add(t.task_id.value);
      const resources = (t.resources ?? []).map((r) => (r.allocation_info ? r : { ...r, allocation_info: { role } }));
      const task: TaskRec = {
        id: t.task_id.value, name: t.name, frameworkId: fw.id, agentId: agent.id, role, state: 'TASK_STAGING',
        resources, labels: t.labels, user: t.command?.user ?? fw.info.user, startedAt: this.clock.now(),
      };
      fw.tasks.set(task.id, task);
      agent.tasks.set(key(fw.id, task.id), task);
      this.counters.tasksLaunched++;
      agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, launch: { framework: fw.info, task: { ...t, resources } } });
    }

    // 3. Whatever was not used goes back, filtered for this framework as asked.
    if (!remaining.isEmpty()) this.allocator.recoverResources(fw.id, agent.id, role, remaining, refuse, this.clock.now());
    this.requestAllocation(agent.id);
  }

  private kill(fw: FrameworkRec, taskId: string, killPolicy?: TaskInfo['kill_policy']): void {
    const task = fw.tasks.get(taskId);
    if (!task) {
      const done = this.completedTasks.get(key(fw.id, taskId));
      if (done) return; // already terminal; its terminal update was (or will be) delivered
      const state: TaskState = fw.partitionAware ? 'TASK_UNKNOWN' : 'TASK_LOST';
      this.sendUpdate(fw, { task_id: { value: taskId }, state, source: 'SOURCE_MASTER', reason: 'REASON_TASK_UNKNOWN', message: 'Attempted to kill an unknown task', timestamp: this.clock.now() / 1000 });
      return;
    }
    const agent = this.agents.get(task.agentId);
    if (!agent?.conn || agent.status !== 'ACTIVE') {
      this.log.warn({ task_id: taskId, agent_id: task.agentId }, 'kill deferred: agent not connected; it will be killed when the agent reregisters if the framework asks again');
      return;
    }
    agent.conn.send({ version: AGENT_PROTOCOL_VERSION, kill: { framework_id: { value: fw.id }, task_id: { value: taskId }, kill_policy: killPolicy } });
  }

  private acknowledge(fw: FrameworkRec, ack: NonNullable<Call['acknowledge']>): void {
    this.counters.acknowledgements++;
    const tid = ack.task_id.value;
    const pending = fw.unacked.get(tid);
    if (pending && pending.uuid === ack.uuid) fw.unacked.delete(tid);
    // Relay to the agent unconditionally: it ignores unknown and duplicate acknowledgements,
    // and relaying a duplicate is what stops an agent that resent an already-acknowledged update.
    const agent = this.agents.get(ack.agent_id.value);
    agent?.conn?.send({ version: AGENT_PROTOCOL_VERSION, ack: { framework_id: { value: fw.id }, task_id: ack.task_id, uuid: ack.uuid } });
  }

  private reconcile(fw: FrameworkRec, tasks: { task_id: { value: string }; agent_id?: { value: string } }[]): void {
    if (tasks.length === 0) {
      // Implicit: the latest state of every task the master knows for this framework.
      for (const task of fw.tasks.values()) this.sendUpdate(fw, this.reconcileStatus(fw, task));
      return;
    }
    for (const q of tasks) {
      const task = fw.tasks.get(q.task_id.value);
      if (task) { this.sendUpdate(fw, this.reconcileStatus(fw, task)); continue; }
      const done = this.completedTasks.get(key(fw.id, q.task_id.value));
      if (done) { this.sendUpdate(fw, this.reconcileStatus(fw, done)); continue; }
      const agent = q.agent_id ? this.agents.get(q.agent_id.value) : undefined;
      let state: TaskState = fw.partitionAware ? 'TASK_UNKNOWN' : 'TASK_LOST';
      if (agent && (agent.status === 'UNREACHABLE' || agent.status === 'RECOVERED')) state = fw.partitionAware ? 'TASK_UNREACHABLE' : 'TASK_LOST';
      this.sendUpdate(fw, {
        task_id: q.task_id, state, source: 'SOURCE_MASTER', reason: 'REASON_RECONCILIATION', message: 'Reconciliation: task is unknown',
        agent_id: q.agent_id, timestamp: this.clock.now() / 1000,
      });
    }
  }

  private reconcileStatus(fw: FrameworkRec, task: TaskRec): TaskStatus {
    let state = task.state;
    if (state === 'TASK_UNREACHABLE' && !fw.partitionAware) state = 'TASK_LOST';
    const st = this.masterStatus(task, state, 'REASON_RECONCILIATION', 'Reconciliation: latest task state');
    if (task.status?.healthy !== undefined) st.healthy = task.status.healthy;
    return st;
  }

  /** An update from an agent: record it, release resources if terminal, and forward it. */
  private handleStatusUpdate(agent: AgentRec, frameworkId: string, status: TaskStatus): void {
    this.counters.statusUpdates++;
    const tid = status.task_id.value;
    const k = key(frameworkId, tid);
    const task = agent.tasks.get(k);
    const fw = this.frameworks.get(frameworkId);
    if (task) {
      task.state = status.state;
      task.status = status;
      if (isTerminal(status.state)) {
        agent.tasks.delete(k);
        fw?.tasks.delete(tid);
        this.allocator.recoverResources(frameworkId, agent.id, task.role, Resources.from(task.resources));
        this.completedTasks.set(k, task);
        this.countTerminal(status.state);
        this.requestAllocation(agent.id);
      }
    }
    if (!status.agent_id) status.agent_id = { value: agent.id };
    if (!fw) {
      // The framework is gone for good: acknowledge on its behalf so the agent stops resending.
      if (status.uuid) agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, ack: { framework_id: { value: frameworkId }, task_id: status.task_id, uuid: status.uuid } });
      return;
    }
    if (status.uuid) fw.unacked.set(tid, status);
    fw.sink?.send({ type: 'UPDATE', update: { status } });
  }

  private countTerminal(state: TaskState): void {
    const c = this.counters;
    switch (state) {
      case 'TASK_FINISHED': c.tasksFinished++; break;
      case 'TASK_FAILED': c.tasksFailed++; break;
      case 'TASK_KILLED': c.tasksKilled++; break;
      case 'TASK_LOST': c.tasksLost++; break;
      case 'TASK_ERROR': c.tasksError++; break;
      case 'TASK_DROPPED': c.tasksDropped++; break;
      case 'TASK_GONE': case 'TASK_GONE_BY_OPERATOR': c.tasksGone++; break;
      default: break;
    }
  }

  /** Sends a master-generated update (no uuid: nothing to acknowledge). */
  private sendUpdate(fw: FrameworkRec, status: TaskStatus): void {
    fw.sink?.send({ type: 'UPDATE', update: { status } });
  }

  private masterStatus(task: TaskRec, state: TaskState, reason: TaskStatusReason, message: string): TaskStatus {
    return {
      task_id: { value: task.id }, state, source: 'SOURCE_MASTER', reason, message,
      agent_id: { value: task.agentId }, timestamp: this.clock.now() / 1000,
    };
  }

  private taskInfoStatus(t: TaskInfo, state: TaskState, reason: TaskStatusReason, message: string): TaskStatus {
    return {
      task_id: { value: t.task_id?.value ?? '' }, state, source: 'SOURCE_MASTER', reason, message,
      agent_id: t.agent_id, timestamp: this.clock.now() / 1000,
    };
  }

  // ------------------------------------------------------------- views

  /** Agents, frameworks, tasks and resources in Mesos's /state shape (where it overlaps). */
  state(): Record<string, unknown> {
    const agents = [...this.agents.values()];
    const slaves = agents.filter((a) => a.status !== 'UNREACHABLE').map((a) => this.agentJson(a));
    const unreachable = agents.filter((a) => a.status === 'UNREACHABLE').map((a) => ({ ...this.agentJson(a), unreachable_time: a.unreachableAt }));
    const frameworks = [...this.frameworks.values()].map((fw) => this.frameworkJson(fw));
    const completed = [...this.completedFrameworks.values()].map((c) => ({
      id: c.id, name: c.info.name, user: c.info.user, roles: frameworkRoles(c.info), active: false, connected: false,
      unregistered_time: c.removedAt / 1000, reason: c.reason,
      completed_tasks: [...this.completedTasks.values()].filter((t) => t.frameworkId === c.id).slice(0, 100).map((t) => taskJson(t)),
    }));
    return {
      version: MASTER_VERSION,
      id: this.id,
      pid: this.info.pid,
      hostname: this.info.hostname,
      start_time: this.startedAt / 1000,
      elected_time: this.startedAt / 1000,
      leader: this.info.pid,
      leader_info: this.info,
      activated_slaves: agents.filter((a) => a.status === 'ACTIVE').length,
      deactivated_slaves: agents.filter((a) => a.status === 'DISCONNECTED' || a.status === 'RECOVERED').length,
      unreachable_slaves: unreachable,
      slaves,
      frameworks,
      completed_frameworks: completed,
      outstanding_offers: this.offers.size,
      resources: resourcesJson(agents.filter((a) => a.status === 'ACTIVE').reduce((s, a) => s.add(a.total), Resources.EMPTY)),
      used_resources: resourcesJson(agents.reduce((s, a) => s.add(usedOf(a)), Resources.EMPTY)),
      offered_resources: resourcesJson([...this.offers.values()].reduce((s, o) => s.add(o.resources), Resources.EMPTY)),
    };
  }

  private agentJson(a: AgentRec): Record<string, unknown> {
    const used = usedOf(a);
    const offered = [...a.offers].reduce((s, oid) => s.add(this.offers.get(oid)?.resources ?? Resources.EMPTY), Resources.EMPTY);
    return {
      id: a.id, hostname: a.info.hostname, pid: `slave(1)@${a.endpoint ?? a.info.hostname}`, port: a.info.port,
      endpoint: a.endpoint, version: a.version,
      registered_time: a.registeredAt / 1000, active: a.status === 'ACTIVE', status: a.status,
      resources: resourcesJson(a.total), used_resources: resourcesJson(used), offered_resources: resourcesJson(offered),
      unreserved_resources: resourcesJson(a.total.unreserved()),
      attributes: attributesOf(a.info),
      task_count: a.tasks.size,
    };
  }

  private frameworkJson(fw: FrameworkRec): Record<string, unknown> {
    const tasks = [...fw.tasks.values()];
    const used = tasks.filter((t) => !isTerminal(t.state) && t.state !== 'TASK_UNREACHABLE').reduce((s, t) => s.add(Resources.from(t.resources)), Resources.EMPTY);
    const offers = [...fw.offers].map((oid) => this.offers.get(oid)).filter((o): o is OfferRec => !!o);
    const offered = offers.reduce((s, o) => s.add(o.resources), Resources.EMPTY);
    return {
      id: fw.id, name: fw.info.name, user: fw.info.user, principal: fw.info.principal, hostname: fw.info.hostname,
      webui_url: fw.info.webui_url, role: fw.roles[0], roles: fw.roles, failover_timeout: fw.info.failover_timeout ?? 0,
      checkpoint: fw.info.checkpoint ?? false, capabilities: (fw.info.capabilities ?? []).map((c) => c.type),
      active: fw.status === 'CONNECTED', connected: fw.status === 'CONNECTED', recovered: fw.status === 'RECOVERED',
      registered_time: fw.registeredAt / 1000, reregistered_time: fw.reregisteredAt ? fw.reregisteredAt / 1000 : undefined,
      dominant_share: this.allocator.frameworkShare(fw.id),
      resources: resourcesJson(used.add(offered)), used_resources: resourcesJson(used), offered_resources: resourcesJson(offered),
      tasks: tasks.map((t) => taskJson(t)),
      offers: offers.map((o) => ({ id: o.id, agent_id: o.agentId, framework_id: o.frameworkId, resources: resourcesJson(o.resources), allocation_info: { role: o.role } })),
      unreachable_tasks: tasks.filter((t) => t.state === 'TASK_UNREACHABLE').map((t) => taskJson(t)),
      completed_tasks: [...this.completedTasks.values()].filter((t) => t.frameworkId === fw.id).slice(-100).map((t) => taskJson(t)),
    };
  }

  /** Live task by framework and task id (tests and operator endpoints). */
  task(frameworkId: string, taskId: string): TaskRec | undefined {
    return this.frameworks.get(frameworkId)?.tasks.get(taskId) ?? this.completedTasks.get(key(frameworkId, taskId));
  }

  framework(frameworkId: string): FrameworkRec | undefined { return this.frameworks.get(frameworkId); }
  agent(agentId: string): AgentRec | undefined { return this.agents.get(agentId); }
}

// ---------------------------------------------------------------- helpers

function hasCap(info: FrameworkInfo, cap: NonNullable<NonNullable<FrameworkInfo['capabilities']>[number]['type']>): boolean {
  return !!info.capabilities?.some((c) => c.type === cap);
}

function nonEmpty(roles: string[] | undefined): string[] | undefined {
  return roles && roles.length > 0 ? roles : undefined;
}

function attributesOf(info: AgentInfo): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const a of info.attributes ?? []) {
    if (a.type === 'SCALAR' && a.scalar) out[a.name] = a.scalar.value;
    else if (a.type === 'TEXT' && a.text) out[a.name] = a.text.value;
    else if (a.type === 'SET' && a.set) out[a.name] = `{${(a.set.item ?? []).join(',')}}`;
    else if (a.type === 'RANGES' && a.ranges) out[a.name] = `[${(a.ranges.range ?? []).map((r) => `${r.begin}-${r.end}`).join(',')}]`;
  }
  return out;
}

function usedOf(a: AgentRec): Resources {
  let used = Resources.EMPTY;
  for (const t of a.tasks.values()) if (!isTerminal(t.state) && t.state !== 'TASK_UNREACHABLE') used = used.add(Resources.from(t.resources));
  return used;
}

/** Mesos's /state resource object: scalars as numbers, ranges as "[a-b, c-d]". */
export function resourcesJson(r: Resources): Record<string, number | string> {
  const out: Record<string, number | string> = { cpus: 0, mem: 0, disk: 0, gpus: 0 };
  for (const e of r.entries()) {
    if (e.type === 'SCALAR') out[e.name] = Math.round(((out[e.name] as number | undefined) ?? 0) * 1000 + e.milli) / 1000;
  }
  const ports = r.ranges('ports');
  if (ports.length > 0) out.ports = `[${ports.map(([a, b]) => `${a}-${b}`).join(', ')}]`;
  return out;
}

function taskJson(t: TaskRec): Record<string, unknown> {
  return {
    id: t.id, name: t.name, framework_id: t.frameworkId, executor_id: '', slave_id: t.agentId, agent_id: t.agentId,
    state: t.state, role: t.role, user: t.user, resources: resourcesJson(Resources.from(t.resources)),
    statuses: t.status ? [{ state: t.status.state, timestamp: t.status.timestamp, message: t.status.message, reason: t.status.reason, healthy: t.status.healthy }] : [],
    labels: t.labels?.labels ?? [],
    statistics: t.statistics,
  };
}

function splitEndpoint(endpoint: string | undefined, info: AgentInfo): [string, number] {
  if (endpoint) {
    const i = endpoint.lastIndexOf(':');
    if (i > 0) return [endpoint.slice(0, i).replace(/^\[|\]$/g, ''), Number(endpoint.slice(i + 1))];
  }
  return [info.hostname, info.port ?? 5051];
}
