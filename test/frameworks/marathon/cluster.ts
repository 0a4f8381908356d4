/**
 * A real cluster for the Marathon suites: a master on a loopback port (file
 * registry in a temp dir), N real agents (posix containerizer: real processes)
 * each with its own hostname `agent-<i>` and attribute `rack:r<i>`, and Berth's
 * Marathon in this process (injectable clock) or as a child process
 * (`berth marathon`, for crash tests). `stop()` removes everything, tasks included.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMaster, type RunningMaster } from '../../../master/main.js';
import { startAgent, type StartedAgent } from '../../../agent/main.js';
import { silentLogger } from '../../../proto/log.js';
import { startMarathon, type MarathonOptions, type RunningMarathon } from '../../../frameworks/marathon/main.js';

export const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../cli/main.js');

export interface MarathonCluster {
  dir: string;
  master: RunningMaster;
  agents: StartedAgent[];
  marathon?: RunningMarathon;
  /** Base URL of the Marathon API (in-process or child). */
  url: string;
  startMarathon(opts?: Partial<MarathonOptions>): Promise<RunningMarathon>;
  /** Starts `berth marathon` as a child process on the same work dir; resolves with its URL. */
  spawnMarathon(): Promise<{ child: ChildProcess; url: string }>;
  stop(): Promise<void>;
}

export async function startMarathonCluster(opts: { agents: number; resources?: string } = { agents: 3 }): Promise<MarathonCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-marathon-'));
  const master = await startMaster({ workDir: path.join(dir, 'master'), port: 0, log: silentLogger, allocationIntervalMs: 100 });
  const agents: StartedAgent[] = [];
  const children: ChildProcess[] = [];
  const c: MarathonCluster = {
    dir, master, agents, url: '',
    async startMarathon(o = {}) {
      const m = await startMarathon({ master: master.url, workDir: path.join(dir, 'marathon'), port: 0, log: silentLogger, ...o });
      c.marathon = m;
      c.url = m.url;
      return m;
    },
    async spawnMarathon() {
      const child = spawn(process.execPath, [cli, 'marathon', '--master', master.url, '--work-dir', path.join(dir, 'marathon'), '--port', '0'], {
        stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn' },
      });
      children.push(child);
      let err = '';
      const url = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`berth marathon did not start:\n${err}`)), 20_000);
        child.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          const m = /marathon at (http:\/\/\S+)/.exec(err);
          if (m) { clearTimeout(t); resolve(m[1]!); }
        });
        child.once('exit', (code) => { clearTimeout(t); reject(new Error(`berth marathon exited ${code}:\n${err}`)); });
      });
      c.url = url;
      return { child, url };
    },
    async stop() {
      for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
      await c.marathon?.stop().catch(() => undefined);
      await Promise.all(agents.map((a) => a.stop({ killTasks: true }).catch(() => undefined)));
      await master.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < opts.agents; i++) {
      agents.push(await startAgent({
        master: `127.0.0.1:${master.port}`, workDir: path.join(dir, `agent-${i}`), port: 0, containerizer: 'posix',
        hostname: `agent-${i}`, attributes: `rack:r${i}`, resources: opts.resources ?? 'cpus:2;mem:2048;disk:1000;ports:[' + (31000 + i * 1000) + '-' + (31999 + i * 1000) + ']',
        log: silentLogger,
      }));
    }
    await until(() => [...master.master.agents.values()].filter((a) => a.conn).length >= opts.agents, 10_000, 'agents registered');
  } catch (e) {
    await c.stop();
    throw e;
  }
  return c;
}

export async function until(cond: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** JSON request against the Marathon API; returns status, headers and parsed body. */
export async function api(base: string, method: string, p: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${base}${p}`, {
    method, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** The SSE reader of /v2/events (the one the bench uses too). */
export { MarathonEventStream as EventStream } from '../../../frameworks/marathon/event-stream.js';
