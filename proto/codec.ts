/**
 * Codecs for the wire schema. Messages live in their JSON form (see types.ts);
 * protobuf bytes are produced and parsed only here.
 *
 * `fromJson` is the one strict gate for everything that arrives from outside
 * (JSON bodies and decoded protobuf alike): unknown keys are ignored, `null`
 * means absent, enum names must exist, integers must be integers, bytes must
 * be base64, and every missing required field is reported with its path.
 */
import { fileURLToPath } from 'node:url';
import nodePath from 'node:path';
import protobuf from 'protobufjs';
import { badMessage, BerthError } from './errors.js';
import type { AgentToMaster, Call, Event, MasterToAgent } from './types.js';

const protoDir = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '../../proto');

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => nodePath.join(protoDir, nodePath.basename(target));
  root.loadSync(['mesos.proto', 'scheduler.proto', 'agent.proto'], { keepCase: true });
  root.resolveAll();
  return root;
}

export const root = loadRoot();

const typeCache = new Map<string, protobuf.Type>();
export function messageType(name: string): protobuf.Type {
  let t = typeCache.get(name);
  if (!t) {
    t = root.lookupType(name);
    typeCache.set(name, t);
  }
  return t;
}

/** Bounds on what a single message may contain, so a hostile peer cannot make us allocate without end. */
export const LIMITS = {
  maxRepeated: 100_000,
  maxStringBytes: 1 << 20,
  maxDepth: 32,
};

const INT_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function convertScalar(field: protobuf.Field, v: unknown, where: string): unknown {
  const t = field.type;
  if (t === 'string') {
    if (typeof v !== 'string') throw badMessage(`${where}: expected a string`);
    if (v.length > LIMITS.maxStringBytes) throw new BerthError('TOO_LARGE', `${where}: string longer than ${LIMITS.maxStringBytes}`);
    return v;
  }
  if (t === 'bool') {
    if (typeof v !== 'boolean') throw badMessage(`${where}: expected true or false`);
    return v;
  }
  if (t === 'double' || t === 'float') {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || Number.isNaN(n)) throw badMessage(`${where}: expected a number`);
    return n;
  }
  if (INT_TYPES.has(t)) {
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw badMessage(`${where}: expected an integer`);
    if (t.startsWith('uint') || t.startsWith('fixed')) {
      if (n < 0) throw badMessage(`${where}: expected a non-negative integer`);
    }
    return n;
  }
  if (t === 'bytes') {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
    if (typeof v !== 'string' || !BASE64.test(v)) throw badMessage(`${where}: expected base64 bytes`);
    return v;
  }
  throw badMessage(`${where}: unsupported field type ${t}`);
}

function convertValue(field: protobuf.Field, v: unknown, where: string, depth: number): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Enum) {
    if (typeof v === 'string') {
      if (!(v in rt.values)) throw badMessage(`${where}: unknown ${rt.name} value '${v}'`);
      return v;
    }
    if (typeof v === 'number' && rt.valuesById[v] !== undefined) return rt.valuesById[v];
    throw badMessage(`${where}: unknown ${rt.name} value '${String(v)}'`);
  }
  if (rt instanceof protobuf.Type) return convert(rt, v, where, depth + 1);
  return convertScalar(field, v, where);
}

function convert(type: protobuf.Type, obj: unknown, where: string, depth: number): Record<string, unknown> {
  if (depth > LIMITS.maxDepth) throw new BerthError('TOO_LARGE', `${where}: nested deeper than ${LIMITS.maxDepth}`);
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw badMessage(`${where || type.name}: expected an object`);
  }
  const src = obj as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const v = src[field.name];
    const at = where ? `${where}.${field.name}` : field.name;
    if (v === undefined || v === null) {
      if (field.required) throw badMessage(`missing required field '${at}'`);
      continue;
    }
    if (field instanceof protobuf.MapField) {
      if (typeof v !== 'object' || Array.isArray(v)) throw badMessage(`${at}: expected an object`);
      const m: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        m[k] = convertValue(field, x, `${at}.${k}`, depth);
      }
      out[field.name] = m;
    } else if (field.repeated) {
      if (!Array.isArray(v)) throw badMessage(`${at}: expected an array`);
      if (v.length > LIMITS.maxRepeated) throw new BerthError('TOO_LARGE', `${at}: more than ${LIMITS.maxRepeated} entries`);
      out[field.name] = v.map((x, i) => convertValue(field, x, `${at}[${i}]`, depth));
    } else {
      out[field.name] = convertValue(field, v, at, depth);
    }
  }
  return out;
}

/** Validates and normalizes an untrusted JSON-form message of the given type. */
export function fromJson<T>(typeName: string, obj: unknown): T {
  return convert(messageType(typeName), obj, '', 0) as T;
}

/**
 * One compiled step per field of a type, built once per type: the kind of value and what it must
 * satisfy, so decoding does not re-inspect the schema (instanceof, type-name sets) per value.
 */
interface FieldPlan {
  name: string;
  required: boolean;
  shape: 'single' | 'repeated' | 'map';
  kind: 'message' | 'enum' | 'string' | 'bool' | 'float' | 'int' | 'uint' | 'long' | 'ulong' | 'bytes' | 'other';
  type?: protobuf.Type;
  en?: protobuf.Enum;
  field: protobuf.Field;
}

const plans = new Map<protobuf.Type, FieldPlan[]>();
function planOf(type: protobuf.Type): FieldPlan[] {
  let plan = plans.get(type);
  if (plan) return plan;
  plan = type.fieldsArray.map((f): FieldPlan => {
    const rt = f.resolvedType;
    const t = f.type;
    const kind: FieldPlan['kind'] = rt instanceof protobuf.Type ? 'message' : rt instanceof protobuf.Enum ? 'enum'
      : t === 'string' ? 'string' : t === 'bool' ? 'bool' : t === 'double' || t === 'float' ? 'float'
      : t === 'int32' || t === 'sint32' || t === 'sfixed32' ? 'int' : t === 'uint32' || t === 'fixed32' ? 'uint'
      : t === 'int64' || t === 'sint64' || t === 'sfixed64' ? 'long' : t === 'uint64' || t === 'fixed64' ? 'ulong'
      : t === 'bytes' ? 'bytes' : 'other';
    return {
      name: f.name, required: f.required, field: f, kind,
      shape: f instanceof protobuf.MapField ? 'map' : f.repeated ? 'repeated' : 'single',
      type: rt instanceof protobuf.Type ? rt : undefined,
      en: rt instanceof protobuf.Enum ? rt : undefined,
    };
  });
  plans.set(type, plan);
  return plan;
}

const hasOwn = Object.prototype.hasOwnProperty;
const path = (where: string, name: string): string => (where ? `${where}.${name}` : name);

/** One value of a decoded protobuf message in the JSON form, with `fromJson`'s checks and limits. */
function fromDecodedValue(f: FieldPlan, v: unknown, at: () => string, depth: number): unknown {
  switch (f.kind) {
    case 'message': return fromDecoded(f.type!, v, at(), depth + 1);
    case 'enum': {
      const name = f.en!.valuesById[v as number];
      if (name === undefined) throw badMessage(`${at()}: unknown ${f.en!.name} value '${String(v)}'`);
      return name;
    }
    case 'string':
      if ((v as string).length > LIMITS.maxStringBytes) throw new BerthError('TOO_LARGE', `${at()}: string longer than ${LIMITS.maxStringBytes}`);
      return v;
    case 'long': case 'ulong': {
      if (typeof v === 'number') return v;
      const l = v as { low: number; high: number };
      const n = new protobuf.util.LongBits(l.low >>> 0, l.high >>> 0).toNumber(f.kind === 'ulong');
      if (f.kind === 'ulong' && n < 0) throw badMessage(`${at()}: expected a non-negative integer`);
      return n;
    }
    case 'bytes': return Buffer.from(v as Uint8Array).toString('base64');
    case 'bool': case 'float': case 'int': case 'uint': return v;
    default: return convertScalar(f.field, v, at());
  }
}

/**
 * The decoded message straight to its JSON form in one walk (what `type.toObject` then `convert`
 * did in two): fields present on the wire only (own properties; repeated/map fields non-empty),
 * enums by name with unknown numbers rejected, 64-bit integers as numbers, bytes as base64, the
 * same required-field, depth, repeated-count and string-length bounds as `fromJson`.
 */
function fromDecoded(type: protobuf.Type, msg: unknown, where: string, depth: number): Record<string, unknown> {
  if (depth > LIMITS.maxDepth) throw new BerthError('TOO_LARGE', `${where}: nested deeper than ${LIMITS.maxDepth}`);
  const src = msg as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const f of planOf(type)) {
    const v = hasOwn.call(src, f.name) ? src[f.name] : undefined;
    if (f.shape === 'single') {
      if (v === undefined || v === null) {
        if (f.required) throw badMessage(`missing required field '${path(where, f.name)}'`);
        continue;
      }
      out[f.name] = fromDecodedValue(f, v, () => path(where, f.name), depth);
    } else if (f.shape === 'repeated') {
      const a = v as unknown[] | undefined;
      if (!a || a.length === 0) continue;
      if (a.length > LIMITS.maxRepeated) throw new BerthError('TOO_LARGE', `${path(where, f.name)}: more than ${LIMITS.maxRepeated} entries`);
      const r = new Array<unknown>(a.length);
      for (let i = 0; i < a.length; i++) r[i] = fromDecodedValue(f, a[i], () => `${path(where, f.name)}[${i}]`, depth);
      out[f.name] = r;
    } else {
      const m = v as Record<string, unknown> | undefined;
      if (!m) continue;
      const keys = Object.keys(m);
      if (keys.length === 0) continue;
      const r: Record<string, unknown> = {};
      for (const k of keys) r[k] = fromDecodedValue(f, m[k], () => `${path(where, f.name)}.${k}`, depth);
      out[f.name] = r;
    }
  }
  return out;
}

/** Parses protobuf bytes into the JSON form, as strictly as `fromJson`. */
export function decode<T>(typeName: string, bytes: Uint8Array): T {
  const type = messageType(typeName);
  let msg: protobuf.Message;
  try {
    msg = type.decode(bytes);
  } catch (e) {
    throw badMessage(`malformed ${type.name}: ${(e as Error).message}`);
  }
  return fromDecoded(type, msg, '', 0) as T;
}

/** Serializes a JSON-form message produced by Berth itself (trusted: not re-validated). */
export function encode(typeName: string, obj: object): Uint8Array {
  const type = messageType(typeName);
  return type.encode(type.fromObject(obj as Record<string, unknown>)).finish();
}

export const CALL = 'mesos.v1.scheduler.Call';
export const EVENT = 'mesos.v1.scheduler.Event';
export const AGENT_TO_MASTER = 'berth.agent.AgentToMaster';
export const MASTER_TO_AGENT = 'berth.agent.MasterToAgent';

export const decodeCall = (b: Uint8Array): Call => decode<Call>(CALL, b);
export const encodeEvent = (e: Event): Uint8Array => encode(EVENT, e);
export const decodeEvent = (b: Uint8Array): Event => decode<Event>(EVENT, b);
export const encodeCall = (c: Call): Uint8Array => encode(CALL, c);
export const encodeAgentToMaster = (m: AgentToMaster): Uint8Array => encode(AGENT_TO_MASTER, m);
export const decodeAgentToMaster = (b: Uint8Array): AgentToMaster => decode<AgentToMaster>(AGENT_TO_MASTER, b);
export const encodeMasterToAgent = (m: MasterToAgent): Uint8Array => encode(MASTER_TO_AGENT, m);
export const decodeMasterToAgent = (b: Uint8Array): MasterToAgent => decode<MasterToAgent>(MASTER_TO_AGENT, b);
