/**
 * `berth up --cluster N`: high availability on one machine, for trying it —
 * an N-node NATS cluster (Debian's nats-server; a clear error with the install
 * command if it is missing), N masters with --nats on consecutive ports from
 * --port (5050, 5051, 5052 by default), the agents with --nats, each
 * given an equal share of the host, and both bundled frameworks with --nats
 * (state in NATS KV buckets, replicated as the registry). Every component finds the leader through
 * NATS; SIGKILL the leader (its pid is printed) and watch a standby take over.
 * Ctrl-C stops agents (with their tasks), masters, then NATS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { logger } from '../proto/log.js';
import { NatsCluster } from './nats-server.js';
import { splitHost, type UpOptions } from './up.js';

export async function runUpCluster(opts: UpOptions & { cluster: number }): Promise<void> {
  const log = logger('up');
  const workDir = path.resolve(opts.workDir);
  mkdirSync(workDir, { recursive: true });
  const n = opts.cluster;
  const nats = await NatsCluster.start({ nodes: n, dir: path.join(workDir, 'nats') });
  const natsArgs = nats.urls.flatMap((u) => ['--nats', u]);
  const cli = fileURLToPath(new URL('./main.js', import.meta.url));
  const children: { tag: string; proc: ChildProcess }[] = [];
  let stopping = false;
  const child = (tag: string, args: string[]): ChildProcess => {
    const proc = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'inherit', 'pipe'] });
    proc.stderr!.pipe(process.stderr);
    proc.on('exit', (code, sig) => { if (!stopping) log.warn({ process: tag, code, signal: sig }, 'process exited'); });
    children.push({ tag, proc });
    return proc;
  };
  const end = (c: ChildProcess, graceMs: number): Promise<void> => new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => { clearTimeout(t); resolve(); });
    c.kill('SIGTERM');
  });
  /** Starts `berth ARGS` and resolves with the first capture of `re` in its output. */
  const started = (tag: string, args: string[], re: RegExp): Promise<string> => {
    const p = child(tag, args);
    return new Promise<string>((resolve, reject) => {
      let out = '';
      const on = (d: Buffer): void => { out += d.toString(); const m = re.exec(out); if (m) { p.stderr!.off('data', on); resolve(m[1]!); } };
      p.stderr!.on('data', on);
      p.once('exit', (code) => reject(new Error(`${tag} exited (${code}) while starting`)));
    }).catch(async (e: Error) => {
      // One component failed to start: leave nothing behind.
      stopping = true;
      for (const c of children) c.proc.kill('SIGKILL');
      await nats.stop();
      throw e;
    });
  };
  const replicas = String(Math.min(3, n));
  const urls: string[] = [];
  for (let i = 0; i < n; i++) {
    const port = opts.port === 0 ? 0 : opts.port + i;
    urls.push(await started(`master-${i}`, ['master', ...natsArgs, '--port', String(port), '--host', opts.host, '--replicas', replicas], /berth master at (\S+)/));
  }
  const shares = splitHost(opts.agents, workDir);
  for (let i = 0; i < opts.agents; i++) {
    child(`agent-${i}`, ['agent', ...natsArgs, '--work-dir', path.join(workDir, `agent-${i}`), '--port', '0',
      '--resources', shares[i]!, '--attributes', `agent:${i}`, '--containerizer', opts.containerizer, '--cleanup-on-exit']);
  }
  // Both bundled frameworks run in their own roles, as on one machine (`marathon`, `batch`), follow the leader through NATS and keep their state in NATS KV
  // (replicated like the registry): kill one and start it anywhere with the same --nats.
  const fwPort = (def: number, given?: number): string => String(given ?? (opts.port === 0 ? 0 : def));
  const marathonUrl = opts.marathon === false ? undefined : await started('marathon', ['marathon', ...natsArgs, '--replicas', replicas,
    '--work-dir', path.join(workDir, 'marathon'), '--port', fwPort(8080, opts.marathonPort), '--role', 'marathon'], /berth marathon at (\S+)/);
  const batchUrl = opts.batch === false ? undefined : await started('batch', ['batch', ...natsArgs, '--replicas', replicas,
    '--work-dir', path.join(workDir, 'batch'), '--port', fwPort(8090), '--role', 'batch'], /batch API at (\S+)/);
  const masters = children.filter((c) => c.tag.startsWith('master')).map((c, i) => `    ${urls[i]}  (pid ${c.proc.pid})`).join('\n');
  process.stderr.write(`\nberth is up (cluster of ${n}): masters\n${masters}\n  NATS: ${nats.urls.join(' ')}\n  agents: ${opts.agents}, with --nats\n` +
    `  state:  berth state --master ${urls[0]}   (any master: it names the leader and standbys)\n` +
    (marathonUrl ? `  marathon: ${marathonUrl}   (state in NATS KV)\n` : '') + (batchUrl ? `  batch:    ${batchUrl}   (state in NATS KV)\n` : '') +
    `  other frameworks: give them --nats ${nats.urls.join(',')}\n  stop:   Ctrl-C\n\n`);
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('stopping frameworks, agents, masters and NATS…\n');
    // Frameworks first: they must not relaunch the tasks the stopping agents take down.
    await Promise.all(children.filter((c) => c.tag === 'marathon' || c.tag === 'batch').map((c) => end(c.proc, 5_000)));
    await Promise.all(children.filter((c) => c.tag.startsWith('agent')).map((c) => end(c.proc, 15_000)));
    await Promise.all(children.filter((c) => c.tag.startsWith('master')).map((c) => end(c.proc, 5_000)));
    await nats.stop();
    process.stderr.write('stopped\n');
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
