/**
 * Cluster-mode flags shared by `berth master`, `berth agent` and frameworks:
 * `--nats URL` (repeatable or comma-separated: every node of the NATS cluster),
 * credentials and TLS. With them, a component finds the leading master through
 * the leader key in NATS KV; nothing else is configured.
 */
import type { Command } from 'commander';
import type { NatsConnection } from 'nats';
import type { Logger } from '../proto/log.js';
import { NatsLeaderDetector } from '../proto/transport/nats-detector.js';
import { connectNats, NatsDialer, parseNatsUrls, type NatsOptions } from '../proto/transport/nats.js';

export interface NatsFlags {
  nats?: string[];
  natsCreds?: string;
  natsUser?: string;
  natsPass?: string;
  natsTlsCa?: string;
  natsTlsCert?: string;
  natsTlsKey?: string;
  natsPrefix?: string;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

export function addNatsFlags(cmd: Command): Command {
  return cmd
    .option('--nats <url>', 'NATS server URL (repeat, or comma-separate, for every node of the cluster); enables cluster mode', collect)
    .option('--nats-creds <file>', 'NATS credentials file (.creds: JWT + nkey seed)')
    .option('--nats-user <user>', 'NATS user (with --nats-pass)')
    .option('--nats-pass <pass>', 'NATS password (prefer the BERTH_NATS_PASS environment variable)')
    .option('--nats-tls-ca <file>', 'CA certificate to trust for NATS TLS')
    .option('--nats-tls-cert <file>', 'client certificate for NATS mutual TLS')
    .option('--nats-tls-key <file>', 'client key for NATS mutual TLS')
    .option('--nats-prefix <name>', 'subject and bucket prefix (several Berth clusters on one NATS)', 'berth');
}

export function natsOptions(f: NatsFlags, name?: string): NatsOptions | undefined {
  if (!f.nats || f.nats.length === 0) return undefined;
  const pass = f.natsPass ?? process.env.BERTH_NATS_PASS;
  return {
    servers: parseNatsUrls(f.nats), credsFile: f.natsCreds, name,
    ...(f.natsUser !== undefined ? { user: f.natsUser, pass } : {}),
    tlsCaFile: f.natsTlsCa, tlsCertFile: f.natsTlsCert, tlsKeyFile: f.natsTlsKey,
  };
}

/** A dialer that follows the leader: for agents and frameworks in cluster mode. */
export async function natsDialer(o: NatsOptions, prefix = 'berth', log?: Logger): Promise<{ dialer: NatsDialer; nc: NatsConnection; close(): Promise<void> }> {
  const nc = await connectNats(o);
  const detector = await NatsLeaderDetector.start(nc, prefix);
  const dialer = new NatsDialer(nc, { prefix, detector, log });
  return { dialer, nc, async close() { await detector.close(); await nc.drain().catch(() => {}); } };
}

interface ClusterJson {
  self: { id: string; state: string; url: string; epoch: number; leader?: { id: string; url: string; epoch: number } };
  masters: { id: string; state: string; url: string; epoch: number }[];
  nats: { connected_to?: string; server_name?: string; cluster?: string; known_servers: string[]; jetstream: string };
}

/**
 * Cluster mode section of `berth state`: the leader, the standbys, NATS health. Returns the
 * leader's URL (where /state is read), or undefined when `base` is not a cluster-mode master.
 */
export async function clusterSection(base: string, out: string[]): Promise<string | undefined> {
  let c: ClusterJson;
  try {
    const r = await fetch(`${base}/cluster`, { signal: AbortSignal.timeout(5_000) });
    if (r.status === 404) return undefined;
    if (!r.ok) return undefined;
    c = (await r.json()) as ClusterJson;
  } catch {
    return undefined;
  }
  const leader = c.self.leader;
  out.push(`cluster mode: leader ${leader ? `${leader.url} (epoch ${leader.epoch})` : 'NONE elected'}`);
  for (const m of c.masters) out.push(`  master ${m.url}  ${m.state}${m.state === 'leading' ? `  epoch ${m.epoch}` : ''}`);
  out.push(`  NATS: connected to ${c.nats.server_name ?? '?'} (${c.nats.connected_to ?? '?'})${c.nats.cluster ? `, cluster ${c.nats.cluster}` : ''}, ${Math.max(1, c.nats.known_servers.length)} server(s) known, JetStream ${c.nats.jetstream}`);
  out.push('');
  return leader?.url;
}
