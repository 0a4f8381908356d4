/**
 * The fetcher end to end: a framework (SDK) launches tasks with
 * `command.uris`; a real master hands them to a real agent process, which
 * fetches from a loopback HTTP server before the command starts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../checks/cluster.js';

let c: Cluster;
let srv: http.Server;
let base = '';

test.before(async () => {
  c = await startCluster('fetch-e2e');
  const files = join(c.workDir, 'served');
  mkdirSync(join(files, 'app'), { recursive: true });
  writeFileSync(join(files, 'app', 'config.txt'), 'from the archive\n');
  execFileSync('tar', ['-czf', join(files, 'app.tar.gz'), '-C', files, 'app']);
  srv = http.createServer((req, res) => {
    if (req.url === '/app.tar.gz') res.end(readFileSync(join(files, 'app.tar.gz')));
    else { res.statusCode = 404; res.end(); }
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
});
test.after(async () => {
  srv?.closeAllConnections();
  await new Promise((r) => (srv ? srv.close(r) : r(undefined)));
  await c?.cleanup();
});

test('a tar.gz fetched over HTTP is extracted in the sandbox before the command runs, which reads it', async () => {
  const t = await c.launch({ name: 'reader', cmd: 'grep -q "from the archive" app/config.txt', cpus: 0.1, mem: 32, uris: [`${base}/app.tar.gz`] });
  const end = await c.waitFor(t.task_id.value, (s) => ['TASK_FINISHED', 'TASK_FAILED'].includes(s.state), 'the end');
  assert.is(end.state, 'TASK_FINISHED', end.message);
});

test('a 404 URI fails the task with REASON_FETCHER_FAILED and the cause; the command never runs', async () => {
  const t = await c.launch({ name: 'missing', cmd: 'echo ran', cpus: 0.1, mem: 32, uris: [`${base}/missing.tar.gz`] });
  const end = await c.waitFor(t.task_id.value, (s) => s.state === 'TASK_FAILED', 'TASK_FAILED');
  assert.is(end.reason, 'REASON_FETCHER_FAILED' as never);
  assert.is(end.message, `Failed to fetch '${base}/missing.tar.gz': HTTP 404 Not Found`);
  assert.not.ok(c.of(t.task_id.value).some((s) => s.state === 'TASK_RUNNING'));
});

test('an unsupported URI scheme is refused with the field named', async () => {
  const t = await c.launch({ name: 'ftp', cmd: 'true', cpus: 0.1, mem: 32, uris: ['ftp://example.com/a.tgz'] });
  const end = await c.waitFor(t.task_id.value, (s) => s.state === 'TASK_ERROR' || s.state === 'TASK_FAILED', 'the refusal');
  assert.is(end.state, 'TASK_ERROR');
  assert.match(end.message ?? '', /uris\[0\]\.value.*ftp/);
});

test.run();
