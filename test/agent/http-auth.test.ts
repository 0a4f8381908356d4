/**
 * The agent's HTTP endpoints with Mesos' agent flags `--http-credentials`,
 * `--authenticate-http-readonly` and `--acls`: a real agent (real HTTP server on loopback, real
 * task processes) built from credential and ACL files on disk by the same code as `berth agent`,
 * and a real `berth agent` process for the flag checks.
 *
 * Tasks here run as the test's own user (the posix containerizer cannot switch users), so the
 * tenants are told apart by what each principal's `access_sandboxes` ACL lets it read: alice may
 * read sandboxes of that user, bob only those of `nobody`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentHttpAuth } from '../../cli/agent.js';
import { commandTask, waitFor } from './fake-master.js';
import { startHarness, type Harness } from './harness.js';

const me = userInfo().username;
const cli = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
const basic = (p: string, s: string): string => `Basic ${Buffer.from(`${p}:${s}`).toString('base64')}`;

async function get(h: Harness, path: string, auth?: string): Promise<{ status: number; body: unknown; challenge: string | null; text: string }> {
  const res = await fetch(`http://${h.agent.endpoint}${path}`, { headers: auth ? { authorization: auth } : {} });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as unknown, challenge: res.headers.get('www-authenticate'), text };
}

/** An agent whose HTTP policy comes from files, as `berth agent --http-credentials F --authenticate-http-readonly --acls F`. */
async function securedAgent(dir: string, acls: unknown): Promise<Harness> {
  const creds = join(dir, 'credentials.json');
  writeFileSync(creds, JSON.stringify({ credentials: [{ principal: 'alice', secret: 'a-secret' }, { principal: 'bob', secret: 'b-secret' }, { principal: 'carol', secret: 'c-secret' }] }));
  const aclFile = join(dir, 'acls.json');
  writeFileSync(aclFile, JSON.stringify(acls));
  const httpAuth = agentHttpAuth({ httpCredentials: creds, authenticateHttpReadonly: true, acls: aclFile });
  return startHarness({ agent: { httpAuth } });
}

/** Launches a task printing a line, with a secret in its environment; resolves with its sandbox. */
async function launchTenantTask(h: Harness, id: string): Promise<string> {
  await waitFor(() => h.agent.state === 'running', 'registered');
  h.master.launch(commandTask(id, 'echo hello-from-a; sleep 300', { env: { DB_PASSWORD: 'hunter2-secret' } }));
  await waitFor(() => h.master.states(id).includes('TASK_RUNNING'), 'RUNNING');
  const sandbox = (h.agent.stateView().tasks as { id: string; sandbox: string }[]).find((t) => t.id === id)!.sandbox;
  await waitFor(async () => ((await get(h, `/files/read?task_id=${id}&path=stdout`, basic('alice', 'a-secret'))).body as { data?: string }).data === 'hello-from-a\n', 'stdout written');
  return sandbox;
}

test('access_sandboxes: a principal reads the sandbox of a task whose user its ACL names, and gets 403 on another tenant\'s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-agent-auth-'));
  const h = await securedAgent(dir, {
    access_sandboxes: [
      { principals: { values: ['alice'] }, users: { values: [me] } },
      { principals: { values: ['bob'] }, users: { values: ['nobody'] } },
      // Mesos' way to close a permissive ACL file: everyone else is denied.
      { principals: { type: 'ANY' }, users: { type: 'NONE' } },
    ],
    view_tasks: [
      { principals: { values: ['alice'] }, users: { values: [me] } },
      { principals: { type: 'ANY' }, users: { type: 'NONE' } },
    ],
  });
  try {
    const sandbox = await launchTenantTask(h, 'a-task');
    const alice = basic('alice', 'a-secret');
    const bob = basic('bob', 'b-secret');

    // Alice, by task and by absolute path, read and browse.
    assert.equal((await get(h, '/files/read?task_id=a-task&path=stdout', alice)).body, { data: 'hello-from-a\n', offset: 0 });
    assert.is((await get(h, `/files/read?path=${encodeURIComponent(join(sandbox, 'stdout'))}`, alice)).status, 200);
    assert.is((await get(h, `/files/browse?path=${encodeURIComponent(sandbox)}`, alice)).status, 200);

    // Bob: every way of naming the sandbox is refused, before a byte is read.
    for (const path of ['/files/read?task_id=a-task&path=stdout', `/files/read?path=${encodeURIComponent(join(sandbox, 'stdout'))}`, `/files/browse?path=${encodeURIComponent(sandbox)}`, '/files/read?task_id=a-task&path=stdout&offset=-1']) {
      const r = await get(h, path, bob);
      assert.is(r.status, 403, path);
      assert.not.match(r.text, /hello-from-a/);
      assert.match(r.text, /may not access sandboxes/);
      assert.not.match(r.text, new RegExp(`'${me}'`), 'the refusal does not name the other tenant\'s user');
    }
    // Nor does it tell a task that exists from one that does not: both are the same 403.
    const ghost = await get(h, '/files/read?task_id=no-such-task&path=stdout', bob);
    const real = await get(h, '/files/read?task_id=a-task&path=stdout', bob);
    assert.is(ghost.status, 403);
    assert.equal(ghost.body, real.body);
    // Alice (who may read her tenant's sandboxes) learns that a task is missing only when her ACL covers unknown users.
    assert.is((await get(h, '/files/read?task_id=no-such-task&path=stdout', alice)).status, 403);

    // view_tasks: bob's /state and /monitor/statistics list no task of alice's tenant; alice's do.
    const aliceState = (await get(h, '/state', alice)).body as { tasks: { id: string }[] };
    assert.equal(aliceState.tasks.map((t) => t.id), ['a-task']);
    const bobState = await get(h, '/state', bob);
    assert.equal((bobState.body as { tasks: unknown[] }).tasks, []);
    assert.equal((await get(h, '/monitor/statistics', bob)).body, []);
    // Environment values are never shown by /state, to anyone.
    assert.not.match((await get(h, '/state', alice)).text, /hunter2-secret/);
    assert.not.match(bobState.text, /hunter2-secret/);
  } finally {
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with --authenticate-http-readonly: no credentials or a wrong secret is 401 with a Basic challenge; /health stays open', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-agent-auth-'));
  const h = await securedAgent(dir, { access_sandboxes: [{ principals: { values: ['alice'] }, users: { values: [me] } }] });
  try {
    await launchTenantTask(h, 'a-task');
    for (const path of ['/files/read?task_id=a-task&path=stdout', '/files/browse?task_id=a-task&path=.', '/state', '/monitor/statistics']) {
      const none = await get(h, path);
      assert.is(none.status, 401, `${path} without credentials`);
      assert.is(none.challenge, 'Basic realm="berth"');
      const wrong = await get(h, path, basic('alice', 'not-her-secret'));
      assert.is(wrong.status, 401, `${path} with a wrong secret`);
      assert.not.match(wrong.text, /hello-from-a/);
      assert.is((await get(h, path, basic('mallory', 'a-secret'))).status, 401, `${path} as an unknown principal`);
    }
    assert.is((await get(h, '/health')).status, 200);
  } finally {
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('permissive: false: an authenticated principal with no matching access_sandboxes ACL gets 403', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-agent-auth-'));
  const h = await securedAgent(dir, { permissive: false, access_sandboxes: [{ principals: { values: ['alice'] }, users: { values: [me] } }] });
  try {
    await launchTenantTask(h, 'a-task');
    assert.is((await get(h, '/files/read?task_id=a-task&path=stdout', basic('alice', 'a-secret'))).status, 200);
    const carol = await get(h, '/files/read?task_id=a-task&path=stdout', basic('carol', 'c-secret'));
    assert.is(carol.status, 403);
    assert.not.match(carol.text, /hello-from-a/);
    // No view_* ACL matches anyone either: with permissive false, /state lists nothing.
    assert.equal(((await get(h, '/state', basic('alice', 'a-secret'))).body as { tasks: unknown[] }).tasks, []);
  } finally {
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`berth agent` serves a non-loopback --host once authentication is on, and refuses it (naming --insecure) otherwise', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-agent-auth-'));
  const creds = join(dir, 'credentials.json');
  writeFileSync(creds, JSON.stringify({ credentials: [{ principal: 'ops', secret: 's3cret' }] }));
  const base = [cli, 'agent', '--master', '127.0.0.1:9', '--port', '0', '--host', '0.0.0.0', '--containerizer', 'posix'];
  const open = spawnSync(process.execPath, [...base, '--work-dir', join(dir, 'open')], { encoding: 'utf8', timeout: 20_000 });
  assert.is(open.status, 1, open.stderr);
  assert.match(open.stderr, /--insecure/);
  const noCreds = spawnSync(process.execPath, [...base, '--work-dir', join(dir, 'nocreds'), '--authenticate-http-readonly'], { encoding: 'utf8', timeout: 20_000 });
  assert.is(noCreds.status, 1, noCreds.stderr);
  assert.match(noCreds.stderr, /--http-credentials/);

  const child = spawn(process.execPath, [...base, '--work-dir', join(dir, 'secured'), '--http-credentials', creds, '--authenticate-http-readonly'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /berth agent at [^\s]*:(\d+)/.exec(err);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`berth agent exited with ${code}: ${err}`)));
    });
    assert.is((await fetch(`http://127.0.0.1:${port}/state`)).status, 401);
    assert.is((await fetch(`http://127.0.0.1:${port}/state`, { headers: { authorization: basic('ops', 's3cret') } })).status, 200);
    assert.is((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
