/** Mesos' ACLs (`--acls FILE`): shared with the agent, so they live in proto/auth/acls.ts. */
export { LocalAuthorizer } from '../../proto/auth/acls.js';
