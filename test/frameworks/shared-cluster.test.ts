/**
 * One master, one allocator, two kinds of framework: one speaking the Mesos
 * v1 HTTP API by hand (raw HTTP, no SDK) and one on the SDK's native
 * transport. Both greedily launch identical long-running tasks, one per offer,
 * returning the rest at once; DRF must split the cluster evenly between them
 * (dominant shares within 5%), and each sees the other's effect (a full cluster).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Event, Offer, Resource } from '../../proto/types.js';
import { connect, pickResources, task, type Framework } from '../../frameworks/sdk/index.js';
import { holdScript, startCluster, type TestCluster } from '../helpers/cluster.js';
import { openStream, request, type RawStream } from '../master/http/raw-client.js';

const TASK = { cpus: 0.5, mem: 256 };
const AGENTS = 4;
const SLOTS = AGENTS * (4 / TASK.cpus); // 32 tasks fill the cluster by cpus

function fits(offer: Offer): Resource[] | undefined {
  return pickResources(offer, TASK)?.resources;
}

const s = suite('HTTP API and native SDK frameworks share one cluster');
let c: TestCluster;
let stream: RawStream | undefined;
let fw: Framework | undefined;
// cpus and mem run out together (8 tasks per agent), so a full agent has nothing left to offer:
// no leftover mem-only offers inflating a slow framework's share while it holds them.
s.before(async () => { c = await startCluster({ agents: AGENTS, resources: 'cpus:4;mem:2048;ports:[31000-32000]', script: holdScript }); });
s.after(async () => {
  stream?.close();
  fw?.close();
  await c?.stop();
});

s('DRF gives the raw-HTTP framework and the SDK native framework shares within 5%', async () => {
  // --- the raw HTTP framework
  stream = await openStream(c.url, JSON.stringify({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'http-fw', roles: ['*'], capabilities: [{ type: 'MULTI_ROLE' }] } } }), { 'content-type': 'application/json' });
  const httpStream = stream;
  const httpFid = (await httpStream.waitFor((e) => e.type === 'SUBSCRIBED')).subscribed!.framework_id.value;
  let httpLaunched = 0;
  let seen = 0;
  const post = (call: object): Promise<unknown> => request(`${c.url}/api/v1/scheduler`, {
    headers: { 'content-type': 'application/json', 'mesos-stream-id': httpStream.streamId },
    body: JSON.stringify({ framework_id: { value: httpFid }, ...call }),
  });
  const pump = async (): Promise<void> => {
    for (;;) {
      const ev: Event = await httpStream.waitFor((e) => e.type === 'OFFERS', 20_000, seen).catch(() => ({ type: 'UNKNOWN' }));
      if (ev.type !== 'OFFERS') return;
      seen = httpStream.events.indexOf(ev) + 1;
      for (const offer of ev.offers!.offers ?? []) {
        const resources = fits(offer);
        if (!resources) { await post({ type: 'DECLINE', decline: { offer_ids: [offer.id], filters: { refuse_seconds: 1 } } }); continue; }
        httpLaunched++;
        const id = `http-${httpLaunched}`;
        await post({
          type: 'ACCEPT',
          accept: { offer_ids: [offer.id], filters: { refuse_seconds: 0 }, operations: [{ type: 'LAUNCH', launch: { task_infos: [{ name: id, task_id: { value: id }, agent_id: offer.agent_id, resources, command: { value: 'sleep 1000' } }] } }] },
        });
      }
    }
  };
  const pumping = pump();

  // --- the SDK framework on the native transport
  fw = await connect({ master: `berth://${c.hostPort}`, framework: { name: 'sdk-fw' } });
  const sdk = fw;
  let sdkLaunched = 0;
  sdk.on('offers', async (offers) => {
    for (const offer of offers) {
      if (!fits(offer)) { await sdk.decline(offer.id.value, 1); continue; }
      sdkLaunched++;
      await sdk.launch(offer, task({ id: `sdk-${sdkLaunched}`, cmd: 'sleep 1000', ...TASK }), { refuseSeconds: 0 });
    }
  });

  // Wait until the cluster is full and has stayed so.
  const running = (): number => c.agents.reduce((n, a) => n + a.running, 0);
  const deadline = Date.now() + 20_000;
  while (running() < SLOTS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.is(running(), SLOTS, `the cluster fills up (http ${httpLaunched}, sdk ${sdkLaunched})`);

  const state = c.running.master.state() as { frameworks: { id: string; name: string; used_resources: { cpus: number; mem: number } }[] };
  const total = { cpus: AGENTS * 4, mem: AGENTS * 2048 };
  const share = (name: string): number => {
    const f = state.frameworks.find((x) => x.name === name)!;
    return Math.max(f.used_resources.cpus / total.cpus, f.used_resources.mem / total.mem);
  };
  const a = share('http-fw');
  const b = share('sdk-fw');
  assert.ok(Math.abs(a - b) <= 0.05, `dominant shares ${a.toFixed(3)} (HTTP) vs ${b.toFixed(3)} (native) differ by more than 5%`);
  assert.ok(a + b > 0.99, 'together they use the whole cluster: each sees the other\'s allocation');
  // Both tasks lists are visible to the operator view too.
  const m = c.running.master;
  assert.is(m.framework(httpFid)?.tasks.size ?? 0, httpLaunched);
  assert.is(m.framework(sdk.frameworkId)?.tasks.size ?? 0, sdkLaunched);

  httpStream.close();
  await pumping;
});

s.run();
