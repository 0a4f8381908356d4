/**
 * Mesos' local authorizer over ACLs (shared by the master and the agent) in Mesos' JSON format (`--acls FILE`):
 *
 *   {
 *     "permissive": false,
 *     "register_frameworks": [ {"principals": {"values": ["ops"]}, "roles": {"values": ["prod"]}} ],
 *     "run_tasks":           [ {"principals": {"type": "ANY"},     "users": {"values": ["nobody"]}} ],
 *     "teardown_frameworks": [ {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}} ],
 *     "view_frameworks":     [ {"principals": {"type": "ANY"},     "users": {"type": "ANY"}} ],
 *     "view_tasks":          [ … ], "access_sandboxes": [ … ]
 *   }
 *
 * An entity is `{"values": [...]}`, `{"type": "ANY"}` or `{"type": "NONE"}`. For a request,
 * the ACLs of its action are tried in order; the first whose subject and object both MATCH
 * decides, and it ALLOWS unless its subject or object is NONE. ANY and NONE match every
 * value; `values` match a value in the list. A request without a principal (not
 * authenticated) matches only ANY/NONE subjects. No matching ACL: `permissive` decides
 * (default true, as Mesos).
 */
import { readFileSync } from 'node:fs';
import { BerthError } from '../errors.js';

/** The Mesos ACL actions Berth checks (names as in Mesos' ACLs JSON). */
export type Action =
  /** object: a role the framework subscribes with. */
  | 'register_frameworks'
  /** object: the user a task runs as. */
  | 'run_tasks'
  /** object: the principal that registered the framework being torn down. */
  | 'teardown_frameworks'
  /** object: the user of the framework being viewed. */
  | 'view_frameworks'
  /** object: the user of the task being viewed. */
  | 'view_tasks'
  /** object: the user of the task whose sandbox is read. */
  | 'access_sandboxes';

/**
 * Authorization seam: "may `principal` do `action` on `object`?". The asker never knows how
 * the answer is made. With no ACLs configured every request is allowed (Mesos' default).
 */
export interface Authorizer {
  /**
   * `principal` undefined = an unauthenticated caller (Mesos' ANY subject does not match
   * it unless the ACL says so, as `principals: {type: ANY}` matches "any or none").
   */
  authorized(principal: string | undefined, action: Action, object: string | undefined): boolean;
}

export const allowAll: Authorizer = { authorized: () => true };

type Entity = { kind: 'ANY' } | { kind: 'NONE' } | { kind: 'SOME'; values: Set<string> };
interface Acl { subject: Entity; object: Entity }

/** Each action's object field name in Mesos' ACLs. */
const OBJECT_FIELD: Record<Action, string> = {
  register_frameworks: 'roles',
  run_tasks: 'users',
  teardown_frameworks: 'framework_principals',
  view_frameworks: 'users',
  view_tasks: 'users',
  access_sandboxes: 'users',
};

function entity(v: unknown, where: string): Entity {
  if (v === undefined) return { kind: 'ANY' }; // Mesos: an absent entity is ANY
  if (!v || typeof v !== 'object') throw new BerthError('INVALID', `${where} must be {"values": [...]} or {"type": "ANY"|"NONE"}`);
  const o = v as { type?: unknown; values?: unknown };
  if (o.values !== undefined) {
    if (!Array.isArray(o.values) || !o.values.every((x) => typeof x === 'string')) throw new BerthError('INVALID', `${where}.values must be a list of strings`);
    return { kind: 'SOME', values: new Set(o.values as string[]) };
  }
  if (o.type === 'ANY') return { kind: 'ANY' };
  if (o.type === 'NONE') return { kind: 'NONE' };
  throw new BerthError('INVALID', `${where}.type must be ANY or NONE (got ${JSON.stringify(o.type)})`);
}

function matches(e: Entity, value: string | undefined): boolean {
  if (e.kind !== 'SOME') return true;
  return value !== undefined && e.values.has(value);
}

export class LocalAuthorizer implements Authorizer {
  private constructor(private readonly permissive: boolean, private readonly acls: Map<Action, Acl[]>) {}

  authorized(principal: string | undefined, action: Action, object: string | undefined): boolean {
    for (const acl of this.acls.get(action) ?? []) {
      if (principal === undefined && acl.subject.kind === 'SOME') continue;
      if (!matches(acl.subject, principal) || !matches(acl.object, object)) continue;
      return acl.subject.kind !== 'NONE' && acl.object.kind !== 'NONE';
    }
    return this.permissive;
  }

  static parse(text: string, source: string): LocalAuthorizer {
    let obj: unknown;
    try { obj = JSON.parse(text); } catch (e) { throw new BerthError('INVALID', `${source}: not valid JSON: ${(e as Error).message}`); }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new BerthError('INVALID', `${source}: expected a JSON object of ACL lists`);
    const o = obj as Record<string, unknown>;
    let permissive = true;
    if (o.permissive !== undefined) {
      if (typeof o.permissive !== 'boolean') throw new BerthError('INVALID', `${source}: 'permissive' must be true or false`);
      permissive = o.permissive;
    }
    const acls = new Map<Action, Acl[]>();
    for (const [key, value] of Object.entries(o)) {
      if (key === 'permissive') continue;
      if (!(key in OBJECT_FIELD)) throw new BerthError('INVALID', `${source}: '${key}' is not an ACL Berth knows (${Object.keys(OBJECT_FIELD).join(', ')})`);
      const action = key as Action;
      if (!Array.isArray(value)) throw new BerthError('INVALID', `${source}: '${key}' must be a list of ACLs`);
      acls.set(action, value.map((a: unknown, i) => {
        const where = `${source}: ${key}[${i}]`;
        if (!a || typeof a !== 'object') throw new BerthError('INVALID', `${where} must be an object`);
        const r = a as Record<string, unknown>;
        return { subject: entity(r.principals, `${where}.principals`), object: entity(r[OBJECT_FIELD[action]], `${where}.${OBJECT_FIELD[action]}`) };
      }));
    }
    return new LocalAuthorizer(permissive, acls);
  }

  static load(file: string, flag = '--acls'): LocalAuthorizer {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (e) { throw new BerthError('INVALID', `${flag} ${file}: ${(e as Error).message}`); }
    return LocalAuthorizer.parse(text, `${flag} ${file}`);
  }
}
