// Handshake flood (issue 10, "denial of service costs the attacker more than us"): two daemons that trust each
// other (victim ann, peer bob) on a real rendezvous on loopback, and a flooder that sends Noise initiations at
// the victim's tunnel socket for FLOOD_S seconds. It is a benchmark, not a timed test: it reports bob → ann ping
// p50/p99 and loss before and during the flood, the victim daemon's CPU, and how many initiations the flooder
// sent. Two kinds of initiation, interleaved:
//   replay    genuine initiations signed with bob's own key (what a man on the path captures) but with old
//             timestamps, so the victim's replay guard refuses them — after its Diffie-Hellman work today
//   stranger  fresh initiations from a key the victim does not trust, replayed round-robin
// The flooder knows the victim's public key (the registry hands keys to anyone), so it can make mac1 valid;
// what it cannot do is receive cookies at a source it does not own — here it simply ignores them.
//
//   npm run build:ts && node dist/bench/handshake-flood.bench.js [--flood-s=10] [--rate=20000]
// Writes bench/results/handshake-flood.json (merged: one entry per --label, default "after").
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { Cluster, sleep } from '../test/integration/harness.js';
import { createInitiator, fromBase64, generateIdentity } from '../src/crypto/index.js';
import { loadIdentity } from '../src/node/identity-store.js';
import { cpuSeconds, percentile } from './e2e/proc.js';
import type { PilotClient } from '../src/sdk/client.js';

interface FloodJob {
  pool: Uint8Array[];
  ip: string;
  port: number;
  rate: number;
  durationMs: number;
}

function arg(name: string, dflt: string): string {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
}

interface PingStats {
  sent: number;
  lost: number;
  lossPct: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** One probe (a fresh stream to the echo port, as `pilotctl ping`) every `intervalMs` for `ms`, 1 s timeout each. */
async function pingFor(client: PilotClient, peer: string, ms: number, intervalMs: number): Promise<PingStats> {
  const rtts: number[] = [];
  let sent = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const t = Date.now();
    sent++;
    const r = await client.ping(peer, { count: 1, intervalMs: 0, timeoutMs: 1000 });
    const x = r.ok ? r.value.results[0] : undefined;
    if (x && !x.error && Number.isFinite(x.rtt_ms)) rtts.push(x.rtt_ms);
    const wait = intervalMs - (Date.now() - t);
    if (wait > 0) await sleep(wait);
  }
  rtts.sort((a, b) => a - b);
  const lost = sent - rtts.length;
  return {
    sent,
    lost,
    lossPct: Math.round((lost / Math.max(1, sent)) * 1000) / 10,
    p50Ms: round2(percentile(rtts, 50)),
    p99Ms: round2(percentile(rtts, 99)),
    maxMs: round2(rtts.length ? rtts[rtts.length - 1]! : NaN),
  };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  const floodS = Number(arg('flood-s', '10'));
  const rate = Number(arg('rate', '20000'));
  const label = arg('label', 'after');
  const intervalMs = 20;
  const c = await Cluster.start('flood', ['ann', 'bob']);
  try {
    await c.trust('bob', 'ann', 'flood bench');
    const ann = c.node('ann');
    const bob = c.node('bob');
    const cb = await c.client('bob');
    const ca = await c.client('ann');
    const info = await ca.info();
    if (!info.ok) throw new Error(info.error.message);
    const annKey = fromBase64(info.value.public_key)!;
    const [ip, portText] = [info.value.listen.slice(0, info.value.listen.lastIndexOf(':')), info.value.listen.slice(info.value.listen.lastIndexOf(':') + 1)];
    // Warm up the tunnel, then measure.
    const warm = await cb.ping('ann', { count: 5, intervalMs: 50, timeoutMs: 2000 });
    if (!warm.ok) throw new Error(`warm-up ping: ${warm.error.message}`);

    const bobId = loadIdentity(join(bob.home, 'identity.json'));
    if (!bobId.ok) throw new Error(bobId.error.message);
    const stranger = generateIdentity();
    const pool: Uint8Array[] = [];
    for (let k = 0; k < 256; k++) {
      const asBob = k % 2 === 0;
      const init = createInitiator({
        local: asBob ? bobId.value : stranger,
        localNodeId: asBob ? bob.nodeId : 0x7fff_0000 + k,
        localIndex: 1000 + k,
        remoteStatic: annKey,
        timestampS: asBob ? 1_000_000 + k : 2_000_000 + k, // bob's: older than his real handshake → replay
        now: 0,
      });
      if (!init.ok) throw new Error(init.error.message);
      pool.push(init.value.message);
    }

    const before = await pingFor(cb, 'ann', 5000, intervalMs);
    console.log(`before: ${JSON.stringify(before)}`);

    const cpu0 = cpuSeconds(ann.pid);
    const t0 = Date.now();
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { pool, ip, port: Number(portText), rate, durationMs: floodS * 1000 } satisfies FloodJob,
    });
    const flooded = new Promise<{ sent: number; ms: number }>((res, rej) => {
      worker.once('message', res);
      worker.once('error', rej);
    });
    await sleep(300); // let the flood build up
    const during = await pingFor(cb, 'ann', floodS * 1000 - 600, intervalMs);
    const f = await flooded;
    const cpuPct = Math.round(((cpuSeconds(ann.pid) - cpu0) / ((Date.now() - t0) / 1000)) * 100);
    await worker.terminate();
    console.log(`during: ${JSON.stringify(during)}; flooder sent ${f.sent} initiations in ${f.ms} ms; victim CPU ${cpuPct}%`);
    const afterFlood = await pingFor(cb, 'ann', 2000, intervalMs);
    console.log(`after the flood: ${JSON.stringify(afterFlood)}`);

    const out = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'handshake-flood.json');
    mkdirSync(dirname(out), { recursive: true });
    const prev = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>) : {};
    prev[label] = {
      at: new Date().toISOString(),
      cpus: cpus().length,
      floodS,
      targetRatePerS: rate,
      flooderSent: f.sent,
      flooderRatePerS: Math.round(f.sent / (f.ms / 1000)),
      victimCpuPctDuringFlood: cpuPct,
      pingIntervalMs: intervalMs,
      before,
      during,
      afterFlood,
    };
    writeFileSync(out, JSON.stringify(prev, null, 2) + '\n');
    console.log(`wrote ${out}`);
  } finally {
    await c.close();
  }
}

if (!isMainThread) {
  runFlooder();
} else {
  await main();
}

function runFlooder(): void {
  // The flooder: its own thread, so its sending does not share the bench's event loop with the pings.
  const job = workerData as FloodJob;
  const sock = createSocket('udp4');
  let sent = 0;
  let i = 0;
  const t0 = Date.now();
  const perTick = Math.max(1, Math.round(job.rate / 200)); // 5 ms ticks
  const tick = (): void => {
    const elapsed = Date.now() - t0;
    if (elapsed >= job.durationMs) {
      sock.close();
      parentPort!.postMessage({ sent, ms: Date.now() - t0 });
      return;
    }
    const due = Math.min(Math.floor((elapsed / 1000) * job.rate) - sent, perTick * 4);
    for (let k = 0; k < due; k++) {
      sock.send(job.pool[i++ % job.pool.length]!, job.port, job.ip);
      sent++;
    }
    setTimeout(tick, 5);
  };
  tick();
}
