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
 * are JSON `{"error", "code"}` with 400/403/404/405.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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

/** What the HTTP layer needs from the agent. */
export interface AgentHttpView {
  health(): Record<string, unknown>;
  state(): Record<string, unknown>;
  statistics(): Promise<MonitorEntry[]>;
  files: SandboxFiles;
}

const MAX_URL = 8192;

export interface AgentHttpServer {
  /** host:port actually bound. */
  endpoint: string;
  close(): Promise<void>;
}

export async function startAgentHttp(view: AgentHttpView, host: string, port: number, log: Logger): Promise<AgentHttpServer> {
  const server: Server = createServer((req, res) => {
    handle(view, req, res).catch((e: unknown) => {
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

async function handle(view: AgentHttpView, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: `method ${req.method} not allowed`, code: 'INVALID' });
  if ((req.url ?? '').length > MAX_URL) return send(res, 414, { error: 'URL too long', code: 'TOO_LARGE' });
  const url = new URL(req.url ?? '/', 'http://agent');
  const q = url.searchParams;
  try {
    switch (url.pathname) {
      case '/health': return send(res, 200, view.health());
      case '/state': return send(res, 200, view.state());
      case '/monitor/statistics':
      case '/monitor/statistics.json': return send(res, 200, await view.statistics());
      case '/files/read': {
        const offset = q.has('offset') ? Number(q.get('offset')) : 0;
        const length = q.has('length') ? Number(q.get('length')) : undefined;
        if (!Number.isFinite(offset) || (length !== undefined && !Number.isFinite(length))) {
          throw new BerthError('INVALID', 'offset and length must be numbers');
        }
        return send(res, 200, await view.files.read(q.get('path') ?? undefined, offset, length, q.get('task_id') ?? undefined));
      }
      case '/files/browse':
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

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}
