// The sender's SACK scoreboard against a naive array of packet records: acknowledgement by ranges, RFC 9002
// loss detection by packet and time threshold, RTO (mark all lost), bytes in flight, the resolved base.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { seedFromEnv } from '../../../src/core/rng.js';
import {
  SackScoreboard,
  PKT_ACK_ELICITING,
  PKT_IN_FLIGHT,
} from '../../../src/transport/sack-scoreboard.js';

interface ModelPkt {
  sentUs: number;
  size: number;
  flags: number;
  state: 'out' | 'acked' | 'lost';
}

type Op =
  | { kind: 'send'; size: number; flags: number; dtUs: number }
  | { kind: 'ack'; hiBack: number; len: number }
  | { kind: 'detect'; dtUs: number }
  | { kind: 'rto' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('send' as const),
      size: fc.integer({ min: 30, max: 1420 }),
      flags: fc.constantFrom(0, PKT_ACK_ELICITING, PKT_IN_FLIGHT | PKT_ACK_ELICITING),
      dtUs: fc.integer({ min: 0, max: 2000 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('ack' as const), hiBack: fc.integer({ min: 0, max: 30 }), len: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('detect' as const), dtUs: fc.integer({ min: 0, max: 3000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rto' as const) }) },
);

const LOSS_DELAY_US = 10_000;

test('SackScoreboard matches a naive model of packet records', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 10, maxLength: 150, size: 'max' }), fc.integer({ min: 1, max: 64 }), (ops, cap) => {
      const sb = new SackScoreboard(cap);
      const m: ModelPkt[] = [];
      let now = 0;
      let largestAcked = -1;
      const tracked = (p: ModelPkt) => (p.flags & (PKT_IN_FLIGHT | PKT_ACK_ELICITING)) !== 0;
      const resolved = (p: ModelPkt) => !tracked(p) || p.state !== 'out';
      const base = () => {
        let i = 0;
        while (i < m.length && resolved(m[i]!)) i++;
        return i;
      };
      const markLost = (newly: number[]) => {
        const got = Array.from(sb.newlyLost.subarray(0, sb.newlyLostCount));
        assert.deepEqual(got, newly);
      };
      for (const op of ops) {
        if (op.kind === 'send') {
          now += op.dtUs;
          const pn = sb.onSent(now, op.size, op.flags, 0, 0, 0, 0, 0);
          assert.equal(pn, m.length);
          m.push({ sentUs: now, size: op.size, flags: op.flags, state: 'out' });
        } else if (op.kind === 'ack') {
          if (m.length === 0) continue;
          const hi = Math.max(0, m.length - 1 - op.hiBack);
          const lo = hi - op.len;
          const baseBefore = base();
          sb.beginAck();
          sb.ackRange(lo, hi);
          const newly: number[] = [];
          for (let pn = Math.max(lo, baseBefore); pn <= hi; pn++) {
            const p = m[pn]!;
            if (p.state === 'out') {
              p.state = 'acked';
              if (tracked(p)) newly.push(pn);
            }
          }
          if (hi >= Math.max(lo, baseBefore)) largestAcked = Math.max(largestAcked, hi);
          assert.deepEqual(Array.from(sb.newlyAcked.subarray(0, sb.newlyAckedCount)), newly);
          sb.advanceBase();
        } else if (op.kind === 'detect') {
          now += op.dtUs;
          const next = sb.detectLosses(now, LOSS_DELAY_US, 3);
          const newly: number[] = [];
          let modelNext = Infinity;
          for (let pn = base(); pn < largestAcked; pn++) {
            const p = m[pn]!;
            if (!tracked(p) || p.state !== 'out') continue;
            if (largestAcked - pn >= 3 || p.sentUs + LOSS_DELAY_US <= now) {
              p.state = 'lost';
              newly.push(pn);
            } else modelNext = Math.min(modelNext, p.sentUs + LOSS_DELAY_US);
          }
          markLost(newly);
          assert.equal(next, modelNext);
          sb.advanceBase();
        } else {
          sb.markAllLost();
          const newly: number[] = [];
          for (let pn = base(); pn < m.length; pn++) {
            const p = m[pn]!;
            if (tracked(p) && p.state === 'out') {
              p.state = 'lost';
              newly.push(pn);
            }
          }
          markLost(newly);
          sb.advanceBase();
        }
        assert.equal(sb.largestAckedPn, largestAcked);
        assert.equal(sb.basePn, base(), 'basePn = lowest unresolved packet');
        const inFlight = m.filter((p) => p.state === 'out' && p.flags & PKT_IN_FLIGHT).reduce((a, p) => a + p.size, 0);
        assert.equal(sb.bytesInFlight, inFlight);
        assert.equal(sb.ackElicitingOutstanding, m.filter((p) => p.state === 'out' && p.flags & PKT_ACK_ELICITING).length);
        for (let pn = 0; pn < m.length; pn++) assert.equal(sb.isResolved(pn), pn < base() || resolved(m[pn]!));
      }
    }),
    { numRuns: 1500, seed: seedFromEnv() | 0 },
  );
});
