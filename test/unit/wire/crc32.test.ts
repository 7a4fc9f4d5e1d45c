import test from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { crc32, crc32Js, crc32Update, crc32UpdateZeros } from '../../../src/wire/crc32.js';
import { fcParams } from './arbitraries.js';

const enc = (s: string) => new TextEncoder().encode(s);

test('crc32: IEEE check values', () => {
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32(enc('123456789')), 0xcbf43926);
  assert.equal(crc32(enc('The quick brown fox jumps over the lazy dog')), 0x414fa339);
  assert.equal(crc32(enc('a')), 0xe8b7be43);
  assert.equal(crc32Js(0, enc('123456789'), 0, 9), 0xcbf43926);
});

test('crc32: range arguments and clamping', () => {
  const b = enc('xx123456789yy');
  assert.equal(crc32(b, 2, 11), 0xcbf43926);
  assert.equal(crc32(b, 2, 11_000) , crc32(b, 2));
  assert.equal(crc32(b, -5, 0), 0);
  assert.equal(crc32(b, 9, 3), 0);
});

test('crc32: JS path equals the native/zlib path and chains like Go crc32.Update', () => {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(2000), (buf, cut0) => {
      const cut = Math.min(cut0, buf.length);
      const whole = crc32Js(0, buf, 0, buf.length);
      assert.equal(crc32(buf), whole);
      assert.equal(crc32Update(crc32(buf, 0, cut), buf, cut), whole);
      if (native) assert.equal(native(buf) >>> 0, whole);
    }),
    fcParams(500),
  );
});

test('crc32UpdateZeros equals feeding zero bytes', () => {
  for (let n = 0; n <= 8; n++) {
    const head = enc('abc');
    const withZeros = new Uint8Array(3 + n);
    withZeros.set(head);
    assert.equal(crc32UpdateZeros(crc32(head), n), crc32(withZeros));
  }
});
