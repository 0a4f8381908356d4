/**
 * Operator endpoints in Mesos's shapes where they overlap with Berth:
 * `/state` (+ `/master/state`, `/state.json`), `/tasks`, `/frameworks`,
 * `/slaves`, `/roles`, `/weights`, `/metrics/snapshot` (Mesos metric names) and `/metrics`
 * (the same numbers as Prometheus text).
 *
 * Everything here is a read-only view computed from the master's public
 * state at request time; nothing is cached, so a reading is always current
 * and the master's hot path pays nothing for these endpoints.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTerminal, type TaskState } from '../../proto/types.js';
import type { Master } from '../master.js';
import { principalOf, readBody, sendJson, type MasterHttpServer } from './server.js';
import type { SchedulerApi } from './api.js';
import { weightOf } from '../weights.js';

type Json = Record<string, unknown>;

/** GET (and HEAD) only, as Mesos's read endpoints; anything else is 405. */
function getOnly(handler: (req: IncomingMessage, res: ServerResponse, url: URL) => void) {
  return (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      const body = `Expecting one of { 'GET' }, but received '${req.method ?? ''}'`;
      res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    handler(req, res, url);
  };
}

/** Mesos's /state, plus the top-level fields Berth's state() leaves out, as `principal` may see it. */
export function mesosState(master: Master, principal?: string): Json {
  return master.view.mesosState({ principal });
}

function asList(v: unknown): Json[] { return Array.isArray(v) ? (v as Json[]) : []; }

/**
 * Mesos' /roles: every role that has a weight or a framework the viewer may see, with its weight,
 * those frameworks, its dominant share as the allocator's role sorter holds it, and scalars as
 * Mesos names them: `allocated` (live tasks), `offered` (outstanding offers) and `resources`
 * (both: what counts in DRF, where an offered resource is allocated from the moment it is offered).
 */
export function rolesView(master: Master, principal?: string): { roles: Json[] } {
  type Sums = { allocated: Record<string, number>; offered: Record<string, number>; resources: Record<string, number> };
  const s = master.view.state({ principal });
  const weights = master.opts.weights ?? {};
  const zero = (): Record<string, number> => ({ cpus: 0, mem: 0, disk: 0, gpus: 0 });
  const roles = new Map<string, { frameworks: string[] } & Sums>();
  const entry = (name: string): { frameworks: string[] } & Sums => {
    let e = roles.get(name);
    if (!e) roles.set(name, (e = { frameworks: [], allocated: zero(), offered: zero(), resources: zero() }));
    return e;
  };
  const add = (into: Record<string, number>, r: unknown): void => {
    for (const [k, v] of Object.entries((r ?? {}) as Record<string, unknown>)) if (typeof v === 'number') into[k] = Math.round(((into[k] ?? 0) + v) * 1000) / 1000;
  };
  for (const role of Object.keys(weights)) entry(role);
  for (const f of asList(s.frameworks)) {
    for (const role of (f.roles as string[] | undefined) ?? []) entry(role).frameworks.push(String(f.id));
    for (const t of asList(f.tasks)) {
      // As /state's used_resources: live tasks only (terminal ones awaiting acknowledgement hold nothing).
      if (typeof t.role !== 'string' || isTerminal(t.state as TaskState) || t.state === 'TASK_UNREACHABLE') continue;
      const e = entry(t.role);
      add(e.allocated, t.resources);
      add(e.resources, t.resources);
    }
    for (const o of asList(f.offers)) {
      const role = (o.allocation_info as { role?: string } | undefined)?.role;
      if (!role) continue;
      const e = entry(role);
      add(e.offered, o.resources);
      add(e.resources, o.resources);
    }
  }
  return {
    roles: [...roles.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, e]) => ({
      name, weight: weightOf(weights, name), frameworks: e.frameworks, resources: e.resources, allocated: e.allocated, offered: e.offered,
      dominant_share: master.allocator.roleShare(name),
    })),
  };
}

/** All tasks (live, unreachable and completed) in Mesos's task JSON, from /state's frameworks. */
function allTasks(state: Json): Json[] {
  const out: Json[] = [];
  for (const fw of [...asList(state.frameworks), ...asList(state.completed_frameworks)]) {
    out.push(...asList(fw.tasks), ...asList(fw.unreachable_tasks), ...asList(fw.completed_tasks));
  }
  return out;
}

function intParam(url: URL, name: string, dflt: number, max: number): number {
  const v = url.searchParams.get(name);
  if (v === null || !/^\d+$/.test(v)) return dflt;
  return Math.min(Number(v), max);
}

/** Metric name → value, Mesos names for what Berth has (`/metrics/snapshot`). */
export function metricsSnapshot(master: Master, api?: SchedulerApi): Record<string, number> {
  const c = master.counters;
  const byState = new Map<TaskState, number>();
  let frameworksActive = 0; let frameworksInactive = 0; let frameworksConnected = 0; let frameworksDisconnected = 0;
  for (const fw of master.frameworks.values()) {
    if (fw.status === 'CONNECTED') { frameworksActive++; frameworksConnected++; } else { frameworksInactive++; frameworksDisconnected++; }
    for (const t of fw.tasks.values()) byState.set(t.state, (byState.get(t.state) ?? 0) + 1);
  }
  let slavesActive = 0; let slavesInactive = 0; let slavesUnreachable = 0; let slavesDisconnected = 0;
  let cpusTotal = 0; let memTotal = 0; let diskTotal = 0; let gpusTotal = 0;
  let cpusUsed = 0; let memUsed = 0; let diskUsed = 0; let gpusUsed = 0;
  for (const a of master.agents.values()) {
    if (a.status === 'ACTIVE') slavesActive++;
    else if (a.status === 'UNREACHABLE') slavesUnreachable++;
    else { slavesInactive++; if (a.status === 'DISCONNECTED') slavesDisconnected++; }
    if (a.status !== 'ACTIVE') continue;
    cpusTotal += a.total.scalar('cpus'); memTotal += a.total.scalar('mem'); diskTotal += a.total.scalar('disk'); gpusTotal += a.total.scalar('gpus');
    const used = master.allocator.agentAllocated(a.id);
    if (used) { cpusUsed += used.scalar('cpus'); memUsed += used.scalar('mem'); diskUsed += used.scalar('disk'); gpusUsed += used.scalar('gpus'); }
  }
  const pct = (used: number, total: number): number => (total > 0 ? used / total : 0);
  const r3 = (v: number): number => Math.round(v * 1000) / 1000;
  const live = (s: TaskState): number => byState.get(s) ?? 0;
  const m: Record<string, number> = {
    'master/uptime_secs': (master.clock.now() - master.startedAt) / 1000,
    'master/elected': 1,
    'master/tasks_staging': live('TASK_STAGING'),
    'master/tasks_starting': live('TASK_STARTING'),
    'master/tasks_running': live('TASK_RUNNING'),
    'master/tasks_killing': live('TASK_KILLING'),
    'master/tasks_unreachable': live('TASK_UNREACHABLE'),
    'master/tasks_finished': c.tasksFinished,
    'master/tasks_failed': c.tasksFailed,
    'master/tasks_killed': c.tasksKilled,
    'master/tasks_lost': c.tasksLost,
    'master/tasks_error': c.tasksError,
    'master/tasks_dropped': c.tasksDropped,
    'master/tasks_gone': c.tasksGone,
    'master/outstanding_offers': master.offers.size,
    'master/frameworks_active': frameworksActive,
    'master/frameworks_inactive': frameworksInactive,
    'master/frameworks_connected': frameworksConnected,
    'master/frameworks_disconnected': frameworksDisconnected,
    'master/frameworks_removed': c.frameworksRemoved,
    'master/slaves_active': slavesActive,
    'master/slaves_inactive': slavesInactive,
    'master/slaves_connected': slavesActive,
    'master/slaves_disconnected': slavesDisconnected,
    'master/slaves_unreachable': slavesUnreachable,
    'master/slave_removals': c.agentsRemoved,
    'master/slave_unreachable_completed': c.agentsUnreachable,
    'master/messages_status_update': c.statusUpdates,
    'master/messages_status_update_acknowledgement': c.acknowledgements,
    'master/invalid_framework_to_executor_messages': 0,
    'master/messages_launch_tasks': c.tasksLaunched,
    'master/messages_decline_offers': c.offersDeclined,
    'master/offers_sent': c.offersSent,
    'master/offers_accepted': c.offersAccepted,
    'master/offers_declined': c.offersDeclined,
    'master/offers_rescinded': c.offersRescinded,
    'master/invalid_calls': c.callsInvalid,
    'master/invalid_status_updates': c.invalidStatusUpdates,
    'master/valid_status_updates': c.statusUpdates,
    'berth/master/unauthorized_calls': c.callsUnauthorized,
    'master/cpus_total': r3(cpusTotal), 'master/cpus_used': r3(cpusUsed), 'master/cpus_percent': pct(cpusUsed, cpusTotal),
    'master/mem_total': r3(memTotal), 'master/mem_used': r3(memUsed), 'master/mem_percent': pct(memUsed, memTotal),
    'master/disk_total': r3(diskTotal), 'master/disk_used': r3(diskUsed), 'master/disk_percent': pct(diskUsed, diskTotal),
    'master/gpus_total': r3(gpusTotal), 'master/gpus_used': r3(gpusUsed), 'master/gpus_percent': pct(gpusUsed, gpusTotal),
    'allocator/mesos/allocation_runs': c.allocationRuns,
    'allocator/berth/allocation_interval_runs': c.allocationTicks,
    'allocator/mesos/allocation_run_ms': c.lastAllocationMs,
    'allocator/mesos/allocation_run_ms/count': c.allocationRuns,
    'allocator/mesos/allocation_run_ms/mean': c.allocationRuns > 0 ? c.allocationMsTotal / c.allocationRuns : 0,
    'allocator/mesos/offer_filters/active': master.allocator.filterCount(),
  };
  if (api) {
    m['berth/scheduler_api/streams_open'] = api.openStreams;
    for (const [status, n] of api.statusCounts) m[`berth/scheduler_api/responses_${status}`] = n;
  }
  return m;
}

/** Prometheus text exposition (version 0.0.4) of the same numbers: `master/tasks_running` → `mesos_master_tasks_running`. */
export function prometheusText(metrics: Record<string, number>): string {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(metrics)) {
    const prom = `mesos_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
    const counter = /(_finished|_failed|_killed|_lost|_error|_dropped|_gone|_removals|_removed|messages_|offers_sent|offers_accepted|offers_declined|offers_rescinded|invalid_|allocation_runs|allocation_interval_runs|\/count|responses_)/.test(name);
    lines.push(`# TYPE ${prom} ${counter ? 'counter' : 'gauge'}`);
    lines.push(`${prom} ${Number.isFinite(value) ? value : 0}`);
  }
  return lines.join('\n') + '\n';
}

export function installOperatorRoutes(server: MasterHttpServer, api?: SchedulerApi): void {
  const master = server.master;
  const state = getOnly((req, res) => sendJson(res, 200, mesosState(master, principalOf(req))));
  server.route('/state', state);
  server.route('/master/state', state);
  server.route('/state.json', state);
  server.route('/master/state.json', state);

  const tasks = getOnly((req, res, url) => {
    let list = allTasks(master.view.state({ principal: principalOf(req) }));
    const fid = url.searchParams.get('framework_id');
    const tid = url.searchParams.get('task_id');
    if (fid) list = list.filter((t) => t.framework_id === fid);
    if (tid) list = list.filter((t) => t.id === tid);
    if (url.searchParams.get('order') === 'des') list.reverse();
    const offset = intParam(url, 'offset', 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(url, 'limit', 100, 10_000);
    sendJson(res, 200, { tasks: list.slice(offset, offset + limit) });
  });
  server.route('/tasks', tasks);
  server.route('/master/tasks', tasks);

  const frameworks = getOnly((req, res, url) => {
    const s = master.view.state({ principal: principalOf(req) });
    const fid = url.searchParams.get('framework_id');
    const pick = (l: Json[]): Json[] => (fid ? l.filter((f) => f.id === fid) : l);
    sendJson(res, 200, { frameworks: pick(asList(s.frameworks)), completed_frameworks: pick(asList(s.completed_frameworks)), unregistered_frameworks: [] });
  });
  server.route('/frameworks', frameworks);
  server.route('/master/frameworks', frameworks);

  const slaves = getOnly((req, res, url) => {
    const s = master.view.state({ principal: principalOf(req) });
    const sid = url.searchParams.get('slave_id');
    const pick = (l: Json[]): Json[] => (sid ? l.filter((a) => a.id === sid) : l);
    const all = asList(s.slaves);
    sendJson(res, 200, {
      slaves: pick(all.filter((a) => a.status !== 'RECOVERED')),
      recovered_slaves: pick(all.filter((a) => a.status === 'RECOVERED')),
      unreachable_slaves: pick(asList(s.unreachable_slaves)),
    });
  });
  server.route('/slaves', slaves);
  server.route('/master/slaves', slaves);

  const roles = getOnly((req, res) => sendJson(res, 200, rolesView(master, principalOf(req))));
  server.route('/roles', roles);
  server.route('/master/roles', roles);
  // Mesos' GET /weights: the configured weights (roles not listed weigh 1).
  const weights = getOnly((_req, res) => sendJson(res, 200, Object.entries(master.opts.weights ?? {}).map(([role, weight]) => ({ role, weight }))));
  server.route('/weights', weights);
  server.route('/master/weights', weights);

  const snapshot = getOnly((_req, res) => sendJson(res, 200, metricsSnapshot(master, api)));
  server.route('/metrics/snapshot', snapshot);
  server.route('/master/metrics/snapshot', snapshot);
  server.route('/metrics', getOnly((_req, res) => {
    const body = prometheusText(metricsSnapshot(master, api));
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }));

  // Mesos' read-write endpoint: POST frameworkId=<id> (form or JSON {"framework_id": …}).
  const teardown = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'POST') {
      req.resume();
      res.writeHead(405, { allow: 'POST', 'content-length': 0 }).end();
      return;
    }
    const body = (await readBody(req, 64 << 10)).toString('utf8');
    let id: string | null = null;
    try { id = body.trim().startsWith('{') ? String((JSON.parse(body) as { framework_id?: unknown }).framework_id ?? '') : new URLSearchParams(body).get('frameworkId'); } catch { id = null; }
    if (!id) { sendText(res, 400, "Expecting 'frameworkId' (form) or 'framework_id' (JSON)"); return; }
    const fw = master.framework(id);
    if (!fw) { sendText(res, 400, `No framework found with specified ID`); return; }
    const who = principalOf(req);
    if (!master.authorizer.authorized(who, 'teardown_frameworks', fw.info.principal)) {
      sendText(res, 403, `Principal '${who ?? 'ANY'}' is not authorized to tear down framework ${id}`);
      return;
    }
    await master.removeFramework(id, `torn down by operator${who ? ` ${who}` : ''}`);
    res.writeHead(200, { 'content-length': 0 }).end();
  };
  server.route('/teardown', teardown, 'readwrite');
  server.route('/master/teardown', teardown, 'readwrite');
}

function sendText(res: ServerResponse, status: number, text: string): void {
  const body = Buffer.from(text);
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length });
  res.end(body);
}
