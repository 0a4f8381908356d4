/**
 * Starts a master process: file-backed registry in `workDir`, HTTP + WebSocket
 * on one port. Used by `berth master` and `berth up`.
 */
import path from 'node:path';
import { logger } from '../proto/log.js';
import { Master, type MasterOptions } from './master.js';
import { FileRegistry } from './registry/file.js';
import { MasterHttpServer } from './http/server.js';
import { installRoutes } from './http/api.js';

export interface StartMasterOptions extends MasterOptions {
  workDir: string;
  port?: number;
  host?: string;
  /** Hostname advertised to frameworks (MasterInfo); default: the bind host or localhost. */
  advertiseHost?: string;
}

export interface RunningMaster {
  master: Master;
  http: MasterHttpServer;
  port: number;
  url: string;
  stop(): Promise<void>;
}

export async function startMaster(opts: StartMasterOptions): Promise<RunningMaster> {
  const log = opts.log ?? logger('master');
  const registry = opts.registry ?? new FileRegistry(path.join(opts.workDir, 'master'), log, opts.scheduler);
  const host = opts.host ?? '127.0.0.1';
  const advertise = opts.advertiseHost ?? (host === '0.0.0.0' ? 'localhost' : host);
  // The port is known only after listen (port 0 = ephemeral), so the master starts after it.
  const master = new Master({ ...opts, registry, log, hostname: advertise });
  const httpServer = new MasterHttpServer(master, log);
  installRoutes(httpServer);
  const port = await httpServer.listen(opts.port ?? 5050, host);
  master.opts.port = port;
  await master.start();
  const url = `http://${advertise}:${port}`;
  log.info({ url }, 'master listening');
  return {
    master, http: httpServer, port, url,
    async stop() {
      await httpServer.close();
      await master.stop();
    },
  };
}

