/**
 * The network probe as a process, for tasks with their own network namespace:
 * the agent runs `nsenter -t PID -n -- node probe-main.js '{"probe":…,"timeoutMs":…}'`
 * and reads one JSON ProbeResult from stdout. A Node socket cannot be moved
 * into another namespace, so the probe has to run in one.
 */
import { runNetProbe, type NetProbe } from './probe.js';

const arg = JSON.parse(process.argv[2] ?? '{}') as { probe: NetProbe; timeoutMs: number };
const r = await runNetProbe(arg.probe, arg.timeoutMs);
process.stdout.write(JSON.stringify(r));
