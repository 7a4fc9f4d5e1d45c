// Byte-exact delivery of 20 MB through lossy, reordering, duplicating, corrupting links (SHA-256 compared).
// Corrupted frames reach the receiver: its tunnel's AEAD must reject every one of them (and the link's
// duplicates as replays), and the connection still delivers every byte.
import test from 'node:test';
import assert from 'node:assert/strict';
import { BulkReceiver, BulkSender, sha256 } from './apps.js';
import { randomBytes } from './harness.js';
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
      pair.connect();
      const isDone = pair.net.runUntil(() => receiver.isFinished && receiver.isClosed && sender.closedError !== undefined, 600e6);
      assert.ok(isDone, `transfer incomplete: ${receiver.received} of ${SIZE} bytes`);
      assert.equal(receiver.received, SIZE);
      assert.equal(receiver.digest(), DATA_SHA);
      assert.equal(receiver.closedError, null);
      assert.equal(sender.closedError, null);
      const doneUs = pair.net.nowUs;
      pair.net.runFor(1_000_000); // frames still in flight (a corrupted one, say) reach their receiver
      const st = pair.clientConn.stats();
      const ls = pair.client.out.stats;
      console.log(
        `loss ${loss * 100}%: ${(doneUs / 1e6).toFixed(2)} s simulated, ` +
          `${((SIZE * 8) / doneUs).toFixed(1)} Mbit/s, retransmits ${st.retransmits}, ` +
          `link drops ${ls.randomLosses + ls.queueDrops}, dup ${ls.duplicated}, reordered ${ls.reordered}, ` +
          `corrupted ${ls.corrupted} → ${pair.server.aead.rejectedCorrupted} rejected by the server's AEAD ` +
          `(${JSON.stringify(pair.server.aead.reasons)}), ${pair.server.out.stats.corrupted} → ` +
          `${pair.client.aead.rejectedCorrupted} by the client's`,
      );
      assert.ok(ls.corrupted > 0, 'corruption was exercised');
      for (const [rx, link] of [
        [pair.server, pair.client.out],
        [pair.client, pair.server.out],
      ] as const) {
        assert.equal(rx.aead.openedCorrupted, 0, `${rx.name}: no corrupted frame opened`);
        assert.equal(rx.aead.rejectedCorrupted, link.stats.corrupted, `${rx.name}: every corrupted frame rejected`);
        assert.equal(rx.aead.rejectedReplays, link.stats.duplicated, `${rx.name}: every duplicate rejected as a replay`);
        assert.equal(rx.aead.rejected, link.stats.corrupted + link.stats.duplicated, `${rx.name}: nothing else rejected`);
        assert.equal(rx.handleErrors, 0, `${rx.name}: the connection only saw authentic segments`);
      }
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
