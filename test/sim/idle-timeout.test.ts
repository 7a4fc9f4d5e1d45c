// Liveness: a peer that vanishes mid-transfer ends the connection with closed{timeout}; an unanswered SYN
// ends it with closed{connection_failed}.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { PilotError } from '../../src/core/errors.js';
import { BulkReceiver, BulkSender } from './apps.js';
import { randomBytes } from './harness.js';
import { Pair, withSeed } from './pair.js';

const IDLE_US = 30_000_000;

test('idle timeout fires closed{timeout} when the peer vanishes mid-transfer', () =>
  withSeed('idle timeout', (seed) => {
    const tx = new BulkSender(randomBytes(1 << 20, 3), true);
    const rx = new BulkReceiver(false, false);
    const pair = new Pair({
      seed,
      link: { delayUs: 20_000, rateBps: 2_500_000 },
      client: { idleTimeoutUs: IDLE_US },
      server: { idleTimeoutUs: IDLE_US },
      clientApp: tx.handler,
      serverApp: rx.handler,
    });
    pair.connect();
    pair.net.runFor(2_000_000);
    assert.ok(rx.received > 1_000_000, 'transfer under way');
    const cutUs = pair.net.nowUs;
    pair.client.out.cfg.loss = 1;
    pair.server.out.cfg.loss = 1;
    assert.ok(pair.net.runUntil(() => tx.closedError !== undefined && rx.isClosed, cutUs + 2 * IDLE_US));
    for (const e of [tx.closedError, rx.closedError] as PilotError[]) {
      assert.equal(e.code, 'timeout');
      assert.match(e.message, /idle/);
    }
    const after = (pair.net.nowUs - cutUs) / 1e6;
    console.log(`closed{timeout} ${after.toFixed(2)} s after the cut; RTOs: ${pair.clientConn.stats().rtoCount}`);
    assert.ok(after >= IDLE_US / 1e6 - 0.1 && after <= IDLE_US / 1e6 + 1, `timeout after ${after} s`);
    assert.ok(pair.clientConn.isDrained() && pair.serverConn.isDrained());
    assert.equal(pair.clientConn.pollTimeout(), null);
  }));

test('a SYN nobody answers ends in closed{connection_failed}', () =>
  withSeed('handshake timeout', (seed) => {
    const pair = new Pair({ seed, link: { delayUs: 10_000, loss: 1 }, client: { idleTimeoutUs: 10_000_000 } });
    const c = pair.connect();
    assert.ok(pair.net.runUntil(() => c.isDrained(), 100e6));
    const closed = pair.client.events.find((e) => e.kind === 'closed');
    assert.ok(closed && closed.kind === 'closed' && closed.error?.code === 'connection_failed');
    // SYN retransmitted with exponential backoff: 0, 1, 3, 7 s (initial RTO 1 s, RFC 6298 §5.5)
    assert.equal(pair.client.out.stats.packets, 4);
  }));
