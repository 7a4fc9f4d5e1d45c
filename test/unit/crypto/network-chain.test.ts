// Membership chains (src/crypto/network-chain.ts): who may sign which change, and that nothing else verifies.
import test from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity, sign, toBase64, type Identity } from '../../../src/crypto/identity.js';
import {
  applyNetworkChange,
  decodeNetworkChange,
  foldNetworkChain,
  makeChange,
  tokenCheckOf,
  tokenMacOf,
  type NetworkChange,
  type NetworkView,
} from '../../../src/crypto/network-chain.js';

const owner = generateIdentity();
const alice = generateIdentity();
const bob = generateIdentity();
const mallory = generateIdentity();
const key = (i: Identity) => toBase64(i.publicKey);
const signer = (i: Identity) => (m: Uint8Array) => sign(i, m);

function genesis(rule: 'open' | 'invite' | 'token' = 'invite', token = ''): NetworkChange {
  return makeChange(null, { op: 'create', by: 1, node_id: 1, key: key(owner), name: 'lab', join_rule: rule, token_check: token ? tokenCheckOf(token) : '', ts: 1 }, signer(owner));
}

function must(r: ReturnType<typeof applyNetworkChange>): NetworkView {
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

test('create → invite → join → kick; roles and invites follow the chain', () => {
  const g = genesis();
  let v = must(applyNetworkChange(null, g));
  assert.equal(v.members.get(1)?.role, 'owner');
  const inv = makeChange(v, { op: 'invite', by: 1, node_id: 2, key: key(alice), ts: 2 }, signer(owner));
  v = must(applyNetworkChange(v, inv));
  assert.ok(v.invites.has(2));
  const join = makeChange(v, { op: 'join', by: 2, node_id: 2, key: key(alice), ts: 3 }, signer(alice));
  v = must(applyNetworkChange(v, join));
  assert.equal(v.members.get(2)?.role, 'member');
  assert.equal(v.invites.size, 0);
  const kick = makeChange(v, { op: 'remove', by: 1, node_id: 2, ts: 4 }, signer(owner));
  v = must(applyNetworkChange(v, kick));
  assert.equal(v.members.has(2), false);
  // The whole chain folds to the same view, from the genesis.
  const folded = foldNetworkChain([g, inv, join, kick]);
  assert.ok(folded.ok);
  assert.deepEqual([...folded.value.members.keys()], [1]);
});

test('a member cannot kick, invite, promote or rename: permission_denied', () => {
  let v = must(applyNetworkChange(null, genesis()));
  v = must(applyNetworkChange(v, makeChange(v, { op: 'invite', by: 1, node_id: 2, key: key(alice), ts: 2 }, signer(owner))));
  v = must(applyNetworkChange(v, makeChange(v, { op: 'join', by: 2, node_id: 2, key: key(alice), ts: 3 }, signer(alice))));
  for (const op of ['remove', 'invite', 'promote', 'rename', 'delete'] as const) {
    const c = makeChange(v, { op, by: 2, node_id: op === 'remove' || op === 'promote' ? 1 : 3, key: key(bob), name: 'other', ts: 4 }, signer(alice));
    const r = applyNetworkChange(v, c);
    assert.equal(r.ok, false, op);
    assert.equal(!r.ok && r.error.code, 'permission_denied', op);
  }
  // An admin may invite and kick members, but not the owner; promote is the owner's.
  v = must(applyNetworkChange(v, makeChange(v, { op: 'promote', by: 1, node_id: 2, ts: 5 }, signer(owner))));
  v = must(applyNetworkChange(v, makeChange(v, { op: 'invite', by: 2, node_id: 3, key: key(bob), ts: 6 }, signer(alice))));
  const kickOwner = applyNetworkChange(v, makeChange(v, { op: 'remove', by: 2, node_id: 1, ts: 7 }, signer(alice)));
  assert.equal(!kickOwner.ok && kickOwner.error.code, 'permission_denied');
});

test('forged changes are refused: a registry-made join, a change signed by the wrong key, a tampered field', () => {
  let v = must(applyNetworkChange(null, genesis('invite')));
  // No invite: a join signed by the joiner itself does not make it a member of an invite network.
  const selfJoin = applyNetworkChange(v, makeChange(v, { op: 'join', by: 9, node_id: 9, key: key(mallory), ts: 2 }, signer(mallory)));
  assert.equal(!selfJoin.ok && selfJoin.error.code, 'permission_denied');
  // An invite "by the owner" signed with another key (what a registry could make).
  const forgedInvite = makeChange(v, { op: 'invite', by: 1, node_id: 9, key: key(mallory), ts: 2 }, signer(mallory));
  const r1 = applyNetworkChange(v, forgedInvite);
  assert.equal(!r1.ok && r1.error.code, 'permission_denied');
  // A genuine invite whose invitee was swapped afterwards.
  const real = makeChange(v, { op: 'invite', by: 1, node_id: 2, key: key(alice), ts: 2 }, signer(owner));
  const tampered = { ...real, node_id: 9, key: key(mallory) };
  const r2 = applyNetworkChange(v, tampered);
  assert.equal(!r2.ok && r2.error.code, 'permission_denied');
  v = must(applyNetworkChange(v, real));
  // An invite names a key: another key cannot take it.
  const wrongKey = applyNetworkChange(v, makeChange(v, { op: 'join', by: 2, node_id: 2, key: key(mallory), ts: 3 }, signer(mallory)));
  assert.equal(!wrongKey.ok && wrongKey.error.code, 'permission_denied');
  // A change replayed at another place in the chain (wrong prev/seq) is out of place.
  const replay = applyNetworkChange(v, real);
  assert.equal(!replay.ok && replay.error.code, 'invalid_argument');
});

test('open and token networks: self-signed joins, token checked by holders of the token', () => {
  let open = must(applyNetworkChange(null, genesis('open')));
  open = must(applyNetworkChange(open, makeChange(open, { op: 'join', by: 2, node_id: 2, key: key(alice), ts: 2 }, signer(alice))));
  assert.ok(open.members.has(2));
  const g = genesis('token', 's3cret');
  const t = must(applyNetworkChange(null, g));
  const good = makeChange(t, { op: 'join', by: 2, node_id: 2, key: key(alice), token_mac: tokenMacOf('s3cret', t.head, 2, key(alice)), ts: 2 }, signer(alice));
  must(applyNetworkChange(t, good, { token: 's3cret' }));
  const bad = makeChange(t, { op: 'join', by: 2, node_id: 2, key: key(alice), token_mac: tokenMacOf('guess', t.head, 2, key(alice)), ts: 2 }, signer(alice));
  const r = applyNetworkChange(t, bad, { token: 's3cret' });
  assert.equal(!r.ok && r.error.code, 'permission_denied');
  const none = makeChange(t, { op: 'join', by: 2, node_id: 2, key: key(alice), ts: 2 }, signer(alice));
  const r2 = applyNetworkChange(t, none);
  assert.equal(!r2.ok && r2.error.code, 'permission_denied');
});

test('decodeNetworkChange is total and round-trips', () => {
  const g = genesis();
  const back = decodeNetworkChange(JSON.parse(JSON.stringify(g)));
  assert.ok(back.ok);
  assert.deepEqual(back.value, g);
  for (const junk of [null, 1, 'x', [], {}, { ...g, op: 'own' }, { ...g, seq: -1 }, { ...g, v: 2 }, { ...g, sig: 5 }]) {
    const r = decodeNetworkChange(junk);
    assert.equal(r.ok, false);
  }
});

test('tags (owner or admin signs) and hostnames (the member signs, unique in the network) follow the chain', () => {
  let v = must(applyNetworkChange(null, genesis('open')));
  for (const [id, who] of [[2, alice], [3, bob]] as const) {
    v = must(applyNetworkChange(v, makeChange(v, { op: 'join', by: id, node_id: id, key: key(who), ts: 2 }, signer(who))));
  }
  // The owner tags alice; alice cannot tag herself or bob.
  v = must(applyNetworkChange(v, makeChange(v, { op: 'tags', by: 1, node_id: 2, tags: ['gpu', 'eu-1'], ts: 3 }, signer(owner))));
  assert.deepEqual(v.members.get(2)?.tags, ['gpu', 'eu-1']);
  const selfTag = applyNetworkChange(v, makeChange(v, { op: 'tags', by: 2, node_id: 2, tags: ['admin'], ts: 4 }, signer(alice)));
  assert.equal(!selfTag.ok && selfTag.error.code, 'permission_denied');
  // Alice signs her hostname; bob cannot take it, nor sign one for alice; mallory's key is not alice's.
  v = must(applyNetworkChange(v, makeChange(v, { op: 'hostname', by: 2, node_id: 2, key: key(alice), hostname: 'agent-a', ts: 5 }, signer(alice))));
  assert.equal(v.members.get(2)?.hostname, 'agent-a');
  const taken = applyNetworkChange(v, makeChange(v, { op: 'hostname', by: 3, node_id: 3, key: key(bob), hostname: 'agent-a', ts: 6 }, signer(bob)));
  assert.equal(!taken.ok && taken.error.code, 'already_exists');
  const forBob = applyNetworkChange(v, makeChange(v, { op: 'hostname', by: 3, node_id: 2, key: key(bob), hostname: 'x', ts: 6 }, signer(bob)));
  assert.equal(forBob.ok, false);
  const forged = applyNetworkChange(v, makeChange(v, { op: 'hostname', by: 2, node_id: 2, key: key(mallory), hostname: 'evil', ts: 6 }, signer(mallory)));
  assert.equal(forged.ok, false);
  // A promotion keeps tags and hostname; the fields are signed (a changed tag does not verify).
  v = must(applyNetworkChange(v, makeChange(v, { op: 'promote', by: 1, node_id: 2, ts: 7 }, signer(owner))));
  assert.deepEqual([v.members.get(2)?.role, v.members.get(2)?.hostname, v.members.get(2)?.tags], ['admin', 'agent-a', ['gpu', 'eu-1']]);
  const t = makeChange(v, { op: 'tags', by: 1, node_id: 3, tags: ['web'], ts: 8 }, signer(owner));
  const tampered = applyNetworkChange(v, { ...t, tags: ['db'] });
  assert.equal(!tampered.ok && tampered.error.code, 'permission_denied');
  // Decoding: round trip, and bad tags / hostnames refused.
  const d = decodeNetworkChange(JSON.parse(JSON.stringify(t)));
  assert.ok(d.ok && d.value.tags?.[0] === 'web');
  assert.equal(decodeNetworkChange({ ...t, tags: ['Bad Tag'] }).ok, false);
  assert.equal(decodeNetworkChange({ ...t, tags: 'web' }).ok, false);
  assert.equal(decodeNetworkChange({ ...t, tags: Array(17).fill('a') }).ok, false);
  const h = makeChange(v, { op: 'hostname', by: 3, node_id: 3, key: key(bob), hostname: 'agent-b', ts: 9 }, signer(bob));
  assert.equal(decodeNetworkChange({ ...h, hostname: 'NOT A HOST' }).ok, false);
});

test('rekey: a member names its new key, signed with the key the chain holds; nobody else can', () => {
  const fresh = generateIdentity();
  let v = must(applyNetworkChange(null, genesis('open')));
  v = must(applyNetworkChange(v, makeChange(v, { op: 'join', by: 2, node_id: 2, key: key(alice), ts: 2 }, signer(alice))));
  // Signed with the new key (a thief holding only the new key, or a registry): refused.
  const withNew = applyNetworkChange(v, makeChange(v, { op: 'rekey', by: 2, node_id: 2, key: key(fresh), ts: 3 }, signer(fresh)));
  assert.equal(!withNew.ok && withNew.error.code, 'permission_denied');
  // For someone else: refused.
  const forAlice = applyNetworkChange(v, makeChange(v, { op: 'rekey', by: 1, node_id: 2, key: key(fresh), ts: 3 }, signer(owner)));
  assert.equal(forAlice.ok, false);
  // By alice with her old key: the chain holds the new one; later changes verify with it.
  const same = applyNetworkChange(v, makeChange(v, { op: 'rekey', by: 2, node_id: 2, key: key(alice), ts: 3 }, signer(alice)));
  assert.equal(same.ok, false, 'rekey to the same key');
  v = must(applyNetworkChange(v, makeChange(v, { op: 'rekey', by: 2, node_id: 2, key: key(fresh), ts: 4 }, signer(alice))));
  assert.equal(v.members.get(2)?.key, key(fresh));
  assert.equal(v.members.get(2)?.role, 'member');
  const oldLeave = applyNetworkChange(v, makeChange(v, { op: 'leave', by: 2, node_id: 2, key: key(alice), ts: 5 }, signer(alice)));
  assert.equal(oldLeave.ok, false, 'the old key is no longer the member');
  must(applyNetworkChange(v, makeChange(v, { op: 'leave', by: 2, node_id: 2, key: key(fresh), ts: 5 }, signer(fresh))));
});
