/**
 * Runs local `nats-server` processes (Debian's package: on PATH or at
 * /usr/sbin/nats-server) with JetStream: one node, or an N-node cluster whose
 * nodes route to each other. Used by `berth up --cluster N`, by the cluster
 * tests and by the failover bench — so every one of them runs the real server.
 *
 * Invariants: each node has its own store directory under `dir` and keeps its
 * client and cluster ports across restart() (clients list every node's URL, so
 * a restarted node must come back where they look for it); stop() kills every
 * process it started and waits for each to exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { BerthError } from '../proto/errors.js';

export const NATS_INSTALL_HINT = 'install it with: apt-get install -y nats-server (Debian/Ubuntu)';

/** The nats-server binary, or a clear error with the install command. */
export function findNatsServer(): string {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).concat(['/usr/sbin', '/usr/local/bin', '/usr/bin']);
  for (const d of dirs) {
    const p = path.join(d, 'nats-server');
    try { accessSync(p, constants.X_OK); return p; } catch { /* next */ }
  }
  throw new BerthError('NOT_FOUND', `nats-server not found on PATH or in /usr/sbin; ${NATS_INSTALL_HINT}`);
}

/** A free TCP port on `host` (bind 0, read it, close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface NatsNodeSpec {
  name: string;
  host: string;
  clientPort: number;
  clusterPort: number;
  storeDir: string;
}

export class NatsNode {
  proc?: ChildProcess;
  private log = '';
  constructor(readonly spec: NatsNodeSpec, private readonly bin: string, private readonly confFile: string,
    /** When set, the node runs inside this network namespace (`ip netns exec`). */
    private readonly netns?: string) {}

  get url(): string { return `nats://${this.spec.host}:${this.spec.clientPort}`; }
  get running(): boolean { return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null; }

  /** Starts the process and resolves once it accepts clients. */
  async start(timeoutMs = 15_000): Promise<void> {
    const args = ['-c', this.confFile];
    const cmd = this.netns ? 'ip' : this.bin;
    const argv = this.netns ? ['netns', 'exec', this.netns, this.bin, ...args] : args;
    this.log = '';
    const p = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = p;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new BerthError('IO', `nats-server ${this.spec.name} did not start within ${timeoutMs} ms:\n${this.log.slice(-2000)}`)), timeoutMs);
      p.stderr!.on('data', (d: Buffer) => {
        if (this.log.length < 64_000) this.log += d.toString();
        if (/Server is ready/.test(this.log)) { clearTimeout(t); resolve(); }
      });
      p.once('exit', (code, sig) => { clearTimeout(t); reject(new BerthError('IO', `nats-server ${this.spec.name} exited (${code ?? sig}):\n${this.log.slice(-2000)}`)); });
    });
    p.removeAllListeners('exit');
  }

  /** SIGKILL (a crash, not a shutdown) and wait for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    await new Promise<void>((resolve) => { p.once('exit', () => resolve()); p.kill(signal); });
  }

  logTail(): string { return this.log.slice(-4000); }
}

export interface NatsClusterOptions {
  nodes: number;
  dir: string;
  host?: string;
  /** Per-node host addresses (network-namespace tests); default: `host` for all. */
  hosts?: string[];
  /** Per-node network namespaces to run in. */
  netns?: string[];
  /** Fixed ports; default: free ports. */
  clientPorts?: number[];
  clusterName?: string;
  /** Server max_payload (default 8MB); tests lower it to exercise chunking cheaply. */
  maxPayload?: string;
}

export class NatsCluster {
  private constructor(readonly nodes: NatsNode[]) {}

  get urls(): string[] { return this.nodes.map((n) => n.url); }

  static async start(o: NatsClusterOptions): Promise<NatsCluster> {
    const bin = findNatsServer();
    const nodes: NatsNode[] = [];
    const specs: NatsNodeSpec[] = [];
    for (let i = 0; i < o.nodes; i++) {
      const host = o.hosts?.[i] ?? o.host ?? '127.0.0.1';
      // In a netns the addresses are private to it, so any fixed port is free there.
      const clientPort = o.clientPorts?.[i] ?? (o.netns ? 4222 : await freePort());
      const clusterPort = o.netns ? 6222 : await freePort();
      specs.push({ name: `n${i + 1}`, host, clientPort, clusterPort, storeDir: path.join(o.dir, `n${i + 1}`) });
    }
    for (const [i, s] of specs.entries()) {
      mkdirSync(s.storeDir, { recursive: true });
      const conf = path.join(o.dir, `${s.name}.conf`);
      const lines = [
        `server_name: ${s.name}`,
        `listen: "${s.host}:${s.clientPort}"`,
        `jetstream { store_dir: "${s.storeDir}" }`,
        // Offers for thousands of agents make large frames; the transport chunks anything above this.
        `max_payload: ${o.maxPayload ?? '8MB'}`,
      ];
      if (o.nodes > 1) {
        const routes = specs.filter((x) => x !== s).map((x) => `"nats://${x.host}:${x.clusterPort}"`);
        lines.push(`cluster { name: ${o.clusterName ?? 'berth'}, listen: "${s.host}:${s.clusterPort}", routes: [${routes.join(', ')}] }`);
      }
      writeFileSync(conf, lines.join('\n') + '\n');
      nodes.push(new NatsNode(s, bin, conf, o.netns?.[i]));
    }
    const c = new NatsCluster(nodes);
    try {
      await Promise.all(nodes.map((n) => n.start()));
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill('SIGKILL')));
  }
}
