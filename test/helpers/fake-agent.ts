/**
 * A simulated agent speaking `berth.agent` over any Dialer (MemoryNetwork in
 * process, WsDialer over a real socket), plus `startCluster`: a real master on
 * a loopback port (port 0, temp work dir) with N such agents. Used by the HTTP
 * API and SDK tests and by `bench/api.ts` as "simulated agents".
 *
 * It behaves like the real agent as far as the master can tell:
 *  - registers with its resources, answers every ping with a pong;
 *  - on Launch runs the task's script (default: TASK_RUNNING at once, then
 *    TASK_FINISHED after the `sleep N` found in the command, else at once);
 *  - every update carries a fresh uuid, agent_id, executor_id, source and
 *    timestamp, and is resent every `resendMs` until the master relays its Ack
 *    (so the at-least-once path is exercised, not bypassed);
 *  - Kill → TASK_KILLED; ShutdownFramework → every task of it killed.
 * It never starts a process.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Clock, RealClock, type TimerHandle } from '../../proto/clock.js';
import { Resources } from '../../proto/resources.js';
import type { Conn, Dialer } from '../../proto/transport/types.js';
import { WsDialer } from '../../proto/transport/ws.js';
import {
  AGENT_PROTOCOL_VERSION, isTerminal,
  type AgentToMaster, type Attribute, type MasterToAgent, type Resource, type TaskInfo, type TaskState, type TaskStatus,
} from '../../proto/types.js';
import { silentLogger } from '../../proto/log.js';
import { startMaster, type RunningMaster, type StartMasterOptions } from '../../master/main.js';

/** One step of a task's life: reach `state` `afterMs` after the previous step. */
export interface TaskStep { state: TaskState; afterMs: number; message?: string }

export interface FakeAgentOptions {
  dialer: Dialer;
  hostname?: string;
  /** Mesos text form or wire resources. Default `cpus:4;mem:4096;disk:10000;ports:[31000-32000]`. */
  resources?: string | Resource[];
  attributes?: Attribute[];
  /** The life of each launched task; default `defaultScript`. `[]` or a script ending non-terminal holds it until killed. */
  script?: (task: TaskInfo) => TaskStep[];
  /** Resend an unacknowledged update after this long (default 1000 ms). */
  resendMs?: number;
  clock?: Clock;
}

export const DEFAULT_AGENT_RESOURCES = 'cpus:4;mem:4096;disk:10000;ports:[31000-32000]';

/** RUNNING at once, FINISHED after the command's `sleep N` (0 if none). */
export function defaultScript(task: TaskInfo): TaskStep[] {
  const m = /\bsleep\s+([0-9.]+)/.exec(task.command?.value ?? '');
  const ms = m ? Math.round(Number(m[1]) * 1000) : 0;
  return [{ state: 'TASK_RUNNING', afterMs: 0 }, { state: 'TASK_FINISHED', afterMs: ms, message: 'Command exited with status 0' }];
}

/** Runs until killed. */
export const holdScript = (): TaskStep[] => [{ state: 'TASK_RUNNING', afterMs: 0 }];

interface FakeTask {
  frameworkId: string;
  info: TaskInfo;
  state: TaskState;
  timer?: TimerHandle;
}

interface Unacked { frameworkId: string; status: TaskStatus; timer?: TimerHandle }

const tkey = (fid: string, tid: string): string => `${fid}\u0000${tid}`;

export class FakeAgent {
  agentId = '';
  readonly tasks = new Map<string, FakeTask>();
  /** uuid → update awaiting the master's Ack. */
  readonly unacked = new Map<string, Unacked>();
  readonly stats = { launched: 0, updatesSent: 0, resends: 0, acks: 0, kills: 0, pings: 0 };
  private conn?: Conn<MasterToAgent, AgentToMaster>;
  private readonly clock: Clock;
  private stopped = false;
  private registered?: (id: string) => void;
  private readonly launchWaiters: ((t: TaskInfo) => void)[] = [];

  private constructor(private readonly opts: FakeAgentOptions) {
    this.clock = opts.clock ?? new RealClock();
  }

  static async start(opts: FakeAgentOptions): Promise<FakeAgent> {
    const a = new FakeAgent(opts);
    await a.connect();
    return a;
  }

  get resources(): Resource[] {
    const r = this.opts.resources ?? DEFAULT_AGENT_RESOURCES;
    return typeof r === 'string' ? Resources.parse(r).toWire() : r;
  }

  private async connect(): Promise<void> {
    const conn = await this.opts.dialer.dialAgent();
    this.conn = conn;
    const done = new Promise<string>((resolve, reject) => {
      this.registered = resolve;
      conn.onClose((reason) => reject(new Error(`agent connection closed before registration: ${reason}`)));
    });
    conn.onMessage((m) => this.onMessage(m));
    const agent_info = { hostname: this.opts.hostname ?? 'localhost', port: 5051, resources: this.resources, attributes: this.opts.attributes };
    conn.send({ version: AGENT_PROTOCOL_VERSION, register: { agent_info, endpoint: `127.0.0.1:5051`, version: 'fake' } });
    this.agentId = await done;
  }

  private onMessage(m: MasterToAgent): void {
    if (this.stopped) return;
    if (m.registered) { this.registered?.(m.registered.agent_id.value); return; }
    if (m.ping) { this.stats.pings++; this.send({ version: AGENT_PROTOCOL_VERSION, pong: { seq: m.ping.seq } }); return; }
    if (m.launch) { this.launch(m.launch.framework.id?.value ?? '', m.launch.task); return; }
    if (m.kill) { this.stats.kills++; this.kill(m.kill.framework_id.value, m.kill.task_id.value); return; }
    if (m.ack) {
      const u = this.unacked.get(m.ack.uuid);
      if (u) { this.clock.clearTimeout(u.timer); this.unacked.delete(m.ack.uuid); this.stats.acks++; }
      return;
    }
    if (m.shutdown_framework) {
      const fid = m.shutdown_framework.framework_id.value;
      for (const t of [...this.tasks.values()]) if (t.frameworkId === fid) this.kill(fid, t.info.task_id.value);
    }
  }

  private send(m: AgentToMaster): void { this.conn?.send(m); }

  private launch(frameworkId: string, info: TaskInfo): void {
    this.stats.launched++;
    const t: FakeTask = { frameworkId, info, state: 'TASK_STAGING' };
    this.tasks.set(tkey(frameworkId, info.task_id.value), t);
    for (const w of this.launchWaiters.splice(0)) w(info);
    const steps = (this.opts.script ?? defaultScript)(info);
    const next = (i: number): void => {
      const step = steps[i];
      if (!step || this.stopped || isTerminal(t.state)) return;
      const fire = (): void => {
        t.timer = undefined;
        if (this.stopped || isTerminal(t.state)) return;
        this.update(t, step.state, step.message);
        next(i + 1);
      };
      // Zero delays run inline so a launch answers as fast as the wire allows (the bench relies on it).
      if (step.afterMs <= 0) fire(); else t.timer = this.clock.setTimeout(fire, step.afterMs);
    };
    next(0);
  }

  private kill(frameworkId: string, taskId: string): void {
    const t = this.tasks.get(tkey(frameworkId, taskId));
    if (!t || isTerminal(t.state)) return;
    this.clock.clearTimeout(t.timer);
    this.update(t, 'TASK_KILLED', 'Killed by the framework');
  }

  private update(t: FakeTask, state: TaskState, message?: string): void {
    t.state = state;
    if (isTerminal(state)) this.tasks.delete(tkey(t.frameworkId, t.info.task_id.value));
    const status: TaskStatus = {
      task_id: t.info.task_id, state, message, source: 'SOURCE_EXECUTOR', agent_id: { value: this.agentId },
      executor_id: { value: t.info.task_id.value }, timestamp: this.clock.now() / 1000,
      uuid: randomBytes(16).toString('base64'),
    };
    const u: Unacked = { frameworkId: t.frameworkId, status };
    this.unacked.set(status.uuid!, u);
    this.sendUpdate(u);
  }

  private sendUpdate(u: Unacked): void {
    this.stats.updatesSent++;
    this.send({ version: AGENT_PROTOCOL_VERSION, status_update: { framework_id: { value: u.frameworkId }, status: u.status } });
    u.timer = this.clock.setTimeout(() => {
      if (this.stopped || !this.unacked.has(u.status.uuid!)) return;
      this.stats.resends++;
      this.sendUpdate(u);
    }, this.opts.resendMs ?? 1000);
  }

  /** Resolves with the next task launched on this agent. */
  nextLaunch(): Promise<TaskInfo> { return new Promise((r) => this.launchWaiters.push(r)); }

  /** Number of tasks not yet terminal. */
  get running(): number { return this.tasks.size; }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.tasks.values()) this.clock.clearTimeout(t.timer);
    for (const u of this.unacked.values()) this.clock.clearTimeout(u.timer);
    this.conn?.close('fake agent stopping');
  }
}

export interface TestCluster {
  running: RunningMaster;
  url: string;
  /** `host:port` of the master. */
  hostPort: string;
  agents: FakeAgent[];
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

/** A real master on 127.0.0.1:0 with `agents` fake agents over WebSockets. Tears down fully on failure. */
export async function startCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  const workDir = await mkdtemp(path.join(tmpdir(), 'berth-test-'));
  let running: RunningMaster | undefined;
  const agents: FakeAgent[] = [];
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
      agents.push(await FakeAgent.start({ dialer, hostname: `agent-${i}`, resources: opts.resources, script: opts.script, resendMs: opts.resendMs }));
    }
    return { running, url: `http://127.0.0.1:${running.port}`, hostPort: `127.0.0.1:${running.port}`, agents, workDir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
