// Flow control: a receiver that stops reading closes the window; the sender must resume when it reopens,
// even when the window update is lost (zero-window persist probes).
import test from 'node:test';
import assert from 'node:assert/strict';
import { BulkReceiver, BulkSender, sha256 } from './apps.js';
import { randomBytes } from './harness.js';
import { Pair, withSeed } from './pair.js';

const SIZE = 2 * 1024 * 1024;
const DATA = randomBytes(SIZE, 9);
const RECV_WINDOW = 128 * 1024;

for (const isUpdateLost of [false, true]) {
  test(`no deadlock on a zero window${isUpdateLost ? ' when the window update is lost' : ''}`, () =>
    withSeed(`zero window ${isUpdateLost}`, (seed) => {
      const tx = new BulkSender(DATA);
      const rx = new BulkReceiver(true);
      let dropBackUntilUs = -1;
      let droppedUpdates = 0;
      const pair = new Pair({
        seed,
        link: { delayUs: 10_000, rateBps: 12_500_000 },
        back: {
          delayUs: 10_000,
          rateBps: 12_500_000,
          // receiver → sender: lose everything right after the application resumes reading
          dropIf: (_b, nowUs) => {
            if (nowUs < dropBackUntilUs) {
              droppedUpdates++;
              return true;
            }
            return false;
          },
        },
        server: { recvBufferBytes: RECV_WINDOW },
        clientApp: tx.handler,
        serverApp: rx.handler,
      });
      pair.connect();
      pair.net.runFor(100_000);
      rx.isPaused = true;
      pair.net.runFor(10_000_000); // the app does not read for 10 s
      const stalled = pair.serverConn.readableBytes;
      // filled up to less than one segment (sender-side silly-window avoidance keeps the last sliver)
      assert.ok(stalled <= RECV_WINDOW && stalled > RECV_WINDOW - 1420, `window filled: ${stalled}`);
      assert.ok(pair.clientConn.stats().peerWindowBytes < 1420);
      assert.equal(pair.clientConn.stats().bytesInFlight, 0);
      assert.ok(!rx.isFinished);
      const resumedAtUs = pair.net.nowUs;
      if (isUpdateLost) dropBackUntilUs = resumedAtUs + 50_000;
      rx.isPaused = false;
      rx.drain(pair.server);
      pair.net.service(pair.server);
      assert.ok(pair.net.runUntil(() => rx.isFinished, 60e6), `stalled at ${rx.received} bytes`);
      assert.equal(rx.digest(), sha256(DATA));
      const recoverS = (rx.finishedAtUs - resumedAtUs) / 1e6;
      console.log(`resumed → finished in ${recoverS.toFixed(2)} s simulated, ${droppedUpdates} updates dropped`);
      if (isUpdateLost) assert.ok(droppedUpdates > 0, 'the window update was dropped');
      assert.ok(recoverS < 10, 'persist probing recovers within seconds');
    }));
}
