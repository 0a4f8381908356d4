/**
 * CPU profiles of the processes a bench starts, and their summary.
 *
 * As a preload (`NODE_OPTIONS=--import=dist/bench/cpu-profile.js`, with BERTH_CPU_PROFILE_DIR
 * set): profiles the process from start to exit (1 ms sampling) and writes
 * `<dir>/<role>-<pid>.cpuprofile`, where role is the CLI subcommand (up, agent, …). NODE_OPTIONS
 * reaches the children (`berth up`'s agents) where `--cpu-prof` may not (Node refuses it there).
 * `npm run bench -- marathon --profile=DIR` sets this up.
 *
 * As a command (`node dist/bench/cpu-profile.js FILE [N]`): prints the top N functions by self
 * and by inclusive time (a function counted once per sample however deep it recurses).
 */
import inspector from 'node:inspector';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

export function summarize(p: Profile, top = 25): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const perNode = new Map<number, number>();
  let total = 0;
  p.samples.forEach((id, i) => { const d = p.timeDeltas[i] ?? 0; total += d; perNode.set(id, (perNode.get(id) ?? 0) + d); });
  const key = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>(); const incl = new Map<string, number>();
  for (const [id, t] of perNode) {
    const k = key(byId.get(id)!);
    self.set(k, (self.get(k) ?? 0) + t);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = key(byId.get(cur)!);
      if (!seen.has(kk)) { seen.add(kk); incl.set(kk, (incl.get(kk) ?? 0) + t); }
    }
  }
  const idle = self.get('(idle) :0') ?? 0;
  const rows = (m: Map<string, number>): string => [...m].filter(([k]) => k !== '(root) :0' && k !== '(idle) :0').sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, v]) => `${(v / 1000).toFixed(0).padStart(8)} ms ${((100 * v) / Math.max(1, total - idle)).toFixed(1).padStart(5)}%  ${k}`).join('\n');
  return `wall ${(total / 1000).toFixed(0)} ms, busy ${((total - idle) / 1000).toFixed(0)} ms (percentages of busy)\n-- self\n${rows(self)}\n-- inclusive\n${rows(incl)}\n`;
}

const dir = process.env['BERTH_CPU_PROFILE_DIR'];
const main = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (main) {
  process.stdout.write(summarize(JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Profile, Number(process.argv[3] ?? 25)));
} else if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable', () => session.post('Profiler.setSamplingInterval', { interval: 1000 }, () => session.post('Profiler.start')));
  let written = false;
  process.on('exit', () => {
    if (written) return;
    written = true;
    // The inspector answers synchronously inside 'exit' (no event loop turn is needed).
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      const role = process.argv[2] && !process.argv[2].startsWith('-') ? path.basename(process.argv[2]) : 'node';
      writeFileSync(path.join(dir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
