/**
 * One long-lived `berth-shim --server` per agent: the agent writes a launch
 * record per task to its stdin; it starts the supervisor (the same C code a
 * spawned shim runs) and reports `ok`/`err` and, once it reaped the
 * supervisor, `exit` on its stdout. The agent's event loop pays one pipe write
 * per launch instead of a synchronous fork+exec of itself (2–4 ms each on a
 * Node process, growing with its heap), and no shell forks per task.
 *
 * Invariants:
 *  - Supervisors never depend on the server: they lead their own session and
 *    hold none of its pipes once they reported; the server exits on EOF (agent
 *    gone or closed) and the supervisors are reparented and go on.
 *  - `exited` of every started launch resolves exactly once, after the
 *    supervisor is gone: from the server's `exit` report, or — when the server
 *    died — from polling the supervisor's (pid, start time).
 *  - A supervisor's /proc/<pid>/cmdline names its run path (the server execs
 *    `berth-shim --tag …` with the launch's options), as the agent's recovery
 *    of interrupted launches and its checks of meta/runs expect of every engine.
 *  - Records carry strings NUL-separated, so no field may contain a NUL (the
 *    same strings `spawn` would refuse).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError } from '../../proto/errors.js';
import { readStat } from '../proc.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/agent/containerizer → dist/agent/shim/berth-shim (where agent/shim/build.sh puts it). */
const BUILT_SHIM = `${here}/../shim/berth-shim`;

/** The shim binary if one is installed ($BERTH_SHIM, then the build output), else undefined. */
export function findShim(explicit?: string): string | undefined {
  for (const p of [explicit, process.env['BERTH_SHIM'], BUILT_SHIM]) if (p && existsSync(p)) return p;
  return undefined;
}

export interface ServerStarted {
  supervisorPid: number;
  taskPid: number;
  startTime: number;
  /** Resolves once the supervisor is gone (its exit record, if any, is written). */
  exited: Promise<void>;
}

interface Pending { resolve: (s: ServerStarted) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
interface Live { pid: number; startTime: number; done: () => void }

/** How often supervisors are polled once the server that reported on them is gone. */
const ORPHAN_POLL_MS = 250;

export class ShimServer {
  private child: ChildProcess | undefined;
  private seq = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly live = new Map<string, Live>();
  private orphans: Live[] = [];
  private orphanTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly onWarn: (msg: string, fields: object) => void = () => undefined,
    private readonly startTimeoutMs = 30_000,
  ) {}

  /**
   * Starts one supervisor. `args` are berth-shim's options, `--` and the task's argv; `env` is the
   * task's whole environment. Rejects with the supervisor's error line when the launch failed.
   */
  start(env: Record<string, string>, args: string[]): Promise<ServerStarted> {
    if (this.closed) return Promise.reject(new BerthError('CONFLICT', 'shim server is closed'));
    const fields = [String(++this.seq), '0'];
    let nenv = 0;
    for (const k in env) { fields.push(`${k}=${env[k]}`); nenv++; }
    fields[1] = String(nenv);
    for (const a of args) fields.push(a);
    for (const f of fields) if (f.includes('\0')) return Promise.reject(new BerthError('INVALID', 'launch arguments and environment may not contain NUL'));
    const tag = fields[0]!;
    const child = this.ensure();
    return new Promise<ServerStarted>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tag);
        reject(new BerthError('IO', `supervisor did not report within ${this.startTimeoutMs} ms`));
      }, this.startTimeoutMs);
      timer.unref();
      this.pending.set(tag, { resolve, reject, timer });
      child.stdin!.write(`${fields.length}\0${fields.join('\0')}\0`);
    });
  }

  /** Lets go of the server: it exits on EOF; supervisors go on. Pending `exited`s stay unresolved. */
  close(): void {
    this.closed = true;
    if (this.orphanTimer) clearInterval(this.orphanTimer);
    this.orphanTimer = undefined;
    const c = this.child;
    this.child = undefined;
    if (c) {
      c.removeAllListeners('exit');
      c.stdin?.end();
      c.unref();
      (c.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    }
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(this.path, ['--server'], { stdio: ['pipe', 'pipe', 'ignore'], env: {} });
    createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => this.onLine(line));
    child.stdin!.on('error', (e) => this.onWarn('shim server stdin error', { err: e.message }));
    child.on('error', (e) => this.onWarn('shim server error', { err: e.message }));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      this.onWarn('shim server exited; restarted on the next launch', { code, signal });
      for (const [tag, p] of this.pending) { clearTimeout(p.timer); p.reject(new BerthError('IO', 'the shim server exited')); this.pending.delete(tag); }
      // Its supervisors live on but nobody reports their end: poll them.
      for (const l of this.live.values()) this.orphans.push(l);
      this.live.clear();
      this.pollOrphans();
    });
    this.child = child;
    return child;
  }

  private onLine(line: string): void {
    const sp = line.indexOf(' ');
    const sp2 = line.indexOf(' ', sp + 1);
    const kind = line.slice(0, sp);
    const tag = sp2 < 0 ? line.slice(sp + 1) : line.slice(sp + 1, sp2);
    if (kind === 'exit') {
      const l = this.live.get(tag);
      if (l) { this.live.delete(tag); l.done(); }
      return;
    }
    const p = this.pending.get(tag);
    if (!p) return;
    this.pending.delete(tag);
    clearTimeout(p.timer);
    if (kind === 'ok') {
      const [pid, taskPid, startTime] = line.slice(sp2 + 1).split(' ').map(Number) as [number, number, number];
      let done!: () => void;
      const exited = new Promise<void>((r) => { done = r; });
      this.live.set(tag, { pid, startTime, done });
      p.resolve({ supervisorPid: pid, taskPid, startTime, exited });
    } else {
      p.reject(new Error(sp2 < 0 ? 'supervisor failed' : line.slice(sp2 + 1)));
    }
  }

  private pollOrphans(): void {
    if (this.orphanTimer || this.closed || this.orphans.length === 0) return;
    this.orphanTimer = setInterval(() => {
      this.orphans = this.orphans.filter((l) => {
        const st = readStat(l.pid);
        if (st && st.startTime === l.startTime && st.state !== 'Z') return true;
        l.done();
        return false;
      });
      if (this.orphans.length === 0) { clearInterval(this.orphanTimer); this.orphanTimer = undefined; }
    }, ORPHAN_POLL_MS);
  }
}
