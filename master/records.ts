/**
 * What the master remembers about each agent, framework, offer and task, and
 * the life cycles they move through. The records are owned by one part each
 * (agents.ts, frameworks.ts, offers.ts, tasks.ts); everyone else reads them
 * through the read-only views at the bottom of this file.
 */
import type { TimerHandle } from '../proto/clock.js';
import type { Resources } from '../proto/resources.js';
import type { Conn } from '../proto/transport/types.js';
import type {
  AgentInfo, AgentToMaster, Event, FrameworkInfo, MasterToAgent, Resource, ResourceStatistics, TaskInfo, TaskState, TaskStatus,
} from '../proto/types.js';

/** Where a framework's events go: a WebSocket, an HTTP RecordIO stream, or a simulator callback. */
export interface FrameworkSink {
  readonly kind: string;
  send(ev: Event): void;
  close(reason: string): void;
}

/** Agent lifecycle as the master sees it. */
export type AgentStatus =
  /** Connected and registered: offers are made from it. */
  | 'ACTIVE'
  /** Connection lost; waiting for it to come back before it is declared unreachable. */
  | 'DISCONNECTED'
  /** Known from the registry after a master restart; it has not reregistered yet. */
  | 'RECOVERED'
  /** Missed its pings (or never came back): its tasks were reported unreachable/lost. */
  | 'UNREACHABLE';

/** Framework lifecycle. */
export type FrameworkStatus =
  /** Subscribed with a live event stream. */
  | 'CONNECTED'
  /** Stream lost; failover timer running; tasks kept. */
  | 'DISCONNECTED'
  /** Known from the registry after a master restart; waiting for it to resubscribe. */
  | 'RECOVERED';

export interface TaskRec {
  id: string;
  name: string;
  frameworkId: string;
  agentId: string;
  role: string;
  state: TaskState;
  /** Wire resources as launched (kept instead of a Resources object: smaller, built on demand). */
  resources: Resource[];
  /** Latest status seen (from the agent or made by the master). */
  status?: TaskStatus;
  labels?: TaskInfo['labels'];
  user?: string;
  startedAt?: number;
  statistics?: ResourceStatistics;
}

export interface AgentRec {
  id: string;
  info: AgentInfo;
  total: Resources;
  status: AgentStatus;
  conn?: Conn<AgentToMaster, MasterToAgent>;
  /** Principal the agent's connection authenticated as (undefined: authentication off). */
  principal?: string;
  endpoint?: string;
  version?: string;
  missedPings: number;
  registeredAt: number;
  unreachableAt?: number;
  /** Its removal is being written; it is not pruned twice. */
  removing?: boolean;
  /** `${frameworkId}\u0000${taskId}` → task. */
  tasks: Map<string, TaskRec>;
  offers: Set<string>;
}

export interface FrameworkRec {
  id: string;
  info: FrameworkInfo;
  roles: string[];
  status: FrameworkStatus;
  sink?: FrameworkSink;
  failoverTimer?: TimerHandle;
  heartbeatTimer?: TimerHandle;
  registeredAt: number;
  reregisteredAt?: number;
  tasks: Map<string, TaskRec>;
  offers: Set<string>;
  /** Latest unacknowledged update per task (uuid'd), resent when the framework resubscribes. */
  unacked: Map<string, TaskStatus>;
  partitionAware: boolean;
  gpuAware: boolean;
}

export interface OfferRec {
  id: string;
  frameworkId: string;
  agentId: string;
  role: string;
  resources: Resources;
  timer?: TimerHandle;
}

export interface CompletedFramework {
  id: string;
  info: FrameworkInfo;
  removedAt: number;
  reason: string;
}

/** The key of a task in an agent's task map. */
export const taskKey = (frameworkId: string, taskId: string): string => `${frameworkId}\u0000${taskId}`;

// Read-only views handed out by the Master: callers can look, not change.
export type TaskView = Readonly<TaskRec>;
export type OfferView = Readonly<Omit<OfferRec, 'timer'>>;
export interface AgentView extends Readonly<Omit<AgentRec, 'tasks' | 'offers' | 'conn'>> {
  readonly tasks: ReadonlyMap<string, TaskView>;
  readonly offers: ReadonlySet<string>;
  readonly conn?: Pick<Conn<AgentToMaster, MasterToAgent>, 'id' | 'remote' | 'closed'>;
}
export interface FrameworkView extends Readonly<Omit<FrameworkRec, 'tasks' | 'offers' | 'unacked' | 'failoverTimer' | 'heartbeatTimer'>> {
  readonly tasks: ReadonlyMap<string, TaskView>;
  readonly offers: ReadonlySet<string>;
  readonly unacked: ReadonlyMap<string, TaskStatus>;
}

export function hasCap(info: FrameworkInfo, cap: NonNullable<NonNullable<FrameworkInfo['capabilities']>[number]['type']>): boolean {
  return !!info.capabilities?.some((c) => c.type === cap);
}
