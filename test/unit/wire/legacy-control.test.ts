import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeLegacySack,
  encodeLegacySack,
  isLegacyPing,
  isLegacySackPayload,
  legacyPongFor,
  legacyWindowBytes,
  legacyWindowFromFreeBytes,
  LEGACY_MSS,
  type SackBlock,
} from '../../../src/wire/legacy-control.js';
import { FLAG_ACK, makePacket, PROTO_CONTROL, PROTO_STREAM } from '../../../src/wire/header.js';
import { fcParams, sackArb } from './arbitraries.js';

const ascii = (s: string) => new TextEncoder().encode(s);

test('legacy SACK: layout "SACK" | count | (left, right) u32 BE', () => {
  const r = encodeLegacySack([
    { left: 0x01020304, right: 0x05060708 },
    { left: 9, right: 10 },
  ]);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(
    Buffer.from(r.value).toString('hex'),
    '5341434b' + '02' + '01020304' + '05060708' + '00000009' + '0000000a',
  );
  assert.deepEqual(decodeLegacySack(r.value), {
    ok: true,
    value: [
      { left: 0x01020304, right: 0x05060708 },
      { left: 9, right: 10 },
    ],
  });
});

test('legacy SACK: acceptance rule is exactly the original DecodeSACK (trailing bytes ignored)', () => {
  const one = encodeLegacySack([{ left: 1, right: 2 }]);
  assert.ok(one.ok);
  if (!one.ok) return;
  assert.ok(isLegacySackPayload(one.value));
  assert.ok(isLegacySackPayload(new Uint8Array([...one.value, 0xff, 0xff])));
  assert.ok(decodeLegacySack(new Uint8Array([...one.value, 1])).ok);
  assert.ok(!isLegacySackPayload(one.value.subarray(0, 12)));
  assert.ok(!isLegacySackPayload(ascii('SACK')));
  assert.ok(!isLegacySackPayload(new Uint8Array([...ascii('SACK'), 0])));
  assert.ok(!isLegacySackPayload(new Uint8Array([...ascii('SACK'), 5, ...new Uint8Array(40)])));
  assert.ok(!isLegacySackPayload(new Uint8Array([...ascii('sack'), 1, ...new Uint8Array(8)])));
  // A data segment the original would swallow as SACK:
  assert.ok(isLegacySackPayload(ascii('SACK\x01 and then 8+ bytes of user data')));
  assert.equal(decodeLegacySack(ascii('hello')).ok, false);
  assert.equal(decodeLegacySack(null as unknown as Uint8Array).ok, false);
});

test('legacy SACK: encode validates', () => {
  assert.equal(encodeLegacySack([]).ok, false);
  const five: SackBlock[] = Array.from({ length: 5 }, () => ({ left: 0, right: 1 }));
  assert.equal(encodeLegacySack(five).ok, false);
  assert.equal(encodeLegacySack([{ left: -1, right: 0 }]).ok, false);
  assert.equal(encodeLegacySack([{ left: 0, right: 2 ** 32 }]).ok, false);
  assert.equal(encodeLegacySack([{ left: 0, right: 1 }], new Uint8Array(12)).ok, false);
  const out = new Uint8Array(20);
  const r = encodeLegacySack([{ left: 0, right: 1 }], out, 2);
  assert.ok(r.ok && r.value.byteOffset === 2 && r.value.length === 13);
});

test('legacy SACK: property — decode(encode(blocks)) deep-equals blocks', () => {
  fc.assert(
    fc.property(sackArb, (blocks) => {
      const e = encodeLegacySack(blocks);
      assert.ok(e.ok);
      if (!e.ok) return;
      assert.equal(e.value.length, 5 + 8 * blocks.length);
      assert.ok(isLegacySackPayload(e.value));
      assert.deepEqual(decodeLegacySack(e.value), { ok: true, value: blocks });
    }),
    fcParams(1000),
  );
});

test('legacy window: segments of 4096 bytes, 0 = no limit, never advertise 0', () => {
  assert.equal(LEGACY_MSS, 4096);
  assert.equal(legacyWindowBytes(0), null);
  assert.equal(legacyWindowBytes(1), 4096);
  assert.equal(legacyWindowBytes(512), 2 * 1024 * 1024);
  assert.equal(legacyWindowBytes(65535), 65535 * 4096);
  assert.equal(legacyWindowFromFreeBytes(0), 1);
  assert.equal(legacyWindowFromFreeBytes(-5), 1);
  assert.equal(legacyWindowFromFreeBytes(NaN), 1);
  assert.equal(legacyWindowFromFreeBytes(4095), 1);
  assert.equal(legacyWindowFromFreeBytes(8192 + 10), 2);
  assert.equal(legacyWindowFromFreeBytes(1e12), 65535);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 65535 }), (w) => {
      assert.equal(legacyWindowFromFreeBytes(legacyWindowBytes(w)!), w);
    }),
    fcParams(500),
  );
});

test('legacy control: ping on port 0 gets the original pong', () => {
  const ping = makePacket({
    protocol: PROTO_CONTROL,
    src: { network: 0, node: 2 },
    dst: { network: 0, node: 1 },
    srcPort: 50000,
    dstPort: 0,
    seq: 0xffffffff,
    payload: ascii('t'),
  });
  assert.ok(isLegacyPing(ping));
  const pong = legacyPongFor(ping, { network: 0, node: 1 });
  assert.deepEqual(pong, {
    version: 1,
    flags: FLAG_ACK,
    protocol: PROTO_CONTROL,
    src: { network: 0, node: 1 },
    dst: { network: 0, node: 2 },
    srcPort: 0,
    dstPort: 50000,
    seq: 0xffffffff,
    ack: 0,
    window: 0,
    payload: ping.payload,
  });
  assert.equal(legacyPongFor(makePacket({ protocol: PROTO_STREAM }), { network: 0, node: 1 }), null);
  assert.equal(legacyPongFor(makePacket({ protocol: PROTO_CONTROL, dstPort: 7 }), { network: 0, node: 1 }), null);
});
