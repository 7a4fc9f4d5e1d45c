// RangeSet against a naive model: a boolean per integer.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { seedFromEnv } from '../../../src/core/rng.js';
import { RangeSet } from '../../../src/transport/range-set.js';

const N = 200;
type Op = { kind: 'add'; start: number; len: number } | { kind: 'removeBelow'; x: number } | { kind: 'removeFirst' };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('add' as const), start: fc.integer({ min: 0, max: N - 1 }), len: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeBelow' as const), x: fc.integer({ min: 0, max: N }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeFirst' as const) }) },
);

function modelRanges(m: boolean[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < m.length; i++) {
    if (!m[i]) continue;
    const s = i;
    while (i < m.length && m[i]) i++;
    out.push([s, i]);
  }
  return out;
}

test('RangeSet matches a naive boolean-array model (add, removeBelow, removeFirst, has, covers)', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 5, maxLength: 80, size: 'max' }), fc.array(fc.tuple(fc.nat(N), fc.nat(10)), { maxLength: 10 }), (ops, probes) => {
      const rs = new RangeSet(1);
      const m: boolean[] = new Array(N + 40).fill(false);
      for (const op of ops) {
        if (op.kind === 'add') {
          let fresh = 0;
          for (let i = op.start; i < op.start + op.len; i++) if (!m[i]) (m[i] = true), fresh++;
          assert.equal(rs.add(op.start, op.start + op.len), fresh, 'add reports newly covered integers');
        } else if (op.kind === 'removeBelow') {
          for (let i = 0; i < op.x; i++) m[i] = false;
          rs.removeBelow(op.x);
        } else {
          const r = modelRanges(m)[0];
          if (r) for (let i = r[0]; i < r[1]; i++) m[i] = false;
          rs.removeFirst();
        }
        assert.deepEqual(rs.toArray(), modelRanges(m));
      }
      for (const [x, len] of probes) {
        assert.equal(rs.has(x), m[x] === true);
        let all = true;
        for (let i = x; i < x + len; i++) all &&= m[i] === true;
        assert.equal(rs.covers(x, x + len), all);
      }
      const ranges = modelRanges(m);
      assert.equal(rs.count, ranges.length);
      if (ranges.length > 0) {
        assert.equal(rs.min(), ranges[0]![0]);
        assert.equal(rs.maxEnd(), ranges.at(-1)![1]);
      } else assert.ok(rs.isEmpty());
    }),
    { numRuns: 1500, seed: seedFromEnv() | 0 },
  );
});

test('RangeSet handles offsets beyond 2^32 exactly', () => {
  const rs = new RangeSet();
  const big = 2 ** 40;
  rs.add(big, big + 10);
  rs.add(big + 20, big + 30);
  rs.add(big + 10, big + 20);
  assert.deepEqual(rs.toArray(), [[big, big + 30]]);
  assert.ok(rs.covers(big + 5, big + 25));
});
