/**
 * A master process in cluster mode: it contends for leadership over NATS and
 * owns a Master only while it leads.
 *
 *   standby  HTTP port answers: the Mesos API and everything else with 307 to
 *            the leader's address (503 while none is elected); /state with
 *            Mesos' `leader` / `leader_info`; /health 200; WebSocket upgrades refused.
 *   leading  a Master on the KV registry, listening on its NATS subjects with
 *            the term's epoch; the HTTP port is the master's own.
 *   fenced   lost the lease (or its registry write lost a CAS): the Master and
 *            its sessions are torn down at once; the process campaigns again
 *            after a lease period, and a new term loads the registry afresh.
 *
 * Invariant: one Master per term; it is created only after the lease is won and
 * never reused after the term ends, so no state from an old term leaks into a new one.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { NatsConnection } from 'nats';
import { logger } from '../../proto/log.js';
import { NatsLeaderDetector } from '../../proto/transport/nats-detector.js';
import { connectNats, NatsListener, type NatsOptions } from '../../proto/transport/nats.js';
import { MasterHttpServer, sendJson } from '../http/server.js';
import { installRoutes } from '../http/api.js';
import { newMasterId } from '../ids.js';
import { Master, type MasterOptions } from '../master.js';
import { KvRegistry, KvRegistryMirror } from '../registry/kv.js';
import { DEFAULT_LEASE_TTL_MS, NatsLeaseContender } from './nats.js';
import { assertNever, type LeaderState } from './types.js';

export interface ClusterMasterOptions extends MasterOptions {
  nats: NatsOptions;
  /** Subject and bucket prefix (several Berth clusters can share one NATS). */
  prefix?: string;
  /** Replicas of the registry and leader buckets (3 on a 3-node NATS cluster). */
  replicas?: number;
  leaseTtlMs?: number;
  port?: number;
  host?: string;
  advertiseHost?: string;
}

export interface ClusterMasterStatus {
  id: string;
  state: LeaderState;
  epoch: number;
  url: string;
  leader?: { id: string; url: string; pid: string; epoch: number };
}

export interface RunningClusterMaster {
  readonly id: string;
  readonly port: number;
  readonly url: string;
  readonly contender: NatsLeaseContender;
  readonly detector: NatsLeaderDetector;
  readonly nc: NatsConnection;
  /** The Master of the current term, while leading. */
  readonly master: Master | undefined;
  status(): ClusterMasterStatus;
  stop(): Promise<void>;
}

const API_PREFIXES = ['/api/', '/master/', '/teardown', '/maintenance', '/quota', '/weights', '/roles', '/frameworks', '/slaves', '/tasks', '/metrics'];

export async function startClusterMaster(opts: ClusterMasterOptions): Promise<RunningClusterMaster> {
  const log = opts.log ?? logger('master');
  const prefix = opts.prefix ?? 'berth';
  const replicas = opts.replicas ?? 1;
  const host = opts.host ?? '127.0.0.1';
  const advertise = opts.advertiseHost ?? (host === '0.0.0.0' ? 'localhost' : host);
  const procId = newMasterId(Date.now()).replace(/[^-_a-zA-Z0-9]/g, '-');
  const nc = await connectNats({ ...opts.nats, name: `berth-master-${procId}` });

  let term: { epoch: number; master?: Master; http?: MasterHttpServer; listener?: NatsListener; ready: boolean } | undefined;
  const server = http.createServer((req, res) => onRequest(req, res));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (term?.ready && term.http) term.http.server.emit('upgrade', req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 5050, host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${advertise}:${port}`;
  const pid = `master@${advertise}:${port}`;

  // The lease has its own connection: its renewals must not queue behind the data path's frames.
  const leaseNc = await connectNats({ ...opts.nats, name: `berth-master-${procId}-lease` });
  const contender = new NatsLeaseContender(leaseNc, {
    prefix, replicas, ttlMs: opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS, log,
    record: { master_id: procId, hostname: advertise, port, url, pid },
  });
  // Registered before start(): the first campaign round may win at once.
  contender.onStateChange((state, epoch) => {
    switch (state) {
      case 'leading': void beginTerm(epoch); break;
      case 'fenced':
      case 'standby': void endTerm(state); break;
      default: assertNever(state);
    }
  });

  // Warm standby: a live copy of the registry, so taking over does not read every key first.
  const mirror = new KvRegistryMirror(nc, { prefix, replicas, log });
  await mirror.start();
  // The leader bucket exists once the contender opened it; the detector binds to it.
  await contender.start();
  const detector = await NatsLeaderDetector.start(nc, prefix);

  function status(): ClusterMasterStatus {
    const l = detector.current();
    return {
      id: procId, state: contender.state, epoch: contender.epoch, url,
      ...(l ? { leader: { id: l.master_id, url: l.url, pid: l.pid, epoch: l.epoch } } : {}),
    };
  }

  /** Every master answers on `<prefix>.masters.status`, so any of them can list leader and standbys. */
  const statusSub = nc.subscribe(`${prefix}.masters.status`, {
    callback: (err, m) => { if (!err) m.respond(new TextEncoder().encode(JSON.stringify(status()))); },
  });

  async function clusterView(): Promise<Record<string, unknown>> {
    const masters: ClusterMasterStatus[] = [];
    try {
      const it = await nc.requestMany(`${prefix}.masters.status`, new Uint8Array(0), { maxWait: 300, maxMessages: 64 });
      for await (const m of it) masters.push(JSON.parse(new TextDecoder().decode(m.data)) as ClusterMasterStatus);
    } catch { /* no responders: only this one */ }
    let jetstream = 'ok';
    try { await (await nc.jetstreamManager({ timeout: 1_000 })).getAccountInfo(); } catch (e) { jetstream = `unavailable: ${(e as Error).message}`; }
    const info = nc.info;
    return {
      self: status(), masters: masters.sort((a, b) => a.url.localeCompare(b.url)),
      nats: { connected_to: nc.getServer(), server_name: info?.server_name, cluster: info?.cluster, known_servers: info?.connect_urls ?? [], jetstream },
    };
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    if ((req.url ?? '').split('?')[0] === '/cluster') {
      void clusterView().then((v) => sendJson(res, 200, v), (e: Error) => sendJson(res, 500, { error: e.message }));
      return;
    }
    if (term?.ready && term.http) { term.http.server.emit('request', req, res); return; }
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/health') { res.writeHead(200, { 'content-type': 'text/plain' }).end('OK'); return; }
    const l = detector.current();
    const leaderElsewhere = l && l.master_id !== procId ? l : undefined;
    if (path === '/state' || path === '/state.json' || path === '/master/state') {
      // Mesos: a standby's /state names the leader (`leader`, `leader_info`) and little else.
      sendJson(res, 200, {
        id: procId, pid, hostname: advertise, version: '0.1.0', cluster_state: contender.state,
        ...(leaderElsewhere ? { leader: leaderElsewhere.pid, leader_info: { id: leaderElsewhere.master_id, pid: leaderElsewhere.pid, hostname: leaderElsewhere.hostname, port: leaderElsewhere.port } } : {}),
        cluster: status(), slaves: [], frameworks: [], completed_frameworks: [],
      });
      return;
    }
    if (leaderElsewhere && API_PREFIXES.some((p) => path.startsWith(p))) {
      res.writeHead(307, { location: leaderElsewhere.url + (req.url ?? '/'), 'content-type': 'text/plain' }).end(`not the leader; the leader is ${leaderElsewhere.url}\n`);
      return;
    }
    sendJson(res, 503, { error: `no leading master elected (this master is ${contender.state})` });
  }

  async function endTerm(why: string): Promise<void> {
    const t = term;
    term = undefined;
    if (!t) return;
    log.warn({ epoch: t.epoch, why }, 'term ended: stopping the master of this term');
    t.listener?.close(`master stepped down: ${why}`);
    t.http?.ws.close();
    await t.master?.stop().catch((e: Error) => log.warn({ err: e.message }, 'stopping the deposed master'));
  }

  async function beginTerm(epoch: number): Promise<void> {
    const t: NonNullable<typeof term> = { epoch, ready: false };
    term = t;
    const registry = new KvRegistry(nc, {
      prefix, replicas, log, mirror,
      onFenced: (why) => { if (term === t) contender.stepDown(`registry fenced: ${why}`); },
    });
    const master = new Master({ ...opts, registry, log, hostname: advertise, port });
    const h = new MasterHttpServer(master, log);
    h.servedAt(port, host);
    installRoutes(h);
    t.master = master;
    t.http = h;
    try {
      await master.start();
    } catch (e) {
      log.error({ err: (e as Error).message, epoch }, 'could not start the master of this term; stepping down');
      // Holding the lease without a Master would keep every other master from leading.
      if (term === t) contender.stepDown(`start failed: ${(e as Error).message}`);
      return;
    }
    if (term !== t) { await master.stop().catch(() => {}); return; }
    const listener = new NatsListener(nc, { prefix, masterId: procId, epoch, log });
    t.listener = listener;
    master.listen(listener);
    await listener.ready();
    t.ready = true;
    contender.markReady(epoch);
    log.info({ epoch, url }, 'leading');
  }

  return {
    id: procId, port, url, contender, detector, nc,
    get master() { return term?.ready ? term.master : undefined; },
    status,
    async stop() {
      statusSub.unsubscribe();
      await endTerm('shutdown');
      await contender.close();
      mirror.close();
      await detector.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await nc.drain().catch(() => {});
      await leaseNc.drain().catch(() => {});
    },
  };
}
