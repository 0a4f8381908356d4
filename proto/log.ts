/**
 * Structured logging: one JSON object per line (pino). Every component gets a
 * child logger with its name, so `berth up`'s merged output stays greppable.
 * On a terminal the same records are printed as readable lines (time, level,
 * component, message, fields); BERTH_LOG_FORMAT=json|pretty overrides.
 * BERTH_LOG_LEVEL=debug|info|warn|error|silent (tests default to silent).
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

const level = process.env.BERTH_LOG_LEVEL ?? (process.env.BERTH_TEST ? 'silent' : 'info');

// Logs go to stderr: stdout belongs to the program (JSON figures of benches, output of examples
// and of user frameworks that embed the SDK).
const format = process.env.BERTH_LOG_FORMAT ?? (process.stderr.isTTY ? 'pretty' : 'json');
const destination: DestinationStream = format === 'pretty'
  ? pretty({
    destination: 2, sync: true, colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,component',
    messageFormat: (log, key) => (log.component ? `${String(log.component)}: ${String(log[key])}` : String(log[key])),
  })
  : pino.destination(2);
export const rootLogger: Logger = pino({ level, base: { pid: process.pid } }, destination);

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger.child({ component, ...bindings });
}

export const silentLogger: Logger = pino({ level: 'silent' });
