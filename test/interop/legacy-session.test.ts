// The v0.5 tunnel suite (src/crypto/legacy-session.ts): key derivation from first principles, PILA accept
// rules, PILS seal/open against a node:crypto reference, replay window, insecure-mode refusals, batch AEAD.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { identityFromSeed } from '../../src/crypto/identity.js';
import {
  LEGACY_PILS_LAYOUT,
  LEGACY_REPLAY_WINDOW,
  LegacyKeyExchange,
  LegacySession,
  checkPlaintextAllowed,
  deriveLegacyTunnelKey,
  legacyKeyPairFromSecret,
  verifyPilaFrame,
} from '../../src/crypto/legacy-session.js';
import { decodePils, encodePilk, legacyFrameKind } from '../../src/wire/legacy-frame.js';
import { createAeadBatch, createJsAead } from '../../src/datapath/aead.js';
import { findInteropDir, readIdentities, readUdpFrames } from './captures.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// RFC 7748 §6.1 X25519 test vector.
const ALICE_SK = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
const ALICE_PK = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
const BOB_SK = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
const BOB_PK = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
const SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

function pair(opts: { allowInsecureLegacy?: boolean } = {}) {
  const idA = identityFromSeed(new Uint8Array(32).fill(1));
  const idB = identityFromSeed(new Uint8Array(32).fill(2));
  let pa = 0x11111111;
  let pb = 0x22222222;
  const a = new LegacyKeyExchange({ identity: idA, nodeId: 10, keyPair: legacyKeyPairFromSecret(ALICE_SK), randomU32: () => pa++, ...opts });
  const b = new LegacyKeyExchange({ identity: idB, nodeId: 20, keyPair: legacyKeyPairFromSecret(BOB_SK), randomU32: () => pb++, ...opts });
  const va = verifyPilaFrame(a.authFrame());
  const vb = verifyPilaFrame(b.authFrame());
  assert.ok(va.ok && vb.ok);
  const sa = a.accept(vb.value, idB.publicKey, 0); // A's session with B
  const sb = b.accept(va.value, idA.publicKey, 0);
  assert.ok(sa.ok && sb.ok);
  return { a, b, idA, idB, sa: sa.value.session, sb: sb.value.session, va: va.value, vb: vb.value };
}

test('key derivation: RFC 7748 X25519, then SHA-256("pilot-tunnel-v1:" ‖ shared)', () => {
  assert.equal(toHex(legacyKeyPairFromSecret(ALICE_SK).publicKey), ALICE_PK);
  assert.equal(toHex(legacyKeyPairFromSecret(BOB_SK).publicKey), BOB_PK);
  const k1 = deriveLegacyTunnelKey(ALICE_SK, hex(BOB_PK));
  const k2 = deriveLegacyTunnelKey(BOB_SK, hex(ALICE_PK));
  assert.ok(k1.ok && k2.ok);
  const ref = createHash('sha256').update(Buffer.concat([Buffer.from('pilot-tunnel-v1:'), Buffer.from(SHARED, 'hex')])).digest('hex');
  assert.equal(toHex(k1.value), ref, 'one key, both directions');
  assert.equal(toHex(k2.value), ref);
  // Low-order points give an all-zero secret; Go's crypto/ecdh refuses them and so do we.
  assert.equal(deriveLegacyTunnelKey(ALICE_SK, new Uint8Array(32)).ok, false);
});

test('PILS known answer: our seal equals a node:crypto AES-256-GCM reference with the original layout (no AAD)', () => {
  const { sa, sb } = pair();
  const inner = hex('1201000500000000000a0000000000141000c0000000000100000001000100000000' + '68656c6c6f');
  const frame = sa.seal(inner, 0);
  assert.ok(frame.ok);
  const key = deriveLegacyTunnelKey(ALICE_SK, hex(BOB_PK));
  assert.ok(key.ok);
  const nonce = hex('11111111' + '0000000000000001'); // our prefix stub, counter 1
  const c = createCipheriv('aes-256-gcm', key.value, nonce);
  const ct = Buffer.concat([c.update(inner), c.final(), c.getAuthTag()]);
  const expected = Buffer.concat([Buffer.from('PILS'), Buffer.from('0000000a', 'hex'), nonce, ct]);
  assert.equal(toHex(frame.value), expected.toString('hex'));
  const opened = sb.open(new Uint8Array(frame.value), 0);
  assert.ok(opened.ok);
  assert.deepEqual(opened.value, inner);
  // Second frame: counter 2, same prefix.
  const f2 = sa.seal(inner, 0);
  assert.ok(f2.ok);
  assert.equal(toHex(f2.value.subarray(8, 20)), '11111111' + '0000000000000002');
});

test('PILS both directions; `out` buffers; wrong sender, tampering and truncation rejected with reasons', () => {
  const { sa, sb } = pair();
  const msg = new Uint8Array(100).map((_, i) => i);
  const out = new Uint8Array(200);
  const f = sa.seal(msg, 0, out);
  assert.ok(f.ok);
  assert.equal(f.value.buffer, out.buffer);
  const back = sb.seal(msg, 0);
  assert.ok(back.ok);
  assert.ok(sa.open(new Uint8Array(back.value), 0).ok);
  const plain = new Uint8Array(100);
  const o = sb.open(new Uint8Array(f.value), 0, plain);
  assert.ok(o.ok);
  assert.deepEqual(plain, msg);

  const reason = (r: { ok: boolean; error?: { detail?: Record<string, unknown> } }) => (r.ok ? 'ok' : r.error!.detail!.reason);
  const g = sa.seal(msg, 0);
  assert.ok(g.ok);
  const tampered = new Uint8Array(g.value);
  tampered[40]! ^= 1;
  assert.equal(reason(sb.open(tampered, 0)), 'auth');
  const otherNode = new Uint8Array(g.value);
  otherNode[7] = 99;
  assert.equal(reason(sb.open(otherNode, 0)), 'wrong_index');
  assert.equal(reason(sb.open(g.value.subarray(0, 30), 0)), 'malformed');
  assert.equal(reason(sb.open(new Uint8Array(g.value), 0)), 'ok', 'the tampered copy did not burn the counter');
});

test('replay window: duplicates and counters 256 behind are refused; reordering inside the window is fine', () => {
  const { sa, sb } = pair();
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) {
    const f = sa.seal(new Uint8Array([i & 0xff]), 0);
    assert.ok(f.ok);
    frames.push(new Uint8Array(f.value));
  }
  const copy = (i: number) => new Uint8Array(frames[i]!);
  assert.ok(sb.open(copy(5), 0).ok);
  assert.equal(sb.open(copy(5), 0).ok, false, 'exact replay');
  assert.ok(sb.open(copy(2), 0).ok, 'older but inside the window');
  assert.ok(sb.open(copy(299), 0).ok);
  assert.equal(sb.open(copy(299 - LEGACY_REPLAY_WINDOW), 0).ok, false, `${LEGACY_REPLAY_WINDOW} behind is too old`);
  assert.ok(sb.open(copy(299 - LEGACY_REPLAY_WINDOW + 1), 0).ok, 'just inside');
  assert.equal(sb.open(copy(299), 0).ok, false);
});

test('a peer re-deriving (new prefix, counter back at 1) is followed; retired prefixes cannot come back', () => {
  const { sa, sb } = pair();
  const old1 = sa.seal(new Uint8Array([1]), 0);
  const old2 = sa.seal(new Uint8Array([2]), 0);
  assert.ok(old1.ok && old2.ok);
  assert.ok(sb.open(new Uint8Array(old1.value), 0).ok);
  // What the original does on every PILA it receives: a new peerCrypto, new random prefix, counter from 1.
  const key = deriveLegacyTunnelKey(ALICE_SK, hex(BOB_PK));
  assert.ok(key.ok);
  const reborn = new LegacySession({
    key: key.value, localNodeId: 10, remoteNodeId: 20, remoteX25519PublicKey: hex(BOB_PK),
    remoteEd25519PublicKey: null, createdAtUs: 0, noncePrefix: 0xabcdef01,
  });
  const n1 = reborn.seal(new Uint8Array([3]), 0);
  assert.ok(n1.ok);
  assert.ok(sb.open(new Uint8Array(n1.value), 0).ok, 'new epoch accepted');
  assert.equal(sb.open(new Uint8Array(old2.value), 0).ok, false, 'old prefix retired');
  assert.equal(sb.open(new Uint8Array(n1.value), 0).ok, false, 'replay in the new epoch');
});

test('equal nonce prefixes in the two directions make us draw a new one (one key serves both ways)', () => {
  const key = deriveLegacyTunnelKey(ALICE_SK, hex(BOB_PK));
  assert.ok(key.ok);
  let next = 0x5555;
  const mk = (prefix: number, local: number, remote: number) =>
    new LegacySession({ key: key.value, localNodeId: local, remoteNodeId: remote, remoteX25519PublicKey: hex(BOB_PK), remoteEd25519PublicKey: null, createdAtUs: 0, noncePrefix: prefix, randomU32: () => next++ });
  const us = mk(0x7777, 1, 2);
  const peer = mk(0x7777, 2, 1);
  const f = peer.seal(new Uint8Array([1]), 0);
  assert.ok(f.ok);
  assert.ok(us.open(new Uint8Array(f.value), 0).ok);
  assert.notEqual(us.noncePrefix, 0x7777);
  const g = us.seal(new Uint8Array([1]), 0);
  assert.ok(g.ok);
  assert.ok(peer.open(new Uint8Array(g.value), 0).ok, 'the peer does not care which prefix we use');
});

test('PILA accept: registry key must match; forged or unknown keys refused; duplicates keep the session, new keys replace it', () => {
  const { a, b, idA, idB, va, sb } = pair();
  const stranger = identityFromSeed(new Uint8Array(32).fill(9));
  const r1 = b.accept(va, stranger.publicKey, 0);
  assert.equal(r1.ok, false);
  assert.equal(!r1.ok && r1.error.code, 'connection_failed');
  assert.equal(b.accept(va, null, 0).ok, false, 'no registry key: no session');
  const forged = new Uint8Array(a.authFrame());
  forged[100]! ^= 1;
  assert.equal(verifyPilaFrame(forged).ok, false);
  const dup = b.accept(va, idA.publicKey, 0, sb);
  assert.ok(dup.ok);
  assert.equal(dup.value.kind, 'duplicate');
  assert.equal(dup.value.session, sb);
  // A restarted A: new X25519 key, same identity.
  const a2 = new LegacyKeyExchange({ identity: idA, nodeId: 10 });
  const v2 = verifyPilaFrame(a2.authFrame());
  assert.ok(v2.ok);
  const re = b.accept(v2.value, idA.publicKey, 0, sb);
  assert.ok(re.ok);
  assert.equal(re.value.kind, 'rekeyed');
  assert.notEqual(re.value.session, sb);
  assert.ok(re.value.shouldReply);
  assert.ok(re.value.session.isAuthenticated);
  void idB;
  // setNodeId rebuilds the PILA (it signs the node id).
  const before = toHex(a.authFrame());
  a.setNodeId(11);
  assert.notEqual(toHex(a.authFrame()), before);
  const v3 = verifyPilaFrame(a.authFrame());
  assert.ok(v3.ok && v3.value.nodeId === 11);
});

test('PILK and PILT are refused unless allowInsecureLegacy', () => {
  const { a } = pair();
  const pilk = encodePilk({ node: 20, x25519Pub: hex(BOB_PK) });
  assert.ok(pilk.ok);
  const r = a.acceptInsecure(pilk.value, 0);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.error.detail?.reason, 'insecure');
  assert.equal(a.insecureKeyFrame().ok, false);
  assert.equal(checkPlaintextAllowed(false).ok, false);
  assert.ok(checkPlaintextAllowed(true).ok);
  const { a: ai } = pair({ allowInsecureLegacy: true });
  const ri = ai.acceptInsecure(pilk.value, 0);
  assert.ok(ri.ok);
  assert.equal(ri.value.session.isAuthenticated, false);
  const k = ai.insecureKeyFrame();
  assert.ok(k.ok && legacyFrameKind(k.value) === 'PILK');
});

test('batch paths: sealBatch/openBatch with the datapath AEAD (JS and native when present) interoperate with seal/open', async () => {
  const { sa, sb } = pair();
  const n = 5;
  const sizes = [34, 100, 1000, 4130, 60];
  const total = sizes.reduce((s, x) => s + x + 36, 0);
  const buf = new Uint8Array(total);
  const meta = new Uint32Array(n * 4);
  let off = 0;
  for (let i = 0; i < n; i++) {
    meta[i * 4] = off;
    meta[i * 4 + 1] = sizes[i]! + 36;
    buf.fill(i + 1, off + 20, off + 20 + sizes[i]!);
    off += sizes[i]! + 36;
  }
  const candidates = [createJsAead('aes-256-gcm', sa.aeadKey, LEGACY_PILS_LAYOUT)];
  const native = await createAeadBatch({ algorithm: 'aes-256-gcm', key: sa.aeadKey, layout: LEGACY_PILS_LAYOUT });
  if (native.ok && native.value.kind === 'native') candidates.push(native.value);
  for (const aead of candidates) {
    const work = new Uint8Array(buf);
    assert.equal(sa.sealBatch(work, meta, n, aead, 0), n, `${aead.kind} seal`);
    for (let i = 0; i < n; i++) {
      const f = work.slice(meta[i * 4]!, meta[i * 4]! + meta[i * 4 + 1]!);
      assert.ok(decodePils(f).ok);
      const o = sb.open(f, 0);
      assert.ok(o.ok, `${aead.kind} frame ${i} opens with open()`);
      assert.ok(o.value.every((x) => x === i + 1));
    }
    // And the reverse: frames from seal() opened as a batch (one forged, one replayed).
    const bbuf = new Uint8Array(total + 200);
    const bmeta = new Uint32Array(n * 4);
    let bo = 0;
    for (let i = 0; i < n; i++) {
      const f = sb.seal(new Uint8Array(sizes[i]!).fill(9), 0);
      assert.ok(f.ok);
      bbuf.set(f.value, bo);
      bmeta[i * 4] = bo;
      bmeta[i * 4 + 1] = f.value.length;
      bo += f.value.length;
    }
    bbuf[bmeta[2 * 4]! + 25]! ^= 0xff; // forge frame 2
    const recvAead = aead.kind === 'js' ? createJsAead('aes-256-gcm', sb.aeadKey, LEGACY_PILS_LAYOUT) : aead;
    const status = new Uint8Array(n);
    const good = sa.openBatch(bbuf, bmeta, n, status, recvAead, 0);
    assert.equal(good, n - 1, `${aead.kind} open batch`);
    assert.deepEqual([...status], [1, 1, 0, 1, 1]);
    assert.ok(bbuf.subarray(bmeta[0]! + 20, bmeta[0]! + 20 + sizes[0]!).every((x) => x === 9));
    const again = new Uint8Array(n);
    assert.equal(sa.openBatch(bbuf, bmeta, 1, again, recvAead, 0), 0, 'replayed batch refused');
  }
});

const dir = findInteropDir();
test('captured PILA frames are accepted with the captured registry keys (and refused with the other node’s key)', { skip: dir ? false : 'no captures' }, () => {
  const ids = readIdentities(dir!);
  const pilas = readUdpFrames(dir!).filter((f) => legacyFrameKind(f.bytes) === 'PILA');
  assert.ok(pilas.length >= 2);
  const us = new LegacyKeyExchange({ identity: identityFromSeed(new Uint8Array(32).fill(7)), nodeId: 3 });
  for (const f of pilas) {
    const v = verifyPilaFrame(f.bytes);
    assert.ok(v.ok);
    const acc = us.accept(v.value, ids.get(v.value.nodeId)!.publicKey, 0);
    assert.ok(acc.ok);
    assert.equal(acc.value.session.remoteNodeId, v.value.nodeId);
    assert.equal(us.accept(v.value, ids.get(v.value.nodeId === 1 ? 2 : 1)!.publicKey, 0).ok, false);
  }
});
