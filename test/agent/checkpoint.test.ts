/**
 * The checkpoint's files stay private: meta/ and meta/runs/ 0700, the log and agent.json 0600,
 * also after compaction rewrites the log (it holds every TaskInfo, environment secrets included).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../../agent/checkpoint.js';
import { silentLogger } from '../../proto/log.js';
import { commandTask } from './fake-master.js';
import { tempDir } from './harness.js';

const mode = (p: string): number => statSync(p).mode & 0o777;

test('after compaction every checkpoint file is 0600 and meta/ is 0700, even when an older version left them open', async () => {
  const dir = tempDir();
  try {
    // An older agent's leftovers: world-readable meta/ and log.
    mkdirSync(join(dir, 'meta', 'runs'), { recursive: true, mode: 0o755 });
    chmodSync(join(dir, 'meta'), 0o755);
    writeFileSync(join(dir, 'meta', 'log'), '', { mode: 0o644 });
    chmodSync(join(dir, 'meta', 'log'), 0o644);
    const cp = new Checkpoint(dir, { log: silentLogger, compactBytes: 4096 });
    await cp.recover();
    await cp.writeAgent({ agent_id: 'a1', boot_id: 'b' });
    const secret = { SECRET: 'hunter2' };
    for (let i = 0; i < 200; i++) {
      const task = commandTask(`t${i}`, 'true', { env: secret });
      await cp.writeTask({ framework_id: 'fw', executor_id: `t${i}`, container_id: `c${i}`, sandbox: '/x', run_dir: cp.runDir(`c${i}`), task });
      await cp.removeTask('fw', `t${i}`);
    }
    await cp.drain();
    assert.ok(cp.stats.compactions > 0, 'the log was compacted');
    assert.is(mode(join(dir, 'meta')), 0o700);
    assert.is(mode(join(dir, 'meta', 'runs')), 0o700);
    assert.is(mode(join(dir, 'meta', 'log')), 0o600);
    assert.is(mode(join(dir, 'meta', 'agent.json')), 0o600);
    await cp.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
