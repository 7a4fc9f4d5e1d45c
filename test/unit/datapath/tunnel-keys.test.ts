// The datapath's tunnel key table (issue 18): the native socket seals PND1 frames in its send call and opens them
// on its reader thread; the session (src/crypto/session.ts) keeps the counter, replay window and limits. The
// bytes must be the ones the JS session seals and opens, and nothing may leave in clear.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv, silentLogger } from '../../../src/core/index.js';
import {
  PacketBatch,
  ipv4ToU32,
  loadNative,
  openDgramDatapath,
  openNativeDatapath,
  RECV_FORGED,
  RECV_NOT_OPENED,
  RECV_OPENED,
  type Datapath,
  type RecvBatch,
} from '../../../src/datapath/index.js';
import { NoiseSession } from '../../../src/crypto/session.js';
import { NOISE_DATA_HEADER_BYTES, NOISE_DATA_OVERHEAD_BYTES } from '../../../src/wire/noise-frame.js';

const seed = seedFromEnv();
test.after(() => console.log(`# tunnel-keys seed PILOT_SEED=${seed}`));
const rng = new Rng(seed);
const logger = silentLogger();
const LO = '127.0.0.1';
const native = await loadNative();
const nativeSkip: string | false = process.env.PILOT_NATIVE === '0' ? 'PILOT_NATIVE=0' : native.ok ? false : `${native.error.message}; skipping`;

const A_INDEX = 0x0a0b0c0d;
const B_INDEX = 0x01020304;

function pair(): [NoiseSession, NoiseSession] {
  const k1 = new Uint8Array(32);
  const k2 = new Uint8Array(32);
  rng.fill(k1);
  rng.fill(k2);
  const common = { createdAtUs: 0, remoteEd25519PublicKey: new Uint8Array(32), handshakeHash: new Uint8Array(64) };
  const a = new NoiseSession({ ...common, sendKey: k1, recvKey: k2, localIndex: A_INDEX, remoteIndex: B_INDEX, isInitiator: true, remoteNodeId: 2 });
  const b = new NoiseSession({ ...common, sendKey: k2.slice(), recvKey: k1.slice(), localIndex: B_INDEX, remoteIndex: A_INDEX, isInitiator: false, remoteNodeId: 1 });
  return [a, b];
}

interface Got {
  data: Buffer;
  status: number;
}

function collect(dp: Datapath, n: number): Promise<Got[]> {
  const got: Got[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout: got ${got.length} of ${n} packets`)), 5000);
    dp.onReceive((b: RecvBatch) => {
      for (let i = 0; i < b.count; i++) got.push({ data: Buffer.from(b.payload(i)), status: b.status?.[i] ?? RECV_NOT_OPENED });
      if (got.length >= n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

/** Append a frame of `session` carrying `plaintext`: left for the datapath to seal (keyId) or sealed here (0). */
function addFrame(batch: PacketBatch, session: NoiseSession, plaintext: Uint8Array, port: number, keyId: number): void {
  const off = batch.reserve(plaintext.length + NOISE_DATA_OVERHEAD_BYTES, ipv4ToU32(LO), port);
  assert.ok(off >= 0);
  batch.buf.set(plaintext, off + NOISE_DATA_HEADER_BYTES);
  batch.keys![batch.count - 1] = keyId;
  const r = keyId !== 0 ? session.prepareInPlace(batch.buf, off, plaintext.length, 0) : session.sealInPlace(batch.buf, off, plaintext.length, 0);
  assert.ok(r.ok);
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

test('native: frames sealed in the send call open in JS, and JS-sealed frames open on the reader thread', { skip: nativeSkip }, async () => {
  const [a, b] = pair();
  const tx = await openNativeDatapath({ host: LO, port: 0, logger });
  const rx = await openNativeDatapath({ host: LO, port: 0, logger });
  assert.ok(tx.ok && rx.ok);
  try {
    const keysA = a.exportKeys();
    assert.ok(tx.value.tunnelKeys!.install(A_INDEX, keysA.sendKey, keysA.recvKey));
    const port = rx.value.localAddress.port;
    // The receiver holds no keys yet: every frame arrives as sent, and the JS session must open the native seal.
    const batch = new PacketBatch(8, 8 * 1500);
    batch.keys = new Uint32Array(8);
    const sizes = [0, 1, 63, 1420];
    const plains = sizes.map((n) => {
      const p = new Uint8Array(n);
      rng.fill(p);
      return p;
    });
    for (const p of plains) addFrame(batch, a, p, port, A_INDEX);
    const got = collect(rx.value, plains.length);
    assert.equal(tx.value.sendBatch(batch), plains.length);
    const frames = await got;
    const opened = frames.map((f) => {
      assert.equal(f.status, RECV_NOT_OPENED);
      const r = b.open(new Uint8Array(f.data), 0);
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      return Buffer.from(r.value).toString('hex');
    });
    assert.deepEqual(opened.sort(), plains.map((p) => Buffer.from(p).toString('hex')).sort());
  } finally {
    await tx.value.close();
    await rx.value.close();
  }
});

test('native: the reader opens frames for installed indices; verdicts for forged, unknown and other packets; replay stays in the session', { skip: nativeSkip }, async () => {
  const [a, b] = pair();
  const tx = await openNativeDatapath({ host: LO, port: 0, logger });
  const rx = await openNativeDatapath({ host: LO, port: 0, logger });
  assert.ok(tx.ok && rx.ok);
  try {
    const kb = b.exportKeys();
    assert.ok(rx.value.tunnelKeys!.install(B_INDEX, kb.sendKey, kb.recvKey));
    const port = rx.value.localAddress.port;
    const batch = new PacketBatch(8, 8 * 1500);
    batch.keys = new Uint32Array(8);
    addFrame(batch, a, text('good'), port, 0); // sealed in JS, opened natively
    addFrame(batch, a, text('forged'), port, 0);
    const forgedAt = batch.offset(1) + NOISE_DATA_HEADER_BYTES;
    batch.buf[forgedAt] = batch.buf[forgedAt]! ^ 1;
    // A frame for an index the receiver holds no keys for, and a packet that is no PND1 frame at all.
    const [other] = pair();
    addFrame(batch, other, text('elsewhere'), port, 0);
    new DataView(batch.buf.buffer, batch.buf.byteOffset).setUint32(batch.offset(2) + 4, 0x77777777, true);
    assert.ok(batch.push(text('PILP plain bytes, not a frame'), ipv4ToU32(LO), port));
    batch.keys[3] = 0;
    const got = collect(rx.value, 4);
    assert.equal(tx.value.sendBatch(batch), 4);
    const frames = await got;
    const byStatus = (s: number): Got[] => frames.filter((f) => f.status === s);
    assert.equal(byStatus(RECV_OPENED).length, 1);
    assert.equal(byStatus(RECV_FORGED).length, 1);
    assert.equal(byStatus(RECV_NOT_OPENED).length, 2);
    const good = new Uint8Array(byStatus(RECV_OPENED)[0]!.data);
    const r = b.acceptOpened(good, 0);
    assert.ok(r.ok);
    assert.equal(new TextDecoder().decode(r.value), 'good');
    // The same authentic frame again is a replay: refused by the session, not the datapath.
    const again = b.acceptOpened(good, 0);
    assert.ok(!again.ok);
    assert.equal(again.error.detail?.reason, 'replay');
    assert.equal(b.packetsReceived, 1);

    // Removed keys: frames arrive as sent again.
    rx.value.tunnelKeys!.remove(B_INDEX);
    batch.reset();
    addFrame(batch, a, text('after remove'), port, 0);
    const later = collect(rx.value, 1);
    assert.equal(tx.value.sendBatch(batch), 1);
    const [f] = await later;
    assert.equal(f!.status, RECV_NOT_OPENED);
    const o = b.open(new Uint8Array(f!.data), 0);
    assert.ok(o.ok);
    assert.equal(new TextDecoder().decode(o.value), 'after remove');
  } finally {
    await tx.value.close();
    await rx.value.close();
  }
});

test('native: a batch naming a key the socket does not hold sends nothing (never a clear frame)', { skip: nativeSkip }, async () => {
  const [a] = pair();
  const tx = await openNativeDatapath({ host: LO, port: 0, logger });
  assert.ok(tx.ok);
  try {
    const batch = new PacketBatch(2, 3000);
    batch.keys = new Uint32Array(2);
    addFrame(batch, a, text('in clear?'), 9, 0);
    addFrame(batch, a, text('in clear?'), 9, 0x5555);
    assert.equal(tx.value.sendBatch(batch), 0);
    assert.equal(tx.value.stats().txPackets, 0);
    assert.equal(tx.value.tunnelKeys!.install(0, new Uint8Array(32), new Uint8Array(32)), false, 'index 0 is refused');
    assert.equal(tx.value.tunnelKeys!.install(7, new Uint8Array(31), new Uint8Array(32)), false, 'a short key is refused');
  } finally {
    await tx.value.close();
  }
});

test('dgram: no key table; packets left for the datapath to seal are dropped, the rest are sent', async () => {
  const [a] = pair();
  const tx = await openDgramDatapath({ host: LO, port: 0, logger });
  const rx = await openDgramDatapath({ host: LO, port: 0, logger });
  assert.ok(tx.ok && rx.ok);
  try {
    assert.equal(tx.value.tunnelKeys ?? null, null);
    const port = rx.value.localAddress.port;
    const batch = new PacketBatch(2, 3000);
    batch.keys = new Uint32Array(2);
    addFrame(batch, a, text('unsealed'), port, A_INDEX);
    addFrame(batch, a, text('sealed'), port, 0);
    const got = collect(rx.value, 1);
    assert.equal(tx.value.sendBatch(batch), 1);
    const [f] = await got;
    assert.equal(f!.status, RECV_NOT_OPENED);
    assert.equal(f!.data.length, 'sealed'.length + NOISE_DATA_OVERHEAD_BYTES);
    assert.equal(tx.value.stats().txDropped, 1);
  } finally {
    await tx.value.close();
    await rx.value.close();
  }
});
