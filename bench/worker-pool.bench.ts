// Does a piscina worker pool measurably help pilot-node? (issue 5) Three CPU-bound candidates, each measured on
// the main thread and in a pool in the same process run, rounds interleaved so machine load drifts hit every
// variant alike:
//   1. ChaCha20-Poly1305 sealing of 256 MiB as 64 × 1420-byte PND1 batches: NoiseSession.sealBatch on the main
//      thread vs piscina with 1 and 2 workers (buffers moved, and copied, both ways). Once bare, once with a
//      synthetic transport load on the main thread (the daemon's main thread also runs the transport).
//   2. SHA-256 of a 200 MiB file in 64 KiB reads (sendFile's loop) on the main thread vs in a worker.
//   3. Bursts of 1000 Ed25519 registry-challenge verifications (verifyChallenge) main vs pool.
// Main-thread CPU comes from /proc/self/task/<pid>/schedstat (ns on-CPU of the main thread alone), so
// "main CPU freed" is what the event loop gets back for transport work, not process CPU.
//
// Run from dist (piscina workers need compiled .js; a tsx run points them at dist/ and needs a build):
//   npx tsc -p . && node dist/bench/worker-pool.bench.js        (ROUNDS=3 SEAL_MIB=256 HASH_MIB=200 by default)
// Writes bench/results/worker-pool.json.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { NoiseSession } from '../src/crypto/session.js';
import { createVerifyPool, type VerifyPool } from '../src/datapath/worker-pool.js';
import { decodeBase64Strict, generateSigningKeyPair, signDetached, verifyChallenge } from '../src/registry/signature.js';
import { MAX_NOISE_PLAINTEXT_BYTES, NOISE_DATA_OVERHEAD_BYTES } from '../src/wire/noise-frame.js';
import type { SealTask, VerifyTask } from './worker-pool/worker.js';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SEAL_BYTES = Number(process.env.SEAL_MIB ?? 256) * 1024 * 1024;
const HASH_BYTES = Number(process.env.HASH_MIB ?? 200) * 1024 * 1024;
const PLAIN = MAX_NOISE_PLAINTEXT_BYTES; // 1420
const SLOT = PLAIN + NOISE_DATA_OVERHEAD_BYTES; // 1452
const BATCH = 64;
const BATCHES = Math.ceil(SEAL_BYTES / (PLAIN * BATCH));
/** Synthetic transport work per packet on the main thread for the "loaded" seal runs. bench/results/e2e.json
 * measured ~12.4 CPU-s/GB for a pilot stream across both daemons ≈ 8.8 µs per 1420 B packet per side, of which
 * ~1.5 µs is AEAD: the rest (~7 µs) is transport + datapath. */
const TRANSPORT_US_PER_PACKET = Number(process.env.TRANSPORT_US ?? 7);
const HASH_CHUNK = 64 * 1024; // src/services/data-exchange.ts IO_CHUNK_BYTES
const SIGS = 1000;
const BURSTS = Number(process.env.BURSTS ?? 10);
const VERIFY_CHUNK = 125;

const here = fileURLToPath(import.meta.url);
const repoRoot = here.endsWith('.ts') ? join(here, '..', '..') : join(here, '..', '..', '..');

function workerFile(): string {
  const compiled = here.endsWith('.js') ? join(here, '..', 'worker-pool', 'worker.js') : join(repoRoot, 'dist', 'bench', 'worker-pool', 'worker.js');
  if (!existsSync(compiled)) throw new Error(`${compiled} missing: run \`npx tsc -p .\` first (piscina workers load compiled .js)`);
  return compiled;
}

// ---------- measurement helpers ----------

const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;

/** On-CPU ns of the main thread only (Linux schedstat); falls back to process CPU elsewhere. */
function mainThreadCpuMs(): number {
  try {
    const s = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8');
    return Number(s.split(' ')[0]) / 1e6;
  } catch {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
}
const processCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const median = (xs: number[]): number => quantile(xs, 0.5);

interface Sample {
  wallMs: number;
  mainCpuMs: number;
  processCpuMs: number;
  latUs: number[];
}

async function measure(fn: (lat: number[]) => Promise<void>): Promise<Sample> {
  const lat: number[] = [];
  const c0 = mainThreadCpuMs();
  const p0 = processCpuMs();
  const t0 = nowUs();
  await fn(lat);
  const wallMs = (nowUs() - t0) / 1000;
  return { wallMs, mainCpuMs: mainThreadCpuMs() - c0, processCpuMs: processCpuMs() - p0, latUs: lat };
}

/** Transport stand-in: a fixed amount of CPU work (not wall time, so a descheduled main thread still owes it),
 * calibrated once as the fastest of several trials. */
let itersPerUs = 0;
function burn(iters: number): void {
  let x = 1;
  for (let i = 0; i < iters; i++) x = (Math.imul(x, 1103515245) + i) | 0;
  sink ^= x & 1;
}
function calibrate(): void {
  const iters = 200_000;
  let best = Infinity;
  for (let k = 0; k < 25; k++) {
    const t0 = nowUs();
    burn(iters);
    best = Math.min(best, nowUs() - t0);
  }
  itersPerUs = iters / best;
}
function spinUs(us: number): void {
  if (us > 0) burn(Math.round(us * itersPerUs));
}

let sink = 0;

// ---------- case 1: AEAD sealing ----------

const KEY = new Uint8Array(32).fill(7);
const PLAINTEXT = new Uint8Array(PLAIN).map((_, i) => (i * 31) & 0xff);

function newSession(): NoiseSession {
  return new NoiseSession({
    sendKey: KEY.slice(),
    recvKey: new Uint8Array(32).fill(8),
    localIndex: 1,
    remoteIndex: 2,
    isInitiator: true,
    createdAtUs: 0,
    remoteEd25519PublicKey: new Uint8Array(32),
    remoteNodeId: 0,
    handshakeHash: new Uint8Array(64),
  });
}

/** What the transport does per batch before sealing: copy each plaintext into its slot (peers/noise-suite.ts does
 * txBatch.buf.set(plaintext, ...)), plus the optional synthetic transport work. */
function fillBatch(buf: Uint8Array, transportUs: number): void {
  for (let i = 0; i < BATCH; i++) buf.set(PLAINTEXT, i * SLOT + 16);
  spinUs(transportUs * BATCH);
}

/** The datapath hand-off stand-in: touch the sealed frames' tags. */
function consume(buf: Uint8Array): void {
  sink ^= buf[SLOT - 1]! ^ buf[BATCH * SLOT - 1]!;
}

async function sealMain(lat: number[], transportUs: number, doSeal = true): Promise<void> {
  const s = newSession();
  const buf = new Uint8Array(BATCH * SLOT);
  const offsets = new Uint32Array(BATCH).map((_, i) => i * SLOT);
  const lengths = new Uint32Array(BATCH);
  for (let b = 0; b < BATCHES; b++) {
    fillBatch(buf, transportUs);
    lengths.fill(PLAIN);
    const t0 = nowUs();
    if (doSeal) {
      const r = s.sealBatch(buf, offsets, lengths, BATCH, 0);
      if (!r.ok) throw new Error(r.error.message);
    }
    lat.push(nowUs() - t0);
    consume(buf);
    // The daemon returns to the event loop between datagram bursts; so does this loop, now and then.
    if ((b & 15) === 15) await new Promise<void>((res) => setImmediate(res));
  }
}

function sealPool(pool: Piscina, depth: number, mode: 'move' | 'copy' | 'echo', transportUs: number) {
  return (lat: number[]): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const free: ArrayBuffer[] = Array.from({ length: depth }, () => new ArrayBuffer(BATCH * SLOT));
      let next = 0;
      let done = 0;
      let inflight = 0;
      let counter = 0;
      const pump = (): void => {
        while (inflight < depth && next < BATCHES) {
          const ab = free.pop()!;
          fillBatch(new Uint8Array(ab), transportUs);
          const task: SealTask = { buf: ab, key: KEY, remoteIndex: 2, firstCounter: counter, count: BATCH, slotBytes: SLOT, plainBytes: PLAIN };
          counter += BATCH;
          next++;
          inflight++;
          const t0 = nowUs();
          const p =
            mode === 'copy'
              ? pool.run(task, { name: 'sealCopy' })
              : pool.run(task, { name: mode === 'move' ? 'seal' : 'echo', transferList: [ab] });
          p.then((out: ArrayBuffer) => {
            lat.push(nowUs() - t0);
            inflight--;
            done++;
            consume(new Uint8Array(out));
            free.push(mode === 'copy' ? ab : out);
            if (done === BATCHES) resolve();
            else pump();
          }, reject);
        }
      };
      pump();
    });
}

/** The pool's frames must be byte-identical to NoiseSession.sealBatch's. */
async function checkSealEquivalence(pool: Piscina): Promise<void> {
  const s = newSession();
  const a = new Uint8Array(BATCH * SLOT);
  fillBatch(a, 0);
  const offsets = new Uint32Array(BATCH).map((_, i) => i * SLOT);
  const lengths = new Uint32Array(BATCH).fill(PLAIN);
  const r = s.sealBatch(a, offsets, lengths, BATCH, 0);
  if (!r.ok) throw new Error(r.error.message);
  const ab = new ArrayBuffer(BATCH * SLOT);
  fillBatch(new Uint8Array(ab), 0);
  const task: SealTask = { buf: ab, key: KEY, remoteIndex: 2, firstCounter: 0, count: BATCH, slotBytes: SLOT, plainBytes: PLAIN };
  const out = new Uint8Array((await pool.run(task, { name: 'seal', transferList: [ab] })) as ArrayBuffer);
  if (Buffer.compare(Buffer.from(a), Buffer.from(out)) !== 0) throw new Error('pool seal differs from NoiseSession.sealBatch');
}

// ---------- case 2: SHA-256 of a file ----------

async function makeFile(path: string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const block = randomBytes(4 * 1024 * 1024);
    for (let at = 0; at < HASH_BYTES; at += block.length) await fh.write(block, 0, Math.min(block.length, HASH_BYTES - at));
  } finally {
    await fh.close();
  }
}

/** sendFile's loop: 64 KiB reads, hash.update per chunk (hash=false: the reads alone, what stays on main);
 * transportUs > 0 adds the stream's per-packet cost for each chunk (chunk / 1420 packets). */
async function readFileMain(path: string, hash: boolean, transportUs = 0): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const h = createHash('sha256');
    const size = (await fh.stat()).size;
    let at = 0;
    while (at < size) {
      const buf = Buffer.allocUnsafe(Math.min(HASH_CHUNK, size - at));
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead === 0) break;
      if (hash) h.update(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      else sink ^= buf[0]!;
      spinUs((transportUs * bytesRead) / PLAIN);
      at += bytesRead;
    }
    return hash ? h.digest('hex') : '';
  } finally {
    await fh.close();
  }
}

// ---------- case 3: Ed25519 verify bursts ----------

interface Burst {
  publicKeys: Uint8Array;
  challenges: string[];
  signatures: string[];
}

function makeBurst(): Burst {
  const publicKeys = new Uint8Array(SIGS * 32);
  const challenges: string[] = [];
  const signatures: string[] = [];
  for (let i = 0; i < SIGS; i++) {
    const kp = generateSigningKeyPair();
    publicKeys.set(kp.publicKey, i * 32);
    // the shape of a registry register/lookup challenge with freshness (src/registry/server.ts)
    const text = `register:${Buffer.from(kp.publicKey).toString('base64')}:1764000000:${randomBytes(16).toString('hex')}`;
    challenges.push(text);
    signatures.push(Buffer.from(signDetached(kp.secretKey, Buffer.from(text, 'utf8'))).toString('base64'));
  }
  return { publicKeys, challenges, signatures };
}

function verifyMain(burst: Burst) {
  return async (lat: number[]): Promise<void> => {
    for (let b = 0; b < BURSTS; b++) {
      const t0 = nowUs();
      let good = 0;
      for (let i = 0; i < SIGS; i++) {
        if (verifyChallenge(burst.publicKeys.subarray(i * 32, i * 32 + 32), burst.challenges[i]!, burst.signatures[i]!)) good++;
      }
      lat.push(nowUs() - t0);
      if (good !== SIGS) throw new Error(`main verified ${good}/${SIGS}`);
      await new Promise<void>((res) => setImmediate(res));
    }
  };
}

function verifyPool(pool: Piscina, burst: Burst, chunk: number) {
  const tasks: VerifyTask[] = [];
  for (let i = 0; i < SIGS; i += chunk) {
    tasks.push({
      publicKeys: burst.publicKeys.slice(i * 32, (i + chunk) * 32),
      challenges: burst.challenges.slice(i, i + chunk),
      signatures: burst.signatures.slice(i, i + chunk),
    });
  }
  return async (lat: number[]): Promise<void> => {
    for (let b = 0; b < BURSTS; b++) {
      const t0 = nowUs();
      const goods = await Promise.all(tasks.map((t) => pool.run(t, { name: 'verify' }) as Promise<number>));
      lat.push(nowUs() - t0);
      const good = goods.reduce((a, n) => a + n, 0);
      if (good !== SIGS) throw new Error(`pool verified ${good}/${SIGS}`);
    }
  };
}

/** The registry's shape through src/datapath/worker-pool.ts: one verify() per request (base64 and text decoded on
 * the main thread as verifyChallenge does), the pool coalescing what arrives in one event-loop turn. */
function verifyCoalesced(vp: VerifyPool, burst: Burst) {
  return async (lat: number[]): Promise<void> => {
    for (let b = 0; b < BURSTS; b++) {
      const t0 = nowUs();
      const answers: Promise<boolean>[] = [];
      for (let i = 0; i < SIGS; i++) {
        const sig = decodeBase64Strict(burst.signatures[i]!);
        answers.push(sig ? vp.verify(burst.publicKeys.subarray(i * 32, i * 32 + 32), Buffer.from(burst.challenges[i]!, 'utf8'), sig) : Promise.resolve(false));
      }
      const good = (await Promise.all(answers)).filter(Boolean).length;
      lat.push(nowUs() - t0);
      if (good !== SIGS) throw new Error(`VerifyPool verified ${good}/${SIGS}`);
    }
  };
}

// ---------- driver ----------

interface Variant {
  name: string;
  /** bytes (MB/s) or operations (ops/s) handled per run */
  bytes: number;
  ops: number;
  opUnit: string;
  latUnit: string;
  run: (lat: number[]) => Promise<void>;
}

interface CaseResult {
  case: string;
  baseline: string;
  rows: Array<{
    variant: string;
    rounds: Sample[];
    wallMs: number;
    mbPerS: number;
    opsPerS: number;
    opUnit: string;
    mainCpuMs: number;
    processCpuMs: number;
    mainCpuFreedPct: number;
    speedup: number;
    latP50Us: number;
    latP99Us: number;
    latUnit: string;
  }>;
}

async function runCase(name: string, variants: Variant[], rounds: number): Promise<CaseResult> {
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
  const ratios = new Map<string, { speed: number[]; freed: number[] }>(variants.map((v) => [v.name, { speed: [], freed: [] }]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse(); // alternate order against drift
    const got = new Map<string, Sample>();
    for (const v of order) {
      const s = await measure(v.run);
      got.set(v.name, s);
      samples.get(v.name)!.push(s);
      process.stderr.write(`  ${name} round ${r + 1}: ${v.name.padEnd(34)} ${s.wallMs.toFixed(1)} ms wall, ${s.mainCpuMs.toFixed(1)} ms main CPU\n`);
    }
    const base = got.get(variants[0]!.name)!;
    for (const v of variants) {
      const s = got.get(v.name)!;
      ratios.get(v.name)!.speed.push(base.wallMs / s.wallMs);
      ratios.get(v.name)!.freed.push(100 * (1 - s.mainCpuMs / base.mainCpuMs));
    }
  }
  return {
    case: name,
    baseline: variants[0]!.name,
    rows: variants.map((v) => {
      const ss = samples.get(v.name)!;
      const wallMs = median(ss.map((s) => s.wallMs));
      const lat = ss.flatMap((s) => s.latUs);
      return {
        variant: v.name,
        rounds: ss.map((s) => ({ ...s, latUs: [] })),
        wallMs,
        mbPerS: v.bytes / 1e6 / (wallMs / 1000),
        opsPerS: v.ops / (wallMs / 1000),
        opUnit: v.opUnit,
        mainCpuMs: median(ss.map((s) => s.mainCpuMs)),
        processCpuMs: median(ss.map((s) => s.processCpuMs)),
        mainCpuFreedPct: median(ratios.get(v.name)!.freed),
        speedup: median(ratios.get(v.name)!.speed),
        latP50Us: quantile(lat, 0.5),
        latP99Us: quantile(lat, 0.99),
        latUnit: v.latUnit,
      };
    }),
  };
}

function fmt(n: number, d = 0): string {
  return Number.isFinite(n) ? n.toFixed(d) : '-';
}

function printCase(c: CaseResult): void {
  console.log(`\n## ${c.case}   (ratios vs "${c.baseline}" in the same round, medians of ${ROUNDS})`);
  console.log(
    '| variant | wall ms | MB/s | ops/s | ×speed | main CPU ms | main CPU freed | process CPU ms | latency p50 | latency p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of c.rows) {
    console.log(
      `| ${r.variant} | ${fmt(r.wallMs, 1)} | ${fmt(r.mbPerS)} | ${fmt(r.opsPerS)} ${r.opUnit} | ${fmt(r.speedup, 2)} | ${fmt(r.mainCpuMs, 1)} | ${fmt(r.mainCpuFreedPct, 1)} % | ${fmt(r.processCpuMs, 1)} | ${fmt(r.latP50Us, 1)} µs ${r.latUnit} | ${fmt(r.latP99Us, 1)} µs |`,
    );
  }
}

async function main(): Promise<void> {
  const filename = workerFile();
  calibrate();
  const load0 = loadavg();
  console.log(`# worker-pool bench — node ${process.version}, ${cpus().length} CPUs, loadavg ${load0.map((x) => x.toFixed(2)).join(' ')}, ${ROUNDS} rounds`);

  const startT0 = nowUs();
  const pool1 = new Piscina({ filename, minThreads: 1, maxThreads: 1, idleTimeout: 60_000 });
  await pool1.run({ publicKeys: new Uint8Array(0), challenges: [], signatures: [] }, { name: 'verify' });
  const poolStartMs1 = (nowUs() - startT0) / 1000;
  const startT1 = nowUs();
  const pool2 = new Piscina({ filename, minThreads: 2, maxThreads: 2, idleTimeout: 60_000 });
  await Promise.all([0, 1].map(() => pool2.run({ publicKeys: new Uint8Array(0), challenges: [], signatures: [] }, { name: 'verify' })));
  const poolStartMs2 = (nowUs() - startT1) / 1000;
  console.log(`pool start (new Piscina + first task): 1 worker ${poolStartMs1.toFixed(1)} ms, 2 workers ${poolStartMs2.toFixed(1)} ms`);

  const hashPath = join(tmpdir(), `pilot-worker-pool-${process.pid}.bin`);
  const cleanup = (): void => {
    void rm(hashPath, { force: true });
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  const cases: CaseResult[] = [];
  let vpool: VerifyPool | null = null;
  try {
    await checkSealEquivalence(pool1);
    const sealBytes = BATCHES * BATCH * PLAIN;
    const sealVariants = (transportUs: number): Variant[] => {
      const v = (name: string, run: (lat: number[]) => Promise<void>): Variant => ({
        name,
        bytes: sealBytes,
        ops: BATCHES * BATCH,
        opUnit: 'pkt',
        latUnit: '/batch',
        run,
      });
      return [
        v('main thread (NoiseSession.sealBatch)', (lat) => sealMain(lat, transportUs)),
        v('pool 1 worker, moved, depth 2', sealPool(pool1, 2, 'move', transportUs)),
        v('pool 2 workers, moved, depth 4', sealPool(pool2, 4, 'move', transportUs)),
        v('pool 2 workers, copied, depth 4', sealPool(pool2, 4, 'copy', transportUs)),
        v('pool 1 worker, moved, NO crypto (round-trip cost)', sealPool(pool1, 2, 'echo', transportUs)),
        v('main thread, NO crypto (copy-in + transport only)', (lat) => sealMain(lat, transportUs, false)),
      ];
    };
    // warm-up (JIT, page faults on fresh buffers)
    for (const v of sealVariants(0)) await v.run([]);
    cases.push(await runCase(`1a. seal ${(sealBytes / 2 ** 20).toFixed(0)} MiB, 64×1420 B batches, bare`, sealVariants(0), ROUNDS));
    cases.push(await runCase(`1b. seal, main thread also runs ${TRANSPORT_US_PER_PACKET} µs/packet of transport`, sealVariants(TRANSPORT_US_PER_PACKET), ROUNDS));

    await makeFile(hashPath);
    const want = await readFileMain(hashPath, true); // also warms the page cache for every variant alike
    const hv = (name: string, run: () => Promise<void>): Variant => ({
      name,
      bytes: HASH_BYTES,
      ops: 1,
      opUnit: 'file',
      latUnit: '/file',
      run: async (lat) => {
        const t0 = nowUs();
        await run();
        lat.push(nowUs() - t0);
      },
    });
    const expect = (got: string): void => {
      if (got !== want) throw new Error('sha256 mismatch');
    };
    cases.push(
      await runCase(
        `2. sha256 of a ${HASH_BYTES / 2 ** 20} MiB file (page cache warm), 64 KiB reads`,
        [
          hv('main: read + hash (sendFile today)', async () => expect(await readFileMain(hashPath, true))),
          hv('main: read only (what stays on main)', async () => void (await readFileMain(hashPath, false))),
          hv('worker: read + hash', async () => expect((await pool1.run({ path: hashPath, chunkBytes: HASH_CHUNK }, { name: 'sha256File' })) as string)),
          hv('main read ‖ worker read + hash', async () => {
            const [, h] = await Promise.all([readFileMain(hashPath, false), pool1.run({ path: hashPath, chunkBytes: HASH_CHUNK }, { name: 'sha256File' }) as Promise<string>]);
            expect(h);
          }),
        ],
        ROUNDS,
      ),
    );

    const hashWorker = (): Promise<string> => pool1.run({ path: hashPath, chunkBytes: HASH_CHUNK }, { name: 'sha256File' }) as Promise<string>;
    const T = TRANSPORT_US_PER_PACKET;
    cases.push(
      await runCase(
        `2b. sendFile-shaped: ${HASH_BYTES / 2 ** 20} MiB read + ${T} µs/1420 B of transport on main, hash where?`,
        [
          hv('main: read + transport + hash', async () => expect(await readFileMain(hashPath, true, T))),
          hv('main: read + transport ‖ worker hash', async () => {
            const [, h] = await Promise.all([readFileMain(hashPath, false, T), hashWorker()]);
            expect(h);
          }),
        ],
        ROUNDS,
      ),
    );

    const burst = makeBurst();
    vpool = createVerifyPool({ threads: 2, maxBatch: VERIFY_CHUNK });
    const vv = (name: string, run: (lat: number[]) => Promise<void>): Variant => ({
      name,
      bytes: NaN,
      ops: SIGS * BURSTS,
      opUnit: 'sig',
      latUnit: '/burst',
      run,
    });
    await verifyMain(burst)([]);
    await verifyPool(pool1, burst, VERIFY_CHUNK)([]);
    await verifyPool(pool2, burst, VERIFY_CHUNK)([]);
    await verifyCoalesced(vpool, burst)([]);
    cases.push(
      await runCase(
        `3. Ed25519 verifyChallenge, ${BURSTS} bursts of ${SIGS}`,
        [
          vv('main thread', verifyMain(burst)),
          vv(`pool 1 worker, ${VERIFY_CHUNK}/task`, verifyPool(pool1, burst, VERIFY_CHUNK)),
          vv(`pool 2 workers, ${VERIFY_CHUNK}/task`, verifyPool(pool2, burst, VERIFY_CHUNK)),
          vv('pool 2 workers, 1/task (per request)', verifyPool(pool2, burst, 1)),
          vv('VerifyPool 2 workers, per-request calls coalesced', verifyCoalesced(vpool, burst)),
        ],
        ROUNDS,
      ),
    );
  } finally {
    await rm(hashPath, { force: true });
    await pool1.destroy();
    await pool2.destroy();
    await vpool?.destroy();
  }

  for (const c of cases) printCase(c);
  const load1 = loadavg();
  console.log(`\nloadavg after: ${load1.map((x) => x.toFixed(2)).join(' ')}   (sink ${sink & 1})`);

  const outDir = join(repoRoot, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'worker-pool.json'),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        loadavgBefore: load0,
        loadavgAfter: load1,
        params: { rounds: ROUNDS, sealBytes: BATCHES * BATCH * PLAIN, batch: BATCH, plaintextBytes: PLAIN, hashBytes: HASH_BYTES, hashChunk: HASH_CHUNK, sigs: SIGS, bursts: BURSTS, verifyChunk: VERIFY_CHUNK, transportUsPerPacket: TRANSPORT_US_PER_PACKET },
        poolStartMs: { workers1: poolStartMs1, workers2: poolStartMs2 },
        cases,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`wrote ${join(outDir, 'worker-pool.json')}`);
}

await main();
