/**
 * Job specs: the shape a user submits (JSON or YAML), and its validation.
 *
 * Validation is an ordered list of small checks that stops at the first error and names the
 * field at fault (`jobs[1].resources.cpus: must be a number > 0`), as Mesos' validation.cpp does.
 * Nothing is created unless every job of a submission validated: the caller validates the whole
 * batch (including the DAG, see dag.ts) before touching any state.
 */
import { parse as parseYaml } from 'yaml';
import { BerthError, parseConstraints, type Constraint } from '../sdk/index.js';

export type ConcurrencyPolicy = 'Allow' | 'Forbid' | 'Replace';

export interface ScheduleSpec {
  /** Five-field cron expression (minute hour day-of-month month day-of-week), or six with seconds. */
  cron: string;
  /** IANA time zone the expression is read in (default UTC). */
  timeZone?: string;
  /** What to do when a run is due while the previous one is still going (default Allow). */
  concurrencyPolicy?: ConcurrencyPolicy;
  /** A run missed by more than this (framework down, clock jump) is skipped rather than started late. */
  startingDeadlineSeconds?: number;
}

/** What a user submits for one job. Everything but `cmd` and resources has a default. */
export interface JobSpec {
  /** Unique among live jobs; default generated. [a-z0-9][a-z0-9_-]{0,62}. */
  id?: string;
  cmd: string;
  cpus: number;
  mem: number;
  disk?: number;
  gpus?: number;
  /** Number of indices that must succeed (default 1). Ignored when `array` is given. */
  completions?: number;
  /** Slurm-style index list, e.g. `0-999` or `1,3,10-20`; sets completions to its size. */
  array?: string;
  /** At most this many indices run at once (default: all). */
  parallelism?: number;
  /** Failed attempts per index that are retried (default 0). */
  retries?: number;
  /** First retry waits this long, doubling per failure of the same index (default 1 s, capped at 5 min). */
  backoffSeconds?: number;
  activeDeadlineSeconds?: number;
  /** Higher first within a queue (default 0). */
  priority?: number;
  queue?: string;
  labels?: Record<string, string>;
  env?: Record<string, string>;
  user?: string;
  fetch?: string[];
  /** Marathon's `[field, op, value?]` on `hostname` or agent attributes (UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS). */
  constraints?: Constraint[];
  ttlSecondsAfterFinished?: number;
  /** Jobs (ids) that must all succeed before this one starts. */
  dependsOn?: string[];
  /** `fail` (default): a failed or cancelled parent fails this job; `run`: start once parents are done either way. */
  onParentFailure?: 'fail' | 'run';
  /** All `parallelism` tasks start together or none do (MPI-style). */
  gang?: boolean;
  /** Makes this a cron job: each firing creates a run (`<id>-<time>`) from this spec. */
  schedule?: ScheduleSpec;
}

/** A validated spec with every default filled in. */
export interface NormalizedJob extends Required<Omit<JobSpec, 'array' | 'schedule' | 'user' | 'gpus' | 'disk' | 'activeDeadlineSeconds' | 'ttlSecondsAfterFinished'>> {
  /** The index values, in order (`array` expanded; 0..completions-1 without it). */
  indices: IndexList;
  disk: number;
  gpus: number;
  user?: string;
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished?: number;
  schedule?: Required<Omit<ScheduleSpec, 'startingDeadlineSeconds'>> & { startingDeadlineSeconds?: number };
}

/** Index values as ranges, so a 100,000-index array is a few numbers, not 100,000. */
export interface IndexList { ranges: [number, number][]; count: number }

export const LIMITS = {
  maxIndices: 100_000,
  maxRetries: 100,
  maxJobsPerSubmit: 1000,
  maxIdLength: 63,
  maxCmdBytes: 64 * 1024,
  maxEnv: 256,
  maxLabels: 64,
  maxDeps: 64,
  maxConstraints: 32,
  maxFetch: 32,
  maxBackoffSeconds: 300,
  maxBodyBytes: 4 * 1024 * 1024,
} as const;

const ID_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KNOWN_KEYS = new Set(['id', 'cmd', 'cpus', 'mem', 'disk', 'gpus', 'completions', 'array', 'parallelism', 'retries', 'backoffSeconds',
  'activeDeadlineSeconds', 'priority', 'queue', 'labels', 'env', 'user', 'fetch', 'constraints', 'ttlSecondsAfterFinished', 'dependsOn',
  'onParentFailure', 'gang', 'schedule']);

/** A validation failure: `field` is the path at fault, the message says what is wrong with it. */
export class SpecError extends BerthError {
  constructor(readonly field: string, message: string) {
    super('INVALID', `${field}: ${message}`);
  }
}

/**
 * Parses a request body: JSON when it looks like JSON or says so, else YAML. Accepts one job,
 * `{ jobs: [...] }` or a bare list. Malformed text is BAD_MESSAGE (400), not INVALID (422).
 */
export function parseSubmission(text: string, contentType = ''): unknown[] {
  if (Buffer.byteLength(text) > LIMITS.maxBodyBytes) throw new BerthError('TOO_LARGE', `body: at most ${LIMITS.maxBodyBytes} bytes`);
  let doc: unknown;
  const json = /json/i.test(contentType) || (!/yaml/i.test(contentType) && /^\s*[[{]/.test(text));
  try {
    doc = json ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new BerthError('BAD_MESSAGE', `body: not valid ${json ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (Array.isArray(doc)) return doc;
  if (doc && typeof doc === 'object' && Array.isArray((doc as { jobs?: unknown }).jobs)) return (doc as { jobs: unknown[] }).jobs;
  if (doc && typeof doc === 'object') return [doc];
  throw new BerthError('BAD_MESSAGE', 'body: expected a job object, a list of jobs, or {"jobs": [...]}');
}

/** Expands `0-999`, `1,3,5-7`; rejects overlaps, descending ranges and more than maxIndices. */
export function parseArray(text: string, field = 'array'): IndexList {
  const ranges: [number, number][] = [];
  let count = 0;
  const parts = String(text).split(',').map((s) => s.trim());
  if (parts.length > 1000) throw new SpecError(field, 'at most 1000 comma-separated parts');
  for (const p of parts) {
    const m = /^(\d{1,7})(?:-(\d{1,7}))?$/.exec(p);
    if (!m) throw new SpecError(field, `'${p}' is not an index or a range like 0-999`);
    const a = Number(m[1]); const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new SpecError(field, `range '${p}' is descending`);
    const last = ranges[ranges.length - 1];
    if (last && a <= last[1]) throw new SpecError(field, `'${p}' overlaps or is out of order after ${last[0]}-${last[1]}`);
    count += b - a + 1;
    if (count > LIMITS.maxIndices) throw new SpecError(field, `at most ${LIMITS.maxIndices} indices`);
    if (last && a === last[1] + 1) last[1] = b; else ranges.push([a, b]);
  }
  return { ranges, count };
}

/** The i-th index value of a list (0 ≤ i < count). */
export function indexAt(list: IndexList, i: number): number {
  for (const [a, b] of list.ranges) {
    const n = b - a + 1;
    if (i < n) return a + i;
    i -= n;
  }
  throw new RangeError(`index position ${i} out of range`);
}

/** Position of an index value in the list, or -1. */
export function positionOf(list: IndexList, value: number): number {
  let pos = 0;
  for (const [a, b] of list.ranges) {
    if (value >= a && value <= b) return pos + value - a;
    pos += b - a + 1;
  }
  return -1;
}

type Check = (v: Record<string, unknown>, f: (k: string) => string) => void;

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
function positive(field: string, v: unknown, { min = 0, max = Infinity, integer = false, allowZero = false } = {}): void {
  if (!num(v)) throw new SpecError(field, `must be a number (got ${JSON.stringify(v)})`);
  if (integer && !Number.isInteger(v)) throw new SpecError(field, 'must be an integer');
  if (allowZero ? v < min : v <= min) throw new SpecError(field, `must be ${allowZero ? '≥' : '>'} ${min}`);
  if (v > max) throw new SpecError(field, `must be at most ${max}`);
}
function stringMap(field: string, v: unknown, max: number, keyRe?: RegExp): void {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SpecError(field, 'must be an object of strings');
  const entries = Object.entries(v);
  if (entries.length > max) throw new SpecError(field, `at most ${max} entries`);
  for (const [k, x] of entries) {
    if (typeof x !== 'string') throw new SpecError(`${field}.${k}`, 'must be a string');
    if (keyRe && !keyRe.test(k)) throw new SpecError(`${field}.${k}`, `is not a valid name (${keyRe.source})`);
    if (k.length > 256 || x.length > 4096) throw new SpecError(`${field}.${k}`, 'too long');
  }
}

/** The ordered checks: ids and types first, then values, then relations between fields. */
const CHECKS: Check[] = [
  (v, f) => { for (const k of Object.keys(v)) if (!KNOWN_KEYS.has(k)) throw new SpecError(f(k), 'unknown field'); },
  (v, f) => {
    if (v.id === undefined) return;
    if (typeof v.id !== 'string' || !ID_RE.test(v.id)) throw new SpecError(f('id'), `must match ${ID_RE.source} (lowercase letters, digits, - and _, at most ${LIMITS.maxIdLength})`);
  },
  (v, f) => {
    if (typeof v.cmd !== 'string' || v.cmd.trim() === '') throw new SpecError(f('cmd'), 'required: the shell command to run');
    if (Buffer.byteLength(v.cmd) > LIMITS.maxCmdBytes) throw new SpecError(f('cmd'), `at most ${LIMITS.maxCmdBytes} bytes`);
  },
  (v, f) => { positive(f('cpus'), v.cpus, { max: 1024 }); positive(f('mem'), v.mem, { max: 16 * 1024 * 1024 }); },
  (v, f) => {
    if (v.disk !== undefined) positive(f('disk'), v.disk, { allowZero: true });
    if (v.gpus !== undefined) positive(f('gpus'), v.gpus, { allowZero: true, integer: true, max: 64 });
  },
  (v, f) => {
    if (v.array !== undefined) {
      if (typeof v.array !== 'string' && typeof v.array !== 'number') throw new SpecError(f('array'), "must be a string like '0-999'");
      parseArray(String(v.array), f('array'));
      if (v.completions !== undefined) throw new SpecError(f('completions'), "give either 'array' or 'completions', not both");
    }
    if (v.completions !== undefined) positive(f('completions'), v.completions, { integer: true, max: LIMITS.maxIndices });
    if (v.parallelism !== undefined) positive(f('parallelism'), v.parallelism, { integer: true, max: LIMITS.maxIndices });
  },
  (v, f) => {
    if (v.retries !== undefined) positive(f('retries'), v.retries, { integer: true, allowZero: true, max: LIMITS.maxRetries });
    if (v.backoffSeconds !== undefined) positive(f('backoffSeconds'), v.backoffSeconds, { allowZero: true, max: LIMITS.maxBackoffSeconds });
    if (v.activeDeadlineSeconds !== undefined) positive(f('activeDeadlineSeconds'), v.activeDeadlineSeconds, { max: 365 * 86400 });
    if (v.ttlSecondsAfterFinished !== undefined) positive(f('ttlSecondsAfterFinished'), v.ttlSecondsAfterFinished, { allowZero: true, max: 365 * 86400 });
    if (v.priority !== undefined && (!num(v.priority) || !Number.isInteger(v.priority) || Math.abs(v.priority) > 1e6)) {
      throw new SpecError(f('priority'), 'must be an integer between -1000000 and 1000000');
    }
  },
  (v, f) => {
    if (v.queue !== undefined && (typeof v.queue !== 'string' || !ID_RE.test(v.queue))) throw new SpecError(f('queue'), `must match ${ID_RE.source}`);
    if (v.user !== undefined && (typeof v.user !== 'string' || !/^[a-z_][a-z0-9_-]{0,31}$/i.test(v.user))) throw new SpecError(f('user'), 'must be a user name');
    if (v.labels !== undefined) stringMap(f('labels'), v.labels, LIMITS.maxLabels);
    if (v.env !== undefined) stringMap(f('env'), v.env, LIMITS.maxEnv, ENV_NAME_RE);
  },
  (v, f) => {
    if (v.fetch === undefined) return;
    if (!Array.isArray(v.fetch) || v.fetch.length > LIMITS.maxFetch) throw new SpecError(f('fetch'), `must be a list of at most ${LIMITS.maxFetch} URIs`);
    v.fetch.forEach((u, i) => { if (typeof u !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\/\S+$|^\/\S+$/i.test(u)) throw new SpecError(f(`fetch[${i}]`), 'must be a URI (scheme://…) or an absolute path'); });
  },
  (v, f) => {
    if (v.constraints === undefined) return;
    if (!Array.isArray(v.constraints) || v.constraints.length > LIMITS.maxConstraints) throw new SpecError(f('constraints'), `must be a list of at most ${LIMITS.maxConstraints} [field, op, value]`);
    // The SDK's parser is the one home of constraint rules (the service framework uses it too).
    parseConstraints(v.constraints, f('constraints'));
  },
  (v, f) => {
    if (v.dependsOn === undefined) return;
    if (!Array.isArray(v.dependsOn) || v.dependsOn.length > LIMITS.maxDeps) throw new SpecError(f('dependsOn'), `must be a list of at most ${LIMITS.maxDeps} job ids`);
    v.dependsOn.forEach((d, i) => { if (typeof d !== 'string' || !ID_RE.test(d)) throw new SpecError(f(`dependsOn[${i}]`), 'must be a job id'); });
    if (new Set(v.dependsOn).size !== v.dependsOn.length) throw new SpecError(f('dependsOn'), 'lists a job twice');
    if (v.id !== undefined && v.dependsOn.includes(v.id)) throw new SpecError(f('dependsOn'), `job '${v.id}' depends on itself (cycle ${v.id} → ${v.id})`);
    if (v.onParentFailure !== undefined && v.onParentFailure !== 'fail' && v.onParentFailure !== 'run') throw new SpecError(f('onParentFailure'), "must be 'fail' or 'run'");
  },
  (v, f) => {
    if (v.gang === undefined) return;
    if (typeof v.gang !== 'boolean') throw new SpecError(f('gang'), 'must be true or false');
    if (!v.gang) return;
    const n = v.array !== undefined ? parseArray(String(v.array)).count : (v.completions as number | undefined) ?? 1;
    if (v.parallelism !== undefined && v.parallelism !== n) throw new SpecError(f('parallelism'), `a gang starts all its tasks together: parallelism must equal the number of indices (${n})`);
    if (n > 1000) throw new SpecError(f('completions'), 'a gang has at most 1000 tasks');
  },
  (v, f) => {
    if (v.schedule === undefined) return;
    const s = v.schedule as Record<string, unknown>;
    if (!s || typeof s !== 'object' || Array.isArray(s)) throw new SpecError(f('schedule'), 'must be an object { cron, timeZone?, concurrencyPolicy?, startingDeadlineSeconds? }');
    for (const k of Object.keys(s)) if (!['cron', 'timeZone', 'concurrencyPolicy', 'startingDeadlineSeconds'].includes(k)) throw new SpecError(f(`schedule.${k}`), 'unknown field');
    if (typeof s.cron !== 'string' || s.cron.length > 200) throw new SpecError(f('schedule.cron'), "required: a cron expression like '*/5 * * * *'");
    if (s.timeZone !== undefined) {
      if (typeof s.timeZone !== 'string') throw new SpecError(f('schedule.timeZone'), 'must be an IANA time zone name');
      try { new Intl.DateTimeFormat('en', { timeZone: s.timeZone }); } catch { throw new SpecError(f('schedule.timeZone'), `unknown time zone '${s.timeZone}'`); }
    }
    if (s.concurrencyPolicy !== undefined && !['Allow', 'Forbid', 'Replace'].includes(s.concurrencyPolicy as string)) {
      throw new SpecError(f('schedule.concurrencyPolicy'), 'must be Allow, Forbid or Replace');
    }
    if (s.startingDeadlineSeconds !== undefined) positive(f('schedule.startingDeadlineSeconds'), s.startingDeadlineSeconds, { max: 365 * 86400 });
    if (v.dependsOn !== undefined) throw new SpecError(f('dependsOn'), 'a cron job cannot depend on other jobs');
  },
];

/**
 * Validates one raw job and fills in defaults. `where` prefixes field names (`jobs[2]`).
 * `validCron` checks an expression (cron.ts), kept out of here so this file has no clock.
 */
export function normalizeJob(raw: unknown, where: string, validCron: (expr: string, tz: string) => string | undefined): NormalizedJob {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new SpecError(where || 'job', 'must be an object');
  const v = raw as Record<string, unknown>;
  const f = (k: string): string => (where ? `${where}.${k}` : k);
  for (const check of CHECKS) check(v, f);
  const s = v as unknown as JobSpec;
  const indices = s.array !== undefined ? parseArray(String(s.array)) : { ranges: [[0, (s.completions ?? 1) - 1]] as [number, number][], count: s.completions ?? 1 };
  let schedule: NormalizedJob['schedule'];
  if (s.schedule) {
    const tz = s.schedule.timeZone ?? 'UTC';
    const err = validCron(s.schedule.cron, tz);
    if (err) throw new SpecError(f('schedule.cron'), err);
    schedule = { cron: s.schedule.cron, timeZone: tz, concurrencyPolicy: s.schedule.concurrencyPolicy ?? 'Allow', startingDeadlineSeconds: s.schedule.startingDeadlineSeconds };
  }
  return {
    id: s.id ?? '',
    cmd: s.cmd,
    cpus: s.cpus,
    mem: s.mem,
    disk: s.disk ?? 0,
    gpus: s.gpus ?? 0,
    completions: indices.count,
    indices,
    parallelism: Math.min(s.parallelism ?? indices.count, indices.count),
    retries: s.retries ?? 0,
    backoffSeconds: s.backoffSeconds ?? 1,
    activeDeadlineSeconds: s.activeDeadlineSeconds,
    priority: s.priority ?? 0,
    queue: s.queue ?? 'default',
    labels: s.labels ?? {},
    env: s.env ?? {},
    user: s.user,
    fetch: s.fetch ?? [],
    constraints: s.constraints ? parseConstraints(s.constraints) : [],
    ttlSecondsAfterFinished: s.ttlSecondsAfterFinished,
    dependsOn: s.dependsOn ?? [],
    onParentFailure: s.onParentFailure ?? 'fail',
    gang: s.gang ?? false,
    schedule,
  };
}
