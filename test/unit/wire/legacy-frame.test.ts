import test from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import fc from 'fast-check';
import {
  decodeLegacyFrame,
  decodeLegacyNonce,
  decodePila,
  decodePils,
  decodePilk,
  decodePilp,
  decodePilt,
  encodeLegacyFrame,
  encodeLegacyNonce,
  encodePila,
  encodePilk,
  encodePils,
  encodePilp,
  encodePilt,
  legacyFrameKind,
  pilaSignedMessage,
  PILA_SIZE,
  PILS_HEADER_SIZE,
  type LegacyFrame,
} from '../../../src/wire/legacy-frame.js';
import { makePacket, FLAG_SYN, PACKET_HEADER_SIZE } from '../../../src/wire/header.js';
import { fcParams, legacyFrameArb } from './arbitraries.js';
import {
  ED25519_PUB_NODE1_B64,
  ED25519_PUB_NODE2_B64,
  hex,
  PILA_FROM_NODE1,
  PILA_FROM_NODE2,
  PILP_FROM_NODE1,
  PILS_76_FROM_NODE2,
  PILS_FROM_NODE1,
  PILS_FROM_NODE2,
  PILT_SYN_FROM_NODE2,
} from './vectors.js';

function ed25519Verify(pubRaw: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pubRaw).toString('base64url') },
    format: 'jwk',
  });
  return verify(null, msg, key, sig);
}

test('legacy frames: demux by magic', () => {
  assert.equal(legacyFrameKind(hex(PILP_FROM_NODE1)), 'PILP');
  assert.equal(legacyFrameKind(hex(PILA_FROM_NODE2)), 'PILA');
  assert.equal(legacyFrameKind(hex(PILT_SYN_FROM_NODE2)), 'PILT');
  assert.equal(legacyFrameKind(hex(PILS_FROM_NODE1)), 'PILS');
  assert.equal(legacyFrameKind(hex('50494c4b')), 'PILK');
  assert.equal(legacyFrameKind(hex('0100000002')), null); // beacon discover
  assert.equal(legacyFrameKind(hex('50494c')), null);
  assert.equal(legacyFrameKind(hex('504e0000')), null); // our Noise frames ('PN..') are not legacy
  assert.equal(legacyFrameKind(hex('50494c58')), null);
  assert.equal(legacyFrameKind(new Uint8Array(0)), null);
});

test('legacy frames: golden PILA from both daemons — fields, identity keys, and the "auth" signature', () => {
  for (const [frameHex, node, pubB64] of [
    [PILA_FROM_NODE2, 2, ED25519_PUB_NODE2_B64],
    [PILA_FROM_NODE1, 1, ED25519_PUB_NODE1_B64],
  ] as const) {
    const frame = hex(frameHex);
    assert.equal(frame.length, PILA_SIZE);
    const r = decodePila(frame);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const f = r.value;
    assert.equal(f.node, node);
    assert.equal(Buffer.from(f.ed25519Pub).toString('base64'), pubB64);
    const msg = pilaSignedMessage(f.node, f.x25519Pub);
    assert.ok(msg.ok);
    if (msg.ok) {
      assert.equal(Buffer.from(msg.value.subarray(0, 4)).toString(), 'auth');
      assert.ok(ed25519Verify(f.ed25519Pub, msg.value, f.signature), `node ${node} PILA signature must verify`);
    }
    const re = encodePila(f);
    assert.ok(re.ok);
    if (re.ok) assert.deepEqual(re.value, frame);
  }
});

test('legacy frames: golden PILS — node, nonce prefix ‖ u64 counter, ciphertext = 34-byte header + 16-byte tag', () => {
  const cases = [
    [PILS_FROM_NODE1, 1, 0xda23e689, 1n, 50],
    [PILS_FROM_NODE2, 2, 0x9f00336d, 1n, 50],
    [PILS_76_FROM_NODE2, 2, 0x9f00336d, 3n, 56],
  ] as const;
  for (const [frameHex, node, prefix, counter, ctLen] of cases) {
    const frame = hex(frameHex);
    const r = decodePils(frame);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.value.node, node);
    assert.equal(r.value.ciphertext.length, ctLen);
    assert.equal(r.value.ciphertext.length - 16 >= PACKET_HEADER_SIZE, true);
    const n = decodeLegacyNonce(r.value.nonce);
    assert.deepEqual(n, { ok: true, value: { prefix, counter } });
    const en = encodeLegacyNonce(prefix, counter);
    assert.ok(en.ok);
    if (en.ok) assert.deepEqual(en.value, r.value.nonce);
    const re = encodePils(r.value);
    assert.ok(re.ok);
    if (re.ok) assert.deepEqual(re.value, frame);
  }
});

test('legacy frames: golden PILP and PILT', () => {
  assert.deepEqual(decodePilp(hex(PILP_FROM_NODE1)), { ok: true, value: { kind: 'PILP' } });
  const p = encodePilp();
  assert.ok(p.ok);
  if (p.ok) assert.deepEqual(p.value, hex(PILP_FROM_NODE1));
  const t = decodePilt(hex(PILT_SYN_FROM_NODE2));
  assert.ok(t.ok, t.ok ? '' : t.error.message);
  assert.equal(t.value.packet.flags, FLAG_SYN);
  assert.equal(t.value.packet.src.node, 2);
  const re = encodePilt(t.value.packet);
  assert.ok(re.ok);
  if (re.ok) assert.deepEqual(re.value, hex(PILT_SYN_FROM_NODE2));
});

test('legacy frames: strict lengths, wrong magics, bad inputs', () => {
  const pila = hex(PILA_FROM_NODE2);
  assert.equal(decodePila(pila.subarray(0, 135)).ok, false);
  assert.equal(decodePila(new Uint8Array([...pila, 0])).ok, false);
  assert.equal(decodePila(hex(PILP_FROM_NODE1)).ok, false);
  assert.equal(decodePilp(hex('50494c5000')).ok, false);
  assert.equal(decodePils(hex(PILS_FROM_NODE1).subarray(0, 35)).ok, false);
  assert.ok(decodePils(hex(PILS_FROM_NODE1).subarray(0, 36)).ok); // tag-only ciphertext is well-formed
  assert.equal(decodePilk(new Uint8Array(39)).ok, false);
  assert.equal(decodePilt(hex(PILT_SYN_FROM_NODE2).subarray(0, 37)).ok, false);
  const badCrc = hex(PILT_SYN_FROM_NODE2);
  badCrc[37]! ^= 1;
  assert.match(decodePilt(badCrc).ok ? '' : (decodePilt(badCrc) as { error: { message: string } }).error.message, /checksum/);
  assert.equal(decodeLegacyFrame(hex('0100000002')).ok, false);
  assert.equal(decodeLegacyFrame(null as unknown as Uint8Array).ok, false);

  const k = new Uint8Array(32);
  assert.equal(encodePilk({ node: 1, x25519Pub: new Uint8Array(31) }).ok, false);
  assert.equal(encodePilk({ node: -1, x25519Pub: k }).ok, false);
  assert.equal(encodePila({ node: 1, x25519Pub: k, ed25519Pub: k, signature: new Uint8Array(63) }).ok, false);
  assert.equal(encodePils({ node: 1, nonce: new Uint8Array(12), ciphertext: new Uint8Array(15) }).ok, false);
  assert.equal(encodePils({ node: 1, nonce: new Uint8Array(11), ciphertext: new Uint8Array(16) }).ok, false);
  assert.equal(encodePilt(makePacket({ window: -1 })).ok, false);
  assert.equal(encodeLegacyFrame({ kind: 'PILX' } as unknown as LegacyFrame).ok, false);
  assert.equal(encodeLegacyNonce(0, -1).ok, false);
  assert.equal(encodeLegacyNonce(0, 2n ** 64n).ok, false);
  assert.equal(encodeLegacyNonce(2 ** 32, 0).ok, false);
  assert.equal(decodeLegacyNonce(new Uint8Array(11)).ok, false);
});

test('legacy frames: PILS sealed in place is not copied', () => {
  const out = new Uint8Array(PILS_HEADER_SIZE + 20);
  out.fill(7, PILS_HEADER_SIZE);
  const r = encodePils({ node: 5, nonce: new Uint8Array(12).fill(1), ciphertext: out.subarray(PILS_HEADER_SIZE) }, out);
  assert.ok(r.ok);
  const d = decodePils(out);
  assert.ok(d.ok);
  if (d.ok) assert.deepEqual([...d.value.ciphertext], new Array(20).fill(7));
});

test('legacy frames: property — decode(encode(f)) deep-equals f for every kind, via the generic and kind codecs', () => {
  fc.assert(
    fc.property(legacyFrameArb, fc.nat(16), (f, pad) => {
      const e = encodeLegacyFrame(f);
      assert.ok(e.ok, e.ok ? '' : e.error.message);
      if (!e.ok) return;
      assert.equal(legacyFrameKind(e.value), f.kind);
      assert.deepEqual(decodeLegacyFrame(e.value), { ok: true, value: f });
      // Same bytes when written at an offset into a larger buffer.
      const out = new Uint8Array(pad + e.value.length + 3);
      const e2 = encodeLegacyFrame(f, out, pad);
      assert.ok(e2.ok);
      if (e2.ok) assert.deepEqual(e2.value, e.value);
    }),
    fcParams(2000),
  );
});

test('legacy nonce: property — prefix/counter round-trip', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (prefix, counter) => {
      const e = encodeLegacyNonce(prefix, counter);
      assert.ok(e.ok);
      if (e.ok) assert.deepEqual(decodeLegacyNonce(e.value), { ok: true, value: { prefix, counter } });
    }),
    fcParams(1000),
  );
});
