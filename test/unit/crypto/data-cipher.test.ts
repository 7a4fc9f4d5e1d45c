// The data cipher agreement (src/crypto/data-cipher.ts) and AES-256-GCM Noise sessions: both new peers with AES
// agree on it, either side without it (or an older peer, which sends no offer) gets ChaCha20-Poly1305, a choice
// that was not offered is refused, and AES sessions seal/open like ChaCha ones (replay, forgery, out buffers) —
// byte for byte the same frames whether node:crypto or the native addon does the AES.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/index.js';
import { generateIdentity } from '../../../src/crypto/identity.js';
import { createInitiator, MAX_INITIATION_EARLY_DATA_BYTES, MAX_RESPONSE_EARLY_DATA_BYTES, respond, type RandomSource } from '../../../src/crypto/noise-ik.js';
import {
  acceptChoice,
  chooseCipher,
  decodeEarlyRecords,
  encodeEarlyRecords,
  offerFor,
  type DataCipher,
  type DataCipherSupport,
} from '../../../src/crypto/data-cipher.js';
import { createJsAead } from '../../../src/datapath/aead.js';
import type { AeadBatch } from '../../../src/datapath/types.js';
import { createNativeAead } from '../../../src/datapath/native.js';
import { MAX_UDP_PAYLOAD_BYTES } from '../../../src/wire/noise-frame.js';

const seed = seedFromEnv();
test.after(() => console.log(`# data-cipher seed PILOT_SEED=${seed}`));
const rng = new Rng(seed);
const random: RandomSource = (buf) => rng.fill(buf);
const enc = new TextEncoder();

const JS_AES: DataCipherSupport = { ciphers: ['aes-256-gcm'], create: (c, key) => (c === 'aes-256-gcm' ? createJsAead('aes-256-gcm', key) : null) };

function handshake(opts: { a?: DataCipherSupport; b?: DataCipherSupport; earlyA?: Uint8Array; earlyB?: Uint8Array } = {}) {
  const a = generateIdentity();
  const b = generateIdentity();
  const init = createInitiator({
    local: a,
    localNodeId: 1,
    localIndex: 0x1111,
    remoteStatic: b.publicKey,
    remoteNodeId: 2,
    timestampS: 1000,
    now: 0,
    random,
    ...(opts.earlyA ? { earlyData: opts.earlyA } : {}),
    ...(opts.a ? { dataCiphers: opts.a } : {}),
  });
  assert.ok(init.ok, init.ok ? '' : init.error.message);
  const resp = respond(init.value.message, {
    local: b,
    localNodeId: 2,
    localIndex: 0x2222,
    now: 0,
    random,
    ...(opts.earlyB ? { earlyData: opts.earlyB } : {}),
    ...(opts.b ? { dataCiphers: opts.b } : {}),
  });
  assert.ok(resp.ok, resp.ok ? '' : resp.error.message);
  const done = init.value.state.handleResponse(resp.value.message, 10);
  assert.ok(done.ok, done.ok ? '' : done.error.message);
  return { init: init.value, resp: resp.value, done: done.value, si: done.value.session, sr: resp.value.session };
}

function exchange(si: ReturnType<typeof handshake>['si'], sr: ReturnType<typeof handshake>['sr']): void {
  for (let i = 0; i < 4; i++) {
    const msg = enc.encode(`ping ${i} `.repeat(i * 40 + 1));
    const f = si.seal(msg, 100);
    assert.ok(f.ok);
    const o = sr.open(f.value, 100);
    assert.ok(o.ok, `frame ${i} opens`);
    assert.deepEqual(o.value, msg);
    const back = sr.seal(enc.encode(`pong ${i}`), 100);
    assert.ok(back.ok);
    const g = si.open(back.value, 100);
    assert.ok(g.ok);
    assert.equal(new TextDecoder().decode(g.value), `pong ${i}`);
  }
}

test('early records: round trip, unknown types skipped, total on random bytes', () => {
  const app = enc.encode('app bytes');
  const area = encodeEarlyRecords(['aes-256-gcm', 'chacha20-poly1305'], app);
  assert.deepEqual(decodeEarlyRecords(area), { ciphers: ['aes-256-gcm', 'chacha20-poly1305'], appData: app });
  assert.deepEqual(decodeEarlyRecords(encodeEarlyRecords(null, new Uint8Array(0))), { ciphers: null, appData: new Uint8Array(0) });
  assert.equal(encodeEarlyRecords(null, new Uint8Array(0)).length, 0, 'no offer and no app data: the bytes an older peer sends');
  // An unknown record type before ours, unknown cipher ids and repeats are skipped.
  const odd = Uint8Array.of(9, 2, 0, 0xaa, 0xbb, 1, 4, 0, 7, 2, 2, 1);
  assert.deepEqual(decodeEarlyRecords(odd).ciphers, ['aes-256-gcm', 'chacha20-poly1305']);
  // A truncated record ends the list.
  assert.deepEqual(decodeEarlyRecords(Uint8Array.of(1, 5, 0, 2)).ciphers, null);
  for (let i = 0; i < 2000; i++) {
    const junk = new Uint8Array(rng.int(41));
    rng.fill(junk);
    const r = decodeEarlyRecords(junk);
    assert.ok(r.ciphers === null || r.ciphers.every((c) => c === 'aes-256-gcm' || c === 'chacha20-poly1305'));
    assert.ok(r.appData.length <= junk.length);
  }
});

test('cipher choice: offer, pick, and a refused choice (one not offered, or not exactly one)', () => {
  assert.equal(offerFor(undefined), null);
  assert.equal(offerFor({ ciphers: [], create: () => null }), null);
  assert.deepEqual(offerFor(JS_AES), ['aes-256-gcm', 'chacha20-poly1305']);
  assert.equal(chooseCipher(null, JS_AES), 'chacha20-poly1305', 'no offer (older initiator): ChaCha');
  assert.equal(chooseCipher(['aes-256-gcm', 'chacha20-poly1305'], JS_AES), 'aes-256-gcm');
  assert.equal(chooseCipher(['aes-256-gcm', 'chacha20-poly1305'], undefined), 'chacha20-poly1305');
  assert.equal(chooseCipher(['chacha20-poly1305'], JS_AES), 'chacha20-poly1305');
  const offer: DataCipher[] = ['aes-256-gcm', 'chacha20-poly1305'];
  assert.deepEqual(acceptChoice(offer, null), { ok: true, value: 'chacha20-poly1305' });
  assert.deepEqual(acceptChoice(offer, ['aes-256-gcm']), { ok: true, value: 'aes-256-gcm' });
  assert.deepEqual(acceptChoice(null, ['chacha20-poly1305']), { ok: true, value: 'chacha20-poly1305' });
  const notOffered = acceptChoice(null, ['aes-256-gcm']);
  assert.ok(!notOffered.ok && /not offered/.test(notOffered.error.message));
  assert.ok(!acceptChoice(offer, ['aes-256-gcm', 'chacha20-poly1305']).ok, 'two choices');
  assert.ok(!acceptChoice(offer, []).ok, 'no choice in a present record');
});

test('handshake: both with AES → AES-256-GCM sessions that carry data both ways', () => {
  const { si, sr } = handshake({ a: JS_AES, b: JS_AES });
  assert.equal(si.cipher, 'aes-256-gcm');
  assert.equal(sr.cipher, 'aes-256-gcm');
  exchange(si, sr);
});

test('handshake: either side without AES (or an older initiator that offers nothing) → ChaCha20-Poly1305', () => {
  const onlyA = handshake({ a: JS_AES });
  assert.equal(onlyA.si.cipher, 'chacha20-poly1305');
  assert.equal(onlyA.sr.cipher, 'chacha20-poly1305');
  exchange(onlyA.si, onlyA.sr);
  const onlyB = handshake({ b: JS_AES });
  assert.equal(onlyB.si.cipher, 'chacha20-poly1305');
  assert.equal(onlyB.sr.cipher, 'chacha20-poly1305');
  exchange(onlyB.si, onlyB.sr);
  // Neither offers: the frames are the size they always were (no records at all).
  const none = handshake({ b: JS_AES });
  const plain = handshake();
  assert.equal(none.init.message.length, plain.init.message.length);
  assert.equal(none.resp.message.length, plain.resp.message.length, 'no offer → no choice record in msg2');
  const offered = handshake({ a: JS_AES, b: JS_AES });
  assert.equal(offered.init.message.length, plain.init.message.length + 5, 'offer record: 3 + 2 bytes');
  assert.equal(offered.resp.message.length, plain.resp.message.length + 4, 'choice record: 3 + 1 bytes');
});

test('handshake: application early data travels beside the offer, up to its limits within one UDP payload', () => {
  const { resp, done, init } = handshake({
    a: JS_AES,
    b: JS_AES,
    earlyA: new Uint8Array(MAX_INITIATION_EARLY_DATA_BYTES).fill(7),
    earlyB: new Uint8Array(MAX_RESPONSE_EARLY_DATA_BYTES).fill(8),
  });
  assert.equal(resp.earlyData.length, MAX_INITIATION_EARLY_DATA_BYTES);
  assert.ok(resp.earlyData.every((x) => x === 7));
  assert.equal(done.earlyData.length, MAX_RESPONSE_EARLY_DATA_BYTES);
  assert.ok(done.earlyData.every((x) => x === 8));
  assert.equal(init.message.length, MAX_UDP_PAYLOAD_BYTES, 'msg1 fills one UDP payload exactly');
  assert.equal(resp.message.length, MAX_UDP_PAYLOAD_BYTES, 'msg2 fills one UDP payload exactly');
  assert.equal(done.session.cipher, 'aes-256-gcm');
});

test('AES AEADs are made on first use only; a support that cannot make one refuses frames, never sends them in clear', () => {
  let made = 0;
  const counting: DataCipherSupport = { ciphers: ['aes-256-gcm'], create: (c, key) => (made++, createJsAead(c, key)) };
  const { si, sr } = handshake({ a: counting, b: counting });
  assert.equal(made, 0, 'no AEAD per idle session (a datapath key table does the work on the direct path)');
  exchange(si, sr);
  assert.equal(made, 4, 'one per direction per side, on first use');
  const broken: DataCipherSupport = { ciphers: ['aes-256-gcm'], create: () => null };
  const h = handshake({ a: broken, b: JS_AES });
  assert.equal(h.si.cipher, 'aes-256-gcm');
  const f = h.si.seal(enc.encode('secret'), 100);
  assert.ok(!f.ok, 'no AEAD: the frame is refused');
  assert.equal(f.error.code, 'connection_failed');
  assert.equal(h.si.packetsSent, 0);
  const back = h.sr.seal(enc.encode('to a'), 100);
  assert.ok(back.ok);
  const o = h.si.open(back.value, 100);
  assert.ok(!o.ok);
  assert.equal(o.error.detail?.reason, 'auth');
});

test('AES-256-GCM session: replay, forgery, out buffers and batches behave as on ChaCha', () => {
  const { si, sr } = handshake({ a: JS_AES, b: JS_AES });
  const f = si.seal(enc.encode('once'), 100);
  assert.ok(f.ok);
  const copy = f.value.slice();
  // Opening into a separate buffer leaves the frame as it was.
  const out = new Uint8Array(64);
  const o = sr.open(f.value, 100, out);
  assert.ok(o.ok);
  assert.equal(new TextDecoder().decode(o.value), 'once');
  assert.deepEqual(f.value, copy);
  const again = sr.open(copy, 100);
  assert.ok(!again.ok);
  assert.equal(again.error.detail?.reason, 'replay');
  // A flipped ciphertext bit fails authentication and zeroes the in-place target.
  const g = si.seal(enc.encode('forge me'), 100);
  assert.ok(g.ok);
  g.value[20] ^= 1;
  const bad = sr.open(g.value, 100);
  assert.ok(!bad.ok);
  assert.equal(bad.error.detail?.reason, 'auth');
  assert.ok(g.value.subarray(16, 16 + 8).every((x) => x === 0), 'forged plaintext zeroed');
  // Batches: sealBatch/openBatch in one buffer.
  const buf = new Uint8Array(4 * 256);
  const offsets = Uint32Array.of(0, 256, 512, 768);
  const lengths = Uint32Array.of(10, 50, 100, 200);
  for (let i = 0; i < 4; i++) buf.fill(i + 1, offsets[i]! + 16, offsets[i]! + 16 + lengths[i]!);
  assert.ok(si.sealBatch(buf, offsets, lengths, 4, 100).ok);
  assert.equal(sr.openBatch(buf, offsets, lengths, 4, 100), 4);
  for (let i = 0; i < 4; i++) assert.ok(buf.subarray(offsets[i]! + 16, offsets[i]! + 16 + lengths[i]!).every((x) => x === i + 1));
  // destroy() refuses afterwards.
  si.destroy();
  assert.ok(!si.seal(enc.encode('late'), 100).ok);
});

test('AES-256-GCM frames are the same bytes whether node:crypto or the native addon seals them', async (t) => {
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const native = await createNativeAead('aes-256-gcm', key, { headerBytes: 16, aadBytes: 16, nonceOffset: 8, nonceBytes: 8 });
  if (!native.ok) {
    t.skip(`native AES-256-GCM unavailable here: ${native.error.message}`);
    return;
  }
  const js = createJsAead('aes-256-gcm', key);
  const frame = new Uint8Array(16 + 300 + 16);
  rng.fill(frame);
  frame.set([0x50, 0x4e, 0x44, 0x31], 0);
  const a = frame.slice();
  const b = frame.slice();
  const meta = Uint32Array.of(0, frame.length, 0, 0);
  assert.equal(js.seal(a, meta, 1), 1);
  assert.equal(native.value.seal(b, meta, 1), 1);
  assert.deepEqual(a, b);
  const status = new Uint8Array(1);
  assert.equal(js.open(b, meta, 1, status), 1);
  assert.deepEqual(b.subarray(16, 316), frame.subarray(16, 316));
  assert.equal(native.value.open(a, meta, 1, status), 1);
  assert.deepEqual(a.subarray(16, 316), frame.subarray(16, 316));
  native.value.destroy();
  js.destroy();
});

test('native AES-256-GCM: several keys used in turn on one thread (its one expanded-state slot) seal and open right', async (t) => {
  const layout = { headerBytes: 16, aadBytes: 16, nonceOffset: 8, nonceBytes: 8 as const };
  const keys = [1, 2, 3].map((k) => new Uint8Array(32).fill(k));
  const natives: AeadBatch[] = [];
  for (const k of keys) {
    const n = await createNativeAead('aes-256-gcm', k, layout);
    if (!n.ok) {
      t.skip(`native AES-256-GCM unavailable here: ${n.error.message}`);
      return;
    }
    natives.push(n.value);
  }
  const jss = keys.map((k) => createJsAead('aes-256-gcm', k));
  const meta = Uint32Array.of(0, 16 + 100 + 16, 0, 0);
  const status = new Uint8Array(1);
  for (const order of [[0, 1, 2, 0, 0, 2, 1], [2, 2, 0, 1, 0]]) {
    for (const i of order) {
      const frame = new Uint8Array(132);
      rng.fill(frame);
      const a = frame.slice();
      const b = frame.slice();
      assert.equal(natives[i]!.seal(a, meta, 1), 1);
      assert.equal(jss[i]!.seal(b, meta, 1), 1);
      assert.deepEqual(a, b, `key ${i}: native and node:crypto agree`);
      // Opened by the other key: forged; by its own: the plaintext again.
      assert.equal(natives[(i + 1) % 3]!.open(a.slice(), meta, 1, status), 0);
      assert.equal(natives[i]!.open(a, meta, 1, status), 1);
      assert.deepEqual(a.subarray(16, 116), frame.subarray(16, 116));
    }
  }
  // A destroyed key's slot is cleared; the others still work.
  natives[0]!.destroy();
  const f = new Uint8Array(132);
  assert.equal(natives[0]!.seal(f, meta, 1), -1, 'destroyed: refused');
  const g = f.slice();
  assert.equal(natives[1]!.seal(f, meta, 1), 1);
  assert.equal(jss[1]!.seal(g, meta, 1), 1);
  assert.deepEqual(f, g);
  for (const n of natives.slice(1)) n.destroy();
  for (const j of jss) j.destroy();
});
