/** `berth state`: a readable summary of /state — agents with used/total, frameworks, tasks by state. */

import { clusterSection } from './cluster.js';

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

export async function printState(master: string, json: boolean): Promise<void> {
  let base = /^[a-z]+:\/\//.test(master) ? master : `http://${master}`;
  // Cluster mode: name the leader and standbys, then read the leader's state.
  const cluster: string[] = [];
  const leaderUrl = json ? undefined : await clusterSection(base.replace(/\/$/, ''), cluster);
  if (leaderUrl) base = leaderUrl;
  let res: Response;
  try {
    res = await fetch(`${base.replace(/\/$/, '')}/state`);
  } catch (e) {
    throw new Error(`cannot reach the master at ${base} (--master): ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`master at ${base} answered ${res.status}`);
  const s = (await res.json()) as StateJson;
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
