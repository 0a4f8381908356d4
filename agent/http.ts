/**
 * The agent's HTTP endpoint (node:http), reported to the master at
 * registration so UIs and CLIs can reach sandboxes and usage directly:
 *
 *   GET /health                 {"status":"ok", "state": …}
 *   GET /state                  the agent's own view (id, resources, tasks…)
 *   GET /monitor/statistics     [{framework_id, executor_id, source, statistics}] (Mesos field names)
 *   GET /files/read?path=&offset=&length=[&task_id=]   {"data", "offset"} (Mesos /files/read)
 *   GET /files/browse?path=[&task_id=]                 [{path, size, mode, mtime, …}]
 *
 * Bounds: only GET/HEAD, URLs up to 8 KiB, reads up to MAX_READ_BYTES. Errors
 * are JSON `{"error", "code"}` with 400/401/403/404/405.
 *
 * Authentication and authorization (Mesos' agent flags `--http_credentials`,
 * `--authenticate_http_readonly`, `--acls`): every endpoint but `/health` is read-only; with
 * `readonly` set each needs HTTP Basic against the credentials (401 + challenge otherwise).
 * Credentials that are presented must be valid even where optional. `access_sandboxes` is
 * checked against the user the sandbox's task runs as (403 otherwise; a sandbox whose task
 * the agent no longer knows has no user, so only an ACL naming ANY/NONE users decides it);
 * `/state` and `/monitor/statistics` list only what `view_frameworks` / `view_tasks` allow.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { allowAll, type Action, type Authorizer } from '../proto/auth/acls.js';
import { BASIC_CHALLENGE, checkBasic, type CredentialStore } from '../proto/auth/credentials.js';
import { BerthError } from '../proto/errors.js';
import type { Logger } from '../proto/log.js';
import type { ResourceStatistics } from '../proto/types.js';
import type { SandboxFiles } from './files.js';

export interface MonitorEntry {
  framework_id: string;
  executor_id: string;
  source: string;
  statistics: ResourceStatistics;
}

/** May the caller see/read objects owned by `user` (undefined = unknown user)? */
export type ViewFilter = (action: Extract<Action, 'view_frameworks' | 'view_tasks'>, user: string | undefined) => boolean;

/** What the HTTP layer needs from the agent. */
export interface AgentHttpView {
  health(): Record<string, unknown>;
  state(may?: ViewFilter): Record<string, unknown>;
  statistics(may?: ViewFilter): Promise<MonitorEntry[]>;
  files: SandboxFiles;
  /** The user the task of `sandbox` runs as (CommandInfo.user, else FrameworkInfo.user); undefined if unknown. */
  sandboxUser(sandbox: string): string | undefined;
}

/** Who may call the agent's endpoints (see the header). Absent = open, as before. */
export interface AgentHttpAuth {
  credentials?: CredentialStore;
  /** Every endpoint but /health needs a principal (Mesos --authenticate_http_readonly). */
  readonly: boolean;
  /** Write endpoints need a principal (Mesos --authenticate_http_readwrite); the agent has none yet. */
  readwrite: boolean;
  authorizer?: Authorizer;
}

const MAX_URL = 8192;

export interface AgentHttpServer {
  /** host:port actually bound. */
  endpoint: string;
  close(): Promise<void>;
}

export async function startAgentHttp(view: AgentHttpView, host: string, port: number, log: Logger, auth?: AgentHttpAuth): Promise<AgentHttpServer> {
  const server: Server = createServer((req, res) => {
    handle(view, req, res, auth).catch((e: unknown) => {
      log.warn({ err: (e as Error).message, url: req.url }, 'HTTP handler failed');
      if (!res.headersSent) send(res, 500, { error: (e as Error).message, code: 'INTERNAL' });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    endpoint: `${shownHost}:${addr.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** The caller's principal, or the 401 to send. */
function authenticate(req: IncomingMessage, auth: AgentHttpAuth | undefined, pathname: string): { principal?: string } | { error: string } {
  if (!auth?.credentials) return auth?.readonly && pathname !== '/health' ? { error: 'Authentication required, and this agent has no --http-credentials' } : {};
  const header = Array.isArray(req.headers.authorization) ? req.headers.authorization[0] : req.headers.authorization;
  const r = checkBasic(header, auth.credentials);
  switch (r.kind) {
    case 'ok': return { principal: r.principal };
    case 'malformed': return { error: 'Malformed Authorization header' };
    case 'rejected': return { error: 'Authentication failed: unknown principal or wrong secret' };
    case 'none': return auth.readonly && pathname !== '/health' ? { error: 'Authentication required for this read-only endpoint' } : {};
  }
}

async function handle(view: AgentHttpView, req: IncomingMessage, res: ServerResponse, auth: AgentHttpAuth | undefined): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: `method ${req.method} not allowed`, code: 'INVALID' });
  if ((req.url ?? '').length > MAX_URL) return send(res, 414, { error: 'URL too long', code: 'TOO_LARGE' });
  const url = new URL(req.url ?? '/', 'http://agent');
  const q = url.searchParams;
  const who = authenticate(req, auth, url.pathname);
  if ('error' in who) return send(res, 401, { error: who.error, code: 'UNAUTHENTICATED' }, BASIC_CHALLENGE);
  const authorizer = auth?.authorizer ?? allowAll;
  const may: ViewFilter = (action, user) => authorizer.authorized(who.principal, action, user);
  /** access_sandboxes, decided before anything below the sandbox is opened. */
  // The refusal is the same whether the task exists, whose it is or what user it runs as: a
  // principal learns nothing about sandboxes it may not access (not even that a task id exists).
  const checkSandbox = (): void => {
    let sandbox: string | undefined;
    let missing: unknown;
    try { sandbox = view.files.sandboxFor(q.get('path') ?? undefined, q.get('task_id') ?? undefined); } catch (e) {
      if (!(e instanceof BerthError) || e.code !== 'NOT_FOUND') throw e;
      missing = e;
    }
    const user = sandbox === undefined ? undefined : view.sandboxUser(sandbox);
    if (!authorizer.authorized(who.principal, 'access_sandboxes', user)) {
      throw new BerthError('FORBIDDEN', `principal '${who.principal ?? '(none)'}' may not access sandboxes of this task's user`);
    }
    if (missing) throw missing;
  };
  try {
    switch (url.pathname) {
      case '/health': return send(res, 200, view.health());
      case '/state': return send(res, 200, view.state(may));
      case '/monitor/statistics':
      case '/monitor/statistics.json': return send(res, 200, await view.statistics(may));
      case '/files/read': {
        const offset = q.has('offset') ? Number(q.get('offset')) : 0;
        const length = q.has('length') ? Number(q.get('length')) : undefined;
        if (!Number.isFinite(offset) || (length !== undefined && !Number.isFinite(length))) {
          throw new BerthError('INVALID', 'offset and length must be numbers');
        }
        checkSandbox();
        return send(res, 200, await view.files.read(q.get('path') ?? undefined, offset, length, q.get('task_id') ?? undefined));
      }
      case '/files/browse':
        checkSandbox();
        return send(res, 200, await view.files.browse(q.get('path') ?? undefined, q.get('task_id') ?? undefined));
      default:
        return send(res, 404, { error: `no endpoint ${url.pathname}`, code: 'NOT_FOUND' });
    }
  } catch (e) {
    if (e instanceof BerthError) {
      const status = e.code === 'FORBIDDEN' ? 403 : e.code === 'NOT_FOUND' ? 404 : 400;
      return send(res, status, { error: e.message, code: e.code });
    }
    throw e;
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}
