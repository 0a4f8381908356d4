/**
 * Resolves task users from the local user database, as the task will see it.
 * /etc/passwd and /etc/group are parsed (and cached by mtime) because a
 * launch must not pay a process spawn; `getent` is the fallback for users
 * that come from NSS (LDAP, sssd…) only.
 */
import { execFile } from 'node:child_process';
import { stat, readFile } from 'node:fs/promises';

export interface ResolvedUser {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups (including the primary one), as initgroups(3) would set. */
  groups: number[];
}

interface Db {
  mtimeMs: number;
  users: Map<string, { uid: number; gid: number }>;
  groupsOf: Map<string, number[]>;
}

let cache: Db | undefined;
let checkedAt = 0;
/** The files are re-checked at most this often: a launch should not pay two stat calls. */
const RECHECK_MS = 1000;

async function load(): Promise<Db> {
  if (cache && Date.now() - checkedAt < RECHECK_MS) return cache;
  checkedAt = Date.now();
  const [ps, gs] = await Promise.all([stat('/etc/passwd'), stat('/etc/group').catch(() => undefined)]);
  const mtimeMs = ps.mtimeMs + (gs?.mtimeMs ?? 0);
  if (cache && cache.mtimeMs === mtimeMs) return cache;
  const users = new Map<string, { uid: number; gid: number }>();
  for (const line of (await readFile('/etc/passwd', 'utf8')).split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || f[0] === '' || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid) && !users.has(f[0]!)) users.set(f[0]!, { uid, gid });
  }
  const groupsOf = new Map<string, number[]>();
  const groupText = gs ? await readFile('/etc/group', 'utf8') : '';
  for (const line of groupText.split('\n')) {
    const f = line.split(':');
    if (f.length < 4) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid)) continue;
    for (const member of f[3]!.split(',').filter(Boolean)) {
      const list = groupsOf.get(member) ?? [];
      list.push(gid);
      groupsOf.set(member, list);
    }
  }
  cache = { mtimeMs, users, groupsOf };
  return cache;
}

function getent(db: string, key: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('getent', [db, key], { timeout: 5000 }, (err, stdout) => resolve(err ? undefined : stdout.trim()));
  });
}

/** undefined when the user does not exist. */
export async function resolveUser(name: string): Promise<ResolvedUser | undefined> {
  const db = await load();
  const local = db.users.get(name);
  if (local) {
    const groups = [...new Set([local.gid, ...(db.groupsOf.get(name) ?? [])])];
    return { name, ...local, groups };
  }
  // Names only: a numeric "user" is not looked up as a uid, as Mesos.
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(name)) return undefined;
  const line = await getent('passwd', name);
  const f = line?.split(':');
  if (!f || f.length < 4) return undefined;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  const groupsLine = await new Promise<string | undefined>((resolve) => {
    execFile('id', ['-G', name], { timeout: 5000 }, (err, out) => resolve(err ? undefined : out.trim()));
  });
  const groups = groupsLine ? groupsLine.split(/\s+/).map(Number).filter(Number.isInteger) : [gid];
  return { name, uid, gid, groups };
}
