/**
 * The batch engine: jobs in, offers and updates from the SDK, launches and kills out.
 *
 * Offer rounds (`onOffers`) are the hot path. One round places as many tasks as fit into every
 * offer it got (and offers held for a gang), one task at a time to the queue with the lowest
 * weighted dominant share, then the job with the highest priority, then the oldest. It writes the
 * launches ahead (every new attempt is durable before its ACCEPT leaves), sends one ACCEPT per
 * offer carrying all its tasks, and declines what is left with a short filter. When no job has
 * anything ready the framework suppresses; new work revives it.
 *
 * Exactly-once per index, across a SIGKILL of this process:
 *  - an attempt is persisted (STARTING, with its task id) before the ACCEPT is sent;
 *  - an update is acknowledged only after its effect is persisted, so the agent redelivers any
 *    update whose effect a crash lost;
 *  - on restart every STARTING/RUNNING attempt is reconciled by task id: the master answers with
 *    its state, or TASK_LOST "unknown" when the ACCEPT never reached it — only then is the index
 *    launched again, and that lost attempt does not use up a retry.
 *
 * Gangs: the first gang in queue order that does not fit holds the offers it got (nobody after
 * it in the order gets them) for at most `gangHoldMs`, then declines them and steps aside for as
 * long, so a gang never half-starts, and two gangs never hold each other's resources forever.
 */
import type { Clock, TimerHandle } from '../sdk/index.js';
import type { Logger } from '../sdk/index.js';
import {
  BerthError, InstanceCounts, Placer, agentFacts, buildTaskInfo, describeReasons,
  type AgentFacts, type Framework, type Offer, type Placement, type PlacementRequest, type TaskInfo, type TaskSpec, type TaskStatus,
} from '../sdk/index.js';
import { cronError, nextFire } from './cron.js';
import { findCycle } from './dag.js';
import { Job, S, exitCodeOf, parseTaskId, taskIdOf, type Attempt, type JobState } from './model.js';
import type { Persist } from './persist.js';
import { Queues, normalizeQueue, type QueueConfig, type QueueState } from './queues.js';
import { LIMITS, normalizeJob, positionOf, SpecError, type NormalizedJob } from './spec.js';

export interface EngineOptions {
  clock: Clock;
  log: Logger;
  persist: Persist;
  queues?: QueueConfig[];
  /** Longest a gang holds offers while waiting for the rest of its resources (default 10 s). */
  gangHoldMs?: number;
  /** Filter on declined leftovers while work is pending (default 1 s). */
  declineSeconds?: number;
  /** Terminal jobs kept (oldest dropped first, ttl aside). Default 1000. */
  maxFinishedJobs?: number;
  /** Live (non-terminal) jobs accepted at most. Default 10,000. */
  maxJobs?: number;
}

export type BatchEvent =
  | { type: 'job'; id: string; state: JobState; reason?: string; counts: Record<string, number> }
  | { type: 'index'; job: string; index: number; state: string; attempt: number; exitCode?: number; reason?: string }
  | { type: 'cron'; job: string; action: 'fired' | 'skipped' | 'missed' | 'replaced'; run?: string; at: number; reason?: string };

/** The subset of the SDK Framework the engine calls (a test may pass a recording double). */
type Fw = Pick<Framework, 'accept' | 'decline' | 'kill' | 'acknowledge' | 'reconcile' | 'revive' | 'suppress'>;

const TERMINAL_TASK = new Set(['TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED', 'TASK_LOST', 'TASK_ERROR', 'TASK_DROPPED', 'TASK_GONE', 'TASK_GONE_BY_OPERATOR', 'TASK_UNREACHABLE', 'TASK_UNKNOWN']);

export class Engine {
  readonly jobs = new Map<string, Job>();
  readonly queues: Queues;
  private fw?: Fw;
  private seq = 0;
  private frameworkId?: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly persist: Persist;
  private readonly listeners = new Set<(e: BatchEvent) => void>();
  private readonly timers = new Map<string, TimerHandle>();
  private suppressed = false;
  private interestQueued = false;
  /** Offers were declined with the long idle filter since the last revive. */
  private idleFiltered = false;
  /** Offers held for the head gang, and its timer. */
  private readonly held = new Map<string, Offer>();
  private heldFor?: string;
  private holdTimer?: TimerHandle;
  /** Updates whose effects are being persisted; acknowledged after the flush. */
  private ackQueue: TaskStatus[] = [];
  private ackScheduled = false;
  /** Largest resources seen per agent (offered + ours in use): the denominators of dominant shares. */
  private readonly agentCap = new Map<string, { cpus: number; mem: number }>();
  private readonly usedOnAgent = new Map<string, { cpus: number; mem: number }>();
  /** Hostname and attributes per agent seen in offers (for constraints on live tasks). */
  private readonly facts = new Map<string, AgentFacts>();
  private readonly gangHoldMs: number;
  private readonly declineSeconds: number;
  readonly stats = { rounds: 0, accepts: 0, launched: 0, declined: 0, updates: 0, revives: 0, suppresses: 0 };

  constructor(private readonly opts: EngineOptions) {
    this.clock = opts.clock;
    this.log = opts.log;
    this.persist = opts.persist;
    this.queues = new Queues(opts.queues ?? []);
    this.gangHoldMs = opts.gangHoldMs ?? 10_000;
    this.declineSeconds = opts.declineSeconds ?? 1;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Restores persisted state. Returns the framework id to resubscribe with, if any. */
  async load(): Promise<string | undefined> {
    const l = await this.persist.load();
    this.seq = l.meta.seq;
    this.frameworkId = l.meta.frameworkId;
    for (const q of l.queues) this.queues.set(q);
    for (const job of l.jobs) {
      this.jobs.set(job.id, job);
      if (job.isCron) this.armCron(job);
      else if (job.terminal) this.armTtl(job);
      else this.armDeadline(job);
      for (let p = 0; p < job.n; p++) {
        if (job.st[p] !== S.STARTING && job.st[p] !== S.RUNNING) continue;
        const a = job.attempts[p]?.at(-1);
        if (a?.agentId) this.addUsage(job, a.agentId, +1);
      }
    }
    return this.frameworkId;
  }

  /** Wires the engine to a subscribed framework and reconciles every attempt in flight. */
  async attach(fw: Fw, frameworkId: string): Promise<void> {
    this.fw = fw;
    if (frameworkId !== this.frameworkId) {
      this.frameworkId = frameworkId;
      this.persist.setMeta({ frameworkId, seq: this.seq });
      await this.persist.flush();
    }
    await this.reconcileInFlight();
    this.queueInterest();
  }

  /** Asks the master for the state of every attempt this framework believes launched. */
  async reconcileInFlight(): Promise<void> {
    if (!this.fw) return;
    const list: { taskId: string; agentId?: string }[] = [];
    for (const job of this.jobs.values()) {
      if (job.running === 0) continue;
      for (let p = 0; p < job.n; p++) {
        if (job.st[p] !== S.STARTING && job.st[p] !== S.RUNNING) continue;
        const a = job.attempts[p]?.at(-1);
        if (a) list.push({ taskId: a.taskId, ...(a.agentId ? { agentId: a.agentId } : {}) });
      }
    }
    for (let i = 0; i < list.length; i += 2000) await this.fw.reconcile(list.slice(i, i + 2000));
    if (list.length) this.log.info({ tasks: list.length }, 'reconciling attempts in flight');
  }

  /** Stops timers; the state is already durable. */
  async close(): Promise<void> {
    for (const t of this.timers.values()) this.clock.clearTimeout(t);
    this.timers.clear();
    this.clock.clearTimeout(this.holdTimer);
    await this.persist.flush();
  }

  on(cb: (e: BatchEvent) => void): () => void { this.listeners.add(cb); return () => this.listeners.delete(cb); }
  private emit(e: BatchEvent): void {
    for (const cb of this.listeners) { try { cb(e); } catch (err) { this.log.warn({ err: (err as Error).message }, 'event listener threw'); } }
  }

  // ------------------------------------------------------------------ submit / cancel / rerun

  /**
   * Validates a whole submission and creates its jobs, or creates nothing: every spec, every
   * dependency (known jobs or jobs of the same submission) and the DAG are checked first.
   */
  async submit(raws: unknown[]): Promise<Job[]> {
    if (raws.length === 0) throw new SpecError('jobs', 'no job given');
    if (raws.length > LIMITS.maxJobsPerSubmit) throw new SpecError('jobs', `at most ${LIMITS.maxJobsPerSubmit} jobs per submission`);
    const live = [...this.jobs.values()].filter((j) => !j.terminal).length;
    if (live + raws.length > (this.opts.maxJobs ?? 10_000)) throw new BerthError('TOO_LARGE', `jobs: at most ${this.opts.maxJobs ?? 10_000} live jobs; ${live} are live`);
    const multi = raws.length > 1;
    const specs: NormalizedJob[] = raws.map((r, i) => normalizeJob(r, multi ? `jobs[${i}]` : '', cronError));
    const ids = new Set<string>();
    let seq = this.seq;
    specs.forEach((s, i) => {
      const f = (k: string): string => (multi ? `jobs[${i}].${k}` : k);
      if (!s.id) s.id = `job-${(seq + 1).toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
      seq++;
      if (this.jobs.has(s.id) || ids.has(s.id)) throw new BerthError('CONFLICT', `${f('id')}: job '${s.id}' already exists`);
      ids.add(s.id);
      if (!this.queues.has(s.queue)) throw new SpecError(f('queue'), `unknown queue '${s.queue}' (queues: ${this.queues.names().join(', ')}); create it with PUT /v1/queues/${s.queue}`);
      if (s.schedule && s.id.length > 52) throw new SpecError(f('id'), 'a cron job id has at most 52 characters (runs append -<time>)');
    });
    specs.forEach((s, i) => {
      s.dependsOn.forEach((d, k) => {
        if (!ids.has(d) && !this.jobs.has(d)) throw new SpecError(multi ? `jobs[${i}].dependsOn[${k}]` : `dependsOn[${k}]`, `unknown job '${d}'`);
        if (this.jobs.get(d)?.isCron || specs.find((x) => x.id === d)?.schedule) throw new SpecError(multi ? `jobs[${i}].dependsOn[${k}]` : `dependsOn[${k}]`, `'${d}' is a cron job; depend on one of its runs instead`);
      });
    });
    const edges = new Map<string, readonly string[]>();
    for (const j of this.jobs.values()) if (j.spec.dependsOn.length) edges.set(j.id, j.spec.dependsOn);
    for (const s of specs) edges.set(s.id, s.dependsOn);
    const cycle = findCycle(edges);
    if (cycle) throw new SpecError('dependsOn', `dependency cycle: ${cycle.join(' → ')}`);

    const now = this.clock.now();
    const created = specs.map((s) => this.addJob(s, now));
    this.persist.setMeta({ frameworkId: this.frameworkId, seq: this.seq });
    await this.persist.flush();
    for (const j of created) this.afterCreate(j);
    return created;
  }

  private addJob(spec: NormalizedJob, now: number, cronParent?: string): Job {
    const job = new Job(spec.id, spec, ++this.seq, now, cronParent);
    this.jobs.set(job.id, job);
    this.persist.markJob(job);
    return job;
  }

  private afterCreate(job: Job): void {
    this.emitJob(job);
    if (job.isCron) { this.armCron(job); return; }
    this.settleDependencies(job);
    this.armDeadline(job);
    this.queueInterest();
  }

  /** Cancels a job: pending indices are cancelled, running tasks killed. Cron jobs stop firing. */
  async cancel(id: string): Promise<Job> {
    const job = this.mustGet(id);
    if (job.terminal) return job;
    if (job.isCron) {
      this.clearTimer(`cron:${id}`);
      for (const r of job.runs) { const run = this.jobs.get(r); if (run && !run.terminal) this.stop(run, 'cancel', 'cancelled with its cron job'); }
      this.finish(job, 'CANCELLED', 'cancelled');
    } else {
      this.stop(job, 'cancel', 'cancelled');
    }
    await this.persist.flush();
    return job;
  }

  /** Runs the failed and cancelled indices of a finished job again, with a fresh retry budget. */
  async rerun(id: string): Promise<Job> {
    const job = this.mustGet(id);
    if (job.isCron) throw new BerthError('INVALID', `job '${id}' is a cron job; rerun one of its runs`);
    if (!job.terminal) throw new BerthError('CONFLICT', `job '${id}' is ${job.state}; only a finished job can be rerun`);
    let k = 0;
    for (let p = 0; p < job.n; p++) {
      if (job.st[p] !== S.FAILED && job.st[p] !== S.CANCELLED) continue;
      job.setState(p, S.PENDING);
      job.retryBase.set(p, job.attempts[p]?.length ?? 0);
      job.ready.push(p);
      k++;
    }
    if (k === 0) throw new BerthError('CONFLICT', `job '${id}' has no failed or cancelled index to rerun`);
    // A job cancelled before some indices were ever taken has them still in `fresh`: already PENDING.
    job.state = job.startedAt ? 'RUNNING' : 'PENDING';
    job.reason = undefined; job.finishedAt = undefined; job.stopping = undefined;
    job.dirtyMeta = true;
    this.clearTimer(`ttl:${id}`);
    this.persist.markJob(job);
    await this.persist.flush();
    this.emitJob(job);
    this.armDeadline(job);
    this.queueInterest();
    return job;
  }

  async setQueue(name: string, raw: unknown): Promise<QueueState> {
    const q = this.queues.set(normalizeQueue(name, raw));
    this.persist.markQueue({ name: q.name, weight: q.weight, maxCpus: q.maxCpus, maxMem: q.maxMem, maxTasks: q.maxTasks });
    await this.persist.flush();
    this.queueInterest();
    return q;
  }

  mustGet(id: string): Job {
    const job = this.jobs.get(id);
    if (!job) throw new BerthError('NOT_FOUND', `no job '${id}'`);
    return job;
  }

  // ------------------------------------------------------------------ job state

  private emitJob(job: Job): void {
    this.emit({ type: 'job', id: job.id, state: job.state, ...(job.reason ? { reason: job.reason } : {}), counts: job.countsByName() });
  }

  private setJobState(job: Job, state: JobState, reason?: string): void {
    if (job.state === state && job.reason === reason) return;
    job.state = state;
    job.reason = reason;
    job.dirtyMeta = true;
    this.persist.markJob(job);
    this.emitJob(job);
  }

  /** Stops a job: nothing new launches, pending indices end, running tasks are killed. */
  private stop(job: Job, why: NonNullable<Job['stopping']>, reason: string): void {
    if (job.terminal || job.stopping) return;
    job.stopping = why;
    job.reason = reason;
    job.dirtyMeta = true;
    const end = why === 'cancel' || why === 'replace' ? S.CANCELLED : S.FAILED;
    job.drainReady((p) => { if (job.st[p] === S.PENDING) job.setState(p, end); });
    for (let p = 0; p < job.n; p++) {
      if (job.st[p] === S.BACKOFF) { this.clearTimer(`backoff:${job.id}:${p}`); job.setState(p, end); }
      if (job.st[p] === S.PENDING) job.setState(p, end);
    }
    this.persist.markJob(job);
    this.killRunning(job);
    this.checkDone(job);
  }

  private killRunning(job: Job): void {
    if (!this.fw || job.running === 0) return;
    for (let p = 0; p < job.n; p++) {
      if (job.st[p] !== S.STARTING && job.st[p] !== S.RUNNING) continue;
      const a = job.attempts[p]!.at(-1)!;
      this.fw.kill(a.taskId, a.agentId).catch((e: Error) => this.log.warn({ task: a.taskId, err: e.message }, 'kill failed; reconciliation will retry'));
    }
  }

  /** Finishes the job once no index can change any more. */
  private checkDone(job: Job): void {
    if (job.terminal || job.isCron) return;
    const c = job.counts;
    if (c[S.SUCCEEDED]! + c[S.FAILED]! + c[S.CANCELLED]! < job.n) return;
    if (job.stopping === 'cancel' || job.stopping === 'replace') this.finish(job, 'CANCELLED', job.reason ?? 'cancelled');
    else if (job.stopping) this.finish(job, 'FAILED', job.reason);
    else if (c[S.FAILED]! > 0) this.finish(job, 'FAILED', `${c[S.FAILED]} of ${job.n} indices failed`);
    else if (c[S.CANCELLED]! > 0) this.finish(job, 'CANCELLED', 'cancelled');
    else this.finish(job, 'SUCCEEDED');
  }

  private finish(job: Job, state: JobState, reason?: string): void {
    job.finishedAt = this.clock.now();
    this.clearTimer(`deadline:${job.id}`);
    this.setJobState(job, state, reason);
    this.armTtl(job);
    // Children of this job may now start, or fail.
    for (const other of this.jobs.values()) if (!other.terminal && other.spec.dependsOn.includes(job.id)) this.settleDependencies(other);
    this.trimFinished();
    this.queueInterest();
  }

  /** Fails a job whose parent failed (unless it runs anyway), and says whether its parents let it run. */
  private settleDependencies(job: Job): boolean {
    let ok = true;
    for (const d of job.spec.dependsOn) {
      const parent = this.jobs.get(d);
      if (!parent) continue; // expired parents had finished (their children settled then)
      if (parent.state === 'SUCCEEDED') continue;
      if (parent.terminal && job.spec.onParentFailure === 'run') continue;
      if (parent.terminal) {
        if (!job.stopping) this.stop(job, 'parent', `dependency '${d}' ${parent.state}${parent.reason ? `: ${parent.reason}` : ''}`);
        return false;
      }
      ok = false;
    }
    return ok;
  }

  private depsReady(job: Job): boolean {
    for (const d of job.spec.dependsOn) {
      const parent = this.jobs.get(d);
      if (!parent) continue;
      if (parent.state === 'SUCCEEDED' || (parent.terminal && job.spec.onParentFailure === 'run')) continue;
      return false;
    }
    return true;
  }

  /** Keeps at most maxFinishedJobs terminal jobs, dropping the oldest. */
  private trimFinished(): void {
    const max = this.opts.maxFinishedJobs ?? 1000;
    const done = [...this.jobs.values()].filter((j) => j.terminal);
    if (done.length <= max) return;
    done.sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0));
    for (const j of done.slice(0, done.length - max)) this.remove(j);
  }

  private remove(job: Job): void {
    this.jobs.delete(job.id);
    for (const k of ['deadline', 'ttl', 'cron']) this.clearTimer(`${k}:${job.id}`);
    this.persist.markDeleted(job.id);
    void this.persist.flush().catch((e: Error) => this.log.error({ err: e.message }, 'store write failed'));
  }

  // ------------------------------------------------------------------ timers

  private setTimer(key: string, ms: number, fn: () => void): void {
    this.clearTimer(key);
    this.timers.set(key, this.clock.setTimeout(() => { this.timers.delete(key); fn(); }, ms));
  }
  private clearTimer(key: string): void {
    const t = this.timers.get(key);
    if (t) { this.clock.clearTimeout(t); this.timers.delete(key); }
  }

  private armDeadline(job: Job): void {
    const s = job.spec.activeDeadlineSeconds;
    if (!s || job.terminal || job.isCron) return;
    const startedAt = job.startedAt ?? job.submittedAt;
    const left = startedAt + s * 1000 - this.clock.now();
    this.setTimer(`deadline:${job.id}`, Math.max(0, left), () => {
      this.stop(job, 'deadline', `DeadlineExceeded: active for more than ${s} s`);
      void this.persist.flush().catch((e: Error) => this.log.error({ err: e.message }, 'store write failed'));
    });
  }

  private armTtl(job: Job): void {
    const s = job.spec.ttlSecondsAfterFinished;
    if (s === undefined || !job.terminal) return;
    const left = (job.finishedAt ?? this.clock.now()) + s * 1000 - this.clock.now();
    this.setTimer(`ttl:${job.id}`, Math.max(0, left), () => this.remove(job));
  }

  // ------------------------------------------------------------------ cron

  private armCron(job: Job): void {
    if (job.terminal || !job.spec.schedule) return;
    const sch = job.spec.schedule;
    const from = job.lastFire ?? job.submittedAt;
    const at = nextFire(sch.cron, sch.timeZone, from);
    this.setTimer(`cron:${job.id}`, Math.max(0, at - this.clock.now()), () => {
      this.fireCron(job, at);
      this.armCron(job);
    });
  }

  private fireCron(job: Job, at: number): void {
    const sch = job.spec.schedule!;
    job.lastFire = at;
    job.dirtyMeta = true;
    this.persist.markJob(job);
    const late = this.clock.now() - at;
    if (sch.startingDeadlineSeconds !== undefined && late > sch.startingDeadlineSeconds * 1000) {
      this.emit({ type: 'cron', job: job.id, action: 'missed', at, reason: `due ${Math.round(late / 1000)} s ago, past startingDeadlineSeconds ${sch.startingDeadlineSeconds}` });
      void this.persist.flush().catch(() => undefined);
      return;
    }
    const active = job.runs.map((r) => this.jobs.get(r)).filter((r): r is Job => !!r && !r.terminal);
    if (active.length > 0 && sch.concurrencyPolicy === 'Forbid') {
      this.emit({ type: 'cron', job: job.id, action: 'skipped', at, reason: `Forbid: run '${active[0]!.id}' is still ${active[0]!.state}` });
      void this.persist.flush().catch(() => undefined);
      return;
    }
    if (active.length > 0 && sch.concurrencyPolicy === 'Replace') {
      for (const r of active) this.stop(r, 'replace', `replaced by a newer run of '${job.id}'`);
      this.emit({ type: 'cron', job: job.id, action: 'replaced', at, run: active[0]!.id });
    }
    const { schedule: _s, ...rest } = job.spec;
    let id = `${job.id}-${Math.floor(at / 1000)}`;
    if (this.jobs.has(id)) id = `${id}-${this.seq + 1}`;
    const run = this.addJob({ ...rest, id, dependsOn: [] }, this.clock.now(), job.id);
    job.runs.push(id);
    // Keep the last 10 runs' records; older finished runs go.
    while (job.runs.length > 10) {
      const old = this.jobs.get(job.runs[0]!);
      if (old && !old.terminal) break;
      job.runs.shift();
      if (old) this.remove(old);
    }
    this.emit({ type: 'cron', job: job.id, action: 'fired', at, run: id });
    void this.persist.flush().then(() => this.afterCreate(run), (e: Error) => this.log.error({ err: e.message }, 'store write failed'));
  }

  // ------------------------------------------------------------------ offers

  /** Whether any job could use an offer now (or after a running task of it ends). */
  private wantsOffers(): boolean {
    for (const job of this.jobs.values()) {
      if (job.terminal || job.isCron || job.stopping || !job.hasReady) continue;
      if (job.spec.gang && job.running > 0) continue;
      if (this.depsReady(job)) return true;
    }
    return false;
  }

  /**
   * Revive when work appears, suppress when none is left (coalesced to once per tick). A revive is
   * also needed after declining with the long idle filter: new work must not wait for it to expire.
   */
  private queueInterest(): void {
    if (this.interestQueued) return;
    this.interestQueued = true;
    setImmediate(() => {
      this.interestQueued = false;
      if (!this.fw) return;
      const want = this.wantsOffers() || this.held.size > 0;
      if (want && (this.suppressed || this.idleFiltered)) {
        this.suppressed = false;
        this.idleFiltered = false;
        this.stats.revives++;
        this.fw.revive().catch((e: Error) => { this.suppressed = true; this.log.warn({ err: e.message }, 'revive failed'); });
      } else if (!want && !this.suppressed) {
        this.suppressed = true;
        this.stats.suppresses++;
        this.fw.suppress().catch((e: Error) => { this.suppressed = false; this.log.warn({ err: e.message }, 'suppress failed'); });
      }
    });
  }

  onRescind(offerId: string): void {
    this.held.delete(offerId);
    if (this.held.size === 0) this.releaseHold(false);
  }

  /** One offer round: place, persist, accept, decline. */
  async onOffers(offers: Offer[]): Promise<void> {
    if (!this.fw) return;
    this.stats.rounds++;
    for (const o of offers) this.noteCapacity(o);
    const all = [...this.held.values(), ...offers];
    const round = new Round(all);
    const plan = this.place(round);
    if (plan.launched.length > 0) {
      try {
        await this.persist.flush();
      } catch (e) {
        // Not durable: launching now could run an index twice after a crash. Undo and decline.
        this.log.error({ err: (e as Error).message }, 'store write failed; not launching');
        for (const l of plan.launched) this.unlaunch(l.job, l.pos);
        await this.fw.decline(all.map((o) => o.id.value), this.declineSeconds).catch(() => undefined);
        this.held.clear();
        return;
      }
    }
    const calls: Promise<unknown>[] = [];
    const decline: string[] = [];
    for (const [offerId, e] of round.tasks) {
      this.held.delete(offerId);
      this.stats.accepts++;
      calls.push(this.fw.accept(offerId, e.tasks, { refuseSeconds: this.declineSeconds }).catch((err: Error) => this.log.warn({ err: err.message }, 'accept failed; updates will report the tasks lost')));
    }
    for (const o of all) {
      if (round.tasks.has(o.id.value)) continue;
      if (plan.hold) { this.held.set(o.id.value, o); continue; }
      this.held.delete(o.id.value);
      decline.push(o.id.value);
    }
    if (!plan.hold && this.held.size === 0 && this.heldFor) this.releaseHold(false);
    if (decline.length) {
      this.stats.declined += decline.length;
      // Short filter while work waits (a finishing task re-offers sooner anyway); longer when idle.
      const want = this.wantsOffers();
      if (!want) this.idleFiltered = true;
      calls.push(this.fw.decline(decline, want ? this.declineSeconds : 30).catch(() => undefined));
    }
    this.stats.launched += plan.launched.length;
    await Promise.all(calls);
    this.queueInterest();
  }

  /** Total resources seen on an agent: what it offers now plus what our tasks use there. */
  private noteCapacity(o: Offer): void {
    let cpus = 0; let mem = 0;
    for (const r of o.resources ?? []) {
      if (r.name === 'cpus') cpus += r.scalar?.value ?? 0;
      else if (r.name === 'mem') mem += r.scalar?.value ?? 0;
    }
    const used = this.usedOnAgent.get(o.agent_id.value) ?? { cpus: 0, mem: 0 };
    const cap = this.agentCap.get(o.agent_id.value) ?? { cpus: 0, mem: 0 };
    this.agentCap.set(o.agent_id.value, { cpus: Math.max(cap.cpus, cpus + used.cpus), mem: Math.max(cap.mem, mem + used.mem) });
    if (!this.facts.has(o.agent_id.value)) {
      if (this.facts.size >= 100_000) this.facts.clear();
      this.facts.set(o.agent_id.value, agentFacts(o));
    }
  }

  private totals(): { cpus: number; mem: number } {
    let cpus = 0; let mem = 0;
    for (const c of this.agentCap.values()) { cpus += c.cpus; mem += c.mem; }
    return { cpus, mem };
  }

  private addUsage(job: Job, agentId: string, sign: 1 | -1): void {
    const q = this.queues.get(job.spec.queue) ?? this.queues.get('default')!;
    q.used.cpus += sign * job.spec.cpus; q.used.mem += sign * job.spec.mem; q.used.tasks += sign;
    if (Math.abs(q.used.cpus) < 1e-9) q.used.cpus = 0;
    if (Math.abs(q.used.mem) < 1e-9) q.used.mem = 0;
    const u = this.usedOnAgent.get(agentId) ?? { cpus: 0, mem: 0 };
    u.cpus += sign * job.spec.cpus; u.mem += sign * job.spec.mem;
    this.usedOnAgent.set(agentId, u);
  }

  /**
   * The placement loop over one round's offers. Returns the launches made and whether the
   * round's unused offers are to be held for a gang.
   */
  private place(round: Round): { launched: { job: Job; pos: number }[]; hold: boolean } {
    const launched: { job: Job; pos: number }[] = [];
    const now = this.clock.now();
    // Candidates per queue, in priority-then-FIFO order; a cursor skips jobs done for this round.
    const perQueue = new Map<QueueState, { jobs: Job[]; i: number }>();
    for (const job of this.jobs.values()) {
      if (job.terminal || job.isCron || job.stopping || !job.hasReady || !this.depsReady(job)) continue;
      const q = this.queues.get(job.spec.queue) ?? this.queues.get('default')!;
      let e = perQueue.get(q);
      if (!e) { e = { jobs: [], i: 0 }; perQueue.set(q, e); }
      e.jobs.push(job);
    }
    for (const e of perQueue.values()) e.jobs.sort((a, b) => b.spec.priority - a.spec.priority || a.seq - b.seq);
    const blocked = new Set<Job>();
    const usable = (job: Job, q: QueueState): boolean =>
      !blocked.has(job) && job.hasReady && !job.stopping && job.running < job.spec.parallelism && this.queues.fits(q, job.spec.cpus, job.spec.mem) &&
      !(job.spec.gang && (job.running > 0 || job.gangBackoffUntil > now));
    const totals = this.totals();
    const requests = new Map<Job, PlacementRequest>();
    for (;;) {
      const candidates: QueueState[] = [];
      for (const [q, e] of perQueue) {
        while (e.i < e.jobs.length && !usable(e.jobs[e.i]!, q)) e.i++;
        if (e.i < e.jobs.length) candidates.push(q);
      }
      const q = this.queues.pick(candidates, totals);
      if (!q) break;
      const job = perQueue.get(q)!.jobs[perQueue.get(q)!.i]!;
      if (job.spec.gang) {
        if (this.placeGang(job, round, launched)) continue;
        // The head gang does not fit: hold what is left of the offers for it.
        job.waitingFor = `gang: all ${job.readyCount} tasks start together; holding offers for up to ${this.gangHoldMs} ms`;
        if (this.heldFor !== job.id) this.startHold(job);
        return { launched, hold: true };
      }
      let req = requests.get(job);
      if (!req) { req = this.request(job); requests.set(job, req); }
      // With one queue competing, place the job's whole allowance at once; with several, one task
      // at a time so the shares interleave.
      let want = Math.min(job.spec.parallelism - job.running, job.readyCount);
      if (candidates.length > 1) want = 1;
      if (q.maxTasks !== undefined) want = Math.min(want, q.maxTasks - q.used.tasks);
      if (q.maxCpus !== undefined) want = Math.min(want, Math.floor((q.maxCpus - q.used.cpus + 1e-9) / job.spec.cpus));
      if (q.maxMem !== undefined) want = Math.min(want, Math.floor((q.maxMem - q.used.mem + 1e-9) / job.spec.mem));
      want = Math.max(1, want);
      const res = round.placer.place(req, want);
      this.launchPlaced(job, res.placements, round, launched);
      if (res.unplaced > 0) {
        blocked.add(job);
        const why = describeReasons(res.reasons);
        if (job.waitingFor !== why) { job.waitingFor = why; }
      } else job.waitingFor = undefined;
    }
    return { launched, hold: false };
  }

  /** A placement request for one task of `job`, with its constraints and where its live tasks run. */
  private request(job: Job): PlacementRequest {
    const s = job.spec;
    const demand = { cpus: s.cpus, mem: s.mem, ...(s.disk ? { disk: s.disk } : {}), ...(s.gpus ? { gpus: s.gpus } : {}) };
    if (s.constraints.length === 0) return { demand };
    const group = InstanceCounts.for(s.constraints);
    for (let p = 0; p < job.n; p++) {
      if (job.st[p] !== S.STARTING && job.st[p] !== S.RUNNING) continue;
      const f = this.facts.get(job.attempts[p]?.at(-1)?.agentId ?? '');
      if (f) group.add(f);
    }
    return { demand, constraints: s.constraints, group };
  }

  /** Turns placements of `job`'s ready indices into task launches in this round. */
  private launchPlaced(job: Job, placements: readonly Placement[], round: Round, launched: { job: Job; pos: number }[]): void {
    for (const pl of placements) {
      const pos = job.takeReady()!;
      const info = buildTaskInfo(this.taskSpec(job, pos), pl.offer, pl.picked);
      round.add(pl.offer, info);
      this.launched(job, pos, info, pl.offer);
      launched.push({ job, pos });
    }
  }

  /** Places every ready index of a gang, or none. */
  private placeGang(job: Job, round: Round, launched: { job: Job; pos: number }[]): boolean {
    const count = job.readyCount;
    // Trial on the offers nothing was placed on this round, so a gang that does not fit leaves the
    // round untouched. (Identical tasks placed first fit: more capacity never fits fewer.)
    const trial = new Placer(round.offers.filter((o) => !round.tasks.has(o.id.value)));
    const req = this.request(job);
    if (trial.place(req, count).unplaced > 0) return false;
    const res = round.placer.place(req, count);
    if (res.unplaced > 0) return false; // resources taken by the partial placement are not launched
    this.launchPlaced(job, res.placements, round, launched);
    job.gangAttempts++;
    job.dirtyMeta = true;
    if (this.heldFor === job.id) this.releaseHold(false);
    return true;
  }

  private startHold(job: Job): void {
    this.releaseHold(true);
    this.heldFor = job.id;
    this.log.info({ job: job.id, holdMs: this.gangHoldMs }, 'holding offers for a gang that does not fit yet');
    this.holdTimer = this.clock.setTimeout(() => {
      this.holdTimer = undefined;
      // Step aside as long as we held, so other work (and other frameworks' gangs) get the resources.
      job.gangBackoffUntil = this.clock.now() + this.gangHoldMs;
      this.releaseHold(true);
      this.setTimer(`gang:${job.id}`, this.gangHoldMs, () => this.queueInterest());
    }, this.gangHoldMs);
  }

  /** Stops holding; with `decline`, gives the held offers back with a short filter. */
  private releaseHold(decline: boolean): void {
    this.clock.clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    this.heldFor = undefined;
    if (decline && this.held.size > 0 && this.fw) {
      const ids = [...this.held.keys()];
      this.held.clear();
      this.fw.decline(ids, this.declineSeconds).catch(() => undefined);
    }
  }

  private taskSpec(job: Job, pos: number): TaskSpec {
    const index = job.indexAt(pos);
    const attempt = (job.attempts[pos]?.length ?? 0) + 1;
    const s = job.spec;
    return {
      id: taskIdOf(job.id, index, attempt),
      name: `${job.id}[${index}]`,
      cmd: s.cmd,
      cpus: s.cpus, mem: s.mem,
      ...(s.disk ? { disk: s.disk } : {}),
      ...(s.gpus ? { gpus: s.gpus } : {}),
      env: { ...s.env, BERTH_JOB_ID: job.id, BERTH_TASK_INDEX: String(index), BERTH_ARRAY_SIZE: String(job.n), BERTH_TASK_COUNT: String(job.n), BERTH_ATTEMPT: String(attempt) },
      ...(s.user ? { user: s.user } : {}),
      labels: { ...s.labels, 'berth.job': job.id, 'berth.index': String(index) },
      ...(s.fetch.length ? { uris: s.fetch } : {}),
    };
  }

  /** Records a launch (before it is persisted and sent). */
  private launched(job: Job, pos: number, info: TaskInfo, offer: Offer): void {
    const url = offer.url?.address;
    const attempt: Attempt = {
      n: (job.attempts[pos]?.length ?? 0) + 1,
      taskId: info.task_id.value,
      agentId: info.agent_id.value,
      hostname: offer.hostname,
      agentUrl: url ? `http://${url.ip ?? url.hostname}:${url.port}` : undefined,
      launchedAt: this.clock.now(),
    };
    (job.attempts[pos] ??= []).push(attempt);
    job.setState(pos, S.STARTING);
    this.addUsage(job, attempt.agentId!, +1);
    if (!job.startedAt) { job.startedAt = attempt.launchedAt; job.dirtyMeta = true; this.armDeadline(job); }
    if (job.state === 'PENDING') this.setJobState(job, 'RUNNING');
    this.persist.markJob(job);
  }

  /** Undoes `launched` for an attempt that was never sent. */
  private unlaunch(job: Job, pos: number): void {
    const a = job.attempts[pos]!.pop()!;
    if (job.attempts[pos]!.length === 0) job.attempts[pos] = undefined;
    this.addUsage(job, a.agentId!, -1);
    job.setState(pos, S.PENDING);
    job.untake(pos);
    this.persist.markJob(job);
  }

  // ------------------------------------------------------------------ updates

  /** Handles one status update; the acknowledgement goes out once its effect is durable. */
  onUpdate(st: TaskStatus): void {
    this.stats.updates++;
    this.apply(st);
    if (st.uuid && st.agent_id) {
      this.ackQueue.push(st);
      if (!this.ackScheduled) {
        this.ackScheduled = true;
        setImmediate(() => void this.flushAcks());
      }
    }
  }

  private async flushAcks(): Promise<void> {
    this.ackScheduled = false;
    const batch = this.ackQueue;
    this.ackQueue = [];
    try {
      await this.persist.flush();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'store write failed; updates stay unacknowledged and will be redelivered');
      return;
    }
    const fw = this.fw;
    if (!fw) return;
    await Promise.all(batch.map((st) => fw.acknowledge(st).catch(() => undefined)));
  }

  private apply(st: TaskStatus): void {
    const tid = st.task_id.value;
    const parsed = parseTaskId(tid);
    const job = parsed ? this.jobs.get(parsed.jobId) : undefined;
    const pos = job && parsed ? positionOf(job.spec.indices, parsed.index) : -1;
    const list = job && pos >= 0 ? job.attempts[pos] : undefined;
    const att = list && parsed ? list[parsed.attempt - 1] : undefined;
    if (!job || !att || !parsed) {
      // Not ours (or a job since removed): a live task of no job is killed so it cannot run on unseen.
      if (!TERMINAL_TASK.has(st.state) && this.fw) void this.fw.kill(tid, st.agent_id?.value).catch(() => undefined);
      return;
    }
    if (att.endedAt !== undefined) return; // a duplicate of a terminal update already handled
    const ts = st.timestamp ? Math.round(st.timestamp * 1000) : this.clock.now();
    if (st.agent_id && !att.agentId) att.agentId = st.agent_id.value;
    const current = parsed.attempt === list!.length;
    if (!TERMINAL_TASK.has(st.state)) {
      att.state = st.state;
      if (st.state === 'TASK_RUNNING' && att.startedAt === undefined) att.startedAt = ts;
      if (current && st.state === 'TASK_RUNNING' && job.st[pos] === S.STARTING) job.setState(pos, S.RUNNING);
      job.dirtyChunks.add(Math.floor(pos / 128));
      this.persist.markJob(job);
      return;
    }
    att.endedAt = ts;
    att.state = st.state;
    if (st.message) att.message = st.message.slice(0, 1024);
    if (st.reason) att.reason = st.reason;
    const code = exitCodeOf(st.message);
    if (code !== undefined) att.exitCode = code;
    else if (st.state === 'TASK_FINISHED') att.exitCode = 0;
    // Lost before the master ever knew it (reconciliation after our crash, or an ACCEPT that never
    // arrived): it never ran, so it does not count as a failure.
    if (st.reason === 'REASON_RECONCILIATION' && (st.state === 'TASK_LOST' || st.state === 'TASK_UNKNOWN' || st.state === 'TASK_DROPPED')) att.free = true;
    if (st.state === 'TASK_DROPPED') att.free = true;
    if (att.agentId) this.addUsage(job, att.agentId, -1);
    const q = this.queues.get(job.spec.queue);
    if (q && att.startedAt !== undefined) q.cpuSeconds += (job.spec.cpus * Math.max(0, ts - att.startedAt)) / 1000;
    job.dirtyChunks.add(Math.floor(pos / 128));
    this.persist.markJob(job);
    if (!current) { this.queueInterest(); return; }
    this.indexEnded(job, pos, att, st);
    this.queueInterest();
  }

  private indexEnded(job: Job, pos: number, att: Attempt, st: TaskStatus): void {
    const index = job.indexAt(pos);
    const ev = (state: string): void => this.emit({ type: 'index', job: job.id, index, state, attempt: att.n, ...(att.exitCode !== undefined ? { exitCode: att.exitCode } : {}), ...(att.reason ? { reason: att.reason } : {}) });
    if (job.regrouping) { this.gangFailed(job, pos, att); return; }
    if (st.state === 'TASK_FINISHED') {
      job.setState(pos, S.SUCCEEDED);
      ev('SUCCEEDED');
      this.checkDone(job);
      return;
    }
    if (job.stopping) {
      job.setState(pos, job.stopping === 'cancel' || job.stopping === 'replace' ? S.CANCELLED : S.FAILED);
      ev(job.stopping === 'cancel' || job.stopping === 'replace' ? 'CANCELLED' : 'FAILED');
      this.checkDone(job);
      return;
    }
    if (job.spec.gang) { this.gangFailed(job, pos, att); return; }
    // TASK_ERROR means the task itself is invalid: retrying the same spec cannot help.
    const retriable = st.state !== 'TASK_ERROR';
    if (retriable && (att.free || job.countedFailures(pos) <= job.spec.retries)) {
      const n = job.countedFailures(pos);
      const delay = att.free ? 0 : Math.min(LIMITS.maxBackoffSeconds * 1000, job.spec.backoffSeconds * 1000 * 2 ** Math.max(0, n - 1));
      job.setState(pos, S.BACKOFF);
      ev('BACKOFF');
      this.setTimer(`backoff:${job.id}:${pos}`, delay, () => {
        if (job.st[pos] !== S.BACKOFF || !this.jobs.has(job.id)) return;
        job.setState(pos, S.PENDING);
        job.ready.push(pos);
        this.persist.markJob(job);
        this.queueInterest();
      });
      return;
    }
    job.setState(pos, S.FAILED);
    ev('FAILED');
    this.checkDone(job);
  }

  /** One task of a gang failed: the others are killed, and the whole gang is retried or fails. */
  private gangFailed(job: Job, pos: number, att: Attempt): void {
    job.setState(pos, S.FAILED);
    if (job.regrouping) { this.regroup(job); return; }
    const retry = job.gangAttempts <= job.spec.retries || att.free;
    if (!retry) {
      this.stop(job, 'failed', `gang task ${job.indexAt(pos)} failed (${att.state}${att.exitCode !== undefined ? `, exit ${att.exitCode}` : ''}) and retries are used up`);
      return;
    }
    job.regrouping = true;
    this.killRunning(job);
    this.regroup(job);
  }

  /** Once no member of a regrouping gang runs, every member is made ready again, together. */
  private regroup(job: Job): void {
    if (job.running > 0) return;
    job.regrouping = false;
    for (let p = 0; p < job.n; p++) {
      if (job.st[p] === S.SUCCEEDED || job.st[p] === S.FAILED) { job.setState(p, S.PENDING); job.ready.push(p); }
    }
    this.persist.markJob(job);
    this.queueInterest();
  }

  // ------------------------------------------------------------------ views

  /** Cluster capacity seen so far (for reports). */
  capacity(): { cpus: number; mem: number } { return this.totals(); }
}


/** One offer round: the offers, a Placer over them, and the tasks placed per offer. */
class Round {
  readonly placer: Placer;
  readonly tasks = new Map<string, { offer: Offer; tasks: TaskInfo[] }>();
  constructor(readonly offers: Offer[]) { this.placer = new Placer(offers); }
  add(offer: Offer, info: TaskInfo): void {
    let e = this.tasks.get(offer.id.value);
    if (!e) { e = { offer, tasks: [] }; this.tasks.set(offer.id.value, e); }
    e.tasks.push(info);
  }
}
