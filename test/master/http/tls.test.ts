/**
 * TLS with client-certificate checking, end to end on loopback: a master
 * started with --tls-cert/--tls-key/--tls-ca is reached by the SDK (native and
 * HTTP API) and by a real `berth agent` process presenting certificates, each
 * verifying the master's certificate; without a client certificate the TLS
 * handshake is refused. Certificates are made by `openssl` for the test
 * (skipped, with the reason, where it is not installed).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMaster, type RunningMaster } from '../../../master/main.js';
import { silentLogger } from '../../../proto/log.js';
import { WsDialer } from '../../../proto/transport/ws.js';
import { connect } from '../../../frameworks/sdk/index.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

let dir: string;
let m: RunningMaster;
const file = (n: string): string => path.join(dir, n);
const pem = (n: string): string => readFileSync(file(n), 'utf8');

/** A CA, a server certificate for 127.0.0.1/localhost, and client certificates (CN = principal). */
function makeCerts(): void {
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }); };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=berth-test-ca');
  writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const [name, cn, ext] of [['server', 'localhost', 'server.ext'], ['agent', 'agent-1', ''], ['fw', 'framework-1', '']] as const) {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', ...(ext ? ['-extfile', ext] : []));
  }
}

if (!hasOpenssl) {
  test.skip('TLS tests: SKIPPED because openssl is not installed (needed to make test certificates)', () => undefined);
} else {
  test.before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'berth-tls-'));
    makeCerts();
    m = await startMaster({
      workDir: dir, port: 0, log: silentLogger,
      tlsCertFile: file('server.crt'), tlsKeyFile: file('server.key'), tlsCaFile: file('ca.crt'),
      authenticateFrameworks: true, authenticateAgents: true,
    });
  });

  test.after(async () => {
    await m?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the SDK reaches a TLS master with a client certificate (native and HTTP API), verifying the master certificate', async () => {
    const tls = { ca: pem('ca.crt'), cert: pem('fw.crt'), key: pem('fw.key') };
    for (const master of [`berths://127.0.0.1:${m.port}`, `https://127.0.0.1:${m.port}`]) {
      const fw = await connect({ master, framework: { name: 'tls', failover_timeout: 0 }, tls, reconnect: false, connectTimeoutMs: 5000, log: silentLogger });
      try {
        assert.ok(fw.frameworkId, `${master}: subscribed`);
        assert.is(m.master.framework(fw.frameworkId!)?.info.principal, 'framework-1', 'the certificate CN is the principal');
      } finally { await fw.teardown().catch(() => undefined); }
    }
  });

  test('without a client certificate, or without trusting the master CA, the connection is refused', async () => {
    const noCert = new WsDialer(`127.0.0.1:${m.port}`, { tls: { ca: pem('ca.crt') } });
    let err = '';
    try { (await noCert.dialFramework()).close(); } catch (e) { err = (e as Error).message; }
    assert.ok(err !== '', 'refused without a client certificate');
    const untrusted = new WsDialer(`127.0.0.1:${m.port}`, { tls: { cert: pem('fw.crt'), key: pem('fw.key') } });
    err = '';
    try { (await untrusted.dialFramework()).close(); } catch (e) { err = (e as Error).message; }
    assert.match(err, /self.signed|unable to verify|certificate/i, 'the master certificate is verified');
  });

  test('a real `berth agent` with --tls-ca/--tls-cert/--tls-key registers with the TLS master', async () => {
    const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../cli/main.js');
    const child = spawn(process.execPath, [cli, 'agent', '--master', `127.0.0.1:${m.port}`, '--work-dir', file('agent-work'), '--port', '0',
      '--resources', 'cpus:1;mem:256;disk:100', '--containerizer', 'posix',
      '--tls-ca', file('ca.crt'), '--tls-cert', file('agent.crt'), '--tls-key', file('agent.key')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      const end = Date.now() + 20_000;
      while (m.master.agents.size === 0 && Date.now() < end && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const agent = [...m.master.agents.values()][0];
      assert.ok(agent, `agent registered (stderr: ${stderr.slice(-500)})`);
      assert.is(agent!.principal, 'agent-1');
      assert.is(agent!.status, 'ACTIVE');
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    }
  });
}

test.run();
