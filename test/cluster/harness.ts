/**
 * Real nats-server processes for the cluster tests: one node or a 3-node
 * cluster, each with a temp store, killed and removed after the test even when
 * it fails. A missing nats-server FAILS the test (CI installs it): cluster
 * mode cannot be proven without the real server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from 'nats';
import { NatsCluster } from '../../cli/nats-server.js';
import { connectNats } from '../../proto/transport/nats.js';

export async function withNats(nodes: number, fn: (c: NatsCluster, conns: NatsConnection[]) => Promise<void>, opts: { maxPayload?: string } = {}): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-nats-'));
  const conns: NatsConnection[] = [];
  let c: NatsCluster | undefined;
  try {
    c = await NatsCluster.start({ nodes, dir, ...opts });
    await fn(c, conns);
  } finally {
    for (const nc of conns) await nc.close().catch(() => {});
    await c?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A client connection closed by withNats; `servers` defaults to every node. */
export async function client(c: NatsCluster, conns: NatsConnection[], servers = c.urls, name?: string): Promise<NatsConnection> {
  const nc = await connectNats({ servers, name });
  conns.push(nc);
  return nc;
}

/** Resolves when `pred` holds, polling every 20 ms, or rejects naming `what`. */
export async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function checked(what: string): void {
  process.stdout.write(`    checked: ${what}\n`);
}
