/**
 * Can this agent use the linux containerizer? Called once at agent start; the
 * agent logs the verdict and falls back to posix when `ok` is false.
 *
 * Needs: root; the cpu, memory and pids controllers writable (a probe cgroup
 * is created and removed in each hierarchy); and pid/mount/uts/ipc namespaces
 * usable (a trivial `unshare` run).
 */
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { detectHierarchy } from './cgroups/detect.js';
import { removeRootDirs, rootChainDirs, type HierarchyLabel } from './cgroups/hierarchy.js';
import { locateShellTools } from './shim.js';

export interface LinuxProbe {
  ok: boolean;
  reason?: string;
  cgroupVersion: 1 | 2 | 'hybrid';
}

function versionOf(label: HierarchyLabel | undefined): 1 | 2 | 'hybrid' {
  return label === 'v2' ? 2 : label === 'hybrid' ? 'hybrid' : 1;
}

export async function probeLinux(cgroupRoot = 'berth'): Promise<LinuxProbe> {
  const hier = await detectHierarchy(cgroupRoot).catch(() => undefined);
  const cgroupVersion = versionOf(hier?.label);
  if (process.platform !== 'linux') return { ok: false, reason: `platform is ${process.platform}`, cgroupVersion };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'the agent does not run as root', cgroupVersion };
  if (!hier) return { ok: false, reason: 'no cgroup hierarchy with cpu, memory or pids controllers', cgroupVersion };
  const missing = (['cpu', 'memory', 'pids'] as const).filter((c) => !hier.controllers.has(c));
  // The probe leaves nothing behind: the root cgroups it had to create are removed again.
  const roots = rootChainDirs(hier, cgroupRoot);
  const preexisting = new Set((await Promise.all(roots.map(async (d) => ((await exists(d)) ? d : undefined)))).filter((d) => d !== undefined));
  try {
    await hier.init();
    const h = hier.handle(`probe-${process.pid}-${randomBytes(3).toString('hex')}`);
    await hier.create(h);
    await hier.remove(h);
  } catch (err) {
    return { ok: false, reason: `cgroups not writable: ${(err as Error).message}`, cgroupVersion };
  } finally {
    await removeRootDirs(hier, cgroupRoot, preexisting);
  }
  // v2 learns its controllers at init.
  const stillMissing = missing.filter((c) => !hier.controllers.has(c));
  if (stillMissing.length > 0) return { ok: false, reason: `cgroup controllers unavailable: ${stillMissing.join(', ')}`, cgroupVersion };
  const tools = await locateShellTools();
  if (!tools) return { ok: false, reason: 'util-linux unshare/setpriv not found', cgroupVersion };
  const nsError = await new Promise<string | undefined>((resolve) => {
    execFile(tools.unshare, ['--pid', '--fork', '--mount-proc', '--uts', '--ipc', '--', tools.sh, '-c', 'exit 0'], { timeout: 10_000 }, (err, _o, stderr) =>
      resolve(err ? `${err.message} ${stderr}`.trim() : undefined),
    );
  });
  if (nsError) return { ok: false, reason: `namespaces unusable: ${nsError}`, cgroupVersion };
  return { ok: true, cgroupVersion };
}

async function exists(p: string): Promise<boolean> {
  try { await access(p); return true; } catch { return false; }
}
