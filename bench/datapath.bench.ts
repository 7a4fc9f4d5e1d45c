// Datapath benchmark: loopback UDP throughput (sender and receiver in separate processes), ping-pong RTT,
// and AEAD cost per 1200 B packet (single call vs batch of 64). Run:
//   node --import tsx bench/datapath.bench.ts            (all; add --quick for shorter runs, --json for JSON)
// Read the figures as ratios to ../shared/README.md: dgram 185 kpps, sendmmsg 344 kpps, GSO+GRO 26 Gbit/s.
import { spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { NativeBinding } from '../native/index.js';
import { performance } from 'node:perf_hooks';
import sodium from 'sodium-native';
import { silentLogger } from '../src/core/index.js';
import {
  createAeadBatch,
  createJsAead,
  ipv4ToU32,
  loadNative,
  NOISE_DATA_LAYOUT,
  openDgramDatapath,
  openNativeDatapath,
  PacketBatch,
  type AeadBatch,
  type Datapath,
} from '../src/datapath/index.js';

const PACKET_BYTES = 1200;
const BATCH_PACKETS = 64;
const LO = '127.0.0.1';
const SELF = fileURLToPath(import.meta.url);

export type BenchImpl = 'dgram' | 'native' | 'native-nogso';
/** 'keytable': PND1 frames sealed in the send call and opened on the reader thread (Datapath.tunnelKeys, issue 18). */
export type BenchCrypto = 'none' | 'chacha20-poly1305' | 'aes-256-gcm' | 'keytable';

export interface ThroughputResult {
  impl: BenchImpl;
  crypto: BenchCrypto;
  txKpps: number;
  rxKpps: number;
  rxGbps: number;
  /** Share of sent packets the receiver never saw (kernel drops when the receiver is slower). */
  lossPct: number;
}
export interface RttResult {
  impl: 'dgram' | 'native';
  p50Us: number;
  p99Us: number;
}
export interface AeadCostResult {
  case: string;
  nsPerPacket: number;
}
export interface DatapathBenchResult {
  throughput: ThroughputResult[];
  rtt: RttResult[];
  aead: AeadCostResult[];
}

const logger = silentLogger();

async function open(impl: BenchImpl | 'dgram' | 'native'): Promise<Datapath> {
  const r =
    impl === 'dgram'
      ? await openDgramDatapath({ host: LO, port: 0, logger })
      : await openNativeDatapath({ host: LO, port: 0, logger, gso: impl !== 'native-nogso' });
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

const KEY = new Uint8Array(32).fill(42);

const KEYTABLE_INDEX = 0x01020304;

/** PND1 header at every packet of the batch: magic, receiver index, counter 0 (the pump writes counters). */
function writePnd1Headers(batch: PacketBatch): void {
  for (let i = 0; i < batch.count; i++) {
    const o = batch.offset(i);
    batch.buf.set([0x50, 0x4e, 0x44, 0x31], o);
    new DataView(batch.buf.buffer, batch.buf.byteOffset).setUint32(o + 4, KEYTABLE_INDEX, true);
    batch.buf.fill(0, o + 8, o + 16);
  }
}

async function aeadFor(impl: BenchImpl, crypto: BenchCrypto): Promise<AeadBatch | null> {
  if (crypto === 'none' || crypto === 'keytable') return null;
  if (impl === 'dgram') return createJsAead(crypto, KEY); // the fallback stack: dgram + sodium-native/node:crypto
  const r = await createAeadBatch({ algorithm: crypto, key: KEY });
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

// ---- child roles (spawned by runThroughput / runRtt) ----

async function childRx(impl: BenchImpl, crypto: BenchCrypto): Promise<void> {
  const dp = await open(impl);
  const aead = await aeadFor(impl, crypto);
  if (crypto === 'keytable' && !dp.tunnelKeys?.install(KEYTABLE_INDEX, KEY, KEY)) throw new Error(`${impl}: no tunnel key table`);
  const status = new Uint8Array(4096);
  let packets = 0;
  let bytes = 0;
  let forged = 0;
  let firstMs = 0;
  let lastMs = 0;
  dp.onReceive((b) => {
    lastMs = performance.now();
    if (firstMs === 0) firstMs = lastMs;
    if (aead) {
      const good = aead.open(b.buf, b.meta, b.count, status);
      forged += b.count - good;
    } else if (crypto === 'keytable') {
      for (let i = 0; i < b.count; i++) if (b.status?.[i] !== 1) forged++;
    }
    packets += b.count;
    for (let i = 0; i < b.count; i++) bytes += b.length(i);
  });
  process.stdout.write(`port ${dp.localAddress.port}\n`);
  const timer = setInterval(() => {
    if (firstMs > 0 && performance.now() - lastMs > 400) {
      clearInterval(timer);
      const s = (lastMs - firstMs) / 1000;
      process.stdout.write(JSON.stringify({ packets, bytes, seconds: s, forged, stats: dp.stats() }) + '\n');
      void dp.close().then(() => process.exit(0));
    }
  }, 50);
}

async function childTx(impl: BenchImpl, crypto: BenchCrypto, port: number, durationMs: number): Promise<void> {
  const dp = await open(impl);
  const aead = await aeadFor(impl, crypto);
  const batch = new PacketBatch(BATCH_PACKETS, BATCH_PACKETS * PACKET_BYTES);
  const ip = ipv4ToU32(LO);
  for (let i = 0; i < BATCH_PACKETS; i++) batch.buf.fill(i, batch.reserve(PACKET_BYTES, ip, port), (i + 1) * PACKET_BYTES);
  if (crypto === 'keytable') {
    if (!dp.tunnelKeys?.install(KEYTABLE_INDEX, KEY, KEY)) throw new Error(`${impl}: no tunnel key table`);
    writePnd1Headers(batch);
    batch.keys = new Uint32Array(BATCH_PACKETS).fill(KEYTABLE_INDEX);
  }
  let counter = 0;
  let sent = 0;
  let offered = 0;
  const t0 = performance.now();
  const pump = (): void => {
    // A few batches per turn, then yield so timers and the loop stay alive.
    for (let k = 0; k < 8; k++) {
      if (aead || batch.keys) {
        for (let i = 0; i < BATCH_PACKETS; i++) {
          const o = i * PACKET_BYTES + NOISE_DATA_LAYOUT.nonceOffset;
          const c = counter++;
          batch.buf[o] = c;
          batch.buf[o + 1] = c >>> 8;
          batch.buf[o + 2] = c >>> 16;
          batch.buf[o + 3] = c >>> 24;
        }
        aead?.seal(batch.buf, batch.meta, batch.count);
      }
      sent += dp.sendBatch(batch);
      offered += BATCH_PACKETS;
    }
    if (performance.now() - t0 < durationMs) setImmediate(pump);
    else {
      const s = (performance.now() - t0) / 1000;
      // dgram queues inside libuv: give it a moment to drain before closing.
      setTimeout(() => {
        process.stdout.write(JSON.stringify({ sent, offered, seconds: s, stats: dp.stats() }) + '\n');
        void dp.close().then(() => process.exit(0));
      }, 200);
    }
  };
  pump();
}

async function childEcho(impl: 'dgram' | 'native'): Promise<void> {
  const dp = await open(impl);
  dp.onReceive((b) => {
    for (let i = 0; i < b.count; i++) dp.send(b.payload(i), b.ip(i), b.port(i));
  });
  process.stdout.write(`port ${dp.localAddress.port}\n`);
  process.stdin.on('end', () => void dp.close().then(() => process.exit(0)));
  process.stdin.resume();
}

// ---- parent side ----

function spawnChild(args: string[]): { lines: AsyncIterator<string>; proc: ReturnType<typeof spawn> } {
  const proc = spawn(process.execPath, [...process.execArgv, SELF, '--child', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  let buf = '';
  let ended = false;
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      queue.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake?.();
  });
  proc.on('exit', () => {
    ended = true;
    wake?.();
  });
  const lines: AsyncIterator<string> = {
    async next() {
      while (queue.length === 0 && !ended) await new Promise<void>((r) => (wake = r));
      const v = queue.shift();
      return v === undefined ? { done: true, value: undefined } : { done: false, value: v };
    },
  };
  return { lines, proc };
}

async function line(it: AsyncIterator<string>): Promise<string> {
  const r = await it.next();
  if (r.done) throw new Error('child ended early');
  return r.value;
}

export async function runThroughput(impl: BenchImpl, crypto: BenchCrypto, durationMs = 2000): Promise<ThroughputResult> {
  const rx = spawnChild(['rx', impl, crypto]);
  const port = Number((await line(rx.lines)).split(' ')[1]);
  const tx = spawnChild(['tx', impl, crypto, String(port), String(durationMs)]);
  const txr = JSON.parse(await line(tx.lines)) as { sent: number; offered: number; seconds: number };
  const rxr = JSON.parse(await line(rx.lines)) as { packets: number; bytes: number; seconds: number; forged: number };
  if (rxr.forged > 0) throw new Error(`${rxr.forged} packets failed to open`);
  return {
    impl,
    crypto,
    txKpps: round(txr.sent / txr.seconds / 1e3),
    rxKpps: round(rxr.packets / rxr.seconds / 1e3),
    rxGbps: round((rxr.bytes * 8) / rxr.seconds / 1e9, 2),
    lossPct: round(100 * (1 - rxr.packets / Math.max(1, txr.sent)), 1),
  };
}

export async function runRtt(impl: 'dgram' | 'native', rounds = 2000): Promise<RttResult> {
  const echo = spawnChild(['echo', impl]);
  const port = Number((await line(echo.lines)).split(' ')[1]);
  const dp = await open(impl);
  const samples: number[] = [];
  const msg = new Uint8Array(100);
  await new Promise<void>((resolve) => {
    let t = 0;
    const ping = (): void => {
      t = performance.now();
      dp.send(msg, LO, port);
    };
    dp.onReceive((b) => {
      samples.push((performance.now() - t) * 1000);
      if (samples.length >= rounds + 100) resolve();
      else for (let i = 0; i < b.count; i++) ping();
    });
    ping();
  });
  await dp.close();
  echo.proc.stdin!.end();
  const s = samples.slice(100).sort((a, b) => a - b); // drop warm-up
  return { impl, p50Us: round(s[Math.floor(s.length / 2)]!, 1), p99Us: round(s[Math.floor(s.length * 0.99)]!, 1) };
}

function timeNsPerPacket(packets: number, fn: () => void, minMs = 300): number {
  fn();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < minMs) {
    fn();
    n++;
    t = performance.now();
  }
  return round(((t - t0) * 1e6) / (n * packets), 0);
}

export async function runAeadCost(): Promise<AeadCostResult[]> {
  const out: AeadCostResult[] = [];
  const batch = new PacketBatch(BATCH_PACKETS, BATCH_PACKETS * PACKET_BYTES);
  for (let i = 0; i < BATCH_PACKETS; i++) batch.reserve(PACKET_BYTES, 0, 0);
  const one = new PacketBatch(1, PACKET_BYTES);
  one.reserve(PACKET_BYTES, 0, 0);
  const key = Buffer.from(KEY);
  const nonce = Buffer.alloc(12);
  const body = Buffer.alloc(PACKET_BYTES - 32);
  const tag = Buffer.alloc(16);
  const aad = Buffer.alloc(16);
  out.push({
    case: 'sodium-native chacha20-poly1305 encrypt, one call per packet',
    nsPerPacket: timeNsPerPacket(1, () => sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(body, tag, body, aad, null, nonce, key)),
  });
  out.push({
    case: 'node:crypto aes-256-gcm, new cipher per packet',
    nsPerPacket: timeNsPerPacket(1, () => {
      const c = createCipheriv('aes-256-gcm', key, nonce);
      c.setAAD(aad);
      c.update(body);
      c.final();
      c.getAuthTag();
    }),
  });
  for (const alg of ['chacha20-poly1305', 'aes-256-gcm'] as const) {
    const js = createJsAead(alg, KEY);
    out.push({ case: `js AeadBatch ${alg} seal, batch of 64`, nsPerPacket: timeNsPerPacket(64, () => js.seal(batch.buf, batch.meta, 64)) });
    const n = await createAeadBatch({ algorithm: alg, key: KEY });
    if (!n.ok || n.value.kind !== 'native') continue;
    const a = n.value;
    out.push({ case: `native ${alg} seal, batch of 1`, nsPerPacket: timeNsPerPacket(1, () => a.seal(one.buf, one.meta, 1)) });
    out.push({ case: `native ${alg} seal, batch of 64`, nsPerPacket: timeNsPerPacket(64, () => a.seal(batch.buf, batch.meta, 64)) });
    a.seal(batch.buf, batch.meta, 64);
    const status = new Uint8Array(64);
    const sealed = Buffer.from(batch.buf);
    out.push({
      case: `native ${alg} open, batch of 64`,
      nsPerPacket: timeNsPerPacket(64, () => {
        batch.buf.set(sealed);
        a.open(batch.buf, batch.meta, 64, status);
      }),
    });
    // The OpenSSL EVP build of the addon (what a machine without libsodium-dev gets), when it was built.
    const evp = loadEvpVariant();
    if (evp) {
      const algId = alg === 'chacha20-poly1305' ? 1 : 2;
      const h = evp.aeadCreate(algId, KEY, 16, 16, 8, 8);
      if (typeof h !== 'number') {
        out.push({ case: `native(openssl-evp) ${alg} seal, batch of 64`, nsPerPacket: timeNsPerPacket(64, () => evp.aeadSeal(h, batch.buf, batch.meta, 64)) });
        out.push({
          case: `native(openssl-evp) ${alg} open, batch of 64`,
          nsPerPacket: timeNsPerPacket(64, () => {
            batch.buf.set(sealed);
            evp.aeadOpen(h, batch.buf, batch.meta, 64, status);
          }),
        });
        evp.aeadDestroy(h);
      }
    }
  }
  return out;
}

/** native/pilot-datapath-evp.node (built by `PILOT_NATIVE_BOTH=1 npm run build:native`), or null. */
function loadEvpVariant(): NativeBinding | null {
  for (const rel of ['../../native/pilot-datapath-evp.node', '../native/pilot-datapath-evp.node']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return createRequire(import.meta.url)(path) as NativeBinding;
  }
  return null;
}

function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The whole suite; the lead can import and call this. `quick` shortens each throughput run to 1 s. */
export async function runDatapathBench(opts: { quick?: boolean } = {}): Promise<DatapathBenchResult> {
  const hasNative = (await loadNative()).ok;
  const ms = opts.quick ? 1000 : 2000;
  const configs: Array<[BenchImpl, BenchCrypto]> = [
    ['dgram', 'none'],
    ['dgram', 'chacha20-poly1305'],
  ];
  if (hasNative) {
    configs.push(['native-nogso', 'none'], ['native', 'none'], ['native', 'chacha20-poly1305'], ['native', 'keytable'], ['native', 'aes-256-gcm']);
  }
  const throughput: ThroughputResult[] = [];
  for (const [impl, crypto] of configs) throughput.push(await runThroughput(impl, crypto, ms));
  const rtt: RttResult[] = [await runRtt('dgram')];
  if (hasNative) rtt.push(await runRtt('native'));
  return { throughput, rtt, aead: await runAeadCost() };
}

const argv = process.argv.slice(2);
if (process.argv[1] === SELF && argv[0] === '--child') {
  const [role, impl, crypto, port, duration] = argv.slice(1);
  if (role === 'rx') await childRx(impl as BenchImpl, crypto as BenchCrypto);
  else if (role === 'tx') await childTx(impl as BenchImpl, crypto as BenchCrypto, Number(port), Number(duration));
  else if (role === 'echo') await childEcho(impl as 'dgram' | 'native');
} else if (process.argv[1] === SELF) {
  const r = await runDatapathBench({ quick: argv.includes('--quick') });
  if (argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
  else {
    console.log(`loopback UDP, ${PACKET_BYTES} B packets, sender and receiver in separate processes`);
    console.table(r.throughput);
    console.log('ping-pong RTT, 100 B, echo in a separate process');
    console.table(r.rtt);
    console.log(`AEAD cost per ${PACKET_BYTES} B packet`);
    console.table(r.aead);
  }
}
