/**
 * Berth framework SDK — the whole public surface. Everything not exported here
 * is internal and may change.
 *
 *   import { connect, task, OfferPool } from 'berth/frameworks/sdk';
 *   const fw = await connect({ master: 'http://127.0.0.1:5050', framework: { name: 'hello' } });
 *   fw.on('offers', async (offers) => { … await fw.launch(offers[0], task({ cmd: 'echo hi', cpus: 0.1, mem: 32 })) … });
 *   fw.on('update', (status) => console.log(status.task_id.value, status.state));
 *
 * Transports: `berth://host:port` (native WebSocket, protobuf frames), `http://host:port`
 * (the Mesos v1 scheduler HTTP API, so the same code runs against Apache Mesos), or a
 * `Dialer` (in-process MemoryNetwork for tests and the simulator).
 */
export {
  connect, Framework,
  type ConnectOptions, type FrameworkOptions, type FrameworkEvent, type FrameworkError, type SubscribedInfo,
  type EventArgs, type EventName, type Callback,
} from './client.js';
export {
  task, pickResources, taskInfo, buildTaskInfo, OfferPool,
  type TaskSpec, type ResourceDemand, type Picked,
} from './tasks.js';
export { HttpCallError, type HttpEncoding } from './transport.js';
export { BerthError, type ErrorCode } from '../../proto/errors.js';
export { MemoryNetwork } from '../../proto/transport/memory.js';
export type { Dialer } from '../../proto/transport/types.js';
export { basicAuthorization, findCredential, findTls, loadCredentialFile, type Credential, type TlsClientOptions } from '../../proto/transport/credentials.js';
export { isTerminal, TERMINAL_STATES } from '../../proto/types.js';
export type {
  Offer, TaskInfo, TaskStatus, TaskState, Resource, Operation, FrameworkInfo, MasterInfo, Call, Event,
} from '../../proto/types.js';
export {
  Placer, InstanceCounts, parseConstraint, parseConstraints, constraintText, meetsConstraint, describeReasons,
  agentFacts, attributeText, fieldValue,
  resourcesCheck, portsCheck, constraintsCheck, DEFAULT_CHECKS, bestFit, worstFit, alignment, spreadGroup, SCORERS,
  CONSTRAINT_OPERATORS,
  type Constraint, type ConstraintOperator, type AgentFacts, type Candidate, type PlacementRequest, type FeasibilityCheck, type CheckContext,
  type Scorer, type ScoreContext, type Placement, type PlacementResult, type Reasons, type PlacerOptions,
} from './placement.js';
export {
  FileStore, MemoryStore, checkKey, MAX_KEY_LENGTH, MAX_VALUE_BYTES,
  type Store, type StoreEntry, type PutOptions, type FileStoreOptions,
} from './store.js';
/** Time and logs: frameworks take an injected Clock (tests, the simulator) and log structured lines as Berth's servers do. */
export { RealClock, ManualClock, backoffDelay, type Clock, type TimerHandle } from '../../proto/clock.js';
export { logger, silentLogger, type Logger } from '../../proto/log.js';
export { KvStore, type KvStoreOptions } from './store-kv.js';
// Cluster mode: a framework reaches the leading master with a NatsDialer (pass it as `master`).
export { connectNats, NatsDialer, type NatsOptions } from '../../proto/transport/nats.js';
export { NatsLeaderDetector } from '../../proto/transport/nats-detector.js';
export { connectCluster, storeBucket, type ClusterOptions, type ClusterConnection } from './cluster.js';
