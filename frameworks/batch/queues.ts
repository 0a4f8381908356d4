/**
 * Queues and weighted fair share. Each job belongs to one queue; offers are handed out one task
 * at a time to the queue with the lowest weighted dominant share (DRF over cpus and mem, the
 * share divided by the queue's weight), then within it to the job with the highest priority,
 * then the oldest (FIFO). Caps (max cpus / mem / tasks running) bound a queue regardless of share.
 *
 * Invariant: `used` is exactly the sum of the resources of this framework's tasks in the queue
 * that are launched and not yet terminal (the engine adds on launch and subtracts on the terminal
 * update, once per attempt).
 */
import { SpecError } from './spec.js';

export interface QueueConfig {
  name: string;
  weight: number;
  maxCpus?: number;
  maxMem?: number;
  maxTasks?: number;
}

export interface Usage { cpus: number; mem: number; tasks: number }

export interface QueueState extends QueueConfig {
  used: Usage;
  /** Cumulative cpu-seconds of finished attempts, for reporting and fairness checks. */
  cpuSeconds: number;
}

export const MAX_QUEUES = 100;
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Validates a queue definition from the API or the command line. */
export function normalizeQueue(name: string, raw: unknown): QueueConfig {
  if (!NAME_RE.test(name)) throw new SpecError('name', `queue name must match ${NAME_RE.source}`);
  const v = (raw ?? {}) as Record<string, unknown>;
  if (typeof v !== 'object' || Array.isArray(v)) throw new SpecError('queue', 'must be an object { weight, maxCpus?, maxMem?, maxTasks? }');
  for (const k of Object.keys(v)) if (!['name', 'weight', 'maxCpus', 'maxMem', 'maxTasks'].includes(k)) throw new SpecError(k, 'unknown field');
  const weight = v.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0 || weight > 1000) throw new SpecError('weight', 'must be a number in (0, 1000]');
  const q: QueueConfig = { name, weight };
  for (const k of ['maxCpus', 'maxMem', 'maxTasks'] as const) {
    const x = v[k];
    if (x === undefined || x === null) continue;
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw new SpecError(k, 'must be a number > 0');
    q[k] = x;
  }
  return q;
}

/** `a:3,b:1` → queue configs (the `--queues` flag). */
export function parseQueuesFlag(text: string): QueueConfig[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((part) => {
    const [name, w] = part.split(':');
    return normalizeQueue(name ?? '', { weight: w === undefined ? 1 : Number(w) });
  });
}

export class Queues {
  private readonly map = new Map<string, QueueState>();

  constructor(configs: QueueConfig[] = []) {
    this.set({ name: 'default', weight: 1 });
    for (const c of configs) this.set(c);
  }

  set(c: QueueConfig): QueueState {
    const cur = this.map.get(c.name);
    if (!cur && this.map.size >= MAX_QUEUES) throw new SpecError('name', `at most ${MAX_QUEUES} queues`);
    const q: QueueState = { ...c, used: cur?.used ?? { cpus: 0, mem: 0, tasks: 0 }, cpuSeconds: cur?.cpuSeconds ?? 0 };
    this.map.set(c.name, q);
    return q;
  }

  get(name: string): QueueState | undefined { return this.map.get(name); }
  has(name: string): boolean { return this.map.has(name); }
  names(): string[] { return [...this.map.keys()].sort(); }
  all(): QueueState[] { return this.names().map((n) => this.map.get(n)!); }

  /** Weighted dominant share of a queue against cluster totals. */
  share(q: QueueState, total: { cpus: number; mem: number }): number {
    const c = total.cpus > 0 ? q.used.cpus / total.cpus : 0;
    const m = total.mem > 0 ? q.used.mem / total.mem : 0;
    return Math.max(c, m) / q.weight;
  }

  /** Whether one more task of this size stays within the queue's caps. */
  fits(q: QueueState, cpus: number, mem: number): boolean {
    if (q.maxTasks !== undefined && q.used.tasks + 1 > q.maxTasks) return false;
    if (q.maxCpus !== undefined && q.used.cpus + cpus > q.maxCpus + 1e-9) return false;
    if (q.maxMem !== undefined && q.used.mem + mem > q.maxMem + 1e-9) return false;
    return true;
  }

  /**
   * The queue to serve next among `candidates`: lowest weighted dominant share, ties by name
   * (deterministic).
   */
  pick(candidates: Iterable<QueueState>, total: { cpus: number; mem: number }): QueueState | undefined {
    let best: QueueState | undefined;
    let bestShare = Infinity;
    for (const q of candidates) {
      const s = this.share(q, total);
      if (s < bestShare - 1e-12 || (Math.abs(s - bestShare) <= 1e-12 && best && q.name < best.name)) { best = q; bestShare = s; }
    }
    return best;
  }
}
