import type { Strategy } from './types.js';

/** Best fit: the offer left with the least normalised free capacity (summed over dimensions) after placing. */
export const bestFit: Strategy = {
  name: 'best-fit',
  describe: 'the offer with the least normalised capacity left after placing (sum over cpu, mem)',
  score(need, free, total) {
    let left = 0;
    for (let d = 0; d < need.length; d++) left += (free[d]! - need[d]!) / total[d]!;
    return -left;
  },
};
