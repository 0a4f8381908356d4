/**
 * The portable containerizer: a container is a plain session of processes.
 *
 * Supervisor: by default a C supervisor forked by one `berth-shim --server`
 * (see SupervisorEngine; same session, kill and exit-record rules as below).
 * Fallback: each container is owned by a `/bin/sh` wrapper spawned detached,
 * so it leads its own session (sid = pgid = its pid) and is not a process the
 * agent's death or a terminal's ^C can reach. The wrapper runs the task as its
 * foreground child, waits, writes `<runDir>.exit` atomically (.exit.tmp, mv) as
 * `{"exitCode": N|null, "signal": "SIGX"|null}` — the format the linux shim
 * writes too — and exits. Cost per launch: one fork+exec of dash plus one fork
 * (+exec) for the task, i.e. about what Node pays to spawn the task itself; a
 * Node process per task would cost tens of ms (see bench/launch.ts).
 *
 * Invariants:
 *  - The container is exactly the set of processes whose session id is the
 *    supervisor's pid. Killing signals every such process except the
 *    supervisor, which must survive its task to record how it ended; a child
 *    that double-forked but stayed in the session is caught. (A task that calls
 *    setsid() itself escapes: only the linux containerizer's pid namespace
 *    contains that.)
 *  - Linux never reuses a pid while it still names a session or process group,
 *    so session members found for `sid = supervisor pid` are ours as long as
 *    that pid is either our supervisor (same start time) or free. When the pid
 *    now names another process, none of our processes can be left.
 *  - A recorded (pid, start time) is trusted only under the boot id it was
 *    recorded in: after a reboot the container is gone, whatever runs at that pid.
 *  - Once the task has ended the supervisor forks only to record the exit
 *    (`mv`, after writing .exit.tmp). Killing therefore spares the supervisor's
 *    direct children once .exit.tmp or .exit exists: they are the recorder, not
 *    the task. Before that file exists the supervisor's only child is the task.
 *    No other fork happens after the task: the signal name comes from a
 *    `case`, not from `$(kill -l)`.
 *  - `launch` creates the sandbox and its stdout/stderr before it resolves: the
 *    shim engine's supervisor does it (`-m`: off the agent's process, on the
 *    core the supervisor runs on), the other engines before they start one.
 *  - A shell reports a death by signal N as status 128+N, so an exit status in
 *    129..159 is read as signal 1..31 (a task exiting with 137 on purpose is
 *    reported as SIGKILL: the price of a shell supervisor).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { BerthError } from '../../proto/errors.js';
import { RealClock, type Clock, type TimerHandle } from '../../proto/clock.js';
import { logger, type Logger } from '../../proto/log.js';
import type { ResourceStatistics } from '../../proto/types.js';
import { ProcTable, bootId, clockTicks, pageSize, readStat, type ProcSnapshot, type ProcStat } from '../proc.js';
import { exitRecordPath, exitRecordTmpPath, prepareSandbox, readExitRecordText } from './files.js';
import { findShim, ShimServer, type ServerStarted } from './shim-server.js';
import type { ContainerExit, ContainerRecord, ContainerSpec, Containerizer, ExitReason } from './types.js';

function findTool(name: string): string | undefined {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin']) {
    if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}
const MV = findTool('mv') ?? 'mv';
const SETSID = findTool('setsid');

/**
 * The supervisor script. $1 = run path (record: $1.exit), $2 = sandbox, $3 = container id, $4 = mode
 * ('sh': $5 is a shell command, run by `eval` in a subshell — what `sh -c` would
 * do, minus one exec; 'exec': $5… is argv, exec'd in a subshell so that a name
 * like `true` or `exit` runs the program, never a builtin of the supervisor).
 * When fd 9 is open (launcher engine) it reports `start <cid> <pid> <starttime>`
 * before running the task and `exit <cid>` after recording its end; the task
 * itself never sees fd 9. Start time comes from /proc/$$/stat via builtins only
 * (no fork before the task runs).
 */
const SUPERVISOR = `run=$1; box=$2; cid=$3; mode=$4; shift 4
pick() { shift 19; T=$1; }
read -r st </proc/$$/stat; pick \${st##*) }
{ printf 'start %s %s %s\\n' "$cid" "$$" "$T" >&9; } 2>/dev/null
if [ "$mode" = sh ]; then (eval "$1") </dev/null >>"$box/stdout" 2>>"$box/stderr" 9>&-
else (exec "$@") </dev/null >>"$box/stdout" 2>>"$box/stderr" 9>&-; fi
rc=$?; s=
if [ $rc -gt 128 ] && [ $rc -lt 160 ]; then
  case $((rc - 128)) in 1) s=HUP;; 2) s=INT;; 3) s=QUIT;; 4) s=ILL;; 5) s=TRAP;; 6) s=ABRT;; 7) s=BUS;; 8) s=FPE;;
  9) s=KILL;; 10) s=USR1;; 11) s=SEGV;; 12) s=USR2;; 13) s=PIPE;; 14) s=ALRM;; 15) s=TERM;; 16) s=STKFLT;;
  17) s=CHLD;; 18) s=CONT;; 19) s=STOP;; 20) s=TSTP;; 21) s=TTIN;; 22) s=TTOU;; 23) s=URG;; 24) s=XCPU;;
  25) s=XFSZ;; 26) s=VTALRM;; 27) s=PROF;; 28) s=WINCH;; 29) s=IO;; 30) s=PWR;; 31) s=SYS;; esac
fi
if [ -n "$s" ]; then rec="{\\"exitCode\\":null,\\"signal\\":\\"SIG$s\\"}"; else rec="{\\"exitCode\\":$rc,\\"signal\\":null}"; fi
printf '%s\\n' "$rec" >"$run.exit.tmp" && ${MV} -f "$run.exit.tmp" "$run.exit" 9>&-
{ printf 'exit %s\\n' "$cid" >&9; } 2>/dev/null
`;

/** Single-quotes a string for /bin/sh. */
function q(v: string): string { return `'${v.replace(/'/g, `'\\''`)}'`; }
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * How supervisors are started:
 *  - 'shim' (default when berth-shim is built): one long-lived
 *    `berth-shim --server` per agent (shim-server.ts) forks a C supervisor per
 *    launch (`-P`: plain, no namespaces or cgroups) that runs the task as its
 *    child in its own session and records the exit exactly as the script
 *    below does (minus the 128+N ambiguity: it sees the real signal). One fork
 *    of a tiny process + the task's fork+exec, against the launcher's four
 *    forks and three execs (subshell, setsid, sh, task subshell, mv).
 *  - 'launcher' (default without the shim): one long-lived `/bin/sh -s` per agent reads launch
 *    commands on its stdin and starts each supervisor (double fork + setsid),
 *    which reports start and exit on a shared pipe. The agent's event loop pays
 *    a pipe write per launch instead of a synchronous fork+exec of itself
 *    (2–4 ms each, growing with the agent's memory), so launches overlap.
 *  - 'spawn': the agent spawns each supervisor itself (detached). Used when
 *    setsid(1) is missing or a variable name cannot be exported by a shell.
 */
export type SupervisorEngine = 'shim' | 'launcher' | 'spawn';

const ENGINES: readonly SupervisorEngine[] = ['shim', 'launcher', 'spawn'];

export interface PosixOptions {
  /** Memory sampling period (limits are enforced by sampling). Default 1000 ms. */
  sampleIntervalMs?: number;
  /** Liveness polling of re-adopted supervisors (not our children, so no exit event). Default 250 ms. */
  pollIntervalMs?: number;
  /** Default $BERTH_POSIX_ENGINE if set, else 'shim' when berth-shim is built, else 'launcher' when setsid(1) exists, else 'spawn'. */
  engine?: SupervisorEngine;
  /** berth-shim binary for the 'shim' engine (default: $BERTH_SHIM, then the build output). */
  shimPath?: string;
  /** A launch not reported started within this time fails (launcher engine). Default 30000 ms. */
  launchTimeoutMs?: number;
  clock?: Clock;
  log?: Logger;
}

interface Limitation { reason: ExitReason; message: string }

interface Container {
  record: ContainerRecord;
  /** Present when this agent incarnation spawned the supervisor. */
  child?: ChildProcess;
  /** Resolves once the supervisor is gone, with the task's exit as recorded. */
  exit: Promise<ContainerExit>;
  resolveExit: (e: ContainerExit) => void;
  /** hrtime when the supervisor was seen gone; undefined while it lives. */
  endedAt?: bigint;
  limitation?: Limitation;
  destroying?: Promise<void>;
  recovered: boolean;
  /** Started by the launcher: its exit is reported on the pipe (polling is only the fallback). */
  notified?: boolean;
  /**
   * The supervisor (berth-shim) recorded that no process of the task's tree outlived it: it was a
   * subreaper with no child left. The post-exit sweep then has nothing to find and skips its /proc
   * scan (at hundreds of exits a second those scans were a third of the agent's CPU).
   */
  clean?: boolean;
}

export class PosixContainerizer implements Containerizer {
  readonly kind = 'posix' as const;
  private readonly containers = new Map<string, Container>();
  private readonly procs = new ProcTable();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sampleMs: number;
  private readonly pollMs: number;
  private sampleTimer: TimerHandle | undefined;
  private pollTimer: TimerHandle | undefined;
  private closed = false;
  private readonly engine: SupervisorEngine;
  private readonly launchTimeoutMs: number;
  private launcher: ChildProcess | undefined;
  private shim: ShimServer | undefined;
  /** Launches written to the launcher, waiting for their supervisor's `start` report. */
  private readonly starting = new Map<string, { spec: ContainerSpec; done: (err?: string, pid?: number, startTime?: number) => void }>();
  private readonly earlyExits = new Set<string>();
  private pollTicks = 0;

  constructor(opts: PosixOptions = {}) {
    this.clock = opts.clock ?? new RealClock();
    this.log = opts.log ?? logger('posix');
    this.sampleMs = opts.sampleIntervalMs ?? 1000;
    this.pollMs = opts.pollIntervalMs ?? 250;
    const envEngine = process.env['BERTH_POSIX_ENGINE'] as SupervisorEngine | undefined;
    if (envEngine !== undefined && !ENGINES.includes(envEngine)) throw new BerthError('INVALID', `BERTH_POSIX_ENGINE must be one of ${ENGINES.join(', ')}`);
    const shimPath = findShim(opts.shimPath);
    this.engine = opts.engine ?? envEngine ?? (shimPath ? 'shim' : SETSID ? 'launcher' : 'spawn');
    if (this.engine === 'launcher' && !SETSID) throw new BerthError('UNSUPPORTED', 'the launcher engine needs setsid(1)');
    if (this.engine === 'shim') {
      if (!shimPath) throw new BerthError('UNSUPPORTED', 'the shim engine needs berth-shim (npm run build, or $BERTH_SHIM)');
      this.shim = new ShimServer(shimPath, (msg, fields) => { if (!this.closed) this.log.warn(fields, msg); });
    }
    this.launchTimeoutMs = opts.launchTimeoutMs ?? 30_000;
  }

  async launch(spec: ContainerSpec): Promise<ContainerRecord> {
    if (this.closed) throw new BerthError('CONFLICT', 'containerizer is closed');
    if (this.containers.has(spec.containerId) || this.starting.has(spec.containerId)) throw new BerthError('CONFLICT', `container ${spec.containerId} already exists`);
    if (spec.user !== undefined && spec.user !== currentUser()) {
      throw new BerthError('UNSUPPORTED', `the posix containerizer cannot switch to user '${spec.user}' (agent runs as '${currentUser()}')`);
    }
    if (!/^[A-Za-z0-9_.:@+=-]+$/.test(spec.containerId)) throw new BerthError('INVALID', `invalid container id '${spec.containerId}'`);
    if (spec.beforeExec) {
      // The pre-start hook needs the sandbox first; the supervisor's own mkdir (-m) then finds it.
      try {
        await prepareSandbox(spec.sandbox);
        await spec.beforeExec({ sandbox: spec.sandbox, owner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } });
      } catch (e) {
        const wrapped = new BerthError(e instanceof BerthError ? e.code : 'IO', `launch of container ${spec.containerId} failed: ${(e as Error).message}`);
        (wrapped as Error & { cause?: unknown }).cause = e;
        throw wrapped;
      }
    }
    if (this.shim) {
      const record = await this.launchViaShim(this.shim, spec);
      this.ensureSampler();
      this.ensurePoller();
      return record;
    }
    try {
      await prepareSandbox(spec.sandbox);
    } catch (e) {
      throw new BerthError('IO', `cannot create the sandbox: ${(e as Error).message}`);
    }
    const cmd = spec.command;
    // Mesos: `arguments` is the full argv (argv[0] included); a shell cannot set argv[0], so it is dropped.
    const args = cmd.shell ? ['sh', cmd.value] : ['exec', cmd.value, ...(cmd.arguments ?? []).slice(1)];
    const supArgs = [spec.runDir, spec.sandbox, spec.containerId, ...args];
    const record = this.engine === 'launcher' && Object.keys(spec.env).every((k) => SHELL_NAME.test(k))
      ? await this.launchViaLauncher(spec, supArgs)
      : this.launchViaSpawn(spec, supArgs);
    this.ensureSampler();
    this.ensurePoller();
    return record;
  }

  private async launchViaShim(shim: ShimServer, spec: ContainerSpec): Promise<ContainerRecord> {
    const cmd = spec.command;
    // Mesos: `arguments` is the full argv, argv[0] included (the C supervisor can set it). A shell
    // command keeps the 128+N rule below (-S); an exec'd program's signal is seen as it is. -m: the
    // supervisor creates the sandbox and opens stdout/stderr itself before it reports.
    const [exe, argv] = cmd.shell ? ['/bin/sh', ['sh', '-c', cmd.value]] : [cmd.value, cmd.arguments?.length ? cmd.arguments : [cmd.value]];
    let s: ServerStarted;
    try {
      s = await shim.start(spec.env, [...(cmd.shell ? ['-P', '-S', '-m'] : ['-P', '-m']), '-r', spec.runDir, '-s', spec.sandbox, '-e', exe, '--', ...argv]);
    } catch (e) {
      throw e instanceof BerthError ? e : new BerthError('IO', `cannot start supervisor: ${(e as Error).message}`);
    }
    const record: ContainerRecord = {
      containerId: spec.containerId, pid: s.supervisorPid, startTime: s.startTime, bootId: bootId(),
      sandbox: spec.sandbox, runDir: spec.runDir, limits: spec.limits,
    };
    const c = this.track(record, false);
    c.notified = true;
    void s.exited.then(() => this.ended(c));
    return record;
  }

  private launchViaSpawn(spec: ContainerSpec, supArgs: string[]): ContainerRecord {
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', SUPERVISOR, 'berth-posix', ...supArgs], { cwd: spec.sandbox, env: spec.env, detached: true, stdio: 'ignore' });
    } catch (e) {
      throw new BerthError('IO', `cannot start supervisor: ${(e as Error).message}`);
    }
    const pid = child.pid;
    if (pid === undefined) throw new BerthError('IO', `cannot start supervisor for ${spec.containerId}`);
    // Synchronously after spawn(): the child cannot have been reaped yet (libuv reaps on a later
    // loop turn), so its stat is readable even if it already exited (zombie).
    const st = readStat(pid);
    const record: ContainerRecord = {
      containerId: spec.containerId, pid, startTime: st?.startTime ?? 0, bootId: bootId(),
      sandbox: spec.sandbox, runDir: spec.runDir, limits: spec.limits,
    };
    const c = this.track(record, false);
    c.child = child;
    child.once('exit', (code, signal) => {
      void this.ended(c, code === null ? `supervisor killed by ${signal ?? 'unknown signal'}` : undefined);
    });
    child.on('error', (e) => this.log.warn({ container: spec.containerId, err: e.message }, 'supervisor error'));
    // The child stays ref'd (it keeps the process alive to hear its exit) until close() lets go.
    return record;
  }

  private launchViaLauncher(spec: ContainerSpec, supArgs: string[]): Promise<ContainerRecord> {
    const launcher = this.ensureLauncher();
    const exports = Object.entries(spec.env).map(([k, v]) => `${k}=${q(v)}`).join(' ');
    // Double fork: the outer subshell exits at once, so the supervisor is reparented away from the
    // launcher (which never has to reap it); setsid makes it a session leader (not a group leader
    // inside the subshell, so setsid(1) does not fork again).
    const line = `(cd ${q(spec.sandbox)} || { printf 'fail %s %s\\n' ${q(spec.containerId)} 'cannot-enter-sandbox'; exit; }; `
      + `${exports ? `export ${exports}; ` : ''}${SETSID} /bin/sh -c "$S" berth-posix ${supArgs.map(q).join(' ')} 9>&1 </dev/null >/dev/null 2>&1 &)\n`;
    return new Promise<ContainerRecord>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.starting.delete(spec.containerId);
        reject(new BerthError('IO', `supervisor for ${spec.containerId} did not start within ${this.launchTimeoutMs} ms`));
      }, this.launchTimeoutMs);
      timer.unref();
      this.starting.set(spec.containerId, {
        spec,
        done: (err, pid, startTime) => {
          clearTimeout(timer);
          this.starting.delete(spec.containerId);
          if (err !== undefined) { reject(new BerthError('IO', `cannot start supervisor: ${err}`)); return; }
          const record: ContainerRecord = {
            containerId: spec.containerId, pid: pid!, startTime: startTime!, bootId: bootId(),
            sandbox: spec.sandbox, runDir: spec.runDir, limits: spec.limits,
          };
          const c = this.track(record, false);
          c.notified = true;
          // An exit reported before start was processed (fast task): apply it now.
          if (this.earlyExits.delete(spec.containerId)) void this.ended(c);
          resolve(record);
        },
      });
      launcher.stdin!.write(line);
    });
  }

  /** The long-lived launcher shell; restarted if it died. Its stdout carries supervisors' reports. */
  private ensureLauncher(): ChildProcess {
    if (this.launcher && this.launcher.exitCode === null && this.launcher.signalCode === null) return this.launcher;
    const child = spawn('/bin/sh', ['-s'], { stdio: ['pipe', 'pipe', 'ignore'], env: { SUP: SUPERVISOR } });
    child.stdout!.setEncoding('latin1');
    createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => this.onReport(line));
    child.stdin!.on('error', (e) => this.log.warn({ err: e.message }, 'launcher stdin error'));
    // The script arrives in the environment; keep it as an unexported variable so no task inherits it.
    child.stdin!.write('S=$SUP; unset SUP\n');
    child.once('exit', (code, signal) => {
      if (this.launcher === child) this.launcher = undefined;
      if (!this.closed) this.log.warn({ code, signal }, 'launcher shell exited; it is restarted on the next launch');
      for (const p of [...this.starting.values()]) p.done('the launcher shell exited');
    });
    this.launcher = child;
    return child;
  }

  private onReport(line: string): void {
    const [kind, cid, a, b] = line.split(' ');
    if (!cid) return;
    if (kind === 'start') {
      this.starting.get(cid)?.done(undefined, Number(a), Number(b));
    } else if (kind === 'exit') {
      const c = this.containers.get(cid);
      if (c) void this.ended(c); else if (this.starting.has(cid)) this.earlyExits.add(cid);
    } else if (kind === 'fail') {
      this.starting.get(cid)?.done(line.slice(`fail ${cid} `.length));
    }
  }

  wait(containerId: string): Promise<ContainerExit> {
    const c = this.containers.get(containerId);
    if (!c) return Promise.reject(new BerthError('NOT_FOUND', `unknown container ${containerId}`));
    return c.exit;
  }

  async usage(containerId: string): Promise<ResourceStatistics> {
    const c = this.containers.get(containerId);
    if (!c) throw new BerthError('NOT_FOUND', `unknown container ${containerId}`);
    const snap = await this.procs.snapshot(process.hrtime.bigint() - 200_000_000n);
    return this.statistics(c, snap);
  }

  destroy(containerId: string, graceMs = 3000): Promise<void> {
    const c = this.containers.get(containerId);
    if (!c) return Promise.resolve();
    c.destroying ??= this.kill(c, graceMs).finally(() => { c.destroying = undefined; });
    return c.destroying;
  }

  async recover(records: ContainerRecord[]): Promise<void> {
    const boot = bootId();
    for (const r of records) {
      if (this.containers.has(r.containerId)) continue;
      const c = this.track(r, true);
      if (r.bootId !== boot) {
        // Never look at the pid: after a reboot it names some unrelated process.
        c.endedAt = process.hrtime.bigint();
        c.resolveExit({
          exitCode: null, signal: null, recovered: true, reason: 'REASON_EXECUTOR_TERMINATED',
          message: `host rebooted since launch (boot id ${r.bootId} → ${boot}); the container is gone`,
        });
        continue;
      }
      if (!this.supervisorAlive(r)) await this.ended(c);
      else this.log.info({ container: r.containerId, pid: r.pid }, 'Re-adopted running container');
    }
    this.ensurePoller();
    this.ensureSampler();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.clock.clearTimeout(this.sampleTimer);
    this.clock.clearTimeout(this.pollTimer);
    this.sampleTimer = this.pollTimer = undefined;
    for (const c of this.containers.values()) { c.child?.removeAllListeners('exit'); c.child?.unref(); }
    // EOF makes the launcher exit; supervisors it started do not depend on it.
    this.launcher?.stdin?.end();
    this.launcher?.unref();
    this.launcher = undefined;
    this.shim?.close();
  }

  /** Forgets an ended container (the agent calls this once it no longer needs wait/usage on it). */
  forget(containerId: string): void {
    const c = this.containers.get(containerId);
    if (c?.endedAt !== undefined) this.containers.delete(containerId);
  }

  // ---- internals -------------------------------------------------------------

  private track(record: ContainerRecord, recovered: boolean): Container {
    let resolveExit!: (e: ContainerExit) => void;
    const exit = new Promise<ContainerExit>((r) => { resolveExit = r; });
    const c: Container = { record, exit, resolveExit, recovered };
    this.containers.set(record.containerId, c);
    return c;
  }

  private supervisorAlive(r: ContainerRecord): boolean {
    const st = readStat(r.pid);
    return st !== undefined && st.startTime === r.startTime && st.state !== 'Z';
  }

  /** The supervisor is gone: read its exit record and resolve `wait`. Idempotent. */
  private async ended(c: Container, supervisorDeath?: string): Promise<void> {
    if (c.endedAt !== undefined) return;
    c.endedAt = process.hrtime.bigint();
    let exit: ContainerExit;
    try {
      // Read synchronously: a few dozen bytes the supervisor just wrote (page cache). Four
      // thread-pool round trips (open, fstat, read, close) cost the event loop more than the read.
      const rec = JSON.parse(readExitRecordText(c.record.runDir)) as { exitCode?: unknown; signal?: unknown; clean?: unknown };
      c.clean = rec.clean === true;
      exit = {
        exitCode: typeof rec.exitCode === 'number' ? rec.exitCode : null,
        signal: typeof rec.signal === 'string' ? rec.signal : null,
      };
    } catch (e) {
      exit = {
        exitCode: null, signal: null, reason: 'REASON_EXECUTOR_TERMINATED',
        message: `supervisor ended without an exit record${supervisorDeath ? ` (${supervisorDeath})` : ''}: ${(e as Error).message}`,
      };
    }
    if (c.limitation) { exit.reason = c.limitation.reason; exit.message = c.limitation.message; }
    if (c.recovered) exit.recovered = true;
    c.resolveExit(exit);
  }

  /** Members of the container's session other than its supervisor (see the pid-reuse invariant). */
  private members(c: Container, snap: ProcSnapshot): ProcStat[] {
    const { pid, startTime } = c.record;
    // pid 0/1 never names a container (a record without a known supervisor); sid 0 is the kernel's.
    if (pid <= 1) return [];
    const holder = snap.byPid.get(pid);
    if (holder && holder.startTime !== startTime) return [];
    return (snap.bySid.get(pid) ?? []).filter((p) => p.pid !== pid && p.state !== 'Z');
  }

  /** Members that must die: all of them, minus the exit recorder once the task has ended (see invariants). */
  private targets(c: Container, snap: ProcSnapshot): ProcStat[] {
    const live = this.members(c, snap);
    if (live.length === 0 || c.endedAt !== undefined) return live;
    // Checked after the scan: if no record file exists now, none existed at scan time.
    const run = c.record.runDir;
    const recording = existsSync(exitRecordTmpPath(run)) || existsSync(exitRecordPath(run))
      // A supervisor of an earlier version (re-adopted) records in a run directory.
      || (c.recovered && (existsSync(`${run}/exit.tmp`) || existsSync(`${run}/exit`)));
    return recording ? live.filter((p) => p.ppid !== c.record.pid) : live;
  }

  private async kill(c: Container, graceMs: number): Promise<void> {
    const deadline = Date.now() + Math.max(0, graceMs);
    let sig: NodeJS.Signals = graceMs > 0 ? 'SIGTERM' : 'SIGKILL';
    const signalled = new Set<number>();
    let idleSince: number | undefined;
    // The sweep after the supervisor ended (graceMs 0, from the agent's exit handling) is not
    // urgent: it shares one /proc scan with the other exits of the next few milliseconds.
    const sweep = graceMs <= 0 && c.endedAt !== undefined;
    if (sweep && c.clean) return;
    for (let round = 0; ; round++) {
      // Window: long enough that scans cost ≤ ~5 % of a core however many processes the host has.
      const lazyMs = sweep ? Math.min(250, Math.max(SWEEP_COALESCE_MS, SCAN_BUDGET_FACTOR * this.procs.lastScanMs)) : 0;
      const snap = await this.procs.snapshot(undefined, lazyMs);
      const live = this.targets(c, snap);
      if (live.length === 0) {
        // Done only once the supervisor is gone too: a supervisor still alive with no member may
        // be about to fork the task (a kill right after launch) — keep watching for it.
        if (c.endedAt !== undefined && c.endedAt <= snap.takenAt) break;
        idleSince ??= Date.now();
        if (Date.now() - idleSince > 5000) {
          // A supervisor that outlives its task by 5 s is stuck (stopped?): end it too.
          try { process.kill(c.record.pid, 'SIGKILL'); } catch { /* gone */ }
          await Promise.race([c.exit, sleep(1000)]);
          await this.ended(c, 'supervisor killed after its task ended');
          idleSince = undefined;
        }
      } else {
        idleSince = undefined;
        for (const p of live) {
          // SIGTERM each process once; SIGKILL is repeated until nothing is left (new forks).
          if (sig === 'SIGTERM' && signalled.has(p.pid)) continue;
          try { process.kill(p.pid, sig); signalled.add(p.pid); } catch { /* already gone */ }
        }
      }
      await sleep(round < 10 ? 5 : 25);
      if (sig === 'SIGTERM' && Date.now() >= deadline) sig = 'SIGKILL';
    }
  }

  private statistics(c: Container, snap: ProcSnapshot): ResourceStatistics {
    const tick = clockTicks();
    const sup = snap.byPid.get(c.record.pid);
    const mine = sup && sup.startTime === c.record.startTime ? sup : undefined;
    let user = 0; let sys = 0; let rss = 0; let threads = 0;
    const live = this.members(c, snap);
    for (const p of live) { user += p.utime; sys += p.stime; rss += p.rssPages; threads += p.threads; }
    // Children the supervisor already reaped (the task itself, once ended) count in its c-times.
    if (mine) { user += mine.cutime; sys += mine.cstime; }
    const memBytes = rss * pageSize();
    const s: ResourceStatistics = {
      timestamp: this.clock.now() / 1000,
      processes: live.length, threads,
      cpus_user_time_secs: user / tick, cpus_system_time_secs: sys / tick,
      cpus_limit: c.record.limits.cpus,
      mem_rss_bytes: memBytes, mem_total_bytes: memBytes,
    };
    if (c.record.limits.memMiB > 0) s.mem_limit_bytes = c.record.limits.memMiB * 1024 * 1024;
    return s;
  }

  /**
   * Memory sampling reads every process's /proc stat (a session's members cannot be listed any
   * other way here), which costs with the host's process count, not ours: ~1 s with 1,600
   * processes on this 2-core VM, a third of a busy agent's time at a 1 s period. So the period
   * stretches to 20× the last scan's duration (a scan costs ≤ ~5 % of a core on any host); the
   * linux containerizer enforces memory with cgroups instead.
   */
  private ensureSampler(): void {
    if (this.closed || this.sampleTimer) return;
    this.sampleTimer = this.clock.setTimeout(() => {
      this.sampleTimer = undefined;
      void this.sample().finally(() => { if (this.anyLive()) this.ensureSampler(); });
    }, Math.max(this.sampleMs, SCAN_BUDGET_FACTOR * this.procs.lastScanMs));
  }

  /**
   * Liveness polling of supervisors that are not our children: re-adopted ones (every tick) and,
   * as a fallback for a lost pipe report, launcher-started ones (every 4th tick).
   */
  private ensurePoller(): void {
    if (this.closed || this.pollTimer) return;
    this.pollTimer = this.clock.setTimeout(() => {
      this.pollTimer = undefined;
      const tick = ++this.pollTicks;
      let watching = false;
      for (const c of this.containers.values()) {
        if (c.child || c.endedAt !== undefined) continue;
        watching = true;
        if (c.notified && tick % 4 !== 0) continue;
        if (!this.supervisorAlive(c.record)) void this.ended(c);
      }
      if (watching) this.ensurePoller();
    }, this.pollMs);
  }

  private anyLive(): boolean {
    for (const c of this.containers.values()) if (c.endedAt === undefined) return true;
    return false;
  }

  /** Enforces memory limits: a container whose RSS is over its limit is killed at once (as an OOM kill would). */
  private async sample(): Promise<void> {
    const limited = [...this.containers.values()].filter((c) => c.endedAt === undefined && c.record.limits.memMiB > 0 && !c.limitation);
    if (limited.length === 0) return;
    const snap = await this.procs.snapshot();
    for (const c of limited) {
      const st = this.statistics(c, snap);
      const limit = c.record.limits.memMiB * 1024 * 1024;
      const used = st.mem_rss_bytes ?? 0;
      if (used <= limit) continue;
      const message = `Memory limit ${c.record.limits.memMiB} MiB exceeded: usage ${(used / 1048576).toFixed(1)} MiB`;
      c.limitation = { reason: 'REASON_CONTAINER_LIMITATION_MEMORY', message };
      this.log.warn({ container: c.record.containerId, limitMiB: c.record.limits.memMiB, usedBytes: used }, 'Container over its memory limit; destroying it');
      void this.destroy(c.record.containerId, 0);
    }
  }
}

/** Periodic /proc scans wait at least this many times the last scan's duration (≤ ~5 % of a core). */
const SCAN_BUDGET_FACTOR = 20;
/** How long the post-exit sweep may wait to share a /proc scan with other exits. */
const SWEEP_COALESCE_MS = 20;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let user: string | undefined;
function currentUser(): string {
  if (user === undefined) {
    try { user = userInfo().username; } catch { user = String(process.getuid?.() ?? 'unknown'); }
  }
  return user;
}
