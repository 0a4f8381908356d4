/**
 * TaskStatus.uuid and Acknowledge.uuid: 16 raw bytes, base64 in the JSON form.
 * Generated as RFC 4122 v4 uuids (Node's randomUUID draws from a pooled CSPRNG,
 * so one per status update is cheap).
 */
import { randomUUID } from 'node:crypto';

export function newUuidBase64(): string {
  return Buffer.from(randomUUID().replace(/-/g, ''), 'hex').toString('base64');
}

export function isUuidBase64(s: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(s) && Buffer.from(s, 'base64').length === 16;
}
