/**
 * The smallest cluster-mode setup the chaos tests on real processes share: one NATS node, a
 * master with --nats and one posix agent (restartable), with the task-marks directory the
 * counted commands of tasks.ts write to. Everything is stopped and removed after `fn`, also when
 * it fails: frameworks first (SIGTERM), then the agent, then whatever is left, tasks by pid.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NatsCluster } from '../../cli/nats-server.js';
import { Procs, type Proc } from './procs.js';
import { killTasks } from './tasks.js';

export interface Env {
  dir: string; marks: string; nats: NatsCluster; procs: Procs; url: string; natsArgs: string[];
  /** Starts the agent again on its work dir (after a kill); returns the new process. */
  startAgent(): Proc;
}

export async function withNatsMaster(prefix: string, agentResources: string, fn: (e: Env) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const marks = path.join(dir, 'runs');
  mkdirSync(marks);
  chmodSync(marks, 0o777);
  const procs = new Procs();
  let nats: NatsCluster | undefined;
  let agent: Proc | undefined;
  try {
    nats = await NatsCluster.start({ nodes: 1, dir: path.join(dir, 'nats') });
    const natsArgs = nats.urls.flatMap((u) => ['--nats', u]);
    const m = procs.berth('master', ['master', ...natsArgs, '--port', '0', '--allocation-interval', '200']);
    const url = (await m.waitFor(/berth master at (\S+)/, 60_000))[1]!;
    const startAgent = (): Proc => {
      agent = procs.berth('agent', ['agent', ...natsArgs, '--port', '0', '--containerizer', 'posix', '--cleanup-on-exit',
        '--work-dir', path.join(dir, 'agent'), '--resources', agentResources]);
      return agent;
    };
    await startAgent().waitFor(/Registered with the master/, 60_000);
    await fn({ dir, marks, nats, procs, url, natsArgs, startAgent });
  } finally {
    for (const p of procs.all) if (p.tag !== 'agent' && p.tag !== 'master') await p.kill('SIGTERM').catch(() => {});
    await agent?.kill('SIGTERM').catch(() => {});
    await procs.killAll();
    killTasks(marks);
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
