/**
 * The example frameworks against a real master with fake agents: hello and
 * raw-http run one task to FINISHED; many-tasks (issue #3's acceptance run)
 * finishes N=200 short tasks over both transports with no failures; the
 * work-queue retries a flaky command and gives up on a broken one. Also the
 * raw example's hand-written RecordIO reader against 1-byte chunks.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeRecord } from '../../proto/recordio.js';
import type { TaskInfo } from '../../proto/types.js';
import { hello } from '../../frameworks/examples/hello.js';
import { runManyTasks } from '../../frameworks/examples/many-tasks.js';
import { rawHttp, RecordIOReader } from '../../frameworks/examples/raw-http.js';
import { runWorkQueue } from '../../frameworks/examples/work-queue.js';
import { defaultScript, startCluster, type TaskStep, type TestCluster } from '../helpers/cluster.js';

// Commands containing `flaky` fail on their first attempt; `exit 3` always fails.
const attempts = new Map<string, number>();
function script(t: TaskInfo): TaskStep[] {
  const cmd = t.command?.value ?? '';
  const n = (attempts.get(cmd) ?? 0) + 1;
  attempts.set(cmd, n);
  if (cmd.includes('exit 3') || (cmd.includes('flaky') && n === 1)) {
    return [{ state: 'TASK_RUNNING', afterMs: 0 }, { state: 'TASK_FAILED', afterMs: 5, message: 'Command exited with status 3' }];
  }
  return defaultScript(t);
}

const s = suite('example frameworks');
let c: TestCluster;
const quiet = (): void => undefined;
s.before(async () => { c = await startCluster({ agents: 4, script }); });
s.after(async () => { await c?.stop(); });

s('hello finishes its task over HTTP and over the native transport', async () => {
  const log = console.log;
  console.log = quiet;
  try {
    assert.is(await hello(c.url), 'TASK_FINISHED');
    assert.is(await hello(`berth://${c.hostPort}`), 'TASK_FINISHED');
  } finally { console.log = log; }
});

s('raw-http (fetch only) runs a task, acknowledges, reconciles and tears down', async () => {
  const lines: string[] = [];
  assert.is(await rawHttp(c.url, 'echo raw', (l) => lines.push(l)), 'TASK_FINISHED');
  assert.ok(lines.some((l) => l.startsWith('UPDATE raw-1 TASK_RUNNING')));
  assert.ok(lines.some((l) => l.includes('REASON_RECONCILIATION')));
});

s('the raw example\'s RecordIO reader decodes 1 byte at a time', () => {
  const recs = ['{"type":"HEARTBEAT"}', '', 'x'.repeat(300), '{"a":"é"}'];
  const bytes = Buffer.concat(recs.map((r) => encodeRecord(r)));
  const reader = new RecordIOReader();
  const out: string[] = [];
  for (const b of bytes) for (const r of reader.push(Uint8Array.of(b))) out.push(Buffer.from(r).toString());
  assert.equal(out, recs);
});

for (const [label, master] of [['HTTP API', (cl: TestCluster) => cl.url], ['native', (cl: TestCluster) => `berth://${cl.hostPort}`]] as const) {
  s(`many-tasks: N=200 'sleep 0.2; echo ok' all FINISHED over the ${label}, each update acknowledged`, async () => {
    const r = await runManyTasks({ master: master(c), n: 200, timeoutMs: 30_000 });
    assert.is(r.timedOut, false);
    assert.is(r.failed, 0, JSON.stringify(r.failures));
    assert.is(r.finished, 200);
    assert.is(r.launched, 200);
    assert.ok(r.acknowledged >= 400, 'RUNNING and FINISHED acknowledged for each');
    for (let i = 0; i < 100 && c.agents.some((a) => a.unacked.size > 0); i++) await new Promise((x) => setTimeout(x, 10));
    assert.ok(c.agents.every((a) => a.unacked.size === 0), 'no update left unacknowledged');
  });
}

s('work-queue retries a flaky command and gives up on a broken one', async () => {
  const results = await runWorkQueue({ master: c.url, commands: ['echo one', 'echo flaky two', 'exit 3'], retries: 1, backoffMs: 20 });
  assert.equal(results.map((r) => [r.cmd, r.state, r.attempts]), [
    ['echo one', 'TASK_FINISHED', 1],
    ['echo flaky two', 'TASK_FINISHED', 2],
    ['exit 3', 'TASK_FAILED', 2],
  ]);
});

s.run();
