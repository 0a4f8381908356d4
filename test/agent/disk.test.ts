/**
 * Disk as Mesos' disk/du: a task writing past its `disk` is failed with the disk reason; usage is
 * in /monitor/statistics.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commandTask, waitFor } from './fake-master.js';
import { startHarness } from './harness.js';

test('a task writing past its disk is failed with REASON_CONTAINER_LIMITATION_DISK while one within it runs on, with usage reported', async () => {
  const h = await startHarness({ agent: { diskCheckMs: 50 } });
  try {
    await waitFor(() => h.agent.state === 'running', 'registered');
    h.master.launch(commandTask('small', 'head -c 1048576 /dev/urandom > data; sleep 300', { disk: 8 }));
    h.master.launch(commandTask('hog', 'head -c 20971520 /dev/urandom > data; sleep 300', { disk: 8 }));
    await waitFor(() => h.master.states('hog').includes('TASK_FAILED'), 'hog FAILED');
    const st = h.master.last('hog')!.status;
    assert.is(st.reason, 'REASON_CONTAINER_LIMITATION_DISK');
    assert.match(st.message ?? '', /exceeds the disk quota of 8\.0 MiB/);
    let stats: Record<string, number> | undefined;
    await waitFor(async () => {
      stats = (await h.agent.statistics()).find((e) => e.executor_id === 'small')?.statistics as Record<string, number> | undefined;
      return (stats?.['disk_used_bytes'] ?? 0) >= 1048576;
    }, 'usage of the small task');
    assert.is(stats!['disk_limit_bytes'], 8 * 1048576);
    assert.not.ok(h.master.states('small').some((s) => s !== 'TASK_STARTING' && s !== 'TASK_RUNNING'), 'the task within its quota runs on');
  } finally {
    await h.cleanup();
  }
});

test.run();
