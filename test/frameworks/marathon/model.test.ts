/**
 * The app model and deployment plans of Berth's Marathon, without a cluster:
 * Marathon's defaults, validation naming the field, change kinds, step order.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { absoluteId, changeKind, normalizeApp, type AppDefinition } from '../../../frameworks/marathon/app.js';
import { plan } from '../../../frameworks/marathon/deployments.js';
import { mesosHealthCheck } from '../../../frameworks/marathon/tasks.js';

const t = suite('marathon app model and plans');
const now = Date.parse('2026-01-01T00:00:00Z');
const app = (j: Record<string, unknown>): AppDefinition => {
  const r = normalizeApp(j, { now });
  if (!r.app) throw new Error(JSON.stringify(r.details));
  return r.app;
};

t('defaults are Marathon\'s and the version is an ISO 8601 UTC timestamp', () => {
  const a = app({ id: 'web', cmd: 'true' });
  assert.is(a.id, '/web');
  assert.equal([a.cpus, a.mem, a.disk, a.instances], [1, 128, 0, 1]);
  assert.equal([a.backoffSeconds, a.backoffFactor, a.maxLaunchDelaySeconds], [1, 1.15, 300]);
  assert.equal(a.portDefinitions, [{ port: 0, protocol: 'tcp' }]);
  assert.is(a.version, '2026-01-01T00:00:00.000Z');
  assert.is(absoluteId('b/c/', '/a'), '/a/b/c');
});

t('each invalid field is named in Marathon\'s details, all at once', () => {
  const table: [Record<string, unknown>, string][] = [
    [{ id: '/x', cmd: 'true', cpus: -1 }, '/cpus'],
    [{ id: '/x', cmd: 'true', mem: 'lots' }, '/mem'],
    [{ id: '/x', cmd: 'true', instances: 1.5 }, '/instances'],
    [{ id: '/UPPER', cmd: 'true' }, '/id'],
    [{ id: '/a/../b', cmd: 'true' }, '/id'],
    [{ id: '/x' }, '/cmd'],
    [{ id: '/x', cmd: 'a', args: ['b'] }, '/cmd'],
    [{ id: '/x', cmd: 'true', constraints: [['rack', 'MAX_PER']] }, '/constraints(0)'],
    [{ id: '/x', cmd: 'true', constraints: [['rack', 'LIKE', '(']] }, '/constraints(0)'],
    [{ id: '/x', cmd: 'true', upgradeStrategy: { minimumHealthCapacity: 2 } }, '/upgradeStrategy/minimumHealthCapacity'],
    [{ id: '/x', cmd: 'true', healthChecks: [{ protocol: 'HTTP', portIndex: 3 }] }, '/healthChecks(0)/portIndex'],
    [{ id: '/x', cmd: 'true', healthChecks: [{ protocol: 'COMMAND' }] }, '/healthChecks(0)/command'],
    [{ id: '/x', cmd: 'true', fetch: [{ uri: 'http://h/a', destPath: '../etc' }] }, '/fetch(0)/destPath'],
    [{ id: '/x', cmd: 'true', killSelection: 'RANDOM' }, '/killSelection'],
    [{ id: '/x', cmd: 'true', color: 'blue' }, '/color'],
  ];
  for (const [j, path] of table) {
    const r = normalizeApp(j, { now });
    assert.is(r.app, undefined, JSON.stringify(j));
    assert.ok(r.details.some((d) => d.path === path), `${path} in ${JSON.stringify(r.details)}`);
  }
  const many = normalizeApp({ id: '/x', cmd: 'true', cpus: -1, mem: -1 }, { now });
  assert.equal(many.details.map((d) => d.path).sort(), ['/cpus', '/mem']);
});

t('a change of instances only is a scale; anything else a restart', () => {
  const a = app({ id: '/x', cmd: 'true' });
  assert.is(changeKind(a, { ...a, instances: 3 }), 'scale');
  assert.is(changeKind(a, { ...a, cmd: 'false' }), 'restart');
  assert.is(changeKind(a, { ...a, version: 'other' }), 'none');
});

t('plans order apps by dependencies and stop removed apps last', () => {
  const db = app({ id: '/s/db', cmd: 'true' });
  const web = app({ id: '/s/web', cmd: 'true', dependencies: ['db'] });
  assert.equal(web.dependencies, ['/s/db']);
  const d = plan({}, { '/s/web': web, '/s/db': db }, 'v', now)!;
  assert.equal(d.steps.map((s) => s.actions.map((x) => `${x.action} ${x.app}`)), [
    ['StartApplication /s/db'], ['ScaleApplication /s/db'], ['StartApplication /s/web'], ['ScaleApplication /s/web'],
  ]);
  const stop = plan({ '/s/db': db }, { '/s/db': null }, 'v', now)!;
  assert.equal(stop.steps, [{ actions: [{ action: 'StopApplication', app: '/s/db' }] }]);
  assert.is(plan({ '/s/db': db }, { '/s/db': { ...db } }, 'v', now), undefined, 'no change, no deployment');
  const timed = plan({}, { '/t': app({ id: '/t', cmd: 'true', deploymentTimeoutSeconds: 30 }) }, 'v', now)!;
  assert.is(timed.deadline, now + 30_000);
});

t('health checks become Mesos health checks on the instance\'s host ports', () => {
  const hc = app({ id: '/h', cmd: 'true', portDefinitions: [{ port: 0 }, { port: 0 }], healthChecks: [{ protocol: 'MESOS_HTTP', path: '/ok', portIndex: 1 }] }).healthChecks[0]!;
  const m = mesosHealthCheck(hc, [31000, 31001])!;
  assert.is(m.type, 'HTTP');
  assert.equal(m.http, { scheme: 'http', port: 31001, path: '/ok' });
  assert.equal([m.grace_period_seconds, m.interval_seconds, m.timeout_seconds, m.consecutive_failures, m.delay_seconds], [300, 60, 20, 3, 15]);
});

t.run();
