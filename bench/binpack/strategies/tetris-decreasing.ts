import { alignment } from '../../../frameworks/sdk/index.js';
import type { Strategy } from './types.js';

/**
 * Tetris alignment over a queue taken largest first in each offer round (as
 * Tetris itself and FFD do): big tasks claim the machines whose free shape fits
 * them before small ones fragment those machines.
 */
export const tetrisDecreasing: Strategy = {
  name: 'tetris-decreasing',
  describe: 'alignment (Tetris) with each offer round taking the queue largest first',
  scorers: [alignment],
  order: 'largest-first',
};
