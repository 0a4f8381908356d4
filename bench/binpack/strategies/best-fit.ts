import { bestFit as sdkBestFit } from '../../../frameworks/sdk/index.js';
import type { Strategy } from './types.js';

/** Best fit: the offer left with the least normalised free capacity (summed over dimensions) after placing. */
export const bestFit: Strategy = {
  name: 'best-fit',
  describe: 'the agent left with the least normalised capacity after placing (sum over cpu, mem)',
  scorers: [sdkBestFit],
};
