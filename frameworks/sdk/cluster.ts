/**
 * Cluster mode for a framework in one call: a NATS connection, a dialer that
 * follows the leading master (pass it as `master` to connect()), and the
 * framework's state store as a JetStream KV bucket, so the framework can be
 * restarted on any machine and resume from the same state.
 *
 *   const c = await connectCluster({ nats: { servers: ['nats://n1:4222'] } });
 *   const store = await c.store('marathon');          // bucket berth_fw_marathon
 *   const fw = await connect({ master: c.dialer, framework: { name: 'marathon' } });
 */
import type { NatsConnection } from 'nats';
import { BerthError } from '../../proto/errors.js';
import type { Logger } from '../../proto/log.js';
import { NatsLeaderDetector } from '../../proto/transport/nats-detector.js';
import { connectNats, NatsDialer, type NatsOptions } from '../../proto/transport/nats.js';
import { KvStore } from './store-kv.js';

export interface ClusterOptions {
  /** NATS URLs of the cluster, and credentials/TLS where it needs them. */
  nats: NatsOptions;
  /** Subject and bucket prefix, as the masters' `--nats-prefix` (default `berth`). */
  prefix?: string;
  /** Replicas of the framework's state bucket (3 on a 3-node NATS cluster; default 1). */
  replicas?: number;
  /** How long to wait for a master to create the leader bucket (default 60 s). */
  bindTimeoutMs?: number;
  log?: Logger;
}

export interface ClusterConnection {
  readonly nc: NatsConnection;
  readonly dialer: NatsDialer;
  readonly detector: NatsLeaderDetector;
  /** The framework's store: bucket `<prefix>_fw_<name>` (name made bucket-safe). */
  store(name: string): Promise<KvStore>;
  close(): Promise<void>;
}

/** The bucket of framework `name`: `[-_a-zA-Z0-9]` only, so `berth-batch` stays itself and `a/b` becomes `a_b`. */
export function storeBucket(prefix: string, name: string): string {
  const safe = name.replace(/[^-_a-zA-Z0-9]/g, '_');
  if (!safe) throw new BerthError('INVALID', 'framework name: empty; the state bucket is named after it');
  return `${prefix}_fw_${safe}`.slice(0, 200);
}

export async function connectCluster(o: ClusterOptions): Promise<ClusterConnection> {
  const prefix = o.prefix ?? 'berth';
  const nc = await connectNats(o.nats);
  let detector: NatsLeaderDetector;
  try {
    detector = await NatsLeaderDetector.start(nc, prefix, o.bindTimeoutMs ?? 60_000);
  } catch (e) {
    await nc.close().catch(() => {});
    throw e;
  }
  const dialer = new NatsDialer(nc, { prefix, detector, log: o.log });
  return {
    nc, dialer, detector,
    store: (name) => KvStore.open(nc, { bucket: storeBucket(prefix, name), replicas: o.replicas ?? 1 }),
    async close() { await detector.close(); await nc.drain().catch(() => {}); },
  };
}
