/**
 * Id helpers. Master ids look like Mesos's (`<date>-<time>-<rand>`),
 * agent ids `<master>-S<n>`, framework ids `<master>-<nnnn>`, offer ids
 * `<master>-O<n>`; counters are per master incarnation, and the master id
 * changes on every start, so ids never repeat across restarts.
 */
export function newMasterId(now: number, rand: () => number = Math.random): string {
  const d = new Date(now);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const date = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`;
  const time = `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
  return `${date}-${time}-${Math.floor(rand() * 2 ** 31)}-${process.pid}`;
}

