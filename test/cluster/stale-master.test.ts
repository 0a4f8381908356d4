/**
 * chaos: a stale master (older epoch) sends a Launch to a real agent process
 * over NATS; the agent ignores it. The same Launch stamped with the current
 * epoch is carried out, so the drop is the epoch check, not a broken channel.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { headers } from 'nats';
import { NatsCluster } from '../../cli/nats-server.js';
import { encodeMasterToAgent } from '../../proto/codec.js';
import { NatsLeaderDetector } from '../../proto/transport/nats-detector.js';
import { connectNats } from '../../proto/transport/nats.js';
import type { MasterToAgent } from '../../proto/types.js';
import { checked, until } from './harness.js';
import { json, Procs } from './procs.js';

test('chaos: a launch from a master with an older epoch is ignored by a real agent over NATS', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-stale-'));
  const procs = new Procs();
  let nats: NatsCluster | undefined;
  const ncs: { close(): Promise<void> }[] = [];
  try {
    nats = await NatsCluster.start({ nodes: 1, dir: path.join(dir, 'nats') });
    const m = procs.berth('master', ['master', '--nats', nats.urls[0]!, '--port', '0']);
    const url = (await m.waitFor(/berth master at (\S+)/, 60_000))[1]!;
    const agent = procs.berth('agent', ['agent', '--nats', nats.urls[0]!, '--port', '0', '--containerizer', 'posix', '--work-dir', path.join(dir, 'agent'), '--resources', 'cpus:2;mem:1024']);
    await until('agent registered', async () => ((await json<{ slaves: unknown[] }>(`${url}/state`).catch(() => ({ slaves: [] }))).slaves.length === 1), 60_000);
    const nc = await connectNats({ servers: nats.urls });
    ncs.push(nc);
    const det = await NatsLeaderDetector.start(nc);
    ncs.push(det);
    const epoch = (await det.waitForLeader(10_000)).epoch;
    // Learn the agent's session subject from the master's own traffic (pings, heartbeats).
    let inbox = '';
    const sub = nc.subscribe('berth.agent.>', { callback: (_e, msg) => { inbox ||= msg.subject; } });
    await until('a master frame to the agent', () => inbox !== '', 20_000);
    sub.unsubscribe();
    const agentId = (await json<{ slaves: { id: string }[] }>(`${url}/state`)).slaves[0]!.id;
    const launch = (marker: string, id: string): MasterToAgent => ({
      version: 1,
      launch: {
        framework: { user: 'root', name: 'intruder', id: { value: 'fw-stale' } },
        task: {
          name: id, task_id: { value: id }, agent_id: { value: agentId },
          resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 0.1 } }, { name: 'mem', type: 'SCALAR', scalar: { value: 16 } }],
          command: { value: `touch ${marker}`, shell: true },
        },
      },
    });
    const send = (m2: MasterToAgent, ep: number): void => {
      const h = headers();
      h.set('B-Epoch', String(ep));
      nc.publish(inbox, encodeMasterToAgent(m2), { headers: h });
    };
    const stale = path.join(dir, 'stale-ran');
    const fresh = path.join(dir, 'fresh-ran');
    send(launch(stale, 'stale-task'), epoch - 1);
    send(launch(fresh, 'fresh-task'), epoch);
    await until('the current-epoch launch ran', () => existsSync(fresh), 30_000);
    assert.not.ok(existsSync(stale), 'the stale-epoch launch did not run');
    assert.match(agent.out, /older epoch/, 'the agent logged the dropped frame');
    checked(`launch stamped epoch ${epoch - 1} dropped by the agent; the same launch at epoch ${epoch} ran`);
  } finally {
    for (const c of ncs.reverse()) await c.close().catch(() => {});
    await procs.killAll();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
