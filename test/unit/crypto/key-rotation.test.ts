// Rotation statements (issue 14): what a peer accepts before it moves a pin.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generateIdentity, toBase64 } from '../../../src/crypto/identity.js';
import { decodeRotationStatement, followChain, signRotation, verifyRotation } from '../../../src/crypto/key-rotation.js';

const NONCE = 'AAAAAAAAAAAAAAAAAAAAAA==';

test('a statement signed by the old and the new key verifies against the old key', () => {
  const k0 = generateIdentity();
  const k1 = generateIdentity();
  const s = signRotation({ nodeId: 7, old: k0, next: k1, tsSec: 1000, nonce: NONCE });
  assert.equal(s.old_public_key, toBase64(k0.publicKey));
  assert.equal(s.new_public_key, toBase64(k1.publicKey));
  const v = verifyRotation(s, { nodeId: 7, currentKey: toBase64(k0.publicKey) });
  assert.ok(v.ok);
  assert.equal(v.value.form, 'key');
  // Round trip through JSON (how it travels) keeps it valid.
  const back = decodeRotationStatement(JSON.parse(JSON.stringify(s)));
  assert.ok(back && verifyRotation(back, { nodeId: 7, currentKey: toBase64(k0.publicKey) }).ok);
});

test('forged statements are refused: wrong old key, swapped new key, other node, missing new-key signature', () => {
  const k0 = generateIdentity();
  const k1 = generateIdentity();
  const mallory = generateIdentity();
  const held = toBase64(k0.publicKey);
  // Signed by a key that is not the one held (a thief without k0).
  const forged = signRotation({ nodeId: 7, old: mallory, next: k1, tsSec: 1000, nonce: NONCE });
  assert.equal(verifyRotation({ ...forged, old_public_key: held }, { nodeId: 7, currentKey: held }).ok, false);
  assert.equal(verifyRotation(forged, { nodeId: 7, currentKey: held }).ok, false);
  const good = signRotation({ nodeId: 7, old: k0, next: k1, tsSec: 1000, nonce: NONCE });
  // The new key replaced by the attacker's: both signatures cover it.
  assert.equal(verifyRotation({ ...good, new_public_key: toBase64(mallory.publicKey) }, { nodeId: 7, currentKey: held }).ok, false);
  // Another node's id, or another ts/nonce: the signed text changes.
  assert.equal(verifyRotation(good, { nodeId: 8, currentKey: held }).ok, false);
  assert.equal(verifyRotation({ ...good, node_id: 8 }, { nodeId: 8, currentKey: held }).ok, false);
  assert.equal(verifyRotation({ ...good, ts: 1001 }, { nodeId: 7, currentKey: held }).ok, false);
  // The new key must sign too (nobody rotates onto a key they do not hold).
  assert.equal(verifyRotation({ ...good, new_key_signature: good.signature! }, { nodeId: 7, currentKey: held }).ok, false);
  // Neither old nor recovery signature.
  const { signature: _drop, ...unsigned } = good;
  assert.equal(verifyRotation(unsigned, { nodeId: 7, currentKey: held }).ok, false);
});

test('a replayed older statement is refused: it names an older key, or it is not later than the last applied', () => {
  const k0 = generateIdentity();
  const k1 = generateIdentity();
  const k2 = generateIdentity();
  const s1 = signRotation({ nodeId: 3, old: k0, next: k1, tsSec: 100, nonce: NONCE });
  const s2 = signRotation({ nodeId: 3, old: k1, next: k2, tsSec: 200, nonce: NONCE });
  // A peer pinned at k2 sees s1 again: it is about k0.
  assert.equal(verifyRotation(s1, { nodeId: 3, currentKey: toBase64(k2.publicKey), lastTsSec: 200 }).ok, false);
  // ts not later than what was applied.
  assert.equal(verifyRotation(s2, { nodeId: 3, currentKey: toBase64(k1.publicKey), lastTsSec: 200 }).ok, false);
  // The chain from k0 reaches k2, in any order given.
  const chain = followChain([s2, s1], { nodeId: 3, currentKey: toBase64(k0.publicKey) });
  assert.equal(chain.key, toBase64(k2.publicKey));
  assert.equal(chain.tsSec, 200);
  assert.equal(chain.applied.length, 2);
  // From k1 only s2 applies; from a stranger's key nothing does.
  assert.equal(followChain([s1, s2], { nodeId: 3, currentKey: toBase64(k1.publicKey), lastTsSec: 100 }).applied.length, 1);
  assert.equal(followChain([s1, s2], { nodeId: 3, currentKey: toBase64(generateIdentity().publicKey) }).applied.length, 0);
});

test('recovery form: verifies with the recovery key the verifier learned, never without it', () => {
  const lost = generateIdentity();
  const recovery = generateIdentity();
  const next = generateIdentity();
  const held = toBase64(lost.publicKey);
  const s = signRotation({ nodeId: 9, recovery, next, tsSec: 500, nonce: NONCE, oldPublicKeyB64: held });
  assert.equal(s.signature, undefined);
  const v = verifyRotation(s, { nodeId: 9, currentKey: held, recoveryKey: toBase64(recovery.publicKey) });
  assert.ok(v.ok);
  assert.equal(v.value.form, 'recovery');
  assert.equal(verifyRotation(s, { nodeId: 9, currentKey: held }).ok, false, 'no recovery key known');
  assert.equal(verifyRotation(s, { nodeId: 9, currentKey: held, recoveryKey: toBase64(generateIdentity().publicKey) }).ok, false, 'another recovery key');
  // Replayed after it was applied (ts not later), or about an older key: refused.
  assert.equal(verifyRotation(s, { nodeId: 9, currentKey: held, recoveryKey: toBase64(recovery.publicKey), lastTsSec: 500 }).ok, false);
  assert.equal(verifyRotation(s, { nodeId: 9, currentKey: toBase64(next.publicKey), recoveryKey: toBase64(recovery.publicKey) }).ok, false);
  // The recovery signature does not stand in for the old key's in the by-key form.
  assert.equal(verifyRotation({ ...s, signature: s.recovery_signature! }, { nodeId: 9, currentKey: held, recoveryKey: toBase64(recovery.publicKey) }).ok, false);
});

test('decodeRotationStatement is total on any JSON', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const s = decodeRotationStatement(v);
      if (s !== null) assert.equal(typeof s.node_id, 'number');
    }),
    { numRuns: 500 },
  );
  assert.equal(decodeRotationStatement({ node_id: -1, ts: 1, old_public_key: '', new_public_key: '', nonce: '', new_key_signature: '' }), null);
});
