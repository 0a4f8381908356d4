/**
 * Starting a container's supervisor: `berth-shim` (agent/shim/berth-shim.c), one small C process
 * per container that joins the cgroups, creates the namespaces, drops privileges, execs the task
 * and records its exit. Shims are forked by one long-lived `berth-shim --server`
 * (../shim-server.ts) started with an empty environment; each task's environment reaches only its
 * own final execve, after the privilege drop.
 *
 * Invariant: the supervisor is detached (own session, no stdio tied to the agent once launch
 * succeeded), so it survives an agent SIGKILL; the agent learns launch success or failure from one
 * line ("ok <supervisor-pid> <task-pid> <start-time>" | "err <message>").
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ShimLaunch {
  runDir: string;
  sandbox: string;
  /** cgroup.procs files the task joins before it runs. */
  procsFiles: string[];
  hostname: string;
  /** Ids to switch to (inside the user namespace when `userns` is set). */
  ids: { uid: number; gid: number; groups: number[] };
  userns?: { hostUid: number; count: number };
  netns: boolean;
  privateTmp: boolean;
  keepCaps: bigint;
  /** Host owner of the sandbox and its stdout/stderr (the shim chowns them). */
  owner: { uid: number; gid: number };
  /** The shim creates the sandbox (mkdir -p) itself (`-m`); otherwise it must exist before the start. */
  makeSandbox?: boolean;
  exe: string;
  argv: string[];
  env: Record<string, string>;
}

export interface Started {
  /** The supervisor when the agent spawned it (absent when a shim server forked it). */
  child?: ChildProcess;
  /** Resolves when the supervisor process has exited (attached at spawn, so never missed). */
  exited: Promise<void>;
  supervisorPid: number;
  taskPid: number;
  /** The supervisor's /proc starttime when it reported it (the shim does). */
  startTime?: number;
}

export type Engine = { kind: 'shim'; path: string };

const here = dirname(fileURLToPath(import.meta.url));
/** dist/agent/containerizer/linux → dist/agent/shim/berth-shim (where agent/shim/build.sh puts it). */
export const DEFAULT_SHIM_PATH = `${here}/../../shim/berth-shim`;
/** dist/agent/containerizer/linux → <repo>/agent/shim (sources, for on-demand builds). */
const SHIM_SOURCE_DIR = `${here}/../../../../agent/shim`;

async function executable(p: string): Promise<boolean> {
  try {
    await access(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function which(name: string): Promise<string | undefined> {
  for (const d of ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin']) {
    if (await executable(`${d}/${name}`)) return `${d}/${name}`;
  }
  return undefined;
}

/**
 * Finds the shim: explicit path, $BERTH_SHIM, the build output; if absent,
 * builds it with agent/shim/build.sh when a compiler exists. Resolves
 * undefined when no shim can be had.
 */
export async function locateShim(
  explicit: string | undefined,
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: object) => void,
): Promise<string | undefined> {
  for (const p of [explicit, process.env['BERTH_SHIM'], DEFAULT_SHIM_PATH]) {
    if (p && (await executable(p))) return p;
  }
  const build = `${SHIM_SOURCE_DIR}/build.sh`;
  if (!(await executable(build)) || !((await which('cc')) ?? (await which('gcc')))) return undefined;
  const out = explicit ?? DEFAULT_SHIM_PATH;
  await mkdir(dirname(out), { recursive: true }).catch(() => undefined);
  const ok = await new Promise<boolean>((resolve) => {
    execFile(build, [out], { timeout: 60_000 }, (err, _o, stderr) => {
      if (err) log('warn', 'building berth-shim failed', { error: String(err), stderr });
      resolve(!err);
    });
  });
  if (ok && (await executable(out))) {
    log('info', 'built berth-shim', { path: out });
    return out;
  }
  return undefined;
}

export interface ShellTools {
  sh: string;
  unshare: string;
  setpriv: string;
  mv: string;
  mount?: string;
  hostname?: string;
  /** util-linux maps id ranges (--map-users) through newuidmap/newgidmap (package uidmap). */
  newuidmap?: string;
}

export async function locateShellTools(): Promise<ShellTools | undefined> {
  const [sh, unshare, setpriv, mv, mount, hostname, newuidmap, newgidmap] = await Promise.all(
    ['sh', 'unshare', 'setpriv', 'mv', 'mount', 'hostname', 'newuidmap', 'newgidmap'].map(which),
  );
  if (!sh || !unshare || !setpriv || !mv) return undefined;
  return { sh, unshare, setpriv, mv, mount, hostname, newuidmap: newuidmap && newgidmap ? newuidmap : undefined };
}

export function shimArgs(l: ShimLaunch): string[] {
  const a = ['-r', l.runDir, '-s', l.sandbox, '-h', l.hostname];
  for (const f of l.procsFiles) a.push('-c', f);
  a.push('-u', String(l.ids.uid), '-g', String(l.ids.gid));
  if (l.ids.groups.length > 0) a.push('-G', l.ids.groups.join(','));
  if (l.userns) a.push('-U', `${l.userns.hostUid}:${l.userns.count}`);
  if (l.netns) a.push('-n');
  if (l.privateTmp) a.push('-t');
  if (l.makeSandbox) a.push('-m');
  a.push('-o', `${l.owner.uid}:${l.owner.gid}`);
  a.push('-k', l.keepCaps.toString(16), '-e', l.exe, '--', ...l.argv);
  return a;
}
