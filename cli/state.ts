/** `berth state`: a readable summary of /state — agents with used/total, frameworks, tasks by state. */
import http from 'node:http';
import https from 'node:https';
import { basicAuthorization, findCredential, findTls } from '../proto/transport/credentials.js';
import { clusterSection } from './cluster.js';

export interface StateClientOptions { credentialFile?: string; tlsCa?: string; tlsCert?: string; tlsKey?: string }

/** GET `url` with the credential and TLS options; resolves status and body. */
function get(url: string, o: StateClientOptions): Promise<{ status: number; body: string }> {
  const credential = findCredential({ file: o.credentialFile });
  const tls = findTls({ ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey });
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, {
      method: 'GET',
      headers: credential ? { authorization: basicAuthorization(credential) } : {},
      ...(u.protocol === 'https:' && tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface Res { cpus?: number; mem?: number; disk?: number; gpus?: number; ports?: string }
interface StateJson {
  id: string;
  slaves: { id: string; hostname: string; endpoint?: string; active: boolean; status?: string; resources: Res; used_resources: Res; offered_resources: Res; task_count?: number }[];
  unreachable_slaves?: { id: string; hostname: string }[];
  frameworks: { id: string; name: string; active: boolean; roles: string[]; tasks: { id: string; state: string; slave_id: string; statistics?: Usage }[]; used_resources: Res; dominant_share?: number }[];
  completed_frameworks?: { id: string; name: string }[];
  outstanding_offers?: number;
}

interface Usage { mem_rss_bytes?: number; mem_total_bytes?: number; mem_limit_bytes?: number; cpus_user_time_secs?: number; cpus_system_time_secs?: number; processes?: number }

const mib = (b?: number) => (b === undefined ? '-' : `${(b / 2 ** 20).toFixed(1)}`);
const usage = (u: Usage) => `mem ${mib(u.mem_total_bytes ?? u.mem_rss_bytes)}/${mib(u.mem_limit_bytes)} MiB  cpu ${((u.cpus_user_time_secs ?? 0) + (u.cpus_system_time_secs ?? 0)).toFixed(2)} s${u.processes !== undefined ? `  procs ${u.processes}` : ''}`;

const fmt = (r: Res) => `cpus ${r.cpus ?? 0}  mem ${r.mem ?? 0} MiB  disk ${r.disk ?? 0} MiB${r.gpus ? `  gpus ${r.gpus}` : ''}`;

export async function printState(master: string, json: boolean, client: StateClientOptions = {}): Promise<void> {
  let base = /^[a-z]+:\/\//.test(master) ? master : `http://${master}`;
  // Cluster mode: name the leader and standbys, then read the leader's state.
  const cluster: string[] = [];
  const leaderUrl = json ? undefined : await clusterSection(base.replace(/\/$/, ''), cluster);
  if (leaderUrl) base = leaderUrl;
  let res: { status: number; body: string };
  try {
    res = await get(`${base.replace(/\/$/, '')}/state`, client);
  } catch (e) {
    throw new Error(`cannot reach the master at ${base} (--master): ${(e as Error).message}`);
  }
  if (res.status === 401) throw new Error(`master at ${base} needs credentials: give --credential FILE (or BERTH_CREDENTIAL)`);
  if (res.status !== 200) throw new Error(`master at ${base} answered ${res.status}: ${res.body.slice(0, 200)}`);
  const s = JSON.parse(res.body) as StateJson;
  if (json) { process.stdout.write(JSON.stringify(s, null, 2) + '\n'); return; }
  const out: string[] = [...cluster];
  out.push(`master ${s.id}  (${base})`);
  out.push(`\nagents: ${s.slaves.length}${s.unreachable_slaves?.length ? ` (+${s.unreachable_slaves.length} unreachable)` : ''}`);
  for (const a of s.slaves) {
    out.push(`  ${a.id}  ${a.hostname}${a.endpoint ? ` ${a.endpoint}` : ''}  ${a.active ? 'active' : (a.status ?? 'inactive').toLowerCase()}  tasks ${a.task_count ?? 0}`);
    out.push(`      used  ${fmt(a.used_resources)}`);
    out.push(`      total ${fmt(a.resources)}`);
  }
  out.push(`\nframeworks: ${s.frameworks.length}${s.completed_frameworks?.length ? ` (+${s.completed_frameworks.length} completed)` : ''}`);
  const byState = new Map<string, number>();
  for (const f of s.frameworks) {
    out.push(`  ${f.id}  ${f.name}  ${f.active ? 'active' : 'inactive'}  roles ${f.roles.join(',')}  share ${(f.dominant_share ?? 0).toFixed(3)}  used ${fmt(f.used_resources)}`);
    for (const t of f.tasks) byState.set(t.state, (byState.get(t.state) ?? 0) + 1);
    const measured = f.tasks.filter((t) => t.statistics);
    for (const t of measured.slice(0, 20)) out.push(`      ${t.id}  ${t.state.replace('TASK_', '').toLowerCase()}  ${usage(t.statistics!)}`);
    if (measured.length > 20) out.push(`      … ${measured.length - 20} more tasks with usage`);
  }
  out.push(`\ntasks: ${[...byState].map(([k, v]) => `${k.replace('TASK_', '').toLowerCase()} ${v}`).join(', ') || 'none'}`);
  out.push(`outstanding offers: ${s.outstanding_offers ?? 0}`);
  process.stdout.write(out.join('\n') + '\n');
}
