/**
 * The `linux` containerizer: each task runs as pid 1 of its own pid, mount,
 * uts and ipc namespaces (optionally network), inside a cgroup per container
 * (cpu, memory, pids, freezer; v1 or v2), under a per-container C supervisor
 * (berth-shim) that outlives the agent and records the exit.
 *
 * Container lifecycle and the states a Container goes through:
 *   launch  → 'running'  cgroup created and limited, supervisor reported the task exec'd
 *   finalize→ 'ending'   supervisor gone: exit record read, OOM verdict and final usage
 *                        taken from the cgroup, leftovers killed, cgroup removed
 *           → 'ended'    wait() resolved; usage() returns the final snapshot
 * Invariants:
 *  - A cgroup under `<cgroupRoot>` exists only for a container that is running or
 *    ending here, or is an orphan that recover() destroys.
 *  - finalize runs once per container, and only after the supervisor has exited,
 *    so the exit record (written before the supervisor exits) is complete.
 *  - The OOM verdict is read before the cgroup is removed.
 */
import { chmod, chown, mkdir, open, readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../../proto/errors.js';
import type { ResourceStatistics } from '../../../proto/types.js';
import type { Containerizer, ContainerExit, ContainerRecord, ContainerSpec } from '../types.js';
import { capabilityMask } from './capabilities.js';
import { cpuSubsystem } from './cgroups/cpu.js';
import { detectHierarchy } from './cgroups/detect.js';
import { freeze, killAll, signalAll, thaw } from './cgroups/freezer.js';
import type { CgroupFs } from './cgroups/fs.js';
import { removeRootDirs, type CgroupHandle, type Hierarchy, type Limitation, type Subsystem } from './cgroups/hierarchy.js';
import { memorySubsystem } from './cgroups/memory.js';
import { pidsSubsystem } from './cgroups/pids.js';
import { V2Hierarchy } from './cgroups/v2.js';
import { bootId, catchesSigterm, isSameProcess, readStat } from '../../proc.js';
import { readExitRecord } from '../files.js';
import { locateShim, shimArgs, type Engine, type ShimLaunch, type Started } from './shim.js';
import { ShimServer } from '../shim-server.js';
import { prepareSandbox } from '../files.js';
import { resolveUser } from './users.js';
import { USERNS_BLOCK, UsernsBlocks } from './userns.js';

/** Default pool of host ids for root tasks: 512 blocks of 65,536 from 2^20. */
export const DEFAULT_USERNS_POOL = { start: 1 << 20, count: 512 * USERNS_BLOCK } as const;

export { probeLinux, type LinuxProbe } from './probe.js';

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string, fields?: object) => void;

export interface LinuxContainerizerOptions {
  /** Name of Berth's sub-hierarchy in every cgroup hierarchy (default 'berth'). Nothing else may live there. */
  cgroupRoot?: string;
  /** Hard-cap cpu with CFS quota = cpus × 100 ms per 100 ms (Mesos --cgroups_enable_cfs). */
  enableCfs?: boolean;
  /** pids.max per container (default 1024; 0 = unlimited). */
  pidsMax?: number;
  /**
   * pids.max on the agent's cgroup root: all its containers together (default half the host's
   * kernel.pid_max, so a fork storm spread over many containers still leaves the host pids; 0 = unlimited).
   */
  pidsMaxTotal?: number;
  /** Let a task asking for root be root on the host (default: root inside a user namespace). */
  allowHostRoot?: boolean;
  /** When set, only these users may run tasks. */
  allowedUsers?: string[];
  /**
   * This agent's pool of host ids for root tasks' user namespaces: each root container takes its
   * own block of 65,536 from it (see userns.ts). Default 1,048,576 + 512 blocks. Agents on one
   * host need disjoint pools.
   */
  uidRange?: { start: number; count: number };
  /** Capabilities kept in the bounding set (default none). */
  capabilities?: string[];
  log?: LogFn;
  /** How often the memory isolator checks for an OOM kill (default 100 ms; cgroup v1 cannot notify Node). */
  oomPollMs?: number;
  /** Tests: a directory tree with the cgroup v2 file layout used instead of the detected hierarchy. */
  fsRoot?: string;
  /** Tests: the CgroupFs used with `fsRoot`. */
  cgroupFs?: CgroupFs;
  /** Tests/embedding: an explicit hierarchy (wins over detection and fsRoot). */
  hierarchy?: Hierarchy;
  /** Path of berth-shim (default: $BERTH_SHIM, else the build output, built on demand). */
  shimPath?: string;
}

/** Ended containers kept for wait()/usage() after the end; the oldest are forgotten first. */
const MAX_ENDED = 4096;
/** How often supervisors of recovered containers (not our children) are checked for liveness. */
const RECOVERED_POLL_MS = 200;
const DEFAULT_GRACE_MS = 3000;
const HOST_NAME_MAX = 64;

const SUBSYSTEMS: readonly Subsystem[] = [cpuSubsystem, memorySubsystem, pidsSubsystem];

type ContainerState =
  /** The task runs (or may run): the supervisor is alive. */
  | 'running'
  /** The supervisor has exited; the end is being recorded and the cgroup removed. */
  | 'ending'
  /** Done: `exit` resolved, nothing of it remains on the host. */
  | 'ended';

interface Container {
  id: string;
  record: ContainerRecord;
  cg: CgroupHandle;
  state: ContainerState;
  exit: Promise<ContainerExit>;
  resolveExit: (e: ContainerExit) => void;
  /** True for containers adopted by recover(): their supervisor is not our child and is polled. */
  recovered: boolean;
  destroying: boolean;
  /** Last usage read while it ran (usage() of an ended container returns it). */
  final?: ResourceStatistics;
  /** The supervisor process when it is our child (launched here). */
  child?: Started['child'];
  /** The limit that ended it (a watch fired): wins over any kill when its end is reported. */
  limitation?: Limitation;
  /** Stops the subsystems' watches. */
  watching: AbortController;
}

/** Container ids become directory names (cgroups, hostname): reject anything that could escape or confuse. */
function validateId(id: string): void {
  if (!id || id === '.' || id === '..' || id.length > 200 || !/^[A-Za-z0-9_.:@+=-]+$/.test(id)) {
    throw new BerthError('INVALID', `invalid containerId '${id}': use 1-200 characters of [A-Za-z0-9_.:@+=-]`);
  }
}

function hostnameOf(spec: ContainerSpec): string {
  const h = spec.hostname ?? spec.containerId;
  return h.slice(0, HOST_NAME_MAX);
}

export class LinuxContainerizer implements Containerizer {
  readonly kind = 'linux' as const;
  private readonly opts: Required<Pick<LinuxContainerizerOptions, 'cgroupRoot' | 'enableCfs' | 'pidsMax' | 'allowHostRoot'>> &
    LinuxContainerizerOptions;
  private readonly log: LogFn;
  private readonly keepCaps: bigint;
  private readonly userns: UsernsBlocks;
  private readonly containers = new Map<string, Container>();
  private readyPromise: Promise<{ hier: Hierarchy; engine: Engine }> | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private server: ShimServer | undefined;
  private closed = false;

  constructor(options: LinuxContainerizerOptions = {}) {
    this.opts = {
      ...options,
      cgroupRoot: options.cgroupRoot ?? 'berth',
      enableCfs: options.enableCfs ?? false,
      pidsMax: options.pidsMax ?? 1024,
      allowHostRoot: options.allowHostRoot ?? false,
    };
    if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(this.opts.cgroupRoot) || this.opts.cgroupRoot.split('/').includes('..')) {
      throw new BerthError('INVALID', `invalid cgroupRoot '${this.opts.cgroupRoot}'`);
    }
    this.log = options.log ?? (() => undefined);
    this.keepCaps = capabilityMask(options.capabilities ?? []);
    this.userns = new UsernsBlocks(options.uidRange ?? DEFAULT_USERNS_POOL);
  }

  /** The hierarchy in use (after the first launch/recover, or after `init()`). */
  async init(): Promise<{ hier: Hierarchy; engine: Engine }> {
    this.readyPromise ??= this.setup();
    return this.readyPromise;
  }

  private async setup(): Promise<{ hier: Hierarchy; engine: Engine }> {
    let hier = this.opts.hierarchy;
    if (!hier && this.opts.fsRoot !== undefined) {
      if (!this.opts.cgroupFs) throw new BerthError('INVALID', 'fsRoot needs a cgroupFs');
      hier = new V2Hierarchy(this.opts.cgroupFs, this.opts.fsRoot, this.opts.cgroupRoot);
    }
    hier ??= await detectHierarchy(this.opts.cgroupRoot);
    if (!hier) throw new BerthError('UNSUPPORTED', 'no usable cgroup hierarchy (cpu, memory or pids controllers) found');
    await hier.init();
    await this.capAgentPids(hier);
    // One engine: berth-shim, started through its long-lived server. The server runs with an empty
    // environment and hands each task its environment only at the task's final execve, after the
    // privilege drop (no root process ever runs with a task's LD_PRELOAD or the like). The former
    // per-launch spawn of the shim and the unshare/setpriv shell engine could not: they are gone.
    const shim = await locateShim(this.opts.shimPath, this.log);
    if (!shim) throw new BerthError('UNSUPPORTED', 'berth-shim is not available and cannot be built (needs a C compiler: run agent/shim/build.sh)');
    const engine: Engine = { kind: 'shim', path: shim };
    this.log('info', 'linux containerizer ready', {
      cgroups: hier.label,
      controllers: [...hier.controllers].join(','),
      engine: engine.kind,
      cgroupRoot: this.opts.cgroupRoot,
    });
    return { hier, engine };
  }

  /** Writes the agent-wide pids cap on this agent's root (v1 and v2 both count descendants' tasks). */
  private async capAgentPids(hier: Hierarchy): Promise<void> {
    const dir = hier.handle('x').dir('pids');
    if (dir === undefined) return;
    let total = this.opts.pidsMaxTotal;
    if (total === undefined) {
      const pidMax = Number((await readFile('/proc/sys/kernel/pid_max', 'utf8').catch(() => '32768')).trim());
      total = Math.max(1024, Math.floor(pidMax / 2));
    }
    await hier.fs.write(join(dir.slice(0, dir.lastIndexOf('/')), 'pids.max'), total > 0 ? String(Math.floor(total)) : 'max');
  }

  // ---- users ---------------------------------------------------------------

  /** Ids the task switches to, and the host owner of its sandbox. */
  private async taskIds(spec: ContainerSpec): Promise<{ launch: ShimLaunch['ids']; userns?: ShimLaunch['userns']; owner: { uid: number; gid: number } }> {
    const name = spec.user ?? userInfo().username;
    const allowed = this.opts.allowedUsers;
    if (allowed && !allowed.includes(name)) {
      throw new BerthError('FORBIDDEN', `user '${name}' is not allowed to run tasks on this agent (allowed: ${allowed.join(', ') || 'none'})`);
    }
    const u = await resolveUser(name);
    if (!u) throw new BerthError('NOT_FOUND', `unknown user '${name}': no such user on this agent`);
    if (u.uid === 0 && !this.opts.allowHostRoot) {
      // Root inside a user namespace: uid 0 there is the first id of this container's own block on
      // the host, which owns nothing but this container's sandbox.
      const start = this.userns.acquire(spec.containerId);
      return { launch: { uid: 0, gid: 0, groups: [] }, userns: { hostUid: start, count: USERNS_BLOCK }, owner: { uid: start, gid: start } };
    }
    return { launch: { uid: u.uid, gid: u.gid, groups: u.groups }, owner: { uid: u.uid, gid: u.gid } };
  }

  /** Creates the sandbox; with `owner`, it and its stdout/stderr then belong to the task's (host-mapped) user. */
  private async makeSandbox(sandbox: string, owner?: { uid: number; gid: number }): Promise<void> {
    if (!owner) { await prepareSandbox(sandbox); return; }
    await mkdir(sandbox, { recursive: true, mode: 0o750 });
    await chmod(sandbox, 0o750);
    const own = async (f: string): Promise<void> => {
      const fh = await open(f, 'a', 0o640);
      try {
        await fh.chown(owner.uid, owner.gid);
      } finally {
        await fh.close();
      }
    };
    await Promise.all([chown(sandbox, owner.uid, owner.gid), own(join(sandbox, 'stdout')), own(join(sandbox, 'stderr'))]);
  }

  // ---- lifecycle -----------------------------------------------------------

  async launch(spec: ContainerSpec): Promise<ContainerRecord> {
    if (this.closed) throw new BerthError('CONFLICT', 'containerizer is closed');
    validateId(spec.containerId);
    const prior = this.containers.get(spec.containerId);
    if (prior && prior.state !== 'ended') throw new BerthError('CONFLICT', `container ${spec.containerId} already exists`);
    // User policy first: a forbidden or unknown user is the caller's error whatever the host supports.
    const ids = await this.taskIds(spec);
    let ready: { hier: Hierarchy; engine: Engine };
    try {
      ready = await this.init();
    } catch (err) {
      this.userns.release(spec.containerId);
      throw err;
    }
    const { hier, engine } = ready;
    const boot = bootId();

    const cg = hier.handle(spec.containerId);
    let started: Started | undefined;
    try {
      await hier.create(cg);
      const subOpts = { enableCfs: this.opts.enableCfs, pidsMax: this.opts.pidsMax };
      // A server-forked shim creates and chowns the sandbox itself (-m, -o: synchronous syscalls on
      // its own core, no thread-pool round trips of the agent). A spawned one starts in it.
      // The shim creates and chowns the sandbox itself (-m, -o: synchronous syscalls on its own
      // core, no thread-pool round trips of the agent), unless a pre-start hook (URI fetcher)
      // needs the sandbox before the task starts: then it is made here.
      const early = spec.beforeExec !== undefined;
      await Promise.all([
        ...SUBSYSTEMS.map((s) => s.prepare(cg, hier.fs, spec.limits, subOpts)),
        early ? this.makeSandbox(spec.sandbox, ids.owner) : undefined,
      ]);
      if (spec.beforeExec) await spec.beforeExec({ sandbox: spec.sandbox, owner: ids.owner });
      const argv = spec.command.shell ? ['sh', '-c', spec.command.value] : spec.command.arguments?.length ? spec.command.arguments : [spec.command.value];
      const exe = spec.command.shell ? '/bin/sh' : spec.command.value;
      const launch: ShimLaunch = {
        runDir: spec.runDir,
        sandbox: spec.sandbox,
        procsFiles: hier.procsFiles(cg),
        hostname: hostnameOf(spec),
        ids: ids.launch,
        userns: ids.userns,
        netns: spec.network === 'none',
        privateTmp: spec.privateTmp === true,
        keepCaps: this.keepCaps,
        owner: ids.owner,
        makeSandbox: !early,
        exe,
        argv,
        env: spec.env,
      };
      started = await this.startViaServer(engine.path, launch);
    } catch (err) {
      // Nothing of a failed launch may remain: kill whatever joined, remove the cgroup.
      this.userns.release(spec.containerId);
      await killAll(hier, cg, 5000).catch(() => undefined);
      await hier.remove(cg).catch((e: unknown) => this.log('warn', 'cannot remove cgroup of failed launch', { containerId: spec.containerId, error: String(e) }));
      const msg = err instanceof Error ? err.message : String(err);
      const wrapped = new BerthError(err instanceof BerthError ? err.code : 'IO', `launch of container ${spec.containerId} failed: ${msg}`);
      (wrapped as Error & { cause?: unknown }).cause = err;
      throw wrapped;
    }

    const startTime = started.startTime || (readStat(started.supervisorPid)?.startTime ?? 0);
    const record: ContainerRecord = {
      containerId: spec.containerId,
      pid: started.supervisorPid,
      startTime,
      bootId: boot,
      sandbox: spec.sandbox,
      runDir: spec.runDir,
      limits: spec.limits,
      extra: { cgroup: cg.relPath, cgroupVersion: hier.version, taskPid: started.taskPid, engine: engine.kind, ...(ids.userns ? { usernsHostUid: ids.userns.hostUid } : {}) },
    };
    const c = this.track(record, cg, false);
    c.child = started.child;
    if (this.closed) started.child?.unref();
    void started.exited.then(() => this.finalize(c));
    await Promise.all(SUBSYSTEMS.map((s) => s.isolate?.(cg, hier.fs, started!.taskPid)));
    this.watch(c, hier);
    return record;
  }

  /** Starts every subsystem's watch: the first limitation reached destroys the container at once. */
  private watch(c: Container, hier: Hierarchy): void {
    const opts = { pollMs: this.opts.oomPollMs ?? 100 };
    for (const s of SUBSYSTEMS) {
      if (!s.watch) continue;
      void s.watch(c.cg, hier.fs, c.watching.signal, opts).then((lim) => {
        // A destroy the agent asked for ended it first: its end is the kill's, not the limit's.
        if (c.state !== 'running' || c.limitation || c.destroying) return;
        c.limitation = lim;
        this.log('info', 'container limitation reached: destroying it', { containerId: c.id, ...lim });
        void this.destroy(c.id, 0, true);
      });
    }
  }

  private async startViaServer(path: string, l: ShimLaunch): Promise<Started> {
    this.server ??= new ShimServer(path, (msg, fields) => { if (!this.closed) this.log('warn', msg, fields); });
    const s = await this.server.start(l.env, shimArgs(l));
    return { exited: s.exited, supervisorPid: s.supervisorPid, taskPid: s.taskPid, startTime: s.startTime };
  }

  private track(record: ContainerRecord, cg: CgroupHandle, recovered: boolean): Container {
    let resolveExit!: (e: ContainerExit) => void;
    const exit = new Promise<ContainerExit>((r) => (resolveExit = r));
    const c: Container = { id: record.containerId, record, cg, state: 'running', exit, resolveExit, recovered, destroying: false, watching: new AbortController() };
    this.containers.delete(c.id); // re-insert: Map order is the age order MAX_ENDED relies on
    this.containers.set(c.id, c);
    return c;
  }

  /** Records how the container ended and removes everything it left. Runs once, after the supervisor exited. */
  private async finalize(c: Container, why?: string): Promise<void> {
    if (c.state !== 'running') return;
    c.state = 'ending';
    const { hier } = await this.init();
    const rec = readExitRecord(c.record.runDir);
    const exit: ContainerExit = rec
      ? { exitCode: rec.exitCode, signal: rec.signal }
      : {
          exitCode: null,
          signal: c.destroying ? 'SIGKILL' : null,
          reason: 'REASON_EXECUTOR_TERMINATED',
          message: why ?? 'container supervisor ended without an exit record',
        };
    if (c.recovered) exit.recovered = true;
    c.watching.abort();
    // A limitation reached while it ran wins; else one the watch had no time to see (the OOM kill
    // just before the exit) — unless the agent was destroying it on request, which ended it first.
    let limitation = c.limitation;
    if (!limitation && !c.destroying) {
      for (const s of SUBSYSTEMS) {
        limitation = await s.cleanup?.(c.cg, hier.fs).catch((err: unknown) => {
          this.log('warn', 'cannot read final cgroup state', { containerId: c.id, subsystem: s.name, error: String(err) });
          return undefined;
        });
        if (limitation) break;
      }
    } else {
      await Promise.all(SUBSYSTEMS.map((s) => s.cleanup?.(c.cg, hier.fs).catch(() => undefined)));
    }
    if (limitation) {
      exit.reason = limitation.reason;
      exit.message = limitation.message;
    }
    try {
      // Fast path: the task's namespace died with it, so the cgroup is normally empty and
      // removable at once; anything left (rmdir refuses: EBUSY) is killed first.
      await hier.remove(c.cg, 0).catch(async () => {
        await killAll(hier, c.cg);
        await hier.remove(c.cg);
      });
    } catch (err) {
      this.log('error', 'cannot clean up container cgroup', { containerId: c.id, error: String(err) });
    }
    await this.sealSandbox(c);
    c.state = 'ended';
    c.child = undefined;
    c.resolveExit(exit);
    this.log('info', 'container ended', { containerId: c.id, ...exit });
    this.forgetOldEnded();
  }

  /**
   * A root container's id block is recycled only once nothing of it can be reached by the next
   * holder: its sandbox is handed to root (0700). The agent still serves its files (as root).
   */
  private async sealSandbox(c: Container): Promise<void> {
    const hostUid = c.record.extra?.['usernsHostUid'];
    if (typeof hostUid !== 'number') return;
    try {
      await chown(c.record.sandbox, 0, 0);
      await chmod(c.record.sandbox, 0o700);
      this.userns.release(c.id);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.userns.release(c.id);
      // Otherwise the block stays taken: handing it on with the sandbox still reachable is worse.
      else this.log('error', 'cannot seal the sandbox of an ended root container; its id block stays reserved', { containerId: c.id, error: String(err) });
    }
  }

  private forgetOldEnded(): void {
    let ended = 0;
    for (const c of this.containers.values()) if (c.state === 'ended') ended++;
    for (const [id, c] of this.containers) {
      if (ended <= MAX_ENDED) break;
      if (c.state === 'ended') {
        this.containers.delete(id);
        ended--;
      }
    }
  }

  private get(containerId: string): Container {
    const c = this.containers.get(containerId);
    if (!c) throw new BerthError('NOT_FOUND', `unknown container ${containerId}`);
    return c;
  }

  wait(containerId: string): Promise<ContainerExit> {
    try {
      return this.get(containerId).exit;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async readUsage(c: Container, hier: Hierarchy): Promise<ResourceStatistics> {
    const stats: ResourceStatistics = { timestamp: Date.now() / 1000, cpus_limit: c.record.limits.cpus };
    if (c.record.limits.memMiB > 0) stats.mem_limit_bytes = c.record.limits.memMiB * 1024 * 1024;
    await Promise.all(SUBSYSTEMS.map((s) => s.usage(c.cg, hier.fs, stats)));
    return stats;
  }

  async usage(containerId: string): Promise<ResourceStatistics> {
    const c = this.get(containerId);
    if (c.state !== 'running') return (await c.exit, c.final ?? { timestamp: Date.now() / 1000 });
    const { hier } = await this.init();
    const stats = await this.readUsage(c, hier);
    c.final = stats;
    return stats;
  }

  /** `byLimitation`: the containerizer ends it itself (a watch fired), not on the agent's request. */
  async destroy(containerId: string, graceMs = DEFAULT_GRACE_MS, byLimitation = false): Promise<void> {
    const { hier } = await this.init();
    const c = this.containers.get(containerId);
    if (!c) {
      // Unknown here but may have a cgroup (e.g. launched by a previous agent and not recovered).
      if (/^[A-Za-z0-9_.:@+=-]+$/.test(containerId) && containerId !== '.' && containerId !== '..') await this.destroyCgroup(hier, hier.handle(containerId));
      return;
    }
    if (c.state !== 'running') {
      await c.exit;
      return;
    }
    if (!byLimitation) c.destroying = true;
    if (graceMs > 0) {
      // The task is pid 1 of its namespace: the kernel drops a SIGTERM sent to it unless it
      // installed a handler. Waiting the grace for a task that cannot hear it is pointless, so
      // then we only wait for its descendants (which got SIGTERM normally) before SIGKILL.
      const taskPid = typeof c.record.extra?.['taskPid'] === 'number' ? (c.record.extra['taskPid'] as number) : undefined;
      const deaf = taskPid !== undefined && !catchesSigterm(taskPid);
      const n = await signalAll(hier, c.cg, 'SIGTERM').catch(() => 0);
      if (n > 0) {
        const deadline = Date.now() + graceMs;
        while (Date.now() < deadline) {
          const left = await hier.pids(c.cg);
          if (left.length === 0 || (deaf && left.every((p) => p === taskPid))) break;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    await killAll(hier, c.cg);
    // The task is gone; its supervisor exits right after reaping it. Resolve once finalize ran,
    // so "no process left" includes the supervisor and the cgroup is gone too.
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000).unref());
    if ((await Promise.race([c.exit, timeout])) === 'timeout') {
      // Supervisor stuck or already gone without our noticing: check and finalize ourselves.
      if (!isSameProcess(c.record.pid, c.record.startTime)) await this.finalize(c, 'container destroyed');
      else this.log('error', 'container supervisor did not exit after its task was killed', { containerId, pid: c.record.pid });
    }
  }

  private async destroyCgroup(hier: Hierarchy, h: CgroupHandle): Promise<void> {
    await killAll(hier, h);
    await hier.remove(h);
  }

  async recover(records: ContainerRecord[]): Promise<void> {
    const { hier } = await this.init();
    const boot = bootId();
    const known = new Set<string>();
    const finalizing: Promise<void>[] = [];
    let adopted = 0;
    for (const r of records) {
      known.add(r.containerId);
      const existing = this.containers.get(r.containerId);
      if (existing && existing.state !== 'ended') continue;
      const rel = typeof r.extra?.['cgroup'] === 'string' ? (r.extra['cgroup'] as string) : undefined;
      const cg = hier.handle(r.containerId, rel);
      const hostUid = r.extra?.['usernsHostUid'];
      if (typeof hostUid === 'number' && !this.userns.adopt(r.containerId, hostUid)) {
        this.log('error', 'two recovered containers claim one user-namespace block', { containerId: r.containerId, hostUid });
      }
      const c = this.track(r, cg, true);
      const alive = r.bootId === boot && isSameProcess(r.pid, r.startTime);
      if (alive) {
        adopted++;
        await Promise.all(SUBSYSTEMS.map((s) => s.recover?.(cg, hier.fs)));
        this.watch(c, hier);
      } else finalizing.push(this.finalize(c, r.bootId !== boot ? 'container lost: the machine rebooted' : undefined));
    }
    // Orphans: cgroups under our root that no record claims (launched by an agent that
    // crashed before checkpointing, or whose records were lost).
    let orphans = 0;
    for (const id of await hier.listContainers()) {
      if (known.has(id) || this.containers.has(id)) continue;
      orphans++;
      finalizing.push(
        this.destroyCgroup(hier, hier.handle(id)).catch((err: unknown) =>
          this.log('error', 'cannot destroy orphan cgroup', { containerId: id, error: String(err) }),
        ),
      );
    }
    await Promise.all(finalizing);
    this.log('info', 'linux containerizer recovered', { adopted, ended: records.length - adopted, orphans });
    this.ensurePolling();
  }

  /** Supervisors of recovered containers are not our children: poll them (pid + start time). */
  private ensurePolling(): void {
    if (this.pollTimer || this.closed) return;
    this.pollTimer = setInterval(() => {
      let any = false;
      for (const c of this.containers.values()) {
        if (!c.recovered || c.state !== 'running') continue;
        any = true;
        if (!isSameProcess(c.record.pid, c.record.startTime)) void this.finalize(c);
      }
      if (!any && this.pollTimer) {
        clearInterval(this.pollTimer);
        this.pollTimer = undefined;
      }
    }, RECOVERED_POLL_MS);
    // Referenced like the supervisors we launched: pending wait()s keep the process alive until close().
  }

  /**
   * Stops polling and lets go of supervisors (containers keep running). When no container of ours
   * is left, Berth's root cgroups are removed too (rmdir refuses a root that still has children, so
   * a root in use by running containers stays), so a stopped agent leaves nothing in cgroupfs.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.containers.values()) c.watching.abort();
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    for (const c of this.containers.values()) c.child?.unref();
    this.server?.close();
    if (!this.readyPromise || [...this.containers.values()].some((c) => c.state !== 'ended')) return;
    const ready = await this.readyPromise.catch(() => undefined);
    if (ready) await removeRootDirs(ready.hier, this.opts.cgroupRoot);
  }

  /** Freezes (true) or thaws (false) a running container; used by tests and the operator API. */
  async setFrozen(containerId: string, frozen: boolean): Promise<boolean> {
    const { hier } = await this.init();
    const c = this.get(containerId);
    if (frozen) return freeze(c.cg, hier.fs);
    await thaw(c.cg, hier.fs);
    return true;
  }
}
