/**
 * File-backed registry: `<dir>/registry.log`, one JSON event per line, each
 * append written and fsynced before `append` resolves. Appends issued while a
 * write is in flight are batched into the next write (group commit), so a
 * burst of registrations costs one fsync per batch, not one per event.
 *
 * A torn last line (crash mid-write) is dropped on load with a warning: the
 * event it held was never acknowledged, because acknowledgement waits for fsync.
 * Any other unreadable line is corruption and fails the load loudly.
 */
import { mkdirSync, openSync, readFileSync, existsSync, closeSync, writeSync, fsyncSync, ftruncateSync } from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../proto/errors.js';
import type { Logger } from '../../proto/log.js';
import { replay, type Registry, type RegistryEvent, type RegistryState } from './types.js';
import { immediateScheduler, type DeferredScheduler } from '../scheduler.js';

export class FileRegistry implements Registry {
  private fd = -1;
  private queue: { line: string; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing = false;
  readonly file: string;

  constructor(dir: string, private readonly log?: Logger, private readonly scheduler: DeferredScheduler = immediateScheduler) {
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, 'registry.log');
  }

  async load(): Promise<RegistryState> {
    const events: RegistryEvent[] = [];
    let torn = -1; // byte offset where a torn last line starts
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
          try {
            events.push(JSON.parse(line) as RegistryEvent);
          } catch {
            if (nl >= 0) throw new BerthError('IO', `registry ${this.file}: line ${lineNo} is corrupt`);
            torn = start;
            this.log?.warn({ file: this.file }, 'dropping torn last registry line (it was never acknowledged)');
          }
        }
        if (nl < 0 && torn < 0 && line !== '') torn = -2; // complete JSON without newline: keep, add newline
        start = end + 1;
      }
    }
    this.fd = openSync(this.file, 'a+');
    if (torn >= 0) ftruncateSync(this.fd, torn);
    else if (torn === -2) writeSync(this.fd, '\n');
    return replay(events);
  }

  append(ev: RegistryEvent): Promise<void> {
    if (this.fd < 0) return Promise.reject(new BerthError('IO', 'registry not loaded'));
    return new Promise((resolve, reject) => {
      this.queue.push({ line: JSON.stringify(ev) + '\n', resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        this.scheduler.defer(() => this.flush());
      }
    });
  }

  private flush(): void {
    if (this.queue.length === 0) { this.flushing = false; return; }
    const batch = this.queue;
    this.queue = [];
    try {
      writeSync(this.fd, batch.map((b) => b.line).join(''));
      fsyncSync(this.fd);
      for (const b of batch) b.resolve();
    } catch (e) {
      for (const b of batch) b.reject(e as Error);
    }
    if (this.queue.length > 0) this.scheduler.defer(() => this.flush());
    else this.flushing = false;
  }

  async close(): Promise<void> {
    // Whatever is queued is written now: a deferred flush may run on a scheduler that no longer ticks.
    if (this.flushing) this.flush();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
