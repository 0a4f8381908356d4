/** `berth agent`: flags → startAgent; runs until SIGINT/SIGTERM. */
import { BerthError } from '../proto/errors.js';

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
}

export async function runAgentCli(o: AgentCliOptions): Promise<void> {
  if (!['posix', 'linux', 'auto'].includes(o.containerizer)) {
    throw new BerthError('INVALID', `--containerizer must be posix, linux or auto (got '${o.containerizer}')`);
  }
  const { startAgent } = await import('../agent/main.js');
  const started = await startAgent({
    master: o.master, workDir: o.workDir, port: o.port, host: o.host, resources: o.resources, attributes: o.attributes,
    containerizer: o.containerizer as 'posix' | 'linux' | 'auto', strict: o.strict,
  });
  process.stderr.write(`berth agent at ${started.endpoint}, master ${o.master}\n`);
  const onSignal = (sig: NodeJS.Signals): void => {
    // Tasks outlive a stopped agent (a restart reattaches to them) unless asked to clean up.
    void started.stop({ killTasks: !!o.cleanupOnExit }).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}
