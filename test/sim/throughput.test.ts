// Throughput under random loss (BBR vs NewReno) and fairness of competing flows on a shared bottleneck.
// Figures are simulated-time measurements, deterministic per seed.
import test from 'node:test';
import assert from 'node:assert/strict';
import { newRenoFactory } from '../../src/transport/congestion/new-reno.js';
import type { ConnectionOptions } from '../../src/transport/connection.js';
import { BulkReceiver, BulkSender } from './apps.js';
import { jainIndex, mbit } from './harness.js';
import { dumbbell, Pair, SimNet, withSeed } from './pair.js';

const PATTERN = new Uint8Array(1 << 20);

function goodputRun(seed: number, durationUs: number, options: ConnectionOptions) {
  const rateBps = 12_500_000; // 100 Mbit/s
  const link = { delayUs: 25_000, rateBps, queueBytes: 625_000, loss: 0.01 }; // 50 ms RTT, 1 BDP of buffer
  const tx = new BulkSender(PATTERN, true);
  const rx = new BulkReceiver(false, false);
  const pair = new Pair({ seed, link, client: options, clientApp: tx.handler, serverApp: rx.handler });
  pair.connect();
  pair.net.runFor(durationUs);
  return { rateBps, goodputBps: (rx.received * 1e6) / durationUs, stats: pair.clientConn.stats(), link: pair.client.out.stats };
}

test('BBR keeps ≥ 85% of a 100 Mbit/s, 50 ms RTT link with 1% random loss', () =>
  withSeed('goodput', (seed) => {
    // 30 s simulated, measured from connect() (handshake and STARTUP included, nothing excluded);
    // goodput = in-order payload bytes delivered to the application. 1% loss in both directions.
    const r = goodputRun(seed, 30_000_000, {});
    const pct = (100 * r.goodputBps) / r.rateBps;
    console.log(
      `goodput ${mbit(r.goodputBps)} Mbit/s = ${pct.toFixed(1)}% of link (BBR, 30 s incl. startup; ` +
        `${r.stats.retransmits} retransmits, ${r.link.randomLosses} random + ${r.link.queueDrops} queue drops)`,
    );
    assert.ok(pct >= 85, `goodput ${pct.toFixed(1)}% < 85%`);
  }));

test('NewReno on the same lossy link, for comparison (collapses as AIMD does)', () =>
  withSeed('goodput newreno', (seed) => {
    const r = goodputRun(seed, 10_000_000, { congestion: newRenoFactory() });
    const pct = (100 * r.goodputBps) / r.rateBps;
    console.log(`goodput ${mbit(r.goodputBps)} Mbit/s = ${pct.toFixed(1)}% of link (NewReno, 10 s)`);
    // Mathis et al.: MSS/RTT · 1.22/√p ≈ 2.7 Mbit/s at 1% loss and 50 ms
    assert.ok(pct < 20);
  }));

test('two flows on a shared bottleneck share it fairly (Jain index ≥ 0.9)', () =>
  withSeed('fairness', (seed) => {
    const net = new SimNet(seed);
    const rateBps = 5_000_000; // 40 Mbit/s
    const rxs: BulkReceiver[] = [];
    const flows = dumbbell(
      net,
      2,
      { delayUs: 20_000, jitterUs: 1_000, rateBps, queueBytes: 200_000 }, // 40 ms RTT, 1 BDP of buffer
      { delayUs: 20_000 },
      (i) => {
        const tx = new BulkSender(PATTERN, true);
        const rx = new BulkReceiver(false, false);
        rxs[i] = rx;
        return { client: tx.handler, server: rx.handler };
      },
    );
    net.connect(flows[0]!.client, flows[0]!.clientCfg);
    net.runFor(2_000_000); // the second flow joins a busy link
    net.connect(flows[1]!.client, flows[1]!.clientCfg);
    net.runFor(8_000_000);
    const start = rxs.map((r) => r.received);
    const windowUs = 50_000_000;
    net.runFor(windowUs);
    const rates = rxs.map((r, i) => ((r.received - start[i]!) * 1e6) / windowUs);
    const jain = jainIndex(rates);
    const total = rates.reduce((a, b) => a + b, 0);
    console.log(
      `fairness: Jain index ${jain.toFixed(3)} over 50 s after convergence (flows ${rates.map(mbit).join(' / ')} Mbit/s, ` +
        `link utilisation ${((100 * total) / rateBps).toFixed(1)}%)`,
    );
    assert.ok(jain >= 0.9, `Jain index ${jain.toFixed(3)}`);
    assert.ok(total >= 0.8 * rateBps, 'the flows together still fill the link');
  }));
