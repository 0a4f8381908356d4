#!/usr/bin/env node
/**
 * `berth` — one entry for every component:
 *   berth up                      master + N agents on this machine (embedded defaults)
 *   berth master | agent          one component
 *   berth state                   a readable summary of a running cluster
 *   berth bench NAME              benchmarks (same as `npm run bench -- NAME`)
 * Bad flags fail with the flag named; every server logs structured JSON lines.
 */
import { Command, InvalidArgumentError } from 'commander';
import { runUp } from './up.js';
import { printState } from './state.js';
import { addNatsFlags, natsOptions } from './cluster.js';

function intArg(name: string, min = 0, max = 65535) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer between ${min} and ${max} (got '${v}')`);
    return n;
  };
}

const program = new Command();
program.name('berth').description('A Mesos-style two-level cluster scheduler').version('0.1.0');

program.command('up')
  .description('run a master and agents on this machine; Ctrl-C stops everything')
  .option('--agents <n>', 'number of agents (they split this host\'s resources)', intArg('--agents', 1, 64), 2)
  .option('--port <port>', 'master port (0 = any free port)', intArg('--port'), 5050)
  .option('--host <host>', 'address the master binds', '127.0.0.1')
  .option('--work-dir <dir>', 'where the registry, sandboxes and checkpoints live', '.berth')
  .option('--containerizer <kind>', 'posix | linux | auto', 'auto')
  .option('--cluster <n>', 'highly available: an N-node NATS cluster and N masters on consecutive ports from --port (needs nats-server)', intArg('--cluster', 1, 7))
  .action(async (opts) => {
    if (opts.cluster) { const { runUpCluster } = await import('./up-cluster.js'); await runUpCluster(opts); return; }
    await runUp(opts);
  });

addNatsFlags(program.command('master')
  .description('run a master (with --nats: one of several highly available masters)')
  .option('--port <port>', 'port for HTTP and WebSocket (0 = any free port)', intArg('--port'), 5050)
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .option('--advertise-host <host>', 'address other machines reach this master at (default: --host)')
  .option('--work-dir <dir>', 'registry directory', '.berth')
  .option('--offer-timeout <seconds>', 'rescind offers not answered within this time (0 = never)', intArg('--offer-timeout', 0, 86400), 0)
  .option('--allocation-interval <ms>', 'allocation interval', intArg('--allocation-interval', 1, 600000), 1000)
  .option('--replicas <n>', 'cluster mode: replicas of the KV registry and leader buckets (3 on a 3-node NATS cluster)', intArg('--replicas', 1, 5), 1)
  .option('--lease-ttl <ms>', 'cluster mode: leader lease; a standby takes over this long after the last renewal', intArg('--lease-ttl', 200, 60000), 3000)
  .option('--agent-reregister-timeout <ms>', 'agents known from the registry that do not come back within this time become unreachable', intArg('--agent-reregister-timeout', 1000, 86_400_000), 600_000))
  .action(async (opts) => {
    const nats = natsOptions(opts);
    const common = {
      port: opts.port, host: opts.host, advertiseHost: opts.advertiseHost,
      offerTimeoutMs: opts.offerTimeout * 1000, allocationIntervalMs: opts.allocationInterval,
      agentReregisterTimeoutMs: opts.agentReregisterTimeout,
    };
    let stopFn: () => Promise<void>;
    if (nats) {
      const { startClusterMaster } = await import('../master/leader/run.js');
      const m = await startClusterMaster({ ...common, nats, prefix: opts.natsPrefix, replicas: opts.replicas, leaseTtlMs: opts.leaseTtl });
      process.stderr.write(`berth master at ${m.url} (cluster mode, ${m.contender.state})\n`);
      stopFn = () => m.stop();
    } else {
      const { startMaster } = await import('../master/main.js');
      const m = await startMaster({ ...common, workDir: opts.workDir });
      process.stderr.write(`berth master at ${m.url}\n`);
      stopFn = () => m.stop();
    }
    const stop = () => { void stopFn().then(() => process.exit(0)); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

addNatsFlags(program.command('agent')
  .description('run an agent')
  .option('--master <host:port>', 'the master to register with (or --nats to follow the leading master)')
  .option('--work-dir <dir>', 'sandboxes and checkpoints', '.berth/agent')
  .option('--port <port>', 'agent HTTP port (0 = any free port)', intArg('--port'), 5051)
  .option('--host <host>', 'address the agent HTTP server binds', '127.0.0.1')
  .option('--resources <text>', "override/add resources, Mesos text form: 'cpus:4;mem:8192;ports:[31000-32000]'")
  .option('--attributes <text>', "attributes, e.g. 'rack:r1;zone:a'")
  .option('--containerizer <kind>', 'posix | linux | auto', 'auto')
  .option('--no-strict', 'recover what is readable from a damaged checkpoint instead of refusing to start')
  .option('--cleanup-on-exit', 'destroy all containers when stopped by SIGINT/SIGTERM (default: tasks outlive the agent)')
  .option('--cgroups-enable-cfs', 'linux: hard-cap cpu with CFS quota (cpus × 100 ms per 100 ms), as Mesos --cgroups_enable_cfs')
  .option('--pids-max <n>', 'linux: pids.max per container (0 = unlimited)', intArg('--pids-max', 0, 4_194_304), 1024)
  .option('--allow-host-root', 'linux: let a task asking for root be root on the host (default: root inside a user namespace)')
  .option('--allowed-users <list>', 'linux: comma-separated users tasks may run as (default: any existing user)')
  .option('--userns-uid-range <start:count>', 'linux: host uids that a root task\'s user namespace maps to', '1000000:65536')
  .option('--capabilities <list>', 'linux: capabilities kept in the bounding set, comma-separated (default: none)', ''))
  .action(async (opts) => {
    const { runAgentCli } = await import('./agent.js');
    await runAgentCli(opts);
  });

program.command('state')
  .description('print a summary of a running cluster: agents, frameworks, tasks by state')
  .option('--master <url>', 'master URL', process.env.BERTH_MASTER ?? 'http://127.0.0.1:5050')
  .option('--json', 'print the raw /state JSON')
  .action(async (opts) => { await printState(opts.master, !!opts.json); });

program.command('bench')
  .description('run benchmarks (allocator, launch, api, micro)')
  .argument('<names...>')
  .action(async (names: string[]) => {
    process.argv = [process.argv[0]!, 'bench', ...names];
    await import('../bench/main.js');
  });

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`berth: ${e.message}\n`);
  process.exit(1);
});
