/**
 * Job dependencies form a DAG. A submission may add several jobs that depend on each other and
 * on jobs already known; `findCycle` runs over the union before anything is created, so a cycle
 * is rejected whole and named (`a → b → c → a`).
 */

/** The first cycle found, as a path that starts and ends on the same id, or undefined. */
export function findCycle(edges: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  // Iterative DFS with colours: 1 = on the current path, 2 = finished. A grey successor closes a cycle.
  const colour = new Map<string, 1 | 2>();
  for (const start of [...edges.keys()].sort()) {
    if (colour.has(start)) continue;
    const path: string[] = [start];
    const iters: Iterator<string>[] = [(edges.get(start) ?? [])[Symbol.iterator]()];
    colour.set(start, 1);
    while (path.length > 0) {
      const next = iters[iters.length - 1]!.next();
      if (next.done) {
        colour.set(path.pop()!, 2);
        iters.pop();
        continue;
      }
      const to = next.value;
      const c = colour.get(to);
      if (c === 1) return [...path.slice(path.indexOf(to)), to];
      if (c === 2) continue;
      colour.set(to, 1);
      path.push(to);
      iters.push((edges.get(to) ?? [])[Symbol.iterator]());
    }
  }
  return undefined;
}
