// Post-build steps that tsc does not do: make the CLI executable and build the
// native task supervisor (berth-shim) when a C compiler is present.
import { chmodSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

if (existsSync('dist/cli/main.js')) chmodSync('dist/cli/main.js', 0o755);
if (existsSync('agent/shim/build.sh')) {
  const r = spawnSync('sh', ['agent/shim/build.sh'], { stdio: 'inherit' });
  if (r.status !== 0) console.error('warning: berth-shim was not built; the linux containerizer will use its slower fallback');
}
if (existsSync('agent/checks/build.sh')) {
  const r = spawnSync('sh', ['agent/checks/build.sh'], { stdio: 'inherit' });
  if (r.status !== 0) console.error('warning: berth-probe was not built; COMMAND checks will spawn each probe from the agent');
}
