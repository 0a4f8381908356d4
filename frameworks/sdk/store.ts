/**
 * A framework's durable state: a small key-value store with revisions.
 *
 * Frameworks keep everything they must not forget (their framework id, apps, jobs,
 * instance ids) behind this interface, so the same code runs on one machine (a file
 * in the work dir) and on a cluster (a NATS JetStream KV bucket, same semantics).
 *
 * Semantics (those of a JetStream KV bucket, so both backends agree):
 *  - Every successful write gets a revision, strictly increasing across the whole
 *    store; an entry carries the revision of its last write.
 *  - `put(k, v, { expectRevision: r })` is a compare-and-set: it succeeds only if
 *    the key's current revision is `r` (`0`: the key must not exist), else it
 *    rejects with BerthError code CONFLICT and changes nothing.
 *  - A write resolves only once it is durable (fsynced / acknowledged by the
 *    stream): a framework may tell anyone about a state once its put resolved.
 *  - Keys: 1–512 characters of `[-/_=.a-zA-Z0-9]`, not starting or ending with
 *    `.`; values: strings of at most 1 MiB. Bad keys or values reject with
 *    INVALID / TOO_LARGE naming the key.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, chmodSync, ftruncateSync } from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../proto/errors.js';

export interface StoreEntry {
  key: string;
  value: string;
  revision: number;
}

export interface PutOptions {
  /** Compare-and-set: the key's current revision must be this (0 = the key must not exist). */
  expectRevision?: number;
}

export interface Store {
  get(key: string): Promise<StoreEntry | undefined>;
  /** Writes `value`; resolves with the new revision once durable. */
  put(key: string, value: string, opts?: PutOptions): Promise<number>;
  /** Removes `key`; resolves true if it existed. With expectRevision, a compare-and-delete. */
  delete(key: string, opts?: PutOptions): Promise<boolean>;
  /** Entries whose key starts with `prefix`, in key order. */
  list(prefix?: string): Promise<StoreEntry[]>;
  close(): Promise<void>;
}

export const MAX_KEY_LENGTH = 512;
export const MAX_VALUE_BYTES = 1 << 20;
const KEY_RE = /^[-/_=.a-zA-Z0-9]+$/;

/** Throws INVALID naming the key when it is not a valid store key. */
export function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH || !KEY_RE.test(key) || key.startsWith('.') || key.endsWith('.')) {
    throw new BerthError('INVALID', `store key '${String(key).slice(0, 80)}': 1-${MAX_KEY_LENGTH} characters of [-/_=.a-zA-Z0-9], not starting or ending with '.'`);
  }
}

function checkValue(key: string, value: string): void {
  if (typeof value !== 'string') throw new BerthError('INVALID', `store key '${key}': value must be a string`);
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES) throw new BerthError('TOO_LARGE', `store key '${key}': value over ${MAX_VALUE_BYTES} bytes`);
}

function conflict(key: string, expected: number, actual: number): BerthError {
  return new BerthError('CONFLICT', `store key '${key}': expected revision ${expected}, found ${actual}`);
}

/** In-memory store with the same semantics (tests and the simulator). */
export class MemoryStore implements Store {
  protected readonly entries = new Map<string, StoreEntry>();
  protected revision = 0;

  constructor(private readonly maxKeys = 1_000_000) {}

  async get(key: string): Promise<StoreEntry | undefined> {
    checkKey(key);
    const e = this.entries.get(key);
    return e ? { ...e } : undefined;
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<number> {
    const e = this.apply(key, value, opts);
    await this.persist({ k: key, v: value, r: e.revision });
    return e.revision;
  }

  async delete(key: string, opts: PutOptions = {}): Promise<boolean> {
    checkKey(key);
    const cur = this.entries.get(key);
    if (opts.expectRevision !== undefined && (cur?.revision ?? 0) !== opts.expectRevision) throw conflict(key, opts.expectRevision, cur?.revision ?? 0);
    if (!cur) return false;
    this.entries.delete(key);
    const r = ++this.revision;
    await this.persist({ k: key, r });
    return true;
  }

  async list(prefix = ''): Promise<StoreEntry[]> {
    const out: StoreEntry[] = [];
    for (const e of this.entries.values()) if (e.key.startsWith(prefix)) out.push({ ...e });
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async close(): Promise<void> { /* nothing held */ }

  /** Checks and applies a put in memory (synchronously, so CAS decisions are made in call order). */
  protected apply(key: string, value: string, opts: PutOptions): StoreEntry {
    checkKey(key);
    checkValue(key, value);
    const cur = this.entries.get(key);
    if (opts.expectRevision !== undefined && (cur?.revision ?? 0) !== opts.expectRevision) throw conflict(key, opts.expectRevision, cur?.revision ?? 0);
    if (!cur && this.entries.size >= this.maxKeys) throw new BerthError('TOO_LARGE', `store is full (${this.maxKeys} keys); key '${key}' not written`);
    const e: StoreEntry = { key, value, revision: ++this.revision };
    this.entries.set(key, e);
    return e;
  }

  /** Makes one applied change durable. */
  protected async persist(_rec: LogRecord): Promise<void> { /* memory only */ }
}

/** One line of the file store's log: a put (`v` present) or a delete. */
interface LogRecord { k: string; v?: string; r: number }

export interface FileStoreOptions {
  maxKeys?: number;
  /** Compact when the log holds more than this many records beyond the live keys (default 10,000). */
  compactSlack?: number;
}

/**
 * A store in `<dir>/store.log`: one JSON record per line, appended and fsynced
 * before the write resolves; writes issued while an fsync is in flight share the
 * next one (group commit). When dead records pile up the log is rewritten as the
 * live set (temp file, fsync, rename, directory fsync), so opening costs O(live
 * keys), not O(history). A torn last line (a crash mid-append: never
 * acknowledged) is dropped; a corrupt earlier line fails the open loudly with its
 * line number. Directory 0700, file 0600: values may hold secrets.
 */
export class FileStore extends MemoryStore {
  private fd = -1;
  private records = 0;
  private queue: { line: string; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing = false;
  private failed: Error | undefined;
  readonly file: string;
  private readonly compactSlack: number;

  private constructor(private readonly dir: string, opts: FileStoreOptions) {
    super(opts.maxKeys);
    this.file = path.join(dir, 'store.log');
    this.compactSlack = opts.compactSlack ?? 10_000;
  }

  static async open(dir: string, opts: FileStoreOptions = {}): Promise<FileStore> {
    const created = !existsSync(dir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const s = new FileStore(dir, opts);
    s.load();
    if (created) fsyncDir(path.dirname(path.resolve(dir)));
    return s;
  }

  private load(): void {
    let keepBytes = -1;
    if (existsSync(this.file)) {
      const buf = readFileSync(this.file);
      let start = 0;
      let lineNo = 0;
      while (start < buf.length) {
        lineNo++;
        const nl = buf.indexOf(10, start);
        const end = nl < 0 ? buf.length : nl;
        if (end > start) {
          let rec: LogRecord;
          try {
            rec = JSON.parse(buf.subarray(start, end).toString('utf8')) as LogRecord;
            if (typeof rec.k !== 'string' || typeof rec.r !== 'number') throw new Error('shape');
          } catch {
            if (nl >= 0) throw new BerthError('IO', `store ${this.file}: line ${lineNo} is corrupt`);
            keepBytes = start; // torn tail: never acknowledged
            break;
          }
          if (nl < 0) { keepBytes = start; break; } // no newline: the write did not finish
          this.records++;
          this.revision = Math.max(this.revision, rec.r);
          if (rec.v === undefined) this.entries.delete(rec.k);
          else this.entries.set(rec.k, { key: rec.k, value: rec.v, revision: rec.r });
        }
        start = end + 1;
      }
    }
    this.fd = openSync(this.file, 'a', 0o600);
    chmodSync(this.file, 0o600);
    if (keepBytes >= 0) { ftruncateSync(this.fd, keepBytes); fsyncSync(this.fd); }
  }

  protected override persist(rec: LogRecord): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.fd < 0) return Promise.reject(new BerthError('IO', 'store is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ line: `${JSON.stringify(rec)}\n`, resolve, reject });
      if (!this.flushing) { this.flushing = true; setImmediate(() => this.flush()); }
    });
  }

  private flush(): void {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        const data = Buffer.from(batch.map((b) => b.line).join(''));
        let off = 0;
        while (off < data.length) off += writeSync(this.fd, data, off);
        fsyncSync(this.fd);
        this.records += batch.length;
        for (const b of batch) b.resolve();
      } catch (e) {
        // The in-memory state is now ahead of the disk: refuse everything from here on,
        // so nobody acts on a state that a restart would not see.
        this.failed = new BerthError('IO', `store ${this.file}: write failed: ${(e as Error).message}`);
        for (const b of batch) b.reject(this.failed);
        for (const b of this.queue) b.reject(this.failed);
        this.queue = [];
      }
    }
    if (!this.failed && this.records > this.entries.size + this.compactSlack) this.compact();
    this.flushing = false;
  }

  /** Rewrites the log as the live set; called only between batches, so no append is in flight. */
  private compact(): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      const lines: string[] = [];
      for (const e of this.entries.values()) lines.push(`${JSON.stringify({ k: e.key, v: e.value, r: e.revision })}\n`);
      // Keep the highest revision even if its key was deleted, so revisions never go back.
      lines.push(`${JSON.stringify({ k: '.rev', r: this.revision })}\n`);
      const data = Buffer.from(lines.join(''));
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off);
      fsyncSync(fd);
    } finally { closeSync(fd); }
    renameSync(tmp, this.file);
    fsyncDir(this.dir);
    closeSync(this.fd);
    this.fd = openSync(this.file, 'a', 0o600);
    this.records = this.entries.size + 1;
  }

  override async close(): Promise<void> {
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setImmediate(r));
    if (this.fd >= 0) { closeSync(this.fd); this.fd = -1; }
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}
