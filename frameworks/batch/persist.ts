/**
 * The batch framework's state behind the SDK's key-value Store (a file by default, NATS KV in a
 * cluster):
 *
 *   <prefix>meta                 { frameworkId, seq }
 *   <prefix>queue/<name>         a queue's config
 *   <prefix>job/<id>             a job's spec and job-level state
 *   <prefix>idx/<id>/<chunk>     states and attempts of index positions chunk*128 … chunk*128+127
 *
 * Only chunks an index has touched are written, so a 10,000-task job costs ~80 small writes over
 * its life per state change wave, not 10,000, and a flush writes only what changed since the last.
 *
 * Invariants the engine relies on:
 *  - `flush()` resolves once everything marked dirty before the call is durable;
 *  - flushes run one at a time, in order, so a chunk's later value never lands before an earlier one.
 */
import type { Store } from '../sdk/index.js';
import { CHUNK, Job, S, type Attempt, type JobState } from './model.js';
import type { NormalizedJob } from './spec.js';
import type { QueueConfig } from './queues.js';

export interface JobMeta {
  id: string;
  spec: NormalizedJob;
  seq: number;
  submittedAt: number;
  cronParent?: string;
  state: JobState;
  reason?: string;
  startedAt?: number;
  finishedAt?: number;
  stopping?: Job['stopping'];
  gangAttempts: number;
  lastFire?: number;
  runs: string[];
  retryBase?: [number, number][];
}

interface ChunkRec { s: number[]; a: Record<string, Attempt[]> }

export interface Loaded {
  meta: { frameworkId?: string; seq: number };
  queues: QueueConfig[];
  jobs: Job[];
}

export class Persist {
  private pending?: Promise<void>;
  private chain: Promise<void> = Promise.resolve();
  private readonly dirty = new Set<Job>();
  private readonly deleted = new Set<string>();
  private readonly dirtyQueues = new Map<string, QueueConfig | null>();
  private meta: { frameworkId?: string; seq: number } = { seq: 0 };
  private metaDirty = false;
  /** Puts written so far (for tests and the bench). */
  writes = 0;

  constructor(private readonly store: Store, private readonly prefix = 'batch/') {}

  async load(): Promise<Loaded> {
    const entries = await this.store.list(this.prefix);
    const jobs = new Map<string, Job>();
    const chunks: [string, number, ChunkRec][] = [];
    const queues: QueueConfig[] = [];
    for (const e of entries) {
      const key = e.key.slice(this.prefix.length);
      if (key === 'meta') this.meta = JSON.parse(e.value) as { frameworkId?: string; seq: number };
      else if (key.startsWith('queue/')) queues.push(JSON.parse(e.value) as QueueConfig);
      else if (key.startsWith('job/')) {
        const m = JSON.parse(e.value) as JobMeta;
        const job = new Job(m.id, m.spec, m.seq, m.submittedAt, m.cronParent);
        job.state = m.state; job.reason = m.reason; job.startedAt = m.startedAt; job.finishedAt = m.finishedAt;
        job.stopping = m.stopping; job.gangAttempts = m.gangAttempts; job.lastFire = m.lastFire; job.runs = m.runs ?? [];
        for (const [p, b] of m.retryBase ?? []) job.retryBase.set(p, b);
        job.dirtyMeta = false;
        jobs.set(m.id, job);
      } else if (key.startsWith('idx/')) {
        const [, id, c] = key.split('/');
        chunks.push([id!, Number(c), JSON.parse(e.value) as ChunkRec]);
      }
    }
    for (const [id, c, rec] of chunks) {
      const job = jobs.get(id);
      if (!job) continue;
      const base = c * CHUNK;
      rec.s.forEach((code, i) => { if (base + i < job.n) job.setState(base + i, code); });
      for (const [off, list] of Object.entries(rec.a)) job.attempts[base + Number(off)] = list;
    }
    for (const job of jobs.values()) {
      job.dirtyChunks.clear();
      // Every position not yet finished and not in flight is ready again, in order; a backoff
      // interrupted by the restart simply ends now.
      job.fresh = job.n;
      job.ready = [];
      for (let p = 0; p < job.n; p++) {
        const s = job.st[p]!;
        if (s === S.BACKOFF) job.setState(p, S.PENDING);
        if (job.st[p] === S.PENDING) job.ready.push(p);
      }
    }
    return { meta: { ...this.meta }, queues, jobs: [...jobs.values()].sort((a, b) => a.seq - b.seq) };
  }

  markJob(job: Job): void { this.dirty.add(job); }
  markDeleted(id: string): void { this.deleted.add(id); }
  markQueue(q: QueueConfig): void { this.dirtyQueues.set(q.name, q); }
  setMeta(m: { frameworkId?: string; seq: number }): void { this.meta = { ...m }; this.metaDirty = true; }

  /** Resolves once every change marked before this call is durable. */
  flush(): Promise<void> {
    if (this.pending) return this.pending;
    const p = this.chain.then(() => { this.pending = undefined; return this.writeDirty(); });
    this.pending = p;
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async writeDirty(): Promise<void> {
    const puts: Promise<unknown>[] = [];
    const put = (k: string, v: unknown): void => { this.writes++; puts.push(this.store.put(this.prefix + k, JSON.stringify(v))); };
    if (this.metaDirty) { this.metaDirty = false; put('meta', this.meta); }
    for (const [name, q] of this.dirtyQueues) if (q) put(`queue/${name}`, q);
    this.dirtyQueues.clear();
    for (const job of this.dirty) {
      if (this.deleted.has(job.id)) continue;
      if (job.dirtyMeta) { job.dirtyMeta = false; put(`job/${job.id}`, metaOf(job)); }
      for (const c of job.dirtyChunks) put(`idx/${job.id}/${c}`, chunkOf(job, c));
      job.dirtyChunks.clear();
    }
    this.dirty.clear();
    const gone = [...this.deleted];
    this.deleted.clear();
    for (const id of gone) {
      puts.push((async () => {
        for (const e of await this.store.list(`${this.prefix}idx/${id}/`)) await this.store.delete(e.key);
        await this.store.delete(`${this.prefix}job/${id}`);
      })());
    }
    await Promise.all(puts);
  }
}

function metaOf(job: Job): JobMeta {
  return {
    id: job.id, spec: job.spec, seq: job.seq, submittedAt: job.submittedAt, cronParent: job.cronParent, state: job.state, reason: job.reason,
    startedAt: job.startedAt, finishedAt: job.finishedAt, stopping: job.stopping, gangAttempts: job.gangAttempts, lastFire: job.lastFire, runs: job.runs,
    ...(job.retryBase.size ? { retryBase: [...job.retryBase] } : {}),
  };
}

function chunkOf(job: Job, c: number): ChunkRec {
  const base = c * CHUNK;
  const end = Math.min(job.n, base + CHUNK);
  const a: Record<string, Attempt[]> = {};
  for (let p = base; p < end; p++) { const l = job.attempts[p]; if (l) a[p - base] = l; }
  return { s: Array.from(job.st.subarray(base, end)), a };
}
