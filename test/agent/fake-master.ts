import { userInfo } from 'node:os';
/**
 * A scripted master for agent tests: accepts agent links on any MasterListener
 * (MemoryNetwork in-process, WsListener for agents in child processes),
 * answers Register/Reregister, records every frame, and lets a test send
 * launch/kill/ack/ping and choose whether updates are acknowledged.
 */
import type { Conn, MasterListener } from '../../proto/transport/types.js';
import type { AgentToMaster, FrameworkInfo, MasterToAgent, StatusUpdateMessage, TaskInfo, TaskState } from '../../proto/types.js';

export interface FakeMasterOptions {
  /** Acknowledge every update as it arrives (default true). */
  autoAck?: boolean;
  pingIntervalSeconds?: number;
  /** Agent id handed out to agents that register without one. */
  agentId?: string;
}

export interface Received<T> { at: number; msg: T }

/** Its user is the agent's own: tasks run as FrameworkInfo.user when CommandInfo.user is absent (Mesos). */
export const FRAMEWORK: FrameworkInfo = { user: userInfo().username, name: 'fake-framework', id: { value: 'fw-1' } };

export class FakeMaster {
  conn: Conn<AgentToMaster, MasterToAgent> | undefined;
  autoAck: boolean;
  readonly frames: AgentToMaster[] = [];
  readonly registrations: AgentToMaster[] = [];
  readonly updates: Received<StatusUpdateMessage>[] = [];
  private readonly opts: FakeMasterOptions;
  /** Optional clock for `at` stamps (ManualClock tests). */
  now: () => number = () => Date.now();

  constructor(listener: MasterListener, opts: FakeMasterOptions = {}) {
    this.opts = opts;
    this.autoAck = opts.autoAck ?? true;
    listener.onAgent((c) => this.accept(c));
  }

  private accept(c: Conn<AgentToMaster, MasterToAgent>): void {
    this.conn = c;
    c.onMessage((m) => {
      this.frames.push(m);
      if (m.register || m.reregister) {
        this.registrations.push(m);
        const id = m.reregister?.agent_info.id?.value ?? this.opts.agentId ?? 'agent-1';
        c.send({ version: 1, registered: { agent_id: { value: id }, ping_interval_seconds: this.opts.pingIntervalSeconds ?? 15, master_id: 'fake-master' } });
      }
      if (m.status_update) {
        this.updates.push({ at: this.now(), msg: m.status_update });
        if (this.autoAck) this.ack(m.status_update);
      }
    });
  }

  send(m: Omit<MasterToAgent, 'version'>): void {
    if (!this.conn) throw new Error('no agent connected');
    this.conn.send({ version: 1, ...m });
  }

  launch(task: TaskInfo, framework: FrameworkInfo = FRAMEWORK): void { this.send({ launch: { framework, task } }); }

  kill(taskId: string, graceMs?: number, fid = FRAMEWORK.id!.value): void {
    this.send({ kill: { framework_id: { value: fid }, task_id: { value: taskId }, ...(graceMs === undefined ? {} : { kill_policy: { grace_period: { nanoseconds: graceMs * 1e6 } } }) } });
  }

  ack(u: StatusUpdateMessage): void {
    this.send({ ack: { framework_id: u.framework_id, task_id: u.status.task_id, uuid: u.status.uuid! } });
  }

  /** States received for a task, in arrival order (duplicates included). */
  states(taskId: string): TaskState[] {
    return this.updates.filter((u) => u.msg.status.task_id.value === taskId).map((u) => u.msg.status.state);
  }

  /** States received for a task, deduplicated by uuid (what a framework would see). */
  uniqueStates(taskId: string): TaskState[] {
    const seen = new Set<string>();
    const out: TaskState[] = [];
    for (const u of this.updates) {
      if (u.msg.status.task_id.value !== taskId || seen.has(u.msg.status.uuid!)) continue;
      seen.add(u.msg.status.uuid!);
      out.push(u.msg.status.state);
    }
    return out;
  }

  last(taskId: string): StatusUpdateMessage | undefined {
    for (let i = this.updates.length - 1; i >= 0; i--) if (this.updates[i]!.msg.status.task_id.value === taskId) return this.updates[i]!.msg;
    return undefined;
  }
}

let seq = 0;
export function commandTask(id: string, command: string, opts: { cpus?: number; mem?: number; disk?: number; ports?: [number, number][]; env?: Record<string, string>; graceMs?: number } = {}): TaskInfo {
  const resources: TaskInfo['resources'] = [
    { name: 'cpus', type: 'SCALAR', scalar: { value: opts.cpus ?? 0.1 } },
    { name: 'mem', type: 'SCALAR', scalar: { value: opts.mem ?? 32 } },
  ];
  if (opts.disk) resources.push({ name: 'disk', type: 'SCALAR', scalar: { value: opts.disk } });
  if (opts.ports) resources.push({ name: 'ports', type: 'RANGES', ranges: { range: opts.ports.map(([begin, end]) => ({ begin, end })) } });
  const t: TaskInfo = {
    name: `task-${++seq}`, task_id: { value: id }, agent_id: { value: 'agent-1' }, resources,
    command: { shell: true, value: command, ...(opts.env ? { environment: { variables: Object.entries(opts.env).map(([name, value]) => ({ name, value })) } } : {}) },
  };
  if (opts.graceMs !== undefined) t.kill_policy = { grace_period: { nanoseconds: opts.graceMs * 1e6 } };
  return t;
}

/** Polls `pred` every 10 ms (real time) until true; throws with `what` after `timeoutMs`. */
export async function waitFor(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Lets queued microtasks and I/O callbacks run (for ManualClock tests). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
