// src/node/key-rotation.ts with a fake registry and trust store, wired to a real PeerResolver: where a peer
// refuses a rotation (forged, replayed) and the old key, and what our own rotation does to the identity file.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok, err, type Result } from '../../../src/core/result.js';
import { ManualClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/core/logger.js';
import { generateIdentity, parseIdentityJson, toBase64, type Identity } from '../../../src/crypto/identity.js';
import { signRotation, type RotationStatement } from '../../../src/crypto/key-rotation.js';
import { KeyRotation } from '../../../src/node/key-rotation.js';
import { NodeEvents, type NodeEvent } from '../../../src/node/events.js';
import { PeerResolver } from '../../../src/node/peers/resolver.js';
import { saveIdentity } from '../../../src/node/identity-store.js';
import type { LookupResult } from '../../../src/node/registry-client.js';
import type { TrustedPeer } from '../../../src/node/trust/store.js';

const NONCE = 'AAAAAAAAAAAAAAAAAAAAAA==';
const PEER = 5;

function world(pinned: Identity) {
  const trusted = new Map<number, TrustedPeer>();
  trusted.set(PEER, { node_id: PEER, public_key: toBase64(pinned.publicKey), hostname: 'peer', approved_at: new Date(0).toISOString(), mutual: true });
  const events: NodeEvent[] = [];
  const dropped: number[] = [];
  const registryNode: { lookup: Partial<LookupResult> } = { lookup: {} };
  let rotateReply: Result<{ beaconToken: Uint8Array | null; oldPublicKey: string }> = ok({ beaconToken: null, oldPublicKey: '' });
  const sent: RotationStatement[] = [];
  const trust = {
    getTrusted: (id: number) => trusted.get(id),
    listTrusted: () => [...trusted.values()],
    getPending: () => undefined,
    updateKey: (id: number, key: string, ts: number): Result<boolean> => {
      const t = trusted.get(id);
      if (!t) return ok(false);
      t.public_key = key;
      t.key_ts = ts;
      return ok(true);
    },
    learnRecoveryKey: (id: number, key: string): Result<boolean> => {
      const t = trusted.get(id);
      if (!t || t.recovery_key !== undefined) return ok(false);
      t.recovery_key = key;
      return ok(true);
    },
  };
  const bus = new NodeEvents(() => 0);
  bus.on((e) => events.push(e));
  let me = generateIdentity();
  const dir = mkdtempSync(join(tmpdir(), 'pilot-keys-unit-'));
  const identityPath = join(dir, 'identity.json');
  assert.ok(saveIdentity(identityPath, me).ok);
  const keys = new KeyRotation({
    nodeId: () => 1,
    identity: () => me,
    setIdentity: (next) => void (me = next),
    identityPath,
    registry: {
      nowSec: () => 2_000_000_000,
      rotateKey: async (s) => {
        sent.push(s);
        return rotateReply;
      },
    },
    trust,
    dropPeer: (id) => void dropped.push(id),
    events: bus,
    logger: silentLogger(),
  });
  const resolver = new PeerResolver({
    registry: {
      lookup: async (id) => ok({ nodeId: id, address: '', publicKey: toBase64(pinned.publicKey), isPublic: false, poloScore: 0, taskExec: false, ...registryNode.lookup } as LookupResult),
      resolve: async (id) => ok({ nodeId: id, realAddr: '127.0.0.1:9', realEndpoint: { ip: '127.0.0.1', port: 9 } }),
      resolveHostname: async () => err('not_found', 'no'),
    },
    trust,
    clock: new ManualClock(0),
    knownEndpoint: () => null,
    isNoiseUp: () => false,
    isLegacyEnabled: false,
    isRelayOnly: false,
    isPublic: () => false,
    adoptRotation: (id, l) => keys.adoptRotation(id, l),
    learnRecoveryKey: (id, k) => keys.learnRecoveryKey(id, k),
  });
  return {
    keys, resolver, trusted, events, dropped, registryNode, sent, identityPath,
    me: () => me,
    setRotateReply: (r: typeof rotateReply) => void (rotateReply = r),
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

test('a pushed rotation signed by the pinned key moves the pin, drops the session, emits key.rotated; the old key is then refused', async () => {
  const k0 = generateIdentity();
  const k1 = generateIdentity();
  const w = world(k0);
  try {
    const s = signRotation({ nodeId: PEER, old: k0, next: k1, tsSec: 1000, nonce: NONCE });
    assert.equal(w.keys.handleStatements(PEER, [s], 'push'), true);
    assert.equal(w.trusted.get(PEER)!.public_key, toBase64(k1.publicKey));
    assert.deepEqual(w.dropped, [PEER]);
    assert.deepEqual(w.events.map((e) => e.type), ['key.rotated']);
    assert.deepEqual(w.events[0]!.data, { node_id: PEER, old_public_key: toBase64(k0.publicKey), new_public_key: toBase64(k1.publicKey), by: 'peer' });
    // The old key cannot open a tunnel to us any more (the registry agrees with the new pin).
    w.registryNode.lookup = { publicKey: toBase64(k1.publicKey), keyRotations: [s] };
    assert.equal((await w.resolver.authorize(PEER, k0.publicKey)).ok, false);
    assert.equal((await w.resolver.authorize(PEER, k1.publicKey)).ok, true);
    // The same statement replayed: nothing changes.
    assert.equal(w.keys.handleStatements(PEER, [s], 'push'), false);
    assert.equal(w.events.length, 1);
  } finally {
    w.close();
  }
});

test('forged rotations are refused: not signed by the pin, and a registry that shows a new key without a chain is identity_changed', async () => {
  const k0 = generateIdentity();
  const mallory = generateIdentity();
  const w = world(k0);
  try {
    const forged = signRotation({ nodeId: PEER, old: mallory, next: mallory, tsSec: 1000, nonce: NONCE });
    assert.equal(w.keys.handleStatements(PEER, [{ ...forged, old_public_key: toBase64(k0.publicKey) }], 'push'), false);
    assert.equal(w.trusted.get(PEER)!.public_key, toBase64(k0.publicKey));
    assert.equal(w.events.length, 0);
    // The registry claims mallory's key, with a forged chain (mallory signing a rotation onto itself, named as from
    // the pin): the dial stops with identity_changed.
    w.registryNode.lookup = { publicKey: toBase64(mallory.publicKey), keyRotations: [forged] };
    const c = await w.resolver.contactOf(PEER);
    assert.equal(c.ok, false);
    assert.equal(!c.ok && c.error.code, 'identity_changed');
    // An initiator holding mallory's key is refused too.
    assert.equal((await w.resolver.authorize(PEER, mallory.publicKey)).ok, false);
  } finally {
    w.close();
  }
});

test('an offline peer catches up from a lookup: key rotation then recovery rotation, with the recovery key learned earlier', async () => {
  const k0 = generateIdentity();
  const k1 = generateIdentity();
  const k2 = generateIdentity();
  const recovery = generateIdentity();
  const w = world(k0);
  try {
    // A lookup that agrees with the pin teaches the recovery key.
    w.registryNode.lookup = { recoveryKey: toBase64(recovery.publicKey) };
    assert.ok((await w.resolver.contactOf(PEER)).ok);
    assert.equal(w.trusted.get(PEER)!.recovery_key, toBase64(recovery.publicKey));
    const s1 = signRotation({ nodeId: PEER, old: k0, next: k1, tsSec: 1000, nonce: NONCE });
    const s2 = { ...signRotation({ nodeId: PEER, recovery, next: k2, tsSec: 2000, nonce: NONCE }), old_public_key: toBase64(k1.publicKey) };
    w.registryNode.lookup = { publicKey: toBase64(k2.publicKey), keyRotations: [s1, s2], recoveryKey: toBase64(recovery.publicKey) };
    const c = await w.resolver.contactOf(PEER);
    assert.ok(c.ok, !c.ok ? c.error.message : '');
    assert.equal(toBase64(c.value.ed25519), toBase64(k2.publicKey));
    assert.equal(w.trusted.get(PEER)!.key_ts, 2000);
    assert.deepEqual(w.dropped, [], 'a rotation found while dialling does not kill the dial');
    // A recovery statement older than the pin's last rotation (a replay) is refused.
    const old = signRotation({ nodeId: PEER, recovery, next: generateIdentity(), tsSec: 1500, nonce: NONCE });
    assert.equal(w.keys.handleStatements(PEER, [old], 'push'), false);
  } finally {
    w.close();
  }
});

test('our rotation: the new identity replaces the file only after the registry agreed; a refusal leaves the old one', async () => {
  const w = world(generateIdentity());
  try {
    const before = w.me();
    w.setRotateReply(err('invalid_argument', 'registry: signature verification failed'));
    const refused = await w.keys.rotate();
    assert.equal(refused.ok, false);
    assert.equal(w.me(), before);
    assert.equal(toBase64(parseIdentityJsonOrThrow(readFileSync(w.identityPath, 'utf8')).publicKey), toBase64(before.publicKey));
    assert.equal(existsSync(`${w.identityPath}.next`), false);
    w.setRotateReply(ok({ beaconToken: null, oldPublicKey: toBase64(before.publicKey) }));
    const r = await w.keys.rotate();
    assert.ok(r.ok);
    assert.equal(r.value.by, 'local');
    assert.notEqual(toBase64(w.me().publicKey), toBase64(before.publicKey));
    assert.equal(toBase64(parseIdentityJsonOrThrow(readFileSync(w.identityPath, 'utf8')).publicKey), r.value.new_public_key);
    // What went to the registry is a statement signed by the old key and the new one.
    const s = w.sent[w.sent.length - 1]!;
    assert.equal(s.old_public_key, toBase64(before.publicKey));
    assert.ok(s.signature && s.new_key_signature && s.recovery_signature === undefined);
    assert.deepEqual(w.events.map((e) => [e.type, (e.data as { by: string }).by]), [['key.rotated', 'local']]);
  } finally {
    w.close();
  }
});

function parseIdentityJsonOrThrow(text: string): Identity {
  const r = parseIdentityJson(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}
