/**
 * Host id blocks for root tasks' user namespaces: each container that runs as root gets its own
 * block of 65,536 host ids (uid and gid 0..65535 inside map to it), as Kubernetes' user namespaces
 * and Podman's `--userns=auto` do, so root tasks of different tenants are different host users
 * and cannot touch each other's files.
 *
 * Invariants:
 *  - A block belongs to at most one live container of this agent; it is taken at launch and
 *    released only once the container is gone and its sandbox has been sealed (owned by root,
 *    mode 0700: see LinuxContainerizer.finalize), so a later container given the same block finds
 *    nothing of its predecessor's that it could reach.
 *  - The pool is this agent's alone: agents on one host must be given disjoint pools
 *    (`--userns-uid-range`; `berth up` does it).
 *  - Recovery re-marks the blocks of re-adopted containers before anything is launched.
 */
import { BerthError } from '../../../proto/errors.js';

export const USERNS_BLOCK = 65_536;

export class UsernsBlocks {
  private readonly owner = new Map<number, string>();
  private readonly byContainer = new Map<string, number>();
  readonly blocks: number;

  constructor(private readonly pool: { start: number; count: number }) {
    this.blocks = Math.floor(pool.count / USERNS_BLOCK);
    if (!(pool.start > 0) || this.blocks < 1) {
      throw new BerthError('INVALID', `user-namespace id pool ${pool.start}:${pool.count} must start above 0 and hold at least one block of ${USERNS_BLOCK} ids`);
    }
  }

  /** Host uid of block 0 of `containerId`'s namespace; the lowest free block. Throws when all are in use. */
  acquire(containerId: string): number {
    const held = this.byContainer.get(containerId);
    if (held !== undefined) return held;
    for (let b = 0; b < this.blocks; b++) {
      const hostUid = this.pool.start + b * USERNS_BLOCK;
      if (this.owner.has(hostUid)) continue;
      this.owner.set(hostUid, containerId);
      this.byContainer.set(containerId, hostUid);
      return hostUid;
    }
    throw new BerthError('CONFLICT', `all ${this.blocks} user-namespace id blocks of this agent are in use by running root tasks`);
  }

  /** Marks a recovered container's block as taken (false if another container holds it). */
  adopt(containerId: string, hostUid: number): boolean {
    const other = this.owner.get(hostUid);
    if (other !== undefined && other !== containerId) return false;
    this.owner.set(hostUid, containerId);
    this.byContainer.set(containerId, hostUid);
    return true;
  }

  release(containerId: string): void {
    const hostUid = this.byContainer.get(containerId);
    if (hostUid === undefined) return;
    this.byContainer.delete(containerId);
    this.owner.delete(hostUid);
  }

  get inUse(): number { return this.owner.size; }
}
