// RFC 6298 §2 arithmetic on worked examples, plus the RFC 9002 §5.3 ack-delay rule.
import test from 'node:test';
import assert from 'node:assert/strict';
import { RttEstimator } from '../../../src/transport/rtt-estimator.js';

const RFC_CFG = { initialRtoUs: 1_000_000, minRtoUs: 1_000_000, maxRtoUs: 60_000_000, granularityUs: 1_000 };

test('before any sample the RTO is the initial 1 s (RFC 6298 §2.1)', () => {
  const r = new RttEstimator(RFC_CFG);
  assert.equal(r.rtoUs(), 1_000_000);
  assert.equal(r.hasSample, false);
});

test('first sample: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4·RTTVAR) (RFC 6298 §2.2)', () => {
  const r = new RttEstimator({ ...RFC_CFG, minRtoUs: 0 });
  r.update(100_000);
  assert.equal(r.srttUs, 100_000);
  assert.equal(r.rttvarUs, 50_000);
  assert.equal(r.rtoUs(), 100_000 + 200_000);
});

test('subsequent samples: RTTVAR from the old SRTT, β = 1/4, α = 1/8 (RFC 6298 §2.3)', () => {
  const r = new RttEstimator({ ...RFC_CFG, minRtoUs: 0 });
  r.update(100_000);
  r.update(200_000);
  // RTTVAR = 3/4·50 + 1/4·|100 − 200| = 62.5 ms; SRTT = 7/8·100 + 1/8·200 = 112.5 ms
  assert.equal(r.rttvarUs, 62_500);
  assert.equal(r.srttUs, 112_500);
  assert.equal(r.rtoUs(), 112_500 + 250_000);
  r.update(112_500);
  // |SRTT − R'| = 0: RTTVAR = 3/4·62.5 = 46.875 ms, SRTT unchanged
  assert.equal(r.rttvarUs, 46_875);
  assert.equal(r.srttUs, 112_500);
});

test('RTO is rounded up to the minimum and capped at the maximum (RFC 6298 §2.4, §2.5)', () => {
  const r = new RttEstimator(RFC_CFG);
  r.update(10_000);
  assert.equal(r.rtoUs(), 1_000_000, 'a 10 ms path still gets the 1 s floor of RFC 6298');
  const linux = new RttEstimator({ ...RFC_CFG, minRtoUs: 200_000 });
  linux.update(10_000);
  assert.equal(linux.rtoUs(), 200_000);
  const slow = new RttEstimator({ ...RFC_CFG, maxRtoUs: 5_000_000 });
  slow.update(4_000_000);
  assert.equal(slow.rtoUs(), 5_000_000);
});

test('clock granularity bounds the variance term: constant RTT keeps RTO = SRTT + G', () => {
  const r = new RttEstimator({ ...RFC_CFG, minRtoUs: 0 });
  for (let i = 0; i < 200; i++) r.update(50_000);
  assert.ok(r.rttvarUs < 1);
  assert.equal(r.rtoUs(), 50_000 + 1_000);
});

test('ack delay is subtracted only while the sample stays ≥ min RTT (RFC 9002 §5.3)', () => {
  const r = new RttEstimator({ ...RFC_CFG, minRtoUs: 0 });
  r.update(50_000);
  r.update(70_000, 15_000); // adjusted 55 ms
  assert.equal(r.srttUs, 0.875 * 50_000 + 0.125 * 55_000);
  assert.equal(r.latestRttUs, 70_000);
  const s = new RttEstimator({ ...RFC_CFG, minRtoUs: 0 });
  s.update(50_000);
  s.update(55_000, 20_000); // 55 − 20 < 50: not subtracted
  assert.equal(s.srttUs, 0.875 * 50_000 + 0.125 * 55_000);
  assert.equal(s.minRttUs, 50_000);
});

test('PTO = SRTT + max(4·RTTVAR, G) + max ack delay, without the RTO floor (RFC 9002 §6.2.1)', () => {
  const r = new RttEstimator({ ...RFC_CFG, minRtoUs: 200_000 });
  r.update(20_000);
  assert.equal(r.ptoUs(25_000), 20_000 + 40_000 + 25_000);
  assert.equal(r.rtoUs(), 200_000);
});
