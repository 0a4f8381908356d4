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
import { upBatch } from './job.js';
import { Resources } from '../proto/resources.js';
import { BerthError } from '../proto/errors.js';

export interface UpOptions {
  agents: number;
  port: number;
  host: string;
  workDir: string;
  containerizer: string;
  /** Start the batch framework (default true). */
  batch?: boolean;
  /** Master security flags (see cli/main.ts securityFlags); loopback needs none. */
  security?: Record<string, unknown>;
  /** Credential file handed to the agents when they must authenticate. */
  credential?: string;
  /** false: do not start the Marathon service framework (`--no-marathon`). */
  marathon?: boolean;
  marathonPort?: number;
  /** Roles of the bundled frameworks (each its own by default, so weights can tell them apart). */
  batchRole?: string;
  marathonRole?: string;
  /** Master role weights (Mesos --weights). */
  weights?: Record<string, number>;
  allocationIntervalMs?: number;
  /** Each agent's declared resources instead of an equal split of the host (ports: the agent's slice unless given). */
  agentResources?: string;
}

/** The master's --credentials / --authenticate-http-readonly / --acls, as agent flags. */
function agentHttpFlags(sec: Record<string, unknown>): string[] {
  const out: string[] = [];
  if (typeof sec.credentialsFile === 'string') out.push('--http-credentials', path.resolve(sec.credentialsFile));
  if (sec.authenticateHttpReadonly && typeof sec.credentialsFile === 'string') out.push('--authenticate-http-readonly');
  if (typeof sec.aclsFile === 'string') out.push('--acls', path.resolve(sec.aclsFile));
  return out;
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

/**
 * `--agent-resources`: the same declared resources for every agent (e.g. more cpus than the host
 * has, for many short commands), checked here so a typo fails `berth up` instead of every agent.
 * Agents on one host must not offer the same ports, so each keeps its own slice unless ports are given.
 */
export function declared(text: string, split: string[]): string[] {
  try { Resources.parse(text); } catch (e) { throw new BerthError('INVALID', `--agent-resources: ${(e as Error).message}`); }
  if (/(^|;)\s*ports\s*(\(|:)/.test(text)) return split.map(() => text);
  return split.map((s) => `${text.replace(/;\s*$/, '')};${/ports:\[[^\]]*\]/.exec(s)![0]}`);
}

/**
 * Each agent of `berth up` gets its own pool of 65,536-id blocks for its root containers
 * (one block per running root task), all below 2^31 so no tool meets a negative uid: up to
 * 4,096 blocks each (16,376 would fit for 2 agents), fewer when there are many agents. A pool
 * of 64 capped an agent at 64 root tasks — a 500-instance app run as root stalled at 128.
 */
const USERNS_POOL_START = 1 << 20;
const userNsPoolSize = (agents: number): number => Math.min(4096, Math.floor((2 ** 31 - USERNS_POOL_START) / agents / 65_536)) * 65_536;

export async function runUp(opts: UpOptions): Promise<void> {
  const log = logger('up');
  const workDir = path.resolve(opts.workDir);
  mkdirSync(workDir, { recursive: true });
  // Checked before anything starts: a bad --agent-resources leaves nothing running.
  const shares = opts.agentResources ? declared(opts.agentResources, splitHost(opts.agents, workDir)) : splitHost(opts.agents, workDir);
  const { startMaster } = await import('../master/main.js');
  const m = await startMaster({
    workDir, port: opts.port, host: opts.host, ...opts.security,
    ...(opts.weights ? { weights: opts.weights } : {}), ...(opts.allocationIntervalMs ? { allocationIntervalMs: opts.allocationIntervalMs } : {}),
  });
  const masterAddr = `${opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host}:${m.port}`;
  const cli = fileURLToPath(new URL('./main.js', import.meta.url));
  let stopping = false;
  const USERNS_POOL_SIZE = userNsPoolSize(opts.agents);
  const agents = Array.from({ length: opts.agents }, (_, i) => new AgentProcess(i, () => [
    cli, 'agent', '--master', masterAddr, '--work-dir', path.join(workDir, `agent-${i}`), '--port', '0',
    '--resources', shares[i]!, '--attributes', `agent:${i}`, '--containerizer', opts.containerizer, '--cleanup-on-exit',
    ...(opts.credential ? ['--credential', path.resolve(opts.credential)] : []),
    // The master's principals and ACLs guard the agents' sandboxes too (access_sandboxes).
    ...agentHttpFlags(opts.security ?? {}),
    // Disjoint id pools: no two agents' root containers ever share a host uid.
    '--userns-uid-range', `${USERNS_POOL_START + i * USERNS_POOL_SIZE}:${USERNS_POOL_SIZE}`,
  ], log, () => stopping));
  for (const a of agents) a.start();
  const batch = opts.batch === false ? undefined : upBatch(masterAddr, workDir, opts.port, opts.batchRole ?? 'batch');
  const marathon = opts.marathon === false ? undefined : await (await import('./app.js')).startMarathonForUp(m.url, path.join(workDir, 'marathon'), opts.marathonPort ?? (opts.port === 0 ? 0 : 8080), opts.marathonRole ?? 'marathon');
  process.stderr.write(`\nberth is up: master ${m.url} with ${opts.agents} agent(s)\n  state:  berth state --master ${m.url}   (or open ${m.url}/state)\n${marathon ? `  marathon: ${marathon.url}   (berth app list --marathon ${marathon.url})\n` : ''}${batch || marathon ? `  roles:  ${[marathon ? `marathon in '${opts.marathonRole ?? 'marathon'}'` : '', batch ? `batch in '${opts.batchRole ?? 'batch'}'` : ''].filter(Boolean).join(', ')}; weights ${opts.weights ? Object.entries(opts.weights).map(([r, w]) => `${r}=${w}`).join(',') : 'all 1'} (GET ${m.url}/roles)\n` : ''}  stop:   Ctrl-C\n\n`);

  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await batch?.stop();
    process.stderr.write('stopping agents and their tasks…\n');
    // Marathon first: it must not relaunch the tasks the stopping agents kill.
    await marathon?.stop();
    await Promise.all(agents.map((a) => a.stop()));
    await m.stop();
    process.stderr.write('stopped\n');
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

/** Restart delays of a dead agent: 0.5 s doubling to 30 s; back to 0.5 s once it ran a minute. */
export const RESTART_BACKOFF = { firstMs: 500, maxMs: 30_000, stableMs: 60_000 } as const;

/**
 * One agent child of `berth up`, kept running as a service manager would: an agent that dies
 * (crash, OOM kill, SIGKILL) is started again on the same work dir after a backoff, and the new
 * process recovers the tasks its predecessor left running (they outlive it under their shims).
 * Stopping (Ctrl-C) sends SIGTERM, so `--cleanup-on-exit` takes the tasks down with it.
 */
class AgentProcess {
  private child: ChildProcess | undefined;
  private delayMs: number = RESTART_BACKOFF.firstMs;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly index: number,
    private readonly args: () => string[],
    private readonly log: ReturnType<typeof logger>,
    private readonly stopping: () => boolean,
  ) {}

  start(): void {
    const startedAt = Date.now();
    const child = spawn(process.execPath, this.args(), { stdio: ['ignore', 'inherit', 'inherit'] });
    this.child = child;
    child.once('exit', (code, signal) => {
      if (this.stopping()) return;
      if (Date.now() - startedAt >= RESTART_BACKOFF.stableMs) this.delayMs = RESTART_BACKOFF.firstMs;
      this.log.warn({ agent: this.index, pid: child.pid, code, signal, restartInMs: this.delayMs }, 'agent process exited; restarting it');
      this.timer = setTimeout(() => { this.timer = undefined; if (!this.stopping()) this.start(); }, this.delayMs);
      this.delayMs = Math.min(this.delayMs * 2, RESTART_BACKOFF.maxMs);
    });
  }

  stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    const c = this.child;
    return new Promise<void>((resolve) => {
      if (!c || c.exitCode !== null || c.signalCode !== null) { resolve(); return; }
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      c.once('exit', () => { clearTimeout(t); resolve(); });
      c.kill('SIGTERM');
    });
  }
}
