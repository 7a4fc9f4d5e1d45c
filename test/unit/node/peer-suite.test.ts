import test from 'node:test';
import assert from 'node:assert/strict';
import { acceptsV05, dialPlan, v05KeyFrom } from '../../../src/node/peers/peer-suite.js';

test('dial plan: a node our registry marks v0.5 gets PILA at once (no 5 s Noise wait first)', () => {
  assert.equal(dialPlan('v0.5', true), 'v0.5');
});

test('dial plan: a node our registry marks noise is never offered v0.5 (downgrade attack: old code fell back to PILA after the Noise timeout)', () => {
  assert.equal(dialPlan('noise', true), 'noise');
  assert.equal(acceptsV05('noise'), false, 'its PILA is refused too');
});

test('dial plan: no suite (an original registry) keeps Noise first, v0.5 after its timeout', () => {
  assert.equal(dialPlan(undefined, true), 'noise-then-v0.5');
  assert.equal(acceptsV05(undefined), true);
  assert.equal(acceptsV05('v0.5'), true);
});

test('dial plan: a live Noise session or no v0.5 support means Noise, whatever the registry says', () => {
  assert.equal(dialPlan('v0.5', true, true), 'noise', 'a peer that spoke Noise is not downgraded by a registry claim');
  for (const s of ['v0.5', 'noise', undefined] as const) assert.equal(dialPlan(s, false), 'noise');
});

test('v05KeyFrom: the registry key for a v0.5 or unmarked node; refused for a node marked noise (downgrade attack)', () => {
  const key = Buffer.alloc(32, 7).toString('base64');
  const v = v05KeyFrom(5, { publicKey: key, suite: 'v0.5' });
  assert.ok(v.ok && v.value.length === 32);
  assert.ok(v05KeyFrom(5, { publicKey: key }).ok, 'an original registry says nothing: today’s behaviour');
  const n = v05KeyFrom(5, { publicKey: key, suite: 'noise' });
  assert.equal(!n.ok && n.error.code, 'connection_failed');
  assert.equal(v05KeyFrom(5, { publicKey: 'AAAA' }).ok, false, 'malformed key');
});
