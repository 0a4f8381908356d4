/**
 * Structured logging: one JSON object per line (pino). Every component gets a
 * child logger with its name, so `berth up`'s merged output stays greppable.
 * BERTH_LOG_LEVEL=debug|info|warn|error|silent (tests default to silent).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const level = process.env.BERTH_LOG_LEVEL ?? (process.env.BERTH_TEST ? 'silent' : 'info');

// Logs go to stderr: stdout belongs to the program (JSON figures of benches, output of examples
// and of user frameworks that embed the SDK).
export const rootLogger: Logger = pino({ level, base: { pid: process.pid } }, pino.destination(2));

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...bindings });
}

export const silentLogger: Logger = pino({ level: 'silent' });
