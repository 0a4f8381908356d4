/**
 * Starting a container's supervisor.
 *
 * Preferred engine: `berth-shim` (agent/shim/berth-shim.c), one small C
 * process per container that joins the cgroups, creates the namespaces, drops
 * privileges, execs the task and records its exit. Fallback engine when the
 * binary is missing and no C compiler exists: a /bin/sh wrapper around
 * util-linux `unshare` and `setpriv` (slower, and the wrapper itself lives in
 * the container's cgroup, so a destroyed container has no exit record and is
 * reported as SIGKILL).
 *
 * Invariant for both engines: the supervisor is started detached (own
 * session, no stdio tied to the agent once launch succeeded), so it survives
 * an agent SIGKILL; the agent learns launch success or failure from one line
 * on fd 3 ("ok <supervisor-pid> <task-pid>" | "err <message>").
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';

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
  /** Host owner of the sandbox and its stdout/stderr (the shim chowns them; the shell engine leaves it to the caller). */
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

export type Engine = { kind: 'shim'; path: string } | { kind: 'shell'; tools: ShellTools };

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

/** Wrapper of the shell engine: joins the cgroups as itself, reports, runs the task, records the exit. */
const SHELL_WRAPPER = `
rd=$1 sb=$2 mv=$3; shift 3
while [ "$1" != -- ]; do
  printf %s $$ > "$1" 2>/dev/null || { echo "err cannot join cgroup $1" >&3; exit 125; }
  shift
done
shift
echo "ok $$ $$" >&3
exec 3>&-
"$@" </dev/null >>"$sb/stdout" 2>>"$sb/stderr"
c=$?
if [ $c -gt 128 ]; then r="{\\"exitCode\\":null,\\"signal\\":\\"SIG$(kill -l $((c - 128)))\\"}"
else r="{\\"exitCode\\":$c,\\"signal\\":null}"; fi
printf '%s\\n' "$r" > "$rd.exit.tmp" && "$mv" -f "$rd.exit.tmp" "$rd.exit"
`;

/** Runs inside the new namespaces: hostname, private /tmp, then the privilege drop via setpriv. */
const SHELL_INNER = `
h=$1 tmp=$2 hn=$3 mnt=$4; shift 4
[ -n "$hn" ] && "$hn" "$h"
[ "$tmp" = 1 ] && [ -n "$mnt" ] && "$mnt" -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
exec "$@"
`;

function capNames(mask: bigint): string {
  const names = [
    'chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid', 'setuid', 'setpcap',
    'linux_immutable', 'net_bind_service', 'net_broadcast', 'net_admin', 'net_raw', 'ipc_lock', 'ipc_owner',
    'sys_module', 'sys_rawio', 'sys_chroot', 'sys_ptrace', 'sys_pacct', 'sys_admin', 'sys_boot', 'sys_nice',
    'sys_resource', 'sys_time', 'sys_tty_config', 'mknod', 'lease', 'audit_write', 'audit_control', 'setfcap',
    'mac_override', 'mac_admin', 'syslog', 'wake_alarm', 'block_suspend', 'audit_read', 'perfmon', 'bpf',
    'checkpoint_restore',
  ];
  const keep = names.filter((_, i) => (mask >> BigInt(i)) & 1n);
  return ['-all', ...keep.map((n) => `+${n}`)].join(',');
}

function shellArgs(t: ShellTools, l: ShimLaunch): string[] {
  const unshare = [t.unshare, '--pid', '--fork', '--kill-child', '--mount-proc', '--uts', '--ipc'];
  if (l.netns) unshare.push('--net');
  if (l.userns) {
    if (!t.newuidmap) {
      throw new Error('a root task needs a user namespace with a uid range: install berth-shim (agent/shim/build.sh) or newuidmap (package uidmap)');
    }
    const m = `0:${l.userns.hostUid}:${l.userns.count}`;
    unshare.push('--user', `--map-users=${m}`, `--map-groups=${m}`);
  }
  const setpriv = [t.setpriv, '--no-new-privs', `--bounding-set=${capNames(l.keepCaps)}`, '--inh-caps=-all'];
  setpriv.push(`--reuid=${l.ids.uid}`, `--regid=${l.ids.gid}`);
  setpriv.push(l.ids.groups.length > 0 ? `--groups=${l.ids.groups.join(',')}` : '--clear-groups');
  return [
    '-c', SHELL_WRAPPER, 'berth-wrap', l.runDir, l.sandbox, t.mv, ...l.procsFiles, '--',
    ...unshare, '--', t.sh, '-c', SHELL_INNER, 'berth-inner', l.hostname, l.privateTmp ? '1' : '0',
    t.hostname ?? '', t.mount ?? '', ...setpriv, '--', l.exe, ...l.argv.slice(1),
  ];
}

/** Spawns the supervisor and resolves once it reported the task running; rejects with its error otherwise. */
export function startSupervisor(engine: Engine, l: ShimLaunch): Promise<Started> {
  return new Promise<Started>((resolve, reject) => {
    let file: string;
    let args: string[];
    try {
      [file, args] = engine.kind === 'shim' ? [engine.path, shimArgs(l)] : [engine.tools.sh, shellArgs(engine.tools, l)];
    } catch (err) {
      reject(err);
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        detached: true,
        stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
        env: l.env,
        cwd: l.sandbox,
      });
    } catch (err) {
      reject(err);
      return;
    }
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const status = child.stdio[3] as Readable;
    let buf = '';
    let settled = false;
    const settle = (err: Error | undefined, pids?: [number, number, number | undefined]): void => {
      if (settled) return;
      settled = true;
      status.destroy();
      // The child stays referenced while it runs: a pending wait() keeps the process alive.
      // The containerizer's close() unrefs it; the supervisor never depends on us either way.
      if (err) reject(err);
      else resolve({ child, exited, supervisorPid: pids![0], taskPid: pids![1], startTime: pids![2] });
    };
    child.once('error', (err) => settle(err));
    status.setEncoding('utf8');
    status.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      const m = /^ok (\d+) (\d+)(?: (\d+))?$/.exec(line);
      if (m) settle(undefined, [Number(m[1]), Number(m[2]), m[3] ? Number(m[3]) : undefined]);
      else settle(new Error(line.replace(/^err /, '')));
    });
    status.on('error', () => undefined);
    status.on('end', () => settle(new Error(`supervisor exited before reporting (${buf.trim() || 'no output'})`)));
  });
}
