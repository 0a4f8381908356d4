/**
 * File-backed registry: a snapshot plus a log tail in `<dir>`.
 *
 *   registry.snapshot   the whole state up to sequence number `seq` (JSON), replaced atomically
 *   registry.log        events after it, one JSON line each: {"seq": n, ...event}
 *   registry.quarantine entries that could not be replayed, with why (never read back)
 *
 * Each append is validated (registryEventError: every rule replay will apply) before it is
 * queued, then written and fsynced before it resolves. Appends issued while a write is in
 * flight are batched into the next write (group commit): one fsync per batch. Every
 * `compactEvery` events the state is written as a new snapshot (temp file, fsync, rename,
 * directory fsync) and the log truncated, so a restart reads one snapshot and a short tail
 * instead of the whole history.
 *
 * Crash safety:
 *  - A torn last line (crash mid-write) is dropped on load with a warning: its event was never
 *    acknowledged, because acknowledgement waits for fsync.
 *  - A crash between the snapshot rename and the log truncation leaves log lines the snapshot
 *    already holds; their sequence numbers are at most the snapshot's, so they are skipped.
 *  - Any other unreadable or invalid line is quarantined (copied to registry.quarantine and
 *    logged loudly) and replay goes on: one bad entry cannot stop the master from starting.
 *    A snapshot that does not parse is fatal: it is written atomically, so that is real damage.
 */
import {
  closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, appendFileSync,
} from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../proto/errors.js';
import type { Logger } from '../../proto/log.js';
import type { AgentInfo, FrameworkInfo } from '../../proto/types.js';
import { apply, emptyState, rememberRemoved, registryEventError, type Registry, type RegistryEvent, type RegistryState } from './types.js';
import { immediateScheduler, type DeferredScheduler } from '../scheduler.js';

export interface FileRegistryOptions {
  /** Events between snapshots (default 10,000). */
  compactEvery?: number;
}

interface SnapshotFile {
  version: 1;
  seq: number;
  starts: number;
  agents: [string, AgentInfo][];
  frameworks: [string, FrameworkInfo][];
  removed_frameworks: string[];
  unreachable: [string, number][];
}

/** Writes all of `data` at the current offset of `fd`; a short write is retried, never ignored. */
function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) {
    const n = writeSync(fd, data, off, data.length - off);
    if (n <= 0) throw new BerthError('IO', `registry: write returned ${n} with ${data.length - off} bytes left`);
    off += n;
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

export class FileRegistry implements Registry {
  private fd = -1;
  private queue: { line: string; ev: RegistryEvent; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing = false;
  private seq = 0;
  private sinceSnapshot = 0;
  private state: RegistryState = emptyState();
  private readonly compactEvery: number;
  readonly file: string;
  readonly snapshotFile: string;
  readonly quarantineFile: string;
  /** What the last load did (for logs, tests and the bench). */
  lastLoad = { fromSnapshot: false, snapshotSeq: 0, tailEvents: 0, quarantined: 0 };

  constructor(private readonly dir: string, private readonly log?: Logger, private readonly scheduler: DeferredScheduler = immediateScheduler, opts: FileRegistryOptions = {}) {
    const existed = existsSync(dir);
    mkdirSync(dir, { recursive: true });
    if (!existed) fsyncDir(path.dirname(path.resolve(dir)));
    this.file = path.join(dir, 'registry.log');
    this.snapshotFile = path.join(dir, 'registry.snapshot');
    this.quarantineFile = path.join(dir, 'registry.quarantine');
    this.compactEvery = Math.max(1, opts.compactEvery ?? 10_000);
  }

  async load(): Promise<RegistryState> {
    this.state = emptyState();
    this.lastLoad = { fromSnapshot: false, snapshotSeq: 0, tailEvents: 0, quarantined: 0 };
    if (existsSync(this.snapshotFile)) this.readSnapshot();
    let torn = -1; // byte offset where a torn last line starts
    let needsNewline = false;
    if (existsSync(this.file)) {
      const buf = readFileSync(this.file);
      let start = 0;
      let lineNo = 0;
      while (start < buf.length) {
        lineNo++;
        const nl = buf.indexOf(10, start);
        const end = nl < 0 ? buf.length : nl;
        const line = buf.subarray(start, end).toString('utf8');
        if (line !== '') {
          let parsed: (RegistryEvent & { seq?: number }) | undefined;
          try { parsed = JSON.parse(line) as RegistryEvent & { seq?: number }; } catch { parsed = undefined; }
          if (parsed === undefined && nl < 0) {
            torn = start;
            this.log?.warn({ file: this.file }, 'dropping torn last registry line (it was never acknowledged)');
          } else if (parsed === undefined) {
            this.quarantine(line, lineNo, 'not valid JSON');
          } else {
            if (nl < 0) needsNewline = true;
            // Lines from before sequence numbers existed count in order.
            const seq = typeof parsed.seq === 'number' ? parsed.seq : this.seq + 1;
            if (seq <= this.lastLoad.snapshotSeq) { start = end + 1; continue; } // already in the snapshot
            const { seq: _seq, ...ev } = parsed;
            void _seq;
            const err = registryEventError(ev);
            if (err) this.quarantine(line, lineNo, err);
            else {
              apply(this.state, ev as RegistryEvent);
              this.lastLoad.tailEvents++;
            }
            this.seq = Math.max(this.seq, seq);
          }
        }
        start = end + 1;
      }
    }
    const existed = existsSync(this.file);
    this.fd = openSync(this.file, 'a+');
    if (!existed) fsyncDir(this.dir);
    if (torn >= 0) ftruncateSync(this.fd, torn);
    else if (needsNewline) writeAll(this.fd, Buffer.from('\n'));
    this.sinceSnapshot = this.lastLoad.tailEvents + this.lastLoad.quarantined;
    if (this.sinceSnapshot >= this.compactEvery || this.lastLoad.quarantined > 0) this.compact();
    return cloneState(this.state);
  }

  private readSnapshot(): void {
    let snap: SnapshotFile;
    try {
      snap = JSON.parse(readFileSync(this.snapshotFile, 'utf8')) as SnapshotFile;
    } catch (e) {
      throw new BerthError('IO', `registry snapshot ${this.snapshotFile} is corrupt (${(e as Error).message}); it is written atomically, so this is disk damage: restore it from a backup`);
    }
    if (snap.version !== 1 || typeof snap.seq !== 'number') throw new BerthError('IO', `registry snapshot ${this.snapshotFile}: unknown version`);
    const s = this.state;
    s.starts = snap.starts;
    for (const [id, info] of snap.agents) s.agents.set(id, info);
    for (const [id, info] of snap.frameworks) s.frameworks.set(id, info);
    for (const id of snap.removed_frameworks) rememberRemoved(s.removedFrameworks, id);
    for (const [id, at] of snap.unreachable) s.unreachable!.set(id, at);
    this.seq = snap.seq;
    this.lastLoad.fromSnapshot = true;
    this.lastLoad.snapshotSeq = snap.seq;
  }

  private quarantine(line: string, lineNo: number, why: string): void {
    this.lastLoad.quarantined++;
    this.log?.error({ file: this.file, line: lineNo, why, quarantine: this.quarantineFile },
      'REGISTRY ENTRY QUARANTINED: it cannot be replayed; the master starts without it (inspect registry.quarantine)');
    appendFileSync(this.quarantineFile, `${JSON.stringify({ line: lineNo, why, at: Date.now(), entry: line.slice(0, 1 << 20) })}\n`);
  }

  append(ev: RegistryEvent): Promise<void> {
    if (this.fd < 0) return Promise.reject(new BerthError('IO', 'registry not loaded'));
    const err = registryEventError(ev);
    if (err) return Promise.reject(new BerthError('INVALID', `registry: refusing to store a ${ev.type} event: ${err}`));
    return new Promise((resolve, reject) => {
      this.seq++;
      this.queue.push({ line: JSON.stringify({ seq: this.seq, ...ev }) + '\n', ev, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        this.scheduler.defer(() => this.flush());
      }
    });
  }

  private flush(): void {
    if (this.queue.length === 0 || this.fd < 0) { this.flushing = false; return; }
    const batch = this.queue;
    this.queue = [];
    try {
      writeAll(this.fd, Buffer.from(batch.map((b) => b.line).join('')));
      fsyncSync(this.fd);
      for (const b of batch) apply(this.state, b.ev);
      this.sinceSnapshot += batch.length;
      for (const b of batch) b.resolve();
    } catch (e) {
      for (const b of batch) b.reject(e as Error);
    }
    if (this.sinceSnapshot >= this.compactEvery) {
      try { this.compact(); } catch (e) { this.log?.error({ err: (e as Error).message }, 'registry compaction failed; the log keeps growing until the next try'); }
    }
    if (this.queue.length > 0) this.scheduler.defer(() => this.flush());
    else this.flushing = false;
  }

  /** Writes the state as a snapshot (atomically) and empties the log. */
  compact(): void {
    const s = this.state;
    const snap: SnapshotFile = {
      version: 1, seq: this.seq, starts: s.starts, agents: [...s.agents], frameworks: [...s.frameworks],
      removed_frameworks: [...s.removedFrameworks], unreachable: [...(s.unreachable ?? new Map())],
    };
    const tmp = `${this.snapshotFile}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeAll(fd, Buffer.from(JSON.stringify(snap)));
      fsyncSync(fd);
    } finally { closeSync(fd); }
    renameSync(tmp, this.snapshotFile);
    fsyncDir(this.dir);
    // Only now may the log go: a crash before this point replays it over the old snapshot.
    ftruncateSync(this.fd, 0);
    fsyncSync(this.fd);
    this.sinceSnapshot = 0;
    this.log?.info({ seq: this.seq, agents: s.agents.size, frameworks: s.frameworks.size }, 'registry compacted');
  }

  async close(): Promise<void> {
    // Whatever is queued is written now: a deferred flush may run on a scheduler that no longer ticks.
    if (this.flushing) this.flush();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function cloneState(s: RegistryState): RegistryState {
  return {
    agents: new Map(s.agents), frameworks: new Map(s.frameworks), removedFrameworks: new Set(s.removedFrameworks),
    starts: s.starts, unreachable: new Map(s.unreachable ?? []),
  };
}
