/**
 * Bad input over real WebSockets on loopback: malformed frames, unknown enum
 * values, oversized payloads and calls from an unsubscribed framework get a
 * clear, coded answer; the master keeps serving and other frameworks are not
 * disturbed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { startMaster, type RunningMaster } from '../../master/main.js';
import { decodeEvent, encodeCall } from '../../proto/codec.js';
import { silentLogger } from '../../proto/log.js';
import { WS_AGENT_PATH, WS_SCHEDULER_PATH } from '../../proto/transport/types.js';
import type { Event } from '../../proto/types.js';

interface Client { ws: WebSocket; events: Event[]; closed: Promise<{ code: number; reason: string }> }

async function client(m: RunningMaster, p = WS_SCHEDULER_PATH): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${m.port}${p}`, { maxPayload: 64 << 20 });
  const events: Event[] = [];
  ws.on('message', (d) => { try { events.push(decodeEvent(d as Buffer)); } catch { /* not an event */ } });
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  return { ws, events, closed };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let m: RunningMaster;
let dir: string;
let good: Client;

test.before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'berth-bad-'));
  m = await startMaster({ workDir: dir, port: 0, log: silentLogger });
  good = await client(m);
  good.ws.send(encodeCall({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'good' } } }));
  await until(() => good.events.some((e) => e.type === 'SUBSCRIBED'), 'SUBSCRIBED');
});

test.after(async () => {
  good?.ws.terminate();
  await m?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a frame that is not a protobuf Call closes that connection with 1007 and a reason', async () => {
  const c = await client(m);
  c.ws.send(Buffer.from([0x1a, 0x10, 0x01])); // subscribe: 16 bytes announced, 1 sent
  const { code, reason } = await c.closed;
  assert.is(code, 1007);
  assert.match(reason, /malformed Call/);
});

test('an unknown enum value is rejected, not guessed', async () => {
  const c = await client(m);
  c.ws.send(Buffer.from([0x10, 0xe7, 0x07])); // Call.type = 999
  const { code, reason } = await c.closed;
  assert.is(code, 1007);
  assert.match(reason, /unknown Type value/);
});

test('a text frame closes with 1003', async () => {
  const c = await client(m);
  c.ws.send('{"type":"SUBSCRIBE"}');
  assert.is((await c.closed).code, 1003);
});

test('an oversized frame closes with 1009 without buffering it', async () => {
  const c = await client(m);
  c.ws.send(Buffer.alloc(17 << 20));
  assert.is((await c.closed).code, 1009);
});

test('a call before SUBSCRIBE is answered "not subscribed" and the connection stays usable', async () => {
  const c = await client(m);
  c.ws.send(encodeCall({ type: 'REVIVE', framework_id: { value: 'nobody' } }));
  await until(() => c.events.length > 0, 'an answer');
  assert.is(c.events[0]!.type, 'ERROR');
  assert.match(c.events[0]!.error!.message, /call rejected: Framework is not subscribed/);
  c.ws.send(encodeCall({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'late' } } }));
  await until(() => c.events.some((e) => e.type === 'SUBSCRIBED'), 'SUBSCRIBED after the rejected call');
  c.ws.terminate();
});

test('garbage on the agent path closes that connection only', async () => {
  const c = await client(m, WS_AGENT_PATH);
  c.ws.send(Buffer.from('not protobuf at all, just bytes'));
  assert.is((await c.closed).code, 1007);
});

test('after all that, the master serves and the good framework is still subscribed and heard', async () => {
  const health = await fetch(`http://127.0.0.1:${m.port}/health`);
  assert.is(health.status, 200);
  assert.is(good.ws.readyState, WebSocket.OPEN);
  const id = good.events.find((e) => e.type === 'SUBSCRIBED')!.subscribed!.framework_id;
  const n = good.events.length;
  good.ws.send(encodeCall({ type: 'RECONCILE', framework_id: id, reconcile: { tasks: [{ task_id: { value: 'ghost' } }] } }));
  await until(() => good.events.length > n, 'reconciliation answer');
  assert.is(good.events.at(-1)!.update!.status.state, 'TASK_LOST');
  assert.ok(m.master.framework(id.value), 'framework intact');
});

test.run();
