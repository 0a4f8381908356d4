/**
 * Reading Linux's /proc: process identity (pid + start time + boot id, which
 * together name one process for the life of the host) and whole-table scans
 * grouped by session, the unit the posix containerizer measures and kills.
 *
 * A full scan costs ~20 µs per process, so callers share scans through
 * `ProcTable.snapshot(after)`: every caller asking within the same turn of the
 * event loop gets the same scan, and a scan is reused as long as it was taken
 * after the moment the caller cares about.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  /** One-letter state: R, S, D, Z (zombie), T, ... */
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  /** Clock ticks. */
  utime: number;
  stime: number;
  /** Clock ticks of reaped children. */
  cutime: number;
  cstime: number;
  threads: number;
  /** Clock ticks since boot at which the process started: with the boot id, identifies it. */
  startTime: number;
  rssPages: number;
}

/** Parses `/proc/<pid>/stat`. The comm field may hold spaces and ')' so we split after the last ')'. */
export function parseStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number.parseInt(text, 10);
  const f = text.slice(close + 2).split(' ');
  if (f.length < 22) return undefined;
  const n = (i: number): number => Number(f[i]);
  // f[0] is field 3 of proc(5); field k is f[k - 3].
  return {
    pid, state: f[0]!, ppid: n(1), pgid: n(2), sid: n(3), utime: n(11), stime: n(12), cutime: n(13), cstime: n(14),
    threads: n(17), startTime: n(19), rssPages: n(21),
  };
}

/**
 * One buffer for every stat read: a stat line is a few hundred bytes (comm is at most 64), and
 * readFileSync's fstat and fresh buffer per file were half of a whole-table scan's cost.
 */
const statBuf = Buffer.allocUnsafe(4096);

export function readStat(pid: number): ProcStat | undefined {
  let fd: number;
  try { fd = openSync(`/proc/${pid}/stat`, 'r'); } catch { return undefined; }
  try {
    const n = readSync(fd, statBuf, 0, statBuf.length, 0);
    return parseStat(statBuf.toString('latin1', 0, n));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

let cachedBootId: string | undefined;
/** `/proc/sys/kernel/random/boot_id`: changes on every boot, so a (pid, start time) pair from another boot means nothing. */
export function bootId(): string {
  if (cachedBootId === undefined) {
    try { cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim(); } catch { cachedBootId = 'unknown-boot'; }
  }
  return cachedBootId;
}

function getconf(name: string, fallback: number): number {
  try {
    const v = Number(execFileSync('getconf', [name], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}

let ticks: number | undefined;
let page: number | undefined;
/** USER_HZ (100 on every mainstream Linux build, asked once to be sure). */
export function clockTicks(): number { return (ticks ??= getconf('CLK_TCK', 100)); }
export function pageSize(): number { return (page ??= getconf('PAGESIZE', 4096)); }

/**
 * True when `pid` is alive and is the very process that started at `startTime` in this boot.
 * A zombie counts as dead: it runs nothing and its exit record is already written.
 */
export function isSameProcess(pid: number, startTime: number): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  const st = readStat(pid);
  return st !== undefined && st.startTime === startTime && st.state !== 'Z';
}

/** Reads the NUL-separated argv of a process ([] if gone or unreadable). */
export function readCmdline(pid: number): string[] {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    return raw.split('\0').filter((s, i, a) => s !== '' || i < a.length - 1);
  } catch {
    return [];
  }
}

export interface ProcSnapshot {
  /** process.hrtime.bigint() when the scan started: every process alive then is in it. */
  takenAt: bigint;
  bySid: Map<number, ProcStat[]>;
  byPid: Map<number, ProcStat>;
}

export function scanProc(): ProcSnapshot {
  const takenAt = process.hrtime.bigint();
  const bySid = new Map<number, ProcStat[]>();
  const byPid = new Map<number, ProcStat>();
  let names: string[];
  try { names = readdirSync('/proc'); } catch { names = []; }
  for (const d of names) {
    const c = d.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const st = readStat(Number(d));
    if (!st) continue;
    byPid.set(st.pid, st);
    const list = bySid.get(st.sid);
    if (list) list.push(st); else bySid.set(st.sid, [st]);
  }
  return { takenAt, bySid, byPid };
}

/**
 * Coalesces scans: concurrent callers share one, and a recent-enough scan is reused. A caller that
 * can wait (`lazyMs`) joins a scan up to that much later, shared with every other such caller (and
 * with any immediate scan that happens first): e.g. the sweep after each container exit, which at
 * hundreds of exits per second would otherwise read all of /proc once per exit.
 */
export class ProcTable {
  private last: ProcSnapshot | undefined;
  private pending: Promise<ProcSnapshot> | undefined;
  private lazy: { promise: Promise<ProcSnapshot>; resolve: (s: ProcSnapshot) => void; timer: NodeJS.Timeout } | undefined;

  /** A snapshot taken no earlier than `after` (hrtime ns; default: now, i.e. a fresh one). */
  snapshot(after: bigint = process.hrtime.bigint(), lazyMs = 0): Promise<ProcSnapshot> {
    if (this.last && this.last.takenAt >= after) return Promise.resolve(this.last);
    if (lazyMs > 0 && !this.pending) {
      // A lazy scan not taken yet starts after `after`, so it qualifies.
      if (!this.lazy) {
        let resolve!: (s: ProcSnapshot) => void;
        const promise = new Promise<ProcSnapshot>((r) => { resolve = r; });
        const timer = setTimeout(() => { this.lazy = undefined; resolve(this.scan()); }, lazyMs);
        this.lazy = { promise, resolve, timer };
      }
      return this.lazy.promise;
    }
    // A scan scheduled but not started yet begins after `after`, so it qualifies.
    this.pending ??= new Promise((resolve) => {
      setImmediate(() => {
        this.pending = undefined;
        resolve(this.scan());
      });
    });
    return this.pending;
  }

  /** ms the last scan took (it grows with the number of processes on the host). */
  lastScanMs = 0;

  private scan(): ProcSnapshot {
    const t0 = performance.now();
    this.last = scanProc();
    this.lastScanMs = performance.now() - t0;
    const lazy = this.lazy;
    if (lazy) {
      // Lazy waiters asked before this scan started: it serves them too.
      this.lazy = undefined;
      clearTimeout(lazy.timer);
      lazy.resolve(this.last);
    }
    return this.last;
  }
}

/** Whether `pid` has a SIGTERM handler (SigCgt bit 15); a pid-namespace init without one never sees SIGTERM from outside. */
export function catchesSigterm(pid: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 14n)) !== 0n;
  } catch {
    return false;
  }
}
