/**
 * Tasks the chaos tests can count and clean up: each one appends its shell's
 * pid to `<dir>/<task id>.runs` and then execs the sleep, so a file with two
 * lines is a task run twice, and the pids let the test kill exactly the
 * processes its tasks became (never by name), also after a failure.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The command for fw-proc's --cmd: `{id}` is the task id. */
export const countedCmd = (dir: string, sleepS: number): string => `echo $$ >> ${dir}/{id}.runs; exec sleep ${sleepS}`;

/** Task id → how many times it started. */
export function runs(dir: string): Map<string, number> {
  const m = new Map<string, number>();
  if (!existsSync(dir)) return m;
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.runs')) continue;
    m.set(f.slice(0, -5), readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean).length);
  }
  return m;
}

/** SIGKILLs every process a counted task became (those still alive). */
export function killTasks(dir: string): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.runs')) continue;
    for (const pid of readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean).map(Number)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}

/** True while the process a task became is alive. */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

export function pids(dir: string, id: string): number[] {
  const f = path.join(dir, `${id}.runs`);
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).map(Number) : [];
}
