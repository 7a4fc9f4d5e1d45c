import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { seedFromEnv } from '../../../src/core/index.js';
import { REPLAY_WINDOW_SIZE, ReplayWindow } from '../../../src/crypto/replay-window.js';

const seed = seedFromEnv();
test.after(() => console.log(`# replay-window seed PILOT_SEED=${seed}`));

test('duplicates are rejected, reordering within the window accepted, too-old rejected', () => {
  const w = new ReplayWindow();
  assert.equal(w.update(0), true);
  assert.equal(w.update(0), false);
  assert.equal(w.update(5), true);
  assert.equal(w.update(3), true, 'reordered');
  assert.equal(w.update(3), false);
  assert.equal(w.update(5000), true);
  assert.equal(w.update(5000 - (REPLAY_WINDOW_SIZE - 1)), true, 'oldest still inside the window');
  assert.equal(w.update(5000 - REPLAY_WINDOW_SIZE), false, 'just outside');
  assert.equal(w.update(5), false, 'far too old');
  assert.equal(w.check(4999), true);
  assert.equal(w.check(4999), true, 'check does not record');
  assert.equal(w.highestCounter, 5000);
});

test('every counter in a full window of reordering is accepted exactly once', () => {
  const w = new ReplayWindow();
  assert.ok(w.update(10_000));
  for (let c = 10_000 - REPLAY_WINDOW_SIZE + 1; c < 10_000; c++) assert.equal(w.update(c), true, String(c));
  for (let c = 10_000 - REPLAY_WINDOW_SIZE + 1; c <= 10_000; c++) assert.equal(w.update(c), false, String(c));
});

test('large jumps clear stale bits; counters near 2^53 work; invalid counters are refused', () => {
  const w = new ReplayWindow();
  for (let c = 0; c < 4096; c++) w.update(c);
  assert.equal(w.update(1_000_000), true);
  // Every ring slot was set by the old counters; the jump must clear them, or these would read as replays.
  for (let c = 1_000_000 - REPLAY_WINDOW_SIZE + 1; c < 1_000_000; c++) assert.equal(w.update(c), true, String(c));
  assert.equal(w.update(1_000_000 - REPLAY_WINDOW_SIZE), false);
  const big = 2 ** 53 - 10;
  assert.equal(w.update(big), true);
  assert.equal(w.update(big - 1), true);
  assert.equal(w.update(big), false);
  assert.equal(w.check(-1), false);
  assert.equal(w.check(1.5), false);
  assert.equal(w.check(NaN), false);
  assert.equal(w.check(2 ** 53), false);
});

// Model: a Set of every accepted counter plus the highest; the window accepts c iff unseen and c > highest - W.
test('model-based: ReplayWindow agrees with a naive Set model', () => {
  const counterArb = fc.oneof(
    fc.nat({ max: 20_000 }),
    fc.integer({ min: 0, max: 3 * REPLAY_WINDOW_SIZE }), // dense near the start
  );
  // Sequences drift forward like real traffic: a base that grows plus jitter back and forth.
  const opsArb = fc.array(fc.tuple(fc.nat({ max: 300 }), fc.integer({ min: -2 * REPLAY_WINDOW_SIZE - 5, max: 40 }), counterArb), {
    maxLength: 400,
  });
  fc.assert(
    fc.property(opsArb, (ops) => {
      const w = new ReplayWindow();
      const seen = new Set<number>();
      let highest = -1;
      let base = 0;
      for (const [advance, jitter, random] of ops) {
        base += advance;
        const c = jitter % 7 === 0 ? random : Math.max(0, base + jitter);
        const expected = !seen.has(c) && c > highest - REPLAY_WINDOW_SIZE;
        assert.equal(w.check(c), expected, `check ${c}`);
        assert.equal(w.update(c), expected, `update ${c}`);
        if (expected) {
          seen.add(c);
          highest = Math.max(highest, c);
        }
      }
    }),
    { seed, numRuns: 300 },
  );
});
