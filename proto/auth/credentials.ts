/**
 * A credentials file in Mesos' format (the master's `--credentials FILE`, the agent's
 * `--http-credentials FILE`):
 * JSON `{"credentials": [{"principal": "p", "secret": "s"}, …]}`, or text
 * with one `principal secret` per line. Secrets are compared in constant
 * time (over their SHA-256, so lengths leak nothing either).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BerthError } from '../errors.js';
import { parseBasicAuthorization } from '../transport/credentials.js';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class CredentialStore {
  private readonly secrets = new Map<string, Buffer>();

  constructor(entries: { principal: string; secret: string }[]) {
    for (const e of entries) this.secrets.set(e.principal, digest(e.secret));
  }

  get size(): number { return this.secrets.size; }

  /** True when `principal` is known and `secret` is its secret. */
  verify(principal: string, secret: string): boolean {
    const want = this.secrets.get(principal);
    const got = digest(secret);
    // Compare even for unknown principals, so timing does not reveal which principals exist.
    return timingSafeEqual(want ?? digest('\u0000unknown'), got) && want !== undefined;
  }

  static parse(text: string, source: string): CredentialStore {
    const trimmed = text.trim();
    const entries: { principal: string; secret: string }[] = [];
    if (trimmed.startsWith('{')) {
      let obj: unknown;
      try { obj = JSON.parse(trimmed); } catch (e) { throw new BerthError('INVALID', `${source}: not valid JSON: ${(e as Error).message}`); }
      const list = (obj as { credentials?: unknown }).credentials;
      if (!Array.isArray(list)) throw new BerthError('INVALID', `${source}: expected {"credentials": [{"principal", "secret"}, …]}`);
      list.forEach((c: unknown, i) => {
        const { principal, secret } = (c ?? {}) as { principal?: unknown; secret?: unknown };
        if (typeof principal !== 'string' || principal === '') throw new BerthError('INVALID', `${source}: credentials[${i}].principal must be a non-empty string`);
        if (typeof secret !== 'string') throw new BerthError('INVALID', `${source}: credentials[${i}].secret must be a string`);
        entries.push({ principal, secret });
      });
    } else {
      trimmed.split('\n').forEach((line, i) => {
        if (line.trim() === '' || line.trim().startsWith('#')) return;
        const parts = line.trim().split(/\s+/);
        if (parts.length !== 2) throw new BerthError('INVALID', `${source}: line ${i + 1}: expected 'principal secret'`);
        entries.push({ principal: parts[0]!, secret: parts[1]! });
      });
    }
    if (entries.length === 0) throw new BerthError('INVALID', `${source}: no credentials`);
    const seen = new Set<string>();
    for (const e of entries) {
      if (seen.has(e.principal)) throw new BerthError('INVALID', `${source}: principal '${e.principal}' appears twice`);
      seen.add(e.principal);
    }
    return new CredentialStore(entries);
  }

  static load(file: string, flag = '--credentials'): CredentialStore {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (e) { throw new BerthError('INVALID', `${flag} ${file}: ${(e as Error).message}`); }
    return CredentialStore.parse(text, `${flag} ${file}`);
  }
}

/** The outcome of checking an HTTP `Authorization` header against a credential store. */
export type BasicAuthResult =
  | { kind: 'none' }
  | { kind: 'ok'; principal: string }
  | { kind: 'malformed' }
  | { kind: 'rejected' };

/**
 * HTTP Basic (Mesos' `basic` HTTP authenticator): no header is `none` (the caller decides whether
 * anonymous is allowed); a header that does not parse is `malformed`; a wrong secret or unknown
 * principal is `rejected` (checked in constant time).
 */
export function checkBasic(header: string | undefined, store: CredentialStore): BasicAuthResult {
  let given: { principal: string; secret: string } | undefined;
  try { given = parseBasicAuthorization(header); } catch { return { kind: 'malformed' }; }
  if (!given) return { kind: 'none' };
  return store.verify(given.principal, given.secret) ? { kind: 'ok', principal: given.principal } : { kind: 'rejected' };
}

/** The challenge sent with every 401. */
export const BASIC_CHALLENGE = { 'www-authenticate': 'Basic realm="berth"' } as const;
