/**
 * An app instance as a Mesos TaskInfo: command, environment Marathon sets
 * (MARATHON_APP_ID, PORT0…, PORT_<NAME>), fetch URIs, and the app's health
 * and readiness checks translated to the Mesos-native `health_check` and
 * `check` that the agent runs (so checks scale with agents, not with us).
 */
import { buildTaskInfo, type Offer, type Resource, type TaskInfo } from '../sdk/index.js';
import type { AppDefinition, HealthCheckDef } from './app.js';

type Json = Record<string, unknown>;

/** The port a check targets: a fixed `port`, else the host port at `portIndex`. */
function checkPort(hc: { port?: number; portIndex?: number }, ports: number[]): number {
  return hc.port ?? ports[hc.portIndex ?? 0] ?? 0;
}

/** Marathon health check → Mesos HealthCheck (HTTP, TCP, COMMAND). */
export function mesosHealthCheck(hc: HealthCheckDef, ports: number[]): TaskInfo['health_check'] {
  const common = {
    delay_seconds: hc.delaySeconds, interval_seconds: hc.intervalSeconds, timeout_seconds: hc.timeoutSeconds,
    consecutive_failures: hc.maxConsecutiveFailures, grace_period_seconds: hc.gracePeriodSeconds,
  };
  switch (hc.protocol) {
    case 'COMMAND': return { ...common, type: 'COMMAND', command: { shell: true, value: hc.command!.value } };
    case 'TCP': case 'MESOS_TCP': return { ...common, type: 'TCP', tcp: { port: checkPort(hc, ports) } };
    default: {
      const https = hc.protocol.endsWith('HTTPS');
      return { ...common, type: 'HTTP', http: { scheme: https ? 'https' : 'http', port: checkPort(hc, ports), path: hc.path ?? '/' } };
    }
  }
}

export function taskInfoFor(app: AppDefinition, taskId: string, offer: Offer, resources: Resource[], ports: number[]): TaskInfo {
  const env: Record<string, string> = {
    ...app.env,
    MARATHON_APP_ID: app.id, MARATHON_APP_VERSION: app.version, MESOS_TASK_ID: taskId, HOST: offer.hostname,
    MARATHON_APP_LABELS: Object.keys(app.labels).join(' '),
  };
  for (const [k, v] of Object.entries(app.labels)) if (/^[A-Za-z0-9_]+$/.test(k)) env[`MARATHON_APP_LABEL_${k.toUpperCase()}`] = v;
  app.portDefinitions.forEach((pd, i) => { if (pd.name && ports[i] !== undefined) env[`PORT_${pd.name.toUpperCase().replace(/-/g, '_')}`] = String(ports[i]); });
  const extra: Partial<TaskInfo> & Json = {};
  if (app.healthChecks[0]) extra.health_check = mesosHealthCheck(app.healthChecks[0], ports);
  const rc = app.readinessChecks[0];
  if (rc) {
    const idx = app.portDefinitions.findIndex((p) => p.name === rc.portName);
    extra['check'] = {
      type: 'HTTP', http: { port: ports[idx] ?? 0, path: rc.path },
      delay_seconds: 0, interval_seconds: rc.intervalSeconds, timeout_seconds: rc.timeoutSeconds,
    };
  }
  const labels = Object.keys(app.labels).length ? app.labels : undefined;
  const info = buildTaskInfo({
    id: taskId, name: app.id.slice(1).replace(/\//g, '.'),
    ...(app.cmd ? { cmd: app.cmd } : { argv: app.args ?? [] }),
    env, ...(app.user ? { user: app.user } : {}), ...(labels ? { labels } : {}),
    ...(app.taskKillGracePeriodSeconds !== undefined && app.taskKillGracePeriodSeconds !== null ? { killGracePeriodSeconds: app.taskKillGracePeriodSeconds } : {}),
    extra: extra as Partial<TaskInfo>,
  }, offer, { resources, ports });
  if (app.fetch.length && info.command) {
    info.command.uris = app.fetch.map((f) => ({
      value: f.uri, extract: f.extract ?? true, executable: f.executable ?? false, cache: f.cache ?? false, ...(f.destPath ? { output_file: f.destPath } : {}),
    }));
  }
  return info;
}
