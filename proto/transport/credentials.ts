/**
 * Client-side credentials and TLS options, shared by the SDK, the agent and
 * `berth state` (the master's side lives in master/auth/). A credential is a
 * Mesos `Credential`: a principal and a secret, sent as HTTP Basic on every
 * request and on the WebSocket upgrade.
 *
 * Where a client finds its credential, first match wins:
 *   1. an explicit option (a flag such as `--credential FILE`);
 *   2. `BERTH_CREDENTIAL` = a credential file, or `BERTH_PRINCIPAL` + `BERTH_SECRET`;
 *   3. `<work dir>/credential` (JSON or text), when the client has a work dir.
 * A credential file is Mesos' format: JSON `{"principal": "p", "secret": "s"}`, or one
 * line of text `p s`.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BerthError } from '../errors.js';

export interface Credential { principal: string; secret: string }

/** PEM contents (not paths) of the CA to trust, and of a client certificate and key. */
export interface TlsClientOptions { ca?: string; cert?: string; key?: string }

/** What a client presents to a master. */
export interface ClientSecurity {
  credential?: Credential;
  /** Present = the master speaks TLS (https:// / wss://). */
  tls?: TlsClientOptions;
}

/** Parses a credential file's text (Mesos JSON or `principal secret`). */
export function parseCredential(text: string, source: string): Credential {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let obj: unknown;
    try { obj = JSON.parse(trimmed); } catch (e) { throw new BerthError('INVALID', `${source}: not valid JSON: ${(e as Error).message}`); }
    const { principal, secret } = obj as { principal?: unknown; secret?: unknown };
    if (typeof principal !== 'string' || principal === '') throw new BerthError('INVALID', `${source}: 'principal' must be a non-empty string`);
    if (typeof secret !== 'string') throw new BerthError('INVALID', `${source}: 'secret' must be a string`);
    return { principal, secret };
  }
  const parts = trimmed.split(/\s+/);
  if (parts.length !== 2 || !parts[0]) throw new BerthError('INVALID', `${source}: expected JSON {"principal","secret"} or one line 'principal secret'`);
  return { principal: parts[0], secret: parts[1]! };
}

export function loadCredentialFile(file: string): Credential {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new BerthError('INVALID', `credential file ${file}: ${(e as Error).message}`); }
  return parseCredential(text, `credential file ${file}`);
}

/** The credential from a flag, the environment, or the work dir (see the header). */
export function findCredential(opts: { file?: string; env?: NodeJS.ProcessEnv; workDir?: string } = {}): Credential | undefined {
  if (opts.file) return loadCredentialFile(opts.file);
  const env = opts.env ?? process.env;
  if (env.BERTH_CREDENTIAL) return loadCredentialFile(env.BERTH_CREDENTIAL);
  if (env.BERTH_PRINCIPAL) {
    if (env.BERTH_SECRET === undefined) throw new BerthError('INVALID', 'BERTH_PRINCIPAL is set without BERTH_SECRET');
    return { principal: env.BERTH_PRINCIPAL, secret: env.BERTH_SECRET };
  }
  if (opts.workDir) {
    const f = path.join(opts.workDir, 'credential');
    if (existsSync(f)) return loadCredentialFile(f);
  }
  return undefined;
}

/** TLS files from flags or `BERTH_TLS_CA` / `BERTH_TLS_CERT` / `BERTH_TLS_KEY`; undefined if none. */
export function findTls(opts: { ca?: string; cert?: string; key?: string; env?: NodeJS.ProcessEnv } = {}): TlsClientOptions | undefined {
  const env = opts.env ?? process.env;
  const ca = opts.ca ?? env.BERTH_TLS_CA;
  const cert = opts.cert ?? env.BERTH_TLS_CERT;
  const key = opts.key ?? env.BERTH_TLS_KEY;
  if (!ca && !cert && !key) return undefined;
  if (!!cert !== !!key) throw new BerthError('INVALID', 'a client certificate needs both --tls-cert and --tls-key');
  const read = (f: string | undefined, what: string): string | undefined => {
    if (!f) return undefined;
    try { return readFileSync(f, 'utf8'); } catch (e) { throw new BerthError('INVALID', `${what} ${f}: ${(e as Error).message}`); }
  };
  return { ca: read(ca, '--tls-ca'), cert: read(cert, '--tls-cert'), key: read(key, '--tls-key') };
}

/** The `Authorization` header value for a credential. */
export function basicAuthorization(c: Credential): string {
  return `Basic ${Buffer.from(`${c.principal}:${c.secret}`, 'utf8').toString('base64')}`;
}

/** Reads an `Authorization: Basic …` header; undefined when absent or not Basic, throws when malformed. */
export function parseBasicAuthorization(header: string | undefined): Credential | undefined {
  if (header === undefined) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i <= 0) throw new BerthError('INVALID', 'malformed Basic credentials');
  return { principal: text.slice(0, i), secret: text.slice(i + 1) };
}
