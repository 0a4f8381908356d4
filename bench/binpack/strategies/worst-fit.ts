import type { Strategy } from './types.js';

/** Worst fit (spread): the offer left with the most normalised free capacity — load balancing. */
export const worstFit: Strategy = {
  name: 'worst-fit',
  describe: 'spread: the offer with the most normalised capacity left after placing',
  score(need, free, total) {
    let left = 0;
    for (let d = 0; d < need.length; d++) left += (free[d]! - need[d]!) / total[d]!;
    return left;
  },
};
