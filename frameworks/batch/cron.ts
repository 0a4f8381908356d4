/**
 * Cron schedules on the injected clock. `cron-parser` reads the expression in the job's time
 * zone; this file only decides when the next run is due and whether a due run is still worth
 * starting (`startingDeadlineSeconds`).
 */
import { CronExpressionParser } from 'cron-parser';

/** Undefined if the expression is valid in that zone, else the parser's complaint. */
export function cronError(expr: string, tz: string): string | undefined {
  const fields = expr.trim().split(/\s+/).length;
  if (fields < 5 || fields > 6) return `'${expr}' has ${fields} fields; use 5 (minute hour day month weekday) or 6 (with seconds first)`;
  try {
    CronExpressionParser.parse(expr, { tz, strict: false }).next();
    return undefined;
  } catch (e) {
    return `'${expr}' is not a valid cron expression: ${(e as Error).message}`;
  }
}

/** The first time strictly after `afterMs` that the schedule fires, in epoch milliseconds. */
export function nextFire(expr: string, tz: string, afterMs: number): number {
  const it = CronExpressionParser.parse(expr, { tz, currentDate: new Date(afterMs), strict: false });
  return it.next().getTime();
}
