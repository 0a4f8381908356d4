/**
 * Issue #5 acceptance at the agent level: a real agent process running 20 linux containers is
 * SIGKILLed and restarted on the same work dir. All 20 are recovered (same supervisor pids, cgroups
 * re-adopted), usage is still reported, and once they finish no cgroup of theirs remains.
 *
 * Named `root: cgroups:`; skipped with the reason printed where the linux containerizer cannot run.
 * Runs under a private cgroup root (`berth-agent-test-<pid>`) and temp dir that the finally block
 * removes whatever happened, killing any process still in them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WsListener } from '../../proto/transport/ws.js';
import { probeLinux } from '../../agent/containerizer/linux/index.js';
import { detectHierarchy } from '../../agent/containerizer/linux/cgroups/detect.js';
import { rootDirs } from '../../agent/containerizer/linux/cgroups/hierarchy.js';
import { removeCgroups } from './cgroup-cleanup.js';
import { FakeMaster, commandTask, waitFor } from './fake-master.js';
import { killEverythingUnder, pidAlive, startRunner, tempDir } from './harness.js';

const ROOT = `berth-agent-test-${process.pid}`;
const isRoot = process.getuid?.() === 0;
const probe = isRoot ? await probeLinux(ROOT) : { ok: false, reason: 'not running as root' };
if (!probe.ok) console.log(`\n[linux-recovery.test] SKIPPING root:/cgroups: test: ${probe.reason}`);

const startLinuxRunner = (master: string, workDir: string) => startRunner(master, workDir, { containerizer: 'linux', cgroupRoot: ROOT });

function killed(child: ChildProcess): Promise<void> {
  return new Promise((r) => { if (child.exitCode !== null || child.signalCode !== null) r(); else { child.once('exit', () => r()); child.kill('SIGKILL'); } });
}

interface TaskView { id: string; pid: number | null; alive: boolean; sandbox: string; container_id: string }

async function getJson<T>(endpoint: string, path: string): Promise<T> {
  return (await (await fetch(`http://${endpoint}${path}`)).json()) as T;
}


/** Where the linux containerizer cannot run, the test is reported SKIPPED (its reason printed above), never passed. */
const rootTest = (name: string, fn: () => Promise<void>): void => {
  if (probe.ok) test(name, fn);
  else test.skip(`${name} — skipped: ${probe.reason}`, fn);
};

rootTest('root: cgroups: SIGKILL of an agent running 20 linux containers; the restarted agent recovers all 20 (same pids, usage), and no cgroup remains after they finish', async () => {
  const workDir = tempDir();
  // Tasks run as `nobody`: they must reach their sandboxes.
  chmodSync(workDir, 0o755);
  const listener = new WsListener();
  const server: Server = createServer((_req, res) => { res.statusCode = 404; res.end(); });
  listener.attach(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const master = new FakeMaster(listener);
  const children: ChildProcess[] = [];
  try {
    const a1 = await startLinuxRunner(address, workDir);
    children.push(a1.child);
    await waitFor(() => master.registrations.length === 1, 'registration');
    const ids = Array.from({ length: 20 }, (_, i) => `lx-${i}`);
    for (const id of ids) {
      const t = commandTask(id, 'while [ ! -f "$MESOS_SANDBOX/go" ]; do sleep 0.05; done; echo done', { mem: 32 });
      t.command!.user = 'nobody';
      master.launch(t);
    }
    await waitFor(() => ids.every((id) => master.states(id).includes('TASK_RUNNING')), 'all 20 RUNNING', 30_000);
    const before = (await getJson<{ tasks: TaskView[] }>(a1.endpoint, '/state')).tasks;
    const pids = new Map(before.map((t) => [t.id, t.pid]));
    assert.is(pids.size, 20);
    const hier = (await detectHierarchy(ROOT))!;
    assert.is((await hier.listContainers()).length, 20, 'one cgroup per container');

    await killed(a1.child);
    assert.ok([...pids.values()].every((p) => pidAlive(p!)), 'containers outlive the agent');

    const a2 = await startLinuxRunner(address, workDir);
    children.push(a2.child);
    await waitFor(() => master.registrations.length === 2, 'reregistration');
    const rr = master.registrations[1]!.reregister!;
    const reported = new Map(rr.tasks!.map((t) => [t.task.task_id.value, t.state]));
    assert.ok(ids.every((id) => reported.get(id) === 'TASK_RUNNING'), 'the 20 tasks are reported running');
    const after = (await getJson<{ tasks: TaskView[] }>(a2.endpoint, '/state')).tasks;
    for (const id of ids) {
      const t = after.find((x) => x.id === id)!;
      assert.is(t.pid, pids.get(id), `${id} has the same supervisor pid`);
      assert.ok(t.alive, `${id} still alive`);
    }
    assert.is((await hier.listContainers()).length, 20, 'no cgroup lost or orphaned by the restart');
    // Usage still comes from the (re-adopted) cgroups.
    const stats = await getJson<{ executor_id: string; statistics: Record<string, number> }[]>(a2.endpoint, '/monitor/statistics');
    assert.is(stats.length, 20, 'usage of every recovered container');
    for (const s of stats) {
      assert.is(s.statistics['mem_limit_bytes'], 32 * 1024 * 1024, `${s.executor_id}: memory limit from its cgroup`);
      assert.ok((s.statistics['mem_total_bytes'] ?? 0) > 0 || (s.statistics['mem_rss_bytes'] ?? 0) > 0, `${s.executor_id}: memory usage read`);
      assert.ok((s.statistics['processes'] ?? 0) >= 1, `${s.executor_id}: pids.current read`);
    }

    // Let them finish: every exit is learned, every cgroup removed.
    for (const t of after) writeFileSync(join(t.sandbox, 'go'), '');
    await waitFor(() => ids.every((id) => master.states(id).includes('TASK_FINISHED')), 'all 20 FINISHED', 30_000);
    await waitFor(async () => (await hier.listContainers()).length === 0, 'no stray cgroup', 10_000);
    assert.equal(master.uniqueStates('lx-0'), ['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED'], 'no update lost or repeated');
  } finally {
    for (const c of children) await killed(c);
    killEverythingUnder(workDir);
    await removeCgroups(ROOT);
    listener.close();
    server.close();
    rmSync(workDir, { recursive: true, force: true });
  }
  assert.ok(rootDirs((await detectHierarchy(ROOT))!).every((d) => !existsSync(d)), 'the private cgroup root is gone');
});

test.run();
