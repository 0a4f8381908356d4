/**
 * The simulated agent: the one stand-in for `agent/` that tests, benches and
 * the bin-packing simulator use. It speaks `berth.agent` over any Dialer (the
 * in-process MemoryNetwork, or WsDialer over a real socket) and never starts a
 * process. As far as the master can tell it is an agent:
 *  - registers (or reregisters with its tasks) with its resources and
 *    attributes; answers pings unless told not to (`answerPings = false`);
 *  - on Launch plays the task's script on the injected clock (default: RUNNING
 *    at once, FINISHED after the command's `sleep N`); `script: 'manual'` plays
 *    nothing, the test sends updates itself with `update()`;
 *  - every update carries a fresh uuid, agent_id, executor_id, source and
 *    timestamp, and is resent every `resendMs` until the master relays its Ack
 *    (the at-least-once path is exercised, not bypassed); `resendMs: 0`
 *    disables resends for a simulation that never loses messages;
 *  - Kill → TASK_KILLED; ShutdownFramework → every task of it killed.
 *
 * Bounds: `record` keeps the launches/kills/acks/shutdowns a test inspects;
 * off by default so a long simulation keeps no history.
 */
import { type Clock, RealClock, type TimerHandle } from '../proto/clock.js';
import { Resources } from '../proto/resources.js';
import type { Conn, Dialer } from '../proto/transport/types.js';
import {
  AGENT_PROTOCOL_VERSION, isTerminal,
  type AgentToMaster, type Attribute, type MasterToAgent, type Resource, type TaskInfo, type TaskState, type TaskStatus,
} from '../proto/types.js';

/** One step of a task's life: reach `state` `afterMs` after the previous step. */
export interface TaskStep { state: TaskState; afterMs: number; message?: string }

/** The life of a launched task, or 'manual' (nothing automatic). */
export type TaskScript = ((task: TaskInfo, frameworkId: string) => readonly TaskStep[]) | 'manual';

export interface SimAgentOptions {
  dialer: Dialer;
  hostname?: string;
  /** Mesos text form or wire resources. Default `cpus:4;mem:4096;disk:10000;ports:[31000-32000]`. */
  resources?: string | Resource[];
  /** Wire attributes, or a name → text map. */
  attributes?: Attribute[] | Record<string, string>;
  script?: TaskScript;
  /** Resend an unacknowledged update after this long (default 1000 ms; 0 = never). */
  resendMs?: number;
  clock?: Clock;
  /** Keep `launched`, `killed`, `acks`, `shutdowns` for inspection (default false). */
  record?: boolean;
  /** Told of every task start and end on this agent (the simulator's usage accounting). */
  observer?: TaskObserver;
  /** Called when a session that had registered closes (a leader change, a master restart). */
  onSessionClosed?: (reason: string) => void;
}

export interface TaskObserver {
  launched(agent: SimAgent, task: TaskInfo, frameworkId: string): void;
  ended(agent: SimAgent, task: TaskInfo, frameworkId: string, state: TaskState): void;
}

export const DEFAULT_AGENT_RESOURCES = 'cpus:4;mem:4096;disk:10000;ports:[31000-32000]';

/** RUNNING at once, FINISHED after the command's `sleep N` (0 if none). */
export function defaultScript(task: TaskInfo): TaskStep[] {
  const m = /\bsleep\s+([0-9.]+)/.exec(task.command?.value ?? '');
  const ms = m ? Math.round(Number(m[1]) * 1000) : 0;
  return [{ state: 'TASK_RUNNING', afterMs: 0 }, { state: 'TASK_FINISHED', afterMs: ms, message: 'Command exited with status 0' }];
}

const HOLD: TaskStep[] = [{ state: 'TASK_RUNNING', afterMs: 0 }];
Object.freeze(HOLD[0]);
Object.freeze(HOLD);
/** Runs until killed. (One shared, frozen script: a million launches need not make a million arrays.) */
export const holdScript = (): TaskStep[] => HOLD;

export interface SimTask {
  frameworkId: string;
  info: TaskInfo;
  state: TaskState;
  timer?: TimerHandle;
  /** The script still to play (dropped once played out) and the next step in it. */
  steps?: readonly TaskStep[];
  step?: number;
}

interface Unacked { frameworkId: string; status: TaskStatus; timer?: TimerHandle }

export interface ReregisterReport { tasks: { framework_id: string; task: TaskInfo; state: TaskState }[] }

const tkey = (fid: string, tid: string): string => `${fid}\u0000${tid}`;

/**
 * Deterministic status uuids: 16 bytes from a process-wide counter. Unique
 * within a process (all that acknowledgement matching needs) and free of
 * randomness, so a seeded simulation replays bit for bit.
 */
let uuidCounter = 0;
const uuidBuf = Buffer.alloc(16);
function nextUuid(): string {
  uuidCounter++;
  uuidBuf.writeUInt32BE(0x5349_4d00, 0); // "SIM\0"
  uuidBuf.writeUInt32BE(Math.floor(uuidCounter / 2 ** 32), 8);
  uuidBuf.writeUInt32BE(uuidCounter >>> 0, 12);
  return uuidBuf.toString('base64');
}

function toAttributes(a: SimAgentOptions['attributes']): Attribute[] | undefined {
  if (!a) return undefined;
  if (Array.isArray(a)) return a;
  return Object.entries(a).map(([name, value]) => ({ name, type: 'TEXT' as const, text: { value } }));
}

export class SimAgent {
  id = '';
  conn!: Conn<MasterToAgent, AgentToMaster>;
  readonly hostname: string;
  /** Tasks not yet terminal. */
  readonly tasks = new Map<string, SimTask>();
  /** uuid → update awaiting the master's Ack. */
  readonly unacked = new Map<string, Unacked>();
  readonly stats = { launched: 0, updatesSent: 0, resends: 0, acks: 0, kills: 0, pings: 0 };
  /** With `record`: what the master asked of this agent. */
  readonly launched: { framework_id: string; task: TaskInfo }[] = [];
  readonly killed: string[] = [];
  readonly acks: string[] = [];
  readonly shutdowns: string[] = [];
  answerPings = true;
  private readonly clock: Clock;
  private stopped = false;
  private registered?: (id: string) => void;
  private readonly launchWaiters: ((t: TaskInfo) => void)[] = [];
  private readonly wire: Resource[];

  constructor(private readonly opts: SimAgentOptions) {
    this.clock = opts.clock ?? new RealClock();
    this.hostname = opts.hostname ?? 'localhost';
    const r = opts.resources ?? DEFAULT_AGENT_RESOURCES;
    this.wire = typeof r === 'string' ? Resources.parse(r).toWire() : r;
  }

  /** Connects and registers; resolves with the agent id. */
  static async start(opts: SimAgentOptions): Promise<SimAgent> {
    const a = new SimAgent(opts);
    await a.connect();
    return a;
  }

  get resources(): Resource[] { return this.wire; }

  /**
   * Dials the master and registers, or reregisters under the current `id` with
   * `reregister.tasks`. Resolves once the master answered Registered.
   */
  async connect(reregister?: ReregisterReport): Promise<string> {
    this.stopped = false;
    const conn = await this.opts.dialer.dialAgent();
    this.conn = conn;
    let registeredHere = false;
    const done = new Promise<string>((resolve, reject) => {
      this.registered = (id) => { registeredHere = true; resolve(id); };
      conn.onClose((reason) => {
        if (registeredHere) this.opts.onSessionClosed?.(reason);
        else reject(new Error(`agent connection closed before registration: ${reason}`));
      });
    });
    done.catch(() => undefined); // a close after registration is not an error
    conn.onMessage((m) => this.onMessage(m));
    const agent_info = {
      hostname: this.hostname, port: 5051, resources: this.wire, attributes: toAttributes(this.opts.attributes),
      ...(reregister && this.id ? { id: { value: this.id } } : {}),
    };
    const endpoint = `${this.hostname}:5051`;
    if (reregister) {
      conn.send({
        version: AGENT_PROTOCOL_VERSION,
        reregister: {
          agent_info, endpoint, version: 'sim',
          tasks: reregister.tasks.map((t) => ({ framework_id: { value: t.framework_id }, task: t.task, state: t.state })),
        },
      });
    } else {
      conn.send({ version: AGENT_PROTOCOL_VERSION, register: { agent_info, endpoint, version: 'sim' } });
    }
    this.id = await done;
    return this.id;
  }

  private onMessage(m: MasterToAgent): void {
    if (this.stopped) return;
    if (m.registered) { this.registered?.(m.registered.agent_id.value); return; }
    if (m.ping) {
      this.stats.pings++;
      if (this.answerPings) this.send({ version: AGENT_PROTOCOL_VERSION, pong: { seq: m.ping.seq } });
      return;
    }
    if (m.launch) { this.launch(m.launch.framework.id?.value ?? '', m.launch.task); return; }
    if (m.kill) {
      this.stats.kills++;
      if (this.opts.record) this.killed.push(m.kill.task_id.value);
      this.kill(m.kill.framework_id.value, m.kill.task_id.value);
      return;
    }
    if (m.ack) {
      if (this.opts.record) this.acks.push(m.ack.uuid);
      const u = this.unacked.get(m.ack.uuid);
      if (u) { this.clock.clearTimeout(u.timer); this.unacked.delete(m.ack.uuid); this.stats.acks++; }
      return;
    }
    if (m.shutdown_framework) {
      const fid = m.shutdown_framework.framework_id.value;
      if (this.opts.record) this.shutdowns.push(fid);
      for (const t of [...this.tasks.values()]) if (t.frameworkId === fid) this.kill(fid, t.info.task_id.value);
    }
  }

  private send(m: AgentToMaster): void { this.conn?.send(m); }

  private launch(frameworkId: string, info: TaskInfo): void {
    this.stats.launched++;
    if (this.opts.record) this.launched.push({ framework_id: frameworkId, task: info });
    const t: SimTask = { frameworkId, info, state: 'TASK_STAGING' };
    this.tasks.set(tkey(frameworkId, info.task_id.value), t);
    for (const w of this.launchWaiters.splice(0)) w(info);
    this.opts.observer?.launched(this, info, frameworkId);
    const script = this.opts.script ?? defaultScript;
    if (script === 'manual') return;
    t.steps = script(info, frameworkId);
    t.step = 0;
    this.play(t);
  }

  /**
   * Plays `t`'s script from its next step: zero delays inline (so a launch answers
   * as fast as the wire allows), a positive delay by one timer. Stops at the end,
   * on a terminal state, or when the agent stops. No closure per zero-delay step.
   */
  private play(t: SimTask): void {
    for (;;) {
      const step = t.steps?.[t.step!];
      if (!step || this.stopped || isTerminal(t.state)) { t.steps = undefined; return; }
      if (step.afterMs > 0) {
        t.timer = this.clock.setTimeout(() => {
          t.timer = undefined;
          if (this.stopped || isTerminal(t.state)) return;
          t.step!++;
          this.updateTask(t, step.state, step.message);
          this.play(t);
        }, step.afterMs);
        return;
      }
      t.step!++;
      this.updateTask(t, step.state, step.message);
    }
  }

  private kill(frameworkId: string, taskId: string): void {
    const t = this.tasks.get(tkey(frameworkId, taskId));
    if (!t || isTerminal(t.state)) return;
    this.clock.clearTimeout(t.timer);
    this.updateTask(t, 'TASK_KILLED', 'Killed by the framework');
  }

  private updateTask(t: SimTask, state: TaskState, message?: string): void {
    t.state = state;
    if (isTerminal(state)) {
      this.tasks.delete(tkey(t.frameworkId, t.info.task_id.value));
      this.opts.observer?.ended(this, t.info, t.frameworkId, state);
    }
    const status: TaskStatus = {
      task_id: t.info.task_id, state, message, source: 'SOURCE_EXECUTOR', agent_id: { value: this.id },
      executor_id: { value: t.info.task_id.value }, timestamp: this.clock.now() / 1000,
      uuid: nextUuid(),
    };
    this.sendUpdate({ frameworkId: t.frameworkId, status });
  }

  /**
   * Sends a status update for any task (known or not) as the test dictates;
   * returns its uuid. `extra.uuid` resends an earlier update. Manual updates are
   * sent once (no resend timer): the test drives redelivery itself.
   */
  update(frameworkId: string, taskId: string, state: TaskState, extra: Partial<TaskStatus> = {}): string {
    const known = this.tasks.get(tkey(frameworkId, taskId));
    if (known) { known.state = state; if (isTerminal(state)) this.tasks.delete(tkey(frameworkId, taskId)); }
    const status: TaskStatus = {
      task_id: { value: taskId }, state, uuid: nextUuid(), agent_id: { value: this.id }, source: 'SOURCE_EXECUTOR',
      timestamp: this.clock.now() / 1000, ...extra,
    };
    this.send({ version: AGENT_PROTOCOL_VERSION, status_update: { framework_id: { value: frameworkId }, status } });
    return status.uuid!;
  }

  private sendUpdate(u: Unacked): void {
    this.stats.updatesSent++;
    this.send({ version: AGENT_PROTOCOL_VERSION, status_update: { framework_id: { value: u.frameworkId }, status: u.status } });
    const resendMs = this.opts.resendMs ?? 1000;
    if (resendMs <= 0) return;
    this.unacked.set(u.status.uuid!, u);
    u.timer = this.clock.setTimeout(() => {
      if (this.stopped || !this.unacked.has(u.status.uuid!)) return;
      this.stats.resends++;
      this.sendUpdate(u);
    }, resendMs);
  }

  /** Resolves with the next task launched on this agent. */
  nextLaunch(): Promise<TaskInfo> { return new Promise((r) => this.launchWaiters.push(r)); }

  /** Number of tasks not yet terminal. */
  get running(): number { return this.tasks.size; }

  /** Closes the connection, keeping the agent's tasks (a network cut or agent crash as the master sees it). */
  disconnect(): void { this.conn?.close('sim agent disconnecting'); }

  /** Stops for good: timers cancelled, connection closed. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.tasks.values()) this.clock.clearTimeout(t.timer);
    for (const u of this.unacked.values()) this.clock.clearTimeout(u.timer);
    this.conn?.close('sim agent stopping');
  }
}
