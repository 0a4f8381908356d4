/**
 * Checks of a task in a linux container (pid, mount, uts, ipc namespaces and a
 * cgroup) run inside that container: a real master, a real agent process with
 * the linux containerizer under a private cgroup root, a framework on the SDK.
 *
 * Named `root: cgroups:`; skipped with the reason printed where the linux
 * containerizer cannot run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { probeLinux } from '../../../agent/containerizer/linux/index.js';
import { startCluster } from './cluster.js';

const ROOT = `berth-checks-test-${process.pid}`;
const probe = process.getuid?.() === 0 ? await probeLinux(ROOT) : { ok: false, reason: 'not running as root' };
if (!probe.ok) console.log(`\n[checks/linux.test] SKIPPING root:/cgroups: test: ${probe.reason}`);

const name = 'root: cgroups: a COMMAND health check of a linux container runs in the task\'s own pid and mount namespaces and working directory, as its user';
if (!probe.ok) {
  test.skip(`${name} (SKIPPED: ${probe.reason})`, () => undefined);
} else {
  test(name, async () => {
    const c = await startCluster('checks-linux', { linuxCgroupRoot: ROOT });
    try {
      // The task records its namespaces in its working directory; the check passes only if it
      // runs in the same ones and finds that file in its own working directory.
      const t = await c.launch({ name: 'ns', cmd: 'readlink /proc/self/ns/pid /proc/self/ns/mnt > ns; exec sleep 60', cpus: 0.1, mem: 64, user: 'nobody' }, () => ({
        health_check: { type: 'COMMAND', command: { value: 'test "$(id -un)" = nobody && test -s ns && test "$(readlink /proc/self/ns/pid /proc/self/ns/mnt)" = "$(cat ns)"' }, delay_seconds: 0, interval_seconds: 0.2, grace_period_seconds: 20 },
      }));
      const id = t.task_id.value;
      const healthy = await c.waitFor(id, (s) => s.healthy === true, 'a healthy update');
      assert.is(healthy.reason, 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED');
      assert.not.ok(c.of(id).some((s) => s.healthy === false), 'never unhealthy');
      await c.fw.kill(id);
      await c.waitFor(id, (s) => s.state === 'TASK_KILLED', 'the kill');
    } finally {
      await c.cleanup();
    }
  });
}

const fetchName = 'root: cgroups: URIs are fetched into a linux container\'s sandbox as the task\'s user before its command runs';
if (!probe.ok) {
  test.skip(`${fetchName} (SKIPPED: ${probe.reason})`, () => undefined);
} else {
  test(fetchName, async () => {
    const c = await startCluster('fetch-linux', { linuxCgroupRoot: ROOT });
    const files = join(c.workDir, 'served');
    mkdirSync(join(files, 'app'), { recursive: true });
    writeFileSync(join(files, 'app', 'config.txt'), 'from the archive\n');
    execFileSync('tar', ['-czf', join(files, 'app.tar.gz'), '-C', files, 'app']);
    const srv = http.createServer((req, res) => { if (req.url === '/app.tar.gz') res.end(readFileSync(join(files, 'app.tar.gz'))); else { res.statusCode = 404; res.end(); } });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/app.tar.gz`;
      // test -O: the extracted file is owned by the user the command runs as.
      const t = await c.launch({ name: 'reader', cmd: 'test "$(id -un)" = nobody && test -O app/config.txt && grep -q "from the archive" app/config.txt', cpus: 0.1, mem: 64, uris: [url], user: 'nobody' });
      const end = await c.waitFor(t.task_id.value, (s) => ['TASK_FINISHED', 'TASK_FAILED', 'TASK_ERROR'].includes(s.state), 'the end');
      assert.is(end.state, 'TASK_FINISHED', end.message);
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
      await c.cleanup();
    }
  });
}

test.run();
