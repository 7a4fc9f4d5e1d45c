import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodePacket,
  encodePacket,
  makePacket,
  packetChecksum,
  seqAfter,
  FLAG_ACK,
  FLAG_SYN,
  MAX_PAYLOAD,
  PACKET_HEADER_SIZE,
  PROTO_STREAM,
  type Packet,
} from '../../../src/wire/header.js';
import { crc32 } from '../../../src/wire/crc32.js';
import { formatAddr, PORT_ECHO, PORT_STDIO } from '../../../src/wire/address.js';
import { fcParams, packetArb } from './arbitraries.js';
import { hex, PILT_SYN_FROM_NODE2 } from './vectors.js';

function mustEncode(p: Packet, out?: Uint8Array, off?: number): Uint8Array {
  const r = encodePacket(p, out, off);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

test('header: golden — the captured PILT SYN (t=69.222257) decodes and re-encodes byte for byte', () => {
  const frame = hex(PILT_SYN_FROM_NODE2);
  const inner = frame.subarray(4);
  assert.equal(inner.length, PACKET_HEADER_SIZE);
  const r = decodePacket(inner);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  const p = r.value;
  assert.equal(p.version, 1);
  assert.equal(p.flags, FLAG_SYN);
  assert.equal(p.protocol, PROTO_STREAM);
  assert.equal(formatAddr(p.src), '0:0000.0000.0002');
  assert.equal(formatAddr(p.dst), '0:0000.0000.0001');
  assert.equal(p.srcPort, 49152);
  assert.equal(p.dstPort, PORT_ECHO);
  assert.equal(p.seq, 0);
  assert.equal(p.ack, 0);
  assert.equal(p.window, 512);
  assert.equal(p.payload.length, 0);
  assert.deepEqual(mustEncode(p), inner);
  // The checksum is CRC-32/IEEE over the header with the checksum field zeroed.
  const zeroed = inner.slice();
  zeroed.fill(0, 30, 34);
  assert.equal(crc32(zeroed), 0xf31c2ab9);
  assert.equal(packetChecksum(inner, 0, 34), 0xf31c2ab9);
});

test('header: SPEC.md §7.2 example layout (ACK data "hello")', () => {
  const p = makePacket({
    flags: FLAG_ACK,
    src: { network: 0, node: 1 },
    dst: { network: 0, node: 2 },
    srcPort: 49152,
    dstPort: PORT_STDIO,
    seq: 1,
    ack: 1,
    window: 502,
    payload: new TextEncoder().encode('hello'),
  });
  const b = mustEncode(p);
  assert.equal(b.length, 39);
  assert.equal(
    Buffer.from(b.subarray(0, 30)).toString('hex'),
    '1201' + '0005' + '0000' + '00000001' + '0000' + '00000002' + 'c000' + '03e8' + '00000001' + '00000001' + '01f6',
  );
  assert.equal(Buffer.from(b.subarray(34)).toString(), 'hello');
});

test('header: decode validates length, version, payload length, trailing bytes and CRC', () => {
  const good = mustEncode(makePacket({ payload: new Uint8Array([1, 2, 3]) }));
  const r = decodePacket(good);
  assert.ok(r.ok);
  if (r.ok) {
    // zero-copy payload view
    assert.equal(r.value.payload.buffer, good.buffer);
    assert.equal(r.value.payload.byteOffset, good.byteOffset + 34);
  }
  assert.match(errMsg(decodePacket(good.subarray(0, 33))), /too short/);
  assert.match(errMsg(decodePacket(good.subarray(0, 36))), /truncated/);
  const longer = new Uint8Array(good.length + 2);
  longer.set(good);
  assert.match(errMsg(decodePacket(longer)), /trailing/);
  assert.ok(decodePacket(longer, { allowTrailing: true }).ok);
  const v2 = good.slice();
  v2[0] = (2 << 4) | (v2[0]! & 0xf);
  assert.match(errMsg(decodePacket(v2)), /version/);
  for (let bit = 0; bit < good.length * 8; bit++) {
    const flipped = good.slice();
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    const d = decodePacket(flipped);
    assert.equal(d.ok, false, `bit ${bit} flip must be rejected`);
  }
  assert.equal(decodePacket(new Uint8Array(0)).ok, false);
  assert.equal(decodePacket('nope' as unknown as Uint8Array).ok, false);
});

function errMsg(r: { ok: boolean; error?: { message: string } }): string {
  return r.ok ? '<ok>' : r.error!.message;
}

test('header: encode validates fields and room, and writes in place at an offset', () => {
  const base = makePacket({});
  const bad: Partial<Packet>[] = [
    { version: 16 },
    { flags: 16 },
    { protocol: 256 },
    { src: { network: 70000, node: 0 } },
    { dst: { network: 0, node: 2 ** 32 } },
    { srcPort: -1 },
    { dstPort: 1.5 },
    { seq: 2 ** 32 },
    { ack: -1 },
    { window: 65536 },
    { payload: new Uint8Array(MAX_PAYLOAD + 1) },
    { payload: [1, 2] as unknown as Uint8Array },
  ];
  for (const b of bad) assert.equal(encodePacket({ ...base, ...b }).ok, false, JSON.stringify(Object.keys(b)));
  assert.equal(encodePacket(base, new Uint8Array(33)).ok, false);
  assert.equal(encodePacket(base, new Uint8Array(40), 7).ok, false);

  const out = new Uint8Array(100);
  const w = mustEncode(makePacket({ payload: new Uint8Array([9, 9]) }), out, 10);
  assert.equal(w.byteOffset, 10);
  assert.ok(decodePacket(out.subarray(10, 46)).ok);

  // Payload built in place right after the header is not copied and still checksummed.
  const buf = new Uint8Array(34 + 4);
  buf.set([1, 2, 3, 4], 34);
  const inPlace = mustEncode(makePacket({ payload: buf.subarray(34) }), buf, 0);
  const d = decodePacket(inPlace);
  assert.ok(d.ok);
  if (d.ok) assert.deepEqual([...d.value.payload], [1, 2, 3, 4]);
});

test('header: max payload 65535 round-trips', () => {
  const payload = new Uint8Array(MAX_PAYLOAD).map((_, i) => i * 31);
  const b = mustEncode(makePacket({ payload }));
  const d = decodePacket(b);
  assert.ok(d.ok);
  if (d.ok) assert.deepEqual(d.value.payload, payload);
});

test('header: property — decode(encode(p)) deep-equals p, and encode(decode(b)) is canonical', () => {
  fc.assert(
    fc.property(packetArb(600), (p) => {
      const b = mustEncode(p);
      assert.equal(b.length, 34 + p.payload.length);
      const d = decodePacket(b);
      assert.ok(d.ok, d.ok ? '' : d.error.message);
      if (d.ok) {
        assert.deepEqual(d.value, p);
        assert.deepEqual(mustEncode(d.value), b);
      }
    }),
    fcParams(2000),
  );
});

test('seqAfter: RFC 1982 wrap-around', () => {
  assert.ok(seqAfter(1, 0));
  assert.ok(!seqAfter(0, 1));
  assert.ok(seqAfter(5, 0xfffffff0));
  assert.ok(!seqAfter(0xfffffff0, 5));
  assert.ok(!seqAfter(7, 7));
});
