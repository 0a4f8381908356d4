/**
 * Ending every process of a container, with no escape.
 *
 * Signalling pids one by one races with fork (a fork bomb makes new pids
 * faster than we read cgroup.procs) and a process that called setsid() has
 * left the process group, so neither kill(-pgid) nor a pid walk suffices.
 * Invariant: a SIGKILL sweep is done either atomically by the kernel (v2
 * cgroup.kill) or while the cgroup is frozen (v1 freezer.state / v2
 * cgroup.freeze), so no process can fork between the listing and the kill;
 * the sweep repeats until cgroup.procs is empty.
 */
import type { CgroupFs } from './fs.js';
import { isErrno, parseKeyed, readOptional } from './fs.js';
import type { CgroupHandle, Hierarchy } from './hierarchy.js';
import { sleep } from './hierarchy.js';
import { V2Hierarchy } from './v2.js';

async function waitState(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(delay);
  }
}

/** Freezes the container; resolves true once the kernel reports it frozen. */
export async function freeze(h: CgroupHandle, fs: CgroupFs, timeoutMs = 2000): Promise<boolean> {
  const dir = h.dir('freezer');
  if (dir === undefined) return false;
  try {
    if (h.version === 1) {
      await fs.write(`${dir}/freezer.state`, 'FROZEN');
      return await waitState(async () => (await fs.read(`${dir}/freezer.state`)).trim() === 'FROZEN', timeoutMs);
    }
    await fs.write(`${dir}/cgroup.freeze`, '1');
    return await waitState(async () => {
      const ev = await readOptional(fs, `${dir}/cgroup.events`);
      return ev !== undefined && parseKeyed(ev).get('frozen') === 1;
    }, timeoutMs);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENODEV')) return false;
    throw err;
  }
}

export async function thaw(h: CgroupHandle, fs: CgroupFs): Promise<void> {
  const dir = h.dir('freezer');
  if (dir === undefined) return;
  try {
    if (h.version === 1) await fs.write(`${dir}/freezer.state`, 'THAWED');
    else await fs.write(`${dir}/cgroup.freeze`, '0');
  } catch (err) {
    if (!isErrno(err, 'ENOENT', 'ENODEV')) throw err;
  }
}

function signalPids(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if (!isErrno(err, 'ESRCH')) throw err;
    }
  }
}

/** Sends `signal` to every process currently in the container (no freeze: used for the graceful SIGTERM). */
export async function signalAll(hier: Hierarchy, h: CgroupHandle, signal: NodeJS.Signals): Promise<number> {
  const pids = await hier.pids(h);
  signalPids(pids, signal);
  return pids.length;
}

/** Waits until the container's cgroup has no process; false on timeout. */
export function waitEmpty(hier: Hierarchy, h: CgroupHandle, timeoutMs: number): Promise<boolean> {
  return waitState(async () => (await hier.pids(h)).length === 0, timeoutMs);
}

/**
 * SIGKILLs every process of the container and resolves once cgroup.procs is
 * empty. Throws if processes remain after `timeoutMs` (e.g. stuck in D state).
 */
export async function killAll(hier: Hierarchy, h: CgroupHandle, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await hier.pids(h)).length === 0) return;
    if (!(hier instanceof V2Hierarchy && (await hier.kill(h)))) {
      const frozen = await freeze(h, hier.fs);
      try {
        signalPids(await hier.pids(h), 'SIGKILL');
      } finally {
        // SIGKILL is delivered to frozen tasks only once they are thawed.
        if (frozen || h.dir('freezer') !== undefined) await thaw(h, hier.fs);
      }
    }
    if (await waitEmpty(hier, h, Math.min(1000, Math.max(0, deadline - Date.now())))) return;
    if (Date.now() > deadline) {
      const left = await hier.pids(h);
      throw new Error(`processes ${left.join(',')} of container ${h.containerId} survived SIGKILL`);
    }
  }
}
