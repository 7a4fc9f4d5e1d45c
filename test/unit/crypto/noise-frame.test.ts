import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { seedFromEnv } from '../../../src/core/index.js';
import {
  decodeNoiseData,
  decodeNoiseInitiation,
  decodeNoiseResponse,
  encodeNoiseInitiation,
  encodeNoiseResponse,
  isNoiseFamily,
  MAX_NOISE_PLAINTEXT_BYTES,
  MAX_UDP_PAYLOAD_BYTES,
  NOISE_DATA_HEADER_BYTES,
  NOISE_TAG_BYTES,
  noiseFrameKind,
  peekNoiseDataReceiver,
  readU64LE,
  writeNoiseDataHeader,
  writeU64LE,
} from '../../../src/wire/noise-frame.js';

const seed = seedFromEnv();
test.after(() => console.log(`# noise-frame seed PILOT_SEED=${seed}`));

test('constants: 16-byte header, 16-byte tag, 1420-byte max plaintext in a 1452-byte payload', () => {
  assert.equal(NOISE_DATA_HEADER_BYTES, 16);
  assert.equal(NOISE_TAG_BYTES, 16);
  assert.equal(MAX_UDP_PAYLOAD_BYTES, 1452);
  assert.equal(MAX_NOISE_PLAINTEXT_BYTES, 1420);
});

test('magics and kinds; v0.5 frames and short inputs are not Noise frames', () => {
  const enc = new TextEncoder();
  assert.equal(noiseFrameKind(encodeNoiseInitiation(1, new Uint8Array(0))), 'initiation');
  assert.equal(noiseFrameKind(encodeNoiseResponse(1, 2, new Uint8Array(0))), 'response');
  const data = new Uint8Array(32);
  writeNoiseDataHeader(data, 0, 5, 6);
  assert.equal(noiseFrameKind(data), 'data');
  assert.deepEqual(Array.from(data.subarray(0, 4)), Array.from(enc.encode('PND1')));
  assert.equal(noiseFrameKind(data.subarray(0, 31)), null, 'data needs header + tag');
  for (const m of ['PILA', 'PILS', 'PILP', 'PILT', 'PNX1', 'PNI2', '']) assert.equal(noiseFrameKind(enc.encode(m + '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0')), null, m);
  assert.equal(isNoiseFamily(enc.encode('PNZ9')), true);
  assert.equal(isNoiseFamily(enc.encode('PILS')), false);
  assert.equal(peekNoiseDataReceiver(data), 5);
  assert.equal(peekNoiseDataReceiver(new Uint8Array(3)), -1);
});

test('u64 little-endian round trip up to 2^53', () => {
  const b = new Uint8Array(8);
  for (const v of [0, 1, 0xffffffff, 0x1_0000_0000, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER]) {
    writeU64LE(b, 0, v);
    assert.equal(readU64LE(b, 0), v);
  }
  writeU64LE(b, 0, 1);
  assert.deepEqual(Array.from(b), [1, 0, 0, 0, 0, 0, 0, 0]);
});

test('property: decode(encode(x)) == x for all three frames', () => {
  const u32 = fc.nat({ max: 0xffffffff });
  const body = fc.uint8Array({ maxLength: 1500 });
  fc.assert(
    fc.property(u32, u32, body, fc.nat({ max: Number.MAX_SAFE_INTEGER }), (s, r, noise, counter) => {
      const i = decodeNoiseInitiation(encodeNoiseInitiation(s, noise));
      assert.ok(i.ok);
      assert.equal(i.value.senderIndex, s);
      assert.deepEqual(i.value.noise, noise);
      const p = decodeNoiseResponse(encodeNoiseResponse(s, r, noise));
      assert.ok(p.ok);
      assert.equal(p.value.senderIndex, s);
      assert.equal(p.value.receiverIndex, r);
      assert.deepEqual(p.value.noise, noise);
      const d = new Uint8Array(16 + noise.length + 16);
      writeNoiseDataHeader(d, 0, r, counter);
      d.set(noise, 16);
      const dd = decodeNoiseData(d);
      assert.ok(dd.ok);
      assert.equal(dd.value.receiverIndex, r);
      assert.equal(dd.value.counter, counter);
      assert.equal(dd.value.sealed.length, noise.length + 16);
    }),
    { seed, numRuns: 300 },
  );
});

test('property: random bytes never throw from any decoder, and kinds agree with decoders', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), fc.constantFrom(0x49, 0x52, 0x44, 0x00), (raw, prefix, kind) => {
      const b = raw.slice();
      if (prefix && b.length >= 4) b.set([0x50, 0x4e, kind, 0x31]);
      const k = noiseFrameKind(b);
      assert.equal(decodeNoiseInitiation(b).ok, k === 'initiation');
      assert.equal(decodeNoiseResponse(b).ok, k === 'response');
      assert.equal(decodeNoiseData(b).ok, k === 'data');
    }),
    { seed, numRuns: 2000 },
  );
});
