import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/core/rng.js';
import { err, ok } from '../../../src/core/result.js';

test('Rng replays the same sequence for the same seed', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  for (let i = 0; i < 1000; i++) assert.equal(a.nextU32(), b.nextU32());
  assert.notEqual(new Rng(1).nextU32(), new Rng(2).nextU32());
});

test('Rng.next is uniform-ish in [0,1)', () => {
  const r = new Rng(7);
  let sum = 0;
  for (let i = 0; i < 100000; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(Math.abs(sum / 100000 - 0.5) < 0.01);
});

test('err() fills the hint from the code table', () => {
  const r = err('not_running', 'daemon is not running');
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.error.hint ?? '', /pilotctl daemon start/);
  assert.deepEqual(ok(3), { ok: true, value: 3 });
});
