/**
 * Building tasks and carving resources out of offers, so a framework never
 * hand-builds protobufs. Amounts are handled in thousandths (integers), as
 * Mesos and proto/resources.ts do, so 0.1 + 0.2 cpus fit exactly into 0.3.
 *
 * Picked resources are copies of the offer's own Resource entries with the
 * amount changed: `allocation_info.role`, `reservations` and `role` ride along
 * untouched, which is what the master's "contained in the offer" check and
 * multi-role frameworks need.
 */
import { randomBytes } from 'node:crypto';
import { BerthError } from '../../proto/errors.js';
import type { Label, Offer, Resource, TaskInfo } from '../../proto/types.js';

/** What a task needs and runs, in plain terms. */
export interface TaskSpec {
  /** Task id; default `${name}-<random>`. Must be unique among the framework's live tasks. */
  id?: string;
  name?: string;
  /** Shell command (`sh -c`). */
  cmd?: string;
  /** Or an argv run without a shell: `['/bin/echo', 'hi']`. */
  argv?: string[];
  cpus?: number;
  mem?: number;
  disk?: number;
  gpus?: number;
  /** Number of host ports to assign from the offer's `ports` ranges (exposed as $PORT0…, $PORTS). */
  ports?: number;
  env?: Record<string, string>;
  user?: string;
  labels?: Record<string, string>;
  /** URIs fetched into the sandbox before the command starts. */
  uris?: string[];
  /** Grace period between SIGTERM and SIGKILL on kill. */
  killGracePeriodSeconds?: number;
  /** Any further TaskInfo fields, merged last (health_check, container, …). */
  extra?: Partial<TaskInfo>;
}

export interface ResourceDemand { cpus?: number; mem?: number; disk?: number; gpus?: number; ports?: number }

/** Resources picked out of an offer for one task. */
export interface Picked {
  resources: Resource[];
  /** Host ports assigned, in the order given to $PORT0, $PORT1, … */
  ports: number[];
}

const milli = (v: number): number => Math.round(v * 1000);
const SCALARS = ['cpus', 'mem', 'disk', 'gpus'] as const;

/** Returns the spec (a typed identity that checks it early: a bad spec fails where it is written). */
export function task(spec: TaskSpec): TaskSpec {
  if (!spec.cmd && !spec.argv?.length && !spec.extra?.command && !spec.extra?.container) {
    throw new BerthError('INVALID', `task ${spec.id ?? spec.name ?? ''}: give 'cmd' or 'argv'`);
  }
  for (const k of SCALARS) {
    const v = spec[k];
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new BerthError('INVALID', `task ${spec.id ?? spec.name ?? ''}: ${k} must be a non-negative number`);
  }
  if (spec.ports !== undefined && (!Number.isInteger(spec.ports) || spec.ports < 0)) throw new BerthError('INVALID', 'task: ports must be a non-negative integer');
  if (!spec.cpus && !spec.mem) throw new BerthError('INVALID', `task ${spec.id ?? spec.name ?? ''}: give cpus or mem (the master requires one)`);
  return spec;
}

/**
 * What is left of one offer as tasks are carved out of it. Each entry keeps the offer's
 * Resource as a template (role, reservations, allocation_info) with the remaining amount.
 */
export class FreeList {
  private readonly scalars: { tpl: Resource; left: number }[] = [];
  private readonly ranges: { tpl: Resource; left: [number, number][] }[] = [];

  constructor(resources: readonly Resource[]) {
    for (const r of resources) {
      if (r.type === 'SCALAR' && r.scalar) this.scalars.push({ tpl: r, left: milli(r.scalar.value) });
      else if (r.type === 'RANGES' && r.ranges) this.ranges.push({ tpl: r, left: (r.ranges.range ?? []).map((x) => [x.begin, x.end]) });
    }
  }

  /** Thousandths of scalar `name` left (summed over roles and reservations). */
  amount(name: string): number {
    let sum = 0;
    for (const s of this.scalars) if (s.tpl.name === name) sum += s.left;
    return sum;
  }

  /** Number of ports left. */
  portCount(): number {
    let n = 0;
    for (const r of this.ranges) if (r.tpl.name === 'ports') for (const [a, b] of r.left) n += b - a + 1;
    return n;
  }

  /** Whether every scalar of `demand` fits in what is left (ports not considered). Allocates nothing. */
  fitsScalars(demand: ResourceDemand): boolean {
    for (let k = 0; k < SCALARS.length; k++) {
      const v = demand[SCALARS[k]!];
      if (v === undefined || v <= 0) continue;
      if (this.amount(SCALARS[k]!) < milli(v)) return false;
    }
    return true;
  }

  /** The names of the resources `demand` needs more of than is left (empty when it fits). */
  lacking(demand: ResourceDemand): string[] {
    const out: string[] = [];
    for (const name of SCALARS) {
      const need = milli(demand[name] ?? 0);
      if (need > 0 && this.amount(name) < need) out.push(name);
    }
    if ((demand.ports ?? 0) > 0 && this.portCount() < demand.ports!) out.push('ports');
    return out;
  }

  /** Takes `demand` if all of it fits, else takes nothing and returns undefined. */
  take(demand: ResourceDemand): Picked | undefined {
    const plan: { i: number; amount: number }[] = [];
    for (const name of SCALARS) {
      let need = milli(demand[name] ?? 0);
      for (let i = 0; i < this.scalars.length && need > 0; i++) {
        const s = this.scalars[i]!;
        if (s.tpl.name !== name || s.left <= 0) continue;
        const amount = Math.min(s.left, need);
        plan.push({ i, amount });
        need -= amount;
      }
      if (need > 0) return undefined;
    }
    let portsNeeded = demand.ports ?? 0;
    const portPlan: { i: number; ports: number[] }[] = [];
    for (let i = 0; i < this.ranges.length && portsNeeded > 0; i++) {
      const r = this.ranges[i]!;
      if (r.tpl.name !== 'ports') continue;
      const ports: number[] = [];
      for (const [a, b] of r.left) {
        for (let p = a; p <= b && ports.length < portsNeeded; p++) ports.push(p);
        if (ports.length >= portsNeeded) break;
      }
      if (ports.length > 0) { portPlan.push({ i, ports }); portsNeeded -= ports.length; }
    }
    if (portsNeeded > 0) return undefined;

    // Everything fits: commit.
    const resources: Resource[] = [];
    for (const { i, amount } of plan) {
      const s = this.scalars[i]!;
      s.left -= amount;
      resources.push({ ...s.tpl, scalar: { value: amount / 1000 } });
    }
    const assigned: number[] = [];
    for (const { i, ports } of portPlan) {
      const r = this.ranges[i]!;
      const taken = new Set(ports);
      r.left = removePorts(r.left, taken);
      resources.push({ ...r.tpl, ranges: { range: toRanges(ports) } });
      assigned.push(...ports);
    }
    return { resources, ports: assigned };
  }

  /** Whatever has not been taken, in wire form. */
  remaining(): Resource[] {
    const out: Resource[] = [];
    for (const s of this.scalars) if (s.left > 0) out.push({ ...s.tpl, scalar: { value: s.left / 1000 } });
    for (const r of this.ranges) if (r.left.length > 0) out.push({ ...r.tpl, ranges: { range: r.left.map(([begin, end]) => ({ begin, end })) } });
    return out;
  }
}

function toRanges(ports: number[]): { begin: number; end: number }[] {
  const sorted = [...ports].sort((a, b) => a - b);
  const out: { begin: number; end: number }[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && p === last.end + 1) last.end = p;
    else out.push({ begin: p, end: p });
  }
  return out;
}

function removePorts(ranges: [number, number][], taken: Set<number>): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of ranges) {
    let start = a;
    for (let p = a; p <= b; p++) {
      if (!taken.has(p)) continue;
      if (p > start) out.push([start, p - 1]);
      start = p + 1;
    }
    if (start <= b) out.push([start, b]);
  }
  return out;
}

/**
 * Picks `demand` out of an offer (or a resource list): the Resource[] to put in a TaskInfo,
 * each carrying the offer's allocation_info.role, and the ports assigned. Undefined if it does not fit.
 */
export function pickResources(from: Offer | readonly Resource[], demand: ResourceDemand): Picked | undefined {
  const list = Array.isArray(from) ? (from as readonly Resource[]) : ((from as Offer).resources ?? []);
  return new FreeList(list).take(demand);
}

let seq = 0;
function defaultId(name: string): string {
  return `${name}-${(seq++).toString(36)}-${randomBytes(4).toString('hex')}`;
}

function demandOf(spec: TaskSpec): ResourceDemand {
  return { cpus: spec.cpus, mem: spec.mem, disk: spec.disk, gpus: spec.gpus, ports: spec.ports };
}

/** A TaskInfo for `spec` on `offer`'s agent with the `picked` resources ($PORT0… set from the ports). */
export function buildTaskInfo(spec: TaskSpec, offer: Offer, picked: Picked): TaskInfo {
  const name = spec.name ?? spec.id ?? 'task';
  const id = spec.id ?? defaultId(name);
  const env: Record<string, string> = { ...spec.env };
  picked.ports.forEach((p, i) => { env[`PORT${i}`] = String(p); });
  if (picked.ports.length > 0) { env.PORT = String(picked.ports[0]); env.PORTS = picked.ports.join(','); }
  const variables = Object.entries(env).map(([n, value]) => ({ name: n, type: 'VALUE' as const, value }));
  const command: TaskInfo['command'] = spec.argv?.length
    ? { shell: false, value: spec.argv[0], arguments: spec.argv }
    : spec.cmd !== undefined ? { shell: true, value: spec.cmd } : undefined;
  if (command) {
    if (variables.length) command.environment = { variables };
    if (spec.user) command.user = spec.user;
    if (spec.uris?.length) command.uris = spec.uris.map((value) => ({ value }));
  }
  const labels: Label[] = Object.entries(spec.labels ?? {}).map(([key, value]) => ({ key, value }));
  const info: TaskInfo = {
    name, task_id: { value: id }, agent_id: offer.agent_id, resources: picked.resources,
    ...(command ? { command } : {}),
    ...(labels.length ? { labels: { labels } } : {}),
    ...(spec.killGracePeriodSeconds !== undefined ? { kill_policy: { grace_period: { nanoseconds: Math.round(spec.killGracePeriodSeconds * 1e9) } } } : {}),
    ...spec.extra,
  };
  return info;
}

/** Builds the TaskInfo for `spec` on `offer`; throws INVALID if the offer cannot hold it. */
export function taskInfo(spec: TaskSpec, offer: Offer): TaskInfo {
  const picked = pickResources(offer, demandOf(spec));
  if (!picked) throw new BerthError('INVALID', `task ${spec.id ?? spec.name ?? ''} does not fit in offer ${offer.id.value}`);
  return buildTaskInfo(spec, offer, picked);
}

/**
 * Places tasks into a batch of offers, first fit in offer order, tracking what is left of
 * each. `launches()` then says which offers to ACCEPT with which tasks and `unused()` which to
 * DECLINE (`Framework.acceptPool` does both).
 */
export class OfferPool {
  private readonly entries: { offer: Offer; free: FreeList; tasks: TaskInfo[] }[];

  constructor(offers: readonly Offer[]) {
    this.entries = offers.map((offer) => ({ offer, free: new FreeList(offer.resources ?? []), tasks: [] }));
  }

  /** Places one task; returns its TaskInfo, or undefined if no offer has room. */
  place(spec: TaskSpec, accept: (offer: Offer) => boolean = () => true): TaskInfo | undefined {
    const demand = demandOf(spec);
    for (const e of this.entries) {
      if (!accept(e.offer)) continue;
      const picked = e.free.take(demand);
      if (!picked) continue;
      const info = buildTaskInfo(spec, e.offer, picked);
      e.tasks.push(info);
      return info;
    }
    return undefined;
  }

  /** Places as many of `specs` as fit, in order; returns those that did not. */
  placeAll(specs: readonly TaskSpec[]): TaskSpec[] {
    return specs.filter((s) => !this.place(s));
  }

  /** Offers with at least one task placed, with their tasks. */
  launches(): { offer: Offer; tasks: TaskInfo[] }[] {
    return this.entries.filter((e) => e.tasks.length > 0).map((e) => ({ offer: e.offer, tasks: [...e.tasks] }));
  }

  /** Offers nothing was placed on. */
  unused(): Offer[] { return this.entries.filter((e) => e.tasks.length === 0).map((e) => e.offer); }

  /** What is left of an offer. */
  remaining(offerId: string): Resource[] {
    return this.entries.find((e) => e.offer.id.value === offerId)?.free.remaining() ?? [];
  }

  get size(): number { return this.entries.length; }
}
