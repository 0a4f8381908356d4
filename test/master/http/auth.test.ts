/**
 * Authentication and authorization with real requests on loopback: a master
 * started with Mesos' credentials file, every --authenticate-* flag and
 * Mesos ACLs. HTTP Basic on the scheduler API, on native upgrades and on the
 * operator endpoints; frameworks bound to their principal; rogue agents
 * refused; /state filtered by view_frameworks.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { startMaster, type RunningMaster } from '../../../master/main.js';
import { encodeCall, decodeEvent } from '../../../proto/codec.js';
import { silentLogger } from '../../../proto/log.js';
import { basicAuthorization, type Credential } from '../../../proto/transport/credentials.js';
import { WsDialer } from '../../../proto/transport/ws.js';
import { WS_AGENT_PATH, WS_SCHEDULER_PATH } from '../../../proto/transport/types.js';
import { AGENT_PROTOCOL_VERSION, type Call, type Event, type MasterToAgent } from '../../../proto/types.js';
import { Resources } from '../../../proto/resources.js';
import { openStream, request } from './raw-client.js';

const alice: Credential = { principal: 'alice', secret: 'alice-secret' };
const bob: Credential = { principal: 'bob', secret: 'bob-secret' };
const ops: Credential = { principal: 'ops', secret: 'ops-secret' };
const agentCred: Credential = { principal: 'agent', secret: 'agent-secret' };

const ACLS = {
  permissive: false,
  register_frameworks: [
    { principals: { values: ['bob'] }, roles: { values: ['dev'] } },
    { principals: { values: ['alice', 'ops'] }, roles: { type: 'ANY' } },
  ],
  run_tasks: [{ principals: { type: 'ANY' }, users: { type: 'ANY' } }],
  teardown_frameworks: [
    { principals: { values: ['ops'] }, framework_principals: { type: 'ANY' } },
    { principals: { values: ['alice'] }, framework_principals: { values: ['alice'] } },
  ],
  view_frameworks: [
    { principals: { values: ['ops'] }, users: { type: 'ANY' } },
    { principals: { values: ['bob'] }, users: { values: ['bob'] } },
  ],
  view_tasks: [{ principals: { type: 'ANY' }, users: { type: 'ANY' } }],
};

let m: RunningMaster;
let dir: string;

test.before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'berth-auth-'));
  writeFileSync(path.join(dir, 'credentials.json'), JSON.stringify({ credentials: [alice, bob, ops, agentCred] }));
  writeFileSync(path.join(dir, 'acls.json'), JSON.stringify(ACLS));
  m = await startMaster({
    workDir: dir, port: 0, log: silentLogger,
    credentialsFile: path.join(dir, 'credentials.json'), aclsFile: path.join(dir, 'acls.json'),
    authenticateFrameworks: true, authenticateAgents: true, authenticateHttpReadonly: true, authenticateHttpReadwrite: true,
  });
});

test.after(async () => {
  await m?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const url = (): string => `http://127.0.0.1:${m.port}`;
const JSON_CT = { 'content-type': 'application/json', accept: 'application/json' };
const subscribe = (user: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ type: 'SUBSCRIBE', subscribe: { framework_info: { user, name: `fw-${user}`, failover_timeout: 3600, ...extra } } } satisfies Call);
const auth = (c: Credential): Record<string, string> => ({ authorization: basicAuthorization(c) });

test('SUBSCRIBE over HTTP without credentials or with a wrong secret is 401 with a Basic challenge; with them it streams', async () => {
  const none = await request(`${url()}/api/v1/scheduler`, { headers: JSON_CT, body: subscribe('alice') });
  assert.is(none.status, 401);
  assert.match(String(none.headers['www-authenticate']), /^Basic realm=/);
  const wrong = await request(`${url()}/api/v1/scheduler`, { headers: { ...JSON_CT, ...auth({ principal: 'alice', secret: 'nope' }) }, body: subscribe('alice') });
  assert.is(wrong.status, 401);
  const s = await openStream(url(), subscribe('alice'), { ...JSON_CT, ...auth(alice) });
  const ev = await s.waitFor((e) => e.type === 'SUBSCRIBED');
  const fid = ev.subscribed!.framework_id.value;
  assert.is(m.master.framework(fid)?.info.principal, 'alice', 'bound to the authenticated principal');
  s.close();
});

test("another principal's SUBSCRIBE (failover) or /teardown of a framework is refused with 403, while the owner's failover works", async () => {
  const s1 = await openStream(url(), subscribe('alice'), { ...JSON_CT, ...auth(alice) });
  const fid = (await s1.waitFor((e) => e.type === 'SUBSCRIBED')).subscribed!.framework_id.value;
  // Bob takes the id from /state (he may read it) and tries to fail the framework over to himself.
  const hijack = await request(`${url()}/api/v1/scheduler`, {
    headers: { ...JSON_CT, ...auth(bob) },
    body: subscribe('alice', { id: { value: fid }, roles: ['dev'], capabilities: [{ type: 'MULTI_ROLE' }] }),
  });
  assert.is(hijack.status, 403, hijack.body.toString());
  assert.match(hijack.body.toString(), /registered by another principal/);
  assert.ok(!s1.ended, "alice's stream is untouched");
  const anon = await request(`${url()}/teardown`, { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `frameworkId=${fid}` });
  assert.is(anon.status, 401, 'the read-write endpoint needs credentials');
  const td = await request(`${url()}/teardown`, { headers: { ...auth(bob), 'content-type': 'application/x-www-form-urlencoded' }, body: `frameworkId=${fid}` });
  assert.is(td.status, 403, 'bob may not tear down alice\'s framework');
  assert.ok(m.master.framework(fid), 'still there');
  // Over the native transport too: bob's SUBSCRIBE with alice's id gets an ERROR and the link closes.
  const conn = await new WsDialer(`127.0.0.1:${m.port}`, { credential: bob }).dialFramework();
  const events: Event[] = [];
  const closed = new Promise<void>((r) => conn.onClose(() => r()));
  conn.onMessage((e) => events.push(e));
  conn.send({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'alice', name: 'x', id: { value: fid }, roles: ['dev'], capabilities: [{ type: 'MULTI_ROLE' }] } } });
  await closed;
  assert.match(events.find((e) => e.type === 'ERROR')?.error?.message ?? '', /registered by another principal/);
  // Alice fails over her own framework: the old stream is replaced, the framework keeps its id.
  const s2 = await openStream(url(), subscribe('alice', { id: { value: fid } }), { ...JSON_CT, ...auth(alice) });
  assert.is((await s2.waitFor((e) => e.type === 'SUBSCRIBED')).subscribed!.framework_id.value, fid);
  // Alice may tear down her own (teardown_frameworks allows alice → alice).
  const own = await request(`${url()}/teardown`, { headers: { ...auth(alice), 'content-type': 'application/x-www-form-urlencoded' }, body: `frameworkId=${fid}` });
  assert.is(own.status, 200, own.body.toString());
  assert.not.ok(m.master.framework(fid), 'removed');
  s1.close(); s2.close();
});

test('register_frameworks ACL: a principal may subscribe only with the roles it is allowed', async () => {
  const denied = await request(`${url()}/api/v1/scheduler`, {
    headers: { ...JSON_CT, ...auth(bob) }, body: subscribe('bob', { roles: ['prod'], capabilities: [{ type: 'MULTI_ROLE' }] }),
  });
  assert.is(denied.status, 403);
  assert.match(denied.body.toString(), /not authorized to register frameworks with role 'prod'/);
  const ok = await openStream(url(), subscribe('bob', { roles: ['dev'], capabilities: [{ type: 'MULTI_ROLE' }] }), { ...JSON_CT, ...auth(bob) });
  await ok.waitFor((e) => e.type === 'SUBSCRIBED');
  ok.close();
});

test('read-only endpoints need credentials, and /state shows each principal only the frameworks view_frameworks allows', async () => {
  const s = await openStream(url(), subscribe('bob', { roles: ['dev'], capabilities: [{ type: 'MULTI_ROLE' }] }), { ...JSON_CT, ...auth(bob) });
  const a = await openStream(url(), subscribe('alice'), { ...JSON_CT, ...auth(alice) });
  await s.waitFor((e) => e.type === 'SUBSCRIBED');
  await a.waitFor((e) => e.type === 'SUBSCRIBED');
  assert.is((await request(`${url()}/state`, { method: 'GET' })).status, 401);
  assert.is((await request(`${url()}/metrics/snapshot`, { method: 'GET' })).status, 401);
  assert.is((await request(`${url()}/health`, { method: 'GET' })).status, 200, '/health stays open');
  const users = async (c: Credential): Promise<string[]> => {
    const r = await request(`${url()}/state`, { method: 'GET', headers: auth(c) });
    assert.is(r.status, 200);
    return (JSON.parse(r.body.toString()) as { frameworks: { user: string }[] }).frameworks.map((f) => f.user).sort();
  };
  assert.ok((await users(ops)).includes('alice') && (await users(ops)).includes('bob'), 'ops sees everyone');
  assert.ok((await users(bob)).every((u) => u === 'bob') && (await users(bob)).length > 0, 'bob sees only his own user');
  assert.equal(await users(alice), [], 'alice has no view ACL (permissive: false)');
  s.close(); a.close();
});

test('an agent without credentials is refused at the upgrade (401); with them it registers', async () => {
  const rogue = new WebSocket(`ws://127.0.0.1:${m.port}${WS_AGENT_PATH}`);
  const status = await new Promise<number>((resolve) => {
    rogue.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    rogue.on('open', () => resolve(101));
    rogue.on('error', () => { /* reported through unexpected-response */ });
  });
  assert.is(status, 401);
  const conn = await new WsDialer(`127.0.0.1:${m.port}`, { credential: agentCred }).dialAgent();
  const got = new Promise<MasterToAgent>((r) => conn.onMessage((msg) => { if (msg.registered || msg.error) r(msg); }));
  conn.send({ version: AGENT_PROTOCOL_VERSION, register: { agent_info: { hostname: 'h', resources: Resources.parse('cpus:1;mem:256').toWire() }, endpoint: 'h:5051' } });
  const reply = await got;
  assert.ok(reply.registered, JSON.stringify(reply));
  const id = reply.registered!.agent_id.value;
  assert.is(m.master.agent(id)?.principal, 'agent');
  // A second connection, even with valid credentials, cannot take over the live agent's id.
  const thief = await new WsDialer(`127.0.0.1:${m.port}`, { credential: agentCred }).dialAgent();
  const answer = new Promise<MasterToAgent>((r) => thief.onMessage((msg) => r(msg)));
  thief.send({ version: AGENT_PROTOCOL_VERSION, reregister: { agent_info: { id: { value: id }, hostname: 'evil', resources: Resources.parse('cpus:1;mem:256').toWire() }, endpoint: 'evil:5051', tasks: [] } });
  assert.match((await answer).error?.message ?? '', /live authenticated connection/);
  assert.not.ok(conn.closed, 'the real agent keeps its link');
  conn.close(); thief.close();
});

test('the native scheduler upgrade needs credentials too', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${m.port}${WS_SCHEDULER_PATH}`);
  const status = await new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => { /* reported through unexpected-response */ });
  });
  assert.is(status, 401);
  const ok = new WebSocket(`ws://127.0.0.1:${m.port}${WS_SCHEDULER_PATH}`, { headers: auth(alice) });
  await new Promise((r, j) => { ok.once('open', r); ok.once('error', j); });
  const first = new Promise<Event>((r) => ok.once('message', (d) => r(decodeEvent(d as Buffer))));
  ok.send(encodeCall({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'alice', name: 'native' } } }));
  assert.is((await first).type, 'SUBSCRIBED');
  ok.terminate();
});

test.run();
