// Byte-exact delivery of 20 MB through lossy, reordering, duplicating, corrupting links (SHA-256 compared).
import test from 'node:test';
import assert from 'node:assert/strict';
import { BulkReceiver, BulkSender, sha256 } from './apps.js';
import { randomBytes, installCorruptionProbe } from './harness.js';
import { Pair, withSeed } from './pair.js';

const SIZE = 20 * 1024 * 1024;
const DATA = randomBytes(SIZE, 20);
const DATA_SHA = sha256(DATA);

for (const loss of [0, 0.05, 0.2]) {
  test(`20 MB arrive byte-exact at ${loss * 100}% loss with reordering, duplication and corruption`, () =>
    withSeed(`delivery ${loss}`, (seed) => {
      const sender = new BulkSender(DATA);
      const receiver = new BulkReceiver(true);
      const link = {
        delayUs: 10_000,
        jitterUs: 1_000,
        rateBps: 12_500_000,
        queueBytes: 250_000,
        loss,
        reorder: 0.02,
        reorderDelayUs: 8_000,
        duplicate: 0.02,
        corrupt: 0.002,
      };
      const pair = new Pair({ seed, link, clientApp: sender.handler, serverApp: receiver.handler });
      const probe = installCorruptionProbe(pair.net);
      pair.connect();
      const isDone = pair.net.runUntil(() => receiver.isFinished && receiver.isClosed && sender.closedError !== undefined, 600e6);
      assert.ok(isDone, `transfer incomplete: ${receiver.received} of ${SIZE} bytes`);
      assert.equal(receiver.received, SIZE);
      assert.equal(receiver.digest(), DATA_SHA);
      assert.equal(receiver.closedError, null);
      assert.equal(sender.closedError, null);
      const st = pair.clientConn.stats();
      const ls = pair.client.out.stats;
      console.log(
        `loss ${loss * 100}%: ${(pair.net.nowUs / 1e6).toFixed(2)} s simulated, ` +
          `${((SIZE * 8) / pair.net.nowUs).toFixed(1)} Mbit/s, retransmits ${st.retransmits}, ` +
          `link drops ${ls.randomLosses + ls.queueDrops}, dup ${ls.duplicated}, reordered ${ls.reordered}, ` +
          `corrupted ${probe.seen} (${probe.rejected} rejected)`,
      );
      assert.ok(probe.seen > 0, 'corruption was exercised');
    }));
}

test('5 MB arrive byte-exact through Gilbert–Elliott burst loss in both directions', () =>
  withSeed('burst loss', (seed) => {
    const data = DATA.subarray(0, 5 * 1024 * 1024);
    const sender = new BulkSender(data);
    const receiver = new BulkReceiver(true);
    // mean burst ≈ 3.3 packets at 80% loss, entered on 1% of packets: ~3% loss, in clumps
    const link = { delayUs: 15_000, rateBps: 6_250_000, queueBytes: 200_000, burstLoss: { pEnterBad: 0.01, pExitBad: 0.3, lossInBad: 0.8 } };
    const pair = new Pair({ seed, link, clientApp: sender.handler, serverApp: receiver.handler });
    pair.connect();
    assert.ok(pair.net.runUntil(() => receiver.isFinished, 300e6), `stalled at ${receiver.received}`);
    assert.equal(receiver.digest(), sha256(data));
    const ls = pair.client.out.stats;
    console.log(`burst loss: ${ls.burstLosses} packets lost in bursts, ${(pair.net.nowUs / 1e6).toFixed(2)} s simulated`);
    assert.ok(ls.burstLosses > 0);
  }));
