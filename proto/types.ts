/**
 * TypeScript shapes of the wire messages, in their JSON form: snake_case field
 * names exactly as in the .proto files, enums as their names, bytes as base64
 * strings, 64-bit integers as numbers. This one form is used everywhere inside
 * Berth (in-process transport, master state, HTTP JSON), so the JSON API costs
 * no translation and protobuf frames are converted only at the socket edge.
 *
 * Only the fields Berth reads or writes are typed; the codec still carries any
 * other field of the schema through untouched.
 */

export interface Id { value: string }
export type FrameworkID = Id;
export type AgentID = Id;
export type OfferID = Id;
export type TaskID = Id;
export type ExecutorID = Id;

export type ValueType = 'SCALAR' | 'RANGES' | 'SET' | 'TEXT';
export interface Scalar { value: number }
export interface Range { begin: number; end: number }
export interface Ranges { range?: Range[] }
export interface ValueSet { item?: string[] }

export interface ReservationInfo {
  type?: 'UNKNOWN' | 'STATIC' | 'DYNAMIC';
  role?: string;
  principal?: string;
  labels?: Labels;
}

export interface Resource {
  name: string;
  type: ValueType;
  scalar?: Scalar;
  ranges?: Ranges;
  set?: ValueSet;
  /** Deprecated pre-refinement reservation role ("*" = unreserved). */
  role?: string;
  allocation_info?: { role?: string };
  reservation?: ReservationInfo;
  reservations?: ReservationInfo[];
  provider_id?: Id;
  disk?: Record<string, unknown>;
  revocable?: Record<string, unknown>;
  shared?: Record<string, unknown>;
}

export interface Attribute {
  name: string;
  type: ValueType;
  scalar?: Scalar;
  ranges?: Ranges;
  set?: ValueSet;
  text?: { value: string };
}

export interface Label { key: string; value?: string }
export interface Labels { labels?: Label[] }

export type FrameworkCapabilityType =
  | 'UNKNOWN' | 'REVOCABLE_RESOURCES' | 'TASK_KILLING_STATE' | 'GPU_RESOURCES' | 'SHARED_RESOURCES'
  | 'PARTITION_AWARE' | 'MULTI_ROLE' | 'RESERVATION_REFINEMENT' | 'REGION_AWARE';

export interface FrameworkInfo {
  user: string;
  name: string;
  id?: FrameworkID;
  failover_timeout?: number;
  checkpoint?: boolean;
  role?: string;
  roles?: string[];
  hostname?: string;
  principal?: string;
  webui_url?: string;
  capabilities?: { type?: FrameworkCapabilityType }[];
  labels?: Labels;
}

export interface Address { hostname?: string; ip?: string; port: number }
export interface URL { scheme: string; address: Address; path?: string; query?: { key: string; value: string }[]; fragment?: string }

export interface MasterInfo {
  id: string;
  ip: number;
  port: number;
  pid?: string;
  hostname?: string;
  version?: string;
  address?: Address;
}

export interface AgentInfo {
  hostname: string;
  port?: number;
  resources?: Resource[];
  attributes?: Attribute[];
  id?: AgentID;
}

export interface EnvironmentVariable { name: string; type?: 'UNKNOWN' | 'VALUE' | 'SECRET'; value?: string }
export interface CommandInfo {
  uris?: { value: string; executable?: boolean; extract?: boolean; cache?: boolean; output_file?: string }[];
  environment?: { variables?: EnvironmentVariable[] };
  shell?: boolean;
  value?: string;
  arguments?: string[];
  user?: string;
}

export interface DurationInfo { nanoseconds: number }
export interface KillPolicy { grace_period?: DurationInfo }

export interface HealthCheck {
  type?: 'UNKNOWN' | 'COMMAND' | 'HTTP' | 'TCP';
  delay_seconds?: number;
  interval_seconds?: number;
  timeout_seconds?: number;
  consecutive_failures?: number;
  grace_period_seconds?: number;
  command?: CommandInfo;
  http?: { protocol?: 'IPv4' | 'IPv6'; scheme?: string; port: number; path?: string; statuses?: number[] };
  tcp?: { protocol?: 'IPv4' | 'IPv6'; port: number };
}

/** A general check: its result is reported, never acted on (Mesos CheckInfo). */
export interface CheckInfo {
  type?: 'UNKNOWN' | 'COMMAND' | 'HTTP' | 'TCP';
  command?: { command: CommandInfo };
  http?: { port: number; path?: string };
  tcp?: { port: number };
  delay_seconds?: number;
  interval_seconds?: number;
  timeout_seconds?: number;
}

/** The latest result of a CheckInfo; the field of its type is present but empty when no result is known yet. */
export interface CheckStatusInfo {
  type?: CheckInfo['type'];
  command?: { exit_code?: number };
  http?: { status_code?: number };
  tcp?: { succeeded?: boolean };
}

export type LinuxCapability = string; // CapabilityInfo.Capability enum names, e.g. "NET_BIND_SERVICE"
export interface ContainerInfo {
  type: 'DOCKER' | 'MESOS';
  hostname?: string;
  network_infos?: { name?: string; groups?: string[]; labels?: Labels }[];
  linux_info?: {
    capability_info?: { capabilities?: LinuxCapability[] };
    bounding_capabilities?: { capabilities?: LinuxCapability[] };
    effective_capabilities?: { capabilities?: LinuxCapability[] };
    share_pid_namespace?: boolean;
  };
}

export interface ExecutorInfo {
  type?: 'UNKNOWN' | 'DEFAULT' | 'CUSTOM';
  executor_id: ExecutorID;
  framework_id?: FrameworkID;
  command?: CommandInfo;
  resources?: Resource[];
  name?: string;
  data?: string;
  labels?: Labels;
}

export interface TaskInfo {
  name: string;
  task_id: TaskID;
  agent_id: AgentID;
  resources?: Resource[];
  executor?: ExecutorInfo;
  command?: CommandInfo;
  container?: ContainerInfo;
  health_check?: HealthCheck;
  check?: CheckInfo;
  kill_policy?: KillPolicy;
  data?: string;
  labels?: Labels;
  max_completion_time?: DurationInfo;
}

export type TaskState =
  | 'TASK_STAGING' | 'TASK_STARTING' | 'TASK_RUNNING' | 'TASK_KILLING' | 'TASK_FINISHED' | 'TASK_FAILED'
  | 'TASK_KILLED' | 'TASK_ERROR' | 'TASK_LOST' | 'TASK_DROPPED' | 'TASK_UNREACHABLE' | 'TASK_GONE'
  | 'TASK_GONE_BY_OPERATOR' | 'TASK_UNKNOWN';

/** States after which a task holds no resources and receives no more updates from its executor. */
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set<TaskState>([
  'TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED', 'TASK_ERROR', 'TASK_LOST', 'TASK_DROPPED', 'TASK_GONE',
  'TASK_GONE_BY_OPERATOR',
]);
export function isTerminal(state: TaskState): boolean { return TERMINAL_STATES.has(state); }

export type TaskStatusSource = 'SOURCE_MASTER' | 'SOURCE_AGENT' | 'SOURCE_EXECUTOR';
export type TaskStatusReason =
  | 'REASON_COMMAND_EXECUTOR_FAILED' | 'REASON_CONTAINER_LAUNCH_FAILED' | 'REASON_CONTAINER_LIMITATION'
  | 'REASON_CONTAINER_LIMITATION_DISK' | 'REASON_CONTAINER_LIMITATION_MEMORY' | 'REASON_CONTAINER_PREEMPTED'
  | 'REASON_CONTAINER_UPDATE_FAILED' | 'REASON_MAX_COMPLETION_TIME_REACHED'
  | 'REASON_EXECUTOR_REGISTRATION_TIMEOUT' | 'REASON_EXECUTOR_REREGISTRATION_TIMEOUT'
  | 'REASON_EXECUTOR_TERMINATED' | 'REASON_EXECUTOR_UNREGISTERED' | 'REASON_FRAMEWORK_REMOVED'
  | 'REASON_GC_ERROR' | 'REASON_INVALID_FRAMEWORKID' | 'REASON_INVALID_OFFERS' | 'REASON_IO_SWITCHBOARD_EXITED'
  | 'REASON_MASTER_DISCONNECTED' | 'REASON_RECONCILIATION' | 'REASON_RESOURCES_UNKNOWN'
  | 'REASON_AGENT_DISCONNECTED' | 'REASON_AGENT_DRAINING' | 'REASON_AGENT_REMOVED'
  | 'REASON_AGENT_REMOVED_BY_OPERATOR' | 'REASON_AGENT_REREGISTERED' | 'REASON_AGENT_RESTARTED'
  | 'REASON_AGENT_UNKNOWN' | 'REASON_TASK_KILLED_DURING_LAUNCH' | 'REASON_TASK_CHECK_STATUS_UPDATED'
  | 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' | 'REASON_TASK_GROUP_INVALID' | 'REASON_TASK_GROUP_UNAUTHORIZED'
  | 'REASON_TASK_INVALID' | 'REASON_TASK_UNAUTHORIZED' | 'REASON_TASK_UNKNOWN'
  /** Berth extension: a URI could not be fetched before the task started. */
  | 'REASON_FETCHER_FAILED';

export interface TaskStatus {
  task_id: TaskID;
  state: TaskState;
  message?: string;
  source?: TaskStatusSource;
  reason?: TaskStatusReason;
  data?: string;
  agent_id?: AgentID;
  executor_id?: ExecutorID;
  /** Seconds since the epoch. */
  timestamp?: number;
  /** base64 of 16 bytes; present when the update must be acknowledged. */
  uuid?: string;
  healthy?: boolean;
  check_status?: CheckStatusInfo;
  labels?: Labels;
  unreachable_time?: { nanoseconds: number };
  limitation?: { resources?: Resource[] };
}

export interface Task {
  name: string;
  task_id: TaskID;
  framework_id: FrameworkID;
  executor_id?: ExecutorID;
  agent_id: AgentID;
  state: TaskState;
  resources?: Resource[];
  statuses?: TaskStatus[];
  status_update_state?: TaskState;
  status_update_uuid?: string;
  labels?: Labels;
  user?: string;
}

export interface Filters { refuse_seconds?: number }

export type OperationType =
  | 'UNKNOWN' | 'LAUNCH' | 'LAUNCH_GROUP' | 'RESERVE' | 'UNRESERVE' | 'CREATE' | 'DESTROY'
  | 'GROW_VOLUME' | 'SHRINK_VOLUME' | 'CREATE_DISK' | 'DESTROY_DISK';

export interface Operation {
  type?: OperationType;
  id?: Id;
  launch?: { task_infos?: TaskInfo[] };
  launch_group?: { executor: ExecutorInfo; task_group: { tasks?: TaskInfo[] } };
  reserve?: { source?: Resource[]; resources?: Resource[] };
  unreserve?: { resources?: Resource[] };
  create?: { volumes?: Resource[] };
  destroy?: { volumes?: Resource[] };
}

export interface Offer {
  id: OfferID;
  framework_id: FrameworkID;
  agent_id: AgentID;
  hostname: string;
  url?: URL;
  resources?: Resource[];
  attributes?: Attribute[];
  executor_ids?: ExecutorID[];
  allocation_info?: { role?: string };
}

export interface ResourceStatistics {
  timestamp: number;
  processes?: number;
  threads?: number;
  cpus_user_time_secs?: number;
  cpus_system_time_secs?: number;
  cpus_limit?: number;
  cpus_soft_limit?: number;
  cpus_nr_periods?: number;
  cpus_nr_throttled?: number;
  cpus_throttled_time_secs?: number;
  mem_total_bytes?: number;
  mem_total_memsw_bytes?: number;
  mem_limit_bytes?: number;
  mem_soft_limit_bytes?: number;
  mem_file_bytes?: number;
  mem_anon_bytes?: number;
  mem_cache_bytes?: number;
  mem_rss_bytes?: number;
  mem_mapped_file_bytes?: number;
  mem_swap_bytes?: number;
  mem_unevictable_bytes?: number;
  disk_limit_bytes?: number;
  disk_used_bytes?: number;
}

// ---- mesos.v1.scheduler ----------------------------------------------------

export type CallType =
  | 'UNKNOWN' | 'SUBSCRIBE' | 'TEARDOWN' | 'ACCEPT' | 'DECLINE' | 'ACCEPT_INVERSE_OFFERS'
  | 'DECLINE_INVERSE_OFFERS' | 'REVIVE' | 'KILL' | 'SHUTDOWN' | 'ACKNOWLEDGE' | 'ACKNOWLEDGE_OPERATION_STATUS'
  | 'RECONCILE' | 'RECONCILE_OPERATIONS' | 'MESSAGE' | 'REQUEST' | 'SUPPRESS' | 'UPDATE_FRAMEWORK';

export interface Call {
  framework_id?: FrameworkID;
  type?: CallType;
  subscribe?: { framework_info: FrameworkInfo; suppressed_roles?: string[] };
  accept?: { offer_ids?: OfferID[]; operations?: Operation[]; filters?: Filters };
  decline?: { offer_ids?: OfferID[]; filters?: Filters };
  revive?: { roles?: string[] };
  suppress?: { roles?: string[] };
  kill?: { task_id: TaskID; agent_id?: AgentID; kill_policy?: KillPolicy };
  shutdown?: { executor_id: ExecutorID; agent_id: AgentID };
  acknowledge?: { agent_id: AgentID; task_id: TaskID; uuid: string };
  reconcile?: { tasks?: { task_id: TaskID; agent_id?: AgentID }[] };
  message?: { agent_id: AgentID; executor_id: ExecutorID; data: string };
  update_framework?: { framework_info: FrameworkInfo; suppressed_roles?: string[] };
}

export type EventType =
  | 'UNKNOWN' | 'SUBSCRIBED' | 'OFFERS' | 'INVERSE_OFFERS' | 'RESCIND' | 'RESCIND_INVERSE_OFFER' | 'UPDATE'
  | 'UPDATE_OPERATION_STATUS' | 'MESSAGE' | 'FAILURE' | 'ERROR' | 'HEARTBEAT';

export interface Event {
  type?: EventType;
  subscribed?: { framework_id: FrameworkID; heartbeat_interval_seconds?: number; master_info?: MasterInfo };
  offers?: { offers?: Offer[] };
  rescind?: { offer_id: OfferID };
  update?: { status: TaskStatus };
  message?: { agent_id: AgentID; executor_id: ExecutorID; data: string };
  failure?: { agent_id?: AgentID; executor_id?: ExecutorID; status?: number };
  error?: { message: string };
}

// ---- berth.agent -------------------------------------------------------------

export const AGENT_PROTOCOL_VERSION = 1;

export interface TaskReport {
  framework_id: FrameworkID;
  task: TaskInfo;
  state: TaskState;
  latest_status?: TaskStatus;
}

export interface AgentRegister { agent_info: AgentInfo; endpoint?: string; version?: string; session?: string }
export interface AgentReregister extends AgentRegister { tasks?: TaskReport[]; frameworks?: FrameworkInfo[] }
export interface StatusUpdateMessage { framework_id: FrameworkID; status: TaskStatus }
export interface ContainerUsage { framework_id: FrameworkID; task_id: TaskID; statistics: ResourceStatistics }

/** Frames an agent sends to the master (exactly one payload field set). */
export interface AgentToMaster {
  version: number;
  register?: AgentRegister;
  reregister?: AgentReregister;
  status_update?: StatusUpdateMessage;
  usage?: { containers?: ContainerUsage[] };
  pong?: { seq?: number };
}

/** Frames the master sends to an agent (exactly one payload field set). */
export interface MasterToAgent {
  version: number;
  registered?: { agent_id: AgentID; ping_interval_seconds?: number; master_id?: string };
  launch?: { framework: FrameworkInfo; task: TaskInfo };
  kill?: { framework_id: FrameworkID; task_id: TaskID; kill_policy?: KillPolicy };
  ack?: { framework_id: FrameworkID; task_id: TaskID; uuid: string };
  ping?: { seq?: number };
  shutdown_framework?: { framework_id: FrameworkID };
  error?: { message: string; code?: string };
}
