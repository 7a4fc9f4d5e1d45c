// Link impairment measured over real namespaces: delay through the TAP userspace link, loss via nft,
// jitter/reordering, rate via tbf. Root + nftables (+ gcc for TAP links) only; skipped with one line elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { netsimUnavailableReason, which } from '../../netsim/exec.js';
import { runLinkCheck } from '../../netsim/selftest.js';

const why = netsimUnavailableReason() ?? (which('gcc') || which('cc') ? null : 'netsim delay links need gcc (apt-get install -y gcc)');

test('delay: 20 ms each way gives a ~40 ms UDP round trip', { skip: why ?? false, timeout: 60_000 }, async (t) => {
  const r = await runLinkCheck({ delayMs: 20 }, 20);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  t.diagnostic(`rtt median ${r.value.rttMedianMs?.toFixed(2)} min ${r.value.rttMinMs?.toFixed(2)} max ${r.value.rttMaxMs?.toFixed(2)} ms, build ${r.value.buildMs.toFixed(0)} ms`);
  assert.ok(r.value.rttMinMs !== null && r.value.rttMinMs >= 39.5, `min rtt ${r.value.rttMinMs}`);
  assert.ok(r.value.rttMedianMs !== null && r.value.rttMedianMs < 50, `median rtt ${r.value.rttMedianMs}`);
});

test('loss: 20% configured drops ~20% of a 500-datagram burst', { skip: netsimUnavailableReason() ?? false, timeout: 60_000 }, async (t) => {
  const r = await runLinkCheck({ lossPct: 20 }, 0, 500, 1);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  const got = r.value.deliveredFraction!;
  t.diagnostic(`delivered ${(got * 100).toFixed(1)}%`);
  // binomial sd at n=500, p=0.2 is 1.8 points; ±8 points is > 4 sd
  assert.ok(got > 0.72 && got < 0.88, `delivered ${got}`);
});

test('jitter and reordering reorder datagrams but deliver all', { skip: why ?? false, timeout: 60_000 }, async (t) => {
  const r = await runLinkCheck({ delayMs: 10, jitterMs: 5, reorderPct: 20 }, 10, 200, 1);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  t.diagnostic(`reordered ${r.value.reordered}/200, rtt ${r.value.rttMinMs?.toFixed(1)}..${r.value.rttMaxMs?.toFixed(1)} ms`);
  assert.equal(r.value.deliveredFraction, 1);
  assert.ok(r.value.reordered > 0);
  assert.ok(r.value.rttMinMs! < 19, 'reordered pings skip the delay');
});

test('rate: tbf at 4 Mbit/s caps a back-to-back burst', { skip: netsimUnavailableReason() ?? false, timeout: 60_000 }, async (t) => {
  const r = await runLinkCheck({ rateKbit: 4000 }, 0, 300, 0, 1000);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  t.diagnostic(`received ${r.value.receivedKbit?.toFixed(0)} kbit/s, ${(r.value.deliveredFraction! * 100).toFixed(0)}% delivered`);
  assert.ok(r.value.receivedKbit! > 2800 && r.value.receivedKbit! < 4600, `rate ${r.value.receivedKbit}`);
});
