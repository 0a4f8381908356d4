/**
 * Capability names → the bit mask berth-shim keeps in the bounding set.
 * Numbers from include/uapi/linux/capability.h (stable kernel ABI).
 */
import { BerthError } from '../../../proto/errors.js';

const CAPS: readonly string[] = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID',
  'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW',
  'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT',
  'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD',
  'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG',
  'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
];

/** Accepts `NET_BIND_SERVICE`, `CAP_NET_BIND_SERVICE`, any case. Unknown names are an error, never ignored. */
export function capabilityMask(names: readonly string[]): bigint {
  let mask = 0n;
  for (const raw of names) {
    const name = raw.trim().toUpperCase().replace(/^CAP_/, '');
    const bit = CAPS.indexOf(name);
    if (bit < 0) throw new BerthError('INVALID', `unknown capability '${raw}'`);
    mask |= 1n << BigInt(bit);
  }
  return mask;
}
