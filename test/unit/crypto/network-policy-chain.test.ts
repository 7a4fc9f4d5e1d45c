// The `policy` change of a network chain (issue 15): owner/admin signed, text and hash checked, last one wins.
import test from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity, sign, toBase64, type Identity } from '../../../src/crypto/identity.js';
import { applyNetworkChange, decodeNetworkChange, foldNetworkChain, makeChange, policySha256Of, type NetworkChange, type NetworkView } from '../../../src/crypto/network-chain.js';

const owner = generateIdentity();
const alice = generateIdentity();
const key = (i: Identity) => toBase64(i.publicKey);
const signer = (i: Identity) => (m: Uint8Array) => sign(i, m);
const POLICY = '{"default":"allow","rules":[{"action":"deny","ports":[1001],"from":"*","to":"*"}]}';

function must(r: ReturnType<typeof applyNetworkChange>): NetworkView {
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

function twoMembers(): { v: NetworkView; chain: NetworkChange[] } {
  const g = makeChange(null, { op: 'create', by: 1, node_id: 1, key: key(owner), name: 'lab', join_rule: 'open', ts: 1 }, signer(owner));
  let v = must(applyNetworkChange(null, g));
  const j = makeChange(v, { op: 'join', by: 2, node_id: 2, key: key(alice), ts: 2 }, signer(alice));
  v = must(applyNetworkChange(v, j));
  return { v, chain: [g, j] };
}

test('the owner signs a policy: the view holds its text and sha256; the chain folds to it; a later one replaces it; empty clears', () => {
  const { v: v0, chain } = twoMembers();
  assert.equal(v0.policy, '');
  const c = makeChange(v0, { op: 'policy', by: 1, node_id: 1, policy: POLICY, ts: 3 }, signer(owner));
  assert.equal(c.policy_sha256, policySha256Of(POLICY));
  const v1 = must(applyNetworkChange(v0, c));
  assert.equal(v1.policy, POLICY);
  assert.equal(v1.policySha256, policySha256Of(POLICY));
  assert.equal(v1.policySeq, 2);
  // Travels as JSON (registry frames) and decodes to the same change, which still verifies.
  const back = decodeNetworkChange(JSON.parse(JSON.stringify(c)));
  assert.ok(back.ok);
  const folded = foldNetworkChain([...chain, back.value]);
  assert.ok(folded.ok);
  assert.equal(folded.value.policy, POLICY);
  const clear = makeChange(v1, { op: 'policy', by: 1, node_id: 1, policy: '', ts: 4 }, signer(owner));
  const v2 = must(applyNetworkChange(v1, clear));
  assert.equal(v2.policy, '');
  assert.equal(v2.policySeq, 3);
});

test('a plain member cannot set the policy; a tampered text or hash does not verify', () => {
  const { v } = twoMembers();
  const byMember = makeChange(v, { op: 'policy', by: 2, node_id: 2, policy: POLICY, ts: 3 }, signer(alice));
  const r = applyNetworkChange(v, byMember);
  assert.equal(!r.ok && r.error.code, 'permission_denied');
  const good = makeChange(v, { op: 'policy', by: 1, node_id: 1, policy: POLICY, ts: 3 }, signer(owner));
  // The registry (or anyone on the way) swaps the text: the signature covers it.
  const swapped = { ...good, policy: '{"default":"deny","rules":[]}', policy_sha256: policySha256Of('{"default":"deny","rules":[]}') };
  const r2 = applyNetworkChange(v, swapped);
  assert.equal(!r2.ok && r2.error.code, 'permission_denied');
  // A hash that does not match its text is refused even when signed so.
  const badHash = makeChange(v, { op: 'policy', by: 1, node_id: 1, policy: POLICY, ts: 3 }, signer(owner));
  const forged = { ...badHash, policy_sha256: '0'.repeat(64) };
  const r3 = applyNetworkChange(v, forged);
  assert.equal(r3.ok, false);
  // A policy change without its text does not decode.
  const { policy: _p, ...noText } = good;
  assert.equal(decodeNetworkChange(noText).ok, false);
});

test('other ops sign what they signed before the policy op existed (old chains keep verifying)', () => {
  const { chain } = twoMembers();
  assert.equal('policy' in chain[1]!, false);
  assert.ok(foldNetworkChain(chain.map((c) => JSON.parse(JSON.stringify(c)) as NetworkChange)).ok);
});
