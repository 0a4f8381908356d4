/**
 * The smallest useful framework: subscribe, run one command on the first offer
 * that fits, print its updates, tear down.
 *
 *   node dist/frameworks/examples/hello.js --master http://127.0.0.1:5050
 *   node dist/frameworks/examples/hello.js --master berth://127.0.0.1:5050
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { connect, isTerminal, pickResources, task, type Dialer, type TaskState } from '../sdk/index.js';

export async function hello(master: string | Dialer, cmd = 'echo hello from berth'): Promise<TaskState> {
  const fw = await connect({ master, framework: { name: 'hello' } });
  console.log(`subscribed as ${fw.frameworkId}`);
  let launched = false;
  const done = new Promise<TaskState>((resolve) => {
    fw.on('offers', async (offers) => {
      for (const offer of offers) {
        if (!launched && pickResources(offer, { cpus: 0.1, mem: 32 })) {
          launched = true;
          await fw.launch(offer, task({ id: 'hello', cmd, cpus: 0.1, mem: 32 }));
          console.log(`launched on ${offer.hostname}`);
        } else {
          await fw.decline(offer.id.value, 60);
        }
      }
    });
    // Updates are acknowledged automatically once this callback returns.
    fw.on('update', (status) => {
      console.log(`${status.task_id.value}: ${status.state}${status.message ? ` (${status.message})` : ''}`);
      if (isTerminal(status.state)) resolve(status.state);
    });
    fw.on('error', (e) => { if (e.fatal) resolve('TASK_ERROR'); console.error(`error: ${e.message}`); });
  });
  const state = await done;
  await fw.teardown();
  return state;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { master: { type: 'string', default: 'http://127.0.0.1:5050' }, cmd: { type: 'string' } } });
  hello(values.master!, values.cmd).then((state) => process.exit(state === 'TASK_FINISHED' ? 0 : 1), (e: Error) => {
    console.error(e.message);
    process.exit(1);
  });
}
