/**
 * The Mesos v1 scheduler HTTP API end to end with raw HTTP only (no SDK), over
 * a real loopback socket: a master on port 0 with a fake agent, a framework
 * that SUBSCRIBEs (JSON, then failing over with protobuf), accepts an offer,
 * follows its task to FINISHED acknowledging each update, and reconciles.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeCall, encodeCall } from '../../../proto/codec.js';
import type { Call, Event, Offer, Resource, TaskInfo } from '../../../proto/types.js';
import { startCluster, type TestCluster } from '../../helpers/cluster.js';
import http from 'node:http';
import { openStream, RawStream, request } from './raw-client.js';

const JSON_CT = 'application/json';
const PB_CT = 'application/x-protobuf';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function subscribeCall(name: string, extra: Partial<NonNullable<Call['subscribe']>['framework_info']> = {}): Call {
  return { type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'test', name, failover_timeout: 3600, ...extra } } };
}

/** Task resources carved out of an offer: same shape (allocation_info.role included), smaller amounts. */
function carve(offer: Offer, cpus: number, mem: number): Resource[] {
  const out: Resource[] = [];
  for (const r of offer.resources ?? []) {
    if (r.name === 'cpus') out.push({ ...r, scalar: { value: cpus } });
    if (r.name === 'mem') out.push({ ...r, scalar: { value: mem } });
  }
  return out;
}

function launchCall(fid: string, offer: Offer, taskId: string, cmd: string): Call {
  const task: TaskInfo = {
    name: taskId, task_id: { value: taskId }, agent_id: offer.agent_id,
    resources: carve(offer, 0.5, 64), command: { shell: true, value: cmd },
  };
  return {
    framework_id: { value: fid }, type: 'ACCEPT',
    accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [task] } }], filters: { refuse_seconds: 0 } },
  };
}

interface Session { stream: RawStream; fid: string; media: string }

async function post(c: TestCluster, s: Session, call: Call, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const body = s.media === JSON_CT ? Buffer.from(JSON.stringify(call)) : Buffer.from(encodeCall(call));
  const r = await request(`${c.url}/api/v1/scheduler`, { headers: { 'content-type': s.media, 'mesos-stream-id': s.stream.streamId, ...headers }, body });
  return { status: r.status, body: r.body.toString() };
}

const isType = (t: Event['type']) => (e: Event): boolean => e.type === t;
const isUpdate = (taskId: string, state: string) => (e: Event): boolean =>
  e.type === 'UPDATE' && e.update?.status.task_id.value === taskId && e.update.status.state === state;

/** ACCEPT a LAUNCH on the first offer, then RUNNING and FINISHED, each acknowledged. */
async function runOneTask(c: TestCluster, s: Session, taskId: string): Promise<void> {
  const offersEv = await s.stream.waitFor(isType('OFFERS'));
  const offer = offersEv.offers!.offers![0]!;
  const acc = await post(c, s, launchCall(s.fid, offer, taskId, 'sleep 0.05; echo ok'));
  assert.is(acc.status, 202, `ACCEPT: ${acc.body}`);
  assert.is(acc.body, '', 'ACCEPT answers with an empty body');
  for (const state of ['TASK_RUNNING', 'TASK_FINISHED']) {
    const ev = await s.stream.waitFor(isUpdate(taskId, state));
    const st = ev.update!.status;
    assert.ok(st.uuid && Buffer.from(st.uuid, 'base64').length === 16, `${state} carries a 16-byte uuid`);
    assert.is(st.agent_id?.value, offer.agent_id.value);
    assert.is(st.source, 'SOURCE_EXECUTOR');
    assert.type(st.timestamp, 'number');
    const ack = await post(c, s, { framework_id: { value: s.fid }, type: 'ACKNOWLEDGE', acknowledge: { agent_id: st.agent_id!, task_id: st.task_id, uuid: st.uuid! } });
    assert.is(ack.status, 202, `ACKNOWLEDGE: ${ack.body}`);
  }
  // The agent hears every acknowledgement: nothing left for it to resend.
  const agent = c.agents[0]!;
  for (let i = 0; i < 100 && agent.unacked.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(agent.unacked.size, 0, 'every update was acknowledged through to the agent');

  const rec = await post(c, s, { framework_id: { value: s.fid }, type: 'RECONCILE', reconcile: { tasks: [{ task_id: { value: taskId } }] } });
  assert.is(rec.status, 202);
  const r = await s.stream.waitFor((e) => isUpdate(taskId, 'TASK_FINISHED')(e) && e.update!.status.reason === 'REASON_RECONCILIATION');
  assert.not.ok(r.update!.status.uuid, 'reconciliation updates need no acknowledgement');
  const implicit = await post(c, s, { framework_id: { value: s.fid }, type: 'RECONCILE', reconcile: {} });
  assert.is(implicit.status, 202);
}

const flow = suite('scheduler HTTP API: raw HTTP end to end');
let c: TestCluster;
flow.before(async () => { c = await startCluster({ agents: 1 }); });
flow.after(async () => { await c?.stop(); });

flow('SUBSCRIBE (JSON), OFFERS, ACCEPT LAUNCH, UPDATE RUNNING/FINISHED acknowledged, RECONCILE; then failover with protobuf', async () => {
  const streams: RawStream[] = [];
  try {
    // --- JSON
    const stream = await openStream(c.url, JSON.stringify(subscribeCall('raw-json')), { 'content-type': JSON_CT, accept: JSON_CT });
    streams.push(stream);
    assert.is(stream.res.statusCode, 200);
    assert.is(stream.contentType, JSON_CT);
    assert.match(stream.streamId, UUID_RE);
    assert.is(stream.res.headers['transfer-encoding'], 'chunked');
    const sub = await stream.waitFor(isType('SUBSCRIBED'));
    const fid = sub.subscribed!.framework_id.value;
    assert.ok(fid);
    assert.is(sub.subscribed!.heartbeat_interval_seconds, 15);
    assert.ok(sub.subscribed!.master_info?.id, 'master_info is filled in');
    assert.is(sub.subscribed!.master_info?.port, c.running.port);

    const offersEv = await stream.waitFor(isType('OFFERS'));
    const offer = offersEv.offers!.offers![0]!;
    assert.ok(offer.id.value);
    assert.is(offer.framework_id.value, fid);
    assert.is(offer.agent_id.value, c.agents[0]!.id);
    assert.is(offer.hostname, 'agent-0');
    assert.is(offer.url?.scheme, 'http');
    assert.ok(offer.url?.address.ip && offer.url.address.hostname && offer.url.address.port, 'url.address has hostname, ip and port');
    assert.ok(Array.isArray(offer.attributes) && Array.isArray(offer.executor_ids));
    for (const r of offer.resources ?? []) assert.is(r.allocation_info?.role, '*', `${r.name} carries allocation_info.role`);
    assert.is(offer.resources?.find((r) => r.name === 'cpus')?.scalar?.value, 4);
    assert.equal(offer.resources?.find((r) => r.name === 'ports')?.ranges?.range, [{ begin: 31000, end: 32000 }]);

    const json: Session = { stream, fid, media: JSON_CT };
    await runOneTask(c, json, 'json-task');

    for (const call of [
      { framework_id: { value: fid }, type: 'REVIVE', revive: {} },
      { framework_id: { value: fid }, type: 'SUPPRESS', suppress: {} },
      { framework_id: { value: fid }, type: 'REVIVE' },
      { framework_id: { value: fid }, type: 'KILL', kill: { task_id: { value: 'no-such-task' } } },
    ] as Call[]) {
      const r = await post(c, json, call);
      assert.is(r.status, 202, `${call.type}: ${r.body}`);
    }
    const lost = await stream.waitFor(isUpdate('no-such-task', 'TASK_LOST'));
    assert.is(lost.update!.status.reason, 'REASON_TASK_UNKNOWN');
    const upd = await post(c, json, { framework_id: { value: fid }, type: 'UPDATE_FRAMEWORK', update_framework: { framework_info: { user: 'test', name: 'raw-json-renamed', id: { value: fid }, failover_timeout: 3600 } } });
    assert.is(upd.status, 200, `UPDATE_FRAMEWORK: ${upd.body}`);

    // --- protobuf, as a failover of the same framework: the JSON stream is closed.
    const before = stream.events.length;
    const pbStream = await openStream(c.url, Buffer.from(encodeCall(subscribeCall('raw-pb', { id: { value: fid } }))), { 'content-type': PB_CT, accept: PB_CT });
    streams.push(pbStream);
    assert.is(pbStream.contentType, PB_CT);
    assert.is.not(pbStream.streamId, stream.streamId);
    const pbSub = await pbStream.waitFor(isType('SUBSCRIBED'));
    assert.is(pbSub.subscribed!.framework_id.value, fid, 'failover keeps the framework id');
    const err = await stream.waitFor(isType('ERROR'), 5000, before);
    assert.match(err.error!.message, /failed over/);
    for (let i = 0; i < 100 && !stream.ended; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(stream.ended, 'the replaced stream is closed by the master');
    const pb: Session = { stream: pbStream, fid, media: PB_CT };
    const stale = await post(c, { ...json, stream }, { framework_id: { value: fid }, type: 'REVIVE' });
    assert.is(stale.status, 400, 'the old stream id is no longer valid');
    await runOneTask(c, pb, 'pb-task');

    const td = await post(c, pb, { framework_id: { value: fid }, type: 'TEARDOWN' });
    assert.is(td.status, 202);
    for (let i = 0; i < 100 && !pbStream.ended; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(pbStream.ended, 'TEARDOWN closes the stream');
  } finally {
    for (const s of streams) s.close();
  }
});

flow('a JSON body whose nulls mean absent, with unknown keys, sent chunked without Content-Length, is accepted', async () => {
  const body = JSON.stringify({ type: 'SUBSCRIBE', unknown_key: { x: 1 }, framework_id: null, subscribe: { framework_info: { user: 'u', name: 'chunky', id: null, webui_url: null, extra: true } } });
  const stream = await new Promise<RawStream>((resolve, reject) => {
    const r = http.request(`${c.url}/api/v1/scheduler`, { method: 'POST', headers: { 'content-type': JSON_CT } }, (res) => {
      resolve(new RawStream(res, r, String(res.headers['content-type'])));
    });
    r.on('error', reject);
    for (let i = 0; i < body.length; i += 7) r.write(body.slice(i, i + 7));
    r.end();
  });
  try {
    assert.is(stream.res.statusCode, 200);
    const sub = await stream.waitFor(isType('SUBSCRIBED'));
    assert.ok(sub.subscribed!.framework_id.value);
    const fid = sub.subscribed!.framework_id.value;
    const call = JSON.stringify({ type: 'REVIVE', framework_id: { value: fid }, revive: null, whatever: [1, 2] });
    const r = await request(`${c.url}/api/v1/scheduler`, { headers: { 'content-type': 'application/json; charset=utf-8', 'mesos-stream-id': stream.streamId }, body: call, chunked: 5 });
    assert.is(r.status, 202, r.body.toString());
    await request(`${c.url}/api/v1/scheduler`, { headers: { 'content-type': JSON_CT, 'mesos-stream-id': stream.streamId }, body: JSON.stringify({ type: 'TEARDOWN', framework_id: { value: fid } }) });
  } finally {
    stream.close();
  }
});

flow.run();

// ------------------------------------------------------------------ errors

const errors = suite('scheduler HTTP API: every error status, with real requests');
let ec: TestCluster;
let live: RawStream;
let liveFid = '';
errors.before(async () => {
  ec = await startCluster({ agents: 1 });
  live = await openStream(ec.url, JSON.stringify(subscribeCall('errors')), { 'content-type': JSON_CT });
  liveFid = (await live.waitFor(isType('SUBSCRIBED'))).subscribed!.framework_id.value;
});
errors.after(async () => {
  live?.close();
  await ec?.stop();
});

interface Case {
  name: string;
  method?: string;
  headers?: (sid: string) => Record<string, string>;
  body?: (fid: string) => Buffer | string;
  status: number;
  message?: RegExp;
}

const ct = (sid: string): Record<string, string> => ({ 'content-type': JSON_CT, 'mesos-stream-id': sid });
const jsonBody = (call: unknown) => (): string => JSON.stringify(call);

const CASES: Case[] = [
  { name: 'GET → 405', method: 'GET', status: 405, message: /POST/ },
  { name: 'PUT → 405', method: 'PUT', headers: ct, body: jsonBody({ type: 'REVIVE' }), status: 405 },
  { name: 'no Content-Type → 400', headers: () => ({}), body: jsonBody({ type: 'SUBSCRIBE' }), status: 400, message: /Content-Type/ },
  { name: 'text/plain → 415', headers: () => ({ 'content-type': 'text/plain' }), body: () => 'hello', status: 415 },
  { name: 'malformed JSON → 400 with the reason', headers: ct, body: () => '{"type": "SUBSC', status: 400, message: /JSON/ },
  { name: 'a JSON array → 400', headers: ct, body: () => '[1,2]', status: 400, message: /object/ },
  { name: 'garbage protobuf → 400', headers: () => ({ 'content-type': PB_CT }), body: () => Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]), status: 400 },
  { name: 'missing required field → 400 naming it', headers: () => ({ 'content-type': JSON_CT }), body: jsonBody({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'x' } } }), status: 400, message: /subscribe\.framework_info\.user/ },
  { name: 'no type → 400', headers: ct, body: (fid) => JSON.stringify({ framework_id: { value: fid } }), status: 400, message: /type/ },
  { name: 'unknown call type → 501', headers: ct, body: (fid) => JSON.stringify({ type: 'TELEPORT', framework_id: { value: fid } }), status: 501 },
  { name: 'UNKNOWN call type → 501', headers: ct, body: (fid) => JSON.stringify({ type: 'UNKNOWN', framework_id: { value: fid } }), status: 501 },
  { name: 'unknown enum inside a call → 400', headers: ct, body: (fid) => JSON.stringify({ type: 'ACCEPT', framework_id: { value: fid }, accept: { operations: [{ type: 'TELEPORT' }] } }), status: 400, message: /TELEPORT/ },
  { name: 'SUBSCRIBE with Mesos-Stream-Id → 400', headers: ct, body: jsonBody(subscribeCall('x')), status: 400, message: /Mesos-Stream-Id/ },
  { name: 'SUBSCRIBE accepting neither encoding → 406', headers: () => ({ 'content-type': JSON_CT, accept: 'text/html' }), body: jsonBody(subscribeCall('x')), status: 406 },
  { name: 'SUBSCRIBE with an invalid FrameworkInfo → 400', headers: () => ({ 'content-type': JSON_CT }), body: jsonBody(subscribeCall('x', { failover_timeout: -1 })), status: 400, message: /failover_timeout/ },
  { name: 'call without framework_id → 400', headers: ct, body: jsonBody({ type: 'REVIVE' }), status: 400, message: /framework_id/ },
  { name: 'unknown framework → 400 "Framework cannot be found"', headers: ct, body: jsonBody({ type: 'REVIVE', framework_id: { value: 'nope' } }), status: 400, message: /^Framework cannot be found$/ },
  { name: 'call without Mesos-Stream-Id → 400', headers: () => ({ 'content-type': JSON_CT }), body: (fid) => JSON.stringify({ type: 'REVIVE', framework_id: { value: fid } }), status: 400, message: /Mesos-Stream-Id/ },
  { name: 'call with a wrong Mesos-Stream-Id → 400', headers: () => ({ 'content-type': JSON_CT, 'mesos-stream-id': '00000000-0000-0000-0000-000000000000' }), body: (fid) => JSON.stringify({ type: 'REVIVE', framework_id: { value: fid } }), status: 400, message: /stream ID/ },
  { name: 'LAUNCH_GROUP → clear 400', headers: ct, body: (fid) => JSON.stringify({ type: 'ACCEPT', framework_id: { value: fid }, accept: { offer_ids: [], operations: [{ type: 'LAUNCH_GROUP', launch_group: { executor: { executor_id: { value: 'e' } }, task_group: {} } }] } }), status: 400, message: /LAUNCH_GROUP is not supported/ },
  { name: 'RESERVE → 400 unsupported', headers: ct, body: (fid) => JSON.stringify({ type: 'ACCEPT', framework_id: { value: fid }, accept: { offer_ids: [], operations: [{ type: 'RESERVE', reserve: {} }] } }), status: 400, message: /not supported/ },
  { name: 'MESSAGE → 400 unsupported', headers: ct, body: (fid) => JSON.stringify({ type: 'MESSAGE', framework_id: { value: fid }, message: { agent_id: { value: 'a' }, executor_id: { value: 'e' }, data: 'aGk=' } }), status: 400, message: /executor/ },
  { name: 'ACKNOWLEDGE with a bad uuid → 400', headers: ct, body: (fid) => JSON.stringify({ type: 'ACKNOWLEDGE', framework_id: { value: fid }, acknowledge: { agent_id: { value: 'a' }, task_id: { value: 't' }, uuid: 'AAAA' } }), status: 400, message: /uuid/ },
  { name: 'ACKNOWLEDGE with non-base64 uuid → 400', headers: ct, body: (fid) => JSON.stringify({ type: 'ACKNOWLEDGE', framework_id: { value: fid }, acknowledge: { agent_id: { value: 'a' }, task_id: { value: 't' }, uuid: 'not base64!' } }), status: 400, message: /base64/ },
  { name: 'UPDATE_FRAMEWORK with another id → 400', headers: ct, body: (fid) => JSON.stringify({ type: 'UPDATE_FRAMEWORK', framework_id: { value: fid }, update_framework: { framework_info: { user: 'u', name: 'n', id: { value: 'other' } } } }), status: 400, message: /id/ },
  { name: 'a body over 16 MiB → 413', headers: ct, body: () => Buffer.alloc((16 << 20) + 1, 0x20), status: 413 },
];

for (const k of CASES) {
  errors(k.name, async () => {
    const headers = k.headers ? k.headers(live.streamId) : {};
    const body = k.body ? k.body(liveFid) : undefined;
    const r = await request(`${ec.url}/api/v1/scheduler`, { method: k.method ?? 'POST', headers, body });
    assert.is(r.status, k.status, `${k.name}: got ${r.status} ${r.body.toString().slice(0, 200)}`);
    if (k.message) assert.match(r.body.toString(), k.message);
    if (k.status === 405) assert.is(r.headers.allow, 'POST');
  });
}

errors('a framework that is disconnected gets 403 "Framework is not subscribed"', async () => {
  const s = await openStream(ec.url, JSON.stringify(subscribeCall('leaver')), { 'content-type': JSON_CT });
  const fid = (await s.waitFor(isType('SUBSCRIBED'))).subscribed!.framework_id.value;
  const sid = s.streamId;
  s.close();
  for (let i = 0; i < 100 && ec.running.master.framework(fid)?.status === 'CONNECTED'; i++) await new Promise((r) => setTimeout(r, 10));
  const r = await request(`${ec.url}/api/v1/scheduler`, { headers: ct(sid), body: JSON.stringify({ type: 'REVIVE', framework_id: { value: fid } }) });
  assert.is(r.status, 403, r.body.toString());
  assert.is(r.body.toString(), 'Framework is not subscribed');
});

errors('a framework subscribed on the native transport gets 403 on the HTTP API', async () => {
  const { WsDialer } = await import('../../../proto/transport/ws.js');
  const conn = await new WsDialer(ec.hostPort).dialFramework();
  try {
    const sub = new Promise<string>((resolve) => conn.onMessage((ev) => { if (ev.type === 'SUBSCRIBED') resolve(ev.subscribed!.framework_id.value); }));
    conn.send(subscribeCall('native'));
    const fid = await sub;
    const r = await request(`${ec.url}/api/v1/scheduler`, { headers: ct(live.streamId), body: JSON.stringify({ type: 'REVIVE', framework_id: { value: fid } }) });
    assert.is(r.status, 403);
    assert.match(r.body.toString(), /not connected via HTTP/);
  } finally {
    conn.close();
  }
});

errors('Accept negotiation: */* and missing pick JSON; protobuf only when JSON is refused', async () => {
  for (const [accept, want] of [['*/*', JSON_CT], [undefined, JSON_CT], ['application/json;q=0, application/x-protobuf', PB_CT], ['application/*', JSON_CT], ['application/x-protobuf, application/json;q=0.5', PB_CT]] as const) {
    const headers: Record<string, string> = { 'content-type': JSON_CT };
    if (accept) headers.accept = accept;
    const s = await openStream(ec.url, JSON.stringify(subscribeCall(`neg-${String(accept)}`)), headers);
    try {
      assert.is(s.contentType, want, `Accept: ${String(accept)}`);
      await s.waitFor(isType('SUBSCRIBED'));
    } finally { s.close(); }
  }
});

errors('a protobuf Call body round-trips as the JSON one does', () => {
  const call: Call = { type: 'DECLINE', framework_id: { value: 'f' }, decline: { offer_ids: [{ value: 'o1' }], filters: { refuse_seconds: 1.5 } } };
  assert.equal(decodeCall(encodeCall(call)), call);
});

errors.run();
