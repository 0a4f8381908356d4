/**
 * The Berth agent: registers this host's resources with the master, runs the
 * tasks it is sent through a Containerizer, and reports every task's state
 * changes reliably (StatusUpdateManager) — across master restarts, lost
 * links and its own crashes (Checkpoint + recovery).
 *
 * Invariants:
 *  - Tasks outlive the agent: `stop()` and a crash leave them running; a
 *    restarted agent on the same work dir re-adopts them (same pids), learns
 *    how the ones that ended meanwhile ended, and reregisters under its id.
 *  - A task is launched at most once: its checkpoint is durable before its
 *    container starts, a recovering agent never launches, and a Launch for a
 *    task the agent knows (running, terminal-unacked or recently completed) is
 *    ignored.
 *  - A terminal update is produced only after the container is destroyed, so
 *    when a framework sees it no process of the task is left.
 *  - The agent treats a master silent for 5 ping intervals as gone: it closes
 *    the link and redials with backoff and jitter, then reregisters.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { LRUCache } from 'lru-cache';
import { backoffDelay, RealClock, type Clock, type TimerHandle } from '../proto/clock.js';
import { BerthError } from '../proto/errors.js';
import { logger, type Logger } from '../proto/log.js';
import type { Conn, Dialer } from '../proto/transport/types.js';
import {
  AGENT_PROTOCOL_VERSION, isTerminal,
  type AgentInfo, type AgentToMaster, type FrameworkInfo, type KillPolicy, type MasterToAgent, type StatusUpdateMessage,
  type TaskInfo, type TaskReport, type TaskState, type TaskStatus, type TaskStatusReason, type TaskStatusSource,
} from '../proto/types.js';
import { Checkpoint, type RecoveredTask, type TaskCheckpoint } from './checkpoint.js';
import type { ContainerExit, ContainerRecord, Containerizer } from './containerizer/types.js';
import { hasExitRecord } from './containerizer/files.js';
import { SandboxFiles } from './files.js';
import { startAgentHttp, type AgentHttpServer, type MonitorEntry } from './http.js';
import { idError } from '../proto/ids.js';
import { bootId, readStat, scanProc, readCmdline } from './proc.js';
import { buildAgentInfo } from './resources.js';
import { StatusUpdateManager } from './status-update-manager.js';
import { containerSpec, killGraceMs, sandboxPath, taskLimits, validateTask } from './task-spec.js';
// [checks/fetcher] the fetcher before the container starts, checks once it runs.
import { emptyCheckStatus, probeTargetOf, startTaskChecks, type TaskChecks } from './checks/index.js';
import { fetchTaskUris, FetcherCache, type FetchLimits } from './fetcher/index.js';
import { join } from 'node:path';

export const AGENT_VERSION = '0.1.0';

/** The agent's connection state machine (Mesos: RECOVERING, DISCONNECTED, RUNNING, TERMINATING). */
export type AgentState =
  /** Reading checkpoints and re-adopting containers; not talking to any master yet. */
  | 'recovering'
  /** No link to a master; a dial is scheduled (backoff with jitter). */
  | 'disconnected'
  /** Link up, Register/Reregister sent, waiting for Registered. */
  | 'registering'
  /** Registered: launches and kills are accepted, updates flow. */
  | 'running'
  /** `stop()` was called; everything is being shut down (tasks keep running). */
  | 'terminating';

/** A task's life on this agent. */
export type TaskPhase =
  /** Checkpointed; its container is being created. */
  | 'launching'
  /** Its container is alive. */
  | 'running'
  /** A kill was received; the container is being destroyed. */
  | 'killing'
  /** A terminal update was produced; the task is kept until its ack arrives. */
  | 'terminal';

interface TaskEntry {
  frameworkId: string;
  task: TaskInfo;
  executorId: string;
  containerId: string;
  sandbox: string;
  runDir: string;
  phase: TaskPhase;
  /** Latest state produced for the task. */
  state: TaskState;
  record?: ContainerRecord;
  killRequested?: { graceMs: number };
  /** Set when the agent ended the task itself (max completion time). */
  agentReason?: { reason: TaskStatusReason; message: string };
  completionTimer?: TimerHandle;
  /** Settles once the container's end has been handled (terminal update queued). */
  exitHandled?: Promise<void>;
  /** [checks] The task's running health check / check, if it has one. */
  checks?: TaskChecks;
  /** [checks] Set when the agent killed the task for failing its health check: the terminal message. */
  unhealthyKill?: string;
  /** [fetcher] Aborts the fetch of a task killed while its URIs are fetched. */
  fetchAbort?: AbortController;
}

export interface AgentOptions {
  dialer: Dialer;
  workDir: string;
  clock?: Clock;
  /** Default: PosixContainerizer. */
  containerizer?: Containerizer;
  /** Mesos text form, overrides/extends detected resources. */
  resources?: string;
  /** Mesos text form, `rack:r1;zone:a`. */
  attributes?: string;
  hostname?: string;
  /** Address the HTTP server binds (default 127.0.0.1). */
  httpHost?: string;
  /** HTTP port; 0 = ephemeral (default 5051). */
  httpPort?: number;
  /** Corrupt checkpoint → error (default) or recover what is readable. */
  strict?: boolean;
  log?: Logger;
  /** Usage report period (default 5000 ms). */
  usageIntervalMs?: number;
  /** How long to wait for Registered before redialing (default 10000 ms). */
  registrationTimeoutMs?: number;
  /** Redial backoff: base and cap (default 1000 / 30000 ms). */
  redialBaseMs?: number;
  redialMaxMs?: number;
  /** Status update resend backoff: base and cap (default 1000 / 60000 ms). */
  updateRetryBaseMs?: number;
  updateRetryMaxMs?: number;
  /** [fetcher] Bytes the fetcher cache may hold (default 2 GiB; 0 disables the cache). */
  fetcherCacheBytes?: number;
  /** [fetcher] Per-URI size and time limits. */
  fetchLimits?: Partial<FetchLimits>;
  /** For tests: replace what the host reports (see resources.ts). */
  detectedHost?: { cpus?: number; memBytes?: number; diskFreeBytes?: number; gpus?: number };
}

const key = (fid: string, tid: string): string => `${fid}/${tid}`;

export class Agent {
  private agentState: AgentState = 'recovering';
  private agentId: string | undefined;
  private agentIdDurable: Promise<void> = Promise.resolve();
  private readonly session = randomUUID();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly checkpoint: Checkpoint;
  private readonly sum: StatusUpdateManager;
  private containerizerImpl: Containerizer | undefined;
  private readonly frameworks = new Map<string, FrameworkInfo>();
  private readonly tasks = new Map<string, TaskEntry>();
  /** Tasks whose terminal update was acknowledged: a late Launch or Kill for them is ignored. */
  private readonly completed = new LRUCache<string, { state: TaskState; at: number }>({ max: 10_000 });
  private info: AgentInfo | undefined;
  private conn: Conn<MasterToAgent, AgentToMaster> | undefined;
  private redialAttempt = 0;
  private redialTimer: TimerHandle | undefined;
  private silenceTimer: TimerHandle | undefined;
  private usageTimer: TimerHandle | undefined;
  private silenceMs: number;
  private http: AgentHttpServer | undefined;
  private httpEndpoint = '';
  private masterId: string | undefined;
  private readonly files: SandboxFiles;
  private readonly fetcherCache: FetcherCache | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.clock = opts.clock ?? new RealClock();
    this.log = opts.log ?? logger('agent');
    this.checkpoint = new Checkpoint(opts.workDir, { strict: opts.strict ?? true, log: this.log });
    this.silenceMs = opts.registrationTimeoutMs ?? 10_000;
    this.sum = new StatusUpdateManager({
      clock: this.clock,
      journal: this.checkpoint,
      send: (u) => this.sendUpdate(u),
      onClosed: (fid, tid, last) => this.forgetTask(fid, tid, last),
      baseMs: opts.updateRetryBaseMs ?? 1000,
      maxMs: opts.updateRetryMaxMs ?? 60_000,
      log: this.log,
    });
    this.fetcherCache = opts.fetcherCacheBytes === 0 ? undefined : new FetcherCache(join(opts.workDir, 'fetcher-cache'), opts.fetcherCacheBytes);
    this.files = new SandboxFiles(opts.workDir, (tid) => {
      for (const t of this.tasks.values()) if (t.task.task_id.value === tid) return t.sandbox;
      return undefined;
    });
  }

  get state(): AgentState { return this.agentState; }
  get id(): string | undefined { return this.agentId; }
  /** host:port of the agent's HTTP server ('' before start). */
  get endpoint(): string { return this.httpEndpoint; }
  get containerizer(): Containerizer {
    if (!this.containerizerImpl) throw new BerthError('CONFLICT', 'agent not started');
    return this.containerizerImpl;
  }

  /** Recovers from the work dir, starts the HTTP server and dials the master. Rejects on a corrupt checkpoint (strict). */
  async start(): Promise<void> {
    if (this.agentState !== 'recovering') throw new BerthError('CONFLICT', `agent already started (state ${this.agentState})`);
    await mkdir(this.opts.workDir, { recursive: true });
    this.containerizerImpl = this.opts.containerizer ?? new (await import('./containerizer/posix.js')).PosixContainerizer({ log: this.log.child({ component: 'posix' }) });
    await this.recover();
    this.http = await startAgentHttp({
      health: () => ({ status: 'ok', state: this.agentState, agent_id: this.agentId ?? null }),
      state: () => this.stateView(),
      statistics: () => this.statistics(),
      files: this.files,
    }, this.opts.httpHost ?? '127.0.0.1', this.opts.httpPort ?? 5051, this.log);
    this.httpEndpoint = this.http.endpoint;
    this.info = buildAgentInfo({
      workDir: this.opts.workDir, resources: this.opts.resources, attributes: this.opts.attributes,
      hostname: this.opts.hostname ?? osHostname(), port: Number(this.httpEndpoint.split(':').pop()), host: this.opts.detectedHost,
    });
    this.log.info({ containerizer: this.containerizer.kind, endpoint: this.httpEndpoint, agentId: this.agentId ?? null, tasks: this.tasks.size }, 'Agent started');
    this.agentState = 'disconnected';
    void this.dial();
  }

  /**
   * Stops the agent: closes the link, timers and HTTP server. Tasks keep running (they outlive the
   * agent) unless `killTasks` is set, which destroys every container first (for `berth up` teardown).
   */
  async stop(opts: { killTasks?: boolean } = {}): Promise<void> {
    if (this.agentState === 'terminating') return;
    const prev = this.agentState;
    this.agentState = 'terminating';
    this.clock.clearTimeout(this.redialTimer);
    this.clock.clearTimeout(this.silenceTimer);
    this.clock.clearTimeout(this.usageTimer);
    for (const t of this.tasks.values()) { this.clock.clearTimeout(t.completionTimer); t.checks?.stop(); }
    this.sum.close();
    if (opts.killTasks && this.containerizerImpl) {
      // Terminal updates of the killed tasks are checkpointed before stop returns (sent by the next run).
      await Promise.all([...this.tasks.values()].map(async (t) => {
        t.killRequested ??= { graceMs: 0 };
        await this.containerizer.destroy(t.containerId, 0).catch(() => undefined);
        await t.exitHandled;
      }));
    }
    this.conn?.close('agent stopping');
    this.conn = undefined;
    await this.http?.close();
    await this.containerizerImpl?.close();
    await this.checkpoint.close();
    this.log.info({ from: prev }, 'Agent stopped');
  }

  // ---- recovery --------------------------------------------------------------

  private async recover(): Promise<void> {
    const rec = await this.checkpoint.recover();
    const boot = bootId();
    if (rec.agent) this.agentId = rec.agent.agent_id;
    const rebooted = rec.agent !== undefined && rec.agent.boot_id !== boot;
    if (rebooted) this.log.warn({ was: rec.agent?.boot_id, now: boot }, 'Host rebooted since the last run: no container is re-adopted');
    for (const [fid, fw] of rec.frameworks) this.frameworks.set(fid, fw);
    const adopt: ContainerRecord[] = [];
    const after: (() => Promise<void>)[] = [];
    for (const rt of rec.tasks) {
      this.sum.recover(rt.frameworkId, rt.taskId, rt.updates);
      const latest = this.sum.latest(rt.frameworkId, rt.taskId);
      if (!rt.task) {
        if (rt.container) {
          // Non-strict recovery of a task whose task.json was unreadable: it cannot be managed, so it
          // must not keep running unseen. Destroy its container and tell the framework.
          const c = rt.container;
          if (c.bootId === boot) adopt.push(c);
          after.push(async () => {
            if (c.bootId === boot) await this.containerizer.destroy(c.containerId, 0);
            if (!this.sum.terminated(rt.frameworkId, rt.taskId)) {
              await this.sum.update({ framework_id: { value: rt.frameworkId }, status: this.status(rt.taskId, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_AGENT_RESTARTED', 'The task checkpoint was unreadable after an agent restart; its container was destroyed') });
            }
          });
          continue;
        }
        // A stream without a task (e.g. TASK_LOST for an unknown task): resent once connected.
        if (!this.sum.has(rt.frameworkId, rt.taskId)) await this.checkpoint.removeTask(rt.frameworkId, rt.taskId);
        continue;
      }
      const entry = this.entryFromCheckpoint(rt.task, latest?.status.state ?? 'TASK_STAGING');
      if (!this.sum.has(rt.frameworkId, rt.taskId) && latest && isTerminal(latest.status.state)) {
        // Terminal and acknowledged: the agent died while forgetting it.
        this.completed.set(key(rt.frameworkId, rt.taskId), { state: latest.status.state, at: this.clock.now() });
        await this.checkpoint.removeTask(rt.frameworkId, rt.taskId, rt.task.run_dir);
        continue;
      }
      this.tasks.set(key(entry.frameworkId, entry.task.task_id.value), entry);
      if (isTerminal(entry.state)) { entry.phase = 'terminal'; continue; }
      if (rt.container && (rebooted || rt.container.bootId !== boot)) {
        after.push(() => this.terminal(entry, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_AGENT_RESTARTED',
          `The host rebooted while the agent was down (boot id changed); the task is gone`));
      } else if (rebooted) {
        // No record (the agent died mid-launch) and a new boot: nothing of the task can be running.
        after.push(() => this.terminal(entry, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_AGENT_RESTARTED', 'The host rebooted while the agent was down; the task is gone'));
      } else if (rt.container) {
        entry.record = rt.container;
        adopt.push(rt.container);
        after.push(async () => {
          entry.phase = 'running';
          this.watch(entry);
          // Produce RUNNING if the agent died between launching and reporting it (and it still runs).
          if (entry.state === 'TASK_STAGING' || entry.state === 'TASK_STARTING') await this.updateFor(entry, 'TASK_RUNNING');
          await this.startChecks(entry);
        });
      } else {
        after.push(() => this.recoverInterruptedLaunch(entry, rt));
      }
    }
    await this.containerizer.recover(adopt);
    for (const f of after) await f();
    if (this.agentId) {
      await this.checkpoint.writeAgent({ agent_id: this.agentId, boot_id: boot });
      this.log.info({ agentId: this.agentId, tasks: this.tasks.size, adopted: adopt.length, unacked: this.sum.pendingCount(), skipped: rec.skipped.length }, 'Recovered from checkpoint');
    }
  }

  private entryFromCheckpoint(cp: TaskCheckpoint, state: TaskState): TaskEntry {
    return {
      frameworkId: cp.framework_id, task: cp.task, executorId: cp.executor_id, containerId: cp.container_id,
      sandbox: cp.sandbox, runDir: cp.run_dir, phase: 'launching', state,
    };
  }

  /**
   * The agent died after checkpointing a task but before its container record was durable. The
   * supervisor may exist (its argv names the run path, which is unique to this task): adopt it like
   * any recorded container. If none is found, its exit record (if any) tells how the task
   * ended; without one the task is reported lost. Never relaunched.
   */
  private async recoverInterruptedLaunch(entry: TaskEntry, rt: RecoveredTask): Promise<void> {
    const snap = scanProc();
    let pid = 0; let startTime = 0;
    for (const st of snap.byPid.values()) {
      if (st.sid !== st.pid || st.state === 'Z') continue;
      if (!readCmdline(st.pid).includes(entry.runDir)) continue;
      pid = st.pid; startTime = st.startTime;
      break;
    }
    const record: ContainerRecord = { containerId: entry.containerId, pid, startTime, bootId: bootId(), sandbox: entry.sandbox, runDir: entry.runDir, limits: taskLimits(entry.task) };
    this.log.warn({ task: rt.taskId, framework: rt.frameworkId, pid: pid || null }, 'Task launch was interrupted by an agent restart; recovering it');
    if (pid === 0 && !hasExitRecord(entry.runDir)) {
      await this.terminal(entry, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_AGENT_RESTARTED', 'The agent restarted while launching the task and found no trace of it running');
      return;
    }
    await this.containerizer.recover([record]);
    entry.record = record;
    if (pid !== 0) await this.checkpoint.writeContainer(entry.frameworkId, rt.taskId, record);
    entry.phase = 'running';
    this.watch(entry);
    if (entry.state === 'TASK_STAGING' || entry.state === 'TASK_STARTING') await this.updateFor(entry, 'TASK_RUNNING');
  }

  // ---- master link -----------------------------------------------------------

  private async dial(): Promise<void> {
    if (this.agentState !== 'disconnected') return;
    let conn: Conn<MasterToAgent, AgentToMaster>;
    try {
      conn = await this.opts.dialer.dialAgent();
    } catch (e) {
      this.scheduleRedial(`dial failed: ${(e as Error).message}`);
      return;
    }
    if (this.agentState !== 'disconnected') { conn.close('agent no longer dialing'); return; }
    this.conn = conn;
    this.agentState = 'registering';
    conn.onMessage((m) => this.onMessage(conn, m));
    conn.onClose((reason) => this.onClose(conn, reason));
    this.armSilence(this.opts.registrationTimeoutMs ?? 10_000);
    this.sendRegistration();
  }

  private scheduleRedial(why: string): void {
    if (this.agentState === 'terminating') return;
    this.agentState = 'disconnected';
    const delay = backoffDelay(this.redialAttempt++, this.opts.redialBaseMs ?? 1000, this.opts.redialMaxMs ?? 30_000);
    this.log.info({ why, delayMs: delay, attempt: this.redialAttempt }, 'Redialing the master');
    this.clock.clearTimeout(this.redialTimer);
    this.redialTimer = this.clock.setTimeout(() => { this.redialTimer = undefined; void this.dial(); }, delay);
  }

  private onClose(conn: Conn<MasterToAgent, AgentToMaster>, reason: string): void {
    if (conn !== this.conn) return;
    this.conn = undefined;
    this.clock.clearTimeout(this.silenceTimer);
    this.clock.clearTimeout(this.usageTimer);
    if (this.agentState === 'terminating') return;
    this.log.warn({ reason }, 'Lost the link to the master');
    this.scheduleRedial(`link closed: ${reason}`);
  }

  /** Any frame from the master proves it alive; silence past the limit means it is gone. */
  private armSilence(ms: number): void {
    this.clock.clearTimeout(this.silenceTimer);
    this.silenceTimer = this.clock.setTimeout(() => {
      this.silenceTimer = undefined;
      const conn = this.conn;
      if (!conn) return;
      this.log.warn({ silentMs: ms, state: this.agentState }, 'Master silent for too long; reconnecting');
      conn.close('master silent');
      // Memory and ws links report close asynchronously; do not wait for it to redial.
      this.onClose(conn, 'master silent');
    }, ms);
  }

  private send(msg: Omit<AgentToMaster, 'version'>): boolean {
    const conn = this.conn;
    if (!conn || conn.closed) return false;
    conn.send({ version: AGENT_PROTOCOL_VERSION, ...msg });
    return true;
  }

  private sendRegistration(): void {
    const info: AgentInfo = { ...this.info!, ...(this.agentId ? { id: { value: this.agentId } } : {}) };
    const base = { agent_info: info, endpoint: this.httpEndpoint, version: AGENT_VERSION, session: this.session };
    if (!this.agentId) {
      this.send({ register: base });
      return;
    }
    const tasks: TaskReport[] = [];
    for (const t of this.tasks.values()) {
      const r: TaskReport = { framework_id: { value: t.frameworkId }, task: t.task, state: t.state };
      const latest = this.sum.latest(t.frameworkId, t.task.task_id.value);
      if (latest) r.latest_status = latest.status;
      tasks.push(r);
    }
    const frameworks = [...this.frameworks.values()].filter((f) => [...this.tasks.values()].some((t) => t.frameworkId === f.id?.value));
    this.send({ reregister: { ...base, tasks, frameworks } });
  }

  private onMessage(conn: Conn<MasterToAgent, AgentToMaster>, m: MasterToAgent): void {
    if (conn !== this.conn || this.agentState === 'terminating') return;
    if (m.version !== AGENT_PROTOCOL_VERSION) {
      this.log.error({ version: m.version }, `Ignoring frame of protocol version ${m.version}; this agent speaks ${AGENT_PROTOCOL_VERSION}`);
      return;
    }
    if (this.agentState === 'running') this.armSilence(this.silenceMs);
    if (m.registered) return this.onRegistered(m.registered);
    if (m.ping) { this.send({ pong: { seq: m.ping.seq ?? 0 } }); return; }
    if (m.error) { this.log.error({ message: m.error.message, code: m.error.code }, 'Master reported an error'); return; }
    if (this.agentState !== 'running') {
      this.log.warn({ frame: Object.keys(m).filter((k) => k !== 'version') }, 'Ignoring frame because the agent is not registered');
      return;
    }
    if (m.launch) { void this.launch(m.launch.framework, m.launch.task); return; }
    if (m.kill) { void this.kill(m.kill.framework_id.value, m.kill.task_id.value, m.kill.kill_policy); return; }
    if (m.ack) { void this.sum.acknowledge(m.ack.framework_id.value, m.ack.task_id.value, m.ack.uuid); return; }
    if (m.shutdown_framework) { this.shutdownFramework(m.shutdown_framework.framework_id.value); return; }
    this.log.warn({ frame: Object.keys(m) }, 'Ignoring unknown frame');
  }

  private onRegistered(r: NonNullable<MasterToAgent['registered']>): void {
    if (this.agentState !== 'registering') {
      this.log.warn({ state: this.agentState }, 'Ignoring Registered because the agent is not registering');
      return;
    }
    const id = r.agent_id.value;
    if (this.agentId && this.agentId !== id) {
      this.log.warn({ was: this.agentId, now: id }, 'Master assigned a different agent id; adopting it');
    }
    if (this.agentId !== id) {
      this.agentId = id;
      this.agentIdDurable = this.checkpoint.writeAgent({ agent_id: id, boot_id: bootId() })
        .catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'Cannot checkpoint the agent id'));
    }
    this.masterId = r.master_id;
    this.silenceMs = 5 * 1000 * (r.ping_interval_seconds ?? 15);
    this.agentState = 'running';
    this.redialAttempt = 0;
    this.armSilence(this.silenceMs);
    this.log.info({ agentId: id, masterId: r.master_id, pingIntervalS: r.ping_interval_seconds }, 'Registered with the master');
    this.sum.reconnected();
    this.scheduleUsage();
  }

  private sendUpdate(u: StatusUpdateMessage): boolean {
    if (this.agentState !== 'running') return false;
    return this.send({ status_update: u });
  }

  // ---- tasks -----------------------------------------------------------------

  /** Handles a Launch. Public so tests and an in-process master can drive it; normally called from the link. */
  async launch(framework: FrameworkInfo, task: TaskInfo): Promise<void> {
    const fid = framework.id?.value ?? '';
    const tid = task.task_id?.value ?? '';
    const idErr = idError('framework id', fid) ?? idError('task_id', tid);
    if (idErr) {
      // Nothing can be checkpointed under an unsafe id: answer once, best effort.
      this.log.error({ framework: fid, task: tid, err: idErr }, 'Rejecting launch with an invalid id');
      this.send({ status_update: { framework_id: { value: fid }, status: this.status(tid, 'TASK_ERROR', 'SOURCE_AGENT', 'REASON_TASK_INVALID', idErr) } });
      return;
    }
    const k = key(fid, tid);
    if (this.tasks.has(k) || this.completed.has(k) || this.sum.has(fid, tid)) {
      this.log.warn({ framework: fid, task: tid }, 'Ignoring launch because the task is already known to this agent');
      return;
    }
    const containerId = randomUUID();
    const entry: TaskEntry = {
      frameworkId: fid, task, executorId: tid, containerId,
      sandbox: sandboxPath(this.opts.workDir, fid, tid, containerId),
      runDir: this.checkpoint.runDir(containerId), phase: 'launching', state: 'TASK_STAGING',
    };
    this.tasks.set(k, entry);
    const invalid = validateTask(framework, task);
    if (invalid) {
      this.log.warn({ framework: fid, task: tid, err: invalid }, 'Rejecting invalid task');
      await this.terminal(entry, 'TASK_ERROR', 'SOURCE_AGENT', 'REASON_TASK_INVALID', invalid);
      return;
    }
    await this.agentIdDurable;
    const fwChanged = JSON.stringify(this.frameworks.get(fid)) !== JSON.stringify(framework);
    this.frameworks.set(fid, framework);
    // One batch of the checkpoint log carries the framework, the task and its STARTING (and those
    // of every other task launched meanwhile). The agent's process creates no file of the launch:
    // the containerizer makes the sandbox (normally the supervisor does, on its own core), and the
    // supervisor writes its exit record next to the others in meta/runs/ (see checkpoint.ts).
    const prepared = Promise.all([
      fwChanged ? this.checkpoint.writeFramework(framework) : undefined,
      this.checkpoint.writeTask({ framework_id: fid, executor_id: tid, container_id: containerId, sandbox: entry.sandbox, run_dir: entry.runDir, task }),
    ]);
    const starting = this.updateFor(entry, 'TASK_STARTING');
    try {
      await prepared;
    } catch (e) {
      await starting;
      await this.terminal(entry, 'TASK_FAILED', 'SOURCE_AGENT', 'REASON_CONTAINER_LAUNCH_FAILED', `Cannot checkpoint the task: ${(e as Error).message}`);
      return;
    }
    if (entry.killRequested) {
      await starting;
      await this.terminal(entry, 'TASK_KILLED', 'SOURCE_AGENT', 'REASON_TASK_KILLED_DURING_LAUNCH', 'Task killed before it was launched');
      return;
    }
    // [fetcher] URIs land in the sandbox before the command starts; a failed fetch fails the task.
    if ((task.command?.uris ?? []).length > 0) {
      entry.fetchAbort = new AbortController();
      try {
        await fetchTaskUris(task, entry.sandbox, { cache: this.fetcherCache, limits: this.opts.fetchLimits, signal: entry.fetchAbort.signal, log: this.log.child({ task: tid }) });
      } catch (e) {
        await starting;
        if (entry.killRequested) await this.terminal(entry, 'TASK_KILLED', 'SOURCE_AGENT', 'REASON_TASK_KILLED_DURING_LAUNCH', 'Task killed while its URIs were fetched');
        else await this.terminal(entry, 'TASK_FAILED', 'SOURCE_AGENT', 'REASON_FETCHER_FAILED', (e as Error).message);
        return;
      }
      if (entry.killRequested) {
        await starting;
        await this.terminal(entry, 'TASK_KILLED', 'SOURCE_AGENT', 'REASON_TASK_KILLED_DURING_LAUNCH', 'Task killed before it was launched');
        return;
      }
    }
    let record: ContainerRecord;
    try {
      record = await this.containerizer.launch(containerSpec({
        frameworkId: fid, agentId: this.agentId ?? '', executorId: tid, containerId, sandbox: entry.sandbox,
        hostname: this.info?.hostname ?? osHostname(), task, runDir: entry.runDir,
      }));
    } catch (e) {
      await starting;
      await this.terminal(entry, 'TASK_FAILED', 'SOURCE_AGENT', 'REASON_CONTAINER_LAUNCH_FAILED', `Failed to launch the container: ${(e as Error).message}`);
      return;
    }
    entry.record = record;
    const recorded = this.checkpoint.writeContainer(fid, tid, record)
      .catch((e: unknown) => this.log.error({ task: tid, err: (e as Error).message }, 'Cannot checkpoint the container record'));
    entry.phase = 'running';
    // RUNNING is queued before the watcher can queue a terminal update: the stream keeps call order,
    // so even a task that exits at once reports STARTING, RUNNING, then its end.
    const running = entry.killRequested ? undefined : this.updateFor(entry, 'TASK_RUNNING');
    this.watch(entry);
    if (!entry.killRequested) await this.startChecks(entry);
    const maxNs = task.max_completion_time?.nanoseconds;
    if (maxNs !== undefined) {
      entry.completionTimer = this.clock.setTimeout(() => {
        entry.agentReason = { reason: 'REASON_MAX_COMPLETION_TIME_REACHED', message: `Task exceeded its max completion time of ${Number(maxNs) / 1e9} s` };
        void this.destroyTask(entry, killGraceMs(task));
      }, Number(maxNs) / 1e6);
    }
    // A kill may have arrived while the container started (TS narrowed it away: re-read it widened).
    const killRequested = entry.killRequested as TaskEntry['killRequested'];
    if (killRequested) void this.destroyTask(entry, killRequested.graceMs);
    await Promise.all([recorded, starting, running]);
  }

  /** Handles a Kill. Public for the same reason as `launch`. */
  async kill(fid: string, tid: string, policy?: KillPolicy): Promise<void> {
    const k = key(fid, tid);
    const entry = this.tasks.get(k);
    if (!entry) {
      if (this.completed.has(k) || this.sum.has(fid, tid)) {
        this.log.info({ framework: fid, task: tid }, 'Ignoring kill because the task already ended');
        return;
      }
      if (idError('framework id', fid) || idError('task_id', tid)) {
        this.log.warn({ framework: fid, task: tid }, 'Ignoring kill of a task with an invalid id');
        return;
      }
      // Tell the framework: it believes the task exists here, the agent has never heard of it.
      this.log.warn({ framework: fid, task: tid }, 'Kill for an unknown task; answering TASK_LOST');
      await this.sum.update({ framework_id: { value: fid }, status: this.status(tid, 'TASK_LOST', 'SOURCE_AGENT', 'REASON_TASK_UNKNOWN', 'Task unknown to the agent') });
      return;
    }
    const graceMs = killGraceMs(entry.task, policy);
    switch (entry.phase) {
      case 'launching':
        entry.killRequested = { graceMs };
        entry.fetchAbort?.abort();
        return;
      case 'running':
        entry.killRequested = { graceMs };
        await this.destroyTask(entry, graceMs);
        return;
      case 'killing':
        // A second kill may shorten the grace period (escalation), as in Mesos.
        if (entry.killRequested && graceMs < entry.killRequested.graceMs) {
          entry.killRequested.graceMs = graceMs;
          await this.containerizer.destroy(entry.containerId, graceMs);
        }
        return;
      case 'terminal':
        this.log.info({ framework: fid, task: tid }, 'Ignoring kill because the task is already terminal');
        return;
      default:
        assertNever(entry.phase);
    }
  }

  /** [checks] Starts the task's health check / check once it runs; results become TASK_RUNNING updates. */
  private async startChecks(entry: TaskEntry): Promise<void> {
    const task = entry.task;
    if ((!task.health_check && !task.check) || entry.phase !== 'running' || !entry.record) return;
    const env = containerSpec({
      frameworkId: entry.frameworkId, agentId: this.agentId ?? '', executorId: entry.executorId, containerId: entry.containerId,
      sandbox: entry.sandbox, hostname: this.info?.hostname ?? osHostname(), task, runDir: entry.runDir,
    }).env;
    const target = await probeTargetOf(task, { ...entry.record, env, sandbox: entry.sandbox });
    entry.checks = startTaskChecks(task, target, {
      emit: (u) => { if (entry.phase === 'running') void this.updateFor(entry, 'TASK_RUNNING', 'SOURCE_EXECUTOR', u.reason, u.message); },
      kill: (message) => {
        if (entry.phase !== 'running') return;
        this.log.warn({ task: task.task_id.value, message }, 'Killing an unhealthy task');
        entry.unhealthyKill = message;
        entry.killRequested = { graceMs: killGraceMs(task) };
        void this.destroyTask(entry, entry.killRequested.graceMs);
      },
    }, { clock: this.clock, log: this.log });
  }

  private async destroyTask(entry: TaskEntry, graceMs: number): Promise<void> {
    if (entry.phase !== 'running') return;
    entry.phase = 'killing';
    const fw = this.frameworks.get(entry.frameworkId);
    if (fw?.capabilities?.some((c) => c.type === 'TASK_KILLING_STATE')) void this.updateFor(entry, 'TASK_KILLING');
    await this.containerizer.destroy(entry.containerId, graceMs);
  }

  private shutdownFramework(fid: string): void {
    this.log.info({ framework: fid }, 'Shutting down framework');
    for (const t of this.tasks.values()) if (t.frameworkId === fid) void this.kill(fid, t.task.task_id.value);
  }

  private watch(entry: TaskEntry): void {
    entry.exitHandled = this.containerizer.wait(entry.containerId).then(
      (exit) => this.onExit(entry, exit),
      (e: unknown) => this.onExit(entry, { exitCode: null, signal: null, reason: 'REASON_EXECUTOR_TERMINATED', message: `lost track of the container: ${(e as Error).message}` }),
    ).catch((e: unknown) => this.log.error({ task: entry.task.task_id.value, err: (e as Error).message }, 'Failed to report task exit'));
  }

  private async onExit(entry: TaskEntry, exit: ContainerExit): Promise<void> {
    if (entry.phase === 'terminal') return;
    this.clock.clearTimeout(entry.completionTimer);
    entry.checks?.stop();
    // No process of the task may outlive its terminal update (leftover children included).
    await this.containerizer.destroy(entry.containerId, 0);
    const after = exit.recovered ? ' (observed after an agent restart)' : '';
    let state: TaskState; let reason: TaskStatusReason | undefined; let message: string; let source: TaskStatusSource = 'SOURCE_EXECUTOR';
    if (exit.reason === 'REASON_CONTAINER_LIMITATION_MEMORY') {
      state = 'TASK_FAILED'; reason = exit.reason; source = 'SOURCE_AGENT'; message = exit.message ?? 'Memory limit exceeded';
    } else if (entry.agentReason) {
      state = 'TASK_FAILED'; reason = entry.agentReason.reason; source = 'SOURCE_AGENT'; message = entry.agentReason.message;
    } else if (entry.unhealthyKill) {
      // Mesos' executors: a task killed for failing its health check ends TASK_KILLED with healthy=false.
      state = 'TASK_KILLED'; source = 'SOURCE_AGENT'; message = entry.unhealthyKill;
    } else if (entry.killRequested) {
      state = 'TASK_KILLED'; message = `Task killed${exit.signal ? ` (${exit.signal})` : ''}`;
    } else if (exit.exitCode === 0) {
      state = 'TASK_FINISHED'; message = 'Command exited with status 0';
    } else if (exit.exitCode !== null) {
      state = 'TASK_FAILED'; reason = 'REASON_COMMAND_EXECUTOR_FAILED'; message = `Command exited with status ${exit.exitCode}`;
    } else if (exit.signal !== null) {
      state = 'TASK_FAILED'; reason = 'REASON_COMMAND_EXECUTOR_FAILED'; message = `Command terminated with signal ${exit.signal}`;
    } else {
      state = 'TASK_FAILED'; reason = 'REASON_EXECUTOR_TERMINATED'; source = 'SOURCE_AGENT'; message = exit.message ?? 'The task ended without an exit status';
    }
    await this.terminal(entry, state, source, reason, message + after);
  }

  /** Produces a task's terminal update (once). */
  private async terminal(entry: TaskEntry, state: TaskState, source: TaskStatusSource, reason: TaskStatusReason | undefined, message: string): Promise<void> {
    if (entry.phase === 'terminal') return;
    entry.phase = 'terminal';
    this.clock.clearTimeout(entry.completionTimer);
    entry.checks?.stop();
    await this.updateFor(entry, state, source, reason, message);
  }

  private async updateFor(entry: TaskEntry, state: TaskState, source: TaskStatusSource = 'SOURCE_EXECUTOR', reason?: TaskStatusReason, message?: string): Promise<void> {
    entry.state = state;
    const status = this.status(entry.task.task_id.value, state, source, reason, message);
    status.executor_id = { value: entry.executorId };
    // [checks] The last known health and check status ride on every update once the task runs (Mesos).
    const check = entry.task.check;
    if (entry.checks?.healthy !== undefined) status.healthy = entry.checks.healthy;
    if (check && state !== 'TASK_STAGING' && state !== 'TASK_STARTING') status.check_status = entry.checks?.checkStatus ?? emptyCheckStatus(check);
    try {
      await this.sum.update({ framework_id: { value: entry.frameworkId }, status });
    } catch (e) {
      this.log.error({ task: entry.task.task_id.value, state, err: (e as Error).message }, 'Cannot checkpoint a status update');
    }
  }

  private status(tid: string, state: TaskState, source: TaskStatusSource, reason?: TaskStatusReason, message?: string): TaskStatus {
    const s: TaskStatus = { task_id: { value: tid }, state, source, timestamp: this.clock.now() / 1000 };
    if (this.agentId) s.agent_id = { value: this.agentId };
    if (reason) s.reason = reason;
    if (message) s.message = message;
    return s;
  }

  /** The terminal update was acknowledged: forget the task (its sandbox stays for reading). */
  private forgetTask(fid: string, tid: string, last: StatusUpdateMessage): void {
    const k = key(fid, tid);
    const entry = this.tasks.get(k);
    this.tasks.delete(k);
    this.completed.set(k, { state: last.status.state, at: this.clock.now() });
    const cz = this.containerizerImpl as (Containerizer & { forget?: (id: string) => void }) | undefined;
    if (entry) cz?.forget?.(entry.containerId);
    this.checkpoint.removeTask(fid, tid, entry?.runDir).catch((e: unknown) => this.log.warn({ task: tid, err: (e as Error).message }, 'Cannot remove task checkpoint'));
  }

  // ---- usage and views -------------------------------------------------------

  private scheduleUsage(): void {
    this.clock.clearTimeout(this.usageTimer);
    this.usageTimer = this.clock.setTimeout(() => {
      this.usageTimer = undefined;
      void this.reportUsage().finally(() => { if (this.agentState === 'running') this.scheduleUsage(); });
    }, this.opts.usageIntervalMs ?? 5000);
  }

  private async reportUsage(): Promise<void> {
    const entries = await this.statistics();
    if (entries.length === 0) return;
    this.send({ usage: { containers: entries.map((e) => ({ framework_id: { value: e.framework_id }, task_id: { value: e.executor_id }, statistics: e.statistics })) } });
  }

  /** Usage of every live container, Mesos `/monitor/statistics` shape. */
  async statistics(): Promise<MonitorEntry[]> {
    const live = [...this.tasks.values()].filter((t) => t.phase === 'running' || t.phase === 'killing');
    const out = await Promise.all(live.map(async (t): Promise<MonitorEntry | undefined> => {
      try {
        return { framework_id: t.frameworkId, executor_id: t.executorId, source: t.task.task_id.value, statistics: await this.containerizer.usage(t.containerId) };
      } catch {
        return undefined;
      }
    }));
    return out.filter((x): x is MonitorEntry => x !== undefined);
  }

  /** Pid of a task's supervisor (the container's pid), for tests and /state. */
  taskPid(fid: string, tid: string): number | undefined {
    return this.tasks.get(key(fid, tid))?.record?.pid;
  }

  /** Number of unacknowledged status updates. */
  get unackedUpdates(): number { return this.sum.pendingCount(); }

  stateView(): Record<string, unknown> {
    return {
      id: this.agentId ?? null,
      state: this.agentState,
      version: AGENT_VERSION,
      hostname: this.info?.hostname,
      endpoint: this.httpEndpoint,
      master_id: this.masterId ?? null,
      containerizer: this.containerizerImpl?.kind,
      work_dir: this.opts.workDir,
      boot_id: bootId(),
      resources: this.info?.resources ?? [],
      attributes: this.info?.attributes ?? [],
      unacknowledged_updates: this.sum.pendingCount(),
      frameworks: [...this.frameworks.values()].map((f) => ({ id: f.id?.value, name: f.name, user: f.user })),
      tasks: [...this.tasks.values()].map((t) => ({
        id: t.task.task_id.value, name: t.task.name, framework_id: t.frameworkId, executor_id: t.executorId,
        state: t.state, phase: t.phase, container_id: t.containerId, pid: t.record?.pid ?? null, sandbox: t.sandbox,
        resources: t.task.resources ?? [],
        alive: t.record ? readStat(t.record.pid)?.startTime === t.record.startTime : false,
      })),
    };
  }
}

export function assertNever(x: never): never {
  throw new BerthError('INVALID', `unexpected value ${String(x)}`);
}
