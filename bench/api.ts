/**
 * `npm run bench -- api`: offer → launch round trips per second through the
 * framework-facing transports, in one run on one cluster: one real master on a
 * loopback port and N simulated agents (sim/agent.ts: real
 * berth.agent protocol over WebSockets, tasks finish at once, every update
 * acknowledged). A framework launches one tiny task per offer and returns the
 * rest with refuse_seconds 0, so the offer comes straight back; a round trip
 * is one offer answered by an ACCEPT carrying a LAUNCH.
 *
 * Transports measured, one framework at a time (so they never compete),
 * alternating order rep after rep: the Mesos v1 HTTP API (JSON and protobuf)
 * and the native transport (berth://, protobuf over one WebSocket). Each
 * figure's baseline is the other transport's median from the same run (HTTP's
 * baseline = native; native's baseline = HTTP JSON), as `params.baseline` says.
 *
 * Args: --agents N (default 10) --seconds S per rep (default 2) --reps R (default 5).
 */
import { connect, pickResources, type Framework, type Offer } from '../frameworks/sdk/index.js';
import { silentLogger } from '../proto/log.js';
import { startCluster } from '../test/helpers/cluster.js';
import { emit, median, progress } from './report.js';

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

type Mode = 'http-json' | 'http-protobuf' | 'native';

let taskSeq = 0;

/** Runs one framework for `ms` and returns offer→launch round trips per second. */
async function measure(mode: Mode, endpoints: { http: string; native: string }, ms: number): Promise<number> {
  const fw: Framework = await connect({
    master: mode === 'native' ? endpoints.native : endpoints.http,
    encoding: mode === 'http-protobuf' ? 'protobuf' : 'json',
    framework: { name: `bench-${mode}` },
    log: silentLogger,
  });
  let running = true;
  let count = 0;
  let started = 0;
  fw.on('offers', async (offers: Offer[]) => {
    if (!running) return;
    if (started === 0) started = performance.now();
    await Promise.all(offers.map((offer) => {
      const picked = pickResources(offer, { cpus: 0.01, mem: 1 });
      if (!picked) return fw.decline(offer.id.value, 0);
      count++;
      const id = `b${taskSeq++}`;
      return fw.accept(offer.id.value, [{ name: id, task_id: { value: id }, agent_id: offer.agent_id, resources: picked.resources, command: { value: 'true' } }], { refuseSeconds: 0 });
    }));
  });
  const t0 = performance.now();
  while (started === 0 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, ms));
  running = false;
  const elapsed = (performance.now() - started) / 1000;
  const n = count;
  await fw.teardown().catch(() => fw.close());
  return n / elapsed;
}

export async function run(args: string[]): Promise<void> {
  const agents = arg(args, 'agents', 10);
  const seconds = arg(args, 'seconds', 2);
  const reps = arg(args, 'reps', 5);
  progress(`api: master + ${agents} simulated agents on loopback; ${reps} reps × ${seconds}s per transport`);
  const cluster = await startCluster({ agents, resources: 'cpus:32;mem:65536;disk:100000;ports:[31000-32000]', master: { log: silentLogger } });
  try {
    const endpoints = { http: cluster.url, native: `berth://${cluster.hostPort}` };
    const modes: Mode[] = ['http-json', 'http-protobuf', 'native'];
    for (const m of modes) await measure(m, endpoints, 300); // warm up JIT, sockets, allocator
    const results: Record<Mode, number[]> = { 'http-json': [], 'http-protobuf': [], native: [] };
    for (let r = 0; r < reps; r++) {
      const order = r % 2 === 0 ? modes : [...modes].reverse();
      for (const m of order) {
        const v = await measure(m, endpoints, seconds * 1000);
        results[m].push(v);
        progress(`rep ${r + 1}: ${m} ${v.toFixed(0)} round trips/s`);
      }
    }
    const med = (m: Mode): number => median(results[m]);
    const params = (m: Mode, baseline: string): Record<string, unknown> => ({
      agents, seconds_per_rep: seconds, reps, min: Math.min(...results[m]), max: Math.max(...results[m]),
      baseline, cluster: 'one master, fake agents over WebSockets, same run', sdk: 'frameworks/sdk', tasks_per_offer: 1,
    });
    emit({ name: 'api.offer_launch_roundtrips.http_json', value: med('http-json'), unit: 'roundtrips/s', baseline: med('native'), params: params('http-json', 'native transport (berth://), same run, same cluster') });
    emit({ name: 'api.offer_launch_roundtrips.http_protobuf', value: med('http-protobuf'), unit: 'roundtrips/s', baseline: med('native'), params: params('http-protobuf', 'native transport (berth://), same run, same cluster') });
    emit({ name: 'api.offer_launch_roundtrips.native', value: med('native'), unit: 'roundtrips/s', baseline: med('http-json'), params: params('native', 'Mesos v1 HTTP API (JSON), same run, same cluster') });
  } finally {
    await cluster.stop();
  }
}
