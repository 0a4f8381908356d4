/**
 * A small real cluster for end-to-end tests of what the agent runs: a real
 * master on a loopback port (HTTP + WebSocket, real codecs), one real agent
 * process (test/agent/agent-runner.ts, posix containerizer) and a framework on
 * the SDK over the Mesos HTTP API. `cleanup()` tears the framework down (the
 * agent kills its tasks), kills the agent and anything left under the work
 * dir, and removes it — also when the test failed.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startMaster, type RunningMaster } from '../../../master/main.js';
import { silentLogger } from '../../../proto/log.js';
import { connect, taskInfo, type Framework, type Offer, type TaskInfo, type TaskSpec, type TaskStatus } from '../../../frameworks/sdk/index.js';
import { killEverythingUnder, startRunner, tempDir } from '../harness.js';
import { removeCgroups } from '../cgroup-cleanup.js';

export interface Cluster {
  workDir: string;
  master: RunningMaster;
  fw: Framework;
  /** Every update received, in order. */
  updates: TaskStatus[];
  /** Launches one task built by `build` from the next offer (which is held until then). */
  launch(spec: TaskSpec, extra?: (info: TaskInfo, ports: number[]) => Partial<TaskInfo>): Promise<TaskInfo>;
  /** Resolves with the first update of `taskId` matching `pred` (already received or future); rejects after `ms`. */
  waitFor(taskId: string, pred: (s: TaskStatus) => boolean, what: string, ms?: number): Promise<TaskStatus>;
  of(taskId: string): TaskStatus[];
  /** SIGKILLs the agent process (its tasks keep running) and starts a new one on the same work dir. */
  restartAgent(): Promise<void>;
  cleanup(): Promise<void>;
}

/** `linux`: the agent runs the linux containerizer under this private cgroup root (removed by cleanup). */
export async function startCluster(name: string, opts: { linuxCgroupRoot?: string } = {}): Promise<Cluster> {
  const workDir = tempDir(`berth-${name}-`);
  let agent: ChildProcess | undefined;
  let fw: Framework | undefined;
  const master = await startMaster({ workDir: join(workDir, 'master'), port: 0, allocationIntervalMs: 50, log: silentLogger });
  const extra = opts.linuxCgroupRoot ? { containerizer: 'linux', cgroupRoot: opts.linuxCgroupRoot } : {};
  const cleanup = async (): Promise<void> => {
    if (fw) { await fw.teardown().catch(() => undefined); fw.close(); }
    // The teardown makes the agent kill the framework's tasks; give it a moment, then stop it.
    await new Promise((r) => setTimeout(r, 200));
    agent?.kill('SIGKILL');
    await master.stop().catch(() => undefined);
    killEverythingUnder(workDir);
    if (opts.linuxCgroupRoot) await removeCgroups(opts.linuxCgroupRoot);
    rmSync(workDir, { recursive: true, force: true });
  };
  try {
    agent = (await startRunner(`127.0.0.1:${master.port}`, join(workDir, 'agent'), extra)).child;
    fw = await connect({ master: master.url, framework: { name, capabilities: ['TASK_KILLING_STATE'] }, log: silentLogger });
  } catch (e) {
    await cleanup();
    throw e;
  }
  const f = fw;
  const updates: TaskStatus[] = [];
  const waiters = new Set<() => void>();
  f.on('update', (s) => { updates.push(s); for (const w of [...waiters]) w(); });
  const offers: Offer[] = [];
  const offerWaiters: ((o: Offer) => void)[] = [];
  f.on('offers', (list) => {
    for (const o of list) {
      const w = offerWaiters.shift();
      if (w) w(o); else offers.push(o);
    }
  });
  f.on('rescind', (offerId) => {
    const i = offers.findIndex((o) => o.id.value === offerId);
    if (i >= 0) offers.splice(i, 1);
  });
  const nextOffer = (): Promise<Offer> => {
    const o = offers.shift();
    return o ? Promise.resolve(o) : new Promise((r) => offerWaiters.push(r));
  };
  return {
    workDir, master, fw: f, updates,
    async launch(spec, extra) {
      const offer = await nextOffer();
      const info = taskInfo(spec, offer);
      const ports = (info.command?.environment?.variables ?? []).filter((v) => /^PORT\d+$/.test(v.name)).map((v) => Number(v.value));
      const full = { ...info, ...(extra?.(info, ports) ?? {}) };
      // Decline the other offers' leftovers later: one offer, one task.
      await f.launch(offer, full, { refuseSeconds: 0.1 });
      return full;
    },
    waitFor(taskId, pred, what, ms = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hit = updates.find((s) => s.task_id.value === taskId && pred(s));
          if (hit) { waiters.delete(check as () => void); clearTimeout(timer); resolve(hit); return true; }
          return false;
        };
        const timer = setTimeout(() => {
          waiters.delete(check as () => void);
          const seen = updates.filter((s) => s.task_id.value === taskId).map((s) => `${s.state}${s.healthy === undefined ? '' : ` healthy=${s.healthy}`} ${s.reason ?? ''} ${s.message ?? ''}`);
          reject(new Error(`timed out waiting for ${what} of ${taskId}; seen:\n  ${seen.join('\n  ')}`));
        }, ms);
        if (!check()) waiters.add(check as () => void);
      });
    },
    of(taskId) { return updates.filter((s) => s.task_id.value === taskId); },
    async restartAgent() {
      const old = agent!;
      await new Promise<void>((r) => { old.once('exit', () => r()); old.kill('SIGKILL'); });
      agent = (await startRunner(`127.0.0.1:${master.port}`, join(workDir, 'agent'), extra)).child;
    },
    cleanup,
  };
}

/** A node one-liner serving HTTP on $PORT0: /health answers 200 for the first `healthyFor` requests, then 503. */
export function httpServerCmd(healthyFor = 1e9): string {
  const js = `let n=0;require("http").createServer((q,s)=>{s.statusCode=q.url==="/health"&&n++<${healthyFor}?200:503;s.end()}).listen(+process.env.PORT0,"127.0.0.1")`;
  return `exec ${process.execPath} -e '${js}'`;
}
