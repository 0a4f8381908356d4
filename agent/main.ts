/**
 * Starting an agent from the CLI (`berth agent …`) or from `berth up`:
 * picks the containerizer, wires the WebSocket dialer, starts the Agent.
 *
 * Containerizer choice: `posix` unless `linux` is asked for, or `auto` and the
 * linux containerizer's `probeLinux()` says this host can run it. The linux
 * module is loaded dynamically so the agent builds and runs without it; the
 * choice and its reason are logged.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { BerthError } from '../proto/errors.js';
import { logger, type Logger } from '../proto/log.js';
import { WsDialer } from '../proto/transport/ws.js';
import type { Dialer } from '../proto/transport/types.js';
import type { Clock } from '../proto/clock.js';
import { Agent } from './agent.js';
import type { AgentHttpAuth } from './http.js';
import type { Containerizer } from './containerizer/types.js';
// Type only (erased at run time): the linux module itself is loaded dynamically below.
import type { LinuxContainerizerOptions } from './containerizer/linux/index.js';
import { PosixContainerizer } from './containerizer/posix.js';

export type ContainerizerChoice = 'posix' | 'linux' | 'auto';

/** Agent flags that shape linux isolation (`--cgroups-enable-cfs`, `--pids-max`, `--allow-host-root`, …). */
export type LinuxIsolationOptions = Pick<LinuxContainerizerOptions, 'enableCfs' | 'pidsMax' | 'pidsMaxTotal' | 'allowHostRoot' | 'allowedUsers' | 'uidRange' | 'capabilities'>;

export interface StartAgentOptions {
  /** Master address `host:port` (ignored when `dialer` is given). */
  master?: string;
  /** A ready dialer (e.g. MemoryNetwork for in-process clusters). */
  dialer?: Dialer;
  workDir: string;
  /** HTTP port of the agent (0 = ephemeral; default 5051). */
  port?: number;
  /** Address the HTTP server binds (default 127.0.0.1). */
  host?: string;
  /** Authentication and ACLs of the HTTP endpoints (`--http-credentials`, `--authenticate-http-*`, `--acls`). */
  httpAuth?: AgentHttpAuth;
  resources?: string;
  attributes?: string;
  hostname?: string;
  /** Default 'auto'. */
  containerizer?: ContainerizerChoice;
  /**
   * linux: this agent's cgroup root (default `defaultCgroupRoot(workDir)`). Recovery destroys
   * unknown cgroups under it, so no two agents may share one.
   */
  cgroupRoot?: string;
  /** Isolation settings of the linux containerizer (ignored by posix). */
  isolation?: LinuxIsolationOptions;
  /** Default true; false = recover what is readable from a damaged checkpoint. */
  strict?: boolean;
  /** Sandbox GC: delay after a task's end (default one week) and disk watermark (default 0.9). */
  gcDelayMs?: number;
  diskWatermarkGc?: number;
  clock?: Clock;
  log?: Logger;
}

export interface StartedAgent {
  agent: Agent;
  /** host:port of the agent's HTTP server. */
  endpoint: string;
  /** Stops the agent; tasks keep running unless `killTasks`. */
  stop(opts?: { killTasks?: boolean }): Promise<void>;
}

interface LinuxModule {
  probeLinux?: (cgroupRoot?: string) => Promise<{ ok: boolean; reason?: string }> | { ok: boolean; reason?: string };
  /** Its log option is a plain function (the linux module does not depend on pino). */
  LinuxContainerizer?: new (opts: LinuxIsolationOptions & { cgroupRoot?: string; log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: object) => void }) => Containerizer;
}

async function loadLinux(): Promise<LinuxModule | undefined> {
  try {
    // A variable specifier keeps tsc from requiring the module at build time.
    const spec = './containerizer/linux/index.js';
    return (await import(spec)) as LinuxModule;
  } catch {
    return undefined;
  }
}

/** Chooses and builds the containerizer, logging which and why. */
export async function chooseContainerizer(choice: ContainerizerChoice, workDir: string, log: Logger, cgroupRoot?: string, isolation: LinuxIsolationOptions = {}): Promise<Containerizer> {
  if (choice === 'posix') {
    log.info({ containerizer: 'posix', why: 'asked for with --containerizer posix' }, 'Containerizer chosen');
    return new PosixContainerizer({ log: log.child({ component: 'posix' }) });
  }
  const linux = await loadLinux();
  let why: string;
  if (!linux?.LinuxContainerizer || !linux.probeLinux) {
    why = 'the linux containerizer is not available in this build';
  } else {
    let probe: { ok: boolean; reason?: string };
    try { probe = await linux.probeLinux(cgroupRoot); } catch (e) { probe = { ok: false, reason: (e as Error).message }; }
    if (probe.ok) {
      log.info({ containerizer: 'linux', why: choice === 'linux' ? 'asked for with --containerizer linux' : 'auto: namespaces and cgroups usable' }, 'Containerizer chosen');
      const child = log.child({ component: 'linux' });
      return new linux.LinuxContainerizer({ ...isolation, cgroupRoot, log: (level, msg, fields) => child[level](fields ?? {}, msg) });
    }
    why = `linux probe failed: ${probe.reason ?? 'unknown reason'}`;
  }
  if (choice === 'linux') throw new BerthError('UNSUPPORTED', `--containerizer linux: ${why}`);
  log.warn({ containerizer: 'posix', why: `auto: ${why}` },
    'Reduced isolation: using the posix containerizer (plain process groups, memory limits enforced by sampling, no namespaces or cgroups, tasks run as the agent\'s user). Run the agent as root on Linux with cgroups for the linux containerizer.');
  return new PosixContainerizer({ log: log.child({ component: 'posix' }) });
}

/**
 * The cgroup root an agent owns by default: `berth/agent-<hash of its work dir>`. Distinct work
 * dirs give distinct roots, so agents on one host never see (or destroy) each other's
 * containers, and an agent restarted on the same work dir finds — and alone cleans — the root
 * its predecessor left.
 */
export function defaultCgroupRoot(workDir: string): string {
  return `berth/agent-${createHash('sha256').update(resolve(workDir)).digest('hex').slice(0, 16)}`;
}

/** Starts an agent; resolves once it is recovered and its HTTP server is up (registration proceeds in the background). */
export async function startAgent(opts: StartAgentOptions): Promise<StartedAgent> {
  const log = opts.log ?? logger('agent');
  const workDir = resolve(opts.workDir);
  let dialer = opts.dialer;
  if (!dialer) {
    if (!opts.master) throw new BerthError('INVALID', 'startAgent: give --master HOST:PORT (or a dialer)');
    dialer = new WsDialer(opts.master);
  }
  const containerizer = await chooseContainerizer(opts.containerizer ?? 'auto', workDir, log, opts.cgroupRoot ?? defaultCgroupRoot(workDir), opts.isolation);
  const agent = new Agent({
    dialer, workDir, containerizer, log,
    resources: opts.resources, attributes: opts.attributes, hostname: opts.hostname,
    httpHost: opts.host, httpPort: opts.port, httpAuth: opts.httpAuth, strict: opts.strict ?? true, clock: opts.clock,
    gcDelayMs: opts.gcDelayMs, diskWatermarkGc: opts.diskWatermarkGc,
  });
  try {
    await agent.start();
  } catch (e) {
    await containerizer.close();
    throw e;
  }
  return { agent, endpoint: agent.endpoint, stop: (o) => agent.stop(o) };
}
