/**
 * Tasks: ACCEPT (launch from offers), KILL, status updates from agents,
 * acknowledgements, reconciliation, and the bounded history of finished tasks.
 *
 * Invariants:
 *  - A status update carrying a uuid is forwarded to its framework on every
 *    (re)delivery until the framework acknowledges that uuid; the agent keeps
 *    resending until the master relays the acknowledgement.
 *  - An agent speaks only for tasks the master placed on it (live or
 *    recently finished there). Anything else is dropped and counted in
 *    `master/invalid_status_updates`, never relayed.
 *  - A terminal update releases the task's resources exactly once.
 */
import { LRUCache } from 'lru-cache';
import { Resources } from '../proto/resources.js';
import {
  AGENT_PROTOCOL_VERSION, isTerminal,
  type Call, type ResourceStatistics, type TaskInfo, type TaskState, type TaskStatus, type TaskStatusReason,
} from '../proto/types.js';
import type { MasterContext } from './core.js';
import { type AgentRec, type FrameworkRec, type OfferRec, type TaskRec, taskKey } from './records.js';
import { validateTask } from './validation.js';

export class Tasks {
  /** Finished tasks by `taskKey`, newest last, bounded. */
  readonly completed: LRUCache<string, TaskRec>;

  constructor(private readonly ctx: MasterContext) {
    this.completed = new LRUCache({ max: ctx.opts.maxCompletedTasks ?? 10_000 });
  }

  /** Live task by framework and task id, else a finished one. */
  find(frameworkId: string, taskId: string): TaskRec | undefined {
    return this.ctx.frameworks.get(frameworkId)?.tasks.get(taskId) ?? this.completed.get(taskKey(frameworkId, taskId));
  }

  complete(task: TaskRec): void { this.completed.set(taskKey(task.frameworkId, task.id), task); }

  /** Live tasks of frameworks registered by `principal`. */
  private liveTasksOf(principal: string | undefined): number {
    let n = 0;
    for (const fw of this.ctx.frameworks.values()) if (fw.info.principal === principal) n += fw.tasks.size;
    return n;
  }

  accept(fw: FrameworkRec, accept: NonNullable<Call['accept']>, principal?: string): void {
    const ctx = this.ctx;
    const launches: TaskInfo[] = [];
    for (const op of accept.operations ?? []) for (const t of op.launch?.task_infos ?? []) launches.push(t);
    const refuse = refuseSeconds(accept.filters?.refuse_seconds, ctx.opts.defaultRefuseSeconds);

    // 1. The offers: all must be outstanding, this framework's, distinct, on one agent, for one role.
    const offers: OfferRec[] = [];
    let offerError: string | undefined;
    const seen = new Set<string>();
    for (const oid of accept.offer_ids ?? []) {
      const o = ctx.offers.get(oid.value);
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
      for (const o of offers) ctx.offers.release(o);
      const state: TaskState = fw.partitionAware ? 'TASK_DROPPED' : 'TASK_LOST';
      for (const t of launches) this.sendUpdate(fw, this.taskInfoStatus(t, state, 'REASON_INVALID_OFFERS', offerError));
      ctx.counters.callsInvalid++;
      return;
    }

    const agent = ctx.agents.get(offers[0]!.agentId)!;
    const role = offers[0]!.role;
    let offered = Resources.EMPTY;
    for (const o of offers) {
      ctx.offers.take(o);
      offered = offered.add(o.resources);
    }
    ctx.counters.offersAccepted += offers.length;

    // 2. The tasks, in order; each valid one claims its resources from what remains.
    let remaining = offered;
    // fw.tasks gains each task as it is accepted, so it also catches duplicates within this ACCEPT
    // (a copy per ACCEPT would cost O(live tasks) each time).
    const liveIds = fw.tasks;
    let budget = ctx.limits.tasksPerPrincipal - this.liveTasksOf(fw.info.principal);
    for (const t of launches) {
      let err = validateTask(t, { agentId: agent.id, role, liveTaskIds: liveIds, remaining });
      let reason: TaskStatusReason = 'REASON_TASK_INVALID';
      if (!err && budget <= 0) err = `principal '${fw.info.principal ?? 'ANY'}' already runs ${ctx.limits.tasksPerPrincipal} tasks, its limit`;
      const user = t.command?.user ?? fw.info.user;
      if (!err && !ctx.authorizer.authorized(principal ?? fw.info.principal, 'run_tasks', user)) {
        err = `principal '${principal ?? fw.info.principal ?? 'ANY'}' is not authorized to run tasks as user '${user}'`;
        reason = 'REASON_TASK_UNAUTHORIZED';
        ctx.counters.callsUnauthorized++;
      }
      if (err) {
        ctx.counters.tasksError++;
        const what = reason === 'REASON_TASK_UNAUTHORIZED' ? 'unauthorized' : 'invalid';
        this.sendUpdate(fw, this.taskInfoStatus(t, 'TASK_ERROR', reason, `Task ${t.task_id?.value ?? ''} is ${what}: ${err}`));
        continue;
      }
      budget--;
      const need = Resources.from(t.resources);
      remaining = remaining.subtract(need);
      const resources = (t.resources ?? []).map((r) => (r.allocation_info ? r : { ...r, allocation_info: { role } }));
      const task: TaskRec = {
        id: t.task_id.value, name: t.name, frameworkId: fw.id, agentId: agent.id, role, state: 'TASK_STAGING',
        resources, labels: t.labels, user, startedAt: ctx.clock.now(),
      };
      fw.tasks.set(task.id, task);
      agent.tasks.set(taskKey(fw.id, task.id), task);
      ctx.counters.tasksLaunched++;
      agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, launch: { framework: fw.info, task: { ...t, resources } } });
    }

    // 3. Whatever was not used goes back, filtered for this framework as asked.
    if (!remaining.isEmpty()) ctx.allocator.recoverResources(fw.id, agent.id, role, remaining, refuse, ctx.clock.now());
    ctx.allocation.request(agent.id);
  }

  decline(fw: FrameworkRec, decline: Call['decline']): void {
    const ctx = this.ctx;
    const refuse = refuseSeconds(decline?.filters?.refuse_seconds, ctx.opts.defaultRefuseSeconds);
    for (const oid of decline?.offer_ids ?? []) {
      const offer = ctx.offers.get(oid.value);
      if (!offer || offer.frameworkId !== fw.id) continue; // stale offer: nothing to decline (as Mesos)
      ctx.counters.offersDeclined++;
      ctx.offers.release(offer, refuse);
    }
  }

  kill(fw: FrameworkRec, taskId: string, killPolicy?: TaskInfo['kill_policy']): void {
    const ctx = this.ctx;
    const task = fw.tasks.get(taskId);
    if (!task) {
      if (this.completed.get(taskKey(fw.id, taskId))) return; // already terminal; its terminal update was (or will be) delivered
      const state: TaskState = fw.partitionAware ? 'TASK_UNKNOWN' : 'TASK_LOST';
      this.sendUpdate(fw, { task_id: { value: taskId }, state, source: 'SOURCE_MASTER', reason: 'REASON_TASK_UNKNOWN', message: 'Attempted to kill an unknown task', timestamp: ctx.clock.now() / 1000 });
      return;
    }
    const agent = ctx.agents.get(task.agentId);
    if (!agent?.conn || agent.status !== 'ACTIVE') {
      ctx.log.warn({ task_id: taskId, agent_id: task.agentId }, 'kill deferred: agent not connected; it will be killed when the agent reregisters if the framework asks again');
      return;
    }
    agent.conn.send({ version: AGENT_PROTOCOL_VERSION, kill: { framework_id: { value: fw.id }, task_id: { value: taskId }, kill_policy: killPolicy } });
  }

  acknowledge(fw: FrameworkRec, ack: NonNullable<Call['acknowledge']>): void {
    const ctx = this.ctx;
    ctx.counters.acknowledgements++;
    const tid = ack.task_id.value;
    const pending = fw.unacked.get(tid);
    if (pending && pending.uuid === ack.uuid) fw.unacked.delete(tid);
    // Relay to the agent unconditionally: it ignores unknown and duplicate acknowledgements,
    // and relaying a duplicate is what stops an agent that resent an already-acknowledged update.
    const agent = ctx.agents.get(ack.agent_id.value);
    agent?.conn?.send({ version: AGENT_PROTOCOL_VERSION, ack: { framework_id: { value: fw.id }, task_id: ack.task_id, uuid: ack.uuid } });
  }

  reconcile(fw: FrameworkRec, tasks: { task_id: { value: string }; agent_id?: { value: string } }[]): void {
    const ctx = this.ctx;
    if (tasks.length === 0) {
      // Implicit: the latest state of every task the master knows for this framework.
      for (const task of fw.tasks.values()) this.sendUpdate(fw, this.reconcileStatus(fw, task));
      return;
    }
    for (const q of tasks) {
      const task = fw.tasks.get(q.task_id.value);
      if (task) { this.sendUpdate(fw, this.reconcileStatus(fw, task)); continue; }
      const done = this.completed.get(taskKey(fw.id, q.task_id.value));
      if (done) { this.sendUpdate(fw, this.reconcileStatus(fw, done)); continue; }
      const agent = q.agent_id ? ctx.agents.get(q.agent_id.value) : undefined;
      // After a failover (or a restart on the registry) the master learns tasks only from agents
      // re-registering. While the task's agent — or, with no agent named, any agent — has not
      // come back, it does not know: no answer (as Mesos), so a framework asks again instead of
      // relaunching a task that may be running. The re-registration timeout bounds the silence.
      if (agent ? agent.status === 'RECOVERED' : !q.agent_id && ctx.agents.recovering > 0) { ctx.counters.reconcileDeferred++; continue; }
      let state: TaskState = fw.partitionAware ? 'TASK_UNKNOWN' : 'TASK_LOST';
      if (agent && agent.status === 'UNREACHABLE') state = fw.partitionAware ? 'TASK_UNREACHABLE' : 'TASK_LOST';
      this.sendUpdate(fw, {
        task_id: q.task_id, state, source: 'SOURCE_MASTER', reason: 'REASON_RECONCILIATION', message: 'Reconciliation: task is unknown',
        agent_id: q.agent_id, timestamp: ctx.clock.now() / 1000,
      });
    }
  }

  private reconcileStatus(fw: FrameworkRec, task: TaskRec): TaskStatus {
    let state = task.state;
    if (state === 'TASK_UNREACHABLE' && !fw.partitionAware) state = 'TASK_LOST';
    const st = this.masterStatus(task, state, 'REASON_RECONCILIATION', 'Reconciliation: latest task state');
    if (task.status?.healthy !== undefined) st.healthy = task.status.healthy;
    if (task.status?.check_status !== undefined) st.check_status = task.status.check_status;
    return st;
  }

  /**
   * An update from an agent: record it, release resources if terminal, and forward it.
   * The agent speaks only for tasks the master placed on it; anything else is dropped.
   */
  statusUpdate(agent: AgentRec, frameworkId: string, status: TaskStatus): void {
    const ctx = this.ctx;
    const tid = status.task_id.value;
    const k = taskKey(frameworkId, tid);
    const task = agent.tasks.get(k);
    const done = task ? undefined : this.completed.get(k);
    if (!task && done?.agentId !== agent.id) {
      ctx.counters.invalidStatusUpdates++;
      const elsewhere = ctx.frameworks.get(frameworkId)?.tasks.get(tid);
      ctx.log.warn({ agent_id: agent.id, framework_id: frameworkId, task_id: tid, placed_on: elsewhere?.agentId ?? done?.agentId },
        'dropping a status update for a task the master did not place on this agent');
      // A task unknown everywhere (e.g. forgotten from the bounded history) would be resent by
      // an honest agent forever: acknowledge it to this agent only. Never for a task placed elsewhere.
      if (!elsewhere && !done && status.uuid) agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, ack: { framework_id: { value: frameworkId }, task_id: status.task_id, uuid: status.uuid } });
      return;
    }
    ctx.counters.statusUpdates++;
    const fw = ctx.frameworks.get(frameworkId);
    if (task) {
      task.state = status.state;
      task.status = status;
      if (isTerminal(status.state)) {
        agent.tasks.delete(k);
        fw?.tasks.delete(tid);
        ctx.allocator.recoverResources(frameworkId, agent.id, task.role, Resources.from(task.resources));
        this.complete(task);
        this.countTerminal(status.state);
        ctx.allocation.request(agent.id);
      }
    }
    status.agent_id = { value: agent.id };
    if (!fw) {
      // The framework is gone for good: acknowledge on its behalf so the agent stops resending.
      if (status.uuid) agent.conn?.send({ version: AGENT_PROTOCOL_VERSION, ack: { framework_id: { value: frameworkId }, task_id: status.task_id, uuid: status.uuid } });
      return;
    }
    if (status.uuid) fw.unacked.set(tid, status);
    fw.sink?.send({ type: 'UPDATE', update: { status } });
  }

  /** Resource usage an agent reports for its own tasks. */
  usage(agent: AgentRec, containers: { framework_id: { value: string }; task_id: { value: string }; statistics?: ResourceStatistics }[]): void {
    for (const c of containers) {
      const t = agent.tasks.get(taskKey(c.framework_id.value, c.task_id.value));
      if (t) t.statistics = c.statistics;
    }
  }

  countTerminal(state: TaskState): void {
    const c = this.ctx.counters;
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
  sendUpdate(fw: FrameworkRec, status: TaskStatus): void {
    fw.sink?.send({ type: 'UPDATE', update: { status } });
  }

  masterStatus(task: TaskRec, state: TaskState, reason: TaskStatusReason, message: string): TaskStatus {
    return {
      task_id: { value: task.id }, state, source: 'SOURCE_MASTER', reason, message,
      agent_id: { value: task.agentId }, timestamp: this.ctx.clock.now() / 1000,
    };
  }

  private taskInfoStatus(t: TaskInfo, state: TaskState, reason: TaskStatusReason, message: string): TaskStatus {
    return {
      task_id: { value: t.task_id?.value ?? '' }, state, source: 'SOURCE_MASTER', reason, message,
      agent_id: t.agent_id, timestamp: this.ctx.clock.now() / 1000,
    };
  }
}

/** DECLINE/ACCEPT refuse_seconds: negative or absent = the default; capped at a year (as Mesos). */
function refuseSeconds(v: number | undefined, dflt: number): number {
  if (v === undefined || v < 0) return dflt;
  return Math.min(v, 365 * 24 * 3600);
}
