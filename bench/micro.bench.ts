// `npm run bench:micro`: tinybench microbenchmarks of the hot-path pieces (wire codecs, AEAD, transport),
// printed as a table and written to bench/results/micro.json.
import { Bench } from 'tinybench';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { hostname } from 'node:os';

type AddTasks = (bench: Bench) => void;

async function suite(name: string, load: () => Promise<AddTasks>): Promise<{ name: string; rows: Record<string, unknown>[] }> {
  const bench = new Bench({ time: Number(process.env.BENCH_TIME_MS ?? 500), warmupTime: 100 });
  (await load())(bench);
  await bench.run();
  const rows = bench.tasks.map((t) => {
    const r = t.result as { latency?: { mean?: number; p99?: number }; throughput?: { mean?: number } } | undefined;
    const meanMs = r?.latency?.mean ?? NaN;
    return {
      suite: name,
      task: t.name,
      'ns/op': Math.round(meanMs * 1e6),
      'ops/s': Math.round(r?.throughput?.mean ?? 1000 / meanMs),
      'p99 ns': Math.round((r?.latency?.p99 ?? NaN) * 1e6),
    };
  });
  return { name, rows };
}

// Run one suite at a time: concurrent suites would share the two cores and skew each other.
const suites: [string, () => Promise<AddTasks>][] = [
  ['wire', async () => (await import('./wire.bench.js')).addWireTasks],
  ['crypto', async () => (await import('./crypto.bench.js')).addCryptoTasks],
  ['transport', async () => (await import('./transport.bench.js')).addTransportTasks],
];

const all: Record<string, unknown>[] = [];
for (const [name, load] of suites) all.push(...(await suite(name, load)).rows);
console.table(all);
const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
const outDir = import.meta.url.includes('/dist/') ? out : join(dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, 'micro.json');
writeFileSync(file, JSON.stringify({ host: hostname(), node: process.version, date: new Date().toISOString(), results: all }, null, 2));
console.error(`wrote ${file}`);
