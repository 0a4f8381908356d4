/** The master's `--credentials FILE`: shared with the agent's `--http-credentials`, so it lives in proto/auth/. */
export { CredentialStore } from '../../proto/auth/credentials.js';
