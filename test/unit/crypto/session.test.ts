import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/index.js';
import { MAX_NOISE_PLAINTEXT_BYTES, MAX_NOISE_FRAME_PLAINTEXT_BYTES, NOISE_DATA_HEADER_BYTES, decodeNoiseData, noiseFrameKind } from '../../../src/wire/noise-frame.js';
import { BATCH_OPEN_FAILED, NoiseSession, type SessionLimits } from '../../../src/crypto/session.js';
import type { TunnelSession } from '../../../src/crypto/tunnel-session.js';

const seed = seedFromEnv();
test.after(() => console.log(`# session seed PILOT_SEED=${seed}`));
const rng = new Rng(seed);

function keys(): [Uint8Array, Uint8Array] {
  const a = new Uint8Array(32);
  const b = new Uint8Array(32);
  rng.fill(a);
  rng.fill(b);
  return [a, b];
}

/** Two ends of one session without a handshake (the handshake has its own tests). */
function sessions(limits?: Partial<SessionLimits>, createdAtUs = 0): [NoiseSession, NoiseSession] {
  const [k1, k2] = keys();
  const common = { createdAtUs, remoteEd25519PublicKey: new Uint8Array(32), handshakeHash: new Uint8Array(64), limits };
  const a = new NoiseSession({ ...common, sendKey: k1.slice(), recvKey: k2.slice(), localIndex: 1, remoteIndex: 2, isInitiator: true, remoteNodeId: 20 });
  const b = new NoiseSession({ ...common, sendKey: k2.slice(), recvKey: k1.slice(), localIndex: 2, remoteIndex: 1, isInitiator: false, remoteNodeId: 10 });
  return [a, b];
}

const bytes = (n: number, fill = 0): Uint8Array => {
  const b = new Uint8Array(n);
  if (fill >= 0) rng.fill(b);
  return b;
};

test('NoiseSession implements TunnelSession; frames are PND1 with header as AAD', () => {
  const [a, b] = sessions();
  const ts: TunnelSession = a;
  assert.equal(ts.suite, 'noise');
  assert.equal(ts.overheadBytes, 32);
  assert.equal(ts.maxPlaintextBytes, 1420);
  const msg = bytes(100);
  const f = a.seal(msg, 0);
  assert.ok(f.ok);
  assert.equal(f.value.length, 132);
  assert.equal(noiseFrameKind(f.value), 'data');
  const d = decodeNoiseData(f.value);
  assert.ok(d.ok);
  assert.equal(d.value.receiverIndex, 2);
  assert.equal(d.value.counter, 0);
  // Changing the counter or index in the header breaks authentication (it is the AEAD's associated data).
  const t = f.value.slice();
  t[8]! ^= 1;
  assert.equal(b.open(t, 0).ok, false);
  const o = b.open(f.value.slice(), 0);
  assert.ok(o.ok);
  assert.deepEqual(o.value, msg);
});

test('seal into a caller buffer, open into a caller buffer or in place; empty and max-size plaintexts', () => {
  const [a, b] = sessions();
  const out = new Uint8Array(2000);
  const plain = new Uint8Array(2000);
  for (const n of [0, 1, 1200, MAX_NOISE_PLAINTEXT_BYTES]) {
    const msg = bytes(n);
    const f = a.seal(msg, 0, out);
    assert.ok(f.ok);
    assert.equal(f.value.buffer, out.buffer);
    assert.equal(f.value.length, n + 32);
    const o = b.open(f.value, 0, plain);
    assert.ok(o.ok);
    assert.equal(o.value.buffer, plain.buffer);
    assert.deepEqual(o.value, msg);
  }
  const f = a.seal(bytes(10), 0);
  assert.ok(f.ok);
  const inPlace = b.open(f.value, 0);
  assert.ok(inPlace.ok);
  assert.equal(inPlace.value.buffer, f.value.buffer);
  assert.equal(inPlace.value.byteOffset, f.value.byteOffset + NOISE_DATA_HEADER_BYTES);
  // Larger than the base (1420) is sealed for a discovered path MTU; beyond the 65,000-byte ceiling, refused.
  assert.ok(a.seal(new Uint8Array(MAX_NOISE_PLAINTEXT_BYTES + 1), 0).ok);
  const tooBig = a.seal(new Uint8Array(MAX_NOISE_FRAME_PLAINTEXT_BYTES + 1), 0);
  assert.equal(tooBig.ok, false);
  if (!tooBig.ok) assert.equal(tooBig.error.detail?.reason, 'too_large');
  const noRoom = a.seal(bytes(100), 0, new Uint8Array(131));
  assert.equal(noRoom.ok, false);
});

test('a failed open into `out` leaves the frame untouched; wrong index, replay and forgery are distinct reasons', () => {
  const [a, b] = sessions();
  const f = a.seal(bytes(64), 0);
  assert.ok(f.ok);
  const forged = f.value.slice();
  forged[40]! ^= 0xff;
  const before = forged.slice();
  const r = b.open(forged, 0, new Uint8Array(100));
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.error.detail?.reason, 'auth');
  assert.deepEqual(forged, before);
  const wrongIndex = f.value.slice();
  wrongIndex[4] = 9;
  const wi = b.open(wrongIndex, 0);
  assert.equal(!wi.ok && wi.error.detail?.reason, 'wrong_index');
  assert.ok(b.open(f.value.slice(), 0).ok);
  const rep = b.open(f.value.slice(), 0);
  assert.equal(!rep.ok && rep.error.detail?.reason, 'replay');
  const mal = b.open(new Uint8Array(10), 0);
  assert.equal(!mal.ok && mal.error.detail?.reason, 'malformed');
  // A forgery does not burn its counter: the genuine packet with that counter still opens.
  const g = a.seal(bytes(8), 0);
  assert.ok(g.ok);
  const fake = g.value.slice();
  fake[fake.length - 1]! ^= 1;
  assert.equal(b.open(fake, 0).ok, false);
  assert.ok(b.open(g.value, 0).ok);
});

test('reordering within the window is accepted, duplicates and too-old frames rejected', () => {
  const [a, b] = sessions();
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 3000; i++) {
    const f = a.seal(Uint8Array.of(i & 0xff), 0);
    assert.ok(f.ok);
    frames.push(f.value);
  }
  assert.ok(b.open(frames[2999]!.slice(), 0).ok);
  assert.ok(b.open(frames[2999 - 2047]!.slice(), 0).ok, 'inside the window');
  assert.equal(b.open(frames[2999 - 2048]!.slice(), 0).ok, false, 'too old');
  assert.ok(b.open(frames[2000]!.slice(), 0).ok);
  assert.equal(b.open(frames[2000]!.slice(), 0).ok, false, 'duplicate');
  assert.equal(b.packetsReceived, 3);
});

test('counters increase and are never reused; rekey and reject limits by packets and by time', () => {
  const [a] = sessions({ rekeyAfterMessages: 4, rejectAfterMessages: 6 }, 1_000);
  const counters: number[] = [];
  for (let i = 0; i < 6; i++) {
    assert.equal(a.needsRekey(1_000), i >= 4, `needsRekey after ${i}`);
    const f = a.seal(bytes(1), 1_000);
    assert.ok(f.ok);
    const d = decodeNoiseData(f.value);
    assert.ok(d.ok);
    counters.push(d.value.counter);
  }
  assert.deepEqual(counters, [0, 1, 2, 3, 4, 5]);
  assert.equal(a.packetsSent, 6);
  const refused = a.seal(bytes(1), 1_000);
  assert.equal(refused.ok, false);
  if (!refused.ok) {
    assert.equal(refused.error.code, 'connection_failed');
    assert.equal(refused.error.detail?.reason, 'exhausted');
  }
  assert.equal(a.packetsSent, 6, 'a refused seal consumes no counter');

  const [t, u] = sessions(undefined, 5_000_000);
  assert.equal(t.needsRekey(5_000_000 + 119_999_999), false);
  assert.equal(t.needsRekey(5_000_000 + 120_000_000), true);
  const late = t.seal(bytes(1), 5_000_000 + 179_999_999);
  assert.ok(late.ok, 'still usable between rekey and reject');
  assert.ok(u.open(late.value, 5_000_000 + 179_999_999).ok);
  assert.equal(t.isExpired(5_000_000 + 180_000_000), true);
  const expired = t.seal(bytes(1), 5_000_000 + 180_000_000);
  assert.equal(!expired.ok && expired.error.detail?.reason, 'expired');
  const f = t.seal(bytes(1), 5_000_000);
  assert.ok(f.ok);
  assert.equal(u.open(f.value, 5_000_000 + 180_000_000).ok, false, 'open refuses after reject time too');
});

test('default limits: 2^20 packets to rekey, 2^60 to refuse; defaults are WireGuard timings', () => {
  const [a] = sessions();
  assert.equal(a.limits.rekeyAfterMessages, 2 ** 20);
  assert.equal(a.limits.rejectAfterMessages, 2 ** 60);
  assert.equal(a.limits.rekeyAfterTimeUs, 120_000_000);
  assert.equal(a.limits.rejectAfterTimeUs, 180_000_000);
});

test('responder becomes confirmed on its first authentic packet; destroy wipes and refuses', () => {
  const [a, b] = sessions();
  assert.equal(b.isConfirmed, false);
  const junk = new Uint8Array(64);
  junk.set([0x50, 0x4e, 0x44, 0x31, 2, 0, 0, 0]);
  assert.equal(b.open(junk, 0).ok, false);
  assert.equal(b.isConfirmed, false);
  const f = a.seal(bytes(3), 0);
  assert.ok(f.ok);
  assert.ok(b.open(f.value, 0).ok);
  assert.equal(b.isConfirmed, true);
  a.destroy();
  assert.equal(a.seal(bytes(3), 0).ok, false);
});

test('sealBatch/openBatch of 64 × 1200 B in one buffer, in place; failures marked per packet', () => {
  const [a, b] = sessions();
  const count = 64;
  const slot = 1200 + 32;
  const buf = new Uint8Array(count * slot);
  const offsets = new Uint32Array(count);
  const lengths = new Uint32Array(count);
  const originals: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    offsets[i] = i * slot;
    const n = i === 5 ? 0 : 1200 - (i % 3);
    lengths[i] = n;
    const p = bytes(n);
    originals.push(p);
    buf.set(p, offsets[i]! + 16);
  }
  const sealed = a.sealBatch(buf, offsets, lengths, count, 0);
  assert.ok(sealed.ok);
  assert.equal(sealed.value, count);
  for (let i = 0; i < count; i++) assert.equal(lengths[i], originals[i]!.length + 32);
  // Each batch frame is an ordinary frame too.
  const single = b.open(buf.slice(offsets[63]!, offsets[63]! + lengths[63]!), 0);
  assert.ok(single.ok);
  assert.deepEqual(single.value, originals[63]);

  buf[offsets[7]! + 20]! ^= 1; // forge packet 7
  const opened = b.openBatch(buf, offsets, lengths, count, 0);
  assert.equal(opened, count - 2, 'forged 7 and already-seen 63 fail');
  for (let i = 0; i < count; i++) {
    if (i === 7 || i === 63) {
      assert.equal(lengths[i], BATCH_OPEN_FAILED);
      continue;
    }
    assert.equal(lengths[i], originals[i]!.length);
    assert.deepEqual(buf.subarray(offsets[i]! + 16, offsets[i]! + 16 + lengths[i]!), originals[i]);
  }
});

test('sealBatch is all-or-nothing on bounds and limits', () => {
  const [a] = sessions({ rejectAfterMessages: 10 });
  const buf = new Uint8Array(4 * 100);
  const offsets = Uint32Array.of(0, 100, 200, 300);
  const lengths = Uint32Array.of(10, 10, 10, 80); // the last does not fit
  const r = a.sealBatch(buf, offsets, lengths, 4, 0);
  assert.equal(r.ok, false);
  assert.equal(a.packetsSent, 0);
  lengths[3] = 10;
  assert.ok(a.sealBatch(buf, offsets, lengths, 4, 0).ok);
  lengths.set([10, 10, 10, 10]);
  assert.ok(a.sealBatch(buf, offsets, lengths, 4, 0).ok);
  lengths.set([10, 10, 10, 10]);
  const over = a.sealBatch(buf, offsets, lengths, 4, 0);
  assert.equal(!over.ok && over.error.detail?.reason, 'exhausted');
  assert.equal(a.packetsSent, 8);
});

test('sealInPlace writes header and tag around a plaintext already in the buffer', () => {
  const [a, b] = sessions();
  const buf = new Uint8Array(300);
  const msg = bytes(200);
  buf.set(msg, 50 + 16);
  const r = a.sealInPlace(buf, 50, 200, 0);
  assert.ok(r.ok); // the frame is 200 + 32 bytes
  const o = b.open(buf.subarray(50, 50 + 232), 0);
  assert.ok(o.ok);
  assert.deepEqual(o.value, msg);
  assert.equal(a.sealInPlace(buf, 100, 200, 0).ok, false, 'does not fit');
});

test('prepareInPlace + the datapath\'s batch AEAD give the frames sealInPlace gives; acceptOpened keeps replay, index and expiry', async () => {
  const { createJsAead, NOISE_DATA_LAYOUT } = await import('../../../src/datapath/index.js');
  const [a, b] = sessions({ rejectAfterTimeUs: 1000 });
  const plain = bytes(100);
  const buf = new Uint8Array(2 * 200);
  buf.set(plain, NOISE_DATA_HEADER_BYTES);
  const prepared = a.prepareInPlace(buf, 0, plain.length, 0);
  assert.ok(prepared.ok);
  const frameLength = plain.length + 32;
  assert.equal(a.packetsSent, 1);
  // The datapath seals with the session's send key (keys cross once: exportKeys).
  const aead = createJsAead('chacha20-poly1305', a.exportKeys().sendKey, NOISE_DATA_LAYOUT);
  const meta = new Uint32Array([0, frameLength, 0, 0]);
  assert.equal(aead.seal(buf, meta, 1), 1);
  const frame = buf.slice(0, frameLength);
  // Byte-identical to what the session would seal itself for that counter: b opens it in JS.
  const opened = b.open(frame.slice(), 0);
  assert.ok(opened.ok);
  assert.deepEqual(opened.value, plain);
  // A frame the datapath opened in place (the receive key table): acceptOpened checks what the AEAD does not.
  const [c, d] = sessions({ rejectAfterTimeUs: 1000 });
  const sealed = c.seal(plain, 0);
  assert.ok(sealed.ok);
  const rxAead = createJsAead('chacha20-poly1305', d.exportKeys().recvKey, NOISE_DATA_LAYOUT);
  const inPlace = sealed.value.slice();
  const status = new Uint8Array(1);
  assert.equal(rxAead.open(inPlace, new Uint32Array([0, inPlace.length, 0, 0]), 1, status), 1);
  const accepted = d.acceptOpened(inPlace, 0);
  assert.ok(accepted.ok);
  assert.deepEqual(accepted.value, plain);
  assert.ok(d.isConfirmed);
  const replayed = d.acceptOpened(inPlace, 0);
  assert.equal(!replayed.ok && replayed.error.detail?.reason, 'replay');
  const wrong = c.acceptOpened(inPlace, 0); // c's index is not the receiver's
  assert.equal(!wrong.ok && wrong.error.detail?.reason, 'wrong_index');
  const second = c.seal(plain, 0);
  assert.ok(second.ok);
  const expired = d.acceptOpened(second.value.slice(), 1000);
  assert.equal(!expired.ok && expired.error.detail?.reason, 'expired');
  assert.equal(!d.acceptOpened(new Uint8Array(10), 0).ok, true, 'short bytes are malformed, not a throw');
  assert.equal(d.packetsReceived, 1);
});
