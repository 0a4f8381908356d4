/** `berth agent`: flags → startAgent; runs until SIGINT/SIGTERM. */
import { BerthError } from '../proto/errors.js';
import { findCredential, findTls } from '../proto/transport/credentials.js';
import { WsDialer } from '../proto/transport/ws.js';

export interface AgentCliOptions {
  master: string;
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
}

const list = (s: string | undefined): string[] | undefined => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);

export async function runAgentCli(o: AgentCliOptions): Promise<void> {
  if (!['posix', 'linux', 'auto'].includes(o.containerizer)) {
    throw new BerthError('INVALID', `--containerizer must be posix, linux or auto (got '${o.containerizer}')`);
  }
  const range = /^(\d+):(\d+)$/.exec(o.usernsUidRange);
  if (!range || Number(range[2]) < 1) throw new BerthError('INVALID', `--userns-uid-range must be START:COUNT with COUNT >= 1 (got '${o.usernsUidRange}')`);
  const capabilities = list(o.capabilities) ?? [];
  // The agent's HTTP server does not authenticate: off loopback only when the operator says so.
  if (!/^(127\.|localhost$|::1$)/.test(o.host)) {
    if (!o.insecure) throw new BerthError('INVALID', `refusing to serve the agent on ${o.host} without authentication; use a loopback --host, or --insecure on a trusted network`);
    process.stderr.write(`berth agent: INSECURE: serving on ${o.host} without authentication (--insecure)\n`);
  }
  // Credentials and TLS go to the dialer; the agent only passes them through.
  const dialer = new WsDialer(o.master, {
    credential: findCredential({ file: o.credential, workDir: o.workDir }),
    tls: findTls({ ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey }),
  });
  const { startAgent } = await import('../agent/main.js');
  const started = await startAgent({
    master: o.master, dialer, workDir: o.workDir, port: o.port, host: o.host, resources: o.resources, attributes: o.attributes,
    containerizer: o.containerizer as 'posix' | 'linux' | 'auto', strict: o.strict, cgroupRoot: o.cgroupRoot,
    isolation: {
      enableCfs: !!o.cgroupsEnableCfs, pidsMax: o.pidsMax, pidsMaxTotal: o.pidsMaxTotal, allowHostRoot: !!o.allowHostRoot, allowedUsers: list(o.allowedUsers),
      uidRange: { start: Number(range[1]), count: Number(range[2]) }, capabilities,
    },
  });
  process.stderr.write(`berth agent at ${started.endpoint}, master ${o.master}\n`);
  const onSignal = (sig: NodeJS.Signals): void => {
    // Tasks outlive a stopped agent (a restart reattaches to them) unless asked to clean up.
    void started.stop({ killTasks: !!o.cleanupOnExit }).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}
