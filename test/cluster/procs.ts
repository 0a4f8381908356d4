/**
 * Real Berth processes for the chaos tests (`node dist/cli/main.js …`), each
 * tracked so the test kills every one it started, even when it fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

export class Proc {
  out = '';
  constructor(readonly tag: string, readonly p: ChildProcess) {
    const take = (d: Buffer): void => { this.out += d.toString(); if (this.out.length > 400_000) this.out = this.out.slice(-200_000); };
    p.stderr?.on('data', take);
    p.stdout?.on('data', take);
  }
  /** The JSON lines of the output that carry an `ev` field (test/cluster/fixtures/fw-proc.ts prints them). */
  events(): Record<string, string>[] {
    const evs: Record<string, string>[] = [];
    for (const l of this.out.split('\n')) {
      if (!l.startsWith('{"ev"')) continue;
      try { evs.push(JSON.parse(l) as Record<string, string>); } catch { /* a line cut at the buffer's edge */ }
    }
    return evs;
  }
  get alive(): boolean { return this.p.exitCode === null && this.p.signalCode === null; }
  waitFor(re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => { const m = re.exec(this.out); if (m) { cleanup(); resolve(m); return true; } return false; };
      const onData = (): void => { check(); };
      const onExit = (code: number | null): void => { cleanup(); reject(new Error(`${this.tag} exited (${code}) before ${re}:\n${this.out.slice(-3000)}`)); };
      const t = setTimeout(() => { cleanup(); reject(new Error(`${this.tag}: no ${re} within ${timeoutMs} ms:\n${this.out.slice(-3000)}`)); }, timeoutMs);
      const cleanup = (): void => { clearTimeout(t); this.p.stderr?.off('data', onData); this.p.stdout?.off('data', onData); this.p.off('exit', onExit); };
      if (check()) return;
      this.p.stderr?.on('data', onData);
      this.p.stdout?.on('data', onData);
      this.p.once('exit', onExit);
    });
  }
  /** Sends `sig` and waits for the exit; a process still alive after 15 s gets SIGKILL. */
  async kill(sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.alive) return;
    await new Promise<void>((r) => {
      const t = sig === 'SIGKILL' ? undefined : setTimeout(() => this.p.kill('SIGKILL'), 15_000);
      this.p.once('exit', () => { clearTimeout(t); r(); });
      this.p.kill(sig);
    });
  }
}

export class Procs {
  readonly all: Proc[] = [];
  /** Runs `berth ARGS`; `wrap` prefixes the command (e.g. `ip netns exec NS`). */
  berth(tag: string, args: string[], env: Record<string, string> = {}, wrap: string[] = []): Proc {
    const argv = [...wrap, process.execPath, CLI, ...args];
    const p = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, BERTH_LOG_LEVEL: 'info', ...env },
    });
    const proc = new Proc(tag, p);
    this.all.push(proc);
    return proc;
  }
  /** Runs a compiled test fixture (`fixtures/NAME.js`) with node; stdout and stderr both go to `out`. */
  fixture(tag: string, name: string, args: string[], wrap: string[] = []): Proc {
    const argv = [...wrap, process.execPath, path.join(FIXTURES, `${name}.js`), ...args];
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn' } });
    const proc = new Proc(tag, p);
    this.all.push(proc);
    return proc;
  }
  async killAll(): Promise<void> { await Promise.all(this.all.map((p) => p.kill('SIGKILL'))); }
}

export async function json<T>(url: string): Promise<T> {
  const r = await fetch(url, { signal: AbortSignal.timeout(3_000) });
  return (await r.json()) as T;
}
