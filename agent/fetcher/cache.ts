/**
 * The fetcher's cache (Mesos `--fetcher_cache_size`): downloaded files kept in
 * `<work_dir>/fetcher-cache`, bounded in total bytes, least recently used
 * evicted first. Like Mesos', the cache does not survive an agent restart: it
 * is emptied at start, so no stale or half-written entry is ever served.
 *
 * Invariants:
 *  - an entry is visible only once its file is complete (written as `.part`,
 *    renamed into place) and its size is accounted;
 *  - one download per key at a time: concurrent fetches of the same key wait
 *    for the one in flight;
 *  - a file larger than the whole cache is never cached (the caller gets it
 *    uncached instead);
 *  - keys include the task's user, so a file one user could read is never
 *    handed to another from the cache.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';

interface Entry { path: string; size: number }

export const DEFAULT_CACHE_BYTES = 2 * 2 ** 30;

export class FetcherCache {
  private readonly lru: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<Entry | undefined>>();
  private ready: Promise<void> | undefined;

  constructor(readonly dir: string, readonly maxBytes = DEFAULT_CACHE_BYTES) {
    this.lru = new LRUCache<string, Entry>({
      maxSize: maxBytes,
      sizeCalculation: (e) => Math.max(1, e.size),
      dispose: (e) => { unlink(e.path).catch(() => undefined); },
    });
  }

  /** Empties the cache directory (once, before the first use). */
  private init(): Promise<void> {
    this.ready ??= rm(this.dir, { recursive: true, force: true }).then(() => mkdir(this.dir, { recursive: true })).then(() => undefined);
    return this.ready;
  }

  static key(user: string, uri: string): string {
    return createHash('sha256').update(`${user}\0${uri}`).digest('hex');
  }

  /** Bytes held. */
  get size(): number { return this.lru.calculatedSize; }

  /**
   * The cached file of `key`, produced by `produce(path)` on a miss. Resolves undefined when the
   * file could not be cached (larger than the cache): the caller then fetches without the cache.
   * The returned path may be evicted later: copy it at once, and refetch if it has vanished.
   */
  async get(key: string, produce: (path: string) => Promise<void>): Promise<string | undefined> {
    await this.init();
    const hit = this.lru.get(key);
    if (hit) return hit.path;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fill(key, produce).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return (await p)?.path;
  }

  private async fill(key: string, produce: (path: string) => Promise<void>): Promise<Entry | undefined> {
    const path = join(this.dir, `${key}.${randomUUID()}`);
    const part = `${path}.part`;
    try {
      await produce(part);
      const size = (await stat(part)).size;
      if (size > this.maxBytes) { await rm(part, { force: true }); return undefined; }
      await rename(part, path);
      const e = { path, size };
      this.lru.set(key, e);
      return e;
    } catch (err) {
      await rm(part, { force: true });
      throw err;
    }
  }

  /** Drops `key` (its file vanished or is bad). */
  forget(key: string): void { this.lru.delete(key); }
}
