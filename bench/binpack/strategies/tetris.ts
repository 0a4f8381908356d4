import { alignment } from '../../../frameworks/sdk/index.js';
import type { Strategy } from './types.js';

/**
 * Multi-resource alignment (Grandl et al., "Multi-resource packing for cluster
 * schedulers", SIGCOMM 2014 — Tetris): the dot product of the task's demand
 * and the agent's free capacity, both normalised by the agent's size. It
 * prefers machines whose free shape matches the task's, so a cpu-heavy task
 * lands where cpu, not memory, is left.
 */
export const tetris: Strategy = {
  name: 'tetris',
  describe: 'alignment: dot product of normalised demand and normalised free capacity (Tetris)',
  scorers: [alignment],
};
