/**
 * Heap cost of the master's state at scale: bytes per registered agent and per
 * running task, measured on the real Master (in-process transport, manual
 * clock) after full garbage collections. Used by `npm run bench -- allocator`.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { ManualClock } from '../proto/clock.js';
import { MemoryNetwork } from '../proto/transport/memory.js';
import { silentLogger } from '../proto/log.js';
import { Master } from '../master/master.js';
import { MemoryRegistry } from '../master/registry/types.js';
import { SimAgent, holdScript } from '../sim/agent.js';
import type { Event, Offer, TaskInfo } from '../proto/types.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

async function settle(n = 3): Promise<void> { for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r)); }

function heap(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

export interface HeapFigures { perAgent: number; perTask: number; agents: number; tasks: number }

export async function measureMasterHeap(agents = 10_000, tasksPerAgent = 10, progress?: (m: string) => void): Promise<HeapFigures> {
  const clock = new ManualClock();
  const net = new MemoryNetwork();
  const master = new Master({ clock, registry: new MemoryRegistry(), log: silentLogger, allocationIntervalMs: 3_600_000, agentPingIntervalMs: 3_600_000 });
  master.listen(net);
  await master.start();
  const base = heap();

  // Simulated agents (sim/agent.ts): RUNNING at once on launch, no resend timers (nothing is lost in
  // process). Their own objects count in the per-agent figure, as the hand-written stub's did.
  const agentsList: SimAgent[] = [];
  const resources = 'cpus:24;mem:4096;ports:[31000-32000]';
  for (let i = 0; i < agents; i++) {
    const a = new SimAgent({ dialer: net, hostname: `host-${i}`, resources, script: holdScript, resendMs: 0, clock });
    void a.connect();
    agentsList.push(a);
    if (i % 1000 === 999) await settle(2);
  }
  await settle(5);
  progress?.(`${master.agents.size} agents registered`);
  const afterAgents = heap();

  let launched = 0;
  const sink = {
    kind: 'bench',
    send(ev: Event) {
      if (ev.type === 'OFFERS') pending.push(...(ev.offers!.offers ?? []));
      if (ev.type === 'UPDATE' && ev.update!.status.uuid) {
        const s = ev.update!.status;
        queueMicrotask(() => master.receive(fid, { type: 'ACKNOWLEDGE', framework_id: { value: fid }, acknowledge: { agent_id: s.agent_id!, task_id: s.task_id, uuid: s.uuid! } }));
      }
    },
    close() {},
  };
  const pending: Offer[] = [];
  const fid = await master.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'bench', name: 'heap', roles: ['*'], capabilities: [{ type: 'MULTI_ROLE' }] } } }, sink);
  await settle(3);
  for (const offer of pending.splice(0)) {
    const tasks: TaskInfo[] = [];
    for (let t = 0; t < tasksPerAgent; t++) {
      const id = `task-${launched++}`;
      tasks.push({
        name: id, task_id: { value: id }, agent_id: offer.agent_id,
        resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 1 } }, { name: 'mem', type: 'SCALAR', scalar: { value: 128 } }],
        command: { value: 'sleep 1000' },
      });
    }
    master.receive(fid, { type: 'ACCEPT', framework_id: { value: fid }, accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: tasks } }], filters: { refuse_seconds: 3600 } } });
    if (launched % 10_000 === 0) await settle(3);
  }
  await settle(10);
  let running = 0;
  for (const a of master.agents.values()) for (const t of a.tasks.values()) if (t.state === 'TASK_RUNNING') running++;
  progress?.(`${running} tasks running`);
  const afterTasks = heap();
  await master.stop();
  return {
    agents: master.agents.size,
    tasks: running,
    perAgent: (afterAgents - base) / agents,
    perTask: (afterTasks - afterAgents) / Math.max(1, running),
  };
}
