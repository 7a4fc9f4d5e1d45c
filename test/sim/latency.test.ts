// Request/response must not wait for Nagle or delayed ACKs: a small request and its small reply complete in
// about one RTT, never RTT + 25 ms (delayed ACK) or + 200 ms (classic Nagle × delayed-ACK stall).
import test from 'node:test';
import assert from 'node:assert/strict';
import type { ConnEvent } from '../../src/transport/connection.js';
import { Pair, withSeed, type SimEndpoint } from './pair.js';

const ONE_WAY_US = 25_000;
const RTT_US = 2 * ONE_WAY_US;

function rpcPair(seed: number, splitRequest: boolean) {
  const scratch = new Uint8Array(4096);
  const latenciesUs: number[] = [];
  let sentAtUs = 0;
  let pending = 0;
  const serverApp = (ev: ConnEvent, ep: SimEndpoint) => {
    if (ev.kind !== 'readable') return;
    let n: number;
    while ((n = ep.conn!.read(scratch)) > 0) pending += n;
    while (pending >= 100) {
      pending -= 100;
      assert.equal(ep.conn!.write(new Uint8Array(100).fill(2)), 100); // the reply
    }
  };
  let got = 0;
  const clientApp = (ev: ConnEvent, ep: SimEndpoint, net: { nowUs: number }) => {
    if (ev.kind !== 'readable') return;
    let n: number;
    while ((n = ep.conn!.read(scratch)) > 0) got += n;
    if (got >= 100) {
      got -= 100;
      latenciesUs.push(net.nowUs - sentAtUs);
    }
  };
  const pair = new Pair({ seed, link: { delayUs: ONE_WAY_US, rateBps: 12_500_000 }, clientApp, serverApp });
  const c = pair.connect();
  pair.net.runUntil(() => pair.server.conn?.state() === 'established', 1e6);
  const request = (): void => {
    sentAtUs = pair.net.nowUs;
    if (splitRequest) {
      // header and body in separate application writes, both before the driver polls
      c.write(new Uint8Array(20).fill(1));
      c.write(new Uint8Array(80).fill(1));
    } else c.write(new Uint8Array(100).fill(1));
    pair.net.service(pair.client);
  };
  return { pair, request, latenciesUs };
}

for (const split of [false, true]) {
  test(`100-byte request + 100-byte reply completes in ~1 RTT${split ? ' (request in two writes)' : ''}`, () =>
    withSeed('rpc latency', (seed) => {
      const { pair, request, latenciesUs } = rpcPair(seed, split);
      for (let i = 0; i < 20; i++) {
        request();
        assert.ok(pair.net.runUntil(() => latenciesUs.length === i + 1, pair.net.nowUs + 5e6));
        // think time varies: right away, within the delayed-ACK window, and after it
        pair.net.runFor([0, 5_000, 30_000, 300_000][i % 4]!);
      }
      const worst = Math.max(...latenciesUs);
      console.log(`request/response: worst ${(worst / 1000).toFixed(2)} ms, RTT ${RTT_US / 1000} ms`);
      for (const l of latenciesUs) assert.ok(l < RTT_US + 1_000, `round trip took ${l} µs`);
    }));
}

test('a write issued while a previous small segment is unacknowledged waits at most one RTT (Nagle)', () =>
  withSeed('nagle bound', (seed) => {
    const { pair, latenciesUs } = rpcPair(seed, false);
    const c = pair.clientConn;
    const t0 = pair.net.nowUs;
    c.write(new Uint8Array(20).fill(1));
    pair.net.service(pair.client);
    pair.net.runFor(1_000);
    c.write(new Uint8Array(80).fill(1)); // held by Nagle until the first part is acknowledged
    pair.net.service(pair.client);
    assert.ok(pair.net.runUntil(() => latenciesUs.length === 1, t0 + 5e6));
    const took = pair.net.nowUs - t0;
    console.log(`split request with Nagle: ${(took / 1000).toFixed(2)} ms (2 RTT = ${(2 * RTT_US) / 1000} ms)`);
    assert.ok(took < 2 * RTT_US + 2_000, `took ${took} µs: the receiver must ACK a PSH segment at once`);
  }));
