// CRC-32/IEEE (reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF) — the variant the original
// uses for the packet checksum (Go hash/crc32 with crc32.IEEE, pkg/protocol/checksum.go).
// Slicing-by-8 in JS (eight 256-entry tables, eight bytes per step) for short ranges such as a bare 34-byte
// header; long ranges go to zlib.crc32 (Node >= 20.15, native) when present: ~4x faster above ~256 bytes, but
// a ~180 ns call overhead makes it slower for headers.
import * as zlib from 'node:zlib';

type NativeCrc = (data: Uint8Array, value?: number) => number;
const nativeCrc32: NativeCrc | undefined = (zlib as unknown as { crc32?: NativeCrc }).crc32;
const NATIVE_MIN = 256;

const POLY = 0xedb88320;

// T[k*256 + n] = CRC of byte n followed by k zero bytes.
const T = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let k = 1; k < 8; k++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

/**
 * Continue a CRC-32 over buf[start, end). `crc` is a finished CRC value (0 to start a new one), like Go's
 * crc32.Update, so `crc32Update(crc32(a), b) === crc32(a ‖ b)`. The range is clamped to the buffer.
 */
export function crc32Update(crc: number, buf: Uint8Array, start = 0, end = buf.length): number {
  if (end > buf.length) end = buf.length;
  if (start < 0) start = 0;
  if (nativeCrc32 !== undefined && end - start >= NATIVE_MIN) {
    return nativeCrc32(buf.subarray(start, end), crc >>> 0) >>> 0;
  }
  return crc32Js(crc, buf, start, end);
}

/** The pure-JS path of crc32Update (exported for tests and benchmarks); the range must be in bounds. */
export function crc32Js(crc: number, buf: Uint8Array, start: number, end: number): number {
  let c = ~crc;
  let i = start;
  // Slicing-by-8 main loop.
  const end8 = end - 8;
  while (i <= end8) {
    const lo = c ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    c =
      T[1792 + (lo & 0xff)]! ^
      T[1536 + ((lo >>> 8) & 0xff)]! ^
      T[1280 + ((lo >>> 16) & 0xff)]! ^
      T[1024 + (lo >>> 24)]! ^
      T[768 + buf[i + 4]!]! ^
      T[512 + buf[i + 5]!]! ^
      T[256 + buf[i + 6]!]! ^
      T[buf[i + 7]!]!;
    i += 8;
  }
  while (i < end) c = T[(c ^ buf[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32/IEEE of buf[start, end). */
export function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  return crc32Update(0, buf, start, end);
}

/** Continue a CRC-32 over `n` zero bytes without a buffer. */
export function crc32UpdateZeros(crc: number, n: number): number {
  let c = ~crc;
  for (let i = 0; i < n; i++) c = T[c & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
