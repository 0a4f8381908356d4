/**
 * Starts a master process: file-backed registry in `workDir`, HTTP + WebSocket
 * on one port (TLS when given a certificate). Used by `berth master` and
 * `berth up`.
 *
 * Secure by default: a master bound to anything but loopback refuses to start
 * unless frameworks and agents must authenticate (`--credentials` with
 * `--authenticate-frameworks` and `--authenticate-agents`) or the operator
 * says `--insecure` — and then it warns at every start.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { BerthError } from '../proto/errors.js';
import { logger } from '../proto/log.js';
import { Master, type MasterOptions } from './master.js';
import { FileRegistry } from './registry/file.js';
import { MasterHttpServer, type ServerSecurity } from './http/server.js';
import { installRoutes } from './http/api.js';
import { CredentialStore } from './auth/credentials.js';
import { LocalAuthorizer } from './auth/acls.js';
import { isLoopback, type AuthPolicy } from './auth/edge.js';

export interface MasterSecurityOptions {
  /** `--credentials FILE`: Mesos' credentials JSON (or `principal secret` lines). */
  credentialsFile?: string;
  authenticateFrameworks?: boolean;
  authenticateAgents?: boolean;
  authenticateHttpReadonly?: boolean;
  authenticateHttpReadwrite?: boolean;
  /** `--acls FILE`: Mesos' ACLs JSON. */
  aclsFile?: string;
  /** `--tls-cert`, `--tls-key` (PEM files); `--tls-ca` makes client certificates mandatory. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsCaFile?: string;
  /** Start on a non-loopback address without authentication (warned at every start). */
  insecure?: boolean;
  /** Extra names the Host header may use. */
  allowedHosts?: string[];
}

export interface StartMasterOptions extends MasterOptions, MasterSecurityOptions {
  workDir: string;
  port?: number;
  host?: string;
  /** Hostname advertised to frameworks (MasterInfo); default: the bind host or localhost. */
  advertiseHost?: string;
  /** Transport bounds (tests use small ones). */
  maxConnections?: number;
  wsMaxBacklogBytes?: number;
}

export interface RunningMaster {
  master: Master;
  http: MasterHttpServer;
  port: number;
  url: string;
  stop(): Promise<void>;
}

function readPem(file: string, flag: string): string {
  try { return readFileSync(file, 'utf8'); } catch (e) { throw new BerthError('INVALID', `${flag} ${file}: ${(e as Error).message}`); }
}

/** Turns the security flags into the edge's policy and TLS options; throws naming the flag at fault. */
export function securityFrom(opts: MasterSecurityOptions, host: string): { policy: AuthPolicy; tls?: ServerSecurity['tls']; authorizer?: LocalAuthorizer; warnings: string[] } {
  const credentials = opts.credentialsFile ? CredentialStore.load(opts.credentialsFile) : undefined;
  const policy: AuthPolicy = {
    credentials,
    frameworks: !!opts.authenticateFrameworks,
    agents: !!opts.authenticateAgents,
    httpReadonly: !!opts.authenticateHttpReadonly,
    httpReadwrite: !!opts.authenticateHttpReadwrite,
  };
  const tlsCa = opts.tlsCaFile ? readPem(opts.tlsCaFile, '--tls-ca') : undefined;
  const anyAuth = policy.frameworks || policy.agents || policy.httpReadonly || policy.httpReadwrite;
  if (anyAuth && !credentials && !tlsCa) {
    throw new BerthError('INVALID', '--authenticate-* needs --credentials FILE (or --tls-ca for client certificates) to check callers against');
  }
  if (!!opts.tlsCertFile !== !!opts.tlsKeyFile) throw new BerthError('INVALID', '--tls-cert and --tls-key go together');
  if (tlsCa && !opts.tlsCertFile) throw new BerthError('INVALID', '--tls-ca needs --tls-cert and --tls-key (the master must speak TLS to check client certificates)');
  const tls = opts.tlsCertFile ? { cert: readPem(opts.tlsCertFile, '--tls-cert'), key: readPem(opts.tlsKeyFile!, '--tls-key'), ca: tlsCa } : undefined;
  const authorizer = opts.aclsFile ? LocalAuthorizer.load(opts.aclsFile) : undefined;
  const warnings: string[] = [];
  // Frameworks and agents must prove who they are (credentials or client certificates) off loopback.
  const guarded = (policy.frameworks && policy.agents) || !!tlsCa;
  if (!isLoopback(host) && !guarded) {
    if (!opts.insecure) {
      throw new BerthError('INVALID',
        `refusing to listen on ${host} without authentication: anyone who can reach it could run commands. ` +
        'Give --credentials FILE with --authenticate-frameworks and --authenticate-agents (see docs/frameworks.md), ' +
        'or --insecure to run unauthenticated on a trusted network');
    }
    warnings.push(`INSECURE: listening on ${host} without authentication (--insecure): anyone who can reach this port can run commands as the agents' users`);
  }
  return { policy, tls, authorizer, warnings };
}

export async function startMaster(opts: StartMasterOptions): Promise<RunningMaster> {
  const log = opts.log ?? logger('master');
  const host = opts.host ?? '127.0.0.1';
  const sec = securityFrom(opts, host);
  for (const w of sec.warnings) log.warn(w);
  const registry = opts.registry ?? new FileRegistry(path.join(opts.workDir, 'master'), log, opts.scheduler);
  const advertise = opts.advertiseHost ?? (host === '0.0.0.0' ? 'localhost' : host);
  // The port is known only after listen (port 0 = ephemeral), so the master starts after it.
  const master = new Master({ ...opts, registry, log, hostname: advertise, authorizer: opts.authorizer ?? sec.authorizer });
  const httpServer = new MasterHttpServer(master, log, {
    auth: sec.policy, tls: sec.tls, allowedHosts: opts.allowedHosts, maxConnections: opts.maxConnections, wsMaxBacklogBytes: opts.wsMaxBacklogBytes,
  });
  installRoutes(httpServer);
  const port = await httpServer.listen(opts.port ?? 5050, host);
  master.opts.port = port;
  await master.start();
  const url = `${sec.tls ? 'https' : 'http'}://${advertise}:${port}`;
  log.info({ url, tls: !!sec.tls, authenticate: { frameworks: sec.policy.frameworks, agents: sec.policy.agents, http_readonly: sec.policy.httpReadonly, http_readwrite: sec.policy.httpReadwrite }, acls: !!sec.authorizer }, 'master listening');
  return {
    master, http: httpServer, port, url,
    async stop() {
      await httpServer.close();
      await master.stop();
    },
  };
}
