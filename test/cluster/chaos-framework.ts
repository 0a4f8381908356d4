/**
 * A framework written as a careful Mesos framework should be, used by the chaos
 * tests: it launches N tasks, resubscribes with its id after every master
 * failover, reconciles after each (re)subscription — implicitly, then
 * explicitly every second for tasks without an answer — and relaunches a task
 * only when the master says it is LOST and the task never reported being alive.
 * It records everything the tests assert on.
 */
import { connect, isTerminal, OfferPool, task, type Dialer, type TaskSpec, type TaskState } from '../../frameworks/sdk/index.js';

export interface ChaosResult {
  frameworkIds: Set<string>;
  subscriptions: number;
  /** Task id → terminal state it ended in (first terminal answer). */
  terminal: Map<string, TaskState>;
  /** FINISHED updates per task (distinct uuids): must be 1 each. */
  finishedCount: Map<string, number>;
  /** Tasks the master answered LOST (or GONE/UNKNOWN) although they had reported being alive. */
  lostWhileLive: string[];
  /** Tasks relaunched because the master said LOST before they ever ran (their launch was lost in a failover). */
  relaunched: string[];
  launches: number;
  timedOut: boolean;
}

export interface ChaosOptions {
  dialer: Dialer | string;
  n: number;
  cmd?: string;
  /** Called whenever more tasks were launched (so a test can kill the leader mid-launch). */
  onLaunched?: (total: number) => void;
  /** Tasks placed per OFFERS event (default 25). */
  perRound?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}

const LIVE: TaskState[] = ['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED'];
const LOSTLIKE: TaskState[] = ['TASK_LOST', 'TASK_GONE', 'TASK_UNKNOWN', 'TASK_DROPPED', 'TASK_UNREACHABLE', 'TASK_GONE_BY_OPERATOR'];

export async function runChaosFramework(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? (() => undefined);
  const r: ChaosResult = { frameworkIds: new Set(), subscriptions: 0, terminal: new Map(), finishedCount: new Map(), lostWhileLive: [], relaunched: [], launches: 0, timedOut: false };
  const specs = new Map<string, TaskSpec>();
  for (let i = 0; i < o.n; i++) {
    const id = `chaos-${i}`;
    specs.set(id, task({ id, cmd: o.cmd ?? 'sleep 2; echo ok', cpus: 0.02, mem: 4 }));
  }
  const pending = [...specs.keys()];
  const agentOf = new Map<string, string>();
  const live = new Set<string>();
  const answered = new Set<string>();
  const seenUuid = new Set<string>();
  const fw = await connect({ master: o.dialer, framework: { name: 'chaos', failover_timeout: 3600 }, autoAcknowledge: false, connectTimeoutMs: 60_000, reconnect: { baseMs: 100, maxMs: 1000 } });
  r.frameworkIds.add(fw.frameworkId);
  r.subscriptions = 1;
  let reconcileLoop: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(() => { r.timedOut = true; resolve(); }, o.timeoutMs ?? 180_000);
    const check = (): void => { if (r.terminal.size >= o.n) { clearTimeout(timer); resolve(); } };
    const outstanding = (): string[] => [...agentOf.keys()].filter((id) => !r.terminal.has(id) && !answered.has(id));
    reconcileLoop = setInterval(() => {
      if (!fw.connected) return;
      const ids = outstanding();
      if (ids.length) void fw.reconcile(ids.map((taskId) => ({ taskId, agentId: agentOf.get(taskId) }))).catch(() => {});
    }, 1000);
    fw.on('subscribed', (info) => {
      r.frameworkIds.add(info.frameworkId);
      if (!info.reconnected) return;
      r.subscriptions++;
      log(`resubscribed as ${info.frameworkId}`);
      answered.clear();
      void fw.reconcile([]).catch(() => {});
      void fw.revive().catch(() => {});
    });
    fw.on('offers', async (offers) => {
      const pool = new OfferPool(offers);
      const placed: string[] = [];
      // A few tasks per offer round, so launches spread over time and the leader dies mid-stream.
      while (pending.length > 0 && placed.length < (o.perRound ?? 25) && pool.place(specs.get(pending[0]!)!)) placed.push(pending.shift()!);
      try {
        const launched = await fw.acceptPool(pool, { refuseSeconds: pending.length > 0 ? 0 : 30 });
        for (const t of launched) agentOf.set(t.task_id.value, t.agent_id.value);
        r.launches += launched.length;
        if (launched.length) o.onLaunched?.(r.launches);
      } catch {
        // The ACCEPT did not reach a master (failover): those tasks were never launched.
        pending.unshift(...placed);
      }
    });
    fw.on('update', async (st) => {
      if (st.uuid) { await fw.acknowledge(st).catch(() => {}); }
      const id = st.task_id.value;
      if (!specs.has(id)) return;
      answered.add(id);
      if (st.uuid && seenUuid.has(st.uuid)) return;
      if (st.uuid) seenUuid.add(st.uuid);
      if (st.state === 'TASK_FINISHED' && st.uuid) r.finishedCount.set(id, (r.finishedCount.get(id) ?? 0) + 1);
      if (LIVE.includes(st.state)) live.add(id);
      if (LOSTLIKE.includes(st.state)) {
        if (live.has(id) && !r.terminal.has(id)) { r.lostWhileLive.push(`${id}:${st.state}:${st.reason ?? ''}`); log(`LOST for live task ${id}: ${st.state} ${st.reason ?? ''} ${st.message ?? ''}`); }
        else if (!live.has(id) && !r.terminal.has(id)) {
          // Never ran: its launch was lost with the old leader. Launch it again.
          agentOf.delete(id);
          log(`relaunch ${id} after ${st.state} ${st.reason ?? ''} ${st.message ?? ''}`);
          r.relaunched.push(id);
          pending.push(id);
          void fw.revive().catch(() => {});
          return;
        }
      }
      if (isTerminal(st.state) && !r.terminal.has(id) && (st.state !== 'TASK_LOST' || live.has(id))) {
        r.terminal.set(id, st.state);
        check();
      }
    });
  });
  await done;
  clearInterval(reconcileLoop);
  await fw.teardown().catch(() => fw.close());
  return r;
}
