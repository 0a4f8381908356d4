/**
 * Marathon's AppDefinition (1.x JSON shape): parsing with Marathon's defaults,
 * validation as an ordered list of small validators, and the JSON written back.
 *
 * Invariants:
 *  - `normalizeApp` never throws on user input: it returns every violation as
 *    Marathon's `{path, errors}` details, and an app with any violation is never
 *    applied (the API answers 422 and keeps what it had).
 *  - An app's `id` is absolute (`/prod/web`), each segment Marathon's rule
 *    (lowercase letters, digits, `-` inside, `.` between), and never `.`/`..`.
 *  - Field names and defaults are Marathon's (cpus 1, mem 128, instances 1,
 *    backoffSeconds 1, backoffFactor 1.15, maxLaunchDelaySeconds 300, …) so
 *    clients that round-trip an app see what Marathon would have shown them.
 */

import { parseConstraint } from '../sdk/index.js';

/** A Marathon constraint `[field, operator, value?]`. */
export type Constraint = [string, string, string?];

export interface PortDefinition { port: number; protocol?: string; name?: string; labels?: Record<string, string> }
export interface FetchUri { uri: string; extract?: boolean; executable?: boolean; cache?: boolean; destPath?: string }

export interface HealthCheckDef {
  protocol: string;
  path?: string;
  portIndex?: number;
  port?: number;
  command?: { value: string };
  gracePeriodSeconds: number;
  intervalSeconds: number;
  timeoutSeconds: number;
  maxConsecutiveFailures: number;
  delaySeconds: number;
  ignoreHttp1xx?: boolean;
}

export interface ReadinessCheckDef {
  name: string;
  protocol: string;
  path: string;
  portName: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  httpStatusCodesForReady: number[];
  preserveLastResponse: boolean;
}

export interface UpgradeStrategy { minimumHealthCapacity: number; maximumOverCapacity: number }
export interface UnreachableStrategy { inactiveAfterSeconds: number; expungeAfterSeconds: number }

export interface AppDefinition {
  id: string;
  cmd?: string | null;
  args?: string[] | null;
  user?: string | null;
  env: Record<string, string>;
  instances: number;
  cpus: number;
  mem: number;
  disk: number;
  gpus: number;
  executor: string;
  constraints: Constraint[];
  uris: string[];
  fetch: FetchUri[];
  storeUrls: string[];
  backoffSeconds: number;
  backoffFactor: number;
  maxLaunchDelaySeconds: number;
  container?: Record<string, unknown> | null;
  healthChecks: HealthCheckDef[];
  readinessChecks: ReadinessCheckDef[];
  dependencies: string[];
  upgradeStrategy: UpgradeStrategy;
  unreachableStrategy: UnreachableStrategy | 'disabled';
  killSelection: 'YOUNGEST_FIRST' | 'OLDEST_FIRST';
  labels: Record<string, string>;
  acceptedResourceRoles?: string[] | null;
  portDefinitions: PortDefinition[];
  requirePorts: boolean;
  taskKillGracePeriodSeconds?: number | null;
  /** Berth: a deployment of this app not finished within this many seconds is rolled back. */
  deploymentTimeoutSeconds?: number;
  version: string;
  versionInfo: { lastScalingAt: string; lastConfigChangeAt: string };
}

export interface ValidationDetail { path: string; errors: string[] }

/** What a change of the app needs: `scale` (only instances moved) or a `restart` (config changed). */
export type ChangeKind = 'none' | 'scale' | 'restart';

export const APP_ID_SEGMENT = /^(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$/;
export const MAX_INSTANCES = 100_000;
const MAX_ID_LENGTH = 200;
const MAX_LIST = 1000;
const KNOWN_FIELDS = new Set([
  'id', 'cmd', 'args', 'user', 'env', 'instances', 'cpus', 'mem', 'disk', 'gpus', 'executor', 'constraints', 'uris',
  'fetch', 'storeUrls', 'backoffSeconds', 'backoffFactor', 'maxLaunchDelaySeconds', 'container', 'healthChecks',
  'readinessChecks', 'dependencies', 'upgradeStrategy', 'unreachableStrategy', 'killSelection', 'labels',
  'acceptedResourceRoles', 'portDefinitions', 'ports', 'requirePorts', 'taskKillGracePeriodSeconds', 'version',
  'versionInfo', 'deploymentTimeoutSeconds', 'networks', 'ipAddress', 'secrets', 'residency', 'role', 'tty',
  'upgrade', 'tasksStaged', 'tasksRunning', 'tasksHealthy', 'tasksUnhealthy', 'deployments', 'tasks',
  'lastTaskFailure', 'taskStats', 'readinessCheckResults', 'maintainance', 'resourceLimits', 'unreachable',
]);
const HEALTH_PROTOCOLS = ['HTTP', 'HTTPS', 'TCP', 'COMMAND', 'MESOS_HTTP', 'MESOS_HTTPS', 'MESOS_TCP'];

/** Resolves `id` against `base` ("/" by default): `web` → `/web`, `/a/b/` → `/a/b`. */
export function absoluteId(id: string, base = '/'): string {
  const raw = id.startsWith('/') ? id : `${base.replace(/\/$/, '')}/${id}`;
  return '/' + raw.split('/').filter((s) => s !== '').join('/');
}

/** Why `id` is not an app id, or undefined. */
export function appIdError(id: unknown): string | undefined {
  if (typeof id !== 'string' || id.trim() === '' || absoluteId(id) === '/') return 'An app id must not be empty';
  if (id.length > MAX_ID_LENGTH) return `must be at most ${MAX_ID_LENGTH} characters`;
  for (const seg of absoluteId(id).split('/').slice(1)) {
    if (seg === '.' || seg === '..') return `path segment '${seg}' is not allowed`;
    if (!APP_ID_SEGMENT.test(seg)) return `'${seg}' must fully match regular expression '${APP_ID_SEGMENT.source}'`;
  }
  return undefined;
}

type Json = Record<string, unknown>;
const isObj = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Collects violations; each validator adds to it and returns a usable value (or the default). */
class Checker {
  readonly details: ValidationDetail[] = [];
  add(path: string, error: string): void {
    const d = this.details.find((x) => x.path === path);
    if (d) d.errors.push(error); else this.details.push({ path, errors: [error] });
  }
  num(j: Json, key: string, def: number, { min = -Infinity, max = Infinity, int = false } = {}, path = `/${key}`): number {
    const v = j[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'number' || !Number.isFinite(v)) { this.add(path, 'error.expected.jsnumber'); return def; }
    if (int && !Number.isInteger(v)) { this.add(path, `must be an integer (got ${v})`); return def; }
    if (v < min) { this.add(path, `got ${v}, expected ${min} or more`); return def; }
    if (v > max) { this.add(path, `got ${v}, expected ${max} or less`); return def; }
    return v;
  }
  str(j: Json, key: string, path = `/${key}`): string | undefined {
    const v = j[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') { this.add(path, 'error.expected.jsstring'); return undefined; }
    return v;
  }
  bool(j: Json, key: string, def: boolean, path = `/${key}`): boolean {
    const v = j[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') { this.add(path, 'error.expected.jsboolean'); return def; }
    return v;
  }
  strList(j: Json, key: string, path = `/${key}`): string[] {
    const v = j[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) { this.add(path, 'error.expected.jsarray'); return []; }
    if (v.length > MAX_LIST) { this.add(path, `at most ${MAX_LIST} entries`); return []; }
    const out: string[] = [];
    v.forEach((x, i) => { if (typeof x === 'string') out.push(x); else this.add(`${path}(${i})`, 'error.expected.jsstring'); });
    return out;
  }
  strMap(j: Json, key: string, path = `/${key}`): Record<string, string> {
    const v = j[key];
    if (v === undefined || v === null) return {};
    if (!isObj(v)) { this.add(path, 'error.expected.jsobject'); return {}; }
    const out: Record<string, string> = {};
    const entries = Object.entries(v);
    if (entries.length > MAX_LIST) { this.add(path, `at most ${MAX_LIST} entries`); return {}; }
    for (const [k, x] of entries) {
      if (typeof x === 'string') out[k] = x;
      else if (isObj(x) && typeof x['secret'] === 'string') this.add(`${path}/${k}`, 'secrets are not supported');
      else this.add(`${path}/${k}`, 'error.expected.jsstring');
    }
    return out;
  }
}

/** Marathon's version timestamp: ISO 8601 UTC with milliseconds. */
export function timestamp(ms: number): string { return new Date(ms).toISOString(); }

export interface NormalizeResult { app?: AppDefinition; details: ValidationDetail[] }

/**
 * Parses and validates an app from JSON, filling Marathon's defaults. `base` is merged under
 * `json` first (PATCH, and PUT of an existing app keep what the body does not say for
 * `versionInfo`). `idFromPath` wins over the body's id when given (PUT /v2/apps/{id}).
 */
export function normalizeApp(json: unknown, opts: { idFromPath?: string; now: number; base?: AppDefinition } ): NormalizeResult {
  const c = new Checker();
  if (!isObj(json)) return { details: [{ path: '/', errors: ['error.expected.jsobject'] }] };
  const j: Json = opts.base ? { ...toAppJson(opts.base), ...json } : json;
  const unknown = Object.keys(json).filter((k) => !KNOWN_FIELDS.has(k));
  for (const k of unknown.slice(0, 20)) c.add(`/${k}`, 'unknown field');

  // id first: nothing else means anything without it.
  const rawId = opts.idFromPath ?? j['id'];
  const idErr = appIdError(rawId);
  if (idErr) c.add('/id', idErr);
  const id = idErr ? '/' : absoluteId(rawId as string);

  const cmd = c.str(j, 'cmd');
  const args = j['args'] === undefined || j['args'] === null ? undefined : c.strList(j, 'args');
  if (cmd !== undefined && args !== undefined && args.length > 0) c.add('/cmd', 'AppDefinition must either contain one of \'cmd\' or \'args\', not both');
  const container = j['container'];
  if (container !== undefined && container !== null) {
    if (!isObj(container)) c.add('/container', 'error.expected.jsobject');
    else if (container['docker'] !== undefined || container['type'] === 'DOCKER') {
      c.add('/container/docker', 'Docker containers are not supported by Berth yet (no image support); use cmd or args');
    } else if (container['type'] !== undefined && container['type'] !== 'MESOS') c.add('/container/type', "must be 'MESOS'");
  }
  if ((cmd === undefined || cmd === '') && (args === undefined || args.length === 0)) {
    c.add('/cmd', 'AppDefinition must either contain one of \'cmd\' or \'args\'');
  }
  if (cmd !== undefined && cmd.length > 64 * 1024) c.add('/cmd', 'at most 65536 characters');

  const instances = c.num(j, 'instances', 1, { min: 0, max: MAX_INSTANCES, int: true });
  const cpus = c.num(j, 'cpus', 1, { min: 0 });
  const mem = c.num(j, 'mem', 128, { min: 0 });
  const disk = c.num(j, 'disk', 0, { min: 0 });
  const gpus = c.num(j, 'gpus', 0, { min: 0, int: true });
  if (cpus === 0 && mem === 0 && !c.details.some((d) => d.path === '/cpus' || d.path === '/mem')) c.add('/cpus', 'cpus or mem must be greater than 0');
  const backoffSeconds = c.num(j, 'backoffSeconds', 1, { min: 0, max: 86400 });
  const backoffFactor = c.num(j, 'backoffFactor', 1.15, { min: 1, max: 100 });
  const maxLaunchDelaySeconds = c.num(j, 'maxLaunchDelaySeconds', 300, { min: 0, max: 86400 });
  const user = c.str(j, 'user');
  const executor = c.str(j, 'executor') ?? '';
  if (executor !== '' && executor !== '//cmd') c.add('/executor', 'custom executors are not supported; leave executor empty');
  const env = c.strMap(j, 'env');
  const labels = c.strMap(j, 'labels');
  const uris = c.strList(j, 'uris');
  const storeUrls = c.strList(j, 'storeUrls');
  const dependencies = c.strList(j, 'dependencies').map((d) => absoluteId(d, parentOf(id)));
  dependencies.forEach((d, i) => { const e = appIdError(d); if (e) c.add(`/dependencies(${i})`, e); });

  const constraints = parseConstraints(c, j['constraints']);
  const fetch = parseFetch(c, j['fetch'], uris);
  const portDefinitions = parsePorts(c, j);
  const healthChecks = parseHealthChecks(c, j['healthChecks'], portDefinitions.length);
  const readinessChecks = parseReadiness(c, j['readinessChecks'], portDefinitions);

  let upgradeStrategy: UpgradeStrategy = { minimumHealthCapacity: 1, maximumOverCapacity: 1 };
  const us = j['upgradeStrategy'];
  if (us !== undefined && us !== null) {
    if (!isObj(us)) c.add('/upgradeStrategy', 'error.expected.jsobject');
    else upgradeStrategy = {
      minimumHealthCapacity: c.num(us, 'minimumHealthCapacity', 1, { min: 0, max: 1 }, '/upgradeStrategy/minimumHealthCapacity'),
      maximumOverCapacity: c.num(us, 'maximumOverCapacity', 1, { min: 0, max: 1 }, '/upgradeStrategy/maximumOverCapacity'),
    };
  }
  let unreachableStrategy: UnreachableStrategy | 'disabled' = { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 };
  const un = j['unreachableStrategy'];
  if (un === 'disabled') unreachableStrategy = 'disabled';
  else if (un !== undefined && un !== null) {
    if (!isObj(un)) c.add('/unreachableStrategy', "expected an object or 'disabled'");
    else {
      unreachableStrategy = {
        inactiveAfterSeconds: c.num(un, 'inactiveAfterSeconds', 0, { min: 0, max: 86400 * 365 }, '/unreachableStrategy/inactiveAfterSeconds'),
        expungeAfterSeconds: c.num(un, 'expungeAfterSeconds', 0, { min: 0, max: 86400 * 365 }, '/unreachableStrategy/expungeAfterSeconds'),
      };
      if (unreachableStrategy.expungeAfterSeconds < unreachableStrategy.inactiveAfterSeconds) {
        c.add('/unreachableStrategy/expungeAfterSeconds', 'must be at least inactiveAfterSeconds');
      }
    }
  }
  const ks = j['killSelection'] ?? 'YOUNGEST_FIRST';
  if (ks !== 'YOUNGEST_FIRST' && ks !== 'OLDEST_FIRST') c.add('/killSelection', "must be 'YOUNGEST_FIRST' or 'OLDEST_FIRST'");
  const roles = j['acceptedResourceRoles'] === undefined || j['acceptedResourceRoles'] === null ? undefined : c.strList(j, 'acceptedResourceRoles');
  const grace = j['taskKillGracePeriodSeconds'] === undefined || j['taskKillGracePeriodSeconds'] === null
    ? undefined : c.num(j, 'taskKillGracePeriodSeconds', 0, { min: 0, max: 3600 });
  const timeout = j['deploymentTimeoutSeconds'] === undefined || j['deploymentTimeoutSeconds'] === null
    ? undefined : c.num(j, 'deploymentTimeoutSeconds', 0, { min: 1, max: 86400 * 7 });
  const requirePorts = c.bool(j, 'requirePorts', false);
  if (j['secrets'] !== undefined && j['secrets'] !== null && isObj(j['secrets']) && Object.keys(j['secrets']).length > 0) c.add('/secrets', 'secrets are not supported');
  if (j['residency'] !== undefined && j['residency'] !== null) c.add('/residency', 'persistent volumes are not supported');

  if (c.details.length > 0) return { details: c.details };
  const version = timestamp(opts.now);
  const app: AppDefinition = {
    id, ...(cmd !== undefined ? { cmd } : {}), ...(args !== undefined && args.length ? { args } : {}), ...(user !== undefined ? { user } : {}),
    env, instances, cpus, mem, disk, gpus, executor, constraints, uris: fetch.map((f) => f.uri), fetch, storeUrls,
    backoffSeconds, backoffFactor, maxLaunchDelaySeconds,
    ...(isObj(container) ? { container } : {}),
    healthChecks, readinessChecks, dependencies, upgradeStrategy, unreachableStrategy,
    killSelection: ks as AppDefinition['killSelection'], labels,
    ...(roles ? { acceptedResourceRoles: roles } : {}),
    portDefinitions, requirePorts,
    ...(grace !== undefined ? { taskKillGracePeriodSeconds: grace } : {}),
    ...(timeout !== undefined ? { deploymentTimeoutSeconds: timeout } : {}),
    version, versionInfo: { lastScalingAt: version, lastConfigChangeAt: version },
  };
  return { app, details: [] };
}

function parentOf(id: string): string {
  const i = id.lastIndexOf('/');
  return i <= 0 ? '/' : id.slice(0, i);
}

/** Each constraint checked by the SDK's rule (the one the placement pipeline applies), every bad one reported. */
function parseConstraints(c: Checker, v: unknown): Constraint[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) { c.add('/constraints', 'error.expected.jsarray'); return []; }
  if (v.length > 64) { c.add('/constraints', 'at most 64 constraints'); return []; }
  const out: Constraint[] = [];
  v.forEach((x, i) => {
    try {
      out.push(parseConstraint(x, `constraints(${i})`) as unknown as Constraint);
    } catch (e) {
      c.add(`/constraints(${i})`, (e as Error).message);
    }
  });
  return out;
}

function parseFetch(c: Checker, v: unknown, uris: string[]): FetchUri[] {
  const out: FetchUri[] = [];
  if (v !== undefined && v !== null) {
    if (!Array.isArray(v)) { c.add('/fetch', 'error.expected.jsarray'); return []; }
    if (v.length > 100) { c.add('/fetch', 'at most 100 entries'); return []; }
    v.forEach((f, i) => {
      const p = `/fetch(${i})`;
      if (!isObj(f) || typeof f['uri'] !== 'string' || f['uri'] === '') { c.add(`${p}/uri`, 'a fetch entry needs a uri'); return; }
      const e: FetchUri = { uri: f['uri'] };
      for (const k of ['extract', 'executable', 'cache'] as const) {
        if (f[k] !== undefined) { if (typeof f[k] === 'boolean') e[k] = f[k] as boolean; else c.add(`${p}/${k}`, 'error.expected.jsboolean'); }
      }
      if (f['destPath'] !== undefined) {
        const d = f['destPath'];
        if (typeof d !== 'string' || d.startsWith('/') || d.split('/').includes('..')) c.add(`${p}/destPath`, 'must be a relative path inside the sandbox');
        else e.destPath = d;
      }
      out.push(e);
    });
  }
  // Marathon's legacy `uris`: extracted by extension, not executable.
  for (const u of uris) if (!out.some((f) => f.uri === u)) out.push({ uri: u, extract: /\.(tgz|tar\.gz|tar|zip|tar\.bz2|txz|tar\.xz)$/.test(u), executable: false, cache: false });
  return out.map((f) => ({ uri: f.uri, extract: f.extract ?? true, executable: f.executable ?? false, cache: f.cache ?? false, ...(f.destPath ? { destPath: f.destPath } : {}) }));
}

function parsePorts(c: Checker, j: Json): PortDefinition[] {
  const v = j['portDefinitions'] ?? (Array.isArray(j['ports']) ? (j['ports'] as unknown[]).map((port) => ({ port })) : undefined);
  if (v === undefined || v === null) return [{ port: 0, protocol: 'tcp' }];
  if (!Array.isArray(v)) { c.add('/portDefinitions', 'error.expected.jsarray'); return []; }
  if (v.length > 100) { c.add('/portDefinitions', 'at most 100 ports'); return []; }
  const out: PortDefinition[] = [];
  v.forEach((p, i) => {
    const path = `/portDefinitions(${i})`;
    if (!isObj(p)) { c.add(path, 'error.expected.jsobject'); return; }
    const port = c.num(p, 'port', 0, { min: 0, max: 65535, int: true }, `${path}/port`);
    const protocol = c.str(p, 'protocol', `${path}/protocol`) ?? 'tcp';
    if (!['tcp', 'udp', 'udp,tcp', 'tcp,udp'].includes(protocol)) c.add(`${path}/protocol`, "must be 'tcp', 'udp' or 'udp,tcp'");
    const name = c.str(p, 'name', `${path}/name`);
    if (name !== undefined && !/^[a-z0-9-]+$/.test(name)) c.add(`${path}/name`, "must match '^[a-z0-9-]+$'");
    const labels = c.strMap(p, 'labels', `${path}/labels`);
    out.push({ port, protocol, ...(name ? { name } : {}), ...(Object.keys(labels).length ? { labels } : {}) });
  });
  return out;
}

function parseHealthChecks(c: Checker, v: unknown, nPorts: number): HealthCheckDef[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) { c.add('/healthChecks', 'error.expected.jsarray'); return []; }
  // Checks run on the agent (Mesos HealthCheck): a task carries exactly one.
  if (v.length > 1) { c.add('/healthChecks', 'Berth runs health checks on the agent (Mesos-native): at most one health check per app'); return []; }
  const out: HealthCheckDef[] = [];
  v.forEach((h, i) => {
    const p = `/healthChecks(${i})`;
    if (!isObj(h)) { c.add(p, 'error.expected.jsobject'); return; }
    const protocol = (c.str(h, 'protocol', `${p}/protocol`) ?? 'HTTP').toUpperCase();
    if (!HEALTH_PROTOCOLS.includes(protocol)) { c.add(`${p}/protocol`, `must be one of ${HEALTH_PROTOCOLS.join(', ')}`); return; }
    const hc: HealthCheckDef = {
      protocol,
      gracePeriodSeconds: c.num(h, 'gracePeriodSeconds', 300, { min: 0, max: 86400 }, `${p}/gracePeriodSeconds`),
      intervalSeconds: c.num(h, 'intervalSeconds', 60, { min: 0.01, max: 86400 }, `${p}/intervalSeconds`),
      timeoutSeconds: c.num(h, 'timeoutSeconds', 20, { min: 0.01, max: 86400 }, `${p}/timeoutSeconds`),
      maxConsecutiveFailures: c.num(h, 'maxConsecutiveFailures', 3, { min: 0, max: 1000, int: true }, `${p}/maxConsecutiveFailures`),
      delaySeconds: c.num(h, 'delaySeconds', 15, { min: 0, max: 86400 }, `${p}/delaySeconds`),
    };
    if (protocol.endsWith('HTTP') || protocol.endsWith('HTTPS')) hc.path = c.str(h, 'path', `${p}/path`) ?? '/';
    if (protocol === 'COMMAND') {
      const cmd = h['command'];
      if (!isObj(cmd) || typeof cmd['value'] !== 'string' || cmd['value'] === '') c.add(`${p}/command`, 'a COMMAND health check needs command.value');
      else hc.command = { value: cmd['value'] };
    } else {
      if (h['port'] !== undefined && h['port'] !== null) hc.port = c.num(h, 'port', 0, { min: 1, max: 65535, int: true }, `${p}/port`);
      else {
        hc.portIndex = c.num(h, 'portIndex', 0, { min: 0, max: 1000, int: true }, `${p}/portIndex`);
        if (hc.portIndex >= nPorts) c.add(`${p}/portIndex`, `the app has ${nPorts} port definition(s); portIndex ${hc.portIndex} is out of range`);
      }
    }
    if (h['ignoreHttp1xx'] !== undefined) hc.ignoreHttp1xx = c.bool(h, 'ignoreHttp1xx', false, `${p}/ignoreHttp1xx`);
    out.push(hc);
  });
  return out;
}

function parseReadiness(c: Checker, v: unknown, ports: PortDefinition[]): ReadinessCheckDef[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) { c.add('/readinessChecks', 'error.expected.jsarray'); return []; }
  if (v.length > 1) { c.add('/readinessChecks', 'at most one readiness check per app'); return []; }
  const out: ReadinessCheckDef[] = [];
  v.forEach((r, i) => {
    const p = `/readinessChecks(${i})`;
    if (!isObj(r)) { c.add(p, 'error.expected.jsobject'); return; }
    const portName = c.str(r, 'portName', `${p}/portName`) ?? 'http-api';
    if (!ports.some((pd) => pd.name === portName)) c.add(`${p}/portName`, `no port definition is named '${portName}'`);
    const protocol = (c.str(r, 'protocol', `${p}/protocol`) ?? 'HTTP').toUpperCase();
    if (protocol !== 'HTTP' && protocol !== 'HTTPS') c.add(`${p}/protocol`, "must be 'HTTP' or 'HTTPS'");
    const codes = r['httpStatusCodesForReady'];
    const list = Array.isArray(codes) && codes.every((x) => Number.isInteger(x) && x >= 100 && x < 600) ? (codes as number[]) : undefined;
    if (codes !== undefined && !list) c.add(`${p}/httpStatusCodesForReady`, 'must be a list of HTTP status codes');
    out.push({
      name: c.str(r, 'name', `${p}/name`) ?? 'readinessCheck', protocol, path: c.str(r, 'path', `${p}/path`) ?? '/', portName,
      intervalSeconds: c.num(r, 'intervalSeconds', 30, { min: 0.01, max: 86400 }, `${p}/intervalSeconds`),
      timeoutSeconds: c.num(r, 'timeoutSeconds', 10, { min: 0.01, max: 86400 }, `${p}/timeoutSeconds`),
      httpStatusCodesForReady: list ?? [200],
      preserveLastResponse: c.bool(r, 'preserveLastResponse', false, `${p}/preserveLastResponse`),
    });
  });
  return out;
}

/** The app as Marathon writes it (plain JSON, Marathon's field order). */
export function toAppJson(a: AppDefinition): Json {
  const out: Json = { ...a };
  out['ports'] = a.portDefinitions.map((p) => p.port);
  if (a.deploymentTimeoutSeconds === undefined) delete out['deploymentTimeoutSeconds'];
  return out;
}

/** What moving from `a` to `b` needs: only instances changed → scale; anything else → restart. */
export function changeKind(a: AppDefinition, b: AppDefinition): ChangeKind {
  const strip = (x: AppDefinition): string => JSON.stringify({ ...x, instances: 0, version: '', versionInfo: null });
  if (strip(a) !== strip(b)) return 'restart';
  return a.instances === b.instances ? 'none' : 'scale';
}

/** Ports each instance needs from the offer (host ports, requirePorts aside). */
export function portCount(a: AppDefinition): number { return a.portDefinitions.length; }
