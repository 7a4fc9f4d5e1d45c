// FIN/RST semantics: half-close, simultaneous close, reset, data after FIN, TIME_WAIT absorbing a FIN.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { ConnEvent } from '../../src/transport/connection.js';
import { decodeSegment, encodeSegment, FLAG_ACK, FLAG_FIN } from '../../src/wire/segment.js';
import { BulkReceiver, BulkSender, sha256 } from './apps.js';
import { randomBytes } from './harness.js';
import { Pair, withSeed, type SimEndpoint } from './pair.js';

const LINK = { delayUs: 5_000, rateBps: 12_500_000 };
const TIME_WAIT_US = 2_000_000;

function kinds(evs: ConnEvent[]): string[] {
  return evs.map((e) => (e.kind === 'closed' ? `closed:${e.error === null ? 'ok' : e.error.code}` : e.kind));
}

test('half-close: each direction finishes independently, then both close', () =>
  withSeed('half-close', (seed) => {
    const request = randomBytes(100_000, 1);
    const reply = randomBytes(50_000, 2);
    const clientTx = new BulkSender(request);
    const clientRx = new BulkReceiver(true, false);
    const serverRx = new BulkReceiver(true, false);
    let serverTx: BulkSender | null = null;
    const pair = new Pair({
      seed,
      link: LINK,
      client: { timeWaitUs: TIME_WAIT_US },
      server: { timeWaitUs: TIME_WAIT_US },
      clientApp: (ev, ep, net) => {
        clientTx.handler(ev, ep);
        clientRx.handler(ev, ep, net);
      },
      serverApp: (ev, ep, net) => {
        serverRx.handler(ev, ep, net);
        if (ev.kind === 'finished') {
          // the client's half is closed; ours is still open: reply, then finish
          assert.equal(ep.conn!.state(), 'close_wait');
          serverTx = new BulkSender(reply);
          serverTx.pump(ep);
        }
        if (ev.kind === 'writable') serverTx?.pump(ep);
      },
    });
    pair.connect();
    assert.ok(pair.net.runUntil(() => serverRx.isFinished, 10e6));
    assert.equal(serverRx.digest(), sha256(request));
    assert.ok(pair.net.runUntil(() => clientRx.isFinished, 10e6));
    assert.equal(clientRx.digest(), sha256(reply));
    assert.ok(pair.net.runUntil(() => clientRx.isClosed && serverRx.isClosed, 10e6));
    assert.equal(pair.clientConn.state(), 'time_wait', 'the active closer waits');
    assert.equal(pair.serverConn.state(), 'closed');
    assert.ok(pair.serverConn.isDrained());
    assert.deepEqual(kinds(pair.client.events).filter((k) => k !== 'readable'), ['connected', 'finished', 'closed:ok']);
    assert.deepEqual(kinds(pair.server.events).filter((k) => k !== 'readable'), ['connected', 'finished', 'closed:ok']);
    pair.net.runFor(TIME_WAIT_US + 1);
    assert.ok(pair.clientConn.isDrained());
    assert.equal(pair.clientConn.pollTimeout(), null);
  }));

test('both sides FIN at once: both close cleanly through TIME_WAIT', () =>
  withSeed('simultaneous close', (seed) => {
    const a = randomBytes(3000, 3);
    const b = randomBytes(5000, 4);
    const rxA = new BulkReceiver(true, false);
    const rxB = new BulkReceiver(true, false);
    const pair = new Pair({
      seed,
      link: LINK,
      client: { timeWaitUs: TIME_WAIT_US },
      server: { timeWaitUs: TIME_WAIT_US },
      clientApp: (ev, ep, net) => rxA.handler(ev, ep, net),
      serverApp: (ev, ep, net) => rxB.handler(ev, ep, net),
    });
    pair.connect();
    assert.ok(pair.net.runUntil(() => pair.server.conn !== null && pair.serverConn.state() === 'established', 1e6));
    // same instant, both directions
    assert.equal(pair.clientConn.write(a), a.length);
    pair.clientConn.finish();
    assert.equal(pair.serverConn.write(b), b.length);
    pair.serverConn.finish();
    pair.net.service(pair.client);
    pair.net.service(pair.server);
    assert.ok(pair.net.runUntil(() => rxA.isClosed && rxB.isClosed, 10e6));
    assert.equal(rxA.digest(), sha256(b));
    assert.equal(rxB.digest(), sha256(a));
    assert.equal(rxA.closedError, null);
    assert.equal(rxB.closedError, null);
    assert.equal(pair.clientConn.state(), 'time_wait');
    assert.equal(pair.serverConn.state(), 'time_wait');
    pair.net.runFor(TIME_WAIT_US + 1);
    assert.ok(pair.clientConn.isDrained() && pair.serverConn.isDrained());
  }));

test('RST aborts: the peer gets closed{connection_failed}, both sides reject further writes', () =>
  withSeed('reset', (seed) => {
    const tx = new BulkSender(randomBytes(1 << 20, 5), true);
    const rx = new BulkReceiver(false, false);
    const pair = new Pair({ seed, link: LINK, clientApp: tx.handler, serverApp: rx.handler });
    pair.connect();
    pair.net.runFor(500_000);
    assert.ok(rx.received > 0);
    pair.clientConn.reset();
    pair.net.service(pair.client);
    assert.ok(pair.net.runUntil(() => rx.isClosed, 1e6));
    const err = rx.closedError as { code: string; message: string };
    assert.equal(err.code, 'connection_failed');
    assert.match(err.message, /reset/);
    assert.equal(tx.closedError, null, 'the side that reset closes without error');
    assert.equal(pair.clientConn.write(new Uint8Array(10)), -1);
    assert.equal(pair.serverConn.write(new Uint8Array(10)), -1);
    assert.equal(pair.clientConn.state(), 'closed');
    assert.ok(pair.clientConn.isDrained() && pair.serverConn.isDrained());
    // exactly one closed event each
    assert.equal(pair.client.events.filter((e) => e.kind === 'closed').length, 1);
    assert.equal(pair.server.events.filter((e) => e.kind === 'closed').length, 1);
  }));

test('data after FIN is rejected, locally and on the wire', () =>
  withSeed('data after fin', (seed) => {
    const rx = new BulkReceiver(false, false);
    let finSegment: Uint8Array | null = null;
    const pair = new Pair({
      seed,
      link: {
        ...LINK,
        dropIf: (bytes) => {
          const d = decodeSegment(bytes);
          if (d.ok && d.value.flags & FLAG_FIN) finSegment = bytes.slice();
          return false;
        },
      },
      serverApp: rx.handler,
    });
    const c = pair.connect();
    assert.equal(c.write(new Uint8Array(1000).fill(7)), 1000);
    c.finish();
    assert.equal(c.write(new Uint8Array(1)), -1, 'write after finish');
    pair.net.service(pair.client);
    assert.ok(pair.net.runUntil(() => rx.isFinished, 1e6));
    assert.equal(rx.received, 1000);
    // a (buggy or hostile) peer sends more bytes past its FIN
    const fin = decodeSegment(finSegment!);
    assert.ok(fin.ok);
    const f = fin.value;
    const evil = new Uint8Array(1420);
    const n = encodeSegment(
      {
        flags: FLAG_ACK,
        srcPort: f.srcPort,
        dstPort: f.dstPort,
        connId: f.connId,
        pn: f.pn + 10,
        seq: (f.seq + f.payload.length) >>> 0,
        ack: f.ack,
        window: f.window,
        ackPn: f.ackPn,
        payload: new Uint8Array(10).fill(9),
      },
      evil,
    );
    assert.ok(n.ok);
    const r = pair.serverConn.handle(evil.subarray(0, n.value), pair.net.nowUs);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error.message, /beyond the peer FIN/);
    assert.equal(pair.serverConn.readableBytes, 0);
    assert.equal(pair.serverConn.stats().bytesReceived, 1000);
  }));

test('TIME_WAIT absorbs a retransmitted FIN and re-acknowledges it', () =>
  withSeed('time wait', (seed) => {
    let droppedAcks = 0;
    let finsSeenInTimeWait = 0;
    const rxClient = new BulkReceiver(false, false);
    const rxServer = new BulkReceiver(false, true); // answers the client's FIN with its own
    let client: SimEndpoint | null = null;
    const pair = new Pair({
      seed,
      link: {
        ...LINK,
        // lose the client's first ACK of the server's FIN, so the server must retransmit its FIN
        dropIf: () => {
          if (client?.conn?.state() === 'time_wait' && droppedAcks === 0) {
            droppedAcks++;
            return true;
          }
          return false;
        },
      },
      back: {
        ...LINK,
        dropIf: (bytes) => {
          const d = decodeSegment(bytes);
          if (d.ok && d.value.flags & FLAG_FIN && client?.conn?.state() === 'time_wait') finsSeenInTimeWait++;
          return false;
        },
      },
      client: { timeWaitUs: 5_000_000 },
      clientApp: rxClient.handler,
      serverApp: rxServer.handler,
    });
    client = pair.client;
    const c = pair.connect();
    c.write(new Uint8Array(5000));
    c.finish();
    pair.net.service(pair.client);
    assert.ok(pair.net.runUntil(() => rxServer.isClosed, 10e6), 'server closes once its FIN is acknowledged');
    assert.equal(droppedAcks, 1);
    assert.ok(finsSeenInTimeWait >= 1, 'the FIN was retransmitted into TIME_WAIT');
    assert.equal(pair.clientConn.state(), 'time_wait');
    assert.equal(rxServer.closedError, null);
    assert.ok(pair.serverConn.stats().retransmits >= 1);
    assert.ok(pair.net.nowUs < 3_000_000, `closed after ${pair.net.nowUs} µs: well before any idle timeout`);
  }));
