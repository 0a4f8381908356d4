/**
 * Runs one agent in its own process for crash tests: `node agent-runner.js '<json>'`
 * with {master, workDir, strict?, containerizer?, cgroupRoot?}. Prints `{"endpoint": …}` on stdout
 * once started, or `{"error": …}` and exits 1. A test SIGKILLs it to simulate an agent crash.
 */
import { startAgent, type ContainerizerChoice } from '../../agent/main.js';
import { silentLogger } from '../../proto/log.js';

interface RunnerConfig { master: string; workDir: string; strict?: boolean; containerizer?: ContainerizerChoice; cgroupRoot?: string }

const cfg = JSON.parse(process.argv[2] ?? '{}') as RunnerConfig;
try {
  const started = await startAgent({
    master: cfg.master, workDir: cfg.workDir, port: 0, containerizer: cfg.containerizer ?? 'posix', strict: cfg.strict ?? true,
    cgroupRoot: cfg.cgroupRoot, ...(process.env['BERTH_TEST_AGENT_LOG'] ? {} : { log: silentLogger }),
  });
  process.stdout.write(JSON.stringify({ endpoint: started.endpoint }) + '\n');
} catch (e) {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
  process.exit(1);
}
