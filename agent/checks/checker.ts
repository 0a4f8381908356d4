/**
 * The two schedulers of Mesos' checks, on an injected clock:
 *
 * HealthChecker (Mesos `HealthCheck`, interpreted):
 *  - the first probe runs `delay_seconds` after start, then one every
 *    `interval_seconds` counted from the end of the previous one (probes never
 *    overlap); each probe is bounded by `timeout_seconds` (a timeout is a failure);
 *  - failures are ignored while the task has never been healthy and less than
 *    `grace_period_seconds` have passed since start; the first success ends the
 *    grace period for good;
 *  - a healthy event is produced on the first success and on the first success
 *    after failures; an unhealthy event on every counted failure, carrying the
 *    count; once the count reaches `consecutive_failures` the event asks for the
 *    task to be killed and the checker stops. `consecutive_failures: 0` never
 *    kills (Marathon's meaning of `maxConsecutiveFailures: 0`; Mesos would kill
 *    on the first failure) and reports only the first failure of each episode.
 *
 * Checker (Mesos `CheckInfo`, not interpreted): same delay/interval/timeout, no
 * grace or kill; a result is reported only when it differs from the previous one.
 */
import type { Clock, TimerHandle } from '../../proto/clock.js';
import type { HealthCheck } from '../../proto/types.js';
import type { ProbeResult } from './probe.js';
import type { CheckInfo, CheckStatusInfo } from './types.js';

/** Mesos' defaults (mesos.proto). */
export const HEALTH_DEFAULTS = { delay_seconds: 15, interval_seconds: 10, timeout_seconds: 20, consecutive_failures: 3, grace_period_seconds: 10 } as const;
export const CHECK_DEFAULTS = { delay_seconds: 15, interval_seconds: 10, timeout_seconds: 20 } as const;
/** Floor on the time between probes, so that `interval_seconds: 0` cannot spin the agent. */
export const MIN_INTERVAL_MS = 100;
/** Floor on a probe's timeout (`timeout_seconds: 0` would fail every probe at once). */
export const MIN_TIMEOUT_MS = 10;

const ms = (s: number | undefined, dflt: number): number => Math.round((s ?? dflt) * 1000);

export interface HealthEvent {
  healthy: boolean;
  consecutiveFailures: number;
  /** The failure count reached `consecutive_failures`: the task must be killed. */
  killTask: boolean;
  message: string;
}

/** Runs one probe within the given timeout; never rejects. */
export type Probe = (timeoutMs: number) => Promise<ProbeResult>;

abstract class Periodic {
  protected stopped = false;
  private timer: TimerHandle | undefined;
  protected readonly startedAt: number;
  constructor(protected readonly clock: Clock, private readonly delayMs: number, private readonly intervalMs: number, private readonly timeoutMs: number, private readonly probe: Probe) {
    this.startedAt = clock.now();
  }
  start(): void { this.schedule(this.delayMs); }
  stop(): void { this.stopped = true; this.clock.clearTimeout(this.timer); }
  protected abstract onResult(r: ProbeResult): void;
  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => { void this.tick(); }, delay);
  }
  private async tick(): Promise<void> {
    if (this.stopped) return;
    const r = await this.probe(Math.max(MIN_TIMEOUT_MS, this.timeoutMs));
    if (this.stopped) return;
    this.onResult(r);
    this.schedule(Math.max(MIN_INTERVAL_MS, this.intervalMs));
  }
}

export class HealthChecker extends Periodic {
  private failures = 0;
  /** True until the first success: the grace period applies only then. */
  private initializing = true;
  private readonly graceMs: number;
  private readonly maxFailures: number;

  constructor(hc: HealthCheck, clock: Clock, probe: Probe, private readonly onEvent: (e: HealthEvent) => void) {
    super(clock, ms(hc.delay_seconds, HEALTH_DEFAULTS.delay_seconds), ms(hc.interval_seconds, HEALTH_DEFAULTS.interval_seconds), ms(hc.timeout_seconds, HEALTH_DEFAULTS.timeout_seconds), probe);
    this.graceMs = ms(hc.grace_period_seconds, HEALTH_DEFAULTS.grace_period_seconds);
    this.maxFailures = hc.consecutive_failures ?? HEALTH_DEFAULTS.consecutive_failures;
  }

  protected onResult(r: ProbeResult): void {
    if (r.ok) {
      const report = this.initializing || this.failures > 0;
      this.initializing = false;
      this.failures = 0;
      if (report) this.onEvent({ healthy: true, consecutiveFailures: 0, killTask: false, message: r.message });
      return;
    }
    if (this.initializing && this.clock.now() - this.startedAt <= this.graceMs) return;
    this.failures++;
    const killTask = this.maxFailures > 0 && this.failures >= this.maxFailures;
    if (killTask) this.stop();
    // Bounded: at most `consecutive_failures` unhealthy events per episode (then the kill); a check
    // that never kills reports only the change to unhealthy, not a status update per probe forever.
    if (this.maxFailures > 0 || this.failures === 1) this.onEvent({ healthy: false, consecutiveFailures: this.failures, killTask, message: r.message });
  }
}

/** The empty status of a check's type: what Mesos puts in the first TASK_RUNNING, before any result. */
export function emptyCheckStatus(c: CheckInfo): CheckStatusInfo {
  switch (c.type) {
    case 'COMMAND': return { type: 'COMMAND', command: {} };
    case 'HTTP': return { type: 'HTTP', http: {} };
    case 'TCP': return { type: 'TCP', tcp: {} };
    default: return { type: c.type ?? 'UNKNOWN' };
  }
}

export function checkStatusOf(c: CheckInfo, r: ProbeResult): CheckStatusInfo {
  const s = emptyCheckStatus(c);
  if (s.command && r.exitCode !== undefined) s.command.exit_code = r.exitCode;
  if (s.http && r.statusCode !== undefined) s.http.status_code = r.statusCode;
  if (s.tcp) s.tcp.succeeded = r.connected === true;
  return s;
}

export class Checker extends Periodic {
  private last: string;

  constructor(private readonly check: CheckInfo, clock: Clock, probe: Probe, private readonly onStatus: (s: CheckStatusInfo, message: string) => void) {
    super(clock, ms(check.delay_seconds, CHECK_DEFAULTS.delay_seconds), ms(check.interval_seconds, CHECK_DEFAULTS.interval_seconds), ms(check.timeout_seconds, CHECK_DEFAULTS.timeout_seconds), probe);
    this.last = JSON.stringify(emptyCheckStatus(check));
  }

  protected onResult(r: ProbeResult): void {
    const s = checkStatusOf(this.check, r);
    const text = JSON.stringify(s);
    if (text === this.last) return;
    this.last = text;
    this.onStatus(s, r.message);
  }
}
