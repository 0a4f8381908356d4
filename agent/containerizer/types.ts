/**
 * The containerizer contract. The agent drives every implementation (posix,
 * linux) through this interface only; implementations never talk to the
 * master and never decide task states: they launch, watch, measure and destroy.
 *
 * Ownership invariant: every task process is owned by a small supervisor (a
 * shell wrapper for posix, the `berth-shim` for linux) that is NOT killed with
 * the agent and that records the task's exit status in `<runDir>.exit` (see
 * files.ts). So a restarted agent can always learn how a task ended, even if
 * it ended while the agent was down.
 *
 * Sandbox invariant: `launch` creates the sandbox (mkdir -p) with its `stdout`
 * and `stderr` before it resolves, so the sandbox exists once a task is
 * reported RUNNING; the agent creates no file of a launch itself.
 */
import type { ResourceStatistics } from '../../proto/types.js';

export interface CommandSpec {
  /** true: run `value` via `/bin/sh -c`; false: exec `value` with `arguments` (argv[0] included, as Mesos). */
  shell: boolean;
  value: string;
  arguments?: string[];
}

export interface ContainerLimits {
  cpus: number;
  /** MiB, as the `mem` resource. 0 = unlimited. */
  memMiB: number;
  diskMiB?: number;
  gpus?: number;
}

export interface ContainerSpec {
  containerId: string;
  /** The task's sandbox; created (with parents) by `launch`, holds `stdout` and `stderr` files the task writes to. */
  sandbox: string;
  /**
   * This container's run path, unique to it: its supervisor writes the exit record to `<runDir>.exit`
   * (its directory exists before launch; see files.ts) and names it in its argv, by which a
   * restarted agent finds a supervisor whose container record was not yet written.
   */
  runDir: string;
  command: CommandSpec;
  /** Full environment of the task (the agent has already added MESOS_*, PORT*, ...). */
  env: Record<string, string>;
  limits: ContainerLimits;
  /** Unix user to run as; undefined = the agent's own user. */
  user?: string;
  /** Hostname inside the container (linux only; defaults to the task id). */
  hostname?: string;
  /** 'host' shares the host network; 'none' gives an empty network namespace (linux only). */
  network?: 'host' | 'none';
  /** Give the task a private /tmp (linux only). */
  privateTmp?: boolean;
  /**
   * Runs after the sandbox (with stdout/stderr, owned by `owner`) exists and before the task's
   * command starts (the agent's preStart hooks: URI fetching). A rejection fails the launch and
   * leaves nothing running; `launch` rejects with an error whose `cause` is the rejection.
   */
  beforeExec?: (ctx: { sandbox: string; owner: { uid: number; gid: number } }) => Promise<void>;
}

export type ExitReason = 'REASON_CONTAINER_LIMITATION_MEMORY' | 'REASON_CONTAINER_LIMITATION_DISK' | 'REASON_CONTAINER_LAUNCH_FAILED' | 'REASON_EXECUTOR_TERMINATED';

export interface ContainerExit {
  /** Exit code when the task exited normally. */
  exitCode: number | null;
  /** Signal name ('SIGKILL', ...) when it was killed by a signal. */
  signal: string | null;
  /** Set when the containerizer itself ended the task (limit reached, launch failure). */
  reason?: ExitReason;
  /** Human-readable detail, e.g. "Memory limit 64 MiB exceeded: peak 256.1 MiB". */
  message?: string;
  /** True when the exit was learned from the exit record after an agent restart rather than observed live. */
  recovered?: boolean;
}

/** What the agent checkpoints about a container so that `recover` can find it again. */
export interface ContainerRecord {
  containerId: string;
  pid: number;
  /** /proc/<pid>/stat starttime (field 22) of the supervisor, to detect pid reuse. */
  startTime: number;
  /** /proc/sys/kernel/random/boot_id at launch; a different boot id means the container is gone. */
  bootId: string;
  sandbox: string;
  runDir: string;
  limits: ContainerLimits;
  /** Implementation-specific data (e.g. cgroup paths) the implementation needs to recover. */
  extra?: Record<string, unknown>;
}

export interface Containerizer {
  readonly kind: 'posix' | 'linux';
  /** Starts the container; resolves once the task's process exists. Rejects (with a message) if it cannot start. */
  launch(spec: ContainerSpec): Promise<ContainerRecord>;
  /** Resolves once the container has ended, with how it ended. May be called more than once. */
  wait(containerId: string): Promise<ContainerExit>;
  /** Current usage in Mesos's ResourceStatistics fields. */
  usage(containerId: string): Promise<ResourceStatistics>;
  /**
   * Kills the whole container: SIGTERM to every process, SIGKILL after `graceMs`; resolves when
   * no process of it is left. Tolerates unknown or already-ended containers.
   */
  destroy(containerId: string, graceMs?: number): Promise<void>;
  /**
   * Re-adopts containers after an agent restart. Containers still alive are watched again
   * (wait/usage/destroy work on them); ones that ended meanwhile resolve `wait` with
   * `recovered: true`. Implementations also clean up leftovers of containers not in `records`
   * (e.g. orphan cgroups).
   */
  recover(records: ContainerRecord[]): Promise<void>;
  /** Stops background work (samplers, watchers) without touching containers. */
  close(): Promise<void>;
}
