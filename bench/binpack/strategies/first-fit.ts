import type { Strategy } from './types.js';

/**
 * The default offer path: Mesos' DRF picks the framework, the allocator orders
 * agents (spread: least allocated first), and the framework takes the first
 * offer its task fits in — what most Mesos frameworks do.
 */
export const firstFit: Strategy = {
  name: 'default',
  describe: "DRF offers in the allocator's order; the framework takes the first offer that fits",
  scorers: [],
};
