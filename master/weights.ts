/**
 * Role weights (Mesos `--weights`, `weights.cpp`): a role of weight w is entitled to w times the
 * dominant share of a role of weight 1; the role sorter orders roles by share / weight. Roles not
 * named weigh 1. Weights are configuration, fixed for the master's life (Mesos' `/weights` update
 * endpoint is not offered): they are validated once, at start, before anything is accepted.
 */
import { BerthError } from '../proto/errors.js';
import { roleError } from './validation.js';

/** Most roles one weights table may name (a bound, like every input). */
export const MAX_WEIGHTED_ROLES = 1000;

/** Checks a weights table; throws INVALID naming `field[role]` at fault. */
export function validateWeights(weights: Record<string, number>, field = 'weights'): void {
  const entries = Object.entries(weights);
  if (entries.length > MAX_WEIGHTED_ROLES) throw new BerthError('INVALID', `${field}: at most ${MAX_WEIGHTED_ROLES} roles (got ${entries.length})`);
  for (const [role, w] of entries) {
    const err = roleError(`${field}[${role}]`, role);
    if (err) throw new BerthError('INVALID', err);
    if (typeof w !== 'number' || !Number.isFinite(w) || !(w > 0)) {
      throw new BerthError('INVALID', `${field}[${role}]: a weight must be a positive finite number (got ${String(w)})`);
    }
  }
}

/**
 * Parses Mesos' flag form `role1=weight1,role2=weight2` (e.g. `services=2,batch=1`); `flag` names
 * the option in every error. A role named twice is an error, not a silent override.
 */
export function parseWeights(text: string, flag = '--weights'): Record<string, number> {
  const out: Record<string, number> = {};
  if (text.trim() === '') throw new BerthError('INVALID', `${flag}: expected role=weight[,role=weight…], got an empty value`);
  for (const part of text.split(',')) {
    const eq = part.lastIndexOf('=');
    if (eq <= 0) throw new BerthError('INVALID', `${flag}: '${part.trim()}' is not role=weight`);
    const role = part.slice(0, eq).trim();
    const raw = part.slice(eq + 1).trim();
    if (Object.hasOwn(out, role)) throw new BerthError('INVALID', `${flag}: role '${role}' is named twice`);
    const w = raw === '' ? NaN : Number(raw);
    out[role] = w;
  }
  validateWeights(out, flag);
  return out;
}

/** The weight of `role` under `weights` (1 when not named). */
export function weightOf(weights: Record<string, number> | undefined, role: string): number {
  return weights && Object.hasOwn(weights, role) ? weights[role]! : 1;
}
