/**
 * Resources arithmetic, Mesos's model: named SCALAR (cpus, mem, disk, gpus…),
 * RANGES (ports) and SET resources, each unreserved ("*") or reserved for a role.
 *
 * Invariants kept by every operation:
 *  - scalars are exact to 3 decimals: they are held as integer thousandths
 *    (`milli`), so 0.1 + 0.2 - 0.3 is exactly 0 and `contains` never fails on
 *    round-off (Mesos does the same fixed-point conversion);
 *  - ranges are sorted, non-overlapping and non-adjacent (coalesced);
 *  - an entry whose amount becomes empty is dropped, so `isEmpty()` is exact.
 * Instances are immutable: every operation returns a new value.
 */
import { BerthError } from './errors.js';
import type { Resource } from './types.js';

export interface Entry {
  name: string;
  /** Reservation role; '*' = unreserved. */
  role: string;
  type: 'SCALAR' | 'RANGES' | 'SET';
  milli: number;
  ranges: [number, number][];
  set: string[];
}

/** The scalar dimensions the allocator tracks in packed form, in this order. */
export const SCALAR_DIMS = ['cpus', 'mem', 'disk', 'gpus'] as const;
export type ScalarDim = (typeof SCALAR_DIMS)[number];
export const DIM = { cpus: 0, mem: 1, disk: 2, gpus: 3 } as const;
export const NDIMS = SCALAR_DIMS.length;

export const toMilli = (v: number): number => Math.round(v * 1000);
export const fromMilli = (m: number): number => m / 1000;

function roleOf(r: Resource): string {
  const stack = r.reservations;
  if (stack && stack.length > 0) return stack[stack.length - 1]!.role ?? '*';
  return r.role ?? '*';
}

function keyOf(name: string, role: string): string { return `${name}\u0000${role}`; }

function mergeRanges(rs: [number, number][]): [number, number][] {
  if (rs.length <= 1) return rs.map(([a, b]) => [a, b]);
  const sorted = rs.map(([a, b]) => [a, b] as [number, number]).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [sorted[0]!];
  for (let i = 1; i < sorted.length; i++) {
    const cur = sorted[i]!;
    const last = out[out.length - 1]!;
    if (cur[0] <= last[1] + 1) last[1] = Math.max(last[1], cur[1]);
    else out.push(cur);
  }
  return out;
}

function subtractRanges(a: [number, number][], b: [number, number][]): [number, number][] {
  let out = a.map(([x, y]) => [x, y] as [number, number]);
  for (const [bs, be] of b) {
    const next: [number, number][] = [];
    for (const [as, ae] of out) {
      if (be < as || bs > ae) { next.push([as, ae]); continue; }
      if (bs > as) next.push([as, bs - 1]);
      if (be < ae) next.push([be + 1, ae]);
    }
    out = next;
  }
  return out;
}

function rangesContain(a: [number, number][], b: [number, number][]): boolean {
  // Both are coalesced and sorted, so each range of b must fit inside a single range of a.
  let i = 0;
  for (const [bs, be] of b) {
    while (i < a.length && a[i]![1] < bs) i++;
    if (i >= a.length || a[i]![0] > bs || a[i]![1] < be) return false;
  }
  return true;
}

function rangeCount(rs: [number, number][]): number {
  let n = 0;
  for (const [a, b] of rs) n += b - a + 1;
  return n;
}

function entryEmpty(e: Entry): boolean {
  return e.type === 'SCALAR' ? e.milli <= 0 : e.type === 'RANGES' ? e.ranges.length === 0 : e.set.length === 0;
}

export class Resources {
  private constructor(private readonly map: ReadonlyMap<string, Entry>) {}

  static readonly EMPTY = new Resources(new Map());

  /** Builds from wire resources. Throws BerthError('INVALID') naming the resource at fault. */
  static from(list: readonly Resource[] | undefined): Resources {
    if (!list || list.length === 0) return Resources.EMPTY;
    const m = new Map<string, Entry>();
    for (const r of list) {
      const e = Resources.entryFromWire(r);
      const k = keyOf(e.name, e.role);
      const prev = m.get(k);
      m.set(k, prev ? addEntry(prev, e) : e);
    }
    return new Resources(dropEmpty(m));
  }

  static entryFromWire(r: Resource): Entry {
    if (!r.name) throw new BerthError('INVALID', 'resource has an empty name');
    const role = roleOf(r);
    switch (r.type) {
      case 'SCALAR': {
        const v = r.scalar?.value;
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new BerthError('INVALID', `resource '${r.name}': scalar value is missing or not a finite number`);
        if (v < 0) throw new BerthError('INVALID', `resource '${r.name}': negative scalar ${v}`);
        return { name: r.name, role, type: 'SCALAR', milli: toMilli(v), ranges: [], set: [] };
      }
      case 'RANGES': {
        const rs: [number, number][] = [];
        for (const x of r.ranges?.range ?? []) {
          if (!Number.isInteger(x.begin) || !Number.isInteger(x.end) || x.begin < 0 || x.end < x.begin) {
            throw new BerthError('INVALID', `resource '${r.name}': invalid range [${x.begin}-${x.end}]`);
          }
          rs.push([x.begin, x.end]);
        }
        return { name: r.name, role, type: 'RANGES', milli: 0, ranges: mergeRanges(rs), set: [] };
      }
      case 'SET': {
        const items = [...new Set(r.set?.item ?? [])].sort();
        return { name: r.name, role, type: 'SET', milli: 0, ranges: [], set: items };
      }
      default:
        throw new BerthError('INVALID', `resource '${r.name}': unsupported type ${String(r.type)}`);
    }
  }

  /**
   * Parses Mesos's text form, `cpus:4;mem:8192;ports:[31000-32000];disk(ops):100;zones:{a,b}`,
   * or a JSON array of wire resources. Errors name the offending item.
   */
  static parse(text: string, defaultRole = '*'): Resources {
    const t = text.trim();
    if (t === '') return Resources.EMPTY;
    if (t.startsWith('[')) {
      let arr: unknown;
      try { arr = JSON.parse(t); } catch (e) { throw new BerthError('INVALID', `resources: bad JSON: ${(e as Error).message}`); }
      if (!Array.isArray(arr)) throw new BerthError('INVALID', 'resources: JSON must be an array');
      return Resources.from(arr as Resource[]);
    }
    const list: Resource[] = [];
    for (const raw of t.split(';')) {
      const item = raw.trim();
      if (!item) continue;
      const m = /^([A-Za-z0-9_.\-/]+)(?:\(([^)]*)\))?\s*:\s*(.+)$/.exec(item);
      if (!m) throw new BerthError('INVALID', `resources: cannot parse '${item}' (expected name:value)`);
      const name = m[1]!;
      const role = m[2] ?? defaultRole;
      const value = m[3]!.trim();
      if (value.startsWith('[')) {
        if (!value.endsWith(']')) throw new BerthError('INVALID', `resources: '${item}': unterminated range list`);
        const range = value.slice(1, -1).split(',').filter((s) => s.trim() !== '').map((s) => {
          const rm = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(s);
          if (!rm) throw new BerthError('INVALID', `resources: '${item}': bad range '${s.trim()}'`);
          return { begin: Number(rm[1]), end: Number(rm[2]) };
        });
        list.push({ name, type: 'RANGES', ranges: { range }, role });
      } else if (value.startsWith('{')) {
        if (!value.endsWith('}')) throw new BerthError('INVALID', `resources: '${item}': unterminated set`);
        const items = value.slice(1, -1).split(',').map((s) => s.trim()).filter(Boolean);
        list.push({ name, type: 'SET', set: { item: items }, role });
      } else {
        const v = Number(value);
        if (!Number.isFinite(v)) throw new BerthError('INVALID', `resources: '${item}': '${value}' is not a number`);
        list.push({ name, type: 'SCALAR', scalar: { value: v }, role });
      }
    }
    return Resources.from(list);
  }

  entries(): IterableIterator<Entry> { return this.map.values(); }
  get size(): number { return this.map.size; }
  isEmpty(): boolean { return this.map.size === 0; }

  /** Total of a scalar across roles (or for one role). */
  scalar(name: string, role?: string): number {
    let milli = 0;
    for (const e of this.map.values()) if (e.name === name && e.type === 'SCALAR' && (role === undefined || e.role === role)) milli += e.milli;
    return fromMilli(milli);
  }

  /** All ranges of a RANGES resource across roles, coalesced. */
  ranges(name: string): [number, number][] {
    const all: [number, number][] = [];
    for (const e of this.map.values()) if (e.name === name && e.type === 'RANGES') all.push(...e.ranges);
    return mergeRanges(all);
  }

  add(other: Resources): Resources {
    if (other.isEmpty()) return this;
    if (this.isEmpty()) return other;
    const m = new Map(this.map);
    for (const [k, e] of other.map) {
      const prev = m.get(k);
      m.set(k, prev ? addEntry(prev, e) : e);
    }
    return new Resources(m);
  }

  /** this − other, saturating at empty per entry (as Mesos). Use `contains` first when exactness matters. */
  subtract(other: Resources): Resources {
    if (other.isEmpty() || this.isEmpty()) return this;
    const m = new Map(this.map);
    for (const [k, e] of other.map) {
      const prev = m.get(k);
      if (!prev) continue;
      const next = subEntry(prev, e);
      if (entryEmpty(next)) m.delete(k); else m.set(k, next);
    }
    return new Resources(m);
  }

  contains(other: Resources): boolean {
    for (const [k, e] of other.map) {
      const mine = this.map.get(k);
      if (!mine) return false;
      if (e.type !== mine.type) return false;
      if (e.type === 'SCALAR' && mine.milli < e.milli) return false;
      if (e.type === 'RANGES' && !rangesContain(mine.ranges, e.ranges)) return false;
      if (e.type === 'SET' && !e.set.every((x) => mine.set.includes(x))) return false;
    }
    return true;
  }

  equals(other: Resources): boolean { return this.contains(other) && other.contains(this); }

  /** Resources usable by `role`: unreserved ones plus those reserved for it. */
  allocatableTo(role: string): Resources {
    return this.filter((e) => e.role === '*' || e.role === role);
  }

  reserved(role?: string): Resources {
    return this.filter((e) => e.role !== '*' && (role === undefined || e.role === role));
  }

  unreserved(): Resources { return this.filter((e) => e.role === '*'); }

  filter(pred: (e: Entry) => boolean): Resources {
    const m = new Map<string, Entry>();
    for (const [k, e] of this.map) if (pred(e)) m.set(k, e);
    return m.size === this.map.size ? this : new Resources(m);
  }

  /** Wire form; when `allocationRole` is given every resource carries `allocation_info.role`. */
  toWire(allocationRole?: string): Resource[] {
    const out: Resource[] = [];
    for (const e of this.map.values()) {
      const r: Resource = { name: e.name, type: e.type };
      if (e.type === 'SCALAR') r.scalar = { value: fromMilli(e.milli) };
      else if (e.type === 'RANGES') r.ranges = { range: e.ranges.map(([begin, end]) => ({ begin, end })) };
      else r.set = { item: [...e.set] };
      if (e.role !== '*') r.reservations = [{ type: 'STATIC', role: e.role }];
      if (allocationRole !== undefined) r.allocation_info = { role: allocationRole };
      out.push(r);
    }
    return out;
  }

  /**
   * Adds `sign` × this value's scalar dimensions into `out[offset + DIM[name]]`, in thousandths
   * (integers, so packed arithmetic stays exact like the rich form).
   */
  addPacked(out: Float64Array, offset = 0, sign = 1): void {
    for (const e of this.map.values()) {
      if (e.type !== 'SCALAR') continue;
      const d = (DIM as Record<string, number>)[e.name];
      if (d !== undefined) out[offset + d] = out[offset + d]! + sign * e.milli;
    }
  }

  /** Number of ports (or any RANGES resource) across roles. */
  rangeCount(name: string): number { return rangeCount(this.ranges(name)); }

  /** Mesos's text form, e.g. `cpus:2;mem:1024;ports:[31000-31009]`. */
  toString(): string {
    const parts: string[] = [];
    for (const e of this.map.values()) {
      const n = e.role === '*' ? e.name : `${e.name}(${e.role})`;
      if (e.type === 'SCALAR') parts.push(`${n}:${fromMilli(e.milli)}`);
      else if (e.type === 'RANGES') parts.push(`${n}:[${e.ranges.map(([a, b]) => `${a}-${b}`).join(',')}]`);
      else parts.push(`${n}:{${e.set.join(',')}}`);
    }
    return parts.join(';');
  }
}

function addEntry(a: Entry, b: Entry): Entry {
  if (a.type !== b.type) throw new BerthError('INVALID', `resource '${a.name}' given as both ${a.type} and ${b.type}`);
  if (a.type === 'SCALAR') return { ...a, milli: a.milli + b.milli };
  if (a.type === 'RANGES') return { ...a, ranges: mergeRanges([...a.ranges, ...b.ranges]) };
  return { ...a, set: [...new Set([...a.set, ...b.set])].sort() };
}

function subEntry(a: Entry, b: Entry): Entry {
  if (a.type !== b.type) return a;
  if (a.type === 'SCALAR') return { ...a, milli: Math.max(0, a.milli - b.milli) };
  if (a.type === 'RANGES') return { ...a, ranges: subtractRanges(a.ranges, b.ranges) };
  const drop = new Set(b.set);
  return { ...a, set: a.set.filter((x) => !drop.has(x)) };
}

function dropEmpty(m: Map<string, Entry>): Map<string, Entry> {
  for (const [k, e] of m) if (entryEmpty(e)) m.delete(k);
  return m;
}
