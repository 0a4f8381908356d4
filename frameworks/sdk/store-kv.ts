/**
 * The frameworks' Store on a NATS JetStream KV bucket (cluster mode): the same
 * semantics as FileStore (store.ts), replicated by JetStream, so a framework
 * restarted on another machine resumes from the same state.
 *
 * Mapping: a store revision is the bucket stream's sequence (strictly
 * increasing across the store); `expectRevision: r` is JetStream's "expected
 * last subject sequence" (r = 0: the key must not exist); a delete writes a
 * delete marker, so a later create with expectRevision 0 still succeeds.
 * Writes resolve once the stream acknowledged them (a quorum of replicas).
 */
import type { KV, NatsConnection } from 'nats';
import { BerthError } from '../../proto/errors.js';
import { openBucket, readAll } from '../../proto/transport/nats.js';
import { checkKey, MAX_VALUE_BYTES, type PutOptions, type Store, type StoreEntry } from './store.js';

export interface KvStoreOptions {
  /** Bucket name: `[-_a-zA-Z0-9]+`, e.g. `berth_marathon`. */
  bucket: string;
  /** Replicas (3 on a 3-node NATS cluster). */
  replicas?: number;
}

/** A NATS node dying under a write: JetStream re-elects within seconds, so writes retry this long. */
const RETRY_FOR_MS = 20_000;

function isTransient(e: unknown): boolean {
  return /timeout|no responders|503|disconnect|connection|temporarily unavailable/i.test(String((e as Error)?.message ?? e));
}

const te = new TextEncoder();
const td = new TextDecoder();

function isCasFailure(e: unknown): boolean {
  return /wrong last sequence|key exists|10071|10164/i.test(String((e as Error)?.message ?? e));
}

export class KvStore implements Store {
  private constructor(private readonly kv: KV) {}

  /** Opens (creating when absent) the bucket on an existing NATS connection. */
  static async open(nc: NatsConnection, o: KvStoreOptions): Promise<KvStore> {
    if (!/^[-_a-zA-Z0-9]+$/.test(o.bucket)) throw new BerthError('INVALID', `store bucket '${o.bucket}': use [-_a-zA-Z0-9]+`);
    return new KvStore(await openBucket(nc, o.bucket, o.replicas ?? 1));
  }

  async get(key: string): Promise<StoreEntry | undefined> {
    checkKey(key);
    const until = performance.now() + RETRY_FOR_MS;
    let e: Awaited<ReturnType<KV['get']>>;
    for (;;) {
      try { e = await this.kv.get(key); break; } catch (err) {
        if (!isTransient(err) || performance.now() > until) throw new BerthError('IO', `store key '${key}': ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (!e || e.operation !== 'PUT') return undefined;
    return { key, value: td.decode(e.value), revision: e.revision };
  }

  private async conflict(key: string, expected: number): Promise<BerthError> {
    const cur = await this.get(key).catch(() => undefined);
    return new BerthError('CONFLICT', `store key '${key}': expected revision ${expected}, found ${cur?.revision ?? 0}`);
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<number> {
    checkKey(key);
    if (typeof value !== 'string') throw new BerthError('INVALID', `store key '${key}': value must be a string`);
    const data = te.encode(value);
    if (data.length > MAX_VALUE_BYTES) throw new BerthError('TOO_LARGE', `store key '${key}': value over ${MAX_VALUE_BYTES} bytes`);
    const want = opts.expectRevision;
    const until = performance.now() + RETRY_FOR_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        if (want === undefined) return await this.kv.put(key, data);
        if (want === 0) return await this.kv.create(key, data);
        return await this.kv.update(key, data, want);
      } catch (e) {
        if (want !== undefined && isCasFailure(e)) {
          // A retried CAS whose first attempt was stored (its ack lost with a dying node) finds our own value.
          if (attempt > 0) {
            const cur = await this.kv.get(key).catch(() => null);
            if (cur && cur.operation === 'PUT' && td.decode(cur.value) === value) return cur.revision;
          }
          throw await this.conflict(key, want);
        }
        if (!isTransient(e) || performance.now() > until) throw new BerthError('IO', `store key '${key}': ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async delete(key: string, opts: PutOptions = {}): Promise<boolean> {
    checkKey(key);
    const cur = await this.get(key);
    const want = opts.expectRevision;
    if (want !== undefined && (cur?.revision ?? 0) !== want) throw await this.conflict(key, want);
    if (!cur) return false;
    try {
      // CAS on the revision just read, so a concurrent write is not silently deleted.
      await this.kv.delete(key, { previousSeq: cur.revision });
      return true;
    } catch (e) {
      if (isCasFailure(e)) throw await this.conflict(key, cur.revision);
      throw new BerthError('IO', `store key '${key}': ${(e as Error).message}`);
    }
  }

  async list(prefix = ''): Promise<StoreEntry[]> {
    const out: StoreEntry[] = [];
    const until = performance.now() + RETRY_FOR_MS;
    for (;;) {
      try {
        await readAll(this.kv, (e) => {
          if (e.operation === 'PUT' && e.key.startsWith(prefix)) out.push({ key: e.key, value: td.decode(e.value), revision: e.revision });
        });
        break;
      } catch (e) {
        // A NATS node dying: the read's consumer cannot be made until JetStream re-elects.
        if (!isTransient(e) || performance.now() > until) throw new BerthError('IO', `store list '${prefix}': ${(e as Error).message}`);
        out.length = 0;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async close(): Promise<void> { /* the NATS connection belongs to the caller */ }
}
