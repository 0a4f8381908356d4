/**
 * root: chaos with every component on its own "host": a network namespace per
 * NATS server, master and agent, joined by veth pairs to a bridge in a switch
 * namespace (addresses 10.213.x.y exist only inside the namespaces; nothing
 * touches the host's network). Partitions are real: a host's link goes down.
 * Every namespace is deleted afterwards, also when the test fails.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NatsCluster } from '../../cli/nats-server.js';
import { checked, until } from './harness.js';
import { Procs, type Proc } from './procs.js';

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A switch namespace with a bridge, and hosts attached to it. */
class Net {
  readonly prefix = `bt${process.pid % 100000}`;
  readonly made: string[] = [];
  readonly sw: string;
  constructor(readonly subnet: string) {
    this.sw = this.ns('sw');
    ip('-n', this.sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', this.sw, 'link', 'set', 'br0', 'up');
  }
  private ns(name: string): string {
    const n = `${this.prefix}-${name}`;
    ip('netns', 'add', n);
    this.made.push(n);
    ip('-n', n, 'link', 'set', 'lo', 'up');
    return n;
  }
  /** A host namespace with address subnet.<octet> on eth0. */
  host(name: string, octet: number): { ns: string; addr: string } {
    const ns = this.ns(name);
    const port = `v${name}`.slice(0, 15);
    ip('-n', this.sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', this.sw, 'link', 'set', port, 'master', 'br0', 'up');
    const addr = `${this.subnet}.${octet}`;
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    return { ns, addr };
  }
  /** Cuts (or heals) a host's only link. */
  link(ns: string, up: boolean): void { ip('-n', ns, 'link', 'set', 'eth0', up ? 'up' : 'down'); }
  destroy(): void {
    for (const n of this.made.reverse()) { try { ip('netns', 'del', n); } catch { /* already gone */ } }
  }
}

function canRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  try { ip('-V'); } catch { return 'needs iproute2 (ip)'; }
  return undefined;
}

/** Pino times of the log lines matching `re` in a process's output. */
function logTimes(p: Proc, re: RegExp): number[] {
  return p.out.split('\n').filter((l) => re.test(l)).map((l) => { try { return (JSON.parse(l) as { time: number }).time; } catch { return NaN; } }).filter(Number.isFinite);
}

const skipWhy = canRun();
/** root: tests are skipped (counted as skipped, reason printed) where namespaces cannot be made. */
const rootTest = (name: string, fn: () => Promise<void>): void => {
  if (skipWhy) { console.log(`\n[netns.test] SKIPPING ${name}: ${skipWhy}`); test.skip(name, () => undefined); } else test(name, fn);
};

rootTest('root: chaos: the leading master partitioned from NATS fences itself before the standby leads (netns hosts)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-netns-'));
  const net = new Net('10.213.7');
  const procs = new Procs();
  let nats: NatsCluster | undefined;
  try {
    const nh = [net.host('n1', 1), net.host('n2', 2), net.host('n3', 3)];
    const mh = [net.host('m1', 11), net.host('m2', 12)];
    nats = await NatsCluster.start({ nodes: 3, dir: path.join(dir, 'nats'), hosts: nh.map((h) => h.addr), netns: nh.map((h) => h.ns) });
    const natsArgs = nats.urls.flatMap((u) => ['--nats', u]);
    const masterArgs = (h: { addr: string }): string[] => ['master', ...natsArgs, '--host', h.addr, '--port', '5050', '--replicas', '3', '--lease-ttl', '3000', '--insecure'];
    const m1 = procs.berth('m1', masterArgs(mh[0]!), {}, ['ip', 'netns', 'exec', mh[0]!.ns]);
    await m1.waitFor(/berth master at .*leading/, 60_000);
    const m2 = procs.berth('m2', masterArgs(mh[1]!), {}, ['ip', 'netns', 'exec', mh[1]!.ns]);
    await m2.waitFor(/berth master at .*standby/, 60_000);
    await until('m1 leads its first term', () => logTimes(m1, /"msg":"leading"/).length > 0, 60_000);
    const cutAt = Date.now();
    net.link(mh[0]!.ns, false);
    await until('m2 leads', () => logTimes(m2, /"to":"leading"/).length > 0, 60_000);
    await until('m1 reports fenced', () => logTimes(m1, /"to":"fenced"/).length > 0, 30_000);
    const fencedAt = logTimes(m1, /"to":"fenced"/)[0]!;
    const ledAt = logTimes(m2, /"to":"leading"/)[0]!;
    assert.ok(fencedAt < ledAt, `m1 fenced at ${fencedAt - cutAt} ms after the cut, m2 led at ${ledAt - cutAt} ms`);
    assert.ok(m1.out.includes('term ended'), 'the partitioned master stopped its Master');
    // Heal: the old leader comes back as a standby, not as a second leader.
    net.link(mh[0]!.ns, true);
    await until('m1 back to standby', () => logTimes(m1, /"from":"fenced","to":"standby"/).length > 0, 30_000);
    await new Promise((r) => setTimeout(r, 4000));
    assert.is(logTimes(m1, /"to":"leading"/).length, 1, 'm1 did not lead again while m2 holds the lease');
    checked(`link of leader m1 cut: fenced after ${fencedAt - cutAt} ms, m2 led after ${ledAt - cutAt} ms; after healing m1 stays standby`);
  } finally {
    await procs.killAll();
    await nats?.stop();
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
