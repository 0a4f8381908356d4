/**
 * Typed errors shared by every part: each has a stable `code` a caller can
 * switch on and a message that names the field or value at fault.
 */
export type ErrorCode =
  | 'BAD_MESSAGE'        // malformed frame or JSON, unknown enum, missing required field
  | 'TOO_LARGE'          // a payload, record or repeated field over its bound
  | 'UNSUPPORTED'        // a feature of the schema Berth does not implement
  | 'INVALID'            // well-formed but semantically invalid (validation)
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'CONFLICT'
  | 'IO';

export class BerthError extends Error {
  override name = 'BerthError';
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
  }
}

export function badMessage(message: string): BerthError {
  return new BerthError('BAD_MESSAGE', message);
}
