/**
 * The SDK's placement pipeline: feasibility checks, Marathon constraints, scorers and
 * the counted reasons a task found no offer — table-driven over hand-made offers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BerthError, InstanceCounts, Placer, bestFit, worstFit, alignment, describeReasons, parseConstraints,
  type Constraint, type Offer,
} from '../../../frameworks/sdk/index.js';

let seq = 0;
function offer(host: string, r: { cpus?: number; mem?: number; disk?: number; ports?: [number, number] }, attrs: Record<string, string> = {}): Offer {
  const resources: Offer['resources'] = [];
  if (r.cpus !== undefined) resources.push({ name: 'cpus', type: 'SCALAR', scalar: { value: r.cpus } });
  if (r.mem !== undefined) resources.push({ name: 'mem', type: 'SCALAR', scalar: { value: r.mem } });
  if (r.disk !== undefined) resources.push({ name: 'disk', type: 'SCALAR', scalar: { value: r.disk } });
  if (r.ports) resources.push({ name: 'ports', type: 'RANGES', ranges: { range: [{ begin: r.ports[0], end: r.ports[1] }] } });
  return {
    id: { value: `o${seq++}` }, framework_id: { value: 'f' }, agent_id: { value: `agent-${host}` }, hostname: host, resources,
    attributes: Object.entries(attrs).map(([name, value]) => ({ name, type: 'TEXT' as const, text: { value } })),
  };
}

const t = suite('placement pipeline');

t('first fit places tasks in offer order and carves many tasks out of one offer', () => {
  const p = new Placer([offer('a', { cpus: 1, mem: 256 }), offer('b', { cpus: 4, mem: 4096 })]);
  const r = p.place({ demand: { cpus: 0.3, mem: 64 } }, 5);
  assert.is(r.unplaced, 0);
  assert.equal(r.placements.map((x) => x.facts.hostname), ['a', 'a', 'a', 'b', 'b']);
  assert.equal(p.launches().map((l) => [l.offer.hostname, l.placements.length]), [['a', 3], ['b', 2]]);
  assert.equal(p.unused(), []);
});

t('no resource is placed twice: the cpus of all placements sum to at most each offer', () => {
  const offers = [offer('a', { cpus: 1, mem: 1000 }), offer('b', { cpus: 0.5, mem: 1000 })];
  const p = new Placer(offers);
  const r = p.place({ demand: { cpus: 0.25, mem: 10 } }, 100);
  assert.is(r.placements.length, 6);
  assert.is(r.unplaced, 94);
  for (const l of p.launches()) {
    const used = l.placements.reduce((s, x) => s + x.picked.resources.filter((y) => y.name === 'cpus').reduce((a, y) => a + y.scalar!.value, 0), 0);
    const had = l.offer.resources!.find((y) => y.name === 'cpus')!.scalar!.value;
    assert.ok(used <= had + 1e-9, `${l.offer.hostname}: ${used} > ${had}`);
  }
});

t('a task that fits nowhere gets every insufficient resource counted per offer', () => {
  const p = new Placer([offer('a', { cpus: 1, mem: 64 }), offer('b', { cpus: 0.1, mem: 64 }), offer('c', { cpus: 8, mem: 8192, ports: [31000, 31000] })]);
  const r = p.place({ demand: { cpus: 0.5, mem: 128, ports: 2 } });
  assert.is(r.unplaced, 1);
  assert.equal(r.reasons, { 'insufficient mem': 2, 'insufficient cpus': 1, 'insufficient ports': 3 });
  assert.is(describeReasons(r.reasons), 'insufficient ports on 3 offers; insufficient mem on 2 offers; insufficient cpus on 1 offer');
});

t('ports are assigned from the offer and never twice', () => {
  const p = new Placer([offer('a', { cpus: 4, mem: 4096, ports: [31000, 31002] })]);
  const r = p.place({ demand: { cpus: 0.1, mem: 10, ports: 2 } }, 2);
  assert.is(r.placements.length, 1);
  assert.equal(r.placements[0]!.picked.ports, [31000, 31001]);
  assert.equal(r.reasons, { 'insufficient ports': 1 });
});

// Marathon's constraint semantics, one row each: [constraint, agents (host, attrs), instances already placed, expected hosts for 3 new tasks].
const rows: [string, Constraint, [string, Record<string, string>][], string[], string[]][] = [
  ['UNIQUE hostname: one per host', ['hostname', 'UNIQUE'], [['a', {}], ['b', {}], ['c', {}]], ['b'], ['a', 'c']],
  ['CLUSTER with value: only matching agents', ['rack', 'CLUSTER', 'r2'], [['a', { rack: 'r1' }], ['b', { rack: 'r2' }]], [], ['b', 'b', 'b']],
  ['CLUSTER without value: all where the first went', ['rack', 'CLUSTER'], [['a', { rack: 'r1' }], ['b', { rack: 'r2' }]], ['b'], ['b', 'b', 'b']],
  ['GROUP_BY: evenly across values', ['rack', 'GROUP_BY'], [['a', { rack: 'r1' }], ['b', { rack: 'r2' }]], ['a'], ['b', 'a', 'b']],
  ['LIKE: full-match regular expression', ['zone', 'LIKE', 'us-.*'], [['a', { zone: 'eu-1' }], ['b', { zone: 'us-1' }], ['c', { zone: 'xus-1' }]], [], ['b', 'b', 'b']],
  ['UNLIKE: agents without the attribute qualify', ['zone', 'UNLIKE', 'us-.*'], [['a', { zone: 'us-1' }], ['b', {}]], [], ['b', 'b', 'b']],
  ['MAX_PER: at most n per value', ['rack', 'MAX_PER', '2'], [['a', { rack: 'r1' }], ['b', { rack: 'r1' }], ['c', { rack: 'r2' }]], ['a'], ['a', 'c', 'c']],
  ['IS: exact value', ['os', 'IS', 'linux'], [['a', { os: 'linux-ish' }], ['b', { os: 'linux' }]], [], ['b', 'b', 'b']],
];
for (const [name, con, agents, existing, want] of rows) {
  t(`constraint ${name}`, () => {
    const offers = agents.map(([h, at]) => offer(h, { cpus: 10, mem: 10000 }, at));
    const group = InstanceCounts.for([con]);
    for (const h of existing) group.add({ agentId: `agent-${h}`, hostname: h, attributes: Object.fromEntries(agents.find((a) => a[0] === h)![1] ? Object.entries(agents.find((a) => a[0] === h)![1]) : []) });
    const p = new Placer(offers);
    const r = p.place({ demand: { cpus: 1, mem: 10 }, constraints: [con], group }, 3);
    assert.equal(r.placements.map((x) => x.facts.hostname), want);
  });
}

t('an unmet constraint is named with the number of offers it excluded', () => {
  const offers = ['a', 'b', 'c'].map((h) => offer(h, { cpus: 10, mem: 10000 }));
  const group = InstanceCounts.for([['hostname', 'UNIQUE']]);
  const r = new Placer(offers).place({ demand: { cpus: 1, mem: 10 }, constraints: [['hostname', 'UNIQUE']], group }, 5);
  assert.is(r.placements.length, 3);
  assert.is(r.unplaced, 2);
  assert.equal(r.reasons, { 'constraint hostname:UNIQUE': 3 });
});

t('GROUP_BY with a group count waits for groups it has not seen yet', () => {
  const offers = [offer('a', { cpus: 10, mem: 1000 }, { rack: 'r1' }), offer('b', { cpus: 10, mem: 1000 }, { rack: 'r2' })];
  const group = InstanceCounts.for([['rack', 'GROUP_BY', '3']]);
  const r = new Placer(offers).place({ demand: { cpus: 1, mem: 10 }, constraints: [['rack', 'GROUP_BY', '3']], group }, 4);
  assert.equal(r.placements.map((x) => x.facts.hostname), ['a', 'b']);
  assert.equal(r.reasons, { 'constraint rack:GROUP_BY:3': 2 });
});

t('bad constraints are refused naming the field at fault', () => {
  const cases: [unknown, RegExp][] = [
    [[['hostname', 'UNIQ']], /constraints\[0\]\[1\]: unknown operator 'UNIQ'/],
    [[['hostname', 'UNIQUE'], ['rack', 'MAX_PER']], /constraints\[1\]\[2\]: MAX_PER needs a positive whole number/],
    [[['rack', 'LIKE', '(']], /constraints\[0\]\[2\]: invalid regular expression/],
    [[['', 'UNIQUE']], /constraints\[0\]\[0\]/],
    ['hostname:UNIQUE', /constraints: must be an array/],
  ];
  for (const [raw, re] of cases) {
    try { parseConstraints(raw); assert.unreachable(`accepted ${JSON.stringify(raw)}`); } catch (e) {
      assert.instance(e, BerthError);
      assert.match((e as Error).message, re);
    }
  }
});

t('best fit packs onto the fullest agent, worst fit spreads to the emptiest', () => {
  const offers = () => [offer('big', { cpus: 8, mem: 8192 }), offer('small', { cpus: 2, mem: 2048 })];
  const cap = (id: string) => (id === 'agent-big' ? { cpus: 8000, mem: 8192000 } : { cpus: 8000, mem: 8192000 });
  const best = new Placer(offers(), { scorers: [bestFit], capacity: cap }).place({ demand: { cpus: 1, mem: 512 } });
  const worst = new Placer(offers(), { scorers: [worstFit], capacity: cap }).place({ demand: { cpus: 1, mem: 512 } });
  assert.is(best.placements[0]!.facts.hostname, 'small');
  assert.is(worst.placements[0]!.facts.hostname, 'big');
});

t('alignment prefers the agent whose free resources match the task\'s shape', () => {
  const cap = () => ({ cpus: 8000, mem: 8192000 });
  const offers = [offer('cpu-rich', { cpus: 8, mem: 1024 }), offer('mem-rich', { cpus: 1, mem: 8192 })];
  const r = new Placer(offers, { scorers: [alignment], capacity: cap }).place({ demand: { cpus: 0.5, mem: 1024 } });
  assert.is(r.placements[0]!.facts.hostname, 'mem-rich');
});

t('placing 20,000 identical tasks over 2,000 offers stays linear (first fit skips exhausted offers)', () => {
  const offers = Array.from({ length: 2000 }, (_, i) => offer(`h${i}`, { cpus: 1, mem: 1024 }));
  const p = new Placer(offers);
  const r = p.place({ demand: { cpus: 0.1, mem: 10 } }, 30000);
  assert.is(r.placements.length, 20000);
  assert.is(r.unplaced, 10000);
  assert.equal(r.reasons, { 'insufficient cpus': 2000 });
});

t('first fit across requests: a later request of the same or larger shape starts past full offers; a smaller one still uses their room', () => {
  const p = new Placer([offer('a', { cpus: 1, mem: 1024 }), offer('b', { cpus: 1, mem: 1024 }), offer('c', { cpus: 1, mem: 1024 })]);
  assert.equal(p.place({ demand: { cpus: 0.4, mem: 10 } }, 2).placements.map((x) => x.facts.hostname), ['a', 'a']); // a: 0.2 left
  assert.equal(p.place({ demand: { cpus: 0.4, mem: 10 } }, 2).placements.map((x) => x.facts.hostname), ['b', 'b']); // b: 0.2 left
  assert.equal(p.place({ demand: { cpus: 0.5, mem: 10 } }).placements.map((x) => x.facts.hostname), ['c']);
  assert.equal(p.place({ demand: { cpus: 0.2, mem: 10 } }, 2).placements.map((x) => x.facts.hostname), ['a', 'b'], 'smaller tasks fill the earlier offers');
  const r = p.place({ demand: { cpus: 0.6, mem: 10 } });
  assert.is(r.unplaced, 1);
  assert.equal(r.reasons, { 'insufficient cpus': 3 }, 'every offer is counted in the reasons, skipped ones too');
});

t.run();
