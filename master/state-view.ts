/**
 * The one read view of the master, in Mesos's JSON shapes: `/state` (and its
 * aliases), `/frameworks`, `/tasks`, `/slaves` are all cut from `state()`.
 * Computed at request time from the live records; nothing cached, nothing
 * changed. Filtered per viewer: frameworks and tasks the viewer's principal
 * may not see (`view_frameworks`, `view_tasks`) are left out.
 */
import { Resources } from '../proto/resources.js';
import { isTerminal } from '../proto/types.js';
import type { MasterContext } from './core.js';
import { attributesOf } from './agents.js';
import type { AgentRec, FrameworkRec, OfferRec, TaskRec } from './records.js';
import { frameworkRoles } from './validation.js';

export const MASTER_VERSION = '0.1.0';

type Json = Record<string, unknown>;

/** Who is looking: `principal` undefined = unauthenticated (or authentication off). */
export interface Viewer { principal?: string }

export class StateView {
  constructor(private readonly ctx: MasterContext) {}

  private canSeeFramework(v: Viewer, user: string | undefined): boolean {
    return this.ctx.authorizer.authorized(v.principal, 'view_frameworks', user);
  }
  private canSeeTask(v: Viewer, t: TaskRec): boolean {
    return this.ctx.authorizer.authorized(v.principal, 'view_tasks', t.user);
  }

  /** Agents, frameworks, tasks and resources in Mesos's /state shape (where it overlaps). */
  state(viewer: Viewer = {}): Json {
    const ctx = this.ctx;
    const agents = [...ctx.agents.values()];
    const slaves = agents.filter((a) => a.status !== 'UNREACHABLE').map((a) => this.agentJson(a));
    const unreachable = agents.filter((a) => a.status === 'UNREACHABLE').map((a) => ({ ...this.agentJson(a), unreachable_time: a.unreachableAt }));
    const frameworks = [...ctx.frameworks.values()].filter((fw) => this.canSeeFramework(viewer, fw.info.user)).map((fw) => this.frameworkJson(fw, viewer));
    const completed = [...ctx.frameworks.completed.values()].filter((c) => this.canSeeFramework(viewer, c.info.user)).map((c) => ({
      id: c.id, name: c.info.name, user: c.info.user, roles: frameworkRoles(c.info), active: false, connected: false,
      unregistered_time: c.removedAt / 1000, reason: c.reason,
      completed_tasks: [...ctx.tasks.completed.values()].filter((t) => t.frameworkId === c.id && this.canSeeTask(viewer, t)).slice(0, 100).map((t) => taskJson(t)),
    }));
    return {
      version: MASTER_VERSION,
      id: ctx.id,
      pid: ctx.info.pid,
      hostname: ctx.info.hostname,
      start_time: ctx.startedAt / 1000,
      elected_time: ctx.startedAt / 1000,
      leader: ctx.info.pid,
      leader_info: ctx.info,
      activated_slaves: agents.filter((a) => a.status === 'ACTIVE').length,
      deactivated_slaves: agents.filter((a) => a.status === 'DISCONNECTED' || a.status === 'RECOVERED').length,
      unreachable_slaves: unreachable,
      slaves,
      frameworks,
      completed_frameworks: completed,
      outstanding_offers: ctx.offers.size,
      resources: resourcesJson(agents.filter((a) => a.status === 'ACTIVE').reduce((s, a) => s.add(a.total), Resources.EMPTY)),
      used_resources: resourcesJson(agents.reduce((s, a) => s.add(usedOf(a)), Resources.EMPTY)),
      offered_resources: resourcesJson([...ctx.offers.values()].reduce((s, o) => s.add(o.resources), Resources.EMPTY)),
    };
  }

  /** Mesos's /state, plus the top-level fields it has that `state()` leaves out. */
  mesosState(viewer: Viewer = {}): Json {
    const ctx = this.ctx;
    return {
      ...this.state(viewer),
      build_time: ctx.startedAt / 1000,
      git_sha: '',
      cluster: 'berth',
      flags: {
        port: String(ctx.opts.port ?? 5050),
        allocation_interval: `${ctx.opts.allocationIntervalMs}ms`,
        offer_timeout: ctx.opts.offerTimeoutMs ? `${ctx.opts.offerTimeoutMs}ms` : undefined,
        max_agent_ping_timeouts: String(ctx.opts.maxMissedPings),
        agent_ping_timeout: `${ctx.opts.agentPingIntervalMs}ms`,
      },
      unregistered_frameworks: [],
      orphan_tasks: [],
    };
  }

  private agentJson(a: AgentRec): Json {
    const used = usedOf(a);
    const offered = [...a.offers].reduce((s, oid) => s.add(this.ctx.offers.get(oid)?.resources ?? Resources.EMPTY), Resources.EMPTY);
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

  private frameworkJson(fw: FrameworkRec, viewer: Viewer): Json {
    const ctx = this.ctx;
    const tasks = [...fw.tasks.values()];
    const used = tasks.filter((t) => !isTerminal(t.state) && t.state !== 'TASK_UNREACHABLE').reduce((s, t) => s.add(Resources.from(t.resources)), Resources.EMPTY);
    const offers = [...fw.offers].map((oid) => ctx.offers.get(oid)).filter((o): o is OfferRec => !!o);
    const offered = offers.reduce((s, o) => s.add(o.resources), Resources.EMPTY);
    const visible = tasks.filter((t) => this.canSeeTask(viewer, t));
    return {
      id: fw.id, name: fw.info.name, user: fw.info.user, principal: fw.info.principal, hostname: fw.info.hostname,
      webui_url: fw.info.webui_url, role: fw.roles[0], roles: fw.roles, failover_timeout: fw.info.failover_timeout ?? 0,
      checkpoint: fw.info.checkpoint ?? false, capabilities: (fw.info.capabilities ?? []).map((c) => c.type),
      active: fw.status === 'CONNECTED', connected: fw.status === 'CONNECTED', recovered: fw.status === 'RECOVERED',
      registered_time: fw.registeredAt / 1000, reregistered_time: fw.reregisteredAt ? fw.reregisteredAt / 1000 : undefined,
      dominant_share: ctx.allocator.frameworkShare(fw.id),
      resources: resourcesJson(used.add(offered)), used_resources: resourcesJson(used), offered_resources: resourcesJson(offered),
      tasks: visible.map((t) => taskJson(t)),
      offers: offers.map((o) => ({ id: o.id, agent_id: o.agentId, framework_id: o.frameworkId, resources: resourcesJson(o.resources), allocation_info: { role: o.role } })),
      unreachable_tasks: visible.filter((t) => t.state === 'TASK_UNREACHABLE').map((t) => taskJson(t)),
      completed_tasks: [...ctx.tasks.completed.values()].filter((t) => t.frameworkId === fw.id && this.canSeeTask(viewer, t)).slice(-100).map((t) => taskJson(t)),
    };
  }
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

/** A task in Mesos's task JSON. The TaskInfo (command, environment) is never included. */
export function taskJson(t: TaskRec): Json {
  return {
    id: t.id, name: t.name, framework_id: t.frameworkId, executor_id: '', slave_id: t.agentId, agent_id: t.agentId,
    state: t.state, role: t.role, user: t.user, resources: resourcesJson(Resources.from(t.resources)),
    statuses: t.status ? [{ state: t.status.state, timestamp: t.status.timestamp, message: t.status.message, reason: t.status.reason, healthy: t.status.healthy, check_status: t.status.check_status }] : [],
    labels: t.labels?.labels ?? [],
    statistics: t.statistics,
  };
}
