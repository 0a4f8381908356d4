/**
 * The batch framework's runtime model: a job, its indices and their attempts, in a compact form
 * (one byte of state per index, attempts only for indices that ran), so a 100,000-index array
 * costs a few hundred KiB, not 100,000 objects.
 *
 * Job states:
 *   PENDING    accepted; waiting for its parents, for offers, or for its first task to start
 *   RUNNING    at least one task launched
 *   SUCCEEDED  every index succeeded
 *   FAILED     some index failed for good, a parent failed, or the deadline passed (`reason` says which)
 *   CANCELLED  cancelled by a user (or replaced by its cron schedule)
 *   SCHEDULED  a cron job: a template that creates runs; never runs tasks itself
 *
 * Index states (`IDX`): PENDING → STARTING (ACCEPT sent, persisted first) → RUNNING →
 * SUCCEEDED | FAILED | CANCELLED, with BACKOFF between a failed attempt and its retry.
 */
import { indexAt, type NormalizedJob } from './spec.js';

export type JobState = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'SCHEDULED';
export const IDX = ['PENDING', 'BACKOFF', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export type IndexState = typeof IDX[number];
export const S = { PENDING: 0, BACKOFF: 1, STARTING: 2, RUNNING: 3, SUCCEEDED: 4, FAILED: 5, CANCELLED: 6 } as const;

export const isJobTerminal = (s: JobState): boolean => s === 'SUCCEEDED' || s === 'FAILED' || s === 'CANCELLED';

/** One try of one index. Times are epoch milliseconds. */
export interface Attempt {
  /** 1-based attempt number of this index. */
  n: number;
  taskId: string;
  agentId?: string;
  hostname?: string;
  /** The agent's HTTP endpoint (`http://ip:port`), where the sandbox files are read from. */
  agentUrl?: string;
  launchedAt: number;
  startedAt?: number;
  endedAt?: number;
  /** Last TaskState seen (TASK_FINISHED, TASK_FAILED…). */
  state?: string;
  exitCode?: number;
  reason?: string;
  message?: string;
  /** True when the attempt never ran (lost before the master knew it): it does not use up a retry. */
  free?: boolean;
}

/** Index positions per stored chunk (see persist.ts). */
export const CHUNK = 128;

export class Job {
  readonly n: number;
  /** State per index position (0..n-1), codes of `S`. */
  readonly st: Uint8Array;
  /** Attempts per position, only where one was made. */
  readonly attempts: (Attempt[] | undefined)[];
  /** Count of positions per state code. */
  readonly counts: number[] = [0, 0, 0, 0, 0, 0, 0];
  /** Positions never tried are `fresh..n-1` (in order); retried and rerun ones wait in `ready`. */
  fresh = 0;
  ready: number[] = [];
  readyHead = 0;
  /** Failures that count against `retries` start after this many attempts (set by rerun). */
  readonly retryBase = new Map<number, number>();
  state: JobState;
  reason?: string;
  startedAt?: number;
  finishedAt?: number;
  /** Set by cancel or deadline: no new launches, running tasks are being killed. */
  stopping?: 'cancel' | 'deadline' | 'parent' | 'replace' | 'failed';
  /** Why the job's next task found no offer in the last round (counted reasons), if it did not. */
  waitingFor?: string;
  /** Gang jobs: a member failed; the rest are being killed before the whole gang is tried again. */
  regrouping = false;
  /** Gang jobs: attempts of the whole gang so far. */
  gangAttempts = 0;
  /** Gang jobs: do not hold offers for this gang before this time (after a hold timed out). */
  gangBackoffUntil = 0;
  /** Cron jobs: the last fire time handled; runs created, newest last. */
  lastFire?: number;
  runs: string[] = [];
  /** Dirty marks for persistence. */
  dirtyMeta = true;
  readonly dirtyChunks = new Set<number>();

  constructor(
    readonly id: string,
    readonly spec: NormalizedJob,
    readonly seq: number,
    readonly submittedAt: number,
    readonly cronParent?: string,
  ) {
    this.n = spec.schedule ? 0 : spec.indices.count;
    this.st = new Uint8Array(this.n);
    this.attempts = new Array(this.n);
    this.counts[S.PENDING] = this.n;
    this.state = spec.schedule ? 'SCHEDULED' : 'PENDING';
  }

  get isCron(): boolean { return !!this.spec.schedule; }
  get running(): number { return this.counts[S.STARTING]! + this.counts[S.RUNNING]!; }
  get hasReady(): boolean { return this.fresh < this.n || this.readyHead < this.ready.length; }
  get readyCount(): number { return this.n - this.fresh + this.ready.length - this.readyHead; }
  get terminal(): boolean { return isJobTerminal(this.state); }

  /** The index value at a position. */
  indexAt(pos: number): number { return indexAt(this.spec.indices, pos); }

  setState(pos: number, code: number): void {
    const old = this.st[pos]!;
    if (old === code) return;
    this.counts[old]!--;
    this.counts[code]!++;
    this.st[pos] = code;
    this.dirtyChunks.add(Math.floor(pos / CHUNK));
  }

  /** Takes the next position to launch (retries first, then fresh ones), or undefined. */
  takeReady(): number | undefined {
    if (this.readyHead < this.ready.length) {
      const p = this.ready[this.readyHead++]!;
      if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) { this.ready = this.ready.slice(this.readyHead); this.readyHead = 0; }
      return p;
    }
    if (this.fresh < this.n) return this.fresh++;
    return undefined;
  }

  /** Puts back a position taken but not launched (it did not fit), at the front. */
  untake(pos: number): void {
    if (pos === this.fresh - 1 && this.st[pos] === S.PENDING && !this.attempts[pos]) { this.fresh--; return; }
    if (this.readyHead > 0) this.ready[--this.readyHead] = pos; else this.ready.unshift(pos);
  }

  /** Drops every not-yet-launched position, calling `each` on it. */
  drainReady(each: (pos: number) => void): void {
    for (let i = this.readyHead; i < this.ready.length; i++) each(this.ready[i]!);
    this.ready = []; this.readyHead = 0;
    for (; this.fresh < this.n; this.fresh++) each(this.fresh);
  }

  /** Failed attempts that count against `retries` for a position. */
  countedFailures(pos: number): number {
    const list = this.attempts[pos] ?? [];
    const base = this.retryBase.get(pos) ?? 0;
    let k = 0;
    for (let i = base; i < list.length; i++) if (!list[i]!.free && list[i]!.state !== 'TASK_FINISHED') k++;
    return k;
  }

  /** Per-state counts by name. */
  countsByName(): Record<IndexState, number> {
    const out = {} as Record<IndexState, number>;
    IDX.forEach((name, i) => { out[name] = this.counts[i]!; });
    return out;
  }

  /** Resources one task asks for. */
  get demand(): { cpus: number; mem: number } { return { cpus: this.spec.cpus, mem: this.spec.mem }; }
}

/** Task ids are `<job>.<index>.<attempt>`: readable in the agent's sandbox paths, and parseable on reconciliation. */
export function taskIdOf(jobId: string, index: number, attempt: number): string { return `${jobId}.${index}.${attempt}`; }

export function parseTaskId(id: string): { jobId: string; index: number; attempt: number } | undefined {
  const m = /^([a-z0-9][a-z0-9_-]*)\.(\d+)\.(\d+)$/.exec(id);
  return m ? { jobId: m[1]!, index: Number(m[2]), attempt: Number(m[3]) } : undefined;
}

/** The exit code in an agent's terminal message ("Command exited with status 3"), if any. */
export function exitCodeOf(message: string | undefined): number | undefined {
  const m = /(?:exit(?:ed)?(?: with)?(?: status| code)?)\s*(\d{1,3})\b/i.exec(message ?? '');
  return m ? Number(m[1]) : undefined;
}
