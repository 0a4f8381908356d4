/**
 * The master: the event loop and the wiring. It owns the injected clock,
 * registry, allocator and scheduler, builds the parts, starts and stops them,
 * and is the one entry point the transports call. Each concept lives in its
 * own part:
 *
 *   agents.ts       admit, re-register, health (pings), unreachable, removal
 *   frameworks.ts   subscribe, failover, heartbeats, update, removal
 *   offers.ts       the offer book (available + offered + used = total)
 *   allocation.ts   when the allocator runs, and its plan turned into offers
 *   tasks.ts        accept/launch, kill, status updates, acks, reconciliation
 *   state-view.ts   /state and every view cut from it
 *   validation.ts   every check of what a framework asks
 *   native/         the native transport adapter (http/ is the HTTP one)
 *   auth/           authentication and authorization at the edge
 *
 * Invariants:
 *  - Every change that must survive a restart (agent admitted, framework
 *    added/updated/removed) is appended to the registry BEFORE anyone is told
 *    about it (Registered to the agent, SUBSCRIBED to the framework).
 *  - Nothing on this path assumes real time or sockets: time comes from the
 *    injected Clock, deferred work from the injected scheduler, peers are
 *    Conn / FrameworkSink objects, so the same master runs behind WebSockets,
 *    behind HTTP streams and inside the simulator.
 */
import { RealClock } from '../proto/clock.js';
import { BerthError } from '../proto/errors.js';
import { logger as makeLogger, type Logger } from '../proto/log.js';
import type { Conn, MasterListener } from '../proto/transport/types.js';
import type { AgentToMaster, Call, Event, MasterToAgent } from '../proto/types.js';
import type { Allocator } from './allocator/types.js';
import { HierarchicalAllocator } from './allocator/hierarchical.js';
import { MemoryRegistry, type Registry } from './registry/types.js';
import { newMasterId } from './ids.js';
import { DEFAULT_LIMITS, newCounters, type Counters, type MasterContext, type MasterOptions, type ResolvedOptions } from './core.js';
import { immediateScheduler } from './scheduler.js';
import { allowAll } from './auth/authorizer.js';
import { Agents } from './agents.js';
import { Frameworks } from './frameworks.js';
import { OfferBook } from './offers.js';
import { Tasks } from './tasks.js';
import { AllocationLoop } from './allocation.js';
import { MASTER_VERSION, StateView, type Viewer } from './state-view.js';
import { validateCall } from './validation.js';
import { validateWeights } from './weights.js';
import { attachAgentConn, attachFrameworkConn } from './native/adapter.js';
import type { AgentView, CompletedFramework, FrameworkRec, FrameworkSink, FrameworkView, OfferView, TaskView } from './records.js';

export { MASTER_VERSION };
export type { MasterOptions } from './core.js';
export type { FrameworkSink, TaskRec, CompletedFramework } from './records.js';
export { resourcesJson } from './state-view.js';

export class Master {
  readonly clock: MasterContext['clock'];
  readonly registry: Registry;
  readonly allocator: Allocator;
  readonly log: Logger;
  readonly opts: ResolvedOptions;
  readonly counters: Counters;
  /** The parts, for transports and tests that need one directly. */
  readonly parts: Pick<MasterContext, 'agents' | 'frameworks' | 'offers' | 'tasks' | 'allocation'>;
  readonly view: StateView;
  /** The bounds in force. */
  get limits(): MasterContext['limits'] { return this.ctx.limits; }
  /** Who may do what (ACLs); the edge's operator endpoints ask it too. */
  get authorizer(): MasterContext['authorizer'] { return this.ctx.authorizer; }
  /** Transports refuse unauthenticated framework / agent connections when set. */
  authenticateFrameworks = false;
  authenticateAgents = false;
  private readonly ctx: MasterContext;

  constructor(options: MasterOptions = {}) {
    this.opts = {
      allocationIntervalMs: 1000,
      agentPingIntervalMs: 5000,
      maxMissedPings: 3,
      agentReregisterTimeoutMs: 600_000,
      heartbeatIntervalSeconds: 15,
      defaultRefuseSeconds: 5,
      registryMaxAgentAgeMs: 14 * 24 * 3600_000,
      registryMaxAgentCount: 100_000,
      ...options,
    };
    this.clock = options.clock ?? new RealClock();
    this.registry = options.registry ?? new MemoryRegistry();
    // Bad weights fail the start with the role named, before anything is accepted.
    if (options.weights) validateWeights(options.weights);
    this.allocator = options.allocator ?? new HierarchicalAllocator({ ...(options.weights ? { weights: options.weights } : {}) });
    this.log = options.log ?? makeLogger('master');
    this.counters = newCounters();
    // The parts reference each other through the context; it is complete before any is used.
    const ctx = {
      clock: this.clock, registry: this.registry, allocator: this.allocator, log: this.log,
      scheduler: options.scheduler ?? immediateScheduler, opts: this.opts,
      limits: { ...DEFAULT_LIMITS, ...options.limits }, authorizer: options.authorizer ?? allowAll,
      counters: this.counters, id: '', info: undefined as unknown as MasterContext['info'], startedAt: 0, stopped: false,
    } as Omit<MasterContext, 'agents' | 'frameworks' | 'offers' | 'tasks' | 'allocation'> as MasterContext;
    Object.assign(ctx, {
      agents: new Agents(ctx), frameworks: new Frameworks(ctx), offers: new OfferBook(ctx), tasks: new Tasks(ctx), allocation: new AllocationLoop(ctx),
    });
    this.ctx = ctx;
    this.parts = ctx;
    this.view = new StateView(ctx);
  }

  get id(): string { return this.ctx.id; }
  get info(): MasterContext['info'] { return this.ctx.info; }
  get startedAt(): number { return this.ctx.startedAt; }
  get stopped(): boolean { return this.ctx.stopped; }

  /** Read-only views of the live records. */
  get agents(): ReadonlyMap<string, AgentView> { return this.ctx.agents.all; }
  get frameworks(): ReadonlyMap<string, FrameworkView> { return this.ctx.frameworks.all; }
  get offers(): ReadonlyMap<string, OfferView> { return this.ctx.offers.all; }
  get completedTasks(): { values(): IterableIterator<TaskView>; get(k: string): TaskView | undefined; readonly size: number } { return this.ctx.tasks.completed; }
  get completedFrameworks(): { values(): IterableIterator<CompletedFramework>; has(id: string): boolean } { return this.ctx.frameworks.completed; }

  /** Loads the registry, records this start, and begins the allocation and ping loops. */
  async start(): Promise<void> {
    const ctx = this.ctx;
    ctx.startedAt = this.clock.now();
    ctx.id = newMasterId(ctx.startedAt);
    const host = this.opts.hostname ?? 'localhost';
    const port = this.opts.port ?? 5050;
    ctx.info = {
      id: ctx.id, ip: 0x7f000001, port, pid: `master@${host}:${port}`, hostname: host, version: MASTER_VERSION,
      address: { hostname: host, ip: '127.0.0.1', port },
    };
    const state = await this.registry.load();
    await this.registry.append({ type: 'master_started', master_id: ctx.id, at: ctx.startedAt });
    ctx.frameworks.recover(state.frameworks, state.removedFrameworks);
    ctx.agents.recover(state.agents, state.unreachable);
    this.log.info({ master_id: ctx.id, frameworks: state.frameworks.size, agents: state.agents.size, starts: state.starts }, 'master started');
    ctx.allocation.start();
    ctx.agents.start();
  }

  async stop(): Promise<void> {
    const ctx = this.ctx;
    ctx.stopped = true;
    ctx.allocation.stop();
    ctx.frameworks.stop();
    ctx.offers.stop();
    ctx.agents.stop();
    await this.registry.close();
  }

  /** Accepts agent and native-framework connections from a transport. */
  listen(listener: MasterListener): void {
    listener.onAgent((conn) => this.attachAgent(conn));
    listener.onFramework((conn) => this.attachFrameworkConn(conn));
  }

  attachAgent(conn: Conn<AgentToMaster, MasterToAgent>): void { attachAgentConn(this, conn); }
  attachFrameworkConn(conn: Conn<Call, Event>): void { attachFrameworkConn(this, conn); }

  /**
   * SUBSCRIBE: registers a new framework or fails over an existing one to `sink`. `principal`
   * is who the transport authenticated. Resolves with the framework id once SUBSCRIBED was sent.
   */
  subscribe(call: Call, sink: FrameworkSink, principal?: string): Promise<string> {
    return this.ctx.frameworks.subscribe(call, sink, principal);
  }

  /** The event stream of `sink` ended (socket closed, HTTP response finished). */
  detach(sink: FrameworkSink): void { this.ctx.frameworks.detach(sink); }

  /** Checks that `frameworkId` may make calls now; throws the error the HTTP API reports. */
  requireSubscribed(frameworkId: string | undefined, sink?: FrameworkSink): FrameworkView {
    return this.ctx.frameworks.requireSubscribed(frameworkId, sink);
  }

  /**
   * Checks a call before any effect (validation.ts); throws BerthError for anything the master
   * will not do. Split from `receive` so the HTTP API can answer 4xx with nothing changed.
   */
  validateCall(call: Call): void {
    const fw = call.framework_id ? this.ctx.frameworks.get(call.framework_id.value) : undefined;
    validateCall(call, this.ctx.limits, fw?.info);
  }

  /**
   * Handles one call of a subscribed framework made by `principal`. Throws BerthError on a
   * rejected call (nothing changed).
   */
  receive(frameworkId: string, call: Call, sink?: FrameworkSink, principal?: string): void {
    const ctx = this.ctx;
    const fw: FrameworkRec = ctx.frameworks.requireSubscribed(frameworkId, sink);
    ctx.frameworks.checkOwner(fw, principal, 'make calls for');
    validateCall(call, ctx.limits, fw.info);
    switch (call.type) {
      case 'TEARDOWN':
        if (!ctx.authorizer.authorized(principal ?? fw.info.principal, 'teardown_frameworks', fw.info.principal)) {
          ctx.counters.callsUnauthorized++;
          throw new BerthError('FORBIDDEN', `Principal '${principal ?? 'ANY'}' is not authorized to tear down framework ${fw.id}`);
        }
        ctx.frameworks.remove(fw, 'framework requested teardown').catch((e: Error) => this.log.error({ err: e.message }, 'teardown failed'));
        return;
      case 'ACCEPT': ctx.tasks.accept(fw, call.accept!, principal); return;
      case 'DECLINE': ctx.tasks.decline(fw, call.decline); return;
      case 'REVIVE':
        this.allocator.revive(fw.id, nonEmpty(call.revive?.roles));
        ctx.allocation.request();
        return;
      case 'SUPPRESS':
        this.allocator.suppress(fw.id, nonEmpty(call.suppress?.roles));
        return;
      case 'KILL': ctx.tasks.kill(fw, call.kill!.task_id.value, call.kill!.kill_policy); return;
      case 'SHUTDOWN': ctx.tasks.kill(fw, call.shutdown!.executor_id.value); return; // command tasks: executor id = task id
      case 'ACKNOWLEDGE': ctx.tasks.acknowledge(fw, call.acknowledge!); return;
      case 'RECONCILE': ctx.tasks.reconcile(fw, call.reconcile?.tasks ?? []); return;
      case 'REQUEST': return; // the hierarchical allocator ignores requests, as in Mesos
      case 'UPDATE_FRAMEWORK': ctx.frameworks.update(fw, call).catch((e: Error) => this.log.error({ err: e.message, framework_id: fw.id }, 'update_framework failed')); return;
      default: return;
    }
  }

  /** Removes a framework (operator teardown, tests). */
  async removeFramework(frameworkId: string, reason: string): Promise<void> {
    const fw = this.ctx.frameworks.get(frameworkId);
    if (fw) await this.ctx.frameworks.remove(fw, reason);
  }

  /** Asks for an allocation run soon (coalesced). */
  requestAllocation(agentId?: string): void { this.ctx.allocation.request(agentId); }

  /** Runs one allocation cycle now and sends the resulting offers. Returns the plan (for tests and benches). */
  /** Runs an allocation cycle now; returns the number of offers sent. */
  allocateNow(agentIds?: Iterable<string>): number { return this.ctx.allocation.runNow(agentIds); }

  /** Withdraws an offer: resources go back to the pool and the framework gets RESCIND. */
  rescindOffer(offerId: string, why: string, notify = true): void { this.ctx.offers.rescind(offerId, why, notify); }

  /** Agents, frameworks, tasks and resources in Mesos's /state shape, as `viewer` may see them. */
  state(viewer?: Viewer): Record<string, unknown> { return this.view.state(viewer); }

  /** Live task by framework and task id, else a finished one (tests and operator endpoints). */
  task(frameworkId: string, taskId: string): TaskView | undefined { return this.ctx.tasks.find(frameworkId, taskId); }
  framework(frameworkId: string): FrameworkView | undefined { return this.ctx.frameworks.get(frameworkId); }
  agent(agentId: string): AgentView | undefined { return this.ctx.agents.get(agentId); }
}

function nonEmpty(roles: string[] | undefined): string[] | undefined {
  return roles && roles.length > 0 ? roles : undefined;
}
