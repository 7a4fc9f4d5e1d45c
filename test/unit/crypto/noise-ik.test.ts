import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/index.js';
import { fromHex, toHex } from '../../../src/wire/bytes.js';
import { decodeNoiseInitiation, decodeNoiseResponse, encodeNoiseInitiation, MAX_UDP_PAYLOAD_BYTES, noiseFrameKind } from '../../../src/wire/noise-frame.js';
import { openCounter, sealCounter } from '../../../src/crypto/aead.js';
import { mac1KeyFor, writeInitiationMacs } from '../../../src/crypto/cookie.js';
import { generateIdentity, identityFromSeed, identityX25519, type Identity } from '../../../src/crypto/identity.js';
import {
  createInitiationReplayGuard,
  createInitiator,
  MAX_INITIATION_EARLY_DATA_BYTES,
  MAX_RESPONSE_EARLY_DATA_BYTES,
  NOISE_PROTOCOL_NAME,
  PILOT_NOISE_PROLOGUE,
  readIkMessage1,
  readIkMessage2,
  respond,
  SymmetricState,
  writeIkMessage1,
  writeIkMessage2,
  x25519FromSecret,
  type RandomSource,
} from '../../../src/crypto/noise-ik.js';

const seed = seedFromEnv();
test.after(() => console.log(`# noise-ik seed PILOT_SEED=${seed}`));
const rng = new Rng(seed);
const seededRandom: RandomSource = (buf) => rng.fill(buf);

const hex = (s: string) => {
  const b = fromHex(s);
  if (b === null) throw new Error('bad hex');
  return b;
};
const enc = new TextEncoder();

// Vector for Noise_IK_25519_ChaChaPoly_BLAKE2b from rweather/noise-c tests/vector/noise-c-basic.txt.
test('Noise IK core matches the noise-c test vector', () => {
  const prologue = hex('50726f6c6f677565313233');
  const initStatic = x25519FromSecret(hex('e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1'));
  const initEphemeral = x25519FromSecret(hex('893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a'));
  const respStatic = x25519FromSecret(hex('4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893'));
  const respEphemeral = x25519FromSecret(hex('bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b'));
  assert.equal(toHex(respStatic.publicKey), '31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62');

  const iSym = new SymmetricState(NOISE_PROTOCOL_NAME, prologue);
  iSym.mixHash(respStatic.publicKey);
  const msg1 = writeIkMessage1(iSym, initStatic, initEphemeral, respStatic.publicKey, hex('4c756477696720766f6e204d69736573'));
  assert.ok(msg1);
  assert.equal(
    toHex(msg1),
    'ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944' +
      'ba83a447b38c83e327ad936929812f624884847b7831e95e197b2f797088efdd232fe541af156ec6d0657602902a8c3e' +
      'e64e470f4b6fcd9298ce0b56fe20f86e60d9d933ec6e103ffb09e6001d6abb64',
  );

  const rSym = new SymmetricState(NOISE_PROTOCOL_NAME, prologue);
  rSym.mixHash(respStatic.publicKey);
  const read1 = readIkMessage1(rSym, respStatic, msg1);
  assert.ok(read1);
  assert.deepEqual(read1.rs, initStatic.publicKey);
  assert.equal(toHex(read1.payload), '4c756477696720766f6e204d69736573');

  const msg2 = writeIkMessage2(rSym, respEphemeral, read1.re, read1.rs, hex('4d757272617920526f746862617264'));
  assert.ok(msg2);
  assert.equal(
    toHex(msg2),
    '95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843' + '9f069b267a06b3de3ecb1043bcb09807c6cd101f3826192a65f11ef3fe4317',
  );
  const read2 = readIkMessage2(iSym, initStatic, initEphemeral, msg2);
  assert.ok(read2);
  assert.equal(toHex(read2.payload), '4d757272617920526f746862617264');

  const hash = '00e51d2aac81a9b8ebe441d6af3e1c8efc0f030cc608332edcb42588ff6a0ce26415ddc106e95277a5e6d54132f1e5245976b89caf96d262f1fe5a7f0c55c078';
  assert.equal(toHex(iSym.h), hash);
  assert.equal(toHex(rSym.h), hash);

  const [i1, i2] = iSym.split();
  const [r1, r2] = rSym.split();
  assert.deepEqual(i1, r1);
  assert.deepEqual(i2, r2);
  assert.equal(toHex(sealCounter(i1, 0, null, hex('462e20412e20486179656b'))), 'cd54383060e7a28434cca27fb1cc524cfbabeb18181589df219d07');
  assert.equal(toHex(sealCounter(r2, 0, null, hex('4361726c204d656e676572'))), 'a856d3bf0246bfc476c655009cd1ed677b8dcc5b349ae8ef2a05f2');
  assert.equal(toHex(openCounter(r1, 0, null, hex('cd54383060e7a28434cca27fb1cc524cfbabeb18181589df219d07'))!), '462e20412e20486179656b');
});

interface Pair {
  a: Identity;
  b: Identity;
}
const pair = (): Pair => ({ a: identityFromSeed(rng32()), b: identityFromSeed(rng32()) });
function rng32(): Uint8Array {
  const s = new Uint8Array(32);
  rng.fill(s);
  return s;
}

function handshake(p: Pair, opts: { earlyA?: Uint8Array; earlyB?: Uint8Array; now?: number } = {}) {
  const now = opts.now ?? 1_000_000;
  const init = createInitiator({
    local: p.a,
    localNodeId: 11,
    localIndex: 0xa1a2a3a4,
    remoteStatic: p.b.publicKey,
    remoteNodeId: 22,
    timestampS: 1_795_533_049.25,
    earlyData: opts.earlyA,
    now,
    random: seededRandom,
  });
  assert.ok(init.ok);
  const resp = respond(init.value.message, {
    local: p.b,
    localNodeId: 22,
    localIndex: 0xb1b2b3b4,
    now,
    earlyData: opts.earlyB,
    random: seededRandom,
  });
  assert.ok(resp.ok, resp.ok ? '' : resp.error.message);
  const done = init.value.state.handleResponse(resp.value.message, now + 500);
  assert.ok(done.ok, done.ok ? '' : done.error.message);
  return { init: init.value, resp: resp.value, done: done.value };
}

test('full handshake: frames, identities, indices, and data both ways', () => {
  const p = pair();
  const { init, resp, done } = handshake(p);
  assert.equal(noiseFrameKind(init.message), 'initiation');
  assert.equal(noiseFrameKind(resp.message), 'response');
  const f1 = decodeNoiseInitiation(init.message);
  assert.ok(f1.ok);
  assert.equal(f1.value.senderIndex, 0xa1a2a3a4);
  const f2 = decodeNoiseResponse(resp.message);
  assert.ok(f2.ok);
  assert.equal(f2.value.senderIndex, 0xb1b2b3b4);
  assert.equal(f2.value.receiverIndex, 0xa1a2a3a4);

  assert.deepEqual(resp.remoteEd25519, p.a.publicKey);
  assert.equal(resp.remoteNodeId, 11);
  assert.equal(resp.timestampS, 1_795_533_049.25);
  const si = done.session;
  const sr = resp.session;
  assert.equal(si.localIndex, 0xa1a2a3a4);
  assert.equal(si.remoteIndex, 0xb1b2b3b4);
  assert.equal(sr.localIndex, 0xb1b2b3b4);
  assert.equal(sr.remoteIndex, 0xa1a2a3a4);
  assert.deepEqual(si.handshakeHash, sr.handshakeHash);
  assert.deepEqual(si.remoteEd25519PublicKey, p.b.publicKey);
  assert.equal(si.remoteNodeId, 22);
  assert.equal(si.isConfirmed, true);
  assert.equal(sr.isConfirmed, false);

  for (let i = 0; i < 5; i++) {
    const msg = enc.encode(`ping ${i}`);
    const frame = si.seal(msg, 2_000_000);
    assert.ok(frame.ok);
    const opened = sr.open(frame.value, 2_000_000);
    assert.ok(opened.ok);
    assert.deepEqual(opened.value, msg);
    const back = sr.seal(enc.encode(`pong ${i}`), 2_000_000);
    assert.ok(back.ok);
    const got = si.open(back.value, 2_000_000);
    assert.ok(got.ok);
    assert.equal(new TextDecoder().decode(got.value), `pong ${i}`);
  }
  assert.equal(sr.isConfirmed, true);
  // Directions use different keys: a frame cannot be reflected back to its sender.
  const own = si.seal(enc.encode('x'), 2_000_000);
  assert.ok(own.ok);
  assert.equal(si.open(own.value, 2_000_000).ok, false);
});

test('early data both ways, up to the size that fits one UDP payload', () => {
  const p = pair();
  const { init, resp, done } = handshake(p, { earlyA: enc.encode('hello from A'), earlyB: enc.encode('hello from B') });
  assert.equal(new TextDecoder().decode(resp.earlyData), 'hello from A');
  assert.equal(new TextDecoder().decode(done.earlyData), 'hello from B');
  assert.ok(init.message.length < 200 + 32, 'msg1 plus mac1 and mac2');

  const big = handshake(pair(), {
    earlyA: new Uint8Array(MAX_INITIATION_EARLY_DATA_BYTES).fill(1),
    earlyB: new Uint8Array(MAX_RESPONSE_EARLY_DATA_BYTES).fill(2),
  });
  // The limits keep room for the data-cipher records (offer 3 + 2 bytes, choice 3 + 1; test/unit/crypto/
  // data-cipher.test.ts fills the payload exactly with them); without an offer the frames are that much shorter.
  assert.equal(big.init.message.length, MAX_UDP_PAYLOAD_BYTES - 5);
  assert.equal(big.resp.message.length, MAX_UDP_PAYLOAD_BYTES - 4);
  assert.equal(big.done.earlyData.length, MAX_RESPONSE_EARLY_DATA_BYTES);

  const tooBig = createInitiator({
    local: p.a,
    localNodeId: 1,
    localIndex: 1,
    remoteStatic: p.b.publicKey,
    timestampS: 1,
    earlyData: new Uint8Array(MAX_INITIATION_EARLY_DATA_BYTES + 1),
    now: 0,
  });
  assert.equal(tooBig.ok, false);
});

test('initiating to the wrong responder key fails at the responder as a Result', () => {
  const p = pair();
  const other = generateIdentity();
  const init = createInitiator({ local: p.a, localNodeId: 1, localIndex: 1, remoteStatic: other.publicKey, timestampS: 5, now: 0 });
  assert.ok(init.ok);
  const r = respond(init.value.message, { local: p.b, localNodeId: 2, localIndex: 2, now: 0 });
  assert.equal(r.ok, false);
  // mac1 is keyed by the responder's static key: the wrong key is refused before any Diffie-Hellman.
  if (!r.ok) assert.equal(r.error.detail?.reason, 'mac1');
});

test('a response from an impostor fails, and the initiation still accepts the real response', () => {
  const p = pair();
  const init = createInitiator({ local: p.a, localNodeId: 1, localIndex: 7, remoteStatic: p.b.publicKey, timestampS: 5, now: 0 });
  assert.ok(init.ok);
  // An impostor cannot read msg1 (it lacks B's key), so it answers as if it were B with its own key.
  const mallory = generateIdentity();
  const fake = respond(init.value.message, { local: mallory, localNodeId: 2, localIndex: 9, now: 0 });
  assert.equal(fake.ok, false, 'mallory cannot even decrypt msg1');
  const real = respond(init.value.message, { local: p.b, localNodeId: 2, localIndex: 9, now: 0 });
  assert.ok(real.ok);
  const tampered = real.value.message.slice();
  tampered[tampered.length - 1]! ^= 0x80;
  const bad = init.value.state.handleResponse(tampered, 10);
  assert.equal(bad.ok, false);
  if (!bad.ok) assert.equal(bad.error.detail?.reason, 'auth');
  assert.equal(init.value.state.isDone, false);
  const good = init.value.state.handleResponse(real.value.message, 10);
  assert.ok(good.ok);
  const again = init.value.state.handleResponse(real.value.message, 10);
  assert.equal(again.ok, false, 'an initiation is consumed once');
});

test('tampering with any byte of msg1 or msg2 fails as a Result', () => {
  const p = pair();
  const init = createInitiator({ local: p.a, localNodeId: 1, localIndex: 7, remoteStatic: p.b.publicKey, timestampS: 5, now: 0, earlyData: enc.encode('e') });
  assert.ok(init.ok);
  const m1 = init.value.message;
  // Every byte up to and including mac1; mac2 (the last 16) is checked by the HandshakeGuard under load only
  // (test/unit/crypto/cookie.test.ts), as in WireGuard.
  for (let i = 0; i < m1.length - 16; i++) {
    const t = m1.slice();
    t[i]! ^= 1 << (i % 8);
    const r = respond(t, { local: p.b, localNodeId: 2, localIndex: 9, now: 0 });
    assert.equal(r.ok, false, `msg1 byte ${i}`);
  }
  const r = respond(m1, { local: p.b, localNodeId: 2, localIndex: 9, now: 0 });
  assert.ok(r.ok);
  const m2 = r.value.message;
  for (let i = 0; i < m2.length; i++) {
    const t = m2.slice();
    t[i]! ^= 1 << (i % 8);
    assert.equal(init.value.state.handleResponse(t, 0).ok, false, `msg2 byte ${i}`);
  }
  assert.equal(init.value.state.handleResponse(m2.subarray(0, m2.length - 1), 0).ok, false);
  assert.ok(init.value.state.handleResponse(m2, 0).ok);
});

test('replayed msg1 is rejected by the per-initiator timestamp guard; a newer initiation is accepted', () => {
  const p = pair();
  const guard = createInitiationReplayGuard();
  const mk = (ts: number) => {
    const r = createInitiator({ local: p.a, localNodeId: 1, localIndex: 3, remoteStatic: p.b.publicKey, timestampS: ts, now: 0 });
    assert.ok(r.ok);
    return r.value.message;
  };
  const opts = { local: p.b, localNodeId: 2, localIndex: 4, now: 0, replayGuard: guard };
  const first = mk(1000.5);
  assert.ok(respond(first, opts).ok);
  const replay = respond(first, opts);
  assert.equal(replay.ok, false);
  if (!replay.ok) assert.equal(replay.error.detail?.reason, 'replay');
  assert.equal(respond(mk(1000.5), opts).ok, false, 'same timestamp is not newer');
  assert.equal(respond(mk(999), opts).ok, false, 'older timestamp');
  assert.ok(respond(mk(1000.501), opts).ok, 'a millisecond later is newer');
  // Another initiator has its own history.
  const c = generateIdentity();
  const fromC = createInitiator({ local: c, localNodeId: 5, localIndex: 3, remoteStatic: p.b.publicKey, timestampS: 10, now: 0 });
  assert.ok(fromC.ok);
  assert.ok(respond(fromC.value.message, opts).ok);
  // The callback form works too.
  const viaCallback = respond(first, { local: p.b, localNodeId: 2, localIndex: 4, now: 0, lastTimestampFor: () => 2000 });
  assert.equal(viaCallback.ok, false);
});

test('an initiator claiming an Ed25519 key that does not map to its Noise static key is refused', () => {
  const p = pair();
  const liar = generateIdentity();
  // A genuine msg1 from A's static key whose payload names C's Ed25519 key, built with the raw IK layer.
  const sA = identityX25519(p.a);
  const rs = identityX25519(p.b).publicKey;
  const payload = new Uint8Array(52);
  payload.set(liar.publicKey, 0);
  payload[36] = 3; // sender index 3, little-endian
  payload[40] = 1; // timestamp 1 s
  const sym = new SymmetricState(NOISE_PROTOCOL_NAME, PILOT_NOISE_PROLOGUE);
  sym.mixHash(rs);
  const msg1 = writeIkMessage1(sym, sA, x25519FromSecret(rng32()), rs, payload);
  assert.ok(msg1);
  const init = { value: { message: encodeNoiseInitiation(3, msg1) } };
  writeInitiationMacs(init.value.message, mac1KeyFor(rs), null);
  const r = respond(init.value.message, { local: p.b, localNodeId: 2, localIndex: 4, now: 0 });
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.error.detail?.reason, 'key_mismatch');
});

test('a garbage responder key and bad arguments are errors, not throws', () => {
  const p = pair();
  const base = { local: p.a, localNodeId: 1, localIndex: 1, timestampS: 1, now: 0 };
  assert.equal(createInitiator({ ...base, remoteStatic: new Uint8Array(31) }).ok, false);
  assert.equal(createInitiator({ ...base, remoteStatic: new Uint8Array(32).fill(0xff) }).ok, false);
  assert.equal(createInitiator({ ...base, remoteStatic: p.b.publicKey, timestampS: -1 }).ok, false);
  assert.equal(createInitiator({ ...base, remoteStatic: p.b.publicKey, timestampS: NaN }).ok, false);
  assert.equal(createInitiator({ ...base, remoteStatic: p.b.publicKey, localIndex: 2 ** 32 }).ok, false);
});

test('handshakes are fresh: the same inputs give different ephemerals and keys', () => {
  const p = pair();
  const a = handshake(p);
  const b = handshake(p);
  assert.notDeepEqual(a.init.message, b.init.message);
  assert.notDeepEqual(a.done.session.handshakeHash, b.done.session.handshakeHash);
  // A frame of one session does not open in the other.
  const f = a.done.session.seal(enc.encode('x'), 1);
  assert.ok(f.ok);
  assert.equal(b.resp.session.open(f.value, 1).ok, false);
});

test('the responder names its node id; a mismatch with the registry id is refused', () => {
  const p = pair();
  const { done } = handshake(p);
  assert.equal(done.session.remoteNodeId, 22);
  const init = createInitiator({ local: p.a, localNodeId: 1, localIndex: 1, remoteStatic: p.b.publicKey, remoteNodeId: 23, timestampS: 1, now: 0 });
  assert.ok(init.ok);
  const r = respond(init.value.message, { local: p.b, localNodeId: 22, localIndex: 2, now: 0 });
  assert.ok(r.ok);
  const res = init.value.state.handleResponse(r.value.message, 0);
  assert.equal(!res.ok && res.error.detail?.reason, 'node_mismatch');
});

test('a response after the reject-after time is refused', () => {
  const p = pair();
  const init = createInitiator({ local: p.a, localNodeId: 1, localIndex: 1, remoteStatic: p.b.publicKey, timestampS: 1, now: 0 });
  assert.ok(init.ok);
  const r = respond(init.value.message, { local: p.b, localNodeId: 2, localIndex: 2, now: 0 });
  assert.ok(r.ok);
  const late = init.value.state.handleResponse(r.value.message, 181_000_000);
  assert.equal(late.ok, false);
  if (!late.ok) assert.equal(late.error.detail?.reason, 'expired');
});

test('rekey overlap: a new handshake gives new indices and keys while the old session keeps working', () => {
  const p = pair();
  const now0 = 1_000_000;
  const old = handshake(p, { now: now0 });
  assert.equal(old.done.session.needsRekey(now0 + 120_000_000), false, "created at handleResponse time");
  assert.equal(old.done.session.needsRekey(now0 + 120_000_500), true);
  const inFlight = old.done.session.seal(enc.encode('sent before rekey'), now0 + 120_000_000);
  assert.ok(inFlight.ok);
  const init = createInitiator({ local: p.a, localNodeId: 11, localIndex: 0x0c0c0c0c, remoteStatic: p.b.publicKey, timestampS: 1_795_533_200, now: now0 + 120_000_000 });
  assert.ok(init.ok);
  const resp = respond(init.value.message, { local: p.b, localNodeId: 22, localIndex: 0x0d0d0d0d, now: now0 + 120_000_000 });
  assert.ok(resp.ok);
  const fresh = init.value.state.handleResponse(resp.value.message, now0 + 120_001_000);
  assert.ok(fresh.ok);
  const t = now0 + 121_000_000;
  // The responder keeps the previous session for receive until the new one is confirmed by a data packet.
  assert.equal(resp.value.session.isConfirmed, false);
  const viaOld = old.resp.session.open(inFlight.value, t);
  assert.ok(viaOld.ok);
  assert.equal(new TextDecoder().decode(viaOld.value), 'sent before rekey');
  const viaNew = fresh.value.session.seal(enc.encode('after'), t);
  assert.ok(viaNew.ok);
  assert.equal(old.resp.session.open(viaNew.value.slice(), t).ok, false, 'old session refuses new-index frames');
  assert.ok(resp.value.session.open(viaNew.value, t).ok);
  assert.equal(resp.value.session.isConfirmed, true);
  assert.equal(fresh.value.session.needsRekey(t), false);
});
