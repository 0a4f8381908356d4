/**
 * One attempt of a check against a task: an HTTP GET, a TCP connect, or a
 * command. Every probe ends within its timeout (the process group of a command
 * is SIGKILLed, a socket destroyed) and never throws: a probe that cannot run
 * is a failed probe with the reason in its message.
 *
 * Where the task lives matters (Mesos runs checks "in the task's namespaces"):
 *  - COMMAND probes enter the task's mount, pid and network namespaces with
 *    nsenter(1) when they differ from the agent's, as the task's user.
 *  - HTTP and TCP probes connect to 127.0.0.1:port (::1 for `protocol: IPv6`) from the agent (the host
 *    network, the default); if the task has its own network namespace, the
 *    probe runs in a small helper process entered into it (probe-main.ts).
 */
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { CommandInfo } from '../../proto/types.js';
import type { ResolvedUser } from '../containerizer/linux/users.js';
import type { PreparedCommand, ProbeRunner } from './probe-runner.js';

export interface ProbeResult {
  ok: boolean;
  /** What happened, for logs and the status message ("HTTP 503", "connection refused", "exited with 1"). */
  message: string;
  /** COMMAND: exit code, absent when the command did not exit by itself (timeout, signal, spawn failure). */
  exitCode?: number;
  /** HTTP: status code of the response, absent when none arrived. */
  statusCode?: number;
  /** TCP: whether the connection was established. */
  connected?: boolean;
}

/** Where and as whom a probe runs. */
export interface ProbeTarget {
  /** Host pid of the task's process; its namespaces are entered where they differ from the agent's. */
  pid?: number;
  /** Run command probes as this user (the task's). */
  user?: ResolvedUser;
  /** The task's environment (command probes inherit it, as in Mesos). */
  env: Record<string, string>;
  /** Working directory of command probes outside a mount namespace: the sandbox. */
  cwd: string;
}

export type Namespace = 'mnt' | 'pid' | 'net';
const NS_FLAG: Record<Namespace, string> = { mnt: '-m', pid: '-p', net: '-n' };

/**
 * The namespaces of `pid` that are not the agent's own (empty when the task shares them, e.g.
 * posix); undefined when `pid` is gone (a probe must then fail, not run in the agent's namespaces).
 */
export function foreignNamespaces(pid: number | undefined): Namespace[] | undefined {
  if (pid === undefined) return [];
  const out: Namespace[] = [];
  for (const ns of ['mnt', 'pid', 'net'] as const) {
    const mine = ownNamespaces()[ns];
    if (mine === undefined) continue;
    let theirs: string;
    try { theirs = readlinkSync(`/proc/${pid}/ns/${ns}`); } catch { return undefined; }
    if (mine !== theirs) out.push(ns);
  }
  return out;
}

let own: Partial<Record<Namespace, string>> | undefined;
/** The agent's own namespaces: read once (a process never changes them here). */
function ownNamespaces(): Partial<Record<Namespace, string>> {
  if (!own) {
    own = {};
    for (const ns of ['mnt', 'pid', 'net'] as const) { try { own[ns] = readlinkSync(`/proc/self/ns/${ns}`); } catch { /* no such namespace type */ } }
  }
  return own;
}

const GONE: ProbeResult = { ok: false, message: "the task's process is gone" };

/** Bound on the output of a command probe kept for the message. */
const OUTPUT_TAIL = 512;

/** Runs `argv` (argv[0] is the program) under the target, killing its process group after `timeoutMs`. */
function runBounded(argv: string[], env: Record<string, string>, opts: { cwd?: string; uid?: number; gid?: number }, timeoutMs: number): Promise<{ code: number | null; signal: string | null; timedOut: boolean; output: string; error?: string }> {
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    let done = false;
    const child = spawn(argv[0]!, argv.slice(1), { env, cwd: opts.cwd, uid: opts.uid, gid: opts.gid, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer): void => { output = (output + d.toString()).slice(-OUTPUT_TAIL); };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const killGroup = (): void => { if (child.pid) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ } } };
    let exited: { code: number | null; signal: string | null } | undefined;
    const finish = (r: { code: number | null; signal: string | null; error?: string }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      killGroup();
      resolve({ ...r, timedOut, output: output.trim() });
    };
    const timer = setTimeout(() => {
      // Exited, but something it left (in another session) still holds its output open: done anyway.
      if (exited) { finish(exited); return; }
      timedOut = true;
      killGroup();
      setTimeout(() => finish({ code: null, signal: 'SIGKILL' }), 1000).unref();
    }, timeoutMs);
    child.once('error', (e) => finish({ code: null, signal: null, error: e.message }));
    // Nothing the probe started may outlive it: once the command itself exits, its group is killed
    // (a backgrounded child of a shell, say), which also closes the pipes so 'close' follows.
    child.once('exit', (code, signal) => { exited = { code, signal }; killGroup(); });
    child.once('close', (code, signal) => finish(exited ?? { code, signal }));
  });
}

/** argv of a CommandInfo as Mesos runs it: `sh -c value`, or `value` with `arguments` (argv[0] included). */
export function commandArgv(c: CommandInfo): string[] {
  if (c.shell === false) {
    const args = c.arguments ?? [];
    return [c.value ?? '', ...args.slice(1)];
  }
  return ['/bin/sh', '-c', c.value ?? ''];
}

/** nsenter(1) argv entering `nss` of `pid` (and the task's working directory) as `user`. */
export function nsenterArgv(pid: number, nss: Namespace[], user: ResolvedUser | undefined, argv: string[]): string[] {
  const out = ['nsenter', '-t', String(pid), ...nss.map((n) => NS_FLAG[n])];
  if (nss.includes('mnt')) out.push('--wd');
  if (user) out.push('-S', String(user.uid), '-G', String(user.gid));
  return [...out, '--', ...argv];
}

const asRoot = (): boolean => process.getuid?.() === 0;

/** What a command probe runs: the argv (nsenter'ed into the task where needed), its environment and as whom. */
interface CommandPlan { argv: string[]; env: Record<string, string>; opts: { cwd?: string; uid?: number; gid?: number } }

function planCommand(c: CommandInfo, target: ProbeTarget, nss: Namespace[]): CommandPlan {
  const env = { ...target.env };
  for (const v of c.environment?.variables ?? []) env[v.name] = v.value ?? '';
  const argv = commandArgv(c);
  // Switching users needs root; an agent that is not root runs its tasks (and their checks) as itself.
  const user = asRoot() && target.user && target.user.uid !== 0 ? target.user : undefined;
  return nss.length > 0 && target.pid !== undefined
    ? { argv: nsenterArgv(target.pid, nss, user, argv), env, opts: {} }
    : { argv, env, opts: { cwd: target.cwd, uid: user?.uid, gid: user?.gid } };
}

function commandResult(r: { code: number | null; signal: string | null; timedOut: boolean; output: string; error?: string }, timeoutMs: number): ProbeResult {
  const tail = r.output ? `: ${r.output}` : '';
  if (r.timedOut) return { ok: false, message: `command timed out after ${timeoutMs / 1000} s` };
  if (r.error) return { ok: false, message: `command could not start: ${r.error}` };
  if (r.code === null) return { ok: false, message: `command terminated by ${r.signal ?? 'a signal'}${tail}` };
  return { ok: r.code === 0, exitCode: r.code, message: `command exited with status ${r.code}${r.code === 0 ? '' : tail}` };
}

const signalName = (n: number): string => Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;

/** Runs a planned command through the runner when it takes it, else spawned from this process. */
async function runPlan(plan: CommandPlan, prepared: PreparedCommand | undefined, runner: ProbeRunner | undefined, timeoutMs: number): Promise<ProbeResult> {
  const viaRunner = prepared && runner?.run(prepared, timeoutMs);
  if (!viaRunner) return commandResult(await runBounded(plan.argv, plan.env, plan.opts, timeoutMs), timeoutMs);
  const r = await viaRunner;
  const output = r.output.trim();
  switch (r.kind) {
    case 'exit': return commandResult({ code: r.num, signal: null, timedOut: false, output }, timeoutMs);
    case 'signal': return commandResult({ code: null, signal: signalName(r.num), timedOut: false, output }, timeoutMs);
    case 'timeout': return commandResult({ code: null, signal: 'SIGKILL', timedOut: true, output }, timeoutMs);
    default: return commandResult({ code: null, signal: null, timedOut: false, output, error: output || `errno ${r.num}` }, timeoutMs);
  }
}

/** One COMMAND probe, spawned from this process (tests and one-off use; checks use `commandProbe`). */
export async function probeCommand(c: CommandInfo, timeoutMs: number, target: ProbeTarget): Promise<ProbeResult> {
  const nss = foreignNamespaces(target.pid);
  if (!nss) return GONE;
  return runPlan(planCommand(c, target, nss), undefined, undefined, timeoutMs);
}

/**
 * The COMMAND probe of one task's check, run every interval: through `runner` (one record to
 * berth-probe, no fork of this process) when given, else spawned. The task's namespaces are read
 * on the first probe and the command planned and encoded once: a task keeps its namespaces for
 * life, and the checks stop when it ends, so later probes do no /proc or encoding work.
 */
export function commandProbe(c: CommandInfo, target: ProbeTarget, runner?: ProbeRunner): (timeoutMs: number) => Promise<ProbeResult> {
  let planned: { plan: CommandPlan; prepared: PreparedCommand | undefined } | undefined;
  return async (timeoutMs) => {
    if (!planned) {
      const nss = foreignNamespaces(target.pid);
      if (!nss) return GONE;
      const plan = planCommand(c, target, nss);
      planned = { plan, prepared: runner?.prepare(plan.argv, plan.env, plan.opts) };
    }
    return runPlan(planned.plan, planned.prepared, runner, timeoutMs);
  };
}

/** Loopback of the task's address family (Mesos' `protocol`: IPv4 by default). */
export type Family = 'IPv4' | 'IPv6';
const loopback = (f: Family | undefined): string => (f === 'IPv6' ? '::1' : '127.0.0.1');
const hostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** HTTP GET of loopback:port/path from the current network namespace; 2xx and 3xx are healthy (Mesos). */
export function httpGet(scheme: 'http' | 'https', port: number, path: string, timeoutMs: number, family?: Family): Promise<ProbeResult> {
  const host = loopback(family);
  const where = `${scheme}://${hostPort(host, port)}${path}`;
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult): void => { if (!done) { done = true; clearTimeout(timer); resolve(r); } };
    const lib = scheme === 'https' ? https : http;
    // Health checks do not verify certificates (Mesos runs curl -k; the task's cert rarely names 127.0.0.1).
    const req = lib.request({ host, port, path, method: 'GET', rejectUnauthorized: false, agent: false, headers: { 'user-agent': 'berth-health-check' } }, (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      req.destroy();
      finish({ ok: code >= 200 && code < 400, statusCode: code, message: `HTTP ${code} from ${where}` });
    });
    const timer = setTimeout(() => { req.destroy(); finish({ ok: false, message: `HTTP GET ${where} timed out after ${timeoutMs / 1000} s` }); }, timeoutMs);
    req.once('error', (e) => finish({ ok: false, message: `HTTP GET ${where} failed: ${e.message}` }));
    req.end();
  });
}

/** TCP connect to loopback:port from the current network namespace. */
export function tcpConnect(port: number, timeoutMs: number, family?: Family): Promise<ProbeResult> {
  const host = loopback(family);
  const where = hostPort(host, port);
  return new Promise((resolve) => {
    let done = false;
    const sock = net.connect({ host, port });
    const finish = (r: ProbeResult): void => { if (!done) { done = true; clearTimeout(timer); sock.destroy(); resolve(r); } };
    const timer = setTimeout(() => finish({ ok: false, connected: false, message: `TCP connect to ${where} timed out after ${timeoutMs / 1000} s` }), timeoutMs);
    sock.once('connect', () => finish({ ok: true, connected: true, message: `TCP connect to ${where} succeeded` }));
    sock.once('error', (e) => finish({ ok: false, connected: false, message: `TCP connect to ${where} failed: ${e.message}` }));
  });
}

/** A network probe as the helper process understands it (see probe-main.ts). */
export type NetProbe = { kind: 'http'; scheme: 'http' | 'https'; port: number; path: string; family?: Family } | { kind: 'tcp'; port: number; family?: Family };

export function runNetProbe(p: NetProbe, timeoutMs: number): Promise<ProbeResult> {
  return p.kind === 'http' ? httpGet(p.scheme, p.port, p.path, timeoutMs, p.family) : tcpConnect(p.port, timeoutMs, p.family);
}

const probeMain = fileURLToPath(new URL('./probe-main.js', import.meta.url));

/** Runs a network probe from the task's network namespace (entering it when it is not the agent's). */
export async function probeNetwork(p: NetProbe, timeoutMs: number, target: ProbeTarget): Promise<ProbeResult> {
  const nss = foreignNamespaces(target.pid);
  if (!nss) return GONE;
  if (target.pid === undefined || !nss.includes('net')) return runNetProbe(p, timeoutMs);
  const argv = ['nsenter', '-t', String(target.pid), '-n', '--', process.execPath, probeMain, JSON.stringify({ probe: p, timeoutMs })];
  // The helper enforces the timeout itself; the outer bound only covers its own start-up.
  const r = await runBounded(argv, { PATH: process.env.PATH ?? '/usr/bin:/bin' }, {}, timeoutMs + 5000);
  try {
    return JSON.parse(r.output) as ProbeResult;
  } catch {
    return { ok: false, message: r.timedOut ? `probe in the task's network namespace timed out` : `probe in the task's network namespace failed: ${r.error ?? r.output}` };
  }
}
