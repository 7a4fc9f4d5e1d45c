// Connection unit tests: handshake in memory, hostile input never throws, sequence wraparound, MSS
// negotiation, unwrapping 32-bit wire fields.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/rng.js';
import { Connection } from '../../../src/transport/connection.js';
import { unwrapU32 } from '../../../src/transport/sequence.js';
import { decodeSegment, encodePolicyResetReason, encodeResetFor, encodeSegment, FLAG_ACK, FLAG_SYN, MAX_PATH_SEGMENT_BYTES, MAX_SEGMENT_BYTES } from '../../../src/wire/segment.js';

function handshake(clientOpts = {}, serverOpts = {}) {
  const buf = new Uint8Array(MAX_SEGMENT_BYTES);
  const client = Connection.connect({ localPort: 1000, remotePort: 80, connId: 42, ...clientOpts }, 0);
  const syn = buf.slice(0, client.pollTransmit(0, buf));
  const acc = Connection.accept(syn, serverOpts, 10_000);
  assert.ok(acc.ok);
  const server = acc.value;
  const synAck = buf.slice(0, server.pollTransmit(10_000, buf));
  assert.ok(client.handle(synAck, 20_000).ok);
  const ack = buf.slice(0, client.pollTransmit(20_000, buf));
  assert.ok(ack.length > 0, 'the third leg goes at once');
  assert.ok(server.handle(ack, 30_000).ok);
  return { client, server, syn, synAck, ack };
}

/** Shuttle segments both ways without loss until both are quiet. */
function pump(a: Connection, b: Connection, nowUs: number): void {
  const buf = new Uint8Array(MAX_SEGMENT_BYTES);
  for (let moved = true; moved; ) {
    moved = false;
    let n: number;
    while ((n = a.pollTransmit(nowUs, buf)) > 0) (moved = true), b.handle(buf.subarray(0, n), nowUs);
    while ((n = b.pollTransmit(nowUs, buf)) > 0) (moved = true), a.handle(buf.subarray(0, n), nowUs);
  }
}

test('three-way handshake: connected on both sides, RTT sampled from the SYN exchange', () => {
  const { client, server, syn } = handshake();
  assert.equal(client.state(), 'established');
  assert.equal(server.state(), 'established');
  assert.deepEqual(client.pollEvent(), { kind: 'connected' });
  assert.deepEqual(server.pollEvent(), { kind: 'connected' });
  assert.equal(client.stats().srttUs, 20_000);
  assert.equal(server.stats().srttUs, 20_000);
  const d = decodeSegment(syn);
  assert.ok(d.ok && d.value.flags === FLAG_SYN && d.value.connId === 42);
});

test('a refused SYN: an RST with a policy reason fails the dial with policy_denied naming the rule; a bare RST is connection_failed', () => {
  const buf = new Uint8Array(MAX_SEGMENT_BYTES);
  for (const withReason of [true, false]) {
    const client = Connection.connect({ localPort: 1000, remotePort: 1001, connId: 5 }, 0);
    const syn = buf.slice(0, client.pollTransmit(0, buf));
    const why = { network: 'lab', network_id: 2, port: 1001, rule: '{"action":"deny"}', rule_index: 0, line: 3 };
    const rst = new Uint8Array(1500);
    const n = encodeResetFor(syn, rst, withReason ? encodePolicyResetReason(why) : undefined);
    assert.ok(client.handle(rst.subarray(0, n), 1000).ok);
    let ev;
    const closes: { error: { code: string; message: string; detail?: unknown } | null }[] = [];
    while ((ev = client.pollEvent())) if (ev.kind === 'closed') closes.push(ev as never);
    const closed = closes[0];
    assert.ok(closed?.error);
    if (withReason) {
      assert.equal(closed.error.code, 'policy_denied');
      assert.match(closed.error.message, /network lab's policy denies port 1001: rule 1 /);
      assert.deepEqual(closed.error.detail, why);
    } else assert.equal(closed.error.code, 'connection_failed');
  }
});

test('accept rejects what is not a well-formed SYN', () => {
  const { synAck, ack } = handshake();
  for (const bad of [synAck, ack, new Uint8Array(10), new Uint8Array(0)]) {
    const r = Connection.accept(bad, {}, 0);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.code, 'invalid_argument');
  }
});

test('segments for another connection are rejected without effect', () => {
  const { client, synAck } = handshake();
  const other = synAck.slice();
  other[9] ^= 1; // connId
  const r = client.handle(other, 50_000);
  assert.equal(r.ok, false);
  assert.equal(client.state(), 'established');
});

test('the smaller maxSegmentBytes of the two SYNs wins', () => {
  const { client, server } = handshake({ maxSegmentBytes: 600 }, {});
  client.pollEvent();
  server.pollEvent();
  assert.equal(server.write(new Uint8Array(5000)), 5000);
  const buf = new Uint8Array(MAX_SEGMENT_BYTES);
  let max = 0;
  for (let n; (n = server.pollTransmit(40_000, buf)) > 0; ) max = Math.max(max, n);
  assert.ok(max <= 600 && max > 500, `largest segment ${max}`);
});

test('path segment size (path MTU discovery): 1420 until raised, then larger segments; shrunk mid-flight, a lost large segment is retransmitted split, and every byte arrives once', () => {
  const { client, server } = handshake();
  client.pollEvent();
  server.pollEvent();
  const big = new Uint8Array(MAX_PATH_SEGMENT_BYTES);
  const sizes = (c: Connection, now: number): number[] => {
    const out: number[] = [];
    for (let n; (n = c.pollTransmit(now, big)) > 0; ) out.push(n);
    return out;
  };
  const data = new Uint8Array(200_000).map((_, i) => i % 251);
  assert.equal(server.write(data.subarray(0, 4000)), 4000);
  // (that first flight is only looked at — lost — and recovered by the retransmissions below)
  assert.ok(Math.max(...sizes(server, 40_000)) <= MAX_SEGMENT_BYTES, 'the base until the path says more');
  // Both ends advertised 64,968 (our transport's ceiling); the path now carries 9000-byte segments.
  server.setPathSegmentBytes(9000);
  assert.equal(server.segmentBytes, 9000);
  const got: number[] = [];
  const drain = () => {
    const r = new Uint8Array(300_000);
    let n;
    while ((n = client.read(r)) > 0) for (let i = 0; i < n; i++) got.push(r[i]!);
  };
  let now = 50_000;
  pumpOnce(server, client, now, big, got);
  assert.equal(server.write(data.subarray(4000, 40_000)), 36_000);
  now += 1000;
  const flight: Uint8Array[] = [];
  for (let n; (n = server.pollTransmit(now, big)) > 0; ) flight.push(big.slice(0, n));
  assert.ok(flight.some((f) => f.length === 9000), `segments at the new size: ${flight.map((f) => f.length).join(',')}`);
  // The path shrinks back to the base before the first large segment arrives: it is lost, the rest arrive.
  server.setPathSegmentBytes(MAX_SEGMENT_BYTES);
  const lost = flight.findIndex((f) => f.length === 9000);
  flight.forEach((f, i) => i !== lost && client.handle(f, now + 100));
  const retx: number[] = [];
  for (let t = now + 200; t < now + 5_000_000 && got.length < 40_000; t += 10_000) {
    for (let n; (n = client.pollTransmit(t, big)) > 0; ) server.handle(big.subarray(0, n), t);
    const timeout = server.pollTimeout();
    if (timeout !== null && timeout <= t) server.handleTimeout(t);
    for (let n; (n = server.pollTransmit(t, big)) > 0; ) retx.push(n), client.handle(big.subarray(0, n), t);
    drain();
  }
  assert.ok(retx.length > 0 && Math.max(...retx) <= MAX_SEGMENT_BYTES, `retransmissions at the shrunk size: ${retx.join(',')}`);
  assert.equal(got.length, 40_000);
  assert.deepEqual(Uint8Array.from(got), data.subarray(0, 40_000));
});

/** Deliver everything both ways once (no loss), then read the receiver dry into `sink`. */
function pumpOnce(a: Connection, b: Connection, now: number, buf: Uint8Array, sink: number[]): void {
  for (let moved = true; moved; ) {
    moved = false;
    for (let n; (n = a.pollTransmit(now, buf)) > 0; ) (moved = true), b.handle(buf.subarray(0, n), now);
    for (let n; (n = b.pollTransmit(now, buf)) > 0; ) (moved = true), a.handle(buf.subarray(0, n), now);
  }
  const r = new Uint8Array(1 << 20);
  for (let n; (n = b.read(r)) > 0; ) for (let i = 0; i < n; i++) sink.push(r[i]!);
}

test('100,000 hostile segments into live connections never throw', () => {
  const seed = seedFromEnv();
  const rng = new Rng(seed);
  let { client, server, synAck, ack } = handshake();
  const buf = new Uint8Array(MAX_SEGMENT_BYTES);
  const data = new Uint8Array(3000).fill(5);
  const templates: Uint8Array[] = [synAck, ack];
  server.write(data);
  for (let n; (n = server.pollTransmit(40_000, buf)) > 0; ) templates.push(buf.slice(0, n));
  let now = 50_000;
  try {
    for (let i = 0; i < 100_000; i++) {
      if (client.isDrained() || server.isDrained()) ({ client, server } = handshake());
      const t = templates[rng.int(templates.length)]!;
      let seg: Uint8Array;
      if (rng.chance(0.2)) {
        seg = new Uint8Array(rng.int(120));
        rng.fill(seg);
        if (seg.length > 10) {
          seg[0] = 1;
          seg.set(t.subarray(2, 10), 2); // right ports and connId, garbage after
        }
      } else {
        seg = t.slice(0, rng.chance(0.1) ? rng.int(t.length + 1) : t.length);
        for (let k = 0, m = 1 + rng.int(3); k < m && seg.length > 11; k++) seg[10 + rng.int(seg.length - 10)] = rng.nextU32() & 0xff;
      }
      now += rng.int(5_000);
      const target = rng.chance(0.5) ? client : server;
      const r = target.handle(seg, now);
      if (!r.ok) assert.equal(r.error.code, 'invalid_argument');
      target.handleTimeout(now);
      while (target.pollTransmit(now, buf) > 0);
      while (target.pollEvent() !== null);
      target.read(buf);
      const to = target.pollTimeout();
      assert.ok(to === null || Number.isFinite(to));
    }
  } catch (e) {
    console.error(`connection fuzz failed: replay with PILOT_SEED=${seed}`);
    throw e;
  }
});

test('stream sequence numbers wrap around 2^32 transparently', () => {
  const { client, server } = handshake({ initialSeq: 0xffffffff - 5000 }, { initialSeq: 0xfffffff0 });
  client.pollEvent();
  server.pollEvent();
  const data = new Uint8Array(200_000).map((_, i) => (i * 13) & 0xff);
  let off = 0;
  const got: number[] = [];
  const into = new Uint8Array(65536);
  for (let now = 40_000; got.length < data.length; now += 1_000) {
    off += Math.max(0, client.write(data.subarray(off)));
    pump(client, server, now);
    for (let n; (n = server.read(into)) > 0; ) got.push(...into.subarray(0, n));
    client.handleTimeout(now);
    server.handleTimeout(now);
    assert.ok(now < 60_000_000, 'transfer stalled');
  }
  assert.deepEqual(Uint8Array.from(got), data);
});

test('unwrapU32 picks the value nearest the expectation, across wraps', () => {
  assert.equal(unwrapU32(5, 0), 5);
  assert.equal(unwrapU32(0xfffffffe, 2), -2);
  assert.equal(unwrapU32(3, 0xffffffff), 2 ** 32 + 3);
  assert.equal(unwrapU32(10, 2 ** 40 + 5), 2 ** 40 + 10);
  assert.equal(unwrapU32(0xffffff00, 2 ** 40 + 5), 2 ** 40 - 256);
  assert.equal(unwrapU32(0x7fffffff, 0), 0x7fffffff);
});

test('an ACK-only segment is not acknowledged back (no ACK ping-pong); PSH is acknowledged at once', () => {
  const { client, server } = handshake();
  const buf = new Uint8Array(MAX_SEGMENT_BYTES);
  assert.equal(client.pollTransmit(40_000, buf), 0);
  assert.equal(client.write(new Uint8Array(100)), 100);
  const n = client.pollTransmit(40_000, buf);
  assert.ok(n > 100, 'a small write goes at once when nothing is outstanding (Nagle)');
  assert.ok(server.handle(buf.subarray(0, n), 50_000).ok);
  const m = server.pollTransmit(50_000, buf);
  assert.ok(m > 0, 'PSH: the server ACKs without waiting for the delayed-ACK timer');
  const d = decodeSegment(buf.subarray(0, m));
  assert.ok(d.ok && d.value.flags === FLAG_ACK && d.value.payload.length === 0);
  assert.ok(client.handle(buf.subarray(0, m), 60_000).ok);
  assert.equal(client.pollTransmit(60_000, buf), 0, 'nothing answers an ACK-only segment');
  assert.equal(client.stats().bytesInFlight, 0);
  const t = client.pollTimeout();
  assert.ok(t !== null && t > 60_000 + 1_000_000, 'only keepalive/idle timers remain');
});
