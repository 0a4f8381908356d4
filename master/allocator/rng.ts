/**
 * Seeded randomness for the allocator (random sorter, agent shuffling).
 *
 * Invariant: every random choice in `master/allocator/` comes from an `Rng`
 * whose state is a single uint32, so it can be saved and restored in O(1)
 * (a tentative `allocate()` rolls it back) and a seeded run is reproducible bit
 * for bit. Nothing here logs: the master logs the seed it passed in.
 */
export class Rng {
  /** Current state; read and write it to checkpoint and roll back. */
  state: number;

  constructor(seed: number) { this.state = seed >>> 0; }

  /** mulberry32: a uniform float in [0, 1). Small, fast, and good enough for shuffles. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniform integer in [0, n). */
  below(n: number): number { return Math.floor(this.next() * n); }
}

/** Mixes a seed with a counter (e.g. the cycle number) into a new uint32 seed (splitmix32 finaliser). */
export function mixSeed(seed: number, n: number): number {
  let z = (seed ^ Math.imul(n + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}
