/**
 * Test harness for agent tests: a temp work dir, an in-process network with a
 * FakeMaster, an Agent on an ephemeral HTTP port, and a cleanup that leaves
 * nothing behind even when the test failed (every container destroyed, every
 * session under the work dir killed, the work dir removed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork } from '../../proto/transport/memory.js';
import type { Clock } from '../../proto/clock.js';
import { Agent, type AgentOptions } from '../../agent/agent.js';
import { PosixContainerizer } from '../../agent/containerizer/posix.js';
import { readCmdline, scanProc } from '../../agent/proc.js';
import { FakeMaster, type FakeMasterOptions } from './fake-master.js';

export interface Harness {
  workDir: string;
  net: MemoryNetwork;
  master: FakeMaster;
  agent: Agent;
  /** A fresh agent on the same work dir and network (after `agent.stop()`), for restart tests. */
  restart(extra?: Partial<AgentOptions>): Promise<Agent>;
  cleanup(): Promise<void>;
}

export function tempDir(prefix = 'berth-agent-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** SIGKILLs every process whose argv mentions `dir` (supervisors name their run dir) and its session. */
export function killEverythingUnder(dir: string): void {
  const snap = scanProc();
  const sids = new Set<number>();
  for (const st of snap.byPid.values()) {
    if (st.pid === process.pid) continue;
    if (readCmdline(st.pid).some((a) => a.includes(dir))) { sids.add(st.sid); try { process.kill(st.pid, 'SIGKILL'); } catch { /* gone */ } }
  }
  for (const sid of sids) {
    if (sid === process.pid || sid <= 1) continue;
    for (const p of snap.bySid.get(sid) ?? []) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
  }
}

/** Fatal checkpoint failures of in-process agents (a test expecting none asserts this stays empty). */
export const fatalErrors: Error[] = [];

export async function startHarness(opts: { master?: FakeMasterOptions; agent?: Partial<AgentOptions>; clock?: Clock } = {}): Promise<Harness> {
  const workDir = tempDir();
  const net = new MemoryNetwork();
  const master = new FakeMaster(net, opts.master);
  const agents: Agent[] = [];
  const make = (extra: Partial<AgentOptions> = {}): Agent => {
    const a = new Agent({
      dialer: net, workDir, httpPort: 0, clock: opts.clock,
      containerizer: new PosixContainerizer({ sampleIntervalMs: 100, pollIntervalMs: 50 }),
      detectedHost: { cpus: 4, memBytes: 8 * 2 ** 30, diskFreeBytes: 100 * 2 ** 30, gpus: 0 },
      // In-process: a fatal checkpoint failure must fail the test, not exit the runner.
      onFatal: (e) => { fatalErrors.push(e); process.stderr.write(`[harness] agent fatal: ${e.stack ?? e.message}\n`); },
      ...opts.agent, ...extra,
    });
    agents.push(a);
    return a;
  };
  const agent = make();
  const h: Harness = {
    workDir, net, master, agent,
    async restart(extra) {
      const a = make(extra);
      await a.start();
      h.agent = a;
      return a;
    },
    async cleanup() {
      for (const a of agents) await a.stop({ killTasks: true }).catch(() => undefined);
      killEverythingUnder(workDir);
      rmSync(workDir, { recursive: true, force: true });
    },
  };
  try {
    await agent.start();
  } catch (e) {
    await h.cleanup();
    throw e;
  }
  return h;
}

/** Is any process of the session led by `sid` (other than zombies) alive? */
export function sessionAlive(sid: number): boolean {
  const snap = scanProc();
  return (snap.bySid.get(sid) ?? []).some((p) => p.state !== 'Z');
}

export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); } catch { return false; }
  const st = scanProc().byPid.get(pid);
  return st !== undefined && st.state !== 'Z';
}

const runnerScript = fileURLToPath(new URL('./agent-runner.js', import.meta.url));

/**
 * Starts a real agent process (test/agent/agent-runner.ts) against `master`; resolves with its
 * HTTP endpoint once it is up. `extra` goes into the runner's options (containerizer, cgroupRoot).
 */
export function startRunner(master: string, workDir: string, extra: Record<string, unknown> = {}): Promise<{ child: ChildProcess; endpoint: string }> {
  const child = spawn(process.execPath, [runnerScript, JSON.stringify({ master, workDir, ...extra })], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (!buf.includes('\n') || !line) return;
      const msg = JSON.parse(line) as { endpoint?: string; error?: string };
      if (msg.endpoint) resolve({ child, endpoint: msg.endpoint }); else reject(new Error(msg.error));
    });
    child.once('exit', (code) => reject(new Error(`agent runner exited with ${code}`)));
  });
}
