/**
 * The service scheduler: keeps each app's instances running on offers, replaces
 * the ones that end (with backoff), kills surplus, and runs deployments step by
 * step. The REST API (api.ts) reads and changes it; it reads and changes the
 * cluster only through the SDK.
 *
 * Instance lifecycle (`Instance.state` holds the last Mesos state seen):
 *   launched (TASK_STAGING, record persisted before the ACCEPT) → STARTING →
 *   RUNNING (→ healthy/ready per checks) → terminal (record deleted). A kill we
 *   asked for sets `killing`; an UNREACHABLE instance becomes `inactive` after
 *   `unreachableStrategy.inactiveAfterSeconds` (a replacement is launched) and is
 *   forgotten after `expungeAfterSeconds`.
 *
 * Invariants:
 *  - `converge(app)` is the only place that decides launches and kills; it is
 *    called after every change (update, deployment, API call, timer) and is
 *    idempotent, so a missed call is caught by the next one.
 *  - During a RestartApplication the number of healthy instances never drops
 *    below ceil(instances × minimumHealthCapacity) because of a kill of ours,
 *    and non-terminal instances never exceed floor(instances × (1 +
 *    maximumOverCapacity)) because of a launch of ours (Marathon's one
 *    exception: with no room at all, one old instance is killed first).
 *  - Launch delays grow by `backoffFactor` from `backoffSeconds` up to
 *    `maxLaunchDelaySeconds` on each instance that ends without our asking;
 *    a kill we asked for never backs off. A new config resets the delay.
 *  - Offers are suppressed when no app needs a launch, revived when one does;
 *    offers not used are declined (long filter when nothing is needed).
 */
import { randomUUID } from 'node:crypto';
import {
  connect, isTerminal, type ConnectOptions, type Dialer, type Framework, type Offer, type TaskInfo, type TaskState, type TaskStatus,
} from '../sdk/index.js';
import { timestamp, toAppJson, type AppDefinition } from './app.js';
import { deploymentJson, plan, planJson, type Deployment } from './deployments.js';
import { EventBus } from './events.js';
import { appKey, deploymentKey, instanceKey, versionKey, versionPrefix, type StateStore } from './persist.js';
import { OfferStats, placeDemands, type Demand } from './placement.js';
import { taskInfoFor } from './tasks.js';

export type Clock = NonNullable<ConnectOptions['clock']>;
export type Logger = NonNullable<ConnectOptions['log']>;

export type KillReason = 'request' | 'scale' | 'upgrade' | 'unhealthy' | 'stop' | 'orphan' | 'expunged';

export interface Instance {
  taskId: string;
  appId: string;
  /** The app's `versionInfo.lastConfigChangeAt` it was launched with (what "old" means in an upgrade). */
  configVersion: string;
  /** The app's `version` at launch (what Marathon shows as the task's version). */
  version: string;
  agentId: string;
  host: string;
  /** The agent's attributes as text (constraints on attributes count instances by them). */
  attributes: Record<string, string>;
  ports: number[];
  stagedAt: number;
  startedAt?: number;
  state: TaskState;
  healthy?: boolean;
  ready?: boolean;
  killing?: KillReason;
  unreachableAt?: number;
  inactive?: boolean;
  consecutiveFailures?: number;
  lastSuccess?: number;
  lastFailure?: number;
  lastFailureCause?: string;
  /** uuid of the last update handled (resent duplicates are only acknowledged). */
  lastUuid?: string;
}

/** Persisted part of an Instance. */
type InstanceRecord = Pick<Instance, 'taskId' | 'appId' | 'configVersion' | 'version' | 'agentId' | 'host' | 'attributes' | 'ports' | 'stagedAt'>;

export interface AppRuntime {
  app: AppDefinition;
  instances: Map<string, Instance>;
  /** Current launch delay in seconds (undefined: none) and when launches may resume. */
  delaySeconds?: number;
  delayUntil: number;
  lastTaskFailure?: { appId: string; host: string; message: string; state: string; taskId: string; timestamp: string; version: string; slaveId: string };
  offers: OfferStats;
  /** When the app last started waiting for launches (queue `since`). */
  since: number;
  waiting?: boolean;
}

export interface SchedulerOptions {
  master: string | Dialer;
  store: StateStore;
  clock: Clock;
  log: Logger;
  frameworkName?: string;
  /** Default one week: the master keeps our tasks that long while we are away. */
  failoverTimeoutSeconds?: number;
  role?: string;
  /** Seconds an unused offer is declined for while nothing is needed. */
  declineLongSeconds?: number;
}

const LAUNCH_TIMEOUT_MS = 300_000;
/** Versions kept per app for rollbacks and GET /v2/apps/{id}/versions. */
const MAX_VERSIONS = 20;
/** Terminal reasons that are a failure of the app (backoff), as opposed to our kill. */
const FAILED: ReadonlySet<TaskState> = new Set<TaskState>(['TASK_FAILED', 'TASK_FINISHED', 'TASK_LOST', 'TASK_ERROR', 'TASK_DROPPED', 'TASK_GONE', 'TASK_GONE_BY_OPERATOR', 'TASK_KILLED', 'TASK_UNKNOWN']);

export class ConflictError extends Error {
  constructor(readonly deployments: string[]) {
    super(`App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/${deployments[0]}'.`);
  }
}

export class Scheduler {
  readonly apps = new Map<string, AppRuntime>();
  readonly deployments = new Map<string, Deployment>();
  readonly events: EventBus;
  private fw?: Framework;
  private readonly byTask = new Map<string, Instance>();
  private suppressed = false;
  private stopped = false;
  private readonly timers = new Map<string, ReturnType<Clock['setTimeout']>>();
  /** Completed deployment ids, bounded, for events and `--wait` clients that come late. */
  readonly finished: { id: string; ok: boolean; at: number }[] = [];
  frameworkId?: string;

  constructor(readonly opts: SchedulerOptions) {
    this.events = new EventBus(() => opts.clock.now());
  }

  get now(): number { return this.opts.clock.now(); }

  // ------------------------------------------------------------------ start / stop

  /** Loads state, subscribes (same framework id as before), reconciles, resumes deployments. */
  async start(): Promise<void> {
    const s = this.opts.store;
    const fid = await s.get<string>('framework-id');
    for (const { value } of await s.list<AppDefinition>('apps/')) {
      this.apps.set(value.id, this.runtime(value));
    }
    for (const { value } of await s.list<InstanceRecord>('instances/')) {
      const rt = this.apps.get(value.appId);
      const inst: Instance = { ...value, state: 'TASK_STAGING' };
      this.byTask.set(inst.taskId, inst);
      if (rt) rt.instances.set(inst.taskId, inst);
      else inst.killing = 'orphan';
    }
    for (const { value } of await s.list<Deployment>('deployments/')) this.deployments.set(value.id, value);

    this.fw = await connect({
      master: this.opts.master,
      framework: {
        name: this.opts.frameworkName ?? 'marathon', failover_timeout: this.opts.failoverTimeoutSeconds ?? 604800,
        capabilities: ['PARTITION_AWARE', 'TASK_KILLING_STATE'], roles: [this.opts.role ?? '*'], checkpoint: true,
      },
      ...(fid ? { frameworkId: fid } : {}),
      log: this.opts.log.child({ component: 'sdk' }),
    });
    this.frameworkId = this.fw.frameworkId;
    // A resumed framework cannot know which decline filters its predecessor left at the master
    // (the master keeps them across failover, as Mesos does): treat offers as filtered, so the
    // first need sends a REVIVE instead of waiting out a long filter.
    if (fid) this.filtered = true;
    if (fid !== this.frameworkId) await s.put('framework-id', this.frameworkId);
    this.opts.log.info({ frameworkId: this.frameworkId, apps: this.apps.size, instances: this.byTask.size, resumed: !!fid }, 'marathon subscribed');

    this.fw.on('offers', (offers) => this.onOffers(offers));
    this.fw.on('update', (st) => this.onUpdate(st));
    this.fw.on('subscribed', (info) => {
      if (!info.reconnected) return;
      this.filtered = true; // as above: filters may outlive our link
      this.syncOfferInterest();
      void this.reconcile();
    });
    this.fw.on('error', (e) => this.opts.log.warn({ err: e.message, fatal: e.fatal }, 'framework error'));

    // Orphans (records of apps that no longer exist) are killed; everything else is reconciled.
    for (const inst of this.byTask.values()) if (inst.killing === 'orphan') void this.fw.kill(inst.taskId, inst.agentId).catch(() => undefined);
    await this.reconcile();
    for (const d of this.deployments.values()) this.armDeadline(d);
    for (const rt of this.apps.values()) this.converge(rt);
    this.advanceDeployments();
  }

  /** Explicit reconciliation of every instance we know, then implicit to learn of unknown ones. */
  private async reconcile(): Promise<void> {
    if (!this.fw) return;
    const known = [...this.byTask.values()].map((i) => ({ taskId: i.taskId, agentId: i.agentId }));
    for (let i = 0; i < known.length; i += 1000) await this.fw.reconcile(known.slice(i, i + 1000)).catch(() => undefined);
    await this.fw.reconcile().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) this.opts.clock.clearTimeout(t);
    this.timers.clear();
    this.events.close();
    this.fw?.close();
  }

  private runtime(app: AppDefinition): AppRuntime {
    return { app, instances: new Map(), delayUntil: 0, offers: new OfferStats(), since: this.now };
  }

  private timer(key: string, ms: number, fn: () => void): void {
    const old = this.timers.get(key);
    if (old) this.opts.clock.clearTimeout(old);
    this.timers.set(key, this.opts.clock.setTimeout(() => { this.timers.delete(key); if (!this.stopped) fn(); }, ms));
  }

  /**
   * Coalesces work (as Mesos' allocator coalesces allocation triggers): updates that arrive
   * together mark their apps, and one pass after them converges each marked app once and
   * advances deployments once — O(instances) per batch instead of per update.
   */
  private touch(rt: AppRuntime): void {
    this.dirty.add(rt);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private readonly dirty = new Set<AppRuntime>();
  private flushScheduled = false;

  /** Runs the pending convergence now (also before placing offers, so they see current needs). */
  private flush(): void {
    this.flushScheduled = false;
    if (this.stopped || this.dirty.size === 0) return;
    const apps = [...this.dirty];
    this.dirty.clear();
    for (const rt of apps) if (this.apps.get(rt.app.id) === rt) this.converge(rt);
    this.advanceDeployments();
  }

  private clearTimer(key: string): void {
    const t = this.timers.get(key);
    if (t) { this.opts.clock.clearTimeout(t); this.timers.delete(key); }
  }

  // ------------------------------------------------------------------ queries

  /** Deployments touching `appId`. */
  deploymentsOf(appId: string): Deployment[] {
    return [...this.deployments.values()].filter((d) => d.affectedApps.includes(appId));
  }

  /** The action of the running step of a deployment for this app, if any. */
  private currentAction(appId: string): { d: Deployment; action: string } | undefined {
    let waiting: Deployment | undefined;
    for (const d of this.deployments.values()) {
      const step = d.steps[d.current];
      const a = step?.actions.find((x) => x.app === appId);
      if (a) return { d, action: a.action };
      if (d.steps.slice(d.current + 1).some((s) => s.actions.some((x) => x.app === appId))) waiting = d;
    }
    // An app whose step has not come yet (it waits for its dependencies) is held as it is.
    return waiting ? { d: waiting, action: 'Waiting' } : undefined;
  }

  isHealthy(rt: AppRuntime, i: Instance): boolean {
    if (i.state !== 'TASK_RUNNING' || i.killing || i.inactive) return false;
    if (rt.app.healthChecks.length > 0 && i.healthy !== true) return false;
    return true;
  }
  private isReady(rt: AppRuntime, i: Instance): boolean {
    return this.isHealthy(rt, i) && (rt.app.readinessChecks.length === 0 || i.ready === true);
  }
  private alive(i: Instance): boolean { return !isTerminal(i.state) && !i.killing && !i.inactive; }

  /** How many instances of the app are still to be launched now (0 while backing off). */
  launchable(rt: AppRuntime): number {
    const n = this.wanted(rt);
    return n > 0 && this.now >= rt.delayUntil ? n : 0;
  }

  /** Instances still to launch, ignoring the launch delay (the queue's `count`). */
  wanted(rt: AppRuntime): number {
    const cur = rt.app.versionInfo.lastConfigChangeAt;
    const all = [...rt.instances.values()];
    const alive = all.filter((i) => this.alive(i));
    const act = this.currentAction(rt.app.id);
    if (act?.action === 'StopApplication' || act?.action === 'StartApplication' || act?.action === 'Waiting') return 0;
    if (act?.action === 'RestartApplication') {
      const { max } = this.capacity(rt.app);
      const fresh = alive.filter((i) => i.configVersion === cur).length;
      const occupying = all.filter((i) => !isTerminal(i.state) && !i.inactive).length;
      return Math.max(0, Math.min(rt.app.instances - fresh, max - occupying));
    }
    return Math.max(0, rt.app.instances - alive.length);
  }

  private capacity(app: AppDefinition): { min: number; max: number } {
    const n = app.instances;
    return {
      min: Math.ceil(n * app.upgradeStrategy.minimumHealthCapacity - 1e-9),
      max: Math.max(n, Math.floor(n * (1 + app.upgradeStrategy.maximumOverCapacity) + 1e-9)),
    };
  }

  // ------------------------------------------------------------------ convergence

  /** Decides kills for the app and asks for offers if it needs launches. Idempotent. */
  converge(rt: AppRuntime): void {
    if (this.stopped) return;
    const act = this.currentAction(rt.app.id);
    const all = [...rt.instances.values()];
    const alive = all.filter((i) => this.alive(i));
    if (act?.action === 'StopApplication') {
      for (const i of all) if (!isTerminal(i.state) && !i.killing) this.kill(rt, i, 'stop');
    } else if (act?.action === 'RestartApplication') {
      this.rollingKills(rt, alive);
    } else if (act?.action === 'Waiting') {
      // held until its step runs
    } else if (alive.length > rt.app.instances) {
      this.killSurplus(rt, alive, alive.length - rt.app.instances);
    }
    const wanted = this.wanted(rt);
    // The queue's `since`: when the app last went from wanting nothing to wanting launches.
    if (wanted > 0 && !rt.waiting) { rt.waiting = true; rt.since = this.now; } else if (wanted === 0) rt.waiting = false;
    if (wanted > 0) {
      if (this.now < rt.delayUntil) this.timer(`delay:${rt.app.id}`, rt.delayUntil - this.now, () => this.converge(rt));
      else this.syncOfferInterest();
    }
  }

  private rollingKills(rt: AppRuntime, alive: Instance[]): void {
    const cur = rt.app.versionInfo.lastConfigChangeAt;
    const old = alive.filter((i) => i.configVersion !== cur);
    if (old.length === 0) {
      const fresh = alive.filter((i) => i.configVersion === cur);
      if (fresh.length > rt.app.instances) this.killSurplus(rt, fresh, fresh.length - rt.app.instances);
      return;
    }
    const { min, max } = this.capacity(rt.app);
    // Old instances that are not healthy count for nothing: they go first, freely.
    for (const i of old.filter((x) => !this.isHealthy(rt, x))) this.kill(rt, i, 'upgrade');
    const oldHealthy = this.order(rt, old.filter((x) => this.isHealthy(rt, x)));
    const freshReady = alive.filter((i) => i.configVersion === cur && this.isReady(rt, i)).length;
    let healthy = oldHealthy.length + freshReady;
    let killed = 0;
    // Keep at least `min` healthy; never kill more old ones than new ones can replace.
    while (oldHealthy.length > 0 && healthy - 1 >= min) {
      this.kill(rt, oldHealthy.shift()!, 'upgrade');
      healthy--; killed++;
    }
    if (killed > 0 || oldHealthy.length === 0) return;
    // No room to launch and nothing left to wait for: Marathon kills one old instance anyway
    // (minimumHealthCapacity 1 with maximumOverCapacity 0 could never progress otherwise).
    const occupying = [...rt.instances.values()].filter((i) => !isTerminal(i.state) && !i.inactive).length;
    const waiting = [...rt.instances.values()].some((i) => (i.killing && !isTerminal(i.state)) || (i.configVersion === cur && this.alive(i) && !this.isReady(rt, i)));
    if (occupying >= max && !waiting) this.kill(rt, oldHealthy.shift()!, 'upgrade');
  }

  /** Orders instances in kill order: not running first, then by `killSelection`. */
  private order(rt: AppRuntime, list: Instance[]): Instance[] {
    const youngest = rt.app.killSelection === 'YOUNGEST_FIRST';
    return [...list].sort((a, b) => {
      const ra = a.state === 'TASK_RUNNING' && this.isHealthy(rt, a) ? 1 : 0;
      const rb = b.state === 'TASK_RUNNING' && this.isHealthy(rt, b) ? 1 : 0;
      if (ra !== rb) return ra - rb;
      return youngest ? b.stagedAt - a.stagedAt : a.stagedAt - b.stagedAt;
    });
  }

  private killSurplus(rt: AppRuntime, alive: Instance[], n: number): void {
    for (const i of this.order(rt, alive).slice(0, n)) this.kill(rt, i, 'scale');
  }

  /** Kills an instance; `reason` says why (a kill we ask for never backs off). */
  kill(rt: AppRuntime | undefined, i: Instance, reason: KillReason): void {
    if (isTerminal(i.state)) return;
    i.killing = reason;
    if (reason === 'unhealthy' && rt) {
      this.events.publish('unhealthy_instance_kill_event', { appId: i.appId, taskId: i.taskId, instanceId: i.taskId, version: i.version, reason: i.lastFailureCause ?? 'unhealthy', host: i.host, slaveId: i.agentId });
    }
    void this.fw?.kill(i.taskId, i.agentId).catch((e: Error) => this.opts.log.warn({ task: i.taskId, err: e.message }, 'kill failed; reconciliation will retry'));
  }

  /**
   * Keeps the master's view of our interest in line with our needs: REVIVE when an app can
   * launch and we are suppressed or have declined offers with the long filter; SUPPRESS when
   * none can. Flags change synchronously and the calls go out one at a time, in order, so a
   * late SUPPRESS can never overtake the REVIVE a newer need asked for.
   */
  private syncOfferInterest(): void {
    if (!this.fw || this.stopped) return;
    const want = [...this.apps.values()].some((rt) => this.launchable(rt) > 0);
    if (want && (this.suppressed || this.filtered)) {
      this.suppressed = false; this.filtered = false;
      this.interest = this.interest.then(() => this.fw!.revive()).catch((e: Error) => this.opts.log.warn({ err: e.message }, 'revive failed'));
    } else if (!want && !this.suppressed) {
      this.suppressed = true;
      this.interest = this.interest.then(() => this.fw!.suppress()).catch((e: Error) => this.opts.log.warn({ err: e.message }, 'suppress failed'));
    }
  }

  private interest: Promise<void> = Promise.resolve();
  /** Offers were declined with the long filter since the last REVIVE (which clears filters). */
  private filtered = false;

  // ------------------------------------------------------------------ offers

  private async onOffers(offers: Offer[]): Promise<void> {
    if (!this.fw || this.stopped) return;
    this.flush();
    const demands: Demand[] = [];
    for (const rt of this.apps.values()) {
      const count = this.launchable(rt);
      if (count > 0) demands.push({ app: rt.app, count, existing: [...rt.instances.values()].filter((i) => this.alive(i)).map((i) => ({ agentId: i.agentId, hostname: i.host, attributes: i.attributes })) });
    }
    if (demands.length === 0) {
      this.filtered = true;
      this.syncOfferInterest();
      await this.fw.decline(offers.map((o) => o.id.value), this.opts.declineLongSeconds ?? 120).catch(() => undefined);
      return;
    }
    const placed = placeDemands(offers, demands);
    const byOffer = new Map<string, { offer: Offer; tasks: TaskInfo[] }>();
    const records: InstanceRecord[] = [];
    for (const p of placed.tasks) {
      const rt = this.apps.get(p.app.id)!;
      const taskId = `${p.app.id.slice(1).replace(/\//g, '_')}.${randomUUID()}`;
      const info = taskInfoFor(rt.app, taskId, p.offer, p.resources, p.ports);
      const inst: Instance = {
        taskId, appId: rt.app.id, configVersion: rt.app.versionInfo.lastConfigChangeAt, version: rt.app.version,
        agentId: p.offer.agent_id.value, host: p.offer.hostname, attributes: { ...p.facts.attributes }, ports: p.ports, stagedAt: this.now, state: 'TASK_STAGING',
      };
      rt.instances.set(taskId, inst);
      this.byTask.set(taskId, inst);
      records.push({ taskId, appId: inst.appId, configVersion: inst.configVersion, version: inst.version, agentId: inst.agentId, host: inst.host, attributes: inst.attributes, ports: inst.ports, stagedAt: inst.stagedAt });
      // Marathon's task_launch_timeout: an instance with no word from the agent after 5 minutes is
      // reconciled; the master then reports it (TASK_LOST/GONE if it never arrived: replaced).
      this.timer(`launch:${taskId}`, LAUNCH_TIMEOUT_MS, () => {
        if (this.byTask.get(taskId)?.state === 'TASK_STAGING') void this.fw?.reconcile([{ taskId, agentId: inst.agentId }]).catch(() => undefined);
      });
      const e = byOffer.get(p.offer.id.value) ?? { offer: p.offer, tasks: [] };
      e.tasks.push(info);
      byOffer.set(p.offer.id.value, e);
    }
    for (const d of demands) {
      const rt = this.apps.get(d.app.id)!;
      rt.offers.record(offers, placed.rejections.get(d.app.id) ?? new Map(), placed.used, this.now);
    }
    // Durable before launched: a restart must know every task it may have started.
    await Promise.all(records.map((r) => this.opts.store.put(instanceKey(r.taskId), r)));
    const stillWanted = [...this.apps.values()].some((rt) => this.wanted(rt) > 0);
    await Promise.all([...byOffer.values()].map(({ offer, tasks }) => this.fw!.accept([offer.id.value], tasks, { refuseSeconds: 1 }).catch((e: Error) => {
      this.opts.log.warn({ offer: offer.id.value, err: e.message }, 'accept failed; the tasks will be reported lost by reconciliation');
    })));
    const unused = offers.filter((o) => !byOffer.has(o.id.value)).map((o) => o.id.value);
    if (unused.length && !stillWanted) this.filtered = true;
    this.syncOfferInterest();
    if (unused.length) await this.fw.decline(unused, stillWanted ? 5 : (this.opts.declineLongSeconds ?? 120)).catch(() => undefined);
  }

  // ------------------------------------------------------------------ updates

  private async onUpdate(st: TaskStatus): Promise<void> {
    const id = st.task_id.value;
    const inst = this.byTask.get(id);
    if (!inst) {
      // A task we do not know (launched by a run whose record was lost): kill it, once.
      if (!isTerminal(st.state) && st.state !== 'TASK_UNREACHABLE' && st.reason === 'REASON_RECONCILIATION') {
        void this.fw?.kill(id, st.agent_id?.value).catch(() => undefined);
      }
      return;
    }
    // An agent resends an update until the acknowledgement reaches it: under load the same update
    // (same uuid) can arrive several times. It was handled once; the SDK acknowledges it again.
    if (st.uuid && st.uuid === inst.lastUuid) return;
    if (st.uuid) inst.lastUuid = st.uuid;
    const rt = this.apps.get(inst.appId);
    const prevState = inst.state;
    const prevHealthy = inst.healthy;
    inst.state = st.state;
    if (st.state === 'TASK_RUNNING' && inst.startedAt === undefined) inst.startedAt = this.now;
    if (st.healthy !== undefined) {
      inst.healthy = st.healthy;
      if (st.healthy) { inst.lastSuccess = this.now; inst.consecutiveFailures = 0; }
      else { inst.lastFailure = this.now; inst.consecutiveFailures = (inst.consecutiveFailures ?? 0) + 1; inst.lastFailureCause = st.message ?? 'health check failed'; }
    }
    const check = (st as TaskStatus & { check_status?: { http?: { status_code?: number }; tcp?: { succeeded?: boolean }; command?: { exit_code?: number } } }).check_status;
    if (check && rt) {
      const codes = rt.app.readinessChecks[0]?.httpStatusCodesForReady ?? [200];
      inst.ready = check.http ? codes.includes(check.http.status_code ?? -1) : check.tcp ? !!check.tcp.succeeded : check.command ? check.command.exit_code === 0 : inst.ready;
    }
    if (st.state === 'TASK_RUNNING' && inst.unreachableAt !== undefined) { inst.unreachableAt = undefined; inst.inactive = false; }

    if (prevState !== st.state || st.reason !== 'REASON_RECONCILIATION') {
      this.events.publish('status_update_event', {
        slaveId: inst.agentId, taskId: id, taskStatus: st.state, message: st.message ?? '', appId: inst.appId, host: inst.host,
        ipAddresses: [{ ipAddress: '127.0.0.1', protocol: 'IPv4' }], ports: inst.ports, version: inst.version,
      });
    }
    if (st.healthy !== undefined && prevHealthy !== st.healthy) {
      this.events.publish('health_status_changed_event', { appId: inst.appId, taskId: id, instanceId: id, version: inst.version, alive: st.healthy });
      this.events.publish('instance_health_changed_event', { instanceId: id, runSpecId: inst.appId, runSpecVersion: inst.version, healthy: st.healthy });
      if (!st.healthy) this.events.publish('failed_health_check_event', { appId: inst.appId, taskId: id, instanceId: id, healthCheck: rt?.app.healthChecks[0] ?? {} });
    }

    // The agent reports every failed check after the grace period (Mesos); after
    // maxConsecutiveFailures of them the instance is killed (no backoff) and replaced.
    const hc = rt?.app.healthChecks[0];
    if (rt && hc && st.healthy === false && !inst.killing && st.state === 'TASK_RUNNING' && hc.maxConsecutiveFailures > 0 && (inst.consecutiveFailures ?? 0) >= hc.maxConsecutiveFailures) {
      this.kill(rt, inst, 'unhealthy');
    }

    if (st.state !== 'TASK_STAGING') this.clearTimer(`launch:${id}`);
    if (isTerminal(st.state)) {
      this.byTask.delete(id);
      this.clearTimer(`inactive:${id}`); this.clearTimer(`expunge:${id}`);
      rt?.instances.delete(id);
      // Not awaited: the update is acknowledged without waiting for the disk, so the SDK's event
      // loop moves on and the deletes of a burst of terminal updates share one store write. A
      // record that outlives a crash is settled by reconciliation at the next start.
      void this.opts.store.delete(instanceKey(id)).catch(() => undefined);
      if (rt && !inst.killing && FAILED.has(st.state) && st.reason !== 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED') {
        this.backoff(rt, inst, st);
      }
    } else if (st.state === 'TASK_UNREACHABLE' && rt && inst.unreachableAt === undefined) {
      inst.unreachableAt = this.now;
      const us = rt.app.unreachableStrategy;
      if (us !== 'disabled') {
        this.timer(`inactive:${id}`, us.inactiveAfterSeconds * 1000, () => { if (inst.unreachableAt !== undefined) { inst.inactive = true; this.converge(rt); } });
        this.timer(`expunge:${id}`, us.expungeAfterSeconds * 1000, () => {
          if (inst.unreachableAt === undefined) return;
          this.byTask.delete(id); rt.instances.delete(id);
          void this.opts.store.delete(instanceKey(id)).catch(() => undefined);
          this.converge(rt);
        });
      }
    }
    if (rt) this.touch(rt);
  }

  private backoff(rt: AppRuntime, inst: Instance, st: TaskStatus): void {
    const a = rt.app;
    rt.delaySeconds = rt.delaySeconds === undefined ? a.backoffSeconds : Math.min(rt.delaySeconds * a.backoffFactor, a.maxLaunchDelaySeconds);
    rt.delayUntil = this.now + rt.delaySeconds * 1000;
    rt.lastTaskFailure = {
      appId: a.id, host: inst.host, message: st.message ?? '', state: st.state, taskId: inst.taskId,
      timestamp: timestamp(this.now), version: inst.version, slaveId: inst.agentId,
    };
  }

  /** `DELETE /v2/queue/{id}/delay`: launches may resume now. */
  resetDelay(appId: string): boolean {
    const rt = this.apps.get(appId);
    if (!rt) return false;
    rt.delaySeconds = undefined; rt.delayUntil = 0;
    this.converge(rt);
    return true;
  }

  // ------------------------------------------------------------------ changes from the API

  /**
   * Applies a change to the given apps as one deployment: `target` maps app id → new
   * definition (null = remove). Throws ConflictError if any app is locked by a running
   * deployment and `force` is not set (force cancels those deployments, without rollback).
   */
  async deploy(target: Record<string, AppDefinition | null>, opts: { force?: boolean; restart?: Set<string>; rollbackOf?: string } = {}): Promise<Deployment | undefined> {
    // One change at a time: the lock check and the apply must not interleave with another change.
    const run = this.changes.then(() => this.deployNow(target, opts));
    this.changes = run.then(() => undefined, () => undefined);
    return run;
  }

  private changes: Promise<void> = Promise.resolve();

  private async deployNow(target: Record<string, AppDefinition | null>, opts: { force?: boolean; restart?: Set<string>; rollbackOf?: string }): Promise<Deployment | undefined> {
    const ids = Object.keys(target);
    const locking = [...new Set(ids.flatMap((id) => this.deploymentsOf(id).map((d) => d.id)))];
    if (locking.length > 0 && !opts.force) throw new ConflictError(locking);
    for (const id of locking) await this.cancel(id, `superseded by a forced change`);
    const original: Record<string, AppDefinition | null> = {};
    for (const id of ids) original[id] = this.apps.get(id)?.app ?? null;
    // Versions are unique and increasing even when the clock stands still (a config version is an identity).
    const latest = Math.max(0, ...[...this.apps.values()].map((rt) => Date.parse(rt.app.version)));
    const version = timestamp(Math.max(this.now, latest + 1));
    for (const [id, b] of Object.entries(target)) {
      const a = original[id];
      if (!b) continue;
      const keep = opts.rollbackOf ? b.versionInfo.lastConfigChangeAt : undefined;
      if (a) b.versionInfo = { lastScalingAt: version, lastConfigChangeAt: a.versionInfo.lastConfigChangeAt };
      b.version = version;
      if (!a || opts.restart?.has(id) || JSON.stringify({ ...a, instances: 0, version: '', versionInfo: null }) !== JSON.stringify({ ...b, instances: 0, version: '', versionInfo: null })) {
        // A rollback returns to the original config version: instances still running it are current again.
        b.versionInfo = { lastScalingAt: version, lastConfigChangeAt: keep ?? version };
      }
    }
    const d = plan(original, target, version, this.now, { restart: opts.restart });
    if (!d) return undefined;
    if (opts.rollbackOf) d.rollbackOf = opts.rollbackOf;
    // Durable first, then applied in memory in one synchronous stretch: no update handled in
    // between may see the deployment without its apps (it would judge their steps done).
    // One durable batch (the store group-commits writes issued together): the deployment, each
    // app and its version. Old versions are pruned after, off the request's path.
    const apps = Object.values(target).filter((b): b is AppDefinition => !!b);
    await Promise.all([
      this.opts.store.put(deploymentKey(d.id), d),
      ...apps.flatMap((b) => [this.opts.store.put(appKey(b.id), b), this.opts.store.put(versionKey(b.id, b.version), b)]),
    ]);
    for (const b of apps) void this.pruneVersions(b.id).catch((e: Error) => this.opts.log.warn({ app: b.id, err: e.message }, 'pruning old versions failed'));
    this.deployments.set(d.id, d);
    // Definitions apply at once (GET shows the target, as Marathon); removals when their step runs.
    for (const [id, b] of Object.entries(target)) {
      if (!b) continue;
      const rt = this.apps.get(id);
      if (rt) {
        const configChanged = rt.app.versionInfo.lastConfigChangeAt !== b.versionInfo.lastConfigChangeAt;
        rt.app = b;
        if (configChanged) { rt.delaySeconds = undefined; rt.delayUntil = 0; }
      } else this.apps.set(id, this.runtime(b));
    }
    this.armDeadline(d);
    this.events.publish('deployment_info', { plan: planJson(d), currentStep: d.steps[0] });
    this.advanceDeployments();
    for (const id of ids) { const rt = this.apps.get(id); if (rt) this.converge(rt); }
    return d;
  }

  private async pruneVersions(appId: string): Promise<void> {
    const versions = await this.opts.store.list<AppDefinition>(versionPrefix(appId));
    await Promise.all(versions.slice(0, Math.max(0, versions.length - MAX_VERSIONS)).map((v) => this.opts.store.delete(v.key)));
  }

  async versions(appId: string): Promise<AppDefinition[]> {
    return (await this.opts.store.list<AppDefinition>(versionPrefix(appId))).map((v) => v.value);
  }

  private armDeadline(d: Deployment): void {
    if (d.deadline === undefined || d.rollbackOf) return;
    this.timer(`deadline:${d.id}`, Math.max(0, d.deadline - this.now), () => {
      if (!this.deployments.has(d.id)) return;
      this.opts.log.warn({ deployment: d.id }, 'deployment did not finish within deploymentTimeoutSeconds; rolling back');
      void this.rollback(d.id, 'deploymentTimeoutSeconds exceeded').catch((e: Error) => this.opts.log.error({ err: e.message }, 'rollback failed'));
    });
  }

  /** `DELETE /v2/deployments/{id}`: a new deployment back to the original definitions. */
  async rollback(id: string, reason = 'canceled'): Promise<Deployment | undefined> {
    const d = this.deployments.get(id);
    if (!d) return undefined;
    await this.cancel(id, reason);
    const back: Record<string, AppDefinition | null> = {};
    for (const app of d.affectedApps) {
      const orig = d.original[app];
      back[app] = orig ? { ...orig } : null;
    }
    return this.deploy(back, { force: true, rollbackOf: id });
  }

  /** Stops a deployment where it is (`?force=true`): apps keep their current definitions. */
  async cancel(id: string, reason = 'canceled'): Promise<boolean> {
    const d = this.deployments.get(id);
    if (!d) return false;
    this.deployments.delete(id);
    const t = this.timers.get(`deadline:${id}`);
    if (t) { this.opts.clock.clearTimeout(t); this.timers.delete(`deadline:${id}`); }
    await this.opts.store.delete(deploymentKey(id));
    this.remember(id, false);
    this.events.publish('deployment_failed', { id, plan: planJson(d), reason });
    for (const a of d.affectedApps) { const rt = this.apps.get(a); if (rt) this.converge(rt); }
    return true;
  }

  private remember(id: string, ok: boolean): void {
    this.finished.push({ id, ok, at: this.now });
    if (this.finished.length > 1000) this.finished.shift();
  }

  /** Marks the instance as killed by request; with `scale` the app's instance count drops too. */
  async killTasks(taskIds: string[], opts: { scale?: boolean; wipe?: boolean; force?: boolean } = {}): Promise<{ killed: Instance[]; deployment?: Deployment }> {
    const killed: Instance[] = [];
    const perApp = new Map<string, number>();
    for (const id of taskIds) {
      const i = this.byTask.get(id);
      if (!i) continue;
      killed.push(i);
      perApp.set(i.appId, (perApp.get(i.appId) ?? 0) + 1);
    }
    let deployment: Deployment | undefined;
    if (opts.scale) {
      const target: Record<string, AppDefinition | null> = {};
      for (const [appId, n] of perApp) {
        const rt = this.apps.get(appId);
        if (rt) target[appId] = { ...rt.app, instances: Math.max(0, rt.app.instances - n) };
      }
      // Mark first so the scale step does not pick other instances to kill.
      for (const i of killed) i.killing = 'scale';
      deployment = await this.deploy(target, { force: opts.force });
    }
    for (const i of killed) {
      const rt = this.apps.get(i.appId);
      if (opts.wipe) { this.byTask.delete(i.taskId); rt?.instances.delete(i.taskId); await this.opts.store.delete(instanceKey(i.taskId)); }
      this.kill(rt, i, opts.scale ? 'scale' : 'request');
    }
    for (const appId of perApp.keys()) { const rt = this.apps.get(appId); if (rt) this.converge(rt); }
    return { killed, ...(deployment ? { deployment } : {}) };
  }

  instance(taskId: string): Instance | undefined { return this.byTask.get(taskId); }

  // ------------------------------------------------------------------ deployment progress

  /** Finished when every instance runs the target config, healthy and ready, at the target count. */
  private actionDone(action: string, appId: string, d: Deployment): boolean {
    const rt = this.apps.get(appId);
    switch (action) {
      case 'StartApplication': return true;
      case 'StopApplication': return !rt || [...rt.instances.values()].every((i) => isTerminal(i.state) || i.inactive);
      case 'ScaleApplication': case 'RestartApplication': {
        if (!rt) return true;
        const cur = rt.app.versionInfo.lastConfigChangeAt;
        const all = [...rt.instances.values()].filter((i) => !isTerminal(i.state) && !i.inactive);
        if (all.length !== rt.app.instances) return false;
        if (action === 'RestartApplication' && all.some((i) => i.configVersion !== cur)) return false;
        void d;
        return all.every((i) => this.isReady(rt, i));
      }
      default: return false;
    }
  }

  private advancing = false;
  /** Moves every deployment whose current step is done to its next step, or finishes it. */
  advanceDeployments(): void {
    if (this.advancing) return;
    this.advancing = true;
    try {
      for (const d of [...this.deployments.values()]) {
        while (d.current < d.steps.length && d.steps[d.current]!.actions.every((a) => this.actionDone(a.action, a.app, d))) {
          const step = d.steps[d.current]!;
          for (const a of step.actions) if (a.action === 'StopApplication') void this.removeApp(a.app);
          this.events.publish('deployment_step_success', { plan: planJson(d), currentStep: step });
          d.current++;
          if (d.current < d.steps.length) {
            this.events.publish('deployment_info', { plan: planJson(d), currentStep: d.steps[d.current] });
            for (const a of d.steps[d.current]!.actions) { const rt = this.apps.get(a.app); if (rt) this.converge(rt); }
          }
          void this.opts.store.put(deploymentKey(d.id), d).catch(() => undefined);
        }
        if (d.current >= d.steps.length) {
          this.deployments.delete(d.id);
          const t = this.timers.get(`deadline:${d.id}`);
          if (t) { this.opts.clock.clearTimeout(t); this.timers.delete(`deadline:${d.id}`); }
          void this.opts.store.delete(deploymentKey(d.id)).catch(() => undefined);
          this.remember(d.id, true);
          this.events.publish('deployment_success', { id: d.id, plan: planJson(d) });
          for (const a of d.affectedApps) { const rt = this.apps.get(a); if (rt) this.converge(rt); }
        }
      }
    } finally {
      this.advancing = false;
    }
  }

  private async removeApp(id: string): Promise<void> {
    const rt = this.apps.get(id);
    if (!rt) return;
    this.apps.delete(id);
    for (const i of rt.instances.values()) this.byTask.delete(i.taskId);
    await this.opts.store.delete(appKey(id));
    await Promise.all((await this.opts.store.list(versionPrefix(id))).map((v) => this.opts.store.delete(v.key)));
    this.events.publish('app_terminated_event', { appId: id });
  }

  // ------------------------------------------------------------------ views

  deploymentJson(d: Deployment): Record<string, unknown> { return deploymentJson(d); }

  appJson(rt: AppRuntime, embed: { tasks?: boolean; counts?: boolean; deployments?: boolean; lastTaskFailure?: boolean; readiness?: boolean } = {}): Record<string, unknown> {
    const out = toAppJson(rt.app);
    const list = [...rt.instances.values()];
    if (embed.counts !== false) {
      out['tasksStaged'] = list.filter((i) => i.state === 'TASK_STAGING' || i.state === 'TASK_STARTING').length;
      out['tasksRunning'] = list.filter((i) => i.state === 'TASK_RUNNING').length;
      out['tasksHealthy'] = rt.app.healthChecks.length ? list.filter((i) => i.state === 'TASK_RUNNING' && i.healthy === true).length : 0;
      out['tasksUnhealthy'] = rt.app.healthChecks.length ? list.filter((i) => i.state === 'TASK_RUNNING' && i.healthy === false).length : 0;
    }
    if (embed.deployments !== false) out['deployments'] = this.deploymentsOf(rt.app.id).map((d) => ({ id: d.id }));
    if (embed.tasks) out['tasks'] = list.map((i) => this.taskJson(rt, i));
    if (embed.lastTaskFailure && rt.lastTaskFailure) out['lastTaskFailure'] = rt.lastTaskFailure;
    return out;
  }

  taskJson(rt: AppRuntime | undefined, i: Instance): Record<string, unknown> {
    const hc = rt?.app.healthChecks.length && i.healthy !== undefined ? [{
      alive: i.healthy, consecutiveFailures: i.consecutiveFailures ?? 0,
      firstSuccess: i.lastSuccess ? timestamp(i.lastSuccess) : null, lastSuccess: i.lastSuccess ? timestamp(i.lastSuccess) : null,
      lastFailure: i.lastFailure ? timestamp(i.lastFailure) : null, lastFailureCause: i.lastFailureCause ?? null, instanceId: i.taskId, taskId: i.taskId,
    }] : [];
    return {
      id: i.taskId, appId: i.appId, host: i.host, slaveId: i.agentId, state: i.state, ports: i.ports, servicePorts: [],
      stagedAt: timestamp(i.stagedAt), startedAt: i.startedAt ? timestamp(i.startedAt) : null, version: i.version,
      ipAddresses: [{ ipAddress: '127.0.0.1', protocol: 'IPv4' }], localVolumes: [], healthCheckResults: hc,
    };
  }

  /** Items of `GET /v2/queue`: apps with instances still to launch. */
  queue(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const rt of this.apps.values()) {
      const count = this.wanted(rt);
      if (count === 0) continue;
      const left = Math.max(0, rt.delayUntil - this.now) / 1000;
      out.push({
        count, since: timestamp(rt.since), delay: { timeLeftSeconds: Math.round(left * 1000) / 1000, overdue: left === 0 },
        app: toAppJson(rt.app), processedOffersSummary: rt.offers.summary(), lastUnusedOffers: rt.offers.lastUnused(),
      });
    }
    return out;
  }

  /** The launch delay of an app in seconds (0 = may launch now), for tests and the CLI. */
  delayLeft(appId: string): number {
    const rt = this.apps.get(appId);
    return rt ? Math.max(0, rt.delayUntil - this.now) / 1000 : 0;
  }
}

