import { BerthError } from '../../../proto/errors.js';
import { bestFit } from './best-fit.js';
import { classAware } from './class-aware.js';
import { firstFit } from './first-fit.js';
import { tetris } from './tetris.js';
import { tetrisDecreasing } from './tetris-decreasing.js';
import type { Strategy } from './types.js';
import { worstFit } from './worst-fit.js';

export type { Strategy } from './types.js';

/** Offer-path strategies (run through the real master), by name. */
export const OFFER_STRATEGIES: Record<string, Strategy> = {
  [firstFit.name]: firstFit,
  [bestFit.name]: bestFit,
  [worstFit.name]: worstFit,
  [tetris.name]: tetris,
  [tetrisDecreasing.name]: tetrisDecreasing,
  [classAware.name]: classAware,
};

/** References computed without the master: the cost of two-level scheduling and an offline packing. */
export const REFERENCES = ['monolithic', 'ffd'] as const;
export const ALL_STRATEGIES = [...Object.keys(OFFER_STRATEGIES), ...REFERENCES];

export function parseStrategies(list: string): string[] {
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!ALL_STRATEGIES.includes(n)) throw new BerthError('INVALID', `--strategies: unknown strategy '${n}' (known: ${ALL_STRATEGIES.join(', ')})`);
  }
  if (names.length === 0) throw new BerthError('INVALID', '--strategies: give at least one strategy');
  return names;
}
