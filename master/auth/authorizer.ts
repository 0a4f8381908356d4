/**
 * Authorization seam of the master: the core asks "may `principal` do `action` on
 * `object`?" and never knows how the answer is made. The seam and Mesos' ACLs live in
 * proto/auth/acls.ts because the agent enforces `access_sandboxes` with the same rules.
 */
export { allowAll, type Action, type Authorizer } from '../../proto/auth/acls.js';
