#!/usr/bin/env node
/**
 * `berth` — one entry for every component:
 *   berth up                      master + N agents on this machine (embedded defaults)
 *   berth master | agent          one component
 *   berth state                   a readable summary of a running cluster
 *   berth batch | job …           the batch framework and its client (cli/job.ts)
 *   berth bench NAME              benchmarks (same as `npm run bench -- NAME`)
 * Bad flags fail with the flag named; every server logs structured JSON lines.
 */
import { Command, InvalidArgumentError } from 'commander';
import { runUp } from './up.js';
import { printState } from './state.js';
import { addNatsFlags, natsOptions } from './cluster.js';
import { registerBatchCommand, registerJobCommands } from './job.js';
import { registerAppCommands } from './app.js';
import { parseWeights } from '../master/weights.js';
import { roleError } from '../master/validation.js';

/** Mesos' `--weights role=w,…`, failing with the flag named. */
function weightsArg(v: string): Record<string, number> {
  try { return parseWeights(v, '--weights'); } catch (e) { throw new InvalidArgumentError((e as Error).message); }
}

/** A role name by Mesos' rules, failing with the flag named. */
function roleArg(name: string) {
  return (v: string): string => {
    const err = roleError(name, v);
    if (err) throw new InvalidArgumentError(err);
    return v;
  };
}

function intArg(name: string, min = 0, max = 65535) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer between ${min} and ${max} (got '${v}')`);
    return n;
  };
}

const program = new Command();
program.name('berth').description('A Mesos-style two-level cluster scheduler').version('0.1.0');

securityOptions(program.command('up'))
  .description('run a master and agents on this machine; Ctrl-C stops everything')
  .option('--agents <n>', 'number of agents (they split this host\'s resources)', intArg('--agents', 1, 64), 2)
  .option('--port <port>', 'master port (0 = any free port)', intArg('--port'), 5050)
  .option('--host <host>', 'address the master binds', '127.0.0.1')
  .option('--work-dir <dir>', 'where the registry, sandboxes and checkpoints live', '.berth')
  .option('--containerizer <kind>', 'posix | linux | auto', 'auto')
  .option('--no-batch', 'do not start the batch framework')
  .option('--credential <file>', 'the agents\' credential (principal and secret), when agents must authenticate')
  .option('--no-marathon', 'do not start the Marathon service framework')
  .option('--marathon-port <port>', 'Marathon REST API port (default 8080, or any free port with --port 0)', intArg('--marathon-port'))
  .option('--batch-role <role>', 'role the batch framework subscribes with', roleArg('--batch-role'), 'batch')
  .option('--marathon-role <role>', 'role the Marathon service framework subscribes with', roleArg('--marathon-role'), 'marathon')
  .option('--weights <list>', "role weights, e.g. 'marathon=2,batch=1': under contention a role gets shares in proportion (default 1 each)", weightsArg)
  .option('--allocation-interval <ms>', 'allocation interval', intArg('--allocation-interval', 1, 600000), 1000)
  .option('--agent-resources <text>', "declare each agent's resources instead of splitting the host, e.g. 'cpus:8;mem:16384' (ports default to the agent's slice)")
  .option('--cluster <n>', 'highly available: an N-node NATS cluster and N masters on consecutive ports from --port (needs nats-server)', intArg('--cluster', 1, 7))
  .action(async (opts, cmd: Command) => {
    if (opts.cluster) {
      // Refused rather than ignored: cluster mode starts its masters and frameworks its own way.
      const unsupported = ['weights', 'batchRole', 'marathonRole', 'allocationInterval', 'agentResources'].filter((k) => cmd.getOptionValueSource(k) === 'cli');
      if (unsupported.length) throw new Error(`--cluster does not take ${unsupported.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')} yet`);
      const { runUpCluster } = await import('./up-cluster.js'); await runUpCluster(opts); return;
    }
    await runUp({ ...opts, allocationIntervalMs: opts.allocationInterval, security: securityFlags(opts), credential: opts.credential });
  });

/** Mesos' security flags in Berth's spelling, shared by `berth master` and `berth up`. */
function securityOptions(cmd: Command): Command {
  return cmd
    .option('--credentials <file>', "principals and secrets, Mesos' JSON {\"credentials\":[{\"principal\",\"secret\"}]}")
    .option('--authenticate-frameworks', 'frameworks (HTTP API and native) must authenticate')
    .option('--authenticate-agents', 'agents must authenticate')
    .option('--authenticate-http-readonly', 'read-only endpoints (/state, /metrics, …) need credentials')
    .option('--authenticate-http-readwrite', 'read-write endpoints (/teardown) need credentials')
    .option('--acls <file>', "Mesos' ACLs JSON (register_frameworks, run_tasks, teardown_frameworks, view_*)")
    .option('--tls-cert <file>', 'serve HTTPS/WSS with this certificate (PEM)')
    .option('--tls-key <file>', 'the certificate\'s private key (PEM)')
    .option('--tls-ca <file>', 'require client certificates signed by this CA (PEM)')
    .option('--insecure', 'allow a non-loopback --host without authentication (warned at every start)');
}

/** Commander's camelCase security flags → startMaster options. */
export function securityFlags(o: Record<string, unknown>): Record<string, unknown> {
  return {
    credentialsFile: o.credentials, authenticateFrameworks: !!o.authenticateFrameworks, authenticateAgents: !!o.authenticateAgents,
    authenticateHttpReadonly: !!o.authenticateHttpReadonly, authenticateHttpReadwrite: !!o.authenticateHttpReadwrite,
    aclsFile: o.acls, tlsCertFile: o.tlsCert, tlsKeyFile: o.tlsKey, tlsCaFile: o.tlsCa, insecure: !!o.insecure,
  };
}

addNatsFlags(securityOptions(program.command('master'))
  .description('run a master (with --nats: one of several highly available masters)')
  .option('--port <port>', 'port for HTTP and WebSocket (0 = any free port)', intArg('--port'), 5050)
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .option('--advertise-host <host>', 'address other machines reach this master at (default: --host)')
  .option('--work-dir <dir>', 'registry directory', '.berth')
  .option('--offer-timeout <seconds>', 'rescind offers not answered within this time (0 = never)', intArg('--offer-timeout', 0, 86400), 0)
  .option('--allocation-interval <ms>', 'allocation interval', intArg('--allocation-interval', 1, 600000), 1000)
  .option('--weights <list>', "role weights, e.g. 'services=2,batch=1': roles are ordered by dominant share / weight (default 1 each)", weightsArg)
  .option('--registry-max-agent-age <seconds>', 'forget agents unreachable for longer than this', intArg('--registry-max-agent-age', 60, 10 * 365 * 86400), 14 * 86400)
  .option('--registry-max-agent-count <n>', 'remember at most this many unreachable agents', intArg('--registry-max-agent-count', 1, 10_000_000), 100_000)
  .option('--replicas <n>', 'cluster mode: replicas of the KV registry and leader buckets (3 on a 3-node NATS cluster)', intArg('--replicas', 1, 5), 1)
  .option('--lease-ttl <ms>', 'cluster mode: leader lease; a standby takes over this long after the last renewal', intArg('--lease-ttl', 200, 60000), 3000)
  .option('--agent-ping-interval <ms>', 'ping agents this often; 3 unanswered pings in a row make an agent unreachable (Mesos --agent_ping_timeout)', intArg('--agent-ping-interval', 100, 600000), 5000)
  .option('--agent-reregister-timeout <ms>', 'agents known from the registry that do not come back within this time become unreachable', intArg('--agent-reregister-timeout', 1000, 86_400_000), 600_000))
  .action(async (opts) => {
    const nats = natsOptions(opts);
    const common = {
      port: opts.port, host: opts.host, advertiseHost: opts.advertiseHost,
      offerTimeoutMs: opts.offerTimeout * 1000, allocationIntervalMs: opts.allocationInterval,
      ...(opts.weights ? { weights: opts.weights as Record<string, number> } : {}),
      agentReregisterTimeoutMs: opts.agentReregisterTimeout, agentPingIntervalMs: opts.agentPingInterval,
      registryMaxAgentAgeMs: opts.registryMaxAgentAge * 1000, registryMaxAgentCount: opts.registryMaxAgentCount,
    };
    let stopFn: () => Promise<void>;
    if (nats) {
      const { insecure, ...sec } = securityFlags(opts);
      if (Object.values(sec).some((v) => v)) throw new Error('cluster mode (--nats) does not take the master\'s HTTP security flags yet: secure NATS with --nats-creds/--nats-tls-*, and keep the HTTP port on loopback');
      if (!/^(127\.|localhost$|::1$)/.test(opts.host)) {
        if (!insecure) throw new Error(`refusing to serve the master's HTTP API on ${opts.host} without authentication; use a loopback --host, or --insecure on a trusted network`);
        process.stderr.write(`berth master: INSECURE: HTTP API on ${opts.host} without authentication (--insecure)\n`);
      }
      const { startClusterMaster } = await import('../master/leader/run.js');
      const m = await startClusterMaster({ ...common, nats, prefix: opts.natsPrefix, replicas: opts.replicas, leaseTtlMs: opts.leaseTtl });
      process.stderr.write(`berth master at ${m.url} (cluster mode, ${m.contender.state})\n`);
      stopFn = () => m.stop();
    } else {
      const { startMaster } = await import('../master/main.js');
      const m = await startMaster({ ...common, workDir: opts.workDir, ...securityFlags(opts) });
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
  .option('--pids-max-total <n>', 'linux: pids.max of all this agent\'s containers together (default half of kernel.pid_max; 0 = unlimited)', intArg('--pids-max-total', 0, 4_194_304))
  .option('--gc-delay <duration>', 'remove a finished task\'s sandbox this long after it ended: 90s, 30m, 12h, 7d (default 7d, as Mesos)', '7d')
  .option('--disk-watermark-gc <fraction>', 'when the work dir\'s filesystem is fuller than this (0-1), finished sandboxes go sooner, oldest first', '0.9')
  .option('--cgroup-root <path>', 'linux: this agent\'s own cgroup root, e.g. berth/a1 (default berth/agent-<hash of --work-dir>); never shared by two agents')
  .option('--allow-host-root', 'linux: let a task asking for root be root on the host (default: root inside a user namespace)')
  .option('--allowed-users <list>', 'linux: comma-separated users tasks may run as (default: any existing user)')
  .option('--userns-uid-range <start:count>', 'linux: this agent\'s pool of host ids for root tasks; each root container gets its own block of 65536 from it (agents on one host need disjoint pools)', '1048576:33554432')
  .option('--capabilities <list>', 'linux: capabilities kept in the bounding set, comma-separated (default: none)', '')
  .option('--credential <file>', 'principal and secret for the master (Mesos JSON {"principal","secret"}); default $BERTH_CREDENTIAL or <work-dir>/credential')
  .option('--tls-ca <file>', 'verify the master\'s certificate against this CA (PEM); implies TLS')
  .option('--tls-cert <file>', 'client certificate presented to the master (PEM)')
  .option('--tls-key <file>', 'the client certificate\'s key (PEM)')
  .option('--http-credentials <file>', "principals and secrets callers of the agent's HTTP endpoints present, Mesos' JSON {\"credentials\":[{\"principal\",\"secret\"}]}")
  .option('--authenticate-http-readonly', 'every agent endpoint but /health (sandbox files, /state, /monitor/statistics) needs credentials')
  .option('--authenticate-http-readwrite', 'read-write agent endpoints need credentials (the agent has none yet; accepted as Mesos\' flag)')
  .option('--acls <file>', "Mesos' ACLs JSON: access_sandboxes (principal → users whose sandboxes it reads), view_frameworks, view_tasks")
  .option('--insecure', 'allow a non-loopback --host without --authenticate-http-readonly'))
  .action(async (opts) => {
    const { runAgentCli } = await import('./agent.js');
    await runAgentCli(opts);
  });

addNatsFlags(program.command('marathon'))
  .description('run the Marathon-compatible service framework and its v2 REST API (with --nats: follows the leading master, state in NATS KV)')
  .option('--replicas <n>', 'cluster mode: replicas of the state bucket (3 on a 3-node NATS cluster)', intArg('--replicas', 1, 5), 1)
  .option('--master <url>', 'master URL (http://… Mesos HTTP API, berth://… native)', process.env.BERTH_MASTER ?? 'http://127.0.0.1:5050')
  .option('--port <port>', 'REST API port (0 = any free port)', intArg('--port'), 8080)
  .option('--host <host>', 'address the REST API binds', '127.0.0.1')
  .option('--work-dir <dir>', 'where apps, deployments and instance ids are kept', '.berth/marathon')
  .option('--framework-name <name>', 'framework name', 'marathon')
  .option('--role <role>', 'role to subscribe with', '*')
  .action(async (opts) => {
    const { runMarathonCli } = await import('./app.js');
    await runMarathonCli(opts);
  });

registerAppCommands(program);

program.command('state')
  .description('print a summary of a running cluster: agents, frameworks, tasks by state')
  .option('--master <url>', 'master URL', process.env.BERTH_MASTER ?? 'http://127.0.0.1:5050')
  .option('--json', 'print the raw /state JSON')
  .option('--credential <file>', 'principal and secret (Mesos JSON {"principal","secret"}); default $BERTH_CREDENTIAL or $BERTH_PRINCIPAL/$BERTH_SECRET')
  .option('--tls-ca <file>', 'verify the master\'s certificate against this CA (PEM)')
  .option('--tls-cert <file>', 'client certificate (PEM)')
  .option('--tls-key <file>', 'client certificate key (PEM)')
  .action(async (opts) => { await printState(opts.master, !!opts.json, { credentialFile: opts.credential, tlsCa: opts.tlsCa, tlsCert: opts.tlsCert, tlsKey: opts.tlsKey }); });

registerBatchCommand(program);
registerJobCommands(program);

program.command('bench')
  .description('run benchmarks (allocator, launch, api, micro, binpack, c1m, scale); suite flags pass through')
  .argument('<names...>')
  .allowUnknownOption()
  .action(async (names: string[]) => {
    process.argv = [process.argv[0]!, 'bench', ...names];
    await import('../bench/main.js');
  });

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`berth: ${e.message}\n`);
  process.exit(1);
});
