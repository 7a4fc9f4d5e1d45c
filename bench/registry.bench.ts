// Registry throughput by store (issue 16): registrations/s, lookups/s and cross-replica trust pushes/s for
// SQLite (one rendezvous) vs etcd with 1 and 3 rendezvous replicas (a 3-member etcd cluster on 127.0.0.1), and
// the rendezvous RSS with N (default 100,000) registered nodes. Real processes: pilot-rendezvous from dist/,
// Debian's /usr/bin/etcd; clients in this process over TCP, requests signed as our daemons sign them
// (messages pre-signed before the clock starts), several in flight per connection.
//
//   npm run build:ts && node dist/bench/registry.bench.js [--quick] [--nodes=100000] [--skip=rss]
//        [--connections=32] [--depth=8] [--registrations=4000] [--lookups=8000]
// Prints a table and writes bench/results/registry.json. Figures are from a loaded 2-core machine: read them
// as ratios between the rows.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { rssBytes } from './e2e/proc.js';
import { bound, challenge, type RegistryMessage } from '../src/wire/registry-frame.js';
// The etcd launcher and the raw registry client are the tests' own (one implementation of each).
import { EtcdCluster, hasEtcd } from '../test/integration/etcd-cluster.js';
import { RawClient, fresh, newIdentity, signedRegister, type TestIdentity } from '../test/unit/registry/helpers.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
const QUICK = argv.includes('--quick');
const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = resolve(HERE, '..', '..');
const BIN = opt('bin', join(ROOT, 'dist', 'src', 'bin', 'pilot-rendezvous.js'));
const CONNECTIONS = Number(opt('connections', '32'));
const DEPTH = Number(opt('depth', '8'));
const REGISTRATIONS = Number(opt('registrations', QUICK ? '1000' : '4000'));
const LOOKUPS = Number(opt('lookups', QUICK ? '2000' : '8000'));
const RSS_NODES = Number(opt('nodes', QUICK ? '10000' : '100000'));
const SKIP = new Set(opt('skip', '').split(',').filter(Boolean));
const MB = 1024 * 1024;

interface Replica {
  child: ChildProcess;
  port: number;
}

async function startRendezvous(store: string): Promise<Replica> {
  const child = spawn(
    process.execPath,
    [BIN, '--registry-addr', '127.0.0.1:0', '--beacon-addr', '127.0.0.1:0', '--compat-addr', 'off', '--log-level', 'warn', '--store', store, '--max-connections-per-ip', '4096', '--stale-node-secs', '86400'], // nodes here never heartbeat
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const line = await new Promise<string>((res, rej) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', res);
    child.once('exit', (code) => rej(new Error(`rendezvous exited with ${code}`)));
  });
  return { child, port: Number((JSON.parse(line) as { registry: string }).registry.split(':').pop()) };
}

async function stop(r: Replica): Promise<void> {
  if (r.child.exitCode !== null) return;
  const gone = new Promise((res) => r.child.once('exit', res));
  r.child.kill('SIGTERM');
  const t = setTimeout(() => r.child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

/** Send `msgs` on `c` with up to `depth` in flight; every reply must be of `okType`. Returns replies. */
async function pipeline(c: RawClient, msgs: RegistryMessage[], depth: number, okType: string): Promise<RegistryMessage[]> {
  const out: RegistryMessage[] = [];
  let sent = 0;
  for (; sent < Math.min(depth, msgs.length); sent++) c.send(msgs[sent]!);
  while (out.length < msgs.length) {
    const r = await c.reply(60_000);
    if (r.type !== okType) throw new Error(`expected ${okType}, got ${JSON.stringify(r).slice(0, 200)}`);
    out.push(r);
    if (sent < msgs.length) c.send(msgs[sent++]!);
  }
  return out;
}

/** Split `items` into `n` nearly equal slices. */
function slices<T>(items: T[], n: number): T[][] {
  const out: T[][] = Array.from({ length: n }, () => []);
  items.forEach((x, i) => out[i % n]!.push(x));
  return out;
}

async function connectAll(replicas: Replica[], n: number): Promise<RawClient[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => RawClient.connect(replicas[i % replicas.length]!.port)));
}

interface Row {
  store: string;
  replicas: number;
  registrations_per_s: number;
  lookups_per_s: number;
  trust_pushes_per_s: number;
  push_p50_ms: number;
  push_p99_ms: number;
}

/** Register `count` fresh identities over `conns`; returns [identity, node id] pairs and the rate. */
async function registerMany(conns: RawClient[], count: number): Promise<{ nodes: { id: TestIdentity; nodeId: number }[]; perSec: number }> {
  const ids = Array.from({ length: count }, () => newIdentity());
  const msgs = ids.map((id, i) => signedRegister(id, `127.0.0.1:${10_000 + (i % 50_000)}`));
  const parts = slices(msgs.map((m, i) => ({ m, i })), conns.length);
  const nodes: { id: TestIdentity; nodeId: number }[] = new Array(count);
  const t0 = performance.now();
  await Promise.all(
    parts.map(async (part, k) => {
      const replies = await pipeline(conns[k]!, part.map((p) => p.m), DEPTH, 'register_ok');
      replies.forEach((r, j) => (nodes[part[j]!.i] = { id: ids[part[j]!.i]!, nodeId: r.node_id as number }));
    }),
  );
  const s = (performance.now() - t0) / 1000;
  if (new Set(nodes.map((n) => n.nodeId)).size !== count) throw new Error('duplicate node ids');
  return { nodes, perSec: count / s };
}

async function runConfig(label: string, replicas: Replica[]): Promise<Row> {
  const conns = await connectAll(replicas, CONNECTIONS);
  try {
    const reg = await registerMany(conns, REGISTRATIONS);
    // Let the other replicas' watches catch up before reading from them.
    await new Promise((r) => setTimeout(r, 500));
    // Lookups: identified (requester + fresh signature), as our daemons send them; requester k on connection k.
    const requesters = reg.nodes.slice(0, CONNECTIONS);
    const lookupMsgs = slices(
      Array.from({ length: LOOKUPS }, (_, i) => reg.nodes[(i * 7919) % reg.nodes.length]!.nodeId),
      CONNECTIONS,
    ).map((targets, k) => targets.map((t) => fresh(requesters[k]!.id, { type: 'lookup', node_id: t, requester_id: requesters[k]!.nodeId }, challenge.lookup(requesters[k]!.nodeId, t))));
    const tl = performance.now();
    await Promise.all(lookupMsgs.map((msgs, k) => pipeline(conns[k]!, msgs, DEPTH, 'lookup_ok')));
    const lookupsPerSec = LOOKUPS / ((performance.now() - tl) / 1000);

    // Trust pushes: T targets subscribed on replica j, R requesters on other replicas (when there are), each
    // requester asks every target once; a push counts when the target's connection receives it.
    const T = 20;
    const R = QUICK ? 25 : 50;
    const pool = reg.nodes.slice(CONNECTIONS, CONNECTIONS + T + R);
    const targets = pool.slice(0, T);
    const askers = pool.slice(T);
    const targetConns = await Promise.all(targets.map((_, j) => RawClient.connect(replicas[j % replicas.length]!.port)));
    const askerConns = await Promise.all(askers.map((_, i) => RawClient.connect(replicas[(i + 1) % replicas.length]!.port)));
    try {
      await Promise.all(targets.map((t, j) => pipeline(targetConns[j]!, [fresh(t.id, { type: 'subscribe_push', node_id: t.nodeId }, challenge.subscribePush(t.nodeId))], 1, 'subscribe_push_ok')));
      const sentAt = new Map<string, number>();
      const latencies: number[] = [];
      let received = 0;
      const total = T * R;
      const allIn = new Promise<void>((res) => {
        targetConns.forEach((tc, j) => {
          tc.sock.on('data', () => {
            for (let m = tc.pushes.shift(); m; m = tc.pushes.shift()) {
              const at = sentAt.get(`${m.from_node_id as number}>${targets[j]!.nodeId}`);
              if (at !== undefined) latencies.push(performance.now() - at);
              if (++received === total) res();
            }
          });
        });
      });
      const tp = performance.now();
      await Promise.all(
        askers.map((a, i) => {
          const msgs = targets.map((t) => fresh(a.id, { type: 'request_handshake', from_node_id: a.nodeId, to_node_id: t.nodeId, justification: 'bench' }, bound.requestHandshake(a.nodeId, t.nodeId, 'bench')));
          for (const t of targets) sentAt.set(`${a.nodeId}>${t.nodeId}`, performance.now());
          return pipeline(askerConns[i]!, msgs, DEPTH, 'request_handshake_ok');
        }),
      );
      await Promise.race([allIn, new Promise((r) => setTimeout(r, 30_000))]);
      const pushesPerSec = received / ((performance.now() - tp) / 1000);
      latencies.sort((x, y) => x - y);
      const q = (p: number) => Number((latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN).toFixed(1));
      const row: Row = {
        store: label,
        replicas: replicas.length,
        registrations_per_s: Math.round(reg.perSec),
        lookups_per_s: Math.round(lookupsPerSec),
        trust_pushes_per_s: Math.round(pushesPerSec),
        push_p50_ms: q(0.5),
        push_p99_ms: q(0.99),
      };
      if (received < total) console.error(`${label}: only ${received}/${total} pushes arrived`);
      return row;
    } finally {
      for (const c of [...targetConns, ...askerConns]) c.close();
    }
  } finally {
    for (const c of conns) c.close();
  }
}

/** Register `n` nodes, then read every replica's RSS. */
async function rssWith(label: string, replicas: Replica[], n: number): Promise<{ store: string; replicas: number; nodes: number; rss_mb: number[]; registrations_per_s: number }> {
  const before = replicas.map((r) => rssBytes(r.child.pid!));
  const conns = await connectAll(replicas, CONNECTIONS);
  let perSecSum = 0;
  let done = 0;
  try {
    // In chunks, so the pre-signed messages of 100k identities are not all held at once.
    const CHUNK = 2_000; // pre-signed ts must stay inside the registry's 60 s window
    while (done < n) {
      const k = Math.min(CHUNK, n - done);
      const r = await registerMany(conns, k);
      perSecSum += r.perSec * k;
      done += k;
      process.stderr.write(`  ${label}: ${done}/${n} registered\r`);
    }
  } finally {
    for (const c of conns) c.close();
  }
  await new Promise((r) => setTimeout(r, 2_000));
  process.stderr.write('\n');
  void before;
  return { store: label, replicas: replicas.length, nodes: n, rss_mb: replicas.map((r) => Math.round(rssBytes(r.child.pid!) / MB)), registrations_per_s: Math.round(perSecSum / n) };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const rss: Awaited<ReturnType<typeof rssWith>>[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'pilot-regbench-'));
  let etcd: EtcdCluster | null = null;
  const running: Replica[] = [];
  try {
    {
      const r = await startRendezvous(join(dir, 'registry.db'));
      running.push(r);
      rows.push(await runConfig('sqlite', [r]));
      if (!SKIP.has('rss')) rss.push(await rssWith('sqlite', [r], RSS_NODES));
      await stop(r);
      running.length = 0;
    }
    if (!hasEtcd) console.error('no /usr/bin/etcd: etcd rows skipped');
    else {
      etcd = await EtcdCluster.start(3);
      for (const n of [1, 3]) {
        const store = etcd.storeUrl(`/bench-${n}-${randomBytes(3).toString('hex')}`);
        const reps: Replica[] = [];
        for (let i = 0; i < n; i++) reps.push(await startRendezvous(store));
        running.push(...reps);
        rows.push(await runConfig(`etcd (3 members)`, reps));
        if (!SKIP.has('rss')) rss.push(await rssWith('etcd (3 members)', reps, RSS_NODES));
        for (const r of reps) await stop(r);
        running.length = 0;
      }
    }
  } finally {
    for (const r of running) await stop(r);
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log('\n| store | replicas | registrations/s | lookups/s | trust pushes/s | push p50 / p99 ms |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.store} | ${r.replicas} | ${r.registrations_per_s} | ${r.lookups_per_s} | ${r.trust_pushes_per_s} | ${r.push_p50_ms} / ${r.push_p99_ms} |`);
  if (rss.length > 0) {
    console.log(`\n| store | replicas | registered nodes | rendezvous RSS, MB (each replica) | registrations/s while filling |`);
    console.log('|---|---|---|---|---|');
    for (const r of rss) console.log(`| ${r.store} | ${r.replicas} | ${r.nodes} | ${r.rss_mb.join(' / ')} | ${r.registrations_per_s} |`);
  }
  const out = join(ROOT, 'bench', 'results', QUICK ? 'registry-quick.json' : 'registry.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), connections: CONNECTIONS, depth: DEPTH, registrations: REGISTRATIONS, lookups: LOOKUPS, rows, rss }, null, 2) + '\n');
  console.log(`\nwrote ${out}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
