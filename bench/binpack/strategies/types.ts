/**
 * A placement strategy for the offer path: the SDK placement pipeline's scorers
 * (frameworks/sdk/placement.ts) a framework places with. Feasibility is the
 * pipeline's own (resources first); the highest weighted score wins and ties go
 * to the earlier offer, i.e. the allocator's order. No scorers = first fit.
 * Adding a strategy is one file exporting a `Strategy` plus a line in index.ts.
 */
import type { Scorer } from '../../../frameworks/sdk/index.js';
import type { TaskClass } from '../workload.js';

export interface Strategy {
  readonly name: string;
  /** One line for the report. */
  readonly describe: string;
  readonly scorers: readonly Scorer[];
  /** Scorers for one task class instead of `scorers` (each class has its own framework). */
  readonly scorersFor?: Partial<Record<TaskClass, readonly Scorer[]>>;
  /**
   * The order a framework considers its queued jobs in one offer round: by arrival
   * (default, FIFO), or largest first (by the largest dimension normalised to the
   * machine, then the sum) — First-Fit-Decreasing within a round.
   */
  readonly order?: 'arrival' | 'largest-first';
}
