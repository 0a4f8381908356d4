/** `berth agent`: flags → startAgent; runs until SIGINT/SIGTERM. */
import type { AgentHttpAuth } from '../agent/http.js';
import { LocalAuthorizer } from '../proto/auth/acls.js';
import { CredentialStore } from '../proto/auth/credentials.js';
import { BerthError } from '../proto/errors.js';
import { natsDialer, natsOptions, type NatsFlags } from './cluster.js';
import { logger } from '../proto/log.js';
import { findCredential, findTls } from '../proto/transport/credentials.js';
import { WsDialer } from '../proto/transport/ws.js';

export interface AgentCliOptions extends NatsFlags {
  master?: string;
  workDir: string;
  port: number;
  host: string;
  resources?: string;
  attributes?: string;
  containerizer: string;
  strict: boolean;
  cleanupOnExit?: boolean;
  cgroupsEnableCfs?: boolean;
  pidsMax: number;
  pidsMaxTotal?: number;
  cgroupRoot?: string;
  allowHostRoot?: boolean;
  allowedUsers?: string;
  usernsUidRange: string;
  capabilities: string;
  credential?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecure?: boolean;
  httpCredentials?: string;
  authenticateHttpReadonly?: boolean;
  authenticateHttpReadwrite?: boolean;
  acls?: string;
  gcDelay: string;
  diskWatermarkGc: string;
}

/** `90s`, `30m`, `12h`, `7d` (or plain milliseconds) → ms; the field is named in the error. */
export function parseDuration(field: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$/.exec(text.trim());
  if (!m) throw new BerthError('INVALID', `${field}: '${text}' is not a duration (e.g. 90s, 30m, 12h, 7d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[(m[2] ?? 'ms') as 'ms'];
  return Math.round(Number(m[1]) * unit);
}

const list = (s: string | undefined): string[] | undefined => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);

/** `--http-credentials`, `--authenticate-http-*`, `--acls` → the HTTP server's policy (undefined = open). */
export function agentHttpAuth(o: Pick<AgentCliOptions, 'httpCredentials' | 'authenticateHttpReadonly' | 'authenticateHttpReadwrite' | 'acls'>): AgentHttpAuth | undefined {
  const readonly = !!o.authenticateHttpReadonly;
  const readwrite = !!o.authenticateHttpReadwrite;
  if ((readonly || readwrite) && !o.httpCredentials) {
    throw new BerthError('INVALID', `--authenticate-http-${readonly ? 'readonly' : 'readwrite'} needs --http-credentials FILE (the principals callers authenticate as)`);
  }
  if (!o.httpCredentials && !o.acls) return undefined;
  return {
    credentials: o.httpCredentials ? CredentialStore.load(o.httpCredentials, '--http-credentials') : undefined,
    readonly, readwrite,
    authorizer: o.acls ? LocalAuthorizer.load(o.acls) : undefined,
  };
}

export async function runAgentCli(o: AgentCliOptions): Promise<void> {
  if (!['posix', 'linux', 'auto'].includes(o.containerizer)) {
    throw new BerthError('INVALID', `--containerizer must be posix, linux or auto (got '${o.containerizer}')`);
  }
  const range = /^(\d+):(\d+)$/.exec(o.usernsUidRange);
  if (!range || Number(range[1]) < 1 || Number(range[2]) < 65_536 || Number(range[1]) + Number(range[2]) > 2 ** 32) {
    throw new BerthError('INVALID', `--userns-uid-range must be START:COUNT with START >= 1, COUNT >= 65536 (one block per root container) and START+COUNT <= 2^32 (got '${o.usernsUidRange}')`);
  }
  const capabilities = list(o.capabilities) ?? [];
  const nats = natsOptions(o, 'berth-agent');
  if (!nats && !o.master) throw new BerthError('INVALID', 'give --master HOST:PORT, or --nats URL for cluster mode');
  const httpAuth = agentHttpAuth(o);
  // Off loopback the agent's HTTP server (sandboxes, state) must authenticate, unless the operator says not to.
  if (!/^(127\.|localhost$|::1$)/.test(o.host) && !httpAuth?.readonly) {
    if (!o.insecure) throw new BerthError('INVALID', `refusing to serve the agent on ${o.host} without authentication; give --http-credentials FILE with --authenticate-http-readonly, use a loopback --host, or --insecure on a trusted network`);
    process.stderr.write(`berth agent: INSECURE: serving on ${o.host} without authentication (--insecure)\n`);
  }
  // Cluster mode: the dialer follows the leader over NATS (NATS credentials/TLS are on the NATS
  // connection). Otherwise credentials and TLS go to the WebSocket dialer.
  const cluster = nats ? await natsDialer(nats, o.natsPrefix, logger('agent')) : undefined;
  const dialer = cluster?.dialer ?? new WsDialer(o.master!, {
    credential: findCredential({ file: o.credential, workDir: o.workDir }),
    tls: findTls({ ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey }),
  });
  const gcDelayMs = parseDuration('--gc-delay', o.gcDelay);
  const diskWatermarkGc = Number(o.diskWatermarkGc);
  if (!(diskWatermarkGc > 0 && diskWatermarkGc <= 1)) throw new BerthError('INVALID', `--disk-watermark-gc must be a fraction in (0, 1] (got '${o.diskWatermarkGc}')`);
  const { startAgent } = await import('../agent/main.js');
  const started = await startAgent({
    master: o.master, dialer, workDir: o.workDir, port: o.port, host: o.host, httpAuth, resources: o.resources, attributes: o.attributes,
    containerizer: o.containerizer as 'posix' | 'linux' | 'auto', strict: o.strict, cgroupRoot: o.cgroupRoot, gcDelayMs, diskWatermarkGc,
    isolation: {
      enableCfs: !!o.cgroupsEnableCfs, pidsMax: o.pidsMax, pidsMaxTotal: o.pidsMaxTotal, allowHostRoot: !!o.allowHostRoot, allowedUsers: list(o.allowedUsers),
      uidRange: { start: Number(range[1]), count: Number(range[2]) }, capabilities,
    },
  });
  process.stderr.write(`berth agent at ${started.endpoint}, ${nats ? `NATS ${nats.servers.join(',')}` : `master ${o.master}`}\n`);
  const onSignal = (sig: NodeJS.Signals): void => {
    // Tasks outlive a stopped agent (a restart reattaches to them) unless asked to clean up.
    void started.stop({ killTasks: !!o.cleanupOnExit }).then(() => cluster?.close()).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}
