/**
 * `npm run bench -- micro`: `benchmark` suites for the vocabulary the hot paths
 * are made of, each with a baseline measured in the same run:
 *  - Resources add / subtract / contains on an agent-sized value (cpus, mem,
 *    disk, ports), against the packed form the allocator's hot path uses
 *    (a Float64Array of thousandths per scalar dimension);
 *  - protobuf encode / decode of an OFFERS event (proto/codec.ts), against
 *    JSON.stringify / JSON.parse of the same event.
 * Figures are ops/s (higher is better), with the relative margin of error and
 * sample count in params.
 */
import Benchmark from 'benchmark';
import { decodeEvent, encodeEvent } from '../proto/codec.js';
import { NDIMS, Resources } from '../proto/resources.js';
import type { Event, Offer } from '../proto/types.js';
import { emit, progress } from './report.js';

interface Case { name: string; fn: () => void }
interface Pair { figure: string; subject: Case; baseline: Case; params: Record<string, unknown> }

/** Consumed by every case so the engine cannot drop the work as dead code. */
let sink = 0;

function runPair(pair: Pair, maxTime: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const suite = new Benchmark.Suite(pair.figure);
    suite.add(pair.subject.name, pair.subject.fn, { maxTime });
    suite.add(pair.baseline.name, pair.baseline.fn, { maxTime });
    suite.on('error', (e: { target?: { error?: unknown } }) => reject(e.target?.error ?? new Error(`${pair.figure} failed`)));
    suite.on('complete', function (this: Benchmark.Suite) {
      const benches = this as unknown as ArrayLike<Benchmark>;
      const s = benches[0]!;
      const b = benches[1]!;
      emit({
        name: pair.figure, value: Math.round(s.hz), unit: 'ops/s', baseline: Math.round(b.hz),
        params: {
          ...pair.params, subject: pair.subject.name, baseline_is: pair.baseline.name,
          rme_pct: round(s.stats.rme), samples: s.stats.sample.length,
          baseline_rme_pct: round(b.stats.rme), baseline_samples: b.stats.sample.length,
        },
      });
      resolve();
    });
    suite.run({ async: false });
  });
}

const round = (x: number): number => Math.round(x * 100) / 100;

function offersEvent(n: number): Event {
  const offers: Offer[] = [];
  for (let i = 0; i < n; i++) {
    offers.push({
      id: { value: `offer-${i}` },
      framework_id: { value: 'framework-0001' },
      agent_id: { value: `agent-${i}` },
      hostname: `host-${i}.example.com`,
      resources: Resources.parse(`cpus:24;mem:4096;disk:100000;ports:[31000-32000]`).toWire('role1'),
      attributes: [{ name: 'rack', type: 'TEXT', text: { value: `r${i % 10}` } }],
      allocation_info: { role: 'role1' },
    });
  }
  return { type: 'OFFERS', offers: { offers } };
}

export async function run(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const maxTime = quick ? 0.5 : 2;

  const agent = Resources.parse('cpus:24;mem:4096;disk:100000;ports:[31000-32000]');
  const task = Resources.parse('cpus:0.5;mem:128;ports:[31005-31005]');
  const used = agent.subtract(task);
  const agentP = new Float64Array(NDIMS);
  const taskP = new Float64Array(NDIMS);
  agent.addPacked(agentP);
  task.addPacked(taskP);
  const outP = new Float64Array(NDIMS);

  const packedAdd: Case = { name: 'packed Float64Array add (allocator hot path)', fn: () => { for (let d = 0; d < NDIMS; d++) outP[d] = agentP[d]! + taskP[d]!; sink += outP[0]!; } };
  const pairs: Pair[] = [
    {
      figure: 'resources.add', params: { operands: 'agent(cpus,mem,disk,ports) + task(cpus,mem,1 port)' },
      subject: { name: 'Resources.add', fn: () => { sink += used.add(task).size; } },
      baseline: packedAdd,
    },
    {
      figure: 'resources.subtract', params: { operands: 'agent(cpus,mem,disk,ports) − task(cpus,mem,1 port)' },
      subject: { name: 'Resources.subtract', fn: () => { sink += agent.subtract(task).size; } },
      baseline: { name: 'packed Float64Array subtract (allocator hot path)', fn: () => { for (let d = 0; d < NDIMS; d++) outP[d] = agentP[d]! - taskP[d]!; sink += outP[0]!; } },
    },
    {
      figure: 'resources.contains', params: { operands: 'agent(cpus,mem,disk,ports) ⊇ task(cpus,mem,1 port)' },
      subject: { name: 'Resources.contains', fn: () => { if (agent.contains(task)) sink++; } },
      baseline: { name: 'packed Float64Array containment (allocator hot path)', fn: () => { let ok = true; for (let d = 0; d < NDIMS; d++) if (agentP[d]! < taskP[d]!) ok = false; if (ok) sink++; } },
    },
  ];

  const event = offersEvent(10);
  const bytes = encodeEvent(event);
  const json = JSON.stringify(event);
  const codecParams = { event: 'OFFERS with 10 offers (cpus, mem, disk, ports, 1 attribute each)', protobuf_bytes: bytes.length, json_bytes: Buffer.byteLength(json) };
  pairs.push(
    {
      figure: 'codec.encode.offers', params: codecParams,
      subject: { name: 'encodeEvent (protobuf)', fn: () => { sink += encodeEvent(event).length; } },
      baseline: { name: 'JSON.stringify', fn: () => { sink += JSON.stringify(event).length; } },
    },
    {
      figure: 'codec.decode.offers', params: codecParams,
      subject: { name: 'decodeEvent (protobuf, validated)', fn: () => { sink += decodeEvent(bytes).offers!.offers!.length; } },
      baseline: { name: 'JSON.parse (unvalidated)', fn: () => { sink += (JSON.parse(json) as Event).offers!.offers!.length; } },
    },
  );

  for (const pair of pairs) {
    progress(`micro: ${pair.figure}`);
    await runPair(pair, maxTime);
  }
  if (sink === -1) progress('unreachable');
}
