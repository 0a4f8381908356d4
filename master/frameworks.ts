/**
 * Frameworks: SUBSCRIBE (new or failover), event streams coming and going,
 * heartbeats, failover timers, UPDATE_FRAMEWORK and removal.
 *
 * Invariants:
 *  - A framework id is durable in the registry before SUBSCRIBED is sent;
 *    an UPDATE_FRAMEWORK is durable before it takes effect.
 *  - At most one live sink per framework: a failover closes the old one.
 *  - A removed framework's id is retired for good (`removed`), and its
 *    `framework_removed` entry is durable before its tasks are killed.
 *  - A framework registered by an authenticated principal is bound to it:
 *    only that principal may fail it over, update it or tear it down.
 */
import { LRUCache } from 'lru-cache';
import { BerthError } from '../proto/errors.js';
import { Resources } from '../proto/resources.js';
import { AGENT_PROTOCOL_VERSION, type Call, type FrameworkInfo } from '../proto/types.js';
import { rememberRemoved } from './registry/types.js';
import type { Clock, TimerHandle } from '../proto/clock.js';
import type { MasterContext } from './core.js';
import {
  type CompletedFramework, type FrameworkRec, type FrameworkSink, type FrameworkStatus, type FrameworkView, hasCap, taskKey,
} from './records.js';
import { frameworkRoles, validateSubscribe } from './validation.js';

/** Longest single timer a JavaScript runtime honours (setTimeout clamps anything above to 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A timer of any length on `clock`: waits in steps no longer than MAX_TIMER_MS, checking the
 * deadline against the clock each time, so a 30-day failover timeout is 30 days.
 */
export function setLongTimeout(clock: Clock, fn: () => void, ms: number, onHandle: (h: TimerHandle) => void): void {
  const deadline = clock.now() + Math.max(0, ms);
  const step = (): void => {
    const left = deadline - clock.now();
    if (left <= 0) { fn(); return; }
    onHandle(clock.setTimeout(step, Math.min(left, MAX_TIMER_MS)));
  };
  if (ms <= MAX_TIMER_MS) onHandle(clock.setTimeout(fn, Math.max(0, ms)));
  else onHandle(clock.setTimeout(step, MAX_TIMER_MS));
}

export class Frameworks {
  private readonly byId = new Map<string, FrameworkRec>();
  /** Ids ever removed (from the registry and this run), so a removed framework cannot come back. */
  private removedIds = new Set<string>();
  readonly completed: LRUCache<string, CompletedFramework>;
  private nextFramework = 0;

  constructor(private readonly ctx: MasterContext) {
    this.completed = new LRUCache({ max: ctx.opts.maxCompletedFrameworks ?? 100 });
  }

  get all(): ReadonlyMap<string, FrameworkView> { return this.byId; }
  get(id: string): FrameworkRec | undefined { return this.byId.get(id); }
  values(): IterableIterator<FrameworkRec> { return this.byId.values(); }
  get size(): number { return this.byId.size; }
  wasRemoved(id: string): boolean { return this.removedIds.has(id) || this.completed.has(id); }

  /** Frameworks known from the registry after a restart: they have their failover timeout to come back. */
  recover(frameworks: Map<string, FrameworkInfo>, removed: Set<string>): void {
    this.removedIds = removed;
    for (const [id, info] of frameworks) this.adoptRecovered(id, info);
  }

  /** Tracks a framework the master learns of without a SUBSCRIBE (registry, an agent's report). */
  adoptRecovered(id: string, info: FrameworkInfo): FrameworkRec {
    const rec = this.newRec(id, info, 'RECOVERED');
    this.byId.set(id, rec);
    this.ctx.allocator.addFramework(id, { roles: rec.roles, active: false, gpuAware: rec.gpuAware });
    this.startFailoverTimer(rec);
    return rec;
  }

  stop(): void {
    for (const fw of this.byId.values()) {
      this.ctx.clock.clearTimeout(fw.failoverTimer);
      this.ctx.clock.clearTimeout(fw.heartbeatTimer);
      fw.sink?.close('master stopping');
    }
  }

  /** Principals' framework counts, for the per-principal bound. */
  private countOf(principal: string | undefined): number {
    let n = 0;
    for (const fw of this.byId.values()) if (fw.info.principal === principal) n++;
    return n;
  }

  /**
   * SUBSCRIBE: registers a new framework or fails over an existing one to `sink`.
   * `principal` is who the transport authenticated (undefined: authentication off).
   * Resolves with the framework id once SUBSCRIBED has been sent.
   */
  async subscribe(call: Call, sink: FrameworkSink, principal?: string): Promise<string> {
    const ctx = this.ctx;
    const sub = call.subscribe;
    if (!sub) throw new BerthError('INVALID', "SUBSCRIBE call is missing 'subscribe'");
    const info = sub.framework_info;
    validateSubscribe(call, ctx.limits);
    if (principal !== undefined && info.principal !== undefined && info.principal !== principal) {
      throw new BerthError('FORBIDDEN', `framework_info.principal '${info.principal}' does not match the authenticated principal '${principal}'`);
    }
    const roles = frameworkRoles(info);
    for (const role of roles) {
      if (!ctx.authorizer.authorized(principal, 'register_frameworks', role)) {
        ctx.counters.callsUnauthorized++;
        throw new BerthError('FORBIDDEN', `Principal '${principal ?? 'ANY'}' is not authorized to register frameworks with role '${role}'`);
      }
    }
    let id = info.id?.value;
    if (id && this.wasRemoved(id)) throw new BerthError('FORBIDDEN', `Framework ${id} has been removed`);
    let fw = id ? this.byId.get(id) : undefined;
    if (fw) this.checkOwner(fw, principal, 'fail over');
    else {
      if (this.byId.size >= ctx.limits.maxFrameworks) throw new BerthError('CONFLICT', `The master holds ${this.byId.size} frameworks, its limit`);
      if (this.countOf(principal ?? info.principal) >= ctx.limits.frameworksPerPrincipal) {
        throw new BerthError('CONFLICT', `Principal '${principal ?? info.principal ?? 'ANY'}' already has ${ctx.limits.frameworksPerPrincipal} frameworks, its limit`);
      }
    }
    if (!id) id = `${ctx.id}-${String(this.nextFramework++).padStart(4, '0')}`;
    // The principal is bound at the first SUBSCRIBE and never changes after it.
    const boundPrincipal = fw ? fw.info.principal : (principal ?? info.principal);
    const stored: FrameworkInfo = { ...info, id: { value: id }, ...(boundPrincipal !== undefined ? { principal: boundPrincipal } : {}) };
    await ctx.registry.append({ type: fw ? 'framework_updated' : 'framework_added', framework_id: id, info: stored, at: ctx.clock.now() });
    if (ctx.stopped) throw new BerthError('CONFLICT', 'master is stopping');
    // A concurrent SUBSCRIBE for the same new id cannot happen (ids are minted here), but a
    // failover may have been raced by a removal while the append was in flight.
    if (fw && !this.byId.has(id)) throw new BerthError('FORBIDDEN', `Framework ${id} has been removed`);

    const opts = { roles, gpuAware: hasCap(info, 'GPU_RESOURCES'), suppressedRoles: sub.suppressed_roles ?? [] };
    if (!fw) {
      fw = this.newRec(id, stored, 'CONNECTED');
      this.byId.set(id, fw);
      ctx.allocator.addFramework(id, { ...opts, active: true });
    } else {
      if (fw.sink && fw.sink !== sink) {
        const old = fw.sink;
        fw.sink = undefined;
        old.send({ type: 'ERROR', error: { message: 'Framework failed over' } });
        old.close('framework failed over');
      }
      for (const oid of [...fw.offers]) ctx.offers.rescind(oid, 'framework failed over', false);
      ctx.clock.clearTimeout(fw.failoverTimer);
      fw.failoverTimer = undefined;
      fw.info = stored;
      fw.roles = roles;
      fw.partitionAware = hasCap(info, 'PARTITION_AWARE');
      fw.gpuAware = opts.gpuAware;
      fw.status = 'CONNECTED';
      fw.reregisteredAt = ctx.clock.now();
      ctx.allocator.updateFramework(id, { ...opts, active: true });
      ctx.allocator.setFrameworkActive(id, true);
    }
    if (opts.suppressedRoles.length > 0) ctx.allocator.suppress(id, opts.suppressedRoles);
    fw.sink = sink;
    sink.send({
      type: 'SUBSCRIBED',
      subscribed: { framework_id: { value: id }, heartbeat_interval_seconds: ctx.opts.heartbeatIntervalSeconds, master_info: ctx.info },
    });
    for (const status of fw.unacked.values()) sink.send({ type: 'UPDATE', update: { status } });
    this.startHeartbeats(fw);
    ctx.log.info({ framework_id: id, name: info.name, roles, principal: boundPrincipal, failover: !!info.id }, info.id ? 'framework resubscribed' : 'framework subscribed');
    ctx.allocation.request();
    return id;
  }

  /**
   * Throws 403 unless `principal` may act on `fw` as its owner. A framework registered
   * without authentication (no bound principal) is open to anyone, as before authentication
   * existed; one registered with a principal is bound to it.
   */
  checkOwner(fw: FrameworkRec, principal: string | undefined, what: string): void {
    const owner = fw.info.principal;
    if (principal === undefined || owner === undefined) return;
    if (owner !== principal) {
      this.ctx.counters.callsUnauthorized++;
      throw new BerthError('FORBIDDEN', `Principal '${principal}' cannot ${what} framework ${fw.id}, registered by another principal`);
    }
  }

  /** The event stream of `sink` ended (socket closed, HTTP response finished). */
  detach(sink: FrameworkSink): void {
    const ctx = this.ctx;
    for (const fw of this.byId.values()) {
      if (fw.sink !== sink) continue;
      fw.sink = undefined;
      fw.status = 'DISCONNECTED';
      ctx.clock.clearTimeout(fw.heartbeatTimer);
      ctx.allocator.setFrameworkActive(fw.id, false);
      for (const oid of [...fw.offers]) ctx.offers.rescind(oid, 'framework disconnected', false);
      this.startFailoverTimer(fw);
      ctx.log.warn({ framework_id: fw.id, failover_timeout: fw.info.failover_timeout ?? 0 }, 'framework disconnected');
    }
  }

  private startFailoverTimer(fw: FrameworkRec): void {
    const ctx = this.ctx;
    if (ctx.stopped) return; // a stream closing during stop() must not schedule a registry write after close
    ctx.clock.clearTimeout(fw.failoverTimer);
    setLongTimeout(ctx.clock, () => {
      fw.failoverTimer = undefined;
      if (fw.status !== 'CONNECTED') this.remove(fw, 'failover timeout expired').catch((e: Error) => ctx.log.error({ err: e.message }, 'framework removal failed'));
    }, (fw.info.failover_timeout ?? 0) * 1000, (h) => { fw.failoverTimer = h; });
  }

  private startHeartbeats(fw: FrameworkRec): void {
    const ctx = this.ctx;
    ctx.clock.clearTimeout(fw.heartbeatTimer);
    const tick = (): void => {
      if (fw.status !== 'CONNECTED' || !fw.sink) return;
      fw.sink.send({ type: 'HEARTBEAT' });
      fw.heartbeatTimer = ctx.clock.setTimeout(tick, ctx.opts.heartbeatIntervalSeconds * 1000);
    };
    fw.heartbeatTimer = ctx.clock.setTimeout(tick, ctx.opts.heartbeatIntervalSeconds * 1000);
  }

  private newRec(id: string, info: FrameworkInfo, status: FrameworkStatus): FrameworkRec {
    return {
      id, info, roles: frameworkRoles(info), status, registeredAt: this.ctx.clock.now(), tasks: new Map(), offers: new Set(),
      unacked: new Map(), partitionAware: hasCap(info, 'PARTITION_AWARE'), gpuAware: hasCap(info, 'GPU_RESOURCES'),
    };
  }

  /** Checks that `frameworkId` may make calls now; throws the error the HTTP API reports. */
  requireSubscribed(frameworkId: string | undefined, sink?: FrameworkSink): FrameworkRec {
    if (!frameworkId) throw new BerthError('INVALID', "Expecting 'framework_id' to be present");
    const fw = this.byId.get(frameworkId);
    if (!fw) throw new BerthError('NOT_FOUND', 'Framework cannot be found');
    if (fw.status !== 'CONNECTED' || (sink && fw.sink !== sink)) throw new BerthError('FORBIDDEN', 'Framework is not subscribed');
    return fw;
  }

  /** Already validated (validateCall); persists, then applies. Principal and user cannot change. */
  async update(fw: FrameworkRec, call: Call): Promise<void> {
    const ctx = this.ctx;
    const upd = call.update_framework!;
    const info = upd.framework_info;
    const stored: FrameworkInfo = { ...info, id: { value: fw.id }, ...(fw.info.principal !== undefined ? { principal: fw.info.principal } : {}) };
    await ctx.registry.append({ type: 'framework_updated', framework_id: fw.id, info: stored, at: ctx.clock.now() });
    if (!this.byId.has(fw.id)) return; // removed while the append was in flight
    fw.info = stored;
    fw.roles = frameworkRoles(stored);
    fw.partitionAware = hasCap(stored, 'PARTITION_AWARE');
    fw.gpuAware = hasCap(stored, 'GPU_RESOURCES');
    for (const oid of [...fw.offers]) {
      const o = ctx.offers.get(oid);
      if (o && !fw.roles.includes(o.role)) ctx.offers.rescind(oid, 'role removed');
    }
    ctx.allocator.updateFramework(fw.id, { roles: fw.roles, gpuAware: fw.gpuAware, suppressedRoles: upd.suppressed_roles ?? [], active: fw.status === 'CONNECTED' });
    if (upd.suppressed_roles?.length) ctx.allocator.suppress(fw.id, upd.suppressed_roles);
    ctx.allocation.request();
  }

  /**
   * Removes a framework: its id is retired durably first, then its offers are rescinded,
   * its tasks killed on their agents and its resources recovered.
   */
  async remove(fw: FrameworkRec, reason: string): Promise<void> {
    const ctx = this.ctx;
    if (!this.byId.has(fw.id)) return;
    // Out of the map first, so nothing else acts on it while the removal is written.
    this.byId.delete(fw.id);
    rememberRemoved(this.removedIds, fw.id);
    ctx.clock.clearTimeout(fw.failoverTimer);
    ctx.clock.clearTimeout(fw.heartbeatTimer);
    fw.status = 'DISCONNECTED';
    ctx.allocator.setFrameworkActive(fw.id, false);
    for (const oid of [...fw.offers]) ctx.offers.rescind(oid, reason, false);
    if (!ctx.stopped) await ctx.registry.append({ type: 'framework_removed', framework_id: fw.id, at: ctx.clock.now() });
    const agents = new Set<string>();
    for (const task of fw.tasks.values()) {
      const agent = ctx.agents.get(task.agentId);
      // A terminal update that arrived while the removal was written already released it.
      if (!agent?.tasks.delete(taskKey(fw.id, task.id))) continue;
      if (task.state !== 'TASK_UNREACHABLE' && agent.status !== 'UNREACHABLE') {
        ctx.allocator.recoverResources(fw.id, task.agentId, task.role, Resources.from(task.resources));
      }
      task.state = 'TASK_KILLED';
      ctx.tasks.complete(task);
      agents.add(task.agentId);
    }
    for (const aid of agents) {
      ctx.agents.get(aid)?.conn?.send({ version: AGENT_PROTOCOL_VERSION, shutdown_framework: { framework_id: { value: fw.id } } });
    }
    ctx.allocator.removeFramework(fw.id);
    this.completed.set(fw.id, { id: fw.id, info: fw.info, removedAt: ctx.clock.now(), reason });
    ctx.counters.frameworksRemoved++;
    fw.sink?.close(reason);
    fw.sink = undefined;
    ctx.log.info({ framework_id: fw.id, reason, tasks: fw.tasks.size }, 'framework removed');
    ctx.allocation.request();
  }
}
