/**
 * `berth marathon` (run the service framework) and `berth app …` (a client of
 * its Marathon v2 REST API): deploy FILE | list | show | scale | restart |
 * rollback | rm | tasks, readable tables or `--json`, and `--wait` to follow a
 * deployment until it succeeds or fails, with a progress line while it runs.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { natsOptions, type NatsFlags } from './cluster.js';

const DEFAULT_URL = process.env['BERTH_MARATHON'] ?? 'http://127.0.0.1:8080';

export interface MarathonCliOptions extends NatsFlags { master: string; port: number; host: string; workDir: string; frameworkName: string; role: string; replicas?: number }

export async function runMarathonCli(opts: MarathonCliOptions): Promise<void> {
  const { startMarathon } = await import('../frameworks/marathon/main.js');
  const nats = natsOptions(opts, 'berth-marathon');
  const m = await startMarathon({
    master: opts.master, port: opts.port, host: opts.host, workDir: opts.workDir, frameworkName: opts.frameworkName, role: opts.role,
    ...(nats ? { cluster: { nats, prefix: opts.natsPrefix, replicas: opts.replicas } } : {}),
  });
  process.stderr.write(`berth marathon at ${m.url} (framework ${m.frameworkId})\n`);
  const stop = (): void => { void m.stop().then(() => process.exit(0)); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Starts Marathon beside `berth up`'s master (the one call up.ts makes); returns its URL and a stop. */
export async function startMarathonForUp(masterUrl: string, workDir: string, port = 8080, role = '*'): Promise<{ url: string; stop: () => Promise<void> }> {
  const { startMarathon } = await import('../frameworks/marathon/main.js');
  // Beside its own master Marathon uses the native transport (one WebSocket, protobuf frames):
  // an acknowledgement per status update costs a frame, not an HTTP request.
  const master = masterUrl.replace(/^http:\/\//, 'berth://');
  let m;
  try {
    m = await startMarathon({ master, workDir, port, role });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw e;
    m = await startMarathon({ master, workDir, port: 0, role });
  }
  return { url: m.url, stop: () => m.stop() };
}

// ------------------------------------------------------------------ client

class ApiError extends Error {}

async function call(base: string, method: string, p: string, body?: unknown): Promise<any> {
  let res: Response;
  try {
    res = await fetch(`${base.replace(/\/$/, '')}${p}`, {
      method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}),
    });
  } catch (e) {
    throw new ApiError(`cannot reach Marathon at ${base} (${(e as Error).message}); start it with 'berth up' or 'berth marathon', or pass --marathon URL`);
  }
  const text = await res.text();
  let json: any;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = text; }
  if (!res.ok) {
    const details = Array.isArray(json?.details) ? json.details.map((d: any) => `\n  ${d.path}: ${(d.errors ?? []).join('; ')}`).join('') : '';
    const deps = Array.isArray(json?.deployments) ? ` (deployments: ${json.deployments.map((d: any) => d.id).join(', ')})` : '';
    throw new ApiError(`${method} ${p}: ${res.status} ${json?.message ?? text}${deps}${details}`);
  }
  return json;
}

const appPath = (id: string): string => `/v2/apps/${id.replace(/^\//, '')}`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

const out = (s: string): void => { process.stdout.write(s); };

/** Follows a deployment until it finishes; a progress line per change (rewritten in place on a TTY). */
async function waitFor(base: string, deploymentId: string, appIds: string[], timeoutMs: number): Promise<void> {
  const tty = process.stderr.isTTY;
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const deps = (await call(base, 'GET', '/v2/deployments')) as any[];
    const d = deps.find((x) => x.id === deploymentId);
    const parts: string[] = [];
    for (const id of appIds) {
      try {
        const { app } = await call(base, 'GET', appPath(id));
        parts.push(`${app.id} ${app.tasksRunning}/${app.instances} running${app.healthChecks?.length ? `, ${app.tasksHealthy} healthy` : ''}`);
      } catch { parts.push(`${id} removed`); }
    }
    const step = d ? `step ${d.currentStep}/${d.totalSteps} ${d.currentActions.map((a: any) => a.action).join(',')}` : 'done';
    const line = `deployment ${deploymentId.slice(0, 8)}: ${step} — ${parts.join('; ')}`;
    if (line !== last) { process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`); last = line; }
    if (!d) {
      if (tty) process.stderr.write('\n');
      // Finished: success unless a rollback replaced it (the queue then shows why).
      const q = (await call(base, 'GET', '/v2/queue')).queue as any[];
      const stuck = q.filter((x) => appIds.includes(x.app.id));
      if (stuck.length) process.stderr.write(`note: ${stuck.map((x) => `${x.app.id} still waiting for ${x.count}`).join(', ')}\n`);
      return;
    }
    if (Date.now() > end) {
      if (tty) process.stderr.write('\n');
      const q = (await call(base, 'GET', '/v2/queue')).queue as any[];
      const why = q.filter((x) => appIds.includes(x.app.id)).map((x) => `${x.app.id}: ${x.count} waiting; ${(x.lastUnusedOffers?.[0]?.reason ?? []).join(', ') || `delay ${x.delay.timeLeftSeconds}s`}`);
      throw new ApiError(`deployment ${deploymentId} still running after ${timeoutMs / 1000}s${why.length ? `\n  ${why.join('\n  ')}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

interface Common { marathon: string; json?: boolean; force?: boolean; wait?: boolean; timeout: number }

function common(cmd: Command, changes = false): Command {
  cmd.option('--marathon <url>', 'Marathon API URL', DEFAULT_URL).option('--json', 'print JSON');
  if (changes) {
    cmd.option('--force', 'override a deployment lock').option('--wait', 'follow the deployment until it finishes')
      .option('--timeout <seconds>', 'with --wait: give up after this long', (v) => { const n = Number(v); if (!(n > 0)) throw new InvalidArgumentError('--timeout must be a positive number'); return n; }, 300);
  }
  return cmd;
}

async function afterChange(o: Common, r: any, appIds: string[]): Promise<void> {
  const id = r?.deploymentId ?? r?.deployments?.[0]?.id;
  if (o.json) out(JSON.stringify(r, null, 2) + '\n');
  else out(id ? `deployment ${id} started (${appIds.join(', ')})\n` : `nothing to deploy (${appIds.join(', ')} unchanged)\n`);
  if (o.wait && id) { await waitFor(o.marathon, id, appIds, o.timeout * 1000); out(`deployment ${id} finished\n`); }
}

export function registerAppCommands(program: Command): void {
  const app = program.command('app').description('manage apps on Berth\'s Marathon (its v2 REST API)');

  common(app.command('deploy').argument('<file>', 'app definition (JSON: one app, or an array of apps)').description('create or update apps from a file'), true)
    .action(async (file: string, o: Common) => {
      let def: any;
      try { def = JSON.parse(readFileSync(file, 'utf8')); } catch (e) { throw new ApiError(`${file}: ${(e as Error).message}`); }
      const q = o.force ? '?force=true' : '';
      if (Array.isArray(def)) { await afterChange(o, await call(o.marathon, 'PUT', `/v2/apps${q}`, def), def.map((a: any) => String(a.id))); return; }
      if (typeof def?.id !== 'string') throw new ApiError(`${file}: the app needs an "id"`);
      const exists = await call(o.marathon, 'GET', appPath(def.id)).then(() => true, () => false);
      const r = exists ? await call(o.marathon, 'PUT', `${appPath(def.id)}${q}`, def) : await call(o.marathon, 'POST', `/v2/apps${q}`, def);
      await afterChange(o, r, [def.id.startsWith('/') ? def.id : `/${def.id}`]);
    });

  common(app.command('list').description('apps with their instances and deployments'))
    .action(async (o: Common) => {
      const { apps } = await call(o.marathon, 'GET', '/v2/apps');
      if (o.json) { out(JSON.stringify(apps, null, 2) + '\n'); return; }
      if (!apps.length) { out('no apps\n'); return; }
      out(table([['ID', 'RUNNING', 'STAGED', 'HEALTHY', 'CPUS', 'MEM', 'DEPLOYING', 'CMD'],
        ...apps.map((a: any) => [a.id, `${a.tasksRunning}/${a.instances}`, String(a.tasksStaged), a.healthChecks.length ? String(a.tasksHealthy) : '-',
          String(a.cpus), String(a.mem), a.deployments.length ? 'yes' : '', (a.cmd ?? (a.args ?? []).join(' ')).slice(0, 50)])]));
    });

  common(app.command('show').argument('<id>').description('one app: definition, instances, last failure, queue'))
    .action(async (id: string, o: Common) => {
      const { app: a } = await call(o.marathon, 'GET', appPath(id));
      const q = ((await call(o.marathon, 'GET', '/v2/queue')).queue as any[]).find((x) => x.app.id === a.id);
      if (o.json) { out(JSON.stringify({ app: a, queue: q ?? null }, null, 2) + '\n'); return; }
      out(`${a.id}  version ${a.version}\n  cmd:        ${a.cmd ?? (a.args ?? []).join(' ')}\n  instances:  ${a.tasksRunning}/${a.instances} running, ${a.tasksStaged} staged${a.healthChecks.length ? `, ${a.tasksHealthy} healthy, ${a.tasksUnhealthy} unhealthy` : ''}\n  resources:  cpus ${a.cpus}, mem ${a.mem}, disk ${a.disk}, ports ${a.portDefinitions.length}\n`);
      if (a.constraints.length) out(`  constraints: ${a.constraints.map((c: string[]) => c.join(':')).join(', ')}\n`);
      if (a.deployments.length) out(`  deployments: ${a.deployments.map((d: any) => d.id).join(', ')}\n`);
      if (q) out(`  waiting:    ${q.count} to launch${q.delay.timeLeftSeconds > 0 ? `, delayed ${q.delay.timeLeftSeconds}s (backoff)` : ''}${q.lastUnusedOffers?.length ? `; last offers declined: ${[...new Set(q.lastUnusedOffers.flatMap((u: any) => u.reason))].join(', ')}` : ''}\n`);
      if (a.lastTaskFailure) out(`  last failure: ${a.lastTaskFailure.state} ${a.lastTaskFailure.message} (${a.lastTaskFailure.taskId} at ${a.lastTaskFailure.timestamp})\n`);
      if (a.tasks.length) out(table([['  TASK', 'STATE', 'HOST', 'PORTS', 'STARTED'], ...a.tasks.map((t: any) => [`  ${t.id}`, t.state, t.host, t.ports.join(','), t.startedAt ?? '-'])]));
    });

  common(app.command('tasks').argument('<id>').description('the app\'s instances'))
    .action(async (id: string, o: Common) => {
      const { tasks } = await call(o.marathon, 'GET', `${appPath(id)}/tasks`);
      if (o.json) { out(JSON.stringify(tasks, null, 2) + '\n'); return; }
      if (!tasks.length) { out('no tasks\n'); return; }
      out(table([['TASK', 'STATE', 'HOST', 'PORTS', 'HEALTHY', 'STARTED'],
        ...tasks.map((t: any) => [t.id, t.state, t.host, t.ports.join(','), t.healthCheckResults.length ? String(t.healthCheckResults[0].alive) : '-', t.startedAt ?? '-'])]));
    });

  common(app.command('scale').argument('<id>').argument('<instances>').description('set the number of instances'), true)
    .action(async (id: string, n: string, o: Common) => {
      const k = Number(n);
      if (!Number.isInteger(k) || k < 0) throw new ApiError(`instances must be a whole number ≥ 0 (got '${n}')`);
      await afterChange(o, await call(o.marathon, 'PUT', `${appPath(id)}${o.force ? '?force=true' : ''}`, { instances: k }), [`/${id.replace(/^\//, '')}`]);
    });

  common(app.command('restart').argument('<id>').description('replace every instance (rolling, per upgradeStrategy)'), true)
    .action(async (id: string, o: Common) => {
      await afterChange(o, await call(o.marathon, 'POST', `${appPath(id)}/restart${o.force ? '?force=true' : ''}`), [`/${id.replace(/^\//, '')}`]);
    });

  common(app.command('rollback').argument('<id>').option('--version <v>', 'version to return to (default: the one before the current)')
    .description('roll back: undo the running deployment, or return to an earlier version'), true)
    .action(async (id: string, o: Common & { version?: string }) => {
      const { app: a } = await call(o.marathon, 'GET', appPath(id));
      if (a.deployments.length && !o.version) {
        const r = await call(o.marathon, 'DELETE', `/v2/deployments/${a.deployments[0].id}`);
        await afterChange(o, r, [a.id]);
        return;
      }
      const { versions } = await call(o.marathon, 'GET', `${appPath(id)}/versions`);
      const v = o.version ?? versions.find((x: string) => x !== a.version);
      if (!v) throw new ApiError(`${a.id} has no earlier version to roll back to`);
      const def = await call(o.marathon, 'GET', `${appPath(id)}/versions/${v}`);
      for (const k of ['version', 'versionInfo', 'ports']) delete def[k];
      await afterChange(o, await call(o.marathon, 'PUT', `${appPath(id)}${o.force ? '?force=true' : ''}`, def), [a.id]);
    });

  common(app.command('rm').argument('<id>').description('remove the app and kill its instances'), true)
    .action(async (id: string, o: Common) => {
      await afterChange(o, await call(o.marathon, 'DELETE', `${appPath(id)}${o.force ? '?force=true' : ''}`), [`/${id.replace(/^\//, '')}`]);
    });
}
