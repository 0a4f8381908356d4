/**
 * `berth up`: a whole cluster on this machine with embedded defaults — the
 * master in this process (WebSocket transport, file-backed registry under
 * --work-dir) and N agents as child processes, each given an equal share of
 * the host (so their totals add up to the machine, not N times it).
 * Ctrl-C (or SIGTERM) stops the agents with their containers, then the master.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { logger } from '../proto/log.js';
import { DEFAULT_PORTS, detectResources } from '../agent/resources.js';

export interface UpOptions {
  agents: number;
  port: number;
  host: string;
  workDir: string;
  containerizer: string;
  /** false: do not start the Marathon service framework (`--no-marathon`). */
  marathon?: boolean;
  marathonPort?: number;
}

/**
 * Splits this host into `n` equal agents: the agent's own detection (cpus, mem and disk minus
 * their host reserves, gpus) divided by `n`, and the default port range cut into `n` slices.
 */
export function splitHost(n: number, workDir: string): string[] {
  const host = detectResources({ workDir });
  const per = (x: number): number => Math.floor((x / n) * 1000) / 1000;
  const [first, last] = DEFAULT_PORTS;
  const portsEach = Math.floor((last - first + 1) / n);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const lo = first + i * portsEach;
    const hi = i === n - 1 ? last : lo + portsEach - 1;
    const scalars = ['cpus', 'mem', 'disk', 'gpus'].filter((r) => host.scalar(r) > 0).map((r) => `${r}:${per(host.scalar(r))}`);
    out.push([...scalars, `ports:[${lo}-${hi}]`].join(';'));
  }
  return out;
}

export async function runUp(opts: UpOptions): Promise<void> {
  const log = logger('up');
  const workDir = path.resolve(opts.workDir);
  mkdirSync(workDir, { recursive: true });
  const { startMaster } = await import('../master/main.js');
  const m = await startMaster({ workDir, port: opts.port, host: opts.host });
  const masterAddr = `${opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host}:${m.port}`;
  const cli = fileURLToPath(new URL('./main.js', import.meta.url));
  const children: ChildProcess[] = [];
  const shares = splitHost(opts.agents, workDir);
  for (let i = 0; i < opts.agents; i++) {
    const args = [cli, 'agent', '--master', masterAddr, '--work-dir', path.join(workDir, `agent-${i}`), '--port', '0',
      '--resources', shares[i]!, '--attributes', `agent:${i}`, '--containerizer', opts.containerizer, '--cleanup-on-exit'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, sig) => { if (!stopping) log.warn({ agent: i, code, signal: sig }, 'agent process exited'); });
    children.push(child);
  }
  const marathon = opts.marathon === false ? undefined : await (await import('./app.js')).startMarathonForUp(m.url, path.join(workDir, 'marathon'), opts.marathonPort ?? (opts.port === 0 ? 0 : 8080));
  process.stderr.write(`\nberth is up: master ${m.url} with ${opts.agents} agent(s)\n  state:  berth state --master ${m.url}   (or open ${m.url}/state)\n${marathon ? `  marathon: ${marathon.url}   (berth app list --marathon ${marathon.url})\n` : ''}  stop:   Ctrl-C\n\n`);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('stopping agents and their tasks…\n');
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) { resolve(); return; }
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      c.once('exit', () => { clearTimeout(t); resolve(); });
      c.kill('SIGTERM');
    })));
    await marathon?.stop();
    await m.stop();
    process.stderr.write('stopped\n');
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
