/**
 * What this agent offers: detected resources, overridden or extended by the
 * operator's `--resources` (Mesos text form, `cpus:4;mem:8192;ports:[31000-32000]`)
 * and `--attributes` (`rack:r1;zone:a;level:3`).
 *
 * Detection (Mesos's defaults, in spirit):
 *  - cpus: the cores Node may use (`availableParallelism`).
 *  - mem (MiB): total minus a reserve for the host and the agent itself:
 *    max(1 GiB, 10 % of total) when total ≥ 2 GiB, else half. (Mesos keeps
 *    1 GiB or half; 10 % scales the reserve on large hosts where page cache and
 *    daemons grow with the machine.)
 *  - disk (MiB): free space of the work-dir filesystem (statfs) minus
 *    max(5 GiB, 10 %) when that leaves something, else half.
 *  - ports: [31000-32000].
 *  - gpus: one per /dev/nvidiaN device file (none → no gpus resource).
 * An override replaces the detected resource of that name entirely; names
 * not detected are added as given.
 */
import { statfsSync, readdirSync } from 'node:fs';
import { availableParallelism, hostname as osHostname, totalmem } from 'node:os';
import { BerthError } from '../proto/errors.js';
import { Resources } from '../proto/resources.js';
import type { AgentInfo, Attribute } from '../proto/types.js';

const MiB = 1024 * 1024;
export const DEFAULT_PORTS: [number, number] = [31000, 32000];

export interface DetectOptions {
  workDir: string;
  /** For tests: replace what the host reports. */
  host?: { cpus?: number; memBytes?: number; diskFreeBytes?: number; gpus?: number };
}

export function memReserveMiB(totalMiB: number): number {
  if (totalMiB < 2048) return Math.floor(totalMiB / 2);
  return Math.max(1024, Math.floor(totalMiB * 0.1));
}

export function diskReserveMiB(freeMiB: number): number {
  const r = Math.max(5 * 1024, Math.floor(freeMiB * 0.1));
  return r < freeMiB ? r : Math.floor(freeMiB / 2);
}

function countGpus(): number {
  try {
    return readdirSync('/dev').filter((n) => /^nvidia\d+$/.test(n)).length;
  } catch {
    return 0;
  }
}

function diskFree(workDir: string): number {
  try {
    const s = statfsSync(workDir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return 0;
  }
}

/** The detected resources of this host, before overrides. */
export function detectResources(opts: DetectOptions): Resources {
  const cpus = opts.host?.cpus ?? availableParallelism();
  const memMiB = Math.floor((opts.host?.memBytes ?? totalmem()) / MiB);
  const diskMiB = Math.floor((opts.host?.diskFreeBytes ?? diskFree(opts.workDir)) / MiB);
  const gpus = opts.host?.gpus ?? countGpus();
  const parts = [
    `cpus:${cpus}`,
    `mem:${Math.max(0, memMiB - memReserveMiB(memMiB))}`,
    `disk:${Math.max(0, diskMiB - diskReserveMiB(diskMiB))}`,
    `ports:[${DEFAULT_PORTS[0]}-${DEFAULT_PORTS[1]}]`,
  ];
  if (gpus > 0) parts.push(`gpus:${gpus}`);
  return Resources.parse(parts.join(';'));
}

/** Detected resources with `overrides` (Mesos text form) replacing same-named ones. */
export function agentResources(opts: DetectOptions & { overrides?: string }): Resources {
  const detected = detectResources(opts);
  if (!opts.overrides || opts.overrides.trim() === '') return detected;
  const over = Resources.parse(opts.overrides);
  const names = new Set([...over.entries()].map((e) => e.name));
  return detected.filter((e) => !names.has(e.name)).add(over);
}

/**
 * Parses Mesos attribute text: `name:value;...` where a value is a number (SCALAR),
 * `[a-b,c-d]` (RANGES), `{x,y}` (SET) or anything else (TEXT).
 */
export function parseAttributes(text: string | undefined): Attribute[] {
  const out: Attribute[] = [];
  const seen = new Set<string>();
  for (const raw of (text ?? '').split(';')) {
    const item = raw.trim();
    if (!item) continue;
    const i = item.indexOf(':');
    if (i <= 0) throw new BerthError('INVALID', `attributes: cannot parse '${item}' (expected name:value)`);
    const name = item.slice(0, i).trim();
    const value = item.slice(i + 1).trim();
    if (!/^[A-Za-z0-9_.\-/]+$/.test(name)) throw new BerthError('INVALID', `attributes: bad name '${name}'`);
    if (value === '') throw new BerthError('INVALID', `attributes: '${name}' has an empty value`);
    if (seen.has(name)) throw new BerthError('INVALID', `attributes: '${name}' given twice`);
    seen.add(name);
    if (/^-?\d+(\.\d+)?$/.test(value)) {
      out.push({ name, type: 'SCALAR', scalar: { value: Number(value) } });
    } else if (value.startsWith('[') && value.endsWith(']')) {
      const range = value.slice(1, -1).split(',').filter((s) => s.trim()).map((s) => {
        const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(s);
        if (!m || Number(m[1]) > Number(m[2])) throw new BerthError('INVALID', `attributes: '${name}': bad range '${s.trim()}'`);
        return { begin: Number(m[1]), end: Number(m[2]) };
      });
      out.push({ name, type: 'RANGES', ranges: { range } });
    } else if (value.startsWith('{') && value.endsWith('}')) {
      out.push({ name, type: 'SET', set: { item: value.slice(1, -1).split(',').map((s) => s.trim()).filter(Boolean) } });
    } else {
      out.push({ name, type: 'TEXT', text: { value } });
    }
  }
  return out;
}

export interface AgentInfoOptions extends DetectOptions {
  resources?: string;
  attributes?: string;
  hostname?: string;
  port?: number;
  agentId?: string;
}

/** Builds the AgentInfo this agent registers with. Throws BerthError('INVALID') on bad overrides. */
export function buildAgentInfo(opts: AgentInfoOptions): AgentInfo {
  const info: AgentInfo = {
    hostname: opts.hostname ?? osHostname(),
    resources: agentResources({ ...opts, overrides: opts.resources }).toWire(),
    attributes: parseAttributes(opts.attributes),
  };
  if (opts.port !== undefined) info.port = opts.port;
  if (opts.agentId !== undefined) info.id = { value: opts.agentId };
  return info;
}
