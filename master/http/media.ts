/**
 * Media types of the Mesos v1 HTTP APIs and their negotiation, kept apart from
 * the handlers so the rules (Mesos's `Request::acceptsMediaType`) are in one
 * place and testable on their own.
 */
import { encodeEvent } from '../../proto/codec.js';
import type { Event } from '../../proto/types.js';

export const APPLICATION_JSON = 'application/json';
export const APPLICATION_PROTOBUF = 'application/x-protobuf';
export type MediaType = typeof APPLICATION_JSON | typeof APPLICATION_PROTOBUF;

/** The bare media type of a Content-Type value ("application/json; charset=utf-8" → "application/json"). */
export function bareMediaType(header: string): string {
  return (header.split(';')[0] ?? '').trim().toLowerCase();
}

interface AcceptRange { type: string; subtype: string; q: number }

function parseAccept(header: string): AcceptRange[] {
  const out: AcceptRange[] = [];
  for (const part of header.split(',')) {
    const [range, ...params] = part.split(';');
    const [type, subtype] = (range ?? '').trim().toLowerCase().split('/');
    if (!type || !subtype) continue;
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m) q = Math.min(1, Math.max(0, Number(m[1])));
    }
    out.push({ type, subtype, q });
  }
  return out;
}

/** Quality the Accept ranges give `media` (the most specific matching range decides, RFC 7231 §5.3.2). */
function quality(ranges: AcceptRange[], media: MediaType): number {
  const [type, subtype] = media.split('/') as [string, string];
  let best = -1;
  let specificity = -1;
  for (const r of ranges) {
    const s = r.type === type && r.subtype === subtype ? 2 : r.type === type && r.subtype === '*' ? 1 : r.type === '*' && r.subtype === '*' ? 0 : -1;
    if (s > specificity) { specificity = s; best = r.q; }
  }
  return specificity < 0 ? 0 : best;
}

/**
 * The stream encoding for a SUBSCRIBE: JSON when the client accepts it at least as much as
 * protobuf (missing Accept and `*∕*` included, as Mesos), protobuf when only it is acceptable,
 * undefined when neither is (→ 406).
 */
export function negotiateStream(accept: string | undefined): MediaType | undefined {
  if (accept === undefined || accept.trim() === '') return APPLICATION_JSON;
  const ranges = parseAccept(accept);
  if (ranges.length === 0) return APPLICATION_JSON;
  const qj = quality(ranges, APPLICATION_JSON);
  const qp = quality(ranges, APPLICATION_PROTOBUF);
  if (qj <= 0 && qp <= 0) return undefined;
  return qj >= qp ? APPLICATION_JSON : APPLICATION_PROTOBUF;
}

/**
 * JSON as Mesos writes it. The messages are already in Mesos's JSON form (snake_case, enum
 * names, base64 bytes, 64-bit ints as numbers); what remains is that scalar resource values go
 * out rounded to 3 decimals, as Mesos's fixed-point Value::Scalar does, whatever arithmetic
 * produced them (e.g. 0.1 + 0.2).
 */
export function mesosJson(value: unknown): string {
  return JSON.stringify(value, (k, v: unknown) => {
    if (k === 'scalar' && typeof v === 'object' && v !== null && typeof (v as { value?: unknown }).value === 'number') {
      return { ...(v as object), value: Math.round((v as { value: number }).value * 1000) / 1000 };
    }
    return v;
  });
}

/** One event in the stream's encoding (the RecordIO payload). */
export function encodeEventAs(media: MediaType, ev: Event): Uint8Array | string {
  return media === APPLICATION_JSON ? mesosJson(ev) : encodeEvent(ev);
}
