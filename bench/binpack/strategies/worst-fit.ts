import { worstFit as sdkWorstFit } from '../../../frameworks/sdk/index.js';
import type { Strategy } from './types.js';

/** Worst fit (spread): the offer left with the most normalised free capacity — load balancing. */
export const worstFit: Strategy = {
  name: 'worst-fit',
  describe: 'spread: the agent left with the most normalised capacity after placing',
  scorers: [sdkWorstFit],
};
