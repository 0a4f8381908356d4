/**
 * The files of a launch that belong to the containerizer: the task's sandbox
 * (with `stdout` and `stderr`) and its supervisor's exit record.
 *
 * Layout:
 *   <sandbox>/stdout, <sandbox>/stderr   created at launch (mkdir -p, O_CREAT|O_APPEND), never
 *                                        truncated; by the supervisor itself where it can (the
 *                                        berth-shim server engines: `-m`), so the agent's process
 *                                        makes none of a launch's files; else by the containerizer
 *                                        before it starts the supervisor (`prepareSandbox`).
 *   <runDir>.exit                        the exit record, written by the supervisor as
 *                                        <runDir>.exit.tmp then renamed (atomic). `runDir` is a
 *                                        per-container path in a directory shared by all
 *                                        containers (the agent's meta/runs/<container-id>): one
 *                                        file per task instead of a directory and a file.
 *   <runDir>/exit                        the same record as supervisors of earlier Berth versions
 *                                        wrote it (in a directory per container); still read, so
 *                                        an upgraded agent learns how their tasks ended.
 */
import { close, existsSync, open, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';

/** Where the supervisor of the container with this run path writes its exit record. */
export function exitRecordPath(runDir: string): string { return `${runDir}.exit`; }
/** The exit record being written (exists between the task's end and the rename). */
export function exitRecordTmpPath(runDir: string): string { return `${runDir}.exit.tmp`; }

/** Whether the container's supervisor left an exit record (either layout). */
export function hasExitRecord(runDir: string): boolean {
  return existsSync(exitRecordPath(runDir)) || existsSync(`${runDir}/exit`);
}

/** The exit record's text; throws (as readFileSync) when there is none. Synchronous: a few dozen bytes in the page cache. */
export function readExitRecordText(runDir: string): string {
  try {
    return readFileSync(exitRecordPath(runDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    try { return readFileSync(`${runDir}/exit`, 'utf8'); } catch { throw e; }
  }
}

/** The parsed exit record ({exitCode, signal}), or undefined when missing or unreadable. */
export function readExitRecord(runDir: string): { exitCode: number | null; signal: string | null } | undefined {
  let text: string;
  try { text = readExitRecordText(runDir); } catch { return undefined; }
  try {
    const v = JSON.parse(text) as { exitCode?: unknown; signal?: unknown };
    return { exitCode: typeof v.exitCode === 'number' ? v.exitCode : null, signal: typeof v.signal === 'string' ? v.signal : null };
  } catch {
    return undefined;
  }
}

/** Creates the sandbox (mkdir -p) with `stdout` and `stderr` (any content kept), for engines whose supervisor does not. */
export async function prepareSandbox(sandbox: string): Promise<void> {
  await mkdir(sandbox, { recursive: true });
  await Promise.all([touch(`${sandbox}/stdout`), touch(`${sandbox}/stderr`)]);
}

/** Creates `path` if missing, leaving any content (open O_APPEND|O_CREAT + close: two thread-pool ops, no write). */
function touch(path: string): Promise<void> {
  return new Promise((resolve, reject) => open(path, 'a', (e, fd) => {
    if (e) { reject(e); return; }
    close(fd, (e2) => (e2 ? reject(e2) : resolve()));
  }));
}
