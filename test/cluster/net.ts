/**
 * Hosts for the chaos tests as network namespaces: a switch namespace with a
 * bridge, and one namespace per "host" (NATS server, master, agent, framework)
 * joined to it by a veth pair. Addresses exist only inside the namespaces;
 * nothing touches the host's network. Partitions are real: a host's link goes
 * down. destroy() deletes every namespace made, also after a failure.
 */
import { test } from 'uvu';
import { execFileSync } from 'node:child_process';
import type { Proc } from './procs.js';

export const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A switch namespace with a bridge, and hosts attached to it. */
export class Net {
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

export function canRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  try { ip('-V'); } catch { return 'needs iproute2 (ip)'; }
  return undefined;
}

/** Pino times of the log lines matching `re` in a process's output. */
export function logTimes(p: Proc, re: RegExp): number[] {
  return p.out.split('\n').filter((l) => re.test(l)).map((l) => { try { return (JSON.parse(l) as { time: number }).time; } catch { return NaN; } }).filter(Number.isFinite);
}

const skipWhy = canRun();
/** root: tests are skipped (counted as skipped, reason printed) where namespaces cannot be made. */
export const rootTest = (name: string, fn: () => Promise<void>): void => {
  if (skipWhy) { console.log(`\n[chaos] SKIPPING ${name}: ${skipWhy}`); test.skip(name, () => undefined); } else test(name, fn);
};


/** GET `url` from inside namespace `ns` (the test process itself is on no host's network). */
export function nsJson<T>(ns: string, url: string): T {
  const text = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e',
    'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { process.stderr.write(String(e)); process.exit(1); })', url],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(text) as T;
}
