import test from 'node:test';
import assert from 'node:assert/strict';
import { acceptsV05, dialPlan } from '../../../src/node/peer-suite.js';

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
