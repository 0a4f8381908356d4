/**
 * `startCluster`: a real master on a loopback port (port 0, temp work dir)
 * with N simulated agents (sim/agent.ts) dialing it over WebSockets. Used by
 * the HTTP API and SDK tests and by `bench/api.ts`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Resource, TaskInfo } from '../../proto/types.js';
import { WsDialer } from '../../proto/transport/ws.js';
import { silentLogger } from '../../proto/log.js';
import { startMaster, type RunningMaster, type StartMasterOptions } from '../../master/main.js';
import { SimAgent, type TaskStep } from '../../sim/agent.js';

export { SimAgent, defaultScript, holdScript, type TaskStep, DEFAULT_AGENT_RESOURCES } from '../../sim/agent.js';

export interface TestCluster {
  running: RunningMaster;
  url: string;
  /** `host:port` of the master. */
  hostPort: string;
  agents: SimAgent[];
  workDir: string;
  /** Stops agents and master and removes the work dir; safe to call twice. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  agents?: number;
  resources?: string | Resource[];
  script?: (task: TaskInfo) => TaskStep[];
  master?: Partial<StartMasterOptions>;
  resendMs?: number;
}

/** A real master on 127.0.0.1:0 with `agents` simulated agents over WebSockets. Tears down fully on failure. */
export async function startCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  const workDir = await mkdtemp(path.join(tmpdir(), 'berth-test-'));
  let running: RunningMaster | undefined;
  const agents: SimAgent[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const a of agents) a.stop();
    await running?.stop().catch(() => undefined);
    await rm(workDir, { recursive: true, force: true });
  };
  try {
    running = await startMaster({ workDir, port: 0, host: '127.0.0.1', log: silentLogger, ...opts.master });
    const dialer = new WsDialer(`127.0.0.1:${running.port}`);
    for (let i = 0; i < (opts.agents ?? 1); i++) {
      agents.push(await SimAgent.start({ dialer, hostname: `agent-${i}`, resources: opts.resources, script: opts.script, resendMs: opts.resendMs }));
    }
    return { running, url: `http://127.0.0.1:${running.port}`, hostPort: `127.0.0.1:${running.port}`, agents, workDir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
