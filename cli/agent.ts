/** `berth agent`: flags → startAgent; runs until SIGINT/SIGTERM. */
import { BerthError } from '../proto/errors.js';
import { natsDialer, natsOptions, type NatsFlags } from './cluster.js';

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
  allowHostRoot?: boolean;
  allowedUsers?: string;
  usernsUidRange: string;
  capabilities: string;
}

const list = (s: string | undefined): string[] | undefined => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);

export async function runAgentCli(o: AgentCliOptions): Promise<void> {
  if (!['posix', 'linux', 'auto'].includes(o.containerizer)) {
    throw new BerthError('INVALID', `--containerizer must be posix, linux or auto (got '${o.containerizer}')`);
  }
  const range = /^(\d+):(\d+)$/.exec(o.usernsUidRange);
  if (!range || Number(range[2]) < 1) throw new BerthError('INVALID', `--userns-uid-range must be START:COUNT with COUNT >= 1 (got '${o.usernsUidRange}')`);
  const capabilities = list(o.capabilities) ?? [];
  const nats = natsOptions(o, 'berth-agent');
  if (!nats && !o.master) throw new BerthError('INVALID', 'give --master HOST:PORT, or --nats URL for cluster mode');
  const cluster = nats ? await natsDialer(nats, o.natsPrefix) : undefined;
  const { startAgent } = await import('../agent/main.js');
  const started = await startAgent({
    master: o.master, dialer: cluster?.dialer, workDir: o.workDir, port: o.port, host: o.host, resources: o.resources, attributes: o.attributes,
    containerizer: o.containerizer as 'posix' | 'linux' | 'auto', strict: o.strict,
    isolation: {
      enableCfs: !!o.cgroupsEnableCfs, pidsMax: o.pidsMax, allowHostRoot: !!o.allowHostRoot, allowedUsers: list(o.allowedUsers),
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
