/**
 * The framework's durable state, behind one small interface so the backend
 * (the SDK's file store by default, a NATS KV store in cluster mode) can change
 * without touching the scheduler. Keys:
 *   framework-id                   the Mesos framework id (failover keeps it)
 *   apps/<appId>                   the current AppDefinition
 *   versions/<appId>/<version>     past AppDefinitions (bounded per app)
 *   deployments/<id>               running deployments (plan + progress)
 *   instances/<taskId>             one record per instance launched and not yet terminal
 *
 * Invariant: an instance record is written before the ACCEPT that launches it,
 * so a framework killed at any point restarts knowing every task it may have
 * started (no duplicates: reconciliation settles each one).
 */
import type { Store } from '../sdk/index.js';

export interface StateStore {
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
  list<T>(prefix: string): Promise<{ key: string; value: T }[]>;
}

/** App ids have only [a-z0-9-.] between slashes, so `_` stands for `/` without ambiguity. */
const enc = (id: string): string => id.replace(/^\//, '').replace(/\//g, '_');
export const appKey = (id: string): string => `apps/${enc(id)}`;
export const versionPrefix = (id: string): string => `versions/${enc(id)}/`;
/** Versions are ISO timestamps; keys hold their milliseconds, zero-padded so key order is time order. */
export const versionKey = (id: string, version: string): string => `${versionPrefix(id)}${String(Date.parse(version)).padStart(15, '0')}`;
export const deploymentKey = (id: string): string => `deployments/${id}`;
export const instanceKey = (taskId: string): string => `instances/${taskId}`;

/** JSON values over the SDK's revisioned string store. */
export class JsonStore implements StateStore {
  constructor(readonly store: Store) {}
  async get<T>(key: string): Promise<T | undefined> {
    const e = await this.store.get(key);
    return e === undefined ? undefined : (JSON.parse(e.value) as T);
  }
  async put(key: string, value: unknown): Promise<void> { await this.store.put(key, JSON.stringify(value)); }
  async delete(key: string): Promise<void> { await this.store.delete(key); }
  async list<T>(prefix: string): Promise<{ key: string; value: T }[]> {
    return (await this.store.list(prefix)).map((e) => ({ key: e.key, value: JSON.parse(e.value) as T }));
  }
}
