/**
 * Authorization seam: the core asks "may `principal` do `action` on
 * `object`?" and never knows how the answer is made. With no ACLs configured
 * every request is allowed (Mesos' default `--acls` unset). acls.ts
 * implements Mesos' JSON ACLs behind this interface.
 */

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

export interface Authorizer {
  /**
   * `principal` undefined = an unauthenticated caller (Mesos' ANY subject does not match
   * it unless the ACL says so, as `principals: {type: ANY}` matches "any or none").
   */
  authorized(principal: string | undefined, action: Action, object: string | undefined): boolean;
}

export const allowAll: Authorizer = { authorized: () => true };
