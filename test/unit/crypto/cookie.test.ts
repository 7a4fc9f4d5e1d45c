// src/crypto/cookie.ts: WireGuard-style mac1/mac2 and cookie replies in front of respond() (issue 10, "Noise
// initiation flood: respond() runs two X25519 and an AEAD before the replay check, with no rate limit or cookie").
import test from 'node:test';
import assert from 'node:assert/strict';
import sodium from 'sodium-native';
import { generateIdentity, identityX25519 } from '../../../src/crypto/identity.js';
import { createInitiator, respond } from '../../../src/crypto/noise-ik.js';
import { COOKIE_SECRET_LIFETIME_US, HandshakeGuard, type InitiationSource } from '../../../src/crypto/cookie.js';
import { noiseFrameKind, NOISE_COOKIE_REPLY_BYTES } from '../../../src/wire/noise-frame.js';

const enc = new TextEncoder();
const src = (text: string): InitiationSource => ({ cookieBytes: enc.encode(text), rateKey: text });
let counter = 0;
const seeded = (buf: Uint8Array) => {
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 31 + counter++) & 0xff;
};

function setup(opts: { underLoadPerS?: number; perSourcePerS?: number } = {}) {
  const a = generateIdentity();
  const b = generateIdentity();
  const guard = new HandshakeGuard({ staticX25519: identityX25519(b).publicKey, random: seeded, ...opts });
  let ts = 1000;
  const initiate = (cookie: Uint8Array | null = null, local = a) => {
    const r = createInitiator({ local, localNodeId: 1, localIndex: 42, remoteStatic: b.publicKey, timestampS: ts++, now: 0, cookie });
    assert.ok(r.ok);
    return r.value;
  };
  return { a, b, guard, initiate };
}

test('mac1: an initiation not made for our static key is dropped before any DH; respond() refuses it too', () => {
  const { b, guard } = setup();
  const other = generateIdentity();
  const wrong = createInitiator({ local: generateIdentity(), localNodeId: 1, localIndex: 1, remoteStatic: other.publicKey, timestampS: 1, now: 0 });
  assert.ok(wrong.ok);
  assert.deepEqual(guard.check(wrong.value.message, src('1.2.3.4:5'), 0), { kind: 'drop', reason: 'mac1' });
  const r = respond(wrong.value.message, { local: b, localNodeId: 2, localIndex: 2, now: 0 });
  assert.equal(!r.ok && r.error.detail?.reason, 'mac1');
  assert.deepEqual(guard.check(new Uint8Array(20), src('x'), 0), { kind: 'drop', reason: 'malformed' });
});

test('under load: no mac2 → cookie reply (no DH); the initiator opens it and its next initiation is processed', () => {
  const { b, guard, initiate } = setup({ underLoadPerS: 10 });
  const now = 5_000_000;
  for (let i = 0; i < 10; i++) assert.equal(guard.check(initiate().message, src('9.9.9.9:1'), now).kind, 'process');
  assert.equal(guard.isUnderLoad(now), false);
  // The 11th in the same second tips it over: cookies from now on, for a replayed or a fresh initiation alike.
  const first = initiate();
  const v = guard.check(first.message, src('10.0.0.1:4000'), now);
  assert.equal(v.kind, 'cookie');
  assert.ok(guard.isUnderLoad(now));
  const reply = v.kind === 'cookie' ? v.reply : new Uint8Array(0);
  assert.equal(reply.length, NOISE_COOKIE_REPLY_BYTES);
  assert.equal(noiseFrameKind(reply), 'cookie');
  const cookie = first.state.handleCookieReply(reply);
  assert.ok(cookie.ok);
  const second = initiate(cookie.value);
  assert.deepEqual(guard.check(second.message, src('10.0.0.1:4000'), now + 1000), { kind: 'process' });
  assert.ok(respond(second.message, { local: b, localNodeId: 2, localIndex: 2, now }).ok, 'mac2 does not disturb respond()');
  // The cookie is bound to the source: from elsewhere it is worth nothing (another cookie reply).
  assert.equal(guard.check(initiate(cookie.value).message, src('10.0.0.2:4000'), now + 2000).kind, 'cookie');
  // Still under load one second later while the flood goes on; the load ends when it does.
  for (let i = 0; i < 20; i++) guard.check(initiate().message, src('6.6.6.6:6'), now + 900_000);
  assert.ok(guard.isUnderLoad(now + 1_500_000));
  assert.equal(guard.isUnderLoad(now + 3_000_000), false);
});

test('a cookie reply only opens for the initiation it answers, and not when tampered with', () => {
  const { guard, initiate } = setup({ underLoadPerS: 0 });
  const one = initiate();
  const two = initiate();
  const v = guard.check(one.message, src('10.0.0.1:1'), 0);
  assert.equal(v.kind, 'cookie');
  const reply = v.kind === 'cookie' ? v.reply : new Uint8Array(0);
  assert.equal(two.state.handleCookieReply(reply).ok, false, 'another initiation (index and mac1 differ)');
  for (let i = 8; i < reply.length; i++) {
    const t = reply.slice();
    t[i]! ^= 1;
    assert.equal(one.state.handleCookieReply(t).ok, false, `byte ${i}`);
  }
  assert.ok(one.state.handleCookieReply(reply).ok);
});

test('under load, valid mac2 is still rate-limited per source; cookie replies too', () => {
  const { guard, initiate } = setup({ underLoadPerS: 0, perSourcePerS: 5 });
  const first = initiate();
  const v = guard.check(first.message, src('10.0.0.1:1'), 0);
  assert.equal(v.kind, 'cookie');
  const cookie = first.state.handleCookieReply(v.kind === 'cookie' ? v.reply : new Uint8Array(0));
  assert.ok(cookie.ok);
  const verdicts = Array.from({ length: 8 }, () => guard.check(initiate(cookie.value).message, src('10.0.0.1:1'), 1000).kind);
  assert.deepEqual(verdicts, ['process', 'process', 'process', 'process', 'process', 'drop', 'drop', 'drop']);
  assert.equal(guard.check(initiate(cookie.value).message, src('10.0.0.1:1'), 1_000_000).kind, 'process', 'refilled after a second');
  // Another source has its own budget.
  const repliesToFlooder = Array.from({ length: 40 }, () => guard.check(initiate().message, src('6.6.6.6:6'), 2000).kind);
  assert.equal(repliesToFlooder.filter((k) => k === 'cookie').length, 20, 'cookie replies to one source are capped (20/s)');
});

test('the cookie secret rotates: a cookie survives one rotation, not two', () => {
  const { guard, initiate } = setup({ underLoadPerS: 0, perSourcePerS: 1000 });
  const first = initiate();
  const v = guard.check(first.message, src('10.0.0.1:1'), 0);
  const cookie = first.state.handleCookieReply(v.kind === 'cookie' ? v.reply : new Uint8Array(0));
  assert.ok(cookie.ok);
  assert.equal(guard.check(initiate(cookie.value).message, src('10.0.0.1:1'), COOKIE_SECRET_LIFETIME_US + 1).kind, 'process');
  assert.equal(guard.check(initiate(cookie.value).message, src('10.0.0.1:1'), 2 * COOKIE_SECRET_LIFETIME_US + 2).kind, 'cookie');
});

test('a flood of replayed initiations under load costs no Diffie-Hellman: far cheaper than respond()', () => {
  const { b, guard, initiate } = setup({ underLoadPerS: 0 });
  const replay = initiate().message;
  const n = 2000;
  // Count X25519 operations instead of timing them (no wall-clock comparison in unit tests): noise-ik.ts calls
  // sodium.crypto_scalarmult through the module object, so a counting wrapper sees every DH.
  const lib = sodium as unknown as { crypto_scalarmult: (q: Uint8Array, n: Uint8Array, p: Uint8Array) => void };
  const real = lib.crypto_scalarmult;
  let dh = 0;
  lib.crypto_scalarmult = (q, k, p) => {
    dh++;
    real(q, k, p);
  };
  try {
    const kinds = new Set<string>();
    let t0 = performance.now();
    for (let i = 0; i < n; i++) kinds.add(guard.check(replay, src(`10.0.${i & 255}.1:1`), i).kind);
    const guardUs = ((performance.now() - t0) * 1000) / n;
    const guardDh = dh;
    t0 = performance.now();
    for (let i = 0; i < 200; i++) respond(replay, { local: b, localNodeId: 2, localIndex: 2, now: 0 });
    const respondUs = ((performance.now() - t0) * 1000) / 200;
    const respondDh = dh - guardDh;
    console.log(
      `# per initiation: guard ${guardUs.toFixed(1)} µs (cookie reply, ${guardDh / n} DH), respond() ${respondUs.toFixed(1)} µs ` +
        `(${respondDh / 200} DH)`,
    );
    assert.deepEqual([...kinds], ['cookie'], 'under load every replayed initiation gets a cookie reply, none reaches respond()');
    assert.equal(guardDh, 0, 'the guard ran no X25519');
    assert.ok(respondDh >= 2 * 200, `respond() runs X25519 for every initiation (${respondDh} for 200)`);
  } finally {
    lib.crypto_scalarmult = real;
  }
});
