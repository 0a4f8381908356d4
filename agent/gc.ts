/**
 * Sandbox garbage collection, as Mesos' agent GC: the sandbox of a finished task (its terminal
 * update acknowledged, so no framework waits on it) is removed `delayMs` after it finished
 * (default one week, Mesos' --gc_delay); sooner, oldest first, while the work dir's filesystem is
 * fuller than the watermark (Mesos' disk-usage driven GC). Until then `/files` serves it.
 *
 * Invariants:
 *  - Only sandboxes handed to `schedule` (finished tasks) or found at start without a live task
 *    are ever removed; a task the agent still knows is never collected.
 *  - Removal happens off the launch path, batched per check, so a burst of task ends costs the
 *    launch path no deletions.
 *  - Bounded: at most MAX_TRACKED sandboxes wait; past that the oldest go first.
 */
import { readdir, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Clock, TimerHandle } from '../proto/clock.js';
import type { Logger } from '../proto/log.js';

export const DEFAULT_GC_DELAY_MS = 7 * 24 * 3600 * 1000;
export const DEFAULT_DISK_WATERMARK = 0.9;
const MAX_TRACKED = 100_000;

export interface SandboxGcOptions {
  workDir: string;
  clock: Clock;
  log: Logger;
  delayMs?: number;
  /** Fraction of the filesystem in use (0..1) above which sandboxes go before their delay. */
  watermark?: number;
  /** How often the GC runs (default one minute). */
  checkMs?: number;
  /** Tests: the filesystem's used fraction (default: statfs of the work dir). */
  diskUsage?: () => Promise<number>;
}

export class SandboxGc {
  /** Sandbox path → time it finished (ms); Map order = schedule order (roughly oldest first). */
  private readonly due = new Map<string, number>();
  private timer: TimerHandle | undefined;
  private running = false;
  private current: Promise<void> | undefined;
  private closed = false;
  readonly delayMs: number;
  readonly watermark: number;
  /** For tests and /state. */
  readonly stats = { removed: 0, runs: 0 };

  constructor(private readonly o: SandboxGcOptions) {
    this.delayMs = o.delayMs ?? DEFAULT_GC_DELAY_MS;
    this.watermark = o.watermark ?? DEFAULT_DISK_WATERMARK;
  }

  /** A finished task's sandbox becomes collectable `delayMs` after `finishedAt`. */
  schedule(sandbox: string, finishedAt = this.o.clock.now()): void {
    if (this.closed) return;
    this.due.delete(sandbox);
    this.due.set(sandbox, finishedAt);
    while (this.due.size > MAX_TRACKED) {
      const [oldest] = this.due.keys();
      this.due.delete(oldest!);
      void this.remove(oldest!);
    }
    this.arm();
  }

  get pending(): number { return this.due.size; }

  /**
   * After a restart: every sandbox on disk that no live task owns is scheduled from its last
   * modification (the moment its task last wrote), so the delay counts from about its end.
   */
  async recover(live: ReadonlySet<string>): Promise<void> {
    const fw = join(this.o.workDir, 'frameworks');
    for (const f of await dirs(fw)) {
      for (const e of await dirs(join(fw, f, 'executors'))) {
        for (const c of await dirs(join(fw, f, 'executors', e, 'runs'))) {
          const sb = join(fw, f, 'executors', e, 'runs', c);
          if (live.has(sb) || this.due.has(sb)) continue;
          const st = await stat(sb).catch(() => undefined);
          if (st) this.schedule(sb, st.mtimeMs);
        }
      }
    }
    this.arm();
  }

  /** One collection: what is past its delay, then oldest first while the disk is over the watermark. */
  async run(): Promise<void> {
    // One collection at a time; a caller arriving meanwhile gets a full collection after it.
    while (this.current) await this.current;
    if (this.closed) return;
    this.current = this.collect().finally(() => { this.current = undefined; });
    await this.current;
  }

  private async collect(): Promise<void> {
    this.running = true;
    this.stats.runs++;
    try {
      const now = this.o.clock.now();
      for (const [sb, at] of [...this.due]) if (now - at >= this.delayMs) await this.remove(sb);
      let usage = await this.usage();
      for (const sb of [...this.due.keys()]) {
        if (usage <= this.watermark) break;
        this.o.log.info({ sandbox: sb, usage, watermark: this.watermark }, 'Disk above the GC watermark: removing a finished sandbox before its delay');
        await this.remove(sb);
        usage = await this.usage();
      }
    } finally {
      this.running = false;
      this.arm();
    }
  }

  close(): void {
    this.closed = true;
    this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.closed || this.timer || this.due.size === 0) return;
    this.timer = this.o.clock.setTimeout(() => { this.timer = undefined; void this.run(); }, this.o.checkMs ?? 60_000);
  }

  private async usage(): Promise<number> {
    if (this.o.diskUsage) return this.o.diskUsage();
    try {
      const s = await statfs(this.o.workDir);
      return s.blocks > 0 ? 1 - s.bavail / s.blocks : 0;
    } catch {
      return 0;
    }
  }

  /** Removes a sandbox and the directories above it that it leaves empty (up to `frameworks/`). */
  private async remove(sb: string): Promise<void> {
    this.due.delete(sb);
    const rel = relative(this.o.workDir, sb).split(sep);
    if (rel[0] !== 'frameworks' || rel.length !== 6 || rel.includes('..')) return; // never outside the layout
    try {
      await rm(sb, { recursive: true, force: true });
      this.stats.removed++;
    } catch (err) {
      this.o.log.warn({ sandbox: sb, err: (err as Error).message }, 'Cannot remove a finished sandbox');
      return;
    }
    // runs/ → <eid>/ → executors/ → <fid>/ : rmdir refuses what is still in use.
    let d = dirname(sb);
    for (let i = 0; i < 4; i++, d = dirname(d)) if (!(await rmdir(d).then(() => true, () => false))) break;
  }
}

async function dirs(p: string): Promise<string[]> {
  try {
    return (await readdir(p, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}
