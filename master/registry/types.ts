/**
 * The registry: what must survive a master restart, as an append-only sequence
 * of events. Invariant: the master appends (and, for the file backend, fsyncs)
 * an event BEFORE it acknowledges the change to anyone — an agent is told its
 * id only after its admission is durable, a framework gets SUBSCRIBED only after
 * its id is durable. Replaying the events rebuilds the same ids.
 */
import type { AgentInfo, FrameworkInfo } from '../../proto/types.js';
import { idError } from '../../proto/ids.js';
import { Resources } from '../../proto/resources.js';
import { validateFrameworkInfo } from '../validation.js';
import { BerthError } from '../../proto/errors.js';

export type RegistryEvent =
  | { type: 'master_started'; master_id: string; at: number }
  | { type: 'agent_admitted'; agent_id: string; info: AgentInfo; at: number }
  /** The agent missed its pings (or did not come back after a failover); it may still return. */
  | { type: 'agent_unreachable'; agent_id: string; at: number }
  | { type: 'agent_removed'; agent_id: string; at: number }
  | { type: 'framework_added'; framework_id: string; info: FrameworkInfo; at: number }
  | { type: 'framework_updated'; framework_id: string; info: FrameworkInfo; at: number }
  | { type: 'framework_removed'; framework_id: string; at: number };

export interface RegistryState {
  agents: Map<string, AgentInfo>;
  frameworks: Map<string, FrameworkInfo>;
  /**
   * Ids removed, so a removed framework cannot come back under its old id: the newest
   * MAX_REMOVED_FRAMEWORKS of them (insertion order; the oldest is forgotten first, as Mesos
   * bounds its registry's removed agents), so years of short-lived frameworks cannot grow it.
   */
  removedFrameworks: Set<string>;
  starts: number;
  /** Agents marked unreachable, and when (ms); they stay in `agents` until removed. */
  unreachable?: Map<string, number>;
}

export interface Registry {
  /** Replays what is stored. */
  load(): Promise<RegistryState>;
  /** Appends durably; resolves once the event would survive a crash. */
  append(ev: RegistryEvent): Promise<void>;
  close(): Promise<void>;
}

/** How many removed framework ids the registry remembers. */
export const MAX_REMOVED_FRAMEWORKS = 100_000;

/** Records a removed framework id, forgetting the oldest beyond the bound. */
export function rememberRemoved(removed: Set<string>, id: string, max = MAX_REMOVED_FRAMEWORKS): void {
  removed.delete(id);
  removed.add(id);
  while (removed.size > max) removed.delete(removed.values().next().value as string);
}

export function emptyState(): RegistryState {
  return { agents: new Map(), frameworks: new Map(), removedFrameworks: new Set(), starts: 0, unreachable: new Map() };
}

/** Applies one event to `s` (the one definition of what each event means). */
export function apply(s: RegistryState, ev: RegistryEvent): void {
  const unreachable = s.unreachable ?? (s.unreachable = new Map());
  switch (ev.type) {
    case 'master_started': s.starts++; break;
    case 'agent_admitted': s.agents.set(ev.agent_id, ev.info); unreachable.delete(ev.agent_id); break;
    case 'agent_unreachable': if (s.agents.has(ev.agent_id)) unreachable.set(ev.agent_id, ev.at); break;
    case 'agent_removed': s.agents.delete(ev.agent_id); unreachable.delete(ev.agent_id); break;
    case 'framework_added':
    case 'framework_updated': s.frameworks.set(ev.framework_id, ev.info); break;
    case 'framework_removed': s.frameworks.delete(ev.framework_id); rememberRemoved(s.removedFrameworks, ev.framework_id); break;
  }
}

export function replay(events: Iterable<RegistryEvent>): RegistryState {
  const s = emptyState();
  for (const ev of events) apply(s, ev);
  return s;
}

/**
 * Why `ev` must not be stored (or, on replay, must be quarantined), or undefined. Every
 * rule the master and the allocator will apply to it on replay is checked here, so a stored
 * event can never stop a master from starting.
 */
export function registryEventError(ev: unknown): string | undefined {
  if (!ev || typeof ev !== 'object') return 'not an object';
  const e = ev as Record<string, unknown>;
  if (typeof e.at !== 'number' || !Number.isFinite(e.at)) return "'at' must be a finite number";
  const id = (field: string): string | undefined => (typeof e[field] === 'string' ? idError(field, e[field] as string) : `'${field}' must be a string`);
  try {
    switch (e.type) {
      case 'master_started': return typeof e.master_id === 'string' ? undefined : "'master_id' must be a string";
      case 'agent_admitted': {
        const err = id('agent_id');
        if (err) return err;
        const info = e.info as AgentInfo | undefined;
        if (!info || typeof info.hostname !== 'string') return "'info.hostname' must be a string";
        Resources.from(info.resources ?? []);
        return undefined;
      }
      case 'agent_unreachable': case 'agent_removed': return id('agent_id');
      case 'framework_added': case 'framework_updated': {
        const err = id('framework_id');
        if (err) return err;
        validateFrameworkInfo(e.info as FrameworkInfo, undefined, 'info');
        return undefined;
      }
      case 'framework_removed': return id('framework_id');
      default: return `unknown event type ${JSON.stringify(e.type)}`;
    }
  } catch (err) {
    return (err as Error).message;
  }
}

/** In-memory registry: for tests and the simulator (nothing survives the process). Validates as the file one does. */
export class MemoryRegistry implements Registry {
  readonly events: RegistryEvent[] = [];
  async load(): Promise<RegistryState> { return replay(this.events); }
  async append(ev: RegistryEvent): Promise<void> {
    const err = registryEventError(ev);
    if (err) throw new BerthError('INVALID', `registry: refusing to store a ${ev.type} event: ${err}`);
    this.events.push(ev);
  }
  async close(): Promise<void> {}
}
