/**
 * Facts about processes the containerizer needs to tell a live supervisor from
 * a recycled pid, and the exit record the supervisor leaves behind.
 */
import { readFile } from 'node:fs/promises';
import { readExitRecord as readExitRecordSync } from '../files.js';

let bootIdCache: string | undefined;

export async function bootId(): Promise<string> {
  bootIdCache ??= (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  return bootIdCache;
}

/** /proc/<pid>/stat field 22 (starttime, clock ticks since boot); undefined when the pid does not exist. */
export async function procStartTime(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and ')': fields resume after the LAST ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); a zombie has ended already.
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and is the same process as recorded (not a reused pid). */
export async function isSameProcess(pid: number, startTime: number): Promise<boolean> {
  return (await procStartTime(pid)) === startTime;
}

/** The supervisor's exit record (`<runDir>.exit`, see ../files.ts): the format shared with the posix containerizer. */
export interface ExitRecord {
  exitCode: number | null;
  signal: string | null;
}

export async function readExitRecord(runDir: string): Promise<ExitRecord | undefined> {
  // Synchronously: a few dozen bytes the supervisor just wrote (see posix.ts `ended`).
  return readExitRecordSync(runDir);
}

/** Whether `pid` has a SIGTERM handler (SigCgt bit 15); a pid-namespace init without one never sees SIGTERM from outside. */
export async function catchesSigterm(pid: number): Promise<boolean> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^SigCgt:\s*([0-9a-f]+)/m.exec(status);
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 14n)) !== 0n;
  } catch {
    return false;
  }
}
