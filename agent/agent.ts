/**
 * The Berth agent: registers this host's resources with the master, runs the
 * tasks it is sent through a Containerizer, and reports every task's state
 * changes reliably (StatusUpdateManager) — across master restarts, lost
 * links and its own crashes (Checkpoint + recovery).
 *
 * This file is the wiring only; each concept has its own home:
 *   master-link.ts     the link to the master (state machine: dial, register, liveness, redial)
 *   recovery.ts        rebuilding tasks and streams from the checkpoint, re-adopting containers
 *   task-lifecycle.ts  launch, kill, watch, end of each task (+ the hook seams, task-hooks.ts)
 *   state-view.ts      /state and /monitor/statistics
 *   proc.ts            the one /proc reader
 *
 * Invariants:
 *  - Tasks outlive the agent: `stop()` and a crash leave them running; a restarted agent on the
 *    same work dir re-adopts them (same pids), learns how the ones that ended meanwhile ended,
 *    and reregisters under its id.
 *  - Durable before visible: a failed checkpoint write is fatal (`onFatal`, by default the
 *    process exits and a restart recovers). Nothing the write would have made durable — a
 *    terminal update, a container record — is ever sent.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { idError } from '../proto/ids.js';
import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import { RealClock, type Clock, type TimerHandle } from '../proto/clock.js';
import { BerthError } from '../proto/errors.js';
import { logger, type Logger } from '../proto/log.js';
import type { Dialer } from '../proto/transport/types.js';
import type { AgentInfo, FrameworkInfo, KillPolicy, MasterToAgent, TaskInfo, TaskReport } from '../proto/types.js';
import { Checkpoint } from './checkpoint.js';
import type { Containerizer } from './containerizer/types.js';
import { SandboxFiles } from './files.js';
import { SandboxGc } from './gc.js';
import { startAgentHttp, type AgentHttpAuth, type AgentHttpServer, type MonitorEntry, type ViewFilter } from './http.js';
import { MasterLink, type AgentState, type Registered, type Registration } from './master-link.js';
import { bootId } from './proc.js';
import { recoverAgent } from './recovery.js';
import { buildAgentInfo } from './resources.js';
import { AGENT_VERSION, statistics, stateView } from './state-view.js';
import { StatusUpdateManager } from './status-update-manager.js';
import { composeHooks, type TaskHooks } from './task-hooks.js';
import { fetcherHooks } from './fetcher/hooks.js';
import { checkHooks } from './checks/hooks.js';
import { TaskLifecycle, taskKey, type TaskEntry } from './task-lifecycle.js';

export { AGENT_VERSION } from './state-view.js';
export type { AgentState } from './master-link.js';
export type { TaskPhase } from './task-lifecycle.js';
export { assertNever } from './task-lifecycle.js';

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
  /** Authentication and ACLs of the HTTP endpoints (default: open, for loopback). */
  httpAuth?: AgentHttpAuth;
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
  /** For tests: replace what the host reports (see resources.ts). */
  detectedHost?: { cpus?: number; memBytes?: number; diskFreeBytes?: number; gpus?: number };
  /** Sandboxes of finished tasks are removed this long after the end (default one week). */
  gcDelayMs?: number;
  /** Fraction of the work dir's filesystem in use above which finished sandboxes go sooner (default 0.9). */
  diskWatermarkGc?: number;
  /** How often the sandbox GC runs (default one minute). */
  gcCheckMs?: number;
  /** Tests: the GC's own clock (ages of finished sandboxes), apart from the link's timers. */
  gcClock?: Clock;
  /** How often running tasks' sandboxes are measured against their `disk` (default 15 s). */
  diskCheckMs?: number;
  /** The task lifecycle's seams (fetcher, health checks): see task-hooks.ts. */
  hooks?: TaskHooks;
  /**
   * A checkpoint write failed: the agent can no longer make anything durable. Default: log and
   * exit the process with status 70 so a service manager (or `berth up`) restarts it to recover.
   */
  onFatal?: (err: Error) => void;
}

export class Agent {
  private agentId: string | undefined;
  private agentIdDurable: Promise<void> = Promise.resolve();
  private readonly session = randomUUID();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly checkpoint: Checkpoint;
  private readonly sum: StatusUpdateManager;
  private readonly link: MasterLink;
  private readonly lifecycle: TaskLifecycle;
  private containerizerImpl: Containerizer | undefined;
  private readonly frameworks = new Map<string, FrameworkInfo>();
  private info: AgentInfo | undefined;
  private usageTimer: TimerHandle | undefined;
  private http: AgentHttpServer | undefined;
  private httpEndpoint = '';
  private readonly files: SandboxFiles;
  private fatalError: Error | undefined;
  /** Sandboxes of finished tasks (see gc.ts). */
  readonly gc: SandboxGc;

  constructor(private readonly opts: AgentOptions) {
    this.clock = opts.clock ?? new RealClock();
    this.log = opts.log ?? logger('agent');
    this.checkpoint = new Checkpoint(opts.workDir, { strict: opts.strict ?? true, log: this.log, onFatal: (e) => this.fatal(e) });
    this.sum = new StatusUpdateManager({
      clock: this.clock,
      journal: this.checkpoint,
      send: (u) => this.link.sendRegistered({ status_update: u }),
      onClosed: (fid, tid, last) => this.forgetTask(fid, tid, last),
      baseMs: opts.updateRetryBaseMs ?? 1000,
      maxMs: opts.updateRetryMaxMs ?? 60_000,
      log: this.log,
    });
    this.link = new MasterLink({
      dialer: opts.dialer, clock: this.clock, log: this.log,
      registration: () => this.registration(),
      onRegistered: (r) => this.onRegistered(r),
      onFrame: (m) => this.onFrame(m),
      registrationTimeoutMs: opts.registrationTimeoutMs, redialBaseMs: opts.redialBaseMs, redialMaxMs: opts.redialMaxMs,
    });
    this.link.onState((s) => { if (s !== 'running') this.clock.clearTimeout(this.usageTimer); });
    this.lifecycle = new TaskLifecycle({
      workDir: opts.workDir, clock: this.clock, log: this.log, checkpoint: this.checkpoint, sum: this.sum,
      containerizer: () => this.containerizer, frameworks: this.frameworks,
      agentId: () => this.agentId, agentIdDurable: () => this.agentIdDurable, hostname: () => this.info?.hostname,
      sendUnreliable: (u) => { this.link.send({ status_update: u }); },
      // Mesos-native by default: the URI fetcher before a task starts, its checks once it runs.
      hooks: opts.hooks ?? composeHooks(
        fetcherHooks({ workDir: opts.workDir, log: this.log.child({ component: 'fetcher' }) }),
        checkHooks({ clock: this.clock, log: this.log.child({ component: 'checks' }), hostname: () => this.info?.hostname }),
      ),
      diskCheckMs: opts.diskCheckMs,
    });
    this.gc = new SandboxGc({
      workDir: opts.workDir, clock: opts.gcClock ?? this.clock, log: this.log,
      delayMs: opts.gcDelayMs, watermark: opts.diskWatermarkGc, checkMs: opts.gcCheckMs,
    });
    this.files = new SandboxFiles(opts.workDir, (tid) => {
      for (const t of this.lifecycle.tasks.values()) if (t.task.task_id.value === tid) return t.sandbox;
      return finishedSandbox(opts.workDir, tid);
    });
  }

  get state(): AgentState { return this.link.state; }
  get id(): string | undefined { return this.agentId; }
  /** host:port of the agent's HTTP server ('' before start). */
  get endpoint(): string { return this.httpEndpoint; }
  get containerizer(): Containerizer {
    if (!this.containerizerImpl) throw new BerthError('CONFLICT', 'agent not started');
    return this.containerizerImpl;
  }

  /** Recovers from the work dir, starts the HTTP server and dials the master. Rejects on a corrupt checkpoint (strict). */
  async start(): Promise<void> {
    if (this.link.state !== 'recovering') throw new BerthError('CONFLICT', `agent already started (state ${this.link.state})`);
    // The work dir can be passed through, not listed (0711): a task running as another user must
    // reach its own sandbox by its absolute path ($MESOS_SANDBOX); meta/ (every TaskInfo, secrets
    // included) is 0700 and each sandbox 0750 owned by its task's user.
    await mkdir(this.opts.workDir, { recursive: true, mode: 0o711 });
    await chmod(this.opts.workDir, 0o711).catch(() => undefined);
    this.containerizerImpl = this.opts.containerizer ?? new (await import('./containerizer/posix.js')).PosixContainerizer({ log: this.log.child({ component: 'posix' }) });
    const r = await recoverAgent({
      checkpoint: this.checkpoint, sum: this.sum, containerizer: this.containerizerImpl, tasks: this.lifecycle,
      frameworks: this.frameworks, log: this.log, now: () => this.clock.now(),
    });
    this.agentId = r.agentId;
    await this.gc.recover(new Set([...this.lifecycle.tasks.values()].map((t) => t.sandbox)));
    this.http = await startAgentHttp({
      health: () => ({ status: 'ok', state: this.link.state, agent_id: this.agentId ?? null }),
      state: (may) => this.stateView(may),
      statistics: (may) => this.statistics(may),
      files: this.files,
      sandboxUser: (sandbox) => {
        const t = [...this.lifecycle.tasks.values()].find((e) => resolve(e.sandbox) === resolve(sandbox));
        return t && this.taskUser(t);
      },
    }, this.opts.httpHost ?? '127.0.0.1', this.opts.httpPort ?? 5051, this.log, this.opts.httpAuth);
    this.httpEndpoint = this.http.endpoint;
    this.info = buildAgentInfo({
      workDir: this.opts.workDir, resources: this.opts.resources, attributes: this.opts.attributes,
      hostname: this.opts.hostname ?? osHostname(), port: Number(this.httpEndpoint.split(':').pop()), host: this.opts.detectedHost,
    });
    this.log.info({ containerizer: this.containerizer.kind, endpoint: this.httpEndpoint, agentId: this.agentId ?? null, tasks: this.lifecycle.tasks.size }, 'Agent started');
    this.link.start();
  }

  /**
   * Stops the agent: closes the link, timers and HTTP server. Tasks keep running (they outlive the
   * agent) unless `killTasks` is set, which destroys every container first (for `berth up` teardown).
   */
  async stop(opts: { killTasks?: boolean } = {}): Promise<void> {
    if (this.link.state === 'terminating') return;
    const prev = this.link.state;
    this.link.stop();
    this.clock.clearTimeout(this.usageTimer);
    this.sum.close();
    if (opts.killTasks && this.containerizerImpl) {
      // Terminal updates of the killed tasks are checkpointed before stop returns (sent by the next run).
      // Every flag is set in this tick: a task not yet handed to the containerizer sees it and is
      // not launched; one whose container is being created is destroyed once it exists (destroying
      // it earlier finds nothing, and its processes and cgroup would outlive the agent).
      await Promise.all([...this.lifecycle.tasks.values()].map(async (t) => {
        t.killRequested ??= { graceMs: 0 };
        await t.launched;
        await this.containerizer.destroy(t.containerId, 0).catch(() => undefined);
        await t.exitHandled;
      }));
    }
    this.lifecycle.close();
    this.gc.close();
    await this.http?.close();
    await this.containerizerImpl?.close();
    await this.checkpoint.close();
    this.log.info({ from: prev }, 'Agent stopped');
  }

  /** Durable before visible: with the checkpoint broken, the agent stops answering and exits. */
  private fatal(err: Error): void {
    // A stopping agent writes nothing more that matters (its work dir may already be gone).
    if (this.fatalError || this.link.state === 'terminating') return;
    this.fatalError = err;
    this.log.fatal({ err: err.message }, 'Checkpoint write failed: the agent stops and must recover from its work dir');
    this.link.stop();
    this.sum.close();
    if (this.opts.onFatal) this.opts.onFatal(err);
    else process.exit(70);
  }

  // ---- master link -----------------------------------------------------------

  private registration(): Registration {
    const info: AgentInfo = { ...this.info!, ...(this.agentId ? { id: { value: this.agentId } } : {}) };
    const base = { agent_info: info, endpoint: this.httpEndpoint, version: AGENT_VERSION, session: this.session };
    if (!this.agentId) return { register: base };
    const tasks: TaskReport[] = [];
    for (const t of this.lifecycle.tasks.values()) {
      const r: TaskReport = { framework_id: { value: t.frameworkId }, task: t.task, state: t.state };
      const latest = this.sum.latest(t.frameworkId, t.task.task_id.value);
      if (latest) r.latest_status = latest.status;
      tasks.push(r);
    }
    const live = new Set([...this.lifecycle.tasks.values()].map((t) => t.frameworkId));
    const frameworks = [...this.frameworks.values()].filter((f) => live.has(f.id?.value ?? ''));
    return { reregister: { ...base, tasks, frameworks } };
  }

  private onRegistered(r: Registered): void {
    const id = r.agent_id.value;
    if (this.agentId && this.agentId !== id) {
      this.log.warn({ was: this.agentId, now: id }, 'Master assigned a different agent id; adopting it');
    }
    if (this.agentId !== id) {
      this.agentId = id;
      // A failure here is fatal through the checkpoint's onFatal; launches wait for it.
      this.agentIdDurable = this.checkpoint.writeAgent({ agent_id: id, boot_id: bootId() })
        .catch((e: unknown) => this.fatal(e as Error));
    }
    this.log.info({ agentId: id, masterId: r.master_id, pingIntervalS: r.ping_interval_seconds }, 'Registered with the master');
    this.sum.reconnected();
    this.scheduleUsage();
  }

  private onFrame(m: MasterToAgent): void {
    if (this.fatalError) return;
    if (m.launch) { void this.launch(m.launch.framework, m.launch.task); return; }
    if (m.kill) { void this.kill(m.kill.framework_id.value, m.kill.task_id.value, m.kill.kill_policy); return; }
    if (m.ack) { void this.sum.acknowledge(m.ack.framework_id.value, m.ack.task_id.value, m.ack.uuid); return; }
    if (m.shutdown_framework) { this.lifecycle.shutdownFramework(m.shutdown_framework.framework_id.value); return; }
    this.log.warn({ frame: Object.keys(m) }, 'Ignoring unknown frame');
  }

  // ---- tasks -----------------------------------------------------------------

  /** Handles a Launch. Public so tests and an in-process master can drive it; normally called from the link. */
  launch(framework: FrameworkInfo, task: TaskInfo): Promise<void> { return this.lifecycle.launch(framework, task); }

  /** Handles a Kill. Public for the same reason as `launch`. */
  kill(fid: string, tid: string, policy?: KillPolicy): Promise<void> { return this.lifecycle.kill(fid, tid, policy); }

  /** The terminal update was acknowledged: forget the task (its sandbox stays for reading until GC). */
  private forgetTask(fid: string, tid: string, last: Parameters<TaskLifecycle['forget']>[2]): void {
    const entry = this.lifecycle.forget(fid, tid, last);
    const cz = this.containerizerImpl as (Containerizer & { forget?: (id: string) => void }) | undefined;
    if (entry) {
      cz?.forget?.(entry.containerId);
      this.gc.schedule(entry.sandbox);
    }
    this.checkpoint.removeTask(fid, tid, entry?.runDir).catch((e: unknown) => this.log.warn({ task: tid, err: (e as Error).message }, 'Cannot remove task checkpoint'));
  }

  // ---- usage and views -------------------------------------------------------

  private scheduleUsage(): void {
    this.clock.clearTimeout(this.usageTimer);
    this.usageTimer = this.clock.setTimeout(() => {
      this.usageTimer = undefined;
      void this.reportUsage().finally(() => { if (this.link.state === 'running') this.scheduleUsage(); });
    }, this.opts.usageIntervalMs ?? 5000);
  }

  private async reportUsage(): Promise<void> {
    const entries = await this.statistics();
    if (entries.length === 0) return;
    this.link.send({ usage: { containers: entries.map((e) => ({ framework_id: { value: e.framework_id }, task_id: { value: e.executor_id }, statistics: e.statistics })) } });
  }

  /** Usage of every live container, Mesos `/monitor/statistics` shape. */
  /** `may` (view_tasks) filters the entries a caller sees by the user their task runs as. */
  statistics(may?: ViewFilter): Promise<MonitorEntry[]> {
    return statistics([...this.lifecycle.tasks.values()].filter((t) => !may || may('view_tasks', this.taskUser(t))), this.containerizer);
  }

  /** The user a task runs as: CommandInfo.user, else FrameworkInfo.user (as its container spec). */
  private taskUser(t: TaskEntry): string | undefined {
    return t.task.command?.user || this.frameworks.get(t.frameworkId)?.user || undefined;
  }

  /** Pid of a task's supervisor (the container's pid), for tests and /state. */
  taskPid(fid: string, tid: string): number | undefined {
    return this.lifecycle.tasks.get(taskKey(fid, tid))?.record?.pid;
  }

  /** Number of unacknowledged status updates. */
  get unackedUpdates(): number { return this.sum.pendingCount(); }

  /** `may` filters frameworks (view_frameworks) and tasks (view_tasks) by their user, as Mesos' agent /state. */
  stateView(may?: ViewFilter): Record<string, unknown> {
    return stateView({
      id: this.agentId, state: this.link.state, info: this.info, endpoint: this.httpEndpoint, masterId: this.link.masterId,
      containerizer: this.containerizerImpl, workDir: this.opts.workDir, unacked: this.sum.pendingCount(),
      frameworks: [...this.frameworks.values()].filter((f) => !may || may('view_frameworks', f.user || undefined)),
      tasks: [...this.lifecycle.tasks.values()].filter((t) => !may || may('view_tasks', this.taskUser(t))),
    });
  }
}

/**
 * The sandbox of a task that has ended (no longer in `tasks`): the newest run under
 * `frameworks/<any>/executors/<tid>/runs/`, so its stdout stays readable by task id (batch logs).
 * The id is checked by the one ID rule first: nothing path-like reaches the filesystem.
 */
function finishedSandbox(workDir: string, tid: string): string | undefined {
  if (idError('task_id', tid)) return undefined;
  let best: { path: string; mtime: number } | undefined;
  try {
    for (const fid of readdirSync(join(workDir, 'frameworks'))) {
      const runs = join(workDir, 'frameworks', fid, 'executors', tid, 'runs');
      let names: string[];
      try { names = readdirSync(runs); } catch { continue; }
      for (const n of names) {
        const st = statSync(join(runs, n), { throwIfNoEntry: false });
        if (st?.isDirectory() && (!best || st.mtimeMs > best.mtime)) best = { path: join(runs, n), mtime: st.mtimeMs };
      }
    }
  } catch { return undefined; }
  return best?.path;
}
