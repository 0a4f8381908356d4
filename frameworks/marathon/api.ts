/**
 * Marathon's v2 REST API (1.x shapes and status codes) over node:http.
 *
 * Invariants:
 *  - A request changes nothing unless every app in it is valid: validation runs
 *    on all of them first (422 with Marathon's `{message, details:[{path,
 *    errors}]}`), then one deployment applies them together.
 *  - Bodies are bounded (1 MiB → 413); malformed JSON is 400; unknown ids 404;
 *    a change to an app locked by a deployment is 409 naming the deployments
 *    unless `?force=true`.
 *  - Responses carry only Marathon's fields in Marathon's objects.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { absoluteId, appIdError, normalizeApp, timestamp, toAppJson, type AppDefinition, type ValidationDetail } from './app.js';
import { deploymentJson } from './deployments.js';
import { ConflictError, type AppRuntime, type Instance, type Scheduler } from './scheduler.js';

const MAX_BODY = 1 << 20;
export const MARATHON_VERSION = '1.9.109';

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly extra: Record<string, unknown> = {}) { super(message); }
}

type Json = Record<string, unknown>;

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) { res.writeHead(status, headers); res.end(); return; }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `Request body larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'Invalid JSON', { details: [{ path: '/', errors: ['error.expected.jsobject (empty body)'] }] });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, 'Invalid JSON', { details: [{ path: '/', errors: [(e as Error).message] }] });
  }
}

const invalid = (details: ValidationDetail[]): HttpError => new HttpError(422, 'Object is not valid', { details });
const bool = (u: URL, k: string): boolean => ['true', '1', ''].includes(u.searchParams.get(k) ?? 'x');

export interface ApiOptions { port: number; host: string; masterUrl: string }

export class MarathonApi {
  private server?: http.Server;
  port = 0;
  private readonly startedAt = Date.now();

  constructor(private readonly s: Scheduler, private readonly opts: ApiOptions) {}

  async listen(): Promise<number> {
    this.server = http.createServer((req, res) => { void this.handle(req, res); });
    this.server.requestTimeout = 60_000;
    this.server.headersTimeout = 20_000;
    this.server.maxHeadersCount = 100;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.s.events.close();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    try {
      await this.route(req, res, url);
    } catch (e) {
      if (res.headersSent) { res.end(); return; }
      if (e instanceof HttpError) send(res, e.status, { message: e.message, ...e.extra });
      else if (e instanceof ConflictError) send(res, 409, { message: e.message, deployments: e.deployments.map((id) => ({ id })) });
      else send(res, 500, { message: (e as Error).message });
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const m = req.method ?? 'GET';
    const p = url.pathname.replace(/\/+$/, '') || '/';
    if (p === '/ping') { res.writeHead(200, { 'Content-Type': 'text/plain' }); res.end('pong\n'); return; }
    if (p === '/metrics' && m === 'GET') return send(res, 200, this.metrics());
    if (p === '/v2/info' && m === 'GET') return send(res, 200, this.info());
    if (p === '/v2/leader' && m === 'GET') return send(res, 200, { leader: `${this.opts.host}:${this.port}` });
    if (p === '/v2/events' && m === 'GET') {
      if (!this.s.events.attach(res, req.socket.remoteAddress ?? '', url.searchParams.getAll('event_type'))) throw new HttpError(503, 'Too many event stream subscribers');
      return;
    }
    if (p === '/v2/apps') {
      if (m === 'GET') return send(res, 200, { apps: this.listApps(url) });
      if (m === 'POST') return this.createApp(req, res, url);
      if (m === 'PUT' || m === 'PATCH') return this.putApps(req, res, url);
      throw new HttpError(405, `Method ${m} not allowed on /v2/apps`);
    }
    if (p.startsWith('/v2/apps/')) return this.appRoute(req, res, url, p.slice('/v2/apps'.length), m);
    if (p === '/v2/tasks' && m === 'GET') return send(res, 200, { tasks: this.allTasks(url) });
    if (p === '/v2/tasks/delete' && m === 'POST') {
      const body = await readBody(req) as Json;
      if (typeof body !== 'object' || body === null || !Array.isArray(body['ids']) || !body['ids'].every((x) => typeof x === 'string')) throw invalid([{ path: '/ids', errors: ['error.expected.jsarray of task ids'] }]);
      const r = await this.s.killTasks(body['ids'] as string[], { scale: bool(url, 'scale'), wipe: bool(url, 'wipe'), force: bool(url, 'force') });
      if (r.deployment) return send(res, 200, { deploymentId: r.deployment.id, version: r.deployment.version });
      return send(res, 200, { tasks: r.killed.map((i) => this.s.taskJson(this.s.apps.get(i.appId), i)) });
    }
    if (p === '/v2/deployments' && m === 'GET') return send(res, 200, [...this.s.deployments.values()].map((d) => deploymentJson(d)));
    if (p.startsWith('/v2/deployments/')) {
      const id = decodeURIComponent(p.slice('/v2/deployments/'.length));
      const d = this.s.deployments.get(id);
      if (!d) throw new HttpError(404, `DeploymentPlan ${id} does not exist`);
      if (m === 'GET') return send(res, 200, deploymentJson(d));
      if (m === 'DELETE') {
        if (bool(url, 'force')) { await this.s.cancel(id, 'canceled with force'); return send(res, 202); }
        const r = await this.s.rollback(id, 'rolled back by request');
        return send(res, 200, { deploymentId: r?.id ?? id, version: r?.version ?? d.version });
      }
      throw new HttpError(405, `Method ${m} not allowed`);
    }
    if (p === '/v2/queue' && m === 'GET') return send(res, 200, { queue: this.s.queue() });
    const qd = /^\/v2\/queue\/(.+)\/delay$/.exec(p);
    if (qd && m === 'DELETE') {
      if (!this.s.resetDelay(absoluteId(decodeURIComponent(qd[1]!)))) throw new HttpError(404, `Application ${absoluteId(qd[1]!)} not found in tasks queue.`);
      return send(res, 204);
    }
    if ((p === '/v2/groups' || p.startsWith('/v2/groups/')) && m === 'GET') {
      const id = absoluteId(decodeURIComponent(p.slice('/v2/groups'.length) || '/'));
      const g = this.group(id);
      if (!g) throw new HttpError(404, `Group '${id}' does not exist`);
      return send(res, 200, g);
    }
    throw new HttpError(404, `Not found: ${m} ${p}`);
  }

  // ------------------------------------------------------------------ apps

  private listApps(url: URL): Json[] {
    const embed = new Set(url.searchParams.getAll('embed'));
    const idf = url.searchParams.get('id');
    const cmdf = url.searchParams.get('cmd');
    const label = url.searchParams.get('label');
    const out: Json[] = [];
    for (const rt of [...this.s.apps.values()].sort((a, b) => (a.app.id < b.app.id ? -1 : 1))) {
      if (idf && !rt.app.id.includes(idf)) continue;
      if (cmdf && !(rt.app.cmd ?? '').includes(cmdf)) continue;
      if (label) {
        const [k, v] = label.split('==');
        if (!(k! in rt.app.labels) || (v !== undefined && rt.app.labels[k!] !== v)) continue;
      }
      out.push(this.s.appJson(rt, {
        tasks: embed.has('apps.tasks') || embed.has('tasks'), lastTaskFailure: embed.has('apps.lastTaskFailure'),
      }));
    }
    return out;
  }

  private now(): number { return this.s.now; }

  private async createApp(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const body = await readBody(req);
    const r = normalizeApp(body, { now: this.now() });
    if (!r.app) throw invalid(r.details);
    if (this.s.apps.has(r.app.id)) throw new HttpError(409, `An app with id [${r.app.id}] already exists.`);
    if (this.groupExists(r.app.id)) throw new HttpError(409, `A group with id [${r.app.id}] already exists.`);
    this.s.events.publish('api_post_event', { clientIp: req.socket.remoteAddress ?? '', uri: `/v2/apps/${r.app.id.slice(1)}`, appDefinition: toAppJson(r.app) });
    const d = await this.s.deploy({ [r.app.id]: r.app }, { force: bool(url, 'force') });
    const rt = this.s.apps.get(r.app.id)!;
    send(res, 201, { ...this.s.appJson(rt), deployments: d ? [{ id: d.id }] : [] }, { Location: `/v2/apps${r.app.id}` });
  }

  /** PUT/PATCH /v2/apps: many apps, one deployment; all valid or nothing applied. */
  private async putApps(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const body = await readBody(req);
    if (!Array.isArray(body)) throw invalid([{ path: '/', errors: ['error.expected.jsarray of apps'] }]);
    if (body.length > 500) throw invalid([{ path: '/', errors: ['at most 500 apps per request'] }]);
    const target: Record<string, AppDefinition> = {};
    const details: ValidationDetail[] = [];
    body.forEach((j, i) => {
      const id = typeof (j as Json)?.['id'] === 'string' ? absoluteId((j as Json)['id'] as string) : undefined;
      const base = id && !appIdError(id) ? this.s.apps.get(id)?.app : undefined;
      const r = normalizeApp(j, { now: this.now(), ...(base ? { base } : {}) });
      if (!r.app) details.push(...r.details.map((d) => ({ path: `(${i})${d.path}`, errors: d.errors })));
      else target[r.app.id] = r.app;
    });
    if (details.length) throw invalid(details);
    const d = await this.s.deploy(target, { force: bool(url, 'force') });
    send(res, 200, { deploymentId: d?.id ?? null, version: d?.version ?? timestamp(this.now()) });
  }

  private runtime(id: string): AppRuntime {
    const rt = this.s.apps.get(id);
    if (!rt) throw new HttpError(404, `App '${id}' does not exist`);
    return rt;
  }

  private async appRoute(req: IncomingMessage, res: ServerResponse, url: URL, rest: string, m: string): Promise<void> {
    const dec = decodeURIComponent(rest);
    let mm: RegExpExecArray | null;
    if ((mm = /^(.+)\/restart$/.exec(dec)) && m === 'POST' && this.s.apps.has(absoluteId(mm[1]!))) {
      const rt = this.runtime(absoluteId(mm[1]!));
      const d = await this.s.deploy({ [rt.app.id]: { ...rt.app } }, { force: bool(url, 'force'), restart: new Set([rt.app.id]) });
      return send(res, 200, { deploymentId: d!.id, version: d!.version });
    }
    if ((mm = /^(.+)\/tasks\/([^/]+)$/.exec(dec)) && this.s.apps.has(absoluteId(mm[1]!))) {
      const rt = this.runtime(absoluteId(mm[1]!));
      const inst = rt.instances.get(mm[2]!);
      if (!inst) throw new HttpError(404, `Task '${mm[2]}' does not exist`);
      if (m === 'GET') return send(res, 200, { task: this.s.taskJson(rt, inst) });
      if (m !== 'DELETE') throw new HttpError(405, `Method ${m} not allowed`);
      const r = await this.s.killTasks([inst.taskId], { scale: bool(url, 'scale'), wipe: bool(url, 'wipe'), force: bool(url, 'force') });
      if (r.deployment) return send(res, 200, { deploymentId: r.deployment.id, version: r.deployment.version });
      return send(res, 200, { task: this.s.taskJson(rt, inst) });
    }
    if ((mm = /^(.+)\/tasks$/.exec(dec)) && this.s.apps.has(absoluteId(mm[1]!))) {
      const rt = this.runtime(absoluteId(mm[1]!));
      if (m === 'GET') return send(res, 200, { tasks: [...rt.instances.values()].map((i) => this.s.taskJson(rt, i)) });
      if (m !== 'DELETE') throw new HttpError(405, `Method ${m} not allowed`);
      const host = url.searchParams.get('host');
      const ids = [...rt.instances.values()].filter((i) => !host || i.host === host).map((i) => i.taskId);
      const r = await this.s.killTasks(ids, { scale: bool(url, 'scale'), wipe: bool(url, 'wipe'), force: bool(url, 'force') });
      if (r.deployment) return send(res, 200, { deploymentId: r.deployment.id, version: r.deployment.version });
      return send(res, 200, { tasks: r.killed.map((i) => this.s.taskJson(rt, i)) });
    }
    if ((mm = /^(.+)\/versions(?:\/([^/]+))?$/.exec(dec)) && this.s.apps.has(absoluteId(mm[1]!)) && m === 'GET') {
      const versions = await this.s.versions(absoluteId(mm[1]!));
      if (!mm[2]) return send(res, 200, { versions: versions.map((v) => v.version).reverse() });
      const v = versions.find((x) => x.version === mm![2]);
      if (!v) throw new HttpError(404, `App '${absoluteId(mm[1]!)}' does not exist in version ${mm[2]}`);
      return send(res, 200, toAppJson(v));
    }
    const id = absoluteId(dec);
    const idErr = appIdError(dec);
    switch (m) {
      case 'GET': {
        const rt = this.runtime(id);
        return send(res, 200, { app: this.s.appJson(rt, { tasks: true, lastTaskFailure: true }) });
      }
      case 'PUT': case 'PATCH': {
        if (idErr) throw invalid([{ path: '/id', errors: [idErr] }]);
        const body = await readBody(req);
        const base = this.s.apps.get(id)?.app;
        const r = normalizeApp(body, { now: this.now(), idFromPath: id, ...(base ? { base } : {}) });
        if (!r.app) throw invalid(r.details);
        this.s.events.publish('api_post_event', { clientIp: req.socket.remoteAddress ?? '', uri: `/v2/apps${id}`, appDefinition: toAppJson(r.app) });
        const d = await this.s.deploy({ [id]: r.app }, { force: bool(url, 'force') });
        return send(res, base ? 200 : 201, { deploymentId: d?.id ?? null, version: d?.version ?? r.app.version }, base ? {} : { Location: `/v2/apps${id}` });
      }
      case 'DELETE': {
        this.runtime(id);
        const d = await this.s.deploy({ [id]: null }, { force: bool(url, 'force') });
        return send(res, 200, { deploymentId: d!.id, version: d!.version });
      }
      default: throw new HttpError(405, `Method ${m} not allowed`);
    }
  }

  private allTasks(url: URL): Json[] {
    const status = url.searchParams.getAll('status').map((s) => `TASK_${s.toUpperCase()}`);
    const out: Json[] = [];
    for (const rt of this.s.apps.values()) {
      for (const i of rt.instances.values()) if (status.length === 0 || status.includes(i.state)) out.push(this.s.taskJson(rt, i));
    }
    return out;
  }

  // ------------------------------------------------------------------ groups

  private groupExists(id: string): boolean {
    return [...this.s.apps.keys()].some((a) => a.startsWith(`${id}/`));
  }

  /** The group tree under `id` from app ids (groups are implicit, as Marathon creates them on demand). */
  private group(id: string): Json | undefined {
    const apps = [...this.s.apps.values()].filter((rt) => id === '/' || rt.app.id.startsWith(`${id}/`));
    if (id !== '/' && apps.length === 0) return undefined;
    const build = (gid: string): Json => {
      const prefix = gid === '/' ? '/' : `${gid}/`;
      const direct = apps.filter((rt) => rt.app.id.startsWith(prefix) && !rt.app.id.slice(prefix.length).includes('/'));
      const children = new Set(apps.filter((rt) => rt.app.id.startsWith(prefix) && rt.app.id.slice(prefix.length).includes('/')).map((rt) => prefix + rt.app.id.slice(prefix.length).split('/')[0]));
      const versions = direct.map((rt) => rt.app.version).sort();
      return {
        id: gid, apps: direct.map((rt) => this.s.appJson(rt)), groups: [...children].sort().map(build), pods: [], dependencies: [],
        version: versions[versions.length - 1] ?? timestamp(this.now()),
      };
    };
    return build(id);
  }

  // ------------------------------------------------------------------ info

  private info(): Json {
    return {
      name: 'marathon', version: MARATHON_VERSION, buildref: 'berth', elected: true, leader: `${this.opts.host}:${this.port}`,
      frameworkId: this.s.frameworkId ?? null,
      marathon_config: { master: this.opts.masterUrl, failover_timeout: this.s.opts.failoverTimeoutSeconds ?? 604800, framework_name: this.s.opts.frameworkName ?? 'marathon', mesos_role: this.s.opts.role ?? '*', task_launch_timeout: 300000, decline_offer_duration: (this.s.opts.declineLongSeconds ?? 120) * 1000 },
      http_config: { http_port: this.port, https_port: null },
      zookeeper_config: {}, event_subscriber: null,
    };
  }

  private metrics(): Json {
    let running = 0; let staged = 0; let instances = 0;
    for (const rt of this.s.apps.values()) {
      for (const i of rt.instances.values()) { instances++; if (i.state === 'TASK_RUNNING') running++; else if (i.state === 'TASK_STAGING' || i.state === 'TASK_STARTING') staged++; }
    }
    const g = (value: number): Json => ({ value });
    return {
      version: '4.0.0',
      gauges: {
        'marathon.apps.active.gauge': g(this.s.apps.size),
        'marathon.deployments.active.gauge': g(this.s.deployments.size),
        'marathon.instances.running.gauge': g(running),
        'marathon.instances.staged.gauge': g(staged),
        'marathon.instances.launch-overdue.gauge': g(this.s.queue().length),
        'marathon.instances.total.gauge': g(instances),
        'marathon.http.event-streams.active.gauge': g(this.s.events.subscribers),
        'marathon.uptime.gauge.seconds': g(Math.round((Date.now() - this.startedAt) / 1000)),
      },
      counters: {}, histograms: {}, meters: {}, timers: {},
    };
  }
}

export type { Instance };
