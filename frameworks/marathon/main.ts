/**
 * Berth's Marathon: the service framework plus Marathon's v2 REST API on its
 * own port (default 8080).
 *
 *   const m = await startMarathon({ master: 'http://127.0.0.1:5050', workDir: '.berth/marathon' });
 *   // m.url = 'http://127.0.0.1:8080'
 *
 * Or `berth marathon --master http://127.0.0.1:5050` (and `berth up` starts one).
 * State lives in `<workDir>` (the SDK's file store); a restart on the same work
 * dir resumes as the same framework with the same apps, deployments and instances.
 */
import pino from 'pino';
import { connectCluster, FileStore, MemoryStore, type ClusterConnection, type ClusterOptions, type Dialer, type Store } from '../sdk/index.js';
import { MarathonApi } from './api.js';
import { JsonStore } from './persist.js';
import { Scheduler, type Clock, type Logger } from './scheduler.js';

export interface MarathonOptions {
  /** `http://host:port`, `berth://host:port`, or a Dialer (ignored with `cluster`). */
  master: string | Dialer;
  /**
   * Cluster mode: reach the leading master through NATS and keep the state in a JetStream KV
   * bucket (named after the framework), so a process restarted on any machine resumes it.
   */
  cluster?: ClusterOptions;
  /** Where state is kept (file store). Omit for in-memory state (tests only). */
  workDir?: string;
  /** A store to use instead (e.g. the NATS KV backend in cluster mode). */
  store?: Store;
  port?: number;
  host?: string;
  frameworkName?: string;
  failoverTimeoutSeconds?: number;
  role?: string;
  /** Injected clock for launch delays, timeouts and unreachable timers (tests). */
  clock?: Clock;
  log?: Logger;
}

export interface RunningMarathon {
  url: string;
  port: number;
  scheduler: Scheduler;
  frameworkId: string;
  stop(): Promise<void>;
}

/** A real-time clock (the SDK's clock type; timers do not hold the process open). */
class WallClock implements Clock {
  private next = 1;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  now(): number { return Date.now(); }
  setTimeout(fn: () => void, ms: number): { id: number } {
    const id = this.next++;
    const t = setTimeout(() => { this.timers.delete(id); fn(); }, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    t.unref();
    this.timers.set(id, t);
    return { id };
  }
  clearTimeout(h: { id: number } | undefined): void {
    if (!h) return;
    const t = this.timers.get(h.id);
    if (t) { clearTimeout(t); this.timers.delete(h.id); }
  }
}

export async function startMarathon(opts: MarathonOptions): Promise<RunningMarathon> {
  const log = opts.log ?? pino({ name: 'marathon', level: process.env['BERTH_LOG_LEVEL'] ?? 'info' }, pino.destination(2));
  const cluster: ClusterConnection | undefined = opts.cluster ? await connectCluster({ log, ...opts.cluster }) : undefined;
  const raw = opts.store ?? (cluster ? await cluster.store(opts.frameworkName ?? 'marathon')
    : opts.workDir ? await FileStore.open(opts.workDir) : new MemoryStore());
  const scheduler = new Scheduler({
    master: cluster?.dialer ?? opts.master, store: new JsonStore(raw), clock: opts.clock ?? new WallClock(), log,
    ...(opts.frameworkName ? { frameworkName: opts.frameworkName } : {}),
    ...(opts.failoverTimeoutSeconds !== undefined ? { failoverTimeoutSeconds: opts.failoverTimeoutSeconds } : {}),
    ...(opts.role ? { role: opts.role } : {}),
  });
  const host = opts.host ?? '127.0.0.1';
  const masterUrl = cluster ? `nats:${opts.cluster!.nats.servers.join(',')}` : typeof opts.master === 'string' ? opts.master : 'in-process';
  const api = new MarathonApi(scheduler, { port: opts.port ?? 8080, host, masterUrl });
  await scheduler.start();
  const port = await api.listen();
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  log.info({ url, frameworkId: scheduler.frameworkId }, 'marathon API listening');
  return {
    url, port, scheduler, frameworkId: scheduler.frameworkId!,
    async stop() {
      await api.close();
      await scheduler.stop();
      if (!opts.store) await raw.close();
      await cluster?.close();
    },
  };
}
