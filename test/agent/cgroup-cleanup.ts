/** Test cleanup shared by suites that run real linux containers under a private cgroup root. */
import { detectHierarchy } from '../../agent/containerizer/linux/cgroups/detect.js';
import { killAll } from '../../agent/containerizer/linux/cgroups/freezer.js';
import { rootDirs } from '../../agent/containerizer/linux/cgroups/hierarchy.js';

/** Removes every cgroup under `root` (killing what is inside) and `root` itself. */
export async function removeCgroups(root: string): Promise<void> {
  const hier = await detectHierarchy(root);
  if (!hier) return;
  for (const id of await hier.listContainers()) {
    const h = hier.handle(id);
    await killAll(hier, h).catch(() => undefined);
    await hier.remove(h).catch(() => undefined);
  }
  for (const d of rootDirs(hier)) await hier.fs.rmdir(d).catch(() => undefined);
}
