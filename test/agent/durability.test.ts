/**
 * Durable before visible, on a real full filesystem: the agent's work dir is a small tmpfs that a
 * task fills. The terminal update of the task cannot be checkpointed: the agent must not report
 * it, nor go on as if it had — it exits (fatal), and once there is room again the restarted agent
 * recovers and reports how the task ended. Without that, the task looked RUNNING forever.
 *
 * Needs root (mount); reported SKIPPED with the reason elsewhere. The mount, the agent processes
 * and the tasks are removed in the finally block whatever happens.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTerminal } from '../../proto/types.js';
import { WsListener } from '../../proto/transport/ws.js';
import { FakeMaster, commandTask, waitFor } from './fake-master.js';
import { killEverythingUnder, startRunner } from './harness.js';

const skip = process.getuid?.() !== 0 ? 'needs root to mount a small tmpfs' : undefined;
if (skip) console.log(`\n[durability.test] SKIPPING: ${skip}`);

const exited = (c: ChildProcess): Promise<number | null> =>
  new Promise((r) => { if (c.exitCode !== null || c.signalCode !== null) r(c.exitCode); else c.once('exit', (code) => r(code)); });

(skip ? test.skip : test)('a checkpoint write failing on a full disk makes the agent exit, and no task is left falsely RUNNING after it recovers', async () => {
  const mnt = mkdtempSync(join(tmpdir(), 'berth-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0711', 'tmpfs', mnt]);
  const listener = new WsListener();
  const server: Server = createServer((_req, res) => { res.statusCode = 404; res.end(); });
  listener.attach(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const master = new FakeMaster(listener);
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const children: ChildProcess[] = [];
  try {
    const a1 = await startRunner(address, mnt);
    children.push(a1.child);
    await waitFor(() => master.registrations.length === 1, 'registration');
    // Fills the filesystem and waits; its end is what cannot be checkpointed.
    master.launch(commandTask('filler', 'head -c 8388608 /dev/zero > fill; while [ ! -f go ]; do sleep 0.05; done; exit 3'));
    await waitFor(() => master.states('filler').includes('TASK_RUNNING'), 'RUNNING');
    const runs = join(mnt, 'frameworks', 'fw-1', 'executors', 'filler', 'runs');
    const sandbox = join(runs, readdirSync(runs)[0]!);
    await waitFor(() => statfsSync(mnt).bavail === 0, 'the filesystem full');
    // The log's last page may still have room (tmpfs allocates whole pages): fill it with a
    // harmless record so the next append needs a page the filesystem no longer has.
    const log = join(mnt, 'meta', 'log');
    const slack = 4096 - (statSync(log).size % 4096);
    if (slack !== 4096) {
      const rec = '{"t":"forget","f":"pad","k":"pad"}';
      appendFileSync(log, rec + ' '.repeat(Math.max(0, slack - rec.length - 1)) + '\n');
    }
    writeFileSync(join(sandbox, 'go'), '');
    const code = await Promise.race([exited(a1.child), new Promise<string>((r) => setTimeout(() => r('still running after 20 s'), 20_000))]);
    assert.is(code, 70, 'the agent exits when it cannot make an update durable');
    assert.not.ok(master.states('filler').some(isTerminal), 'no terminal update was reported that was not durable');

    // Room again (an operator cleans up): the restarted agent recovers and reports the end.
    rmSync(join(sandbox, 'fill'), { force: true });
    const a2 = await startRunner(address, mnt);
    children.push(a2.child);
    await waitFor(() => master.states('filler').some(isTerminal), 'terminal update after recovery', 20_000);
    const end = master.last('filler')!.status;
    assert.is(end.state, 'TASK_FAILED', JSON.stringify(end));
  } finally {
    for (const c of children) { if (c.exitCode === null && c.signalCode === null) { c.kill('SIGKILL'); await exited(c); } }
    killEverythingUnder(mnt);
    listener.close();
    server.close();
    try { execFileSync('umount', ['-l', mnt]); } catch { /* not mounted */ }
    rmSync(mnt, { recursive: true, force: true });
  }
});

test.run();
