/**
 * `berth up` exactly as a user runs it, as a child process: the master, the agent processes, the
 * batch framework (its own process) and Marathon, with the extra flags a suite passes. Resolves
 * once the master, every framework that was not turned off and `agents` agents are up, with their
 * URLs as `berth up` printed them.
 *
 * Cleanup: `stop()` sends SIGTERM, which stops the frameworks, the agents with their containers
 * (`--cleanup-on-exit`) and the master, then removes the work dir; if `berth up` does not exit in
 * 20 s its whole process group is killed. A suite calls `stop()` in a `finally`/`after`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const berthCli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

export interface BerthUp {
  child: ChildProcess;
  dir: string;
  /** Master base URL, e.g. http://127.0.0.1:40123. */
  master: string;
  /** Marathon v2 API base URL (unless --no-marathon). */
  marathon?: string;
  /** Batch API base URL (unless --no-batch). */
  batch?: string;
  /** The last 64 KiB of berth up's stderr (for failure messages). */
  stderr(): string;
  stop(): Promise<void>;
}

export interface BerthUpOptions {
  /** Extra `berth up` flags (e.g. --agents, --agent-resources, --weights). */
  args?: string[];
  /** Agents to wait for (default 2, berth up's default). */
  agents?: number;
  /** Environment additions; BERTH_LOG_LEVEL defaults to warn. */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export async function startBerthUp(opts: BerthUpOptions = {}): Promise<BerthUp> {
  const args = opts.args ?? [];
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-up-'));
  // Its own process group, so a berth up that does not stop can be killed with its agents.
  const child = spawn(process.execPath, [berthCli, 'up', '--port', '0', '--work-dir', dir, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'], detached: true, env: { ...process.env, BERTH_LOG_LEVEL: 'warn', ...opts.env },
  });
  let err = '';
  // Always drained (a full pipe would block berth up and its agents), only the tail kept.
  child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-65_536); });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 20_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const wantMarathon = !args.includes('--no-marathon');
    const wantBatch = !args.includes('--no-batch');
    const urls = await new Promise<{ master: string; marathon?: string; batch?: string }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`berth up did not come up within ${opts.timeoutMs ?? 60_000} ms:\n${err}`)), opts.timeoutMs ?? 60_000);
      const check = (): void => {
        const master = /berth is up: master (http:\/\/\S+)/.exec(err)?.[1];
        const marathon = /marathon: (http:\/\/\S+)/.exec(err)?.[1];
        const batch = /batch API at (http:\/\/\S+)/.exec(err)?.[1];
        if (master && (marathon || !wantMarathon) && (batch || !wantBatch)) {
          clearTimeout(t);
          child.stderr!.off('data', check);
          resolve({ master, ...(marathon ? { marathon } : {}), ...(batch ? { batch } : {}) });
        }
      };
      child.stderr!.on('data', check);
      child.once('exit', (code) => { clearTimeout(t); reject(new Error(`berth up exited ${code}:\n${err}`)); });
    });
    const want = opts.agents ?? 2;
    const end = Date.now() + (opts.timeoutMs ?? 60_000);
    for (;;) {
      const s = (await (await fetch(`${urls.master}/state`)).json()) as { slaves: { active: boolean }[] };
      if (s.slaves.filter((a) => a.active).length >= want) break;
      if (Date.now() > end) throw new Error(`only ${s.slaves.length} of ${want} agents registered:\n${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { child, dir, ...urls, stderr: () => err, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
