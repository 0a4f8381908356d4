/**
 * Deployment plans: every change to apps is a deployment of ordered steps, each
 * a set of actions that run together (Marathon's DeploymentPlan). A step starts
 * when the one before it has finished; apps a changed app depends on are
 * deployed in an earlier step (`dependencies`).
 *
 * Actions (Marathon's names): StartApplication (a new app, 0 instances),
 * ScaleApplication (reach `instances`), RestartApplication (replace every
 * instance of an older config, honouring `upgradeStrategy`), StopApplication
 * (kill all, then remove the app).
 */
import { randomUUID } from 'node:crypto';
import { changeKind, toAppJson, type AppDefinition } from './app.js';

export type ActionKind = 'StartApplication' | 'ScaleApplication' | 'RestartApplication' | 'StopApplication';
export interface Action { action: ActionKind; app: string }
export interface Step { actions: Action[] }

/** A deployment as persisted and served (Marathon's shape plus what resuming needs). */
export interface Deployment {
  id: string;
  version: string;
  affectedApps: string[];
  steps: Step[];
  /** Index of the running step (0-based); `steps.length` = finished. */
  current: number;
  /** Per app: the definition before (null = did not exist) and after (null = removed). */
  original: Record<string, AppDefinition | null>;
  target: Record<string, AppDefinition | null>;
  startedAt: number;
  /** When set (ms since epoch), the deployment is rolled back if still running then. */
  deadline?: number;
  /** This deployment undoes another (its id). */
  rollbackOf?: string;
}

/**
 * The plan from `original` to `target` for the given apps; undefined when nothing changes.
 * Apps are ordered into steps by their `dependencies` among the changed apps (a dependency
 * cycle falls back to one step, which is what Marathon does after rejecting it… we accept).
 */
export function plan(original: Record<string, AppDefinition | null>, target: Record<string, AppDefinition | null>, version: string, now: number, opts: { restart?: Set<string> } = {}): Deployment | undefined {
  const ids = [...new Set([...Object.keys(original), ...Object.keys(target)])].sort();
  const kinds = new Map<string, ActionKind[]>();
  for (const id of ids) {
    const a = original[id] ?? null; const b = target[id] ?? null;
    if (!a && b) kinds.set(id, ['StartApplication', 'ScaleApplication']);
    else if (a && !b) kinds.set(id, ['StopApplication']);
    else if (a && b) {
      const k = opts.restart?.has(id) ? 'restart' : changeKind(a, b);
      if (k === 'restart') kinds.set(id, ['RestartApplication']);
      else if (k === 'scale') kinds.set(id, ['ScaleApplication']);
    }
  }
  if (kinds.size === 0) return undefined;
  // Layers by dependency depth among the changed apps (stops last, in reverse order).
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (id: string): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const deps = (target[id] ?? original[id])?.dependencies ?? [];
    const d = deps.filter((x) => kinds.has(x)).reduce((m, x) => Math.max(m, depthOf(x) + 1), 0);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const steps: Step[] = [];
  const push = (layer: number, a: Action): void => {
    while (steps.length <= layer) steps.push({ actions: [] });
    steps[layer]!.actions.push(a);
  };
  const maxDepth = Math.max(0, ...[...kinds.keys()].map(depthOf));
  for (const [id, acts] of kinds) {
    const d = depthOf(id);
    if (acts[0] === 'StopApplication') continue;
    if (acts[0] === 'StartApplication') { push(2 * d, { action: 'StartApplication', app: id }); push(2 * d + 1, { action: 'ScaleApplication', app: id }); }
    else push(2 * d + 1, { action: acts[0]!, app: id });
  }
  for (const [id, acts] of kinds) if (acts[0] === 'StopApplication') push(2 * maxDepth + 2 + (maxDepth - depthOf(id)), { action: 'StopApplication', app: id });
  const nonEmpty = steps.filter((s) => s.actions.length > 0);
  const apps = [...kinds.keys()];
  const timeouts = apps.map((id) => target[id]?.deploymentTimeoutSeconds ?? original[id]?.deploymentTimeoutSeconds).filter((x): x is number => x !== undefined);
  return {
    id: randomUUID(), version, affectedApps: apps, steps: nonEmpty, current: 0,
    original: Object.fromEntries(apps.map((id) => [id, original[id] ?? null])),
    target: Object.fromEntries(apps.map((id) => [id, target[id] ?? null])),
    startedAt: now,
    ...(timeouts.length ? { deadline: now + Math.min(...timeouts) * 1000 } : {}),
  };
}

/** Marathon's JSON for `GET /v2/deployments` (currentStep is 1-based). */
export function deploymentJson(d: Deployment, readiness: (app: string) => unknown[] = () => []): Record<string, unknown> {
  const step = d.steps[Math.min(d.current, d.steps.length - 1)];
  return {
    id: d.id, version: d.version, affectedApps: d.affectedApps, affectedPods: [],
    steps: d.steps.map((s) => ({ actions: s.actions.map((a) => ({ action: a.action, app: a.app })) })),
    currentActions: (step?.actions ?? []).map((a) => ({ action: a.action, app: a.app, readinessCheckResults: readiness(a.app) })),
    currentStep: Math.min(d.current + 1, d.steps.length), totalSteps: d.steps.length,
  };
}

/** The `plan` object of deployment events (Marathon's DeploymentPlan JSON). */
export function planJson(d: Deployment): Record<string, unknown> {
  const group = (apps: Record<string, AppDefinition | null>): Record<string, unknown> => ({
    id: '/', apps: Object.values(apps).filter((a): a is AppDefinition => !!a).map(toAppJson), groups: [], dependencies: [], version: d.version,
  });
  return {
    id: d.id, version: d.version, original: group(d.original), target: group(d.target),
    steps: d.steps.map((s) => ({ actions: s.actions.map((a) => ({ action: a.action, app: a.app })) })),
  };
}
