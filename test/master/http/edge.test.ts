/**
 * The edge of a master with no set-up (loopback, no credentials — `berth up`'s
 * default), tried as an attacker on the same machine would: a browser page's
 * WebSocket (Origin), a DNS-rebinding Host, an ACCEPT without its body, a
 * native client that stops reading, and `berth master --host 0.0.0.0` with no
 * credentials.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { startMaster, type RunningMaster } from '../../../master/main.js';
import { encodeCall } from '../../../proto/codec.js';
import { silentLogger } from '../../../proto/log.js';
import { WS_SCHEDULER_PATH } from '../../../proto/transport/types.js';
import { openStream, request } from './raw-client.js';

let m: RunningMaster;
let dir: string;
const BACKLOG = 1 << 20;

test.before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'berth-edge-'));
  m = await startMaster({ workDir: dir, port: 0, log: silentLogger, wsMaxBacklogBytes: BACKLOG });
});

test.after(async () => {
  await m?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function upgradeStatus(headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${m.port}${WS_SCHEDULER_PATH}`, { headers });
  return new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); });
    ws.on('open', () => { ws.terminate(); resolve(101); });
    ws.on('error', () => { /* the status arrives through unexpected-response */ });
  });
}

test('a WebSocket upgrade carrying a browser Origin is refused (403), even on loopback without authentication', async () => {
  assert.is(await upgradeStatus({ origin: 'https://evil.example' }), 403);
  assert.is(await upgradeStatus({ origin: `http://127.0.0.1:${m.port}` }), 403, 'any origin: browsers are not clients of the native transport');
  assert.is(await upgradeStatus({}), 101, 'a non-browser client is welcome');
});

test('a Host header that does not name the listener (DNS rebinding) is refused, for upgrades and requests', async () => {
  assert.is(await upgradeStatus({ host: `rebind.evil.example:${m.port}` }), 421);
  const r = await request(`http://127.0.0.1:${m.port}/state`, { method: 'GET', headers: { host: `rebind.evil.example:${m.port}` } });
  assert.is(r.status, 421);
  assert.is((await request(`http://127.0.0.1:${m.port}/state`, { method: 'GET', headers: { host: `localhost:${m.port}` } })).status, 200);
});

test('ACCEPT without its accept body is a 400 naming the field, not a 500', async () => {
  const s = await openStream(`http://127.0.0.1:${m.port}`, JSON.stringify({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'acc' } } }),
    { 'content-type': 'application/json', accept: 'application/json' });
  const fid = (await s.waitFor((e) => e.type === 'SUBSCRIBED')).subscribed!.framework_id.value;
  const r = await request(`http://127.0.0.1:${m.port}/api/v1/scheduler`, {
    headers: { 'content-type': 'application/json', 'mesos-stream-id': s.streamId },
    body: JSON.stringify({ type: 'ACCEPT', framework_id: { value: fid } }),
  });
  assert.is(r.status, 400);
  assert.match(r.body.toString(), /Expecting 'accept' to be present/);
  s.close();
});

test('a native client that stops reading is disconnected at the send-backlog cap, and master memory stays bounded', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${m.port}${WS_SCHEDULER_PATH}`, { perMessageDeflate: false });
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  let subscribed = false;
  ws.once('message', () => { subscribed = true; });
  ws.send(encodeCall({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'slow', failover_timeout: 3600 } } }));
  for (let i = 0; i < 200 && !subscribed; i++) await new Promise((r) => setTimeout(r, 10));
  const id = [...m.master.frameworks.values()].find((f) => f.info.name === 'slow')!.id;
  // Stop reading: the socket is paused, so the kernel buffers fill and the master's backlog grows.
  (ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const before = process.memoryUsage().rss;
  let peak = before;
  const tasks = Array.from({ length: 10_000 }, (_, i) => ({ task_id: { value: `unknown-task-${i}-${'x'.repeat(100)}` } }));
  let sent = 0;
  for (; sent < 400 && m.master.framework(id)?.status === 'CONNECTED'; sent++) {
    ws.send(encodeCall({ type: 'RECONCILE', framework_id: { value: id }, reconcile: { tasks } }));
    await new Promise((r) => setTimeout(r, 5));
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const status = m.master.framework(id)?.status;
  process.stderr.write(`  non-reading client: cut after ${sent} RECONCILEs of 10k ids (each ~1.3 MB of events); rss before ${(before / 2 ** 20).toFixed(0)} MiB, peak ${(peak / 2 ** 20).toFixed(0)} MiB (cap ${BACKLOG / 2 ** 20} MiB)\n`);
  assert.is(status, 'DISCONNECTED', 'the framework was disconnected (it may fail over; nothing is lost)');
  assert.ok(sent < 400, 'cut long before the client stopped sending');
  assert.ok(peak - before < 256 * 2 ** 20, `master memory bounded (grew ${((peak - before) / 2 ** 20).toFixed(0)} MiB)`);
  ws.terminate();
  await closed;
});

test('`berth master --host 0.0.0.0` without credentials exits with an error naming --insecure', () => {
  const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../cli/main.js');
  const r = spawnSync(process.execPath, [cli, 'master', '--host', '0.0.0.0', '--port', '0', '--work-dir', path.join(dir, 'open')], { encoding: 'utf8', timeout: 20_000 });
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /--insecure/);
  assert.match(r.stderr, /--credentials/);
});

test('a poisoned SUBSCRIBE (MULTI_ROLE, no roles) is a 400 over HTTP, and the master restarts cleanly on its registry', async () => {
  const wd = path.join(dir, 'poison');
  const m2 = await startMaster({ workDir: wd, port: 0, log: silentLogger });
  const r = await request(`http://127.0.0.1:${m2.port}/api/v1/scheduler`, {
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'p', roles: [], capabilities: [{ type: 'MULTI_ROLE' }] } } }),
  });
  assert.is(r.status, 400);
  assert.match(r.body.toString(), /roles must name at least one role/);
  await m2.stop();
  const m3 = await startMaster({ workDir: wd, port: 0, log: silentLogger });
  assert.is(m3.master.frameworks.size, 0);
  await m3.stop();
});

test.run();
