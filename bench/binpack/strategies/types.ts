/**
 * A placement strategy for the offer path: a scorer over the agents a
 * framework holds offers for. Feasibility (the task fits what is left of the
 * offer) is checked before scoring; the highest score wins, ties go to the
 * earlier offer (the allocator's order). Vectors are per dimension in the
 * order of `DIMS`; scores should use amounts normalised by the agent's total.
 * Adding a strategy is one file exporting a `Strategy` plus a line in index.ts.
 */
export const DIMS = ['cpus', 'mem'] as const;

export interface Strategy {
  readonly name: string;
  /** One line for the report. */
  readonly describe: string;
  score(need: ArrayLike<number>, free: ArrayLike<number>, total: ArrayLike<number>): number;
}
