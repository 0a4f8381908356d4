/**
 * The fetcher at the task lifecycle's pre-start seam (agent/task-hooks.ts):
 * a task with `command.uris` gets them in its sandbox before its command
 * starts, as the sandbox's owner; a failed fetch fails the launch with
 * REASON_FETCHER_FAILED and the cause, a kill meanwhile aborts it.
 */
import { join } from 'node:path';
import type { Logger } from '../../proto/log.js';
import { TaskLaunchError, type TaskHooks } from '../task-hooks.js';
import { FetcherCache, fetchUris, type FetchLimits } from './index.js';

export interface FetcherHookOptions {
  workDir: string;
  /** Bytes the cache may hold (default 2 GiB); 0 disables it. */
  cacheBytes?: number;
  limits?: Partial<FetchLimits>;
  log?: Logger;
}

export function fetcherHooks(o: FetcherHookOptions): TaskHooks {
  const cache = o.cacheBytes === 0 ? undefined : new FetcherCache(join(o.workDir, 'fetcher-cache'), o.cacheBytes);
  return {
    needsPreStart: (task) => (task.command?.uris ?? []).length > 0,
    async preStart(ctx) {
      // The sandbox's owner is the task's (host-mapped) user: files are written and read as it.
      const user = { name: `${ctx.owner.uid}:${ctx.owner.gid}`, uid: ctx.owner.uid, gid: ctx.owner.gid, groups: [ctx.owner.gid] };
      try {
        await fetchUris(ctx.task.command?.uris ?? [], {
          sandbox: ctx.sandbox, user, cache, limits: o.limits, signal: ctx.signal, log: o.log?.child({ task: ctx.task.task_id.value }),
        });
      } catch (e) {
        if (ctx.signal.aborted) throw new TaskLaunchError('REASON_TASK_KILLED_DURING_LAUNCH', 'Task killed while its URIs were fetched');
        throw new TaskLaunchError('REASON_FETCHER_FAILED', (e as Error).message);
      }
    },
  };
}
