import { alignment, bestFit, worstFit } from '../../../frameworks/sdk/index.js';
import type { Strategy } from './types.js';

/**
 * Class-aware placement: each class gets the rule that suits how long it
 * stays (Borg and Omega treat service and batch work differently for the
 * same reason).
 *
 *  - Services live until the end, so where they land is never undone: spread
 *    them (worst fit) with Tetris alignment as the second term, so each
 *    machine keeps balanced headroom and a cpu-heavy service lands where cpu,
 *    not memory, is left.
 *  - Batch tasks come and go: pack them best fit into the fullest machines
 *    that hold them, so the free space they leave stays together in large
 *    holes — where a later large task (a batch job of 8-core tasks, a big
 *    service) fits at once instead of waiting past its deadline while small
 *    tasks nibble every machine's spare capacity.
 *
 * Found by comparing combinations on the default mix (docs/binpack.md lists
 * them all, with the ones that did worse); equal weights, nothing tuned.
 */
export const classAware: Strategy = {
  name: 'class-aware',
  describe: 'services: worst fit + alignment (spread, shape-matched); batch: best fit (keeps large holes)',
  scorers: [bestFit],
  scorersFor: { service: [worstFit, alignment], batch: [bestFit] },
};
