/**
 * Authentication at the edge, for HTTP requests and WebSocket upgrades alike:
 * who is calling (HTTP Basic against `--credentials`, else a verified TLS
 * client certificate's CN), whether this kind of endpoint needs it, and the
 * DNS-rebinding / cross-site defences (the Host must name this listener; a
 * browser Origin may not open a WebSocket).
 *
 * The core never sees a credential: it gets the authenticated principal.
 */
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import type { TLSSocket } from 'node:tls';
import { parseBasicAuthorization } from '../../proto/transport/credentials.js';
import type { CredentialStore } from './credentials.js';

/** Who needs to authenticate (Mesos' --authenticate_* flags). */
export interface AuthPolicy {
  credentials?: CredentialStore;
  /** Scheduler API (HTTP and native) — Mesos --authenticate_frameworks / --authenticate_http_frameworks. */
  frameworks: boolean;
  /** Agent connections — Mesos --authenticate_agents. */
  agents: boolean;
  /** Read-only operator endpoints (/state, /metrics, …) — Mesos --authenticate_http_readonly. */
  httpReadonly: boolean;
  /** Read-write operator endpoints (/teardown) — Mesos --authenticate_http_readwrite. */
  httpReadwrite: boolean;
}

export const OPEN_POLICY: AuthPolicy = { frameworks: false, agents: false, httpReadonly: false, httpReadwrite: false };

/** What kind of endpoint a request is for. */
export type EndpointKind = 'public' | 'readonly' | 'readwrite' | 'framework' | 'agent';

export type Authn = { ok: true; principal?: string } | { ok: false; status: number; message: string; headers?: Record<string, string> };

const CHALLENGE = { 'www-authenticate': 'Basic realm="berth"' };

export function required(policy: AuthPolicy, kind: EndpointKind): boolean {
  switch (kind) {
    case 'public': return false;
    case 'readonly': return policy.httpReadonly;
    case 'readwrite': return policy.httpReadwrite;
    case 'framework': return policy.frameworks;
    case 'agent': return policy.agents;
  }
}

/**
 * The caller's principal. Credentials that are presented must be valid (401 otherwise), even
 * where authentication is optional; none presented is anonymous, refused (401) where required.
 */
export function authenticate(req: IncomingMessage, policy: AuthPolicy, kind: EndpointKind): Authn {
  let principal: string | undefined;
  let given: { principal: string; secret: string } | undefined;
  try {
    given = parseBasicAuthorization(headerOf(req, 'authorization'));
  } catch {
    return { ok: false, status: 401, message: 'Malformed Authorization header', headers: CHALLENGE };
  }
  if (given && policy.credentials) {
    if (!policy.credentials.verify(given.principal, given.secret)) {
      return { ok: false, status: 401, message: 'Authentication failed: unknown principal or wrong secret', headers: CHALLENGE };
    }
    principal = given.principal;
  } else {
    principal = certificatePrincipal(req);
  }
  if (principal === undefined && required(policy, kind)) {
    return { ok: false, status: 401, message: `Authentication required for this ${kind === 'readonly' || kind === 'readwrite' ? `${kind} endpoint` : `${kind} connection`}`, headers: CHALLENGE };
  }
  return { ok: true, principal };
}

/** The CN of a client certificate the TLS layer verified against --tls-ca, if any. */
function certificatePrincipal(req: IncomingMessage): string | undefined {
  const sock = req.socket as Partial<TLSSocket>;
  if (!sock.encrypted || !sock.authorized || !sock.getPeerCertificate) return undefined;
  const cn = sock.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The names a request's Host header may use for this listener: loopback names, the bound and
 * advertised hosts, this machine's hostname and interface addresses (when bound to all), and
 * any the operator adds. Anything else is a DNS-rebinding attempt or a misdirected request.
 */
export class HostCheck {
  private readonly names = new Set<string>();

  constructor(bindHost: string, extra: string[] = []) {
    for (const n of ['localhost', '127.0.0.1', '::1', bindHost, ...extra]) this.names.add(n.toLowerCase());
    if (bindHost === '0.0.0.0' || bindHost === '::') {
      this.names.add(os.hostname().toLowerCase());
      for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) this.names.add(a.address.toLowerCase());
    }
  }

  /** True when `host` (a Host header: name[:port] or [v6][:port]) names this listener on `port`. */
  allows(host: string | undefined, port: number): boolean {
    if (!host) return false;
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host.trim().toLowerCase());
    if (!m) return false;
    const name = m[1]!.replace(/^\[|\]$/g, '');
    if (m[2] !== undefined && Number(m[2]) !== port) return false;
    return this.names.has(name) || /^127\.\d+\.\d+\.\d+$/.test(name);
  }
}
