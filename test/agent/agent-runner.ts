/**
 * Runs one agent in its own process for crash tests: `node agent-runner.js '<json>'`
 * with {master, workDir, strict?}. Prints `{"endpoint": …}` on stdout once started,
 * or `{"error": …}` and exits 1. A test SIGKILLs it to simulate an agent crash.
 */
import { startAgent } from '../../agent/main.js';

interface RunnerConfig { master: string; workDir: string; strict?: boolean }

const cfg = JSON.parse(process.argv[2] ?? '{}') as RunnerConfig;
try {
  const started = await startAgent({ master: cfg.master, workDir: cfg.workDir, port: 0, containerizer: 'posix', strict: cfg.strict ?? true });
  process.stdout.write(JSON.stringify({ endpoint: started.endpoint }) + '\n');
} catch (e) {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
  process.exit(1);
}
