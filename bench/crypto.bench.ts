// Crypto micro-benchmarks: AEAD seal/open of one 1200 B datagram, 64-packet batches, and a full Noise IK round
// trip. bench/micro.bench.ts calls addCryptoTasks(); run this file directly (`npx tsx bench/crypto.bench.ts`) for a
// standalone table. Compare against ../shared/README.md: raw sodium-native ChaCha20-Poly1305 1200 B ≈ 1.36 µs.
import { Bench } from 'tinybench';
import { fileURLToPath } from 'node:url';
import { identityFromSeed } from '../src/crypto/identity.js';
import { createInitiator, respond } from '../src/crypto/noise-ik.js';
import { NoiseSession } from '../src/crypto/session.js';

const PACKET_BYTES = 1200;
const BATCH = 64;
const SLOT_BYTES = PACKET_BYTES + 32;
const POOL_FRAMES = 4096;

let sink = 0;

function keyPair(): { k1: Uint8Array; k2: Uint8Array } {
  return { k1: new Uint8Array(32).fill(1), k2: new Uint8Array(32).fill(2) };
}

function session(send: Uint8Array, recv: Uint8Array, localIndex: number, remoteIndex: number): NoiseSession {
  return new NoiseSession({
    sendKey: send.slice(),
    recvKey: recv.slice(),
    localIndex,
    remoteIndex,
    isInitiator: localIndex === 1,
    createdAtUs: 0,
    remoteEd25519PublicKey: new Uint8Array(32),
    remoteNodeId: 0,
    handshakeHash: new Uint8Array(64),
  });
}

export function addCryptoTasks(bench: Bench): void {
  const { k1, k2 } = keyPair();
  const tx = session(k1, k2, 1, 2);
  const plaintext = new Uint8Array(PACKET_BYTES).map((_, i) => i * 7);
  const frameOut = new Uint8Array(SLOT_BYTES);
  const plainOut = new Uint8Array(SLOT_BYTES);

  // open needs fresh counters (the replay window refuses repeats): a pool of sealed frames, and a new receiver
  // session whenever the pool has been walked once.
  const poolSender = session(k1, k2, 1, 2);
  const pool: Uint8Array[] = [];
  for (let i = 0; i < POOL_FRAMES; i++) {
    const r = poolSender.seal(plaintext, 0);
    if (!r.ok) throw new Error(r.error.message);
    pool.push(r.value);
  }
  let rx = session(k2, k1, 2, 1);
  let poolAt = 0;

  // Batches: sealed in place over one buffer; openBatch gets a fresh sealed batch copied in (outside the timing).
  const offsets = new Uint32Array(BATCH).map((_, i) => i * SLOT_BYTES);
  const plainLengths = new Uint32Array(BATCH).fill(PACKET_BYTES);
  const lengths = new Uint32Array(BATCH);
  const batchBuf = new Uint8Array(BATCH * SLOT_BYTES);
  for (let i = 0; i < BATCH; i++) batchBuf.set(plaintext, offsets[i]! + 16);
  const batchTx = session(k1, k2, 1, 2);
  const sealedBatches: Uint8Array[] = [];
  const batchPoolSender = session(k1, k2, 1, 2);
  for (let b = 0; b < POOL_FRAMES / BATCH; b++) {
    const buf = batchBuf.slice();
    const lens = plainLengths.slice();
    const r = batchPoolSender.sealBatch(buf, offsets, lens, BATCH, 0);
    if (!r.ok) throw new Error(r.error.message);
    sealedBatches.push(buf);
  }
  const frameLengths = new Uint32Array(BATCH).fill(SLOT_BYTES);
  const openBuf = new Uint8Array(BATCH * SLOT_BYTES);
  let batchRx = session(k2, k1, 2, 1);
  let batchAt = 0;

  const alice = identityFromSeed(new Uint8Array(32).fill(0xa1));
  const bob = identityFromSeed(new Uint8Array(32).fill(0xb0));
  let timestampS = 1;

  bench
    .add(`crypto: seal ${PACKET_BYTES} B (into a buffer)`, () => {
      const r = tx.seal(plaintext, 0, frameOut);
      if (r.ok) sink ^= r.value[20]!;
    })
    .add(`crypto: open ${PACKET_BYTES} B (into a buffer)`, () => {
      if (poolAt === POOL_FRAMES) {
        rx = session(k2, k1, 2, 1);
        poolAt = 0;
      }
      const r = rx.open(pool[poolAt++]!, 0, plainOut);
      if (!r.ok) throw new Error(r.error.message);
      sink ^= r.value[3]!;
    })
    .add(
      `crypto: sealBatch ${BATCH}×${PACKET_BYTES} B (in place)`,
      () => {
        const r = batchTx.sealBatch(batchBuf, offsets, lengths, BATCH, 0);
        if (r.ok) sink ^= r.value;
      },
      { beforeEach: () => lengths.set(plainLengths) },
    )
    .add(
      `crypto: openBatch ${BATCH}×${PACKET_BYTES} B (in place)`,
      () => {
        const n = batchRx.openBatch(openBuf, offsets, lengths, BATCH, 0);
        if (n !== BATCH) throw new Error(`opened ${n}`);
        sink ^= n;
      },
      {
        beforeEach: () => {
          if (batchAt === sealedBatches.length) {
            batchRx = session(k2, k1, 2, 1);
            batchAt = 0;
          }
          openBuf.set(sealedBatches[batchAt++]!);
          lengths.set(frameLengths);
        },
      },
    )
    .add('crypto: Noise IK handshake (both sides, full round trip)', () => {
      const init = createInitiator({ local: alice, localNodeId: 1, localIndex: 1, remoteStatic: bob.publicKey, timestampS: timestampS++, now: 0 });
      if (!init.ok) throw new Error(init.error.message);
      const resp = respond(init.value.message, { local: bob, localNodeId: 2, localIndex: 2, now: 0 });
      if (!resp.ok) throw new Error(resp.error.message);
      const done = init.value.state.handleResponse(resp.value.message, 0);
      if (!done.ok) throw new Error(done.error.message);
      sink ^= done.value.session.remoteIndex;
    });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const bench = new Bench({ time: Number(process.env.BENCH_TIME_MS ?? 1000), warmupTime: 200 });
  addCryptoTasks(bench);
  await bench.run();
  console.table(
    bench.tasks.map((t) => {
      const r = t.result as { latency?: { mean?: number; p50?: number; p99?: number } } | undefined;
      const meanMs = r?.latency?.mean ?? NaN;
      // The median resists the other processes sharing the two cores better than the mean.
      const medianMs = r?.latency?.p50 ?? meanMs;
      const perPacketNs = t.name.includes('Batch') ? (medianMs * 1e6) / BATCH : medianMs * 1e6;
      return {
        task: t.name,
        'mean ns/op': Math.round(meanMs * 1e6),
        'median ns/op': Math.round(medianMs * 1e6),
        'ns/packet (median)': Math.round(perPacketNs),
        'Gbit/s (payload)': t.name.includes('handshake') ? '' : ((PACKET_BYTES * 8) / perPacketNs).toFixed(2),
        'p99 ns': Math.round((r?.latency?.p99 ?? NaN) * 1e6),
      };
    }),
  );
  if (sink === 0.5) console.log(sink);
}
