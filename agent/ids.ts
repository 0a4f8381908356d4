/**
 * ID validation, run before an ID touches the filesystem: framework, task and
 * executor IDs become directory names in the sandbox and checkpoint trees, so
 * an ID that is empty, `.`/`..`, holds `/`, NUL or control characters, or is
 * over-long is rejected (Mesos `common/validation.cpp` rules).
 */
export const MAX_ID_LENGTH = 255;

/** Returns why `id` is not a safe ID, or undefined when it is. `what` names the field at fault. */
export function idError(what: string, id: string | undefined): string | undefined {
  if (id === undefined || id === '') return `${what} is empty`;
  if (id.length > MAX_ID_LENGTH) return `${what} is longer than ${MAX_ID_LENGTH} characters`;
  if (id === '.' || id === '..') return `${what} '${id}' is not allowed`;
  if (id.includes('/') || id.includes('\\')) return `${what} '${id}' contains a path separator`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\s]/.test(id)) return `${what} contains whitespace or control characters`;
  return undefined;
}
