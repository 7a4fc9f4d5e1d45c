// Segment and datagram codecs: round trips (fast-check) and 100,000 hostile inputs that must never throw.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Rng, seedFromEnv } from '../../../src/core/rng.js';
import {
  decodeDatagram,
  decodePolicyResetReason,
  decodeSegment,
  encodePolicyResetReason,
  MAX_RESET_REASON_BYTES,
  RESET_REASON_POLICY,
  decodeSynOptions,
  encodeDatagram,
  encodeResetFor,
  encodeSegment,
  peekSegmentHeader,
  DATAGRAM_HEADER_BYTES,
  FLAG_ACK,
  FLAG_RST,
  FLAG_SYN,
  KIND_STREAM,
  MAX_SEGMENT_BYTES,
  SEGMENT_HEADER_BYTES,
} from '../../../src/wire/segment.js';

const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const segmentArb = fc.record({
  flags: fc.integer({ min: 0, max: 0xff }),
  srcPort: u16,
  dstPort: u16,
  connId: u32,
  pn: u32,
  seq: u32,
  ack: u32,
  window: u32,
  ackPn: u32,
  ackDelayUs: fc.integer({ min: 0, max: 0xffff }).map((d) => d * 8),
  firstAckRange: u16,
  sack: fc.array(fc.record({ gap: u16, length: u16 }), { maxLength: 40 }),
  payload: fc.uint8Array({ maxLength: 1000 }),
});

test('segment encode → decode round-trips every field; payload is a view', () => {
  const buf = new Uint8Array(MAX_SEGMENT_BYTES * 2);
  fc.assert(
    fc.property(segmentArb, (s) => {
      const n = encodeSegment(s, buf);
      assert.ok(n.ok);
      assert.equal(n.value, SEGMENT_HEADER_BYTES + 4 * s.sack.length + s.payload.length);
      const bytes = buf.subarray(0, n.value);
      const d = decodeSegment(bytes);
      assert.ok(d.ok);
      const { payload, sackCount, ...rest } = d.value;
      assert.deepEqual(
        { ...rest, payload: Array.from(payload) },
        { ...s, sack: s.sack.map((b) => ({ ...b })), payload: Array.from(s.payload) },
      );
      assert.equal(sackCount, s.sack.length);
      assert.equal(payload.buffer, buf.buffer, 'payload is a view into the input');
      const p = peekSegmentHeader(bytes);
      assert.ok(p.ok);
      assert.equal(p.value.isSyn, (s.flags & (FLAG_SYN | FLAG_ACK)) === FLAG_SYN);
      assert.deepEqual([p.value.srcPort, p.value.dstPort, p.value.connId], [s.srcPort, s.dstPort, s.connId]);
    }),
    { numRuns: 2000, seed: seedFromEnv() | 0 },
  );
});

test('encodeSegment rejects out-of-range fields and small buffers with invalid_argument', () => {
  const buf = new Uint8Array(100);
  const base = { flags: 0, srcPort: 1, dstPort: 2, connId: 3, pn: 4, seq: 5 };
  for (const bad of [{ srcPort: 70000 }, { connId: -1 }, { pn: 2 ** 32 }, { flags: 256 }, { firstAckRange: 1 << 16 }]) {
    const r = encodeSegment({ ...base, ...bad }, buf);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.code, 'invalid_argument');
  }
  assert.equal(encodeSegment({ ...base, payload: new Uint8Array(100) }, buf).ok, false);
});

test('datagrams encode and decode; payload is a view', () => {
  const buf = new Uint8Array(MAX_SEGMENT_BYTES);
  fc.assert(
    fc.property(u16, u16, fc.uint8Array({ maxLength: MAX_SEGMENT_BYTES - DATAGRAM_HEADER_BYTES }), (srcPort, dstPort, payload) => {
      const n = encodeDatagram({ srcPort, dstPort, payload }, buf);
      assert.ok(n.ok);
      const d = decodeDatagram(buf.subarray(0, n.value));
      assert.ok(d.ok);
      assert.deepEqual([d.value.srcPort, d.value.dstPort, Array.from(d.value.payload)], [srcPort, dstPort, Array.from(payload)]);
      assert.equal(d.value.payload.buffer, buf.buffer);
    }),
    { numRuns: 500, seed: seedFromEnv() | 0 },
  );
  assert.equal(decodeDatagram(new Uint8Array([2, 0, 1])).ok, false);
  assert.equal(decodeDatagram(new Uint8Array([1, 0, 1, 0, 2])).ok, false, 'a stream segment is not a datagram');
  assert.equal(encodeDatagram({ srcPort: 1, dstPort: 2, payload: new Uint8Array(MAX_SEGMENT_BYTES) }, buf).ok, false);
});

test('encodeResetFor answers a segment with an RST on swapped ports, never an RST with an RST', () => {
  const seg = new Uint8Array(64);
  const n = encodeSegment({ flags: FLAG_ACK, srcPort: 10, dstPort: 20, connId: 77, pn: 1, seq: 2 }, seg);
  assert.ok(n.ok);
  const out = new Uint8Array(64);
  const len = encodeResetFor(seg.subarray(0, n.value), out);
  const d = decodeSegment(out.subarray(0, len));
  assert.ok(d.ok);
  assert.deepEqual([d.value.flags, d.value.srcPort, d.value.dstPort, d.value.connId], [FLAG_RST, 20, 10, 77]);
  assert.equal(encodeResetFor(out.subarray(0, len), new Uint8Array(64)), 0);
  assert.equal(encodeResetFor(new Uint8Array(3), out), 0);
});

test('an RST may carry a policy reason: round trip, a long rule cut to fit, hostile trailers read as none', () => {
  const seg = new Uint8Array(64);
  const n = encodeSegment({ flags: FLAG_SYN, srcPort: 50000, dstPort: 1001, connId: 9, pn: 0, seq: 0 }, seg);
  assert.ok(n.ok);
  const why = { network: 'lab', network_id: 3, port: 1001, rule: '{"action":"deny","ports":[1001]}', rule_index: 0, line: 4 };
  const out = new Uint8Array(1500);
  const len = encodeResetFor(seg.subarray(0, n.value), out, encodePolicyResetReason(why));
  const d = decodeSegment(out.subarray(0, len));
  assert.ok(d.ok && (d.value.flags & FLAG_RST) !== 0);
  assert.deepEqual(decodePolicyResetReason(out.subarray(SEGMENT_HEADER_BYTES, len)), why);
  const long = encodePolicyResetReason({ ...why, rule: 'x'.repeat(5000), rule_index: null, line: null });
  assert.ok(long.length <= MAX_RESET_REASON_BYTES);
  const back = decodePolicyResetReason(long);
  assert.ok(back && back.rule.endsWith('…') && back.rule_index === null);
  // no trailer: as before
  assert.equal(encodeResetFor(seg.subarray(0, n.value), out), SEGMENT_HEADER_BYTES);
  const enc = new TextEncoder();
  for (const bad of [
    new Uint8Array(0),
    Uint8Array.of(RESET_REASON_POLICY),
    Uint8Array.of(2, 123, 125),
    Uint8Array.of(RESET_REASON_POLICY, 0xff, 0xfe),
    Uint8Array.of(RESET_REASON_POLICY, ...enc.encode('[]')),
    Uint8Array.of(RESET_REASON_POLICY, ...enc.encode(JSON.stringify({ ...why, port: 70000 }))),
    Uint8Array.of(RESET_REASON_POLICY, ...enc.encode(JSON.stringify({ ...why, rule_index: -1 }))),
    Uint8Array.of(RESET_REASON_POLICY, ...enc.encode(JSON.stringify({ ...why, network: 5 }))),
    new Uint8Array(MAX_RESET_REASON_BYTES + 1).fill(RESET_REASON_POLICY),
  ]) assert.equal(decodePolicyResetReason(bad), null);
  const rng = new Rng(seedFromEnv());
  for (let i = 0; i < 5000; i++) {
    const b = new Uint8Array(rng.int(80));
    rng.fill(b);
    if (b.length > 0) b[0] = RESET_REASON_POLICY;
    decodePolicyResetReason(b);
  }
});

test('100,000 random and mutated inputs never make a decoder throw', () => {
  const seed = seedFromEnv();
  const rng = new Rng(seed);
  const valid = new Uint8Array(200);
  const vn = encodeSegment(
    { flags: FLAG_ACK, srcPort: 1, dstPort: 2, connId: 3, pn: 4, seq: 5, sack: [{ gap: 1, length: 2 }], payload: new Uint8Array(50) },
    valid,
  );
  assert.ok(vn.ok);
  let decoded = 0;
  try {
    for (let i = 0; i < 100_000; i++) {
      let b: Uint8Array;
      if (i % 2 === 0) {
        b = new Uint8Array(rng.int(80));
        rng.fill(b);
        if (rng.chance(0.5) && b.length > 0) b[0] = KIND_STREAM;
      } else {
        // a valid segment with random bytes flipped and a random length
        b = valid.slice(0, rng.int(vn.value + 8));
        for (let k = 0, m = 1 + rng.int(4); k < m && b.length > 0; k++) b[rng.int(b.length)] = rng.nextU32() & 0xff;
      }
      const d = decodeSegment(b);
      if (d.ok) {
        decoded++;
        // length accounting, as quinn's packet fuzz target asserts
        assert.equal(b.length, SEGMENT_HEADER_BYTES + 4 * d.value.sack.length + d.value.payload.length);
      } else assert.equal(d.error.code, 'invalid_argument');
      peekSegmentHeader(b);
      decodeDatagram(b);
      decodeSynOptions(b, rng.int(b.length + 1), rng.int(16));
    }
  } catch (e) {
    console.error(`segment fuzz failed: replay with PILOT_SEED=${seed}`);
    throw e;
  }
  assert.ok(decoded > 1000);
});
