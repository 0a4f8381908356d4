/**
 * `npm run bench -- checks [--n 100] [--reps 5] [--mib 16]`: what the agent's checks and fetcher
 * cost, each beside the bare operation it wraps, measured in the same run:
 *  - a round of N concurrent HTTP / TCP / COMMAND probes (agent/checks/probe.ts) against a loopback
 *    server or `true`, vs N bare `http.get` / `net.connect` / `spawn('/bin/sh', ['-c', 'true'])`;
 *  - fetching and extracting a tar.gz of M MiB (agent/fetcher) vs downloading it without
 *    extraction, and a cache hit vs the same cold fetch.
 * Medians over the repetitions; min and max in params.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGet, probeCommand, tcpConnect } from '../agent/checks/probe.js';
import { FetcherCache, fetchUris } from '../agent/fetcher/index.js';
import { emit, median, progress } from './report.js';

function flag(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

async function timed(reps: number, fn: () => Promise<unknown>): Promise<{ med: number; min: number; max: number }> {
  const xs: number[] = [];
  await fn(); // warm-up
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    xs.push(performance.now() - t);
  }
  return { med: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

const all = <T>(n: number, f: () => Promise<T>): Promise<T[]> => Promise.all(Array.from({ length: n }, f));

function report(name: string, v: { med: number; min: number; max: number }, base: { med: number }, params: Record<string, unknown>): void {
  emit({ name, value: Number(v.med.toFixed(2)), unit: 'ms', baseline: Number(base.med.toFixed(2)), params: { ...params, min: Number(v.min.toFixed(2)), max: Number(v.max.toFixed(2)) } });
}

export async function run(args: string[]): Promise<void> {
  const n = flag(args, 'n', 100);
  const reps = flag(args, 'reps', 5);
  const mib = flag(args, 'mib', 16);
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-checks-'));
  const srv = http.createServer((req, res) => {
    if (req.url === '/app.tar.gz') res.end(readFileSync(join(dir, 'app.tar.gz')));
    else res.end('ok');
  });
  srv.keepAliveTimeout = 1;
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  try {
    progress(`probe rounds of ${n}, ${reps} repetitions`);
    const bareHttp = await timed(reps, () => all(n, () => new Promise<void>((r) => { http.get({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => { res.resume(); res.on('end', () => r()); }).on('error', () => r()); })));
    const probeHttp = await timed(reps, () => all(n, () => httpGet('http', port, '/health', 10_000)));
    report('checks.probe.http.round', probeHttp, bareHttp, { n, baseline: 'bare http.get' });
    const bareTcp = await timed(reps, () => all(n, () => new Promise<void>((r) => { const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); r(); }); s.on('error', () => r()); })));
    const probeTcp = await timed(reps, () => all(n, () => tcpConnect(port, 10_000)));
    report('checks.probe.tcp.round', probeTcp, bareTcp, { n, baseline: 'bare net.connect' });
    const target = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: dir };
    const bareSpawn = await timed(reps, () => all(n, () => new Promise<void>((r) => { spawn('/bin/sh', ['-c', 'true'], { stdio: 'ignore' }).on('close', () => r()); })));
    const probeCmd = await timed(reps, () => all(n, () => probeCommand({ value: 'true' }, 60_000, target)));
    report('checks.probe.command.round', probeCmd, bareSpawn, { n, baseline: "bare spawn('/bin/sh -c true')" });

    progress(`fetching a ${mib} MiB tar.gz`);
    mkdirSync(join(dir, 'app'));
    // Incompressible content, so the archive really is `mib` MiB on the wire.
    for (let i = 0; i < mib; i++) writeFileSync(join(dir, 'app', `part${i}`), randomBytes(2 ** 20));
    execFileSync('tar', ['-czf', join(dir, 'app.tar.gz'), '-C', dir, 'app']);
    const url = `http://127.0.0.1:${port}/app.tar.gz`;
    let k = 0;
    const sandbox = (): string => join(dir, `s${k++}`);
    const clean = (): void => { for (let i = 0; i < k; i++) rmSync(join(dir, `s${i}`), { recursive: true, force: true }); };
    const download = await timed(reps, async () => { await fetchUris([{ value: url, extract: false }], { sandbox: sandbox() }); clean(); });
    const extracted = await timed(reps, async () => { await fetchUris([{ value: url }], { sandbox: sandbox() }); clean(); });
    report('fetcher.fetch.tgz.extract', extracted, download, { mib, baseline: 'the same download without extraction' });
    const cache = new FetcherCache(join(dir, 'cache'), 4 * mib * 2 ** 20);
    await fetchUris([{ value: url, cache: true, extract: false }], { sandbox: sandbox(), cache });
    const hit = await timed(reps, async () => { await fetchUris([{ value: url, cache: true, extract: false }], { sandbox: sandbox(), cache }); clean(); });
    report('fetcher.fetch.tgz.cache_hit', hit, download, { mib, baseline: 'the same download uncached' });
  } finally {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}
