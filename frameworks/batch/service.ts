/**
 * The batch framework as a running service: the store, the engine, the SDK connection to the
 * master and the REST API, wired together. `berth batch` and `berth up` call `startBatch`.
 *
 * Restart: the framework id lives in the store; a restarted process resubscribes as the same
 * framework (within the failover timeout the master kept its tasks) and reconciles every attempt
 * in flight before anything new launches from those indices. If the master no longer knows the
 * framework, attempts in flight are treated as lost-before-running and retried.
 */
import path from 'node:path';
import {
  BerthError, connect, connectCluster, FileStore, findCredential, logger, RealClock,
  type ClusterConnection, type ClusterOptions, type Clock, type Dialer, type Framework, type Logger, type Store,
} from '../sdk/index.js';
import { startApi, type ApiServer } from './api.js';
import { Engine } from './engine.js';
import { Persist } from './persist.js';
import type { QueueConfig } from './queues.js';

export interface BatchOptions {
  /** `berth://host:port` (native, fastest), `http://host:port`, or a Dialer (ignored with `cluster`). */
  master: string | Dialer;
  /**
   * Cluster mode: reach the leading master through NATS and keep the job store in a JetStream
   * KV bucket (named after the framework), so a process restarted on any machine resumes it.
   */
  cluster?: ClusterOptions;
  /** Where the file store lives (ignored when `store` is given). */
  workDir?: string;
  store?: Store;
  /** API address; port 0 picks a free one. Default 127.0.0.1:8090. */
  host?: string;
  port?: number;
  /** No REST API (in-process benches). */
  noApi?: boolean;
  role?: string;
  name?: string;
  queues?: QueueConfig[];
  /** Seconds the master keeps our tasks while this process is away (default 1 week). */
  failoverTimeout?: number;
  gangHoldMs?: number;
  clock?: Clock;
  log?: Logger;
}

export interface RunningBatch {
  engine: Engine;
  framework: Framework;
  api?: ApiServer;
  url?: string;
  stop(): Promise<void>;
}

export async function startBatch(opts: BatchOptions): Promise<RunningBatch> {
  const log = opts.log ?? logger('batch');
  const clock = opts.clock ?? new RealClock();
  const cluster: ClusterConnection | undefined = opts.cluster ? await connectCluster({ log, ...opts.cluster }) : undefined;
  const store = opts.store ?? (cluster ? await cluster.store(opts.name ?? 'berth-batch')
    : await FileStore.open(path.join(opts.workDir ?? '.berth/batch', 'store')));
  const persist = new Persist(store);
  const engine = new Engine({ clock, log, persist, queues: opts.queues, gangHoldMs: opts.gangHoldMs });
  const knownId = await engine.load();
  for (const q of opts.queues ?? []) await engine.setQueue(q.name, q);

  const fwOpts = {
    master: cluster?.dialer ?? opts.master,
    framework: { name: opts.name ?? 'berth-batch', roles: [opts.role ?? '*'], failover_timeout: opts.failoverTimeout ?? 7 * 86400, checkpoint: true },
    autoAcknowledge: false,
    ...(opts.workDir ? { workDir: opts.workDir } : {}),
    log,
  };
  let fw: Framework;
  try {
    fw = await connect({ ...fwOpts, ...(knownId ? { frameworkId: knownId } : {}) });
  } catch (e) {
    if (!knownId || !(e instanceof BerthError) || e.code === 'IO') throw e;
    // The master no longer knows our framework (removed after its failover timeout): start anew.
    log.warn({ frameworkId: knownId, err: e.message }, 'master refused our framework id; subscribing as a new framework');
    fw = await connect(fwOpts);
  }
  // Attach first: events that arrive meanwhile are held by the SDK until these listeners exist.
  await engine.attach(fw, fw.frameworkId);
  fw.on('offers', (offers) => engine.onOffers(offers));
  fw.on('update', (st) => engine.onUpdate(st));
  fw.on('rescind', (id) => engine.onRescind(id));
  fw.on('subscribed', (info) => { if (info.reconnected) void engine.reconcileInFlight(); });
  fw.on('error', (e) => log.warn({ err: e.message, fatal: e.fatal }, 'framework error'));
  log.info({ frameworkId: fw.frameworkId, resumed: knownId === fw.frameworkId }, 'batch framework subscribed');

  let api: ApiServer | undefined;
  // The framework's own credential (flag, environment or work dir, as the SDK finds it) also reads sandboxes.
  const agentCredential = findCredential({ workDir: opts.workDir });
  if (!opts.noApi) api = await startApi(engine, { host: opts.host ?? '127.0.0.1', port: opts.port ?? 8090, log, ...(agentCredential ? { agentCredential } : {}) });
  return {
    engine, framework: fw, api, url: api?.url,
    async stop() {
      await api?.close();
      await engine.close();
      fw.close();
      if (!opts.store) await store.close();
      await cluster?.close();
    },
  };
}
