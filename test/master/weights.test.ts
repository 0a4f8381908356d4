/**
 * Role weights as an operator sets them (`berth master --weights`, `berth up --weights`, or
 * `MasterOptions.weights`): bad values are refused with the flag and role named; weights 2:1 give
 * two frameworks in those roles dominant shares 2:1 under contention; /roles and /weights show them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseWeights } from '../../master/weights.js';
import { startMaster } from '../../master/main.js';
import { silentLogger } from '../../proto/log.js';
import { BerthError } from '../../proto/errors.js';
import { cluster, fillWithGoldAndSilver } from './harness.js';
import { holdScript, startCluster } from '../helpers/cluster.js';
import { connect } from '../../frameworks/sdk/index.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

test('--weights parses role=weight lists', () => {
  assert.equal(parseWeights('services=2,batch=1'), { services: 2, batch: 1 });
  assert.equal(parseWeights(' eng/web = 0.5 '), { 'eng/web': 0.5 });
});

test('bad --weights are refused with the flag and the role at fault named', () => {
  const cases: [string, RegExp][] = [
    ['', /--weights: expected role=weight/],
    ['services', /--weights: 'services' is not role=weight/],
    ['=2', /--weights: '=2' is not role=weight/],
    ['services=0', /--weights\[services\]: a weight must be a positive finite number \(got 0\)/],
    ['services=-1', /--weights\[services\]: .*positive/],
    ['services=two', /--weights\[services\]: .*\(got NaN\)/],
    ['services=', /--weights\[services\]: .*\(got NaN\)/],
    ['services=Infinity', /--weights\[services\]: .*finite/],
    ['a=1,a=2', /--weights: role 'a' is named twice/],
    ['../x=1', /--weights\[\.\.\/x\]: invalid role/],
    ['has space=1', /--weights\[has space\]: invalid role/],
  ];
  for (const [text, re] of cases) {
    try {
      parseWeights(text);
      assert.unreachable(`'${text}' was accepted`);
    } catch (e) {
      assert.instance(e, BerthError, text);
      assert.is((e as BerthError).code, 'INVALID');
      assert.match((e as Error).message, re, text);
    }
  }
});

test('a master given bad weights does not start, naming the role', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-weights-'));
  try {
    await startMaster({ workDir: dir, port: 0, log: silentLogger, weights: { gold: -2 } }).then(
      async (m) => { await m.stop(); assert.unreachable('started'); },
      (e: Error) => assert.match(e.message, /weights\[gold\]: a weight must be a positive/),
    );
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('berth master --weights with a bad value exits non-zero naming --weights', () => {
  const r = spawnSync(process.execPath, [cli, 'master', '--port', '0', '--weights', 'gold=0'], { encoding: 'utf8', timeout: 20_000 });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /--weights\[gold\]: a weight must be a positive finite number/);
});

test('MasterOptions.weights 2:1 settle two greedy roles at dominant shares 2:1', async () => {
  const c = await cluster({ weights: { gold: 2, silver: 1 } });
  try {
    const { tasks, ratio } = await fillWithGoldAndSilver(c);
    assert.is(tasks, 80, 'the cluster is full');
    assert.ok(Math.abs(ratio - 2) / 2 <= 0.05, `gold:silver dominant share ratio ${ratio.toFixed(3)} is 2 within 5%`);
  } finally { await c.stop(); }
});

test('/roles lists each role with its weight, frameworks, allocation and share; /weights the configured weights', async () => {
  const c = await startCluster({ agents: 1, resources: 'cpus:4;mem:4096', script: holdScript, master: { weights: { gold: 2, idle: 3 } } });
  const fw = await connect({ master: c.url, framework: { name: 'g', roles: ['gold'] } });
  try {
    let launched = false;
    fw.on('offers', (offers) => {
      if (launched) return;
      launched = true;
      void fw.launch(offers[0]!, { id: 'g-1', cmd: 'sleep 100', cpus: 1, mem: 1024 });
    });
    const get = async (p: string): Promise<any> => (await fetch(c.url + p)).json();
    let gold: any;
    for (let i = 0; i < 200; i++) {
      gold = (await get('/roles')).roles.find((r: { name: string }) => r.name === 'gold');
      if (gold?.allocated.cpus === 1 && gold.offered.cpus === 0 && gold.dominant_share === 0.25) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal({ name: gold.name, weight: gold.weight, frameworks: gold.frameworks, cpus: gold.allocated.cpus, share: gold.dominant_share },
      { name: 'gold', weight: 2, frameworks: [fw.frameworkId], cpus: 1, share: 0.25 });
    const idle = (await get('/roles')).roles.find((r: { name: string }) => r.name === 'idle');
    assert.equal({ weight: idle.weight, frameworks: idle.frameworks }, { weight: 3, frameworks: [] }, 'a weighted role with no framework is listed too');
    assert.equal(await get('/weights'), [{ role: 'gold', weight: 2 }, { role: 'idle', weight: 3 }]);
  } finally {
    fw.close();
    await c.stop();
  }
});

test.run();
