/**
 * Agents as the master knows them: admission and re-registration (with the
 * reconciliation of the agent's task report), health checking by pings,
 * disconnection, unreachability and removal.
 *
 * Invariants:
 *  - An agent is admitted (its id durable in the registry) before it is told
 *    its id; a re-registering agent keeps its id.
 *  - An agent is trusted only for itself: it speaks for the tasks the master
 *    placed on it, nothing else (tasks.ts drops and counts the rest).
 *  - The allocator holds an agent iff its status is ACTIVE or DISCONNECTED.
 */
import { BerthError } from '../proto/errors.js';
import { Resources } from '../proto/resources.js';
import { idError } from '../proto/ids.js';
import type { Conn } from '../proto/transport/types.js';
import {
  AGENT_PROTOCOL_VERSION, isTerminal,
  type AgentInfo, type AgentReregister, type AgentToMaster, type FrameworkInfo, type MasterToAgent, type TaskState,
} from '../proto/types.js';
import type { TimerHandle } from '../proto/clock.js';
import type { MasterContext } from './core.js';
import { type AgentRec, type AgentStatus, type AgentView, taskKey } from './records.js';

export class Agents {
  private readonly byId = new Map<string, AgentRec>();
  private nextAgent = 0;
  private pingTimer?: TimerHandle;

  constructor(private readonly ctx: MasterContext) {}

  /** Every known agent (read-only). */
  get all(): ReadonlyMap<string, AgentView> { return this.byId; }
  get(id: string): AgentRec | undefined { return this.byId.get(id); }
  values(): IterableIterator<AgentRec> { return this.byId.values(); }
  get size(): number { return this.byId.size; }

  /** Ids recovered from the registry that may still be RECOVERED (pruned lazily). */
  private recovered = new Set<string>();
  /** How many agents were recovered from the registry at start. */
  recoveredAtStart = 0;

  /** Agents still RECOVERED: known from the registry, not re-registered, not yet timed out. */
  recoveringCount(): number {
    for (const id of this.recovered) if (this.byId.get(id)?.status !== 'RECOVERED') this.recovered.delete(id);
    return this.recovered.size;
  }

  /** True while some recovered agent has not come back (cheap: stops at the first one still out). */
  get recovering(): number {
    for (const id of this.recovered) {
      if (this.byId.get(id)?.status === 'RECOVERED') return 1;
      this.recovered.delete(id);
    }
    return 0;
  }

  /**
   * Agents known from the registry after a restart: they must reregister. Those already
   * unreachable stay so (with their time), and may come back.
   */
  recover(agents: Map<string, AgentInfo>, unreachable: Map<string, number> = new Map()): void {
    // Only agents that may come back count for the recovery wait and the unanswered reconciliation.
    for (const id of agents.keys()) if (!unreachable.has(id)) this.recovered.add(id);
    this.recoveredAtStart = this.recovered.size;
    for (const [id, info] of agents) {
      const at = unreachable.get(id);
      this.byId.set(id, {
        id, info, total: Resources.from(info.resources), status: at === undefined ? 'RECOVERED' : 'UNREACHABLE', missedPings: 0,
        registeredAt: this.ctx.startedAt, unreachableAt: at, tasks: new Map(), offers: new Set(),
      });
    }
  }

  start(): void { this.schedulePingTick(); }

  stop(): void {
    this.ctx.clock.clearTimeout(this.pingTimer);
    for (const a of this.byId.values()) a.conn?.close('master stopping');
  }

  /** A Register or Reregister message from `conn`: admits (or re-admits) the agent. Resolves with its id. */
  async admit(conn: Conn<AgentToMaster, MasterToAgent>, msg: AgentToMaster, principal?: string): Promise<string> {
    const ctx = this.ctx;
    const rereg: AgentReregister | undefined = msg.reregister;
    const reg = rereg ?? msg.register!;
    const info = reg.agent_info;
    const total = Resources.from(info.resources);
    let id = rereg ? info.id?.value : undefined;
    if (id !== undefined) {
      const err = idError('agent_info.id', id);
      if (err) throw new BerthError('INVALID', err);
    }
    let agent = id ? this.byId.get(id) : undefined;
    // An id held by a live, authenticated connection is that agent's: another connection
    // cannot take it over (it would drop the real agent's link and speak for its tasks).
    if (agent?.conn && agent.conn !== conn && !agent.conn.closed && agent.principal !== undefined) {
      throw new BerthError('FORBIDDEN', `agent ${id} is registered on a live authenticated connection; refusing a second registration under its id`);
    }
    if (!id) id = `${ctx.id}-S${this.nextAgent++}`;
    const infoWithId: AgentInfo = { ...info, id: { value: id } };
    // Durable before the agent is told: a new agent, or one coming back from unreachable.
    if (!agent || agent.status === 'UNREACHABLE') await ctx.registry.append({ type: 'agent_admitted', agent_id: id, info: infoWithId, at: ctx.clock.now() });
    if (ctx.stopped || conn.closed) return id;

    const wasActive = agent?.status === 'ACTIVE' || agent?.status === 'DISCONNECTED';
    if (agent && agent.conn && agent.conn !== conn) agent.conn.close('agent reconnected');
    if (!agent) {
      agent = { id, info: infoWithId, total, status: 'ACTIVE', missedPings: 0, registeredAt: ctx.clock.now(), tasks: new Map(), offers: new Set() };
      this.byId.set(id, agent);
    }
    const previousStatus = agent.status;
    agent.info = infoWithId;
    agent.total = total;
    agent.conn = conn;
    agent.principal = principal;
    agent.endpoint = reg.endpoint;
    agent.version = reg.version;
    agent.missedPings = 0;
    agent.status = 'ACTIVE';
    if (wasActive) {
      // A reconnect the master had not noticed yet: its offers predate the agent's report.
      for (const oid of [...agent.offers]) ctx.offers.rescind(oid, 'agent reregistered');
      ctx.allocator.removeAgent(id); // re-added below with the reported tasks
    }
    ctx.allocator.addAgent(id, total, attributesOf(infoWithId));
    if (rereg) this.reconcileTasks(agent, rereg, previousStatus);
    conn.send({ version: AGENT_PROTOCOL_VERSION, registered: { agent_id: { value: id }, ping_interval_seconds: ctx.opts.agentPingIntervalMs / 1000, master_id: ctx.id } });
    ctx.log.info({ agent_id: id, hostname: info.hostname, resources: total.toString(), reregistered: !!rereg, tasks: rereg?.tasks?.length ?? 0 }, rereg ? 'agent reregistered' : 'agent registered');
    ctx.allocation.request(id);
    return id;
  }

  /** Rebuilds the tasks of a reregistering agent from its report; the agent is the source of truth. */
  private reconcileTasks(agent: AgentRec, rereg: AgentReregister, previous: AgentStatus): void {
    const ctx = this.ctx;
    const reported = new Set<string>();
    const killFrameworks = new Set<string>();
    for (const report of rereg.tasks ?? []) {
      const fid = report.framework_id.value;
      const tid = report.task.task_id.value;
      const idErr = idError('framework_id', fid) ?? idError('task_id', tid);
      if (idErr) { ctx.log.warn({ agent_id: agent.id, err: idErr }, 'ignoring a malformed task in an agent report'); continue; }
      const k = taskKey(fid, tid);
      reported.add(k);
      if (isTerminal(report.state)) {
        // Its terminal update travels through the update stream; remember where it ran so that
        // update is recognised as this agent's own (tasks.ts drops updates for tasks placed elsewhere).
        if (!agent.tasks.has(k) && !ctx.tasks.completed.has(k)) {
          ctx.tasks.complete({
            id: tid, name: report.task.name, frameworkId: fid, agentId: agent.id, role: '*', state: report.state,
            resources: report.task.resources ?? [], labels: report.task.labels, status: report.latest_status,
          });
        }
        continue;
      }
      const removed = ctx.frameworks.wasRemoved(fid);
      let fwRec = ctx.frameworks.get(fid);
      if (!fwRec) {
        if (removed) { killFrameworks.add(fid); continue; }
        ctx.log.warn({ framework_id: fid, task_id: tid }, 'agent reports a task of an unknown framework; keeping it');
        // Unknown but not removed: the framework may resubscribe (master lost it). Track as recovered.
        const info: FrameworkInfo = rereg.frameworks?.find((f) => f.id?.value === fid) ?? { user: 'unknown', name: 'unknown', id: { value: fid } };
        fwRec = ctx.frameworks.adoptRecovered(fid, info);
      }
      let task = agent.tasks.get(k);
      const role = report.task.resources?.find((r) => r.allocation_info?.role)?.allocation_info?.role ?? fwRec.roles[0] ?? '*';
      const wasUnreachable = task?.state === 'TASK_UNREACHABLE';
      const resources = task?.resources ?? report.task.resources ?? [];
      // The allocator was just given this agent afresh: it holds exactly the reported tasks.
      // A report it cannot hold (more than the agent has, malformed resources) is the agent's
      // problem, not the master's: the task is killed there and forgotten here.
      try {
        ctx.allocator.recoverAllocation(fid, agent.id, role, Resources.from(resources));
      } catch (e) {
        ctx.log.error({ agent_id: agent.id, framework_id: fid, task_id: tid, err: (e as Error).message }, 'agent reports a task it cannot hold; killing it');
        agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, kill: { framework_id: { value: fid }, task_id: { value: tid } } });
        reported.delete(k);
        continue;
      }
      if (!task) {
        task = {
          id: tid, name: report.task.name, frameworkId: fid, agentId: agent.id, role, state: report.state,
          resources, labels: report.task.labels, user: report.task.command?.user ?? fwRec.info.user,
        };
        agent.tasks.set(k, task);
        fwRec.tasks.set(tid, task);
      }
      task.state = report.state;
      if (report.latest_status) task.status = report.latest_status;
      if (wasUnreachable || previous === 'UNREACHABLE') {
        ctx.tasks.sendUpdate(fwRec, ctx.tasks.masterStatus(task, report.state, 'REASON_AGENT_REREGISTERED', `Agent ${agent.id} reregistered`));
      }
    }
    // Tasks the master believed were on this agent but the agent no longer has: gone. Their
    // resources need no release: the allocator's fresh copy of the agent never held them.
    for (const [k, task] of agent.tasks) {
      if (reported.has(k)) continue;
      const fw = ctx.frameworks.get(task.frameworkId);
      agent.tasks.delete(k);
      fw?.tasks.delete(task.id);
      const state: TaskState = fw?.partitionAware ? 'TASK_GONE' : 'TASK_LOST';
      task.state = state;
      ctx.tasks.complete(task);
      ctx.tasks.countTerminal(state);
      if (fw) ctx.tasks.sendUpdate(fw, ctx.tasks.masterStatus(task, state, 'REASON_AGENT_RESTARTED', `Task is no longer known to agent ${agent.id}`));
    }
    for (const fid of killFrameworks) agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, shutdown_framework: { framework_id: { value: fid } } });
  }

  /** The agent's connection closed: offers from it are rescinded; it has until the ping budget runs out to return. */
  disconnected(agent: AgentRec, reason: string): void {
    agent.conn = undefined;
    if (agent.status !== 'ACTIVE') return;
    agent.status = 'DISCONNECTED';
    this.ctx.allocator.setAgentActive(agent.id, false);
    for (const oid of [...agent.offers]) this.ctx.offers.rescind(oid, 'agent disconnected');
    this.ctx.log.warn({ agent_id: agent.id, reason }, 'agent disconnected');
  }

  pong(agent: AgentRec): void { agent.missedPings = 0; }

  private schedulePingTick(): void {
    if (this.ctx.stopped) return;
    this.pingTimer = this.ctx.clock.setTimeout(() => { this.pingTick(); this.schedulePingTick(); }, this.ctx.opts.agentPingIntervalMs);
  }

  /** Health checking: each tick counts a missed ping for every agent that has not answered since the last one. */
  private pingTick(): void {
    const ctx = this.ctx;
    const now = ctx.clock.now();
    for (const agent of this.byId.values()) {
      if (agent.status === 'RECOVERED') {
        if (now - ctx.startedAt >= ctx.opts.agentReregisterTimeoutMs) this.markUnreachable(agent, 'did not reregister after master failover');
        continue;
      }
      if (agent.status === 'UNREACHABLE') continue;
      if (agent.status !== 'ACTIVE' && agent.status !== 'DISCONNECTED') continue;
      if (agent.missedPings >= ctx.opts.maxMissedPings) {
        this.markUnreachable(agent, `missed ${agent.missedPings} pings`);
        continue;
      }
      agent.missedPings++;
      agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, ping: { seq: now } });
    }
    this.pruneUnreachable(now);
  }

  /**
   * The registry's bounds on agents that are gone (Mesos --registry_max_agent_age and
   * --registry_max_agent_count): unreachable longer than the age, or beyond the count (oldest
   * first), they are removed for good — durably first.
   */
  private pruneUnreachable(now: number): void {
    const ctx = this.ctx;
    const gone = [...this.byId.values()].filter((a) => a.status === 'UNREACHABLE' && !a.removing).sort((a, b) => (a.unreachableAt ?? 0) - (b.unreachableAt ?? 0));
    const excess = gone.length - ctx.opts.registryMaxAgentCount;
    gone.forEach((a, i) => {
      const tooOld = now - (a.unreachableAt ?? now) > ctx.opts.registryMaxAgentAgeMs;
      if (tooOld || i < excess) void this.remove(a, tooOld ? 'unreachable longer than --registry-max-agent-age' : 'beyond --registry-max-agent-count');
    });
  }

  /** Forgets an unreachable agent: `agent_removed` is durable before its tasks are reported gone. */
  private async remove(agent: AgentRec, why: string): Promise<void> {
    const ctx = this.ctx;
    agent.removing = true;
    try {
      await ctx.registry.append({ type: 'agent_removed', agent_id: agent.id, at: ctx.clock.now() });
    } catch (e) {
      agent.removing = false;
      ctx.log.error({ agent_id: agent.id, err: (e as Error).message }, 'agent removal not persisted; will retry');
      return;
    }
    if (this.byId.get(agent.id) !== agent || agent.status !== 'UNREACHABLE') return; // it came back meanwhile
    this.byId.delete(agent.id);
    ctx.counters.agentsRemoved++;
    for (const [k, task] of agent.tasks) {
      agent.tasks.delete(k);
      const fw = ctx.frameworks.get(task.frameworkId);
      fw?.tasks.delete(task.id);
      const state: TaskState = fw?.partitionAware ? 'TASK_GONE' : 'TASK_LOST';
      task.state = state;
      ctx.tasks.complete(task);
      ctx.tasks.countTerminal(state);
      if (fw) ctx.tasks.sendUpdate(fw, ctx.tasks.masterStatus(task, state, 'REASON_AGENT_REMOVED', `Agent ${agent.id} was removed: ${why}`));
    }
    ctx.log.warn({ agent_id: agent.id, why }, 'agent removed');
  }

  /**
   * The agent is gone for now: no offers from it, its link cut; once that is durable, its
   * frameworks hear TASK_UNREACHABLE (partition-aware) or TASK_LOST for each of its tasks.
   */
  private markUnreachable(agent: AgentRec, why: string): void {
    const ctx = this.ctx;
    const wasInAllocator = agent.status === 'ACTIVE' || agent.status === 'DISCONNECTED';
    agent.status = 'UNREACHABLE';
    const at = ctx.clock.now();
    agent.unreachableAt = at;
    ctx.counters.agentsUnreachable++;
    for (const oid of [...agent.offers]) ctx.offers.rescind(oid, 'agent unreachable');
    if (wasInAllocator) ctx.allocator.removeAgent(agent.id);
    agent.conn?.close('marked unreachable');
    agent.conn = undefined;
    ctx.registry.append({ type: 'agent_unreachable', agent_id: agent.id, at }).then(
      () => { if (agent.status === 'UNREACHABLE' && agent.unreachableAt === at) this.reportUnreachable(agent, why); },
      (e: Error) => ctx.log.error({ agent_id: agent.id, err: e.message }, 'agent unreachability not persisted; its frameworks are not told'),
    );
  }

  private reportUnreachable(agent: AgentRec, why: string): void {
    const ctx = this.ctx;
    const nanos = agent.unreachableAt! * 1e6;
    for (const task of agent.tasks.values()) {
      if (isTerminal(task.state) || task.state === 'TASK_UNREACHABLE') continue;
      task.state = 'TASK_UNREACHABLE';
      ctx.counters.tasksUnreachable++;
      const fw = ctx.frameworks.get(task.frameworkId);
      if (!fw) continue;
      const state: TaskState = fw.partitionAware ? 'TASK_UNREACHABLE' : 'TASK_LOST';
      const st = ctx.tasks.masterStatus(task, state, 'REASON_AGENT_REMOVED', `Agent ${agent.id} is unreachable: ${why}`);
      st.unreachable_time = { nanoseconds: nanos };
      ctx.tasks.sendUpdate(fw, st);
    }
    ctx.log.warn({ agent_id: agent.id, why, tasks: agent.tasks.size }, 'agent unreachable');
  }
}

/** Agent attributes as the allocator and /state show them. */
export function attributesOf(info: AgentInfo): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const a of info.attributes ?? []) {
    if (a.type === 'SCALAR' && a.scalar) out[a.name] = a.scalar.value;
    else if (a.type === 'TEXT' && a.text) out[a.name] = a.text.value;
    else if (a.type === 'SET' && a.set) out[a.name] = `{${(a.set.item ?? []).join(',')}}`;
    else if (a.type === 'RANGES' && a.ranges) out[a.name] = `[${(a.ranges.range ?? []).map((r) => `${r.begin}-${r.end}`).join(',')}]`;
  }
  return out;
}

