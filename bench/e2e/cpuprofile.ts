// Summarise a V8 .cpuprofile (node --cpu-prof): self and inclusive time per function, top N.
// CLI: node dist/bench/e2e/cpuprofile.js FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  fn: string;
  where: string;
  selfMs: number;
  selfPct: number;
  totalMs: number;
  totalPct: number;
}

export interface ProfileSummary {
  file: string;
  durationMs: number;
  /** (idle) and (garbage collector) and (program) as V8 reports them. */
  idlePct: number;
  gcPct: number;
  top: HotSpot[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const i = u.lastIndexOf('/dist/');
  if (i >= 0) return u.slice(i + 6);
  const j = u.lastIndexOf('node_modules/');
  if (j >= 0) return u.slice(j);
  return u.startsWith('node:') ? u : basename(u);
}

export function summarizeProfile(path: string, topN = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const keyOf = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'}\u0000${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const selfUs = new Map<string, number>();
  const totalUs = new Map<string, number>();
  let sumUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    // timeDeltas[i] is the gap before sample i; attribute the following gap to it, as DevTools does.
    const dt = p.timeDeltas[i + 1] ?? 0;
    sumUs += dt;
    const leaf = byId.get(p.samples[i]!);
    if (!leaf) continue;
    const k = keyOf(leaf);
    selfUs.set(k, (selfUs.get(k) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const kk = keyOf(byId.get(id)!);
      if (seen.has(kk)) continue;
      seen.add(kk);
      totalUs.set(kk, (totalUs.get(kk) ?? 0) + dt);
    }
  }
  const pct = (us: number): number => Math.round((us / Math.max(1, sumUs)) * 1000) / 10;
  const special = (name: string): number => [...selfUs].filter(([k]) => k.startsWith(name + '\u0000')).reduce((s, [, v]) => s + v, 0);
  const top = [...selfUs]
    .filter(([k]) => !k.startsWith('(idle)') && !k.startsWith('(root)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([k, v]): HotSpot => {
      const [fn, where] = k.split('\u0000') as [string, string];
      const t = totalUs.get(k) ?? v;
      return { fn, where, selfMs: Math.round(v / 100) / 10, selfPct: pct(v), totalMs: Math.round(t / 100) / 10, totalPct: pct(t) };
    });
  return { file: path, durationMs: Math.round(sumUs / 1000), idlePct: pct(special('(idle)')), gcPct: pct(special('(garbage collector)')), top };
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [`${basename(s.file)}: ${s.durationMs} ms sampled, idle ${s.idlePct}%, GC ${s.gcPct}%`, '  self%  total%  function  (file:line)'];
  for (const h of s.top) lines.push(`  ${h.selfPct.toFixed(1).padStart(5)}  ${h.totalPct.toFixed(1).padStart(6)}  ${h.fn}  (${h.where})`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: cpuprofile FILE.cpuprofile [N]\n');
    process.exit(2);
  }
  process.stdout.write(formatSummary(summarizeProfile(file, Number(process.argv[3] ?? 25))) + '\n');
}
