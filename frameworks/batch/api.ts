/**
 * The batch REST API (node:http, its own port, default 8090, loopback by default):
 *
 *   POST   /v1/jobs                 submit one job, a list, or {jobs:[…]} — JSON or YAML → 201 {jobs}
 *   GET    /v1/jobs?state=&queue=&limit=&offset=          summaries, newest first
 *   GET    /v1/jobs/:id?indices=&indexState=&offset=&limit=   summary + per-index states and attempts
 *   DELETE /v1/jobs/:id             cancel (also POST /v1/jobs/:id/cancel)
 *   POST   /v1/jobs/:id/rerun       run the failed and cancelled indices again
 *   GET    /v1/jobs/:id/logs?index=&attempt=&stream=stdout|stderr&offset=&length=
 *                                   the task's sandbox file, read from its agent (text/plain)
 *   GET    /v1/queues               queues with weights, caps, usage and shares
 *   PUT    /v1/queues/:name         create or change a queue {weight, maxCpus?, maxMem?, maxTasks?}
 *   GET    /v1/events?job=          Server-Sent Events: job, index and cron events
 *   GET    /health
 *
 * Errors are JSON `{error, code, field?}`: 400 malformed body, 422 invalid spec (the field is
 * named), 404 unknown job, 409 conflict, 413 too large. Bodies are capped at 4 MiB; lists are paged.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../proto/log.js';
import { BerthError } from '../sdk/index.js';
import type { BatchEvent, Engine } from './engine.js';
import { IDX, type Job } from './model.js';
import { LIMITS, parseSubmission, positionOf, SpecError } from './spec.js';

export interface ApiServer { url: string; port: number; close(): Promise<void> }

const STATUS: Record<string, number> = { BAD_MESSAGE: 400, INVALID: 422, NOT_FOUND: 404, CONFLICT: 409, TOO_LARGE: 413, UNSUPPORTED: 415, FORBIDDEN: 403, IO: 502 };
const MAX_SSE_BACKLOG = 1 << 20;
const MAX_SSE_CLIENTS = 256;

export function jobSummary(job: Job, engine?: Engine): Record<string, unknown> {
  const s = job.spec;
  return {
    id: job.id, state: job.state, ...(job.reason ? { reason: job.reason } : {}),
    queue: s.queue, priority: s.priority, cmd: s.cmd, cpus: s.cpus, mem: s.mem,
    ...(s.disk ? { disk: s.disk } : {}), ...(s.gpus ? { gpus: s.gpus } : {}),
    completions: job.n, parallelism: s.parallelism, retries: s.retries,
    ...(s.gang ? { gang: true } : {}),
    ...(s.dependsOn.length ? { dependsOn: s.dependsOn } : {}),
    ...(Object.keys(s.labels).length ? { labels: s.labels } : {}),
    counts: job.countsByName(),
    submittedAt: job.submittedAt, ...(job.startedAt ? { startedAt: job.startedAt } : {}), ...(job.finishedAt ? { finishedAt: job.finishedAt } : {}),
    ...(job.waitingFor && !job.terminal ? { waitingFor: job.waitingFor } : {}),
    ...(job.isCron ? { schedule: s.schedule, runs: job.runs, ...(job.lastFire ? { lastFire: job.lastFire } : {}) } : {}),
    ...(job.cronParent ? { cronJob: job.cronParent } : {}),
    ...(engine && !job.terminal && !job.isCron ? { blockedBy: s.dependsOn.filter((d) => engine.jobs.get(d)?.state !== 'SUCCEEDED' && engine.jobs.has(d)) } : {}),
  };
}

function jobDetail(job: Job, q: URLSearchParams, engine: Engine): Record<string, unknown> {
  const offset = intParam(q, 'offset', 0, 0, job.n);
  const limit = intParam(q, 'limit', 1000, 1, 10_000);
  const only = q.get('indexState');
  if (only !== null && !(IDX as readonly string[]).includes(only)) throw new SpecError('indexState', `one of ${IDX.join(', ')}`);
  const code = only === null ? -1 : IDX.indexOf(only as typeof IDX[number]);
  const indices: Record<string, unknown>[] = [];
  let skipped = 0;
  let matched = 0;
  for (let p = 0; p < job.n; p++) {
    if (code >= 0 && job.st[p] !== code) continue;
    matched++;
    if (skipped < offset) { skipped++; continue; }
    if (indices.length >= limit) continue;
    indices.push({ index: job.indexAt(p), state: IDX[job.st[p]!], attempts: job.attempts[p] ?? [] });
  }
  return { ...jobSummary(job, engine), indices, indicesTotal: matched, offset, limit };
}

function intParam(q: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new SpecError(name, `must be an integer between ${min} and ${max}`);
  return n;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > LIMITS.maxBodyBytes) throw new BerthError('TOO_LARGE', `body: at most ${LIMITS.maxBodyBytes} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startApi(engine: Engine, opts: { host: string; port: number; log: Logger }): Promise<ApiServer> {
  const sse = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof BerthError) {
        return send(res, STATUS[e.code] ?? 400, { error: e.message, code: e.code, ...(e instanceof SpecError ? { field: e.field } : {}) });
      }
      opts.log.warn({ err: (e as Error).message, url: req.url }, 'API handler failed');
      if (!res.headersSent) send(res, 500, { error: (e as Error).message, code: 'INTERNAL' });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if ((req.url ?? '').length > 8192) throw new BerthError('TOO_LARGE', 'URL: at most 8192 characters');
    const url = new URL(req.url ?? '/', 'http://batch');
    const q = url.searchParams;
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const m = req.method ?? 'GET';
    const route = `${m} /${parts.map((p, i) => (i === 2 && parts[1] === 'jobs') || (i === 2 && parts[1] === 'queues') ? ':x' : p).join('/')}`;
    switch (route) {
      case 'GET /health': return send(res, 200, { status: 'ok', jobs: engine.jobs.size });
      case 'POST /v1/jobs': {
        const raws = parseSubmission(await readBody(req), req.headers['content-type'] ?? '');
        const jobs = await engine.submit(raws);
        return send(res, 201, { jobs: jobs.map((j) => jobSummary(j, engine)) });
      }
      case 'GET /v1/jobs': {
        const state = q.get('state');
        const queue = q.get('queue');
        const limit = intParam(q, 'limit', 100, 1, 10_000);
        const offset = intParam(q, 'offset', 0, 0, 1e9);
        const all = [...engine.jobs.values()].filter((j) => (!state || j.state === state) && (!queue || j.spec.queue === queue)).sort((a, b) => b.seq - a.seq);
        return send(res, 200, { jobs: all.slice(offset, offset + limit).map((j) => jobSummary(j, engine)), total: all.length });
      }
      case 'GET /v1/jobs/:x': return send(res, 200, jobDetail(engine.mustGet(parts[2]!), q, engine));
      case 'DELETE /v1/jobs/:x':
      case 'POST /v1/jobs/:x/cancel': return send(res, 200, jobSummary(await engine.cancel(parts[2]!), engine));
      case 'POST /v1/jobs/:x/rerun': return send(res, 200, jobSummary(await engine.rerun(parts[2]!), engine));
      case 'GET /v1/jobs/:x/logs': return logs(engine.mustGet(parts[2]!), q, res);
      case 'GET /v1/queues': {
        const total = engine.capacity();
        return send(res, 200, {
          queues: engine.queues.all().map((x) => ({ ...x, share: Number(engine.queues.share(x, total).toFixed(4)), cpuSeconds: Number(x.cpuSeconds.toFixed(3)) })),
          capacity: total,
        });
      }
      case 'PUT /v1/queues/:x': {
        const text = await readBody(req);
        let body: unknown;
        try { body = text.trim() ? JSON.parse(text) : {}; } catch (e) { throw new BerthError('BAD_MESSAGE', `body: not valid JSON: ${(e as Error).message}`); }
        return send(res, 200, await engine.setQueue(parts[2]!, body));
      }
      case 'GET /v1/events': return events(q, req, res);
      default:
        if (['/v1/jobs', '/v1/queues', '/v1/events', '/health'].some((p) => url.pathname.startsWith(p))) {
          return send(res, 405, { error: `${m} ${url.pathname} is not supported`, code: 'INVALID' });
        }
        return send(res, 404, { error: `no endpoint ${url.pathname}`, code: 'NOT_FOUND' });
    }
  };

  /** Reads a sandbox file of one attempt from its agent's /files/read. */
  const logs = async (job: Job, q: URLSearchParams, res: ServerResponse): Promise<void> => {
    const index = intParam(q, 'index', job.n > 0 ? job.indexAt(0) : 0, 0, 1e7);
    const pos = positionOf(job.spec.indices, index);
    if (pos < 0) throw new SpecError('index', `job '${job.id}' has no index ${index}`);
    const list = job.attempts[pos] ?? [];
    if (list.length === 0) throw new BerthError('NOT_FOUND', `index ${index} of '${job.id}' has not run yet (${IDX[job.st[pos]!]})`);
    const n = intParam(q, 'attempt', list.length, 1, list.length);
    const a = list[n - 1]!;
    const stream = q.get('stream') ?? 'stdout';
    if (stream !== 'stdout' && stream !== 'stderr') throw new SpecError('stream', "must be 'stdout' or 'stderr'");
    if (!a.agentUrl) throw new BerthError('NOT_FOUND', `attempt ${n} of index ${index} has no known agent endpoint`);
    const offset = intParam(q, 'offset', 0, 0, 1e12);
    const length = intParam(q, 'length', 1 << 20, 1, 4 << 20);
    const u = `${a.agentUrl}/files/read?path=${stream}&task_id=${encodeURIComponent(a.taskId)}&offset=${offset}&length=${length}`;
    let r: Response;
    try {
      r = await fetch(u, { signal: AbortSignal.timeout(10_000) });
    } catch (e) {
      throw new BerthError('IO', `agent ${a.agentUrl} (${a.hostname ?? a.agentId}) unreachable: ${(e as Error).message}`);
    }
    const body = (await r.json().catch(() => ({}))) as { data?: string; offset?: number; error?: string };
    if (!r.ok) throw new BerthError(r.status === 404 ? 'NOT_FOUND' : 'IO', `agent: ${body.error ?? r.statusText}`);
    const data = body.data ?? '';
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-berth-task-id': a.taskId, 'x-berth-offset': String((body.offset ?? offset) + Buffer.byteLength(data)) });
    res.end(data);
  };

  const events = (q: URLSearchParams, req: IncomingMessage, res: ServerResponse): void => {
    if (sse.size >= MAX_SSE_CLIENTS) throw new BerthError('TOO_LARGE', `at most ${MAX_SSE_CLIENTS} event streams`);
    const only = q.get('job');
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(': berth batch events\n\n');
    sse.add(res);
    const off = engine.on((e: BatchEvent) => {
      if (only && ('id' in e ? e.id : e.job) !== only && !(e.type === 'job' && engine.jobs.get(e.id)?.cronParent === only)) return;
      // A client that does not keep up is cut off rather than buffered without bound.
      if (res.writableLength > MAX_SSE_BACKLOG) { res.destroy(); return; }
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    });
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    ping.unref();
    const done = (): void => { off(); clearInterval(ping); sse.delete(res); };
    req.on('close', done);
    res.on('error', done);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
  return {
    url: `http://${shown}:${port}`,
    port,
    close: () => new Promise<void>((resolve) => {
      for (const r of sse) r.end();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

