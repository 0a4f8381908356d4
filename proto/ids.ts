/**
 * The one rule for framework-chosen and master-assigned IDs (framework, agent, task, executor),
 * checked before an ID touches the filesystem — agents turn IDs into sandbox and checkpoint
 * directory names. As Mesos's `common/validation.cpp`: not empty, not `.` or `..`, no path
 * separator (`/` or `\`), no control character, at most 255 bytes.
 */
export const MAX_ID_BYTES = 255;

/** Why `id` is not a usable ID, or undefined when it is. `field` names the field at fault. */
export function idError(field: string, id: string | undefined): string | undefined {
  if (id === undefined || id === '') return `${field} must not be empty`;
  if (id === '.' || id === '..') return `${field} '${id}' is not allowed`;
  if (id.includes('/') || id.includes('\\')) return `${field} '${id}' must not contain '/' or '\\'`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(id)) return `${field} must not contain control characters`;
  if (Buffer.byteLength(id) > MAX_ID_BYTES) return `${field} is longer than ${MAX_ID_BYTES} bytes`;
  return undefined;
}
