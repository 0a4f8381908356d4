/**
 * The registry: what must survive a master restart, as an append-only sequence
 * of events. Invariant: the master appends (and, for the file backend, fsyncs)
 * an event BEFORE it acknowledges the change to anyone — an agent is told its
 * id only after its admission is durable, a framework gets SUBSCRIBED only after
 * its id is durable. Replaying the events rebuilds the same ids.
 */
import type { AgentInfo, FrameworkInfo } from '../../proto/types.js';

export type RegistryEvent =
  | { type: 'master_started'; master_id: string; at: number }
  | { type: 'agent_admitted'; agent_id: string; info: AgentInfo; at: number }
  | { type: 'agent_removed'; agent_id: string; at: number }
  | { type: 'framework_added'; framework_id: string; info: FrameworkInfo; at: number }
  | { type: 'framework_updated'; framework_id: string; info: FrameworkInfo; at: number }
  | { type: 'framework_removed'; framework_id: string; at: number };

export interface RegistryState {
  agents: Map<string, AgentInfo>;
  frameworks: Map<string, FrameworkInfo>;
  /** Ids ever removed, so a removed framework cannot come back under its old id. */
  removedFrameworks: Set<string>;
  starts: number;
}

export interface Registry {
  /** Replays what is stored. */
  load(): Promise<RegistryState>;
  /** Appends durably; resolves once the event would survive a crash. */
  append(ev: RegistryEvent): Promise<void>;
  close(): Promise<void>;
}

export function replay(events: Iterable<RegistryEvent>): RegistryState {
  const s: RegistryState = { agents: new Map(), frameworks: new Map(), removedFrameworks: new Set(), starts: 0 };
  for (const ev of events) {
    switch (ev.type) {
      case 'master_started': s.starts++; break;
      case 'agent_admitted': s.agents.set(ev.agent_id, ev.info); break;
      case 'agent_removed': s.agents.delete(ev.agent_id); break;
      case 'framework_added':
      case 'framework_updated': s.frameworks.set(ev.framework_id, ev.info); break;
      case 'framework_removed': s.frameworks.delete(ev.framework_id); s.removedFrameworks.add(ev.framework_id); break;
    }
  }
  return s;
}

/** In-memory registry: for tests and the simulator (nothing survives the process). */
export class MemoryRegistry implements Registry {
  readonly events: RegistryEvent[] = [];
  async load(): Promise<RegistryState> { return replay(this.events); }
  async append(ev: RegistryEvent): Promise<void> { this.events.push(ev); }
  async close(): Promise<void> {}
}
