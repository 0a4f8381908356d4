/**
 * Runs COMMAND probes through one long-lived `berth-probe` process per agent
 * (berth-probe.c): a probe is one record written to its stdin and one line read
 * back, and the fork+exec happens in that small C process instead of the
 * agent's (a `child_process.spawn` from the agent costs 5–10 ms of its CPU per
 * probe on this kind of VM; 500 tasks probed every few seconds were most of an
 * agent's time).
 *
 * Invariants:
 *  - The server runs only while some task has checks (`acquire`/`release`
 *    count them): an agent or a test with no checked task leaves no process.
 *  - Every `run` resolves exactly once: with the server's result line, or —
 *    when the server dies, stalls or is closed — with a failure naming that,
 *    never by hanging. The probe's own timeout is enforced by the server from
 *    the moment it starts the probe: time a record waits in the server's queue
 *    (a host too loaded to fork as fast as probes come) is not the probe's
 *    failure, and the checkers' intervals, counted from the end of each probe,
 *    slow the probe rate down to what the host can run. The server is judged
 *    stalled only when it said nothing for STALL_MS while a probe is overdue.
 *  - Pending probes are bounded (MAX_PENDING; more run through the caller's fallback).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../proto/log.js';

/** What the server reported for one probe. */
export interface RunnerResult {
  kind: 'exit' | 'signal' | 'timeout' | 'error';
  /** Exit code, signal number, or errno. */
  num: number;
  output: string;
}

const BUILT = fileURLToPath(new URL('./berth-probe', import.meta.url));
/** The server's own per-record limits (berth-probe.c). */
const MAX_FIELDS = 4000;
const MAX_PENDING = 4000;
/** A server silent this long while a probe is this much past its timeout is stalled: killed, its probes failed. */
const STALL_MS = 60_000;
const WATCHDOG_MS = 5_000;

/** The berth-probe binary ($BERTH_PROBE, then the build output), or undefined when not built. */
export function findProbeServer(): string | undefined {
  for (const p of [process.env['BERTH_PROBE'], BUILT]) if (p && existsSync(p)) return p;
  return undefined;
}

interface Pending { resolve: (r: RunnerResult) => void; due: number }

/** A prepared command: everything of its record but the tag and the timeout, encoded once. */
export interface PreparedCommand { readonly body: Buffer }

export class ProbeRunner {
  private child: ChildProcess | undefined;
  private seq = 0;
  private users = 0;
  private readonly pending = new Map<string, Pending>();
  private lastHeard = 0;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(readonly path: string, private readonly onWarn: (msg: string, fields: object) => void = () => undefined) {}

  /** One more task with checks; the server starts with the first. */
  acquire(): void { this.users++; }

  /** One task fewer; the server is closed with the last (probes in flight fail). */
  release(): void {
    this.users = Math.max(0, this.users - 1);
    if (this.users === 0) this.close();
  }

  /**
   * Encodes a command for `run`; undefined when it cannot go through the server (too many
   * fields), so the caller spawns it itself.
   */
  prepare(argv: string[], env: Record<string, string>, opts: { cwd?: string; uid?: number; gid?: number }): PreparedCommand | undefined {
    const envs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    if (envs.length + argv.length + 6 > MAX_FIELDS) return undefined;
    const fields = [String(opts.uid ?? -1), String(opts.gid ?? -1), opts.cwd ?? '', String(envs.length), ...envs, ...argv];
    if (fields.some((f) => f.includes('\0'))) return undefined;
    return { body: Buffer.from(fields.map((f) => `${f}\0`).join('')) };
  }

  /** Runs a prepared command within `timeoutMs`; undefined when the server cannot take it now. */
  run(cmd: PreparedCommand, timeoutMs: number): Promise<RunnerResult> | undefined {
    if (this.users === 0 || this.pending.size >= MAX_PENDING) return undefined;
    const child = this.child ?? this.startServer();
    if (!child?.stdin?.writable) return undefined;
    const tag = String(++this.seq);
    const head = Buffer.from(`${tag}\0${Math.max(1, Math.round(timeoutMs))}\0`);
    const len = head.length + cmd.body.length;
    return new Promise<RunnerResult>((resolve) => {
      this.pending.set(tag, { resolve, due: Date.now() + timeoutMs });
      if (this.pending.size === 1) { this.hold(child, true); this.lastHeard = Date.now(); this.armWatchdog(); }
      child.stdin!.write(Buffer.concat([Buffer.from(`${len}\n`), head, cmd.body]));
    });
  }

  private settle(tag: string, r: RunnerResult): void {
    const p = this.pending.get(tag);
    if (!p) return;
    this.pending.delete(tag);
    if (this.pending.size === 0) {
      if (this.child) this.hold(this.child, false);
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    }
    p.resolve(r);
  }

  private armWatchdog(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => {
      const now = Date.now();
      if (now - this.lastHeard < STALL_MS) return;
      let overdue = false;
      for (const p of this.pending.values()) if (now > p.due + STALL_MS) { overdue = true; break; }
      if (!overdue || !this.child) return;
      const c = this.child;
      this.child = undefined;
      this.onWarn('berth-probe stalled (no result for a minute with probes overdue); killing it', { pending: this.pending.size });
      c.kill('SIGKILL');
      for (const tag of [...this.pending.keys()]) this.settle(tag, { kind: 'error', num: 0, output: 'the probe runner stalled' });
    }, WATCHDOG_MS);
    this.watchdog.unref();
  }

  /** The server keeps this process alive only while a probe waits on it (an idle one never does). */
  private hold(child: ChildProcess, on: boolean): void {
    for (const h of [child, child.stdin, child.stdout] as unknown as ({ ref?: () => void; unref?: () => void } | null)[]) {
      if (on) h?.ref?.(); else h?.unref?.();
    }
  }

  private startServer(): ChildProcess | undefined {
    const child = spawn(this.path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    this.hold(child, false);
    child.stdin!.on('error', () => undefined);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.lastHeard = Date.now();
      const a = line.indexOf(' ');
      const b = line.indexOf(' ', a + 1);
      const c = line.indexOf(' ', b + 1);
      if (a < 0 || b < 0) return;
      const kind = line.slice(a + 1, b) as RunnerResult['kind'];
      const num = Number(line.slice(b + 1, c < 0 ? undefined : c));
      const output = c < 0 ? '' : line.slice(c + 1).replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
      this.settle(line.slice(0, a), { kind, num, output });
    });
    const gone = (why: string): void => {
      if (this.child === child) this.child = undefined;
      for (const tag of [...this.pending.keys()]) this.settle(tag, { kind: 'error', num: 0, output: why });
    };
    child.once('error', (e) => gone(`the probe runner failed: ${e.message}`));
    child.once('exit', (code, sig) => {
      // Closed by us (stdin ended): expected. Anything else is worth a line in the agent's log.
      if (this.child === child) this.onWarn('berth-probe exited unexpectedly; it is restarted with the next probe', { code, signal: sig, pending: this.pending.size });
      gone(`the probe runner exited (${sig ?? code})`);
    });
    return child;
  }

  /** Ends the server (it kills the probes still running); pending probes fail. */
  close(): void {
    const c = this.child;
    this.child = undefined;
    for (const tag of [...this.pending.keys()]) this.settle(tag, { kind: 'error', num: 0, output: 'the probe runner was closed' });
    c?.stdin?.end();
  }
}

let shared: ProbeRunner | null | undefined;
/** The agent process's runner, or null when berth-probe is not built (probes then spawn). */
export function sharedProbeRunner(log?: Logger): ProbeRunner | null {
  if (shared === undefined) {
    const p = findProbeServer();
    shared = p ? new ProbeRunner(p, (msg, fields) => log?.warn(fields, msg)) : null;
  }
  return shared;
}
