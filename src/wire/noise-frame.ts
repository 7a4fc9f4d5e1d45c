// UDP payloads of our Noise IK tunnel suite. All start with the 2-byte family magic "PN" so a receiver can tell
// them from the original v0.5 frames ("PILA", "PILS", "PILP", ...) by the first two bytes.
// Integer fields are little-endian, as in WireGuard, so the data counter bytes are exactly the AEAD nonce's tail.
//
//   PNI1  initiation  magic(4) | sender index u32 | Noise msg1 | mac1(16) | mac2(16)
//   PNR1  response    magic(4) | sender index u32 | receiver index u32 | Noise msg2
//   PND1  data        magic(4) | receiver index u32 | counter u64 | ciphertext | tag(16)
//   PNC1  cookie      magic(4) | receiver index u32 | nonce(24) | sealed cookie(16) | tag(16)
// mac1/mac2 and the cookie reply are WireGuard's DoS defence (src/crypto/cookie.ts computes them).
//
// Decoders are total: any bytes give a Result, never a throw. Decoded byte fields are views into the input.
import { err, ok, type Result } from '../core/index.js';

/** Largest UDP payload we send: 1500 MTU - 40 (IPv6) - 8 (UDP). */
export const MAX_UDP_PAYLOAD_BYTES = 1452;
export const NOISE_MAGIC_BYTES = 4;
export const NOISE_TAG_BYTES = 16;
/** PND1 header: magic, receiver index, counter. It is the AEAD's associated data. */
export const NOISE_DATA_HEADER_BYTES = 16;
/** Header plus tag: what a data frame adds to its plaintext. */
export const NOISE_DATA_OVERHEAD_BYTES = NOISE_DATA_HEADER_BYTES + NOISE_TAG_BYTES;
export const MAX_NOISE_PLAINTEXT_BYTES = MAX_UDP_PAYLOAD_BYTES - NOISE_DATA_OVERHEAD_BYTES; // 1420
/** The largest plaintext a session seals at all: what a path MTU discovered on loopback, a LAN or jumbo frames
 *  carries (src/transport/pmtud.ts MAX_PLPMTU = 65,000 UDP bytes). Every path carries MAX_NOISE_PLAINTEXT_BYTES. */
export const MAX_NOISE_FRAME_PLAINTEXT_BYTES = 65_000 - NOISE_DATA_OVERHEAD_BYTES;
export const NOISE_INITIATION_HEADER_BYTES = 8;
export const NOISE_RESPONSE_HEADER_BYTES = 12;
/** mac1 and mac2 each; both trail every PNI1 frame. */
export const NOISE_MAC_BYTES = 16;
export const NOISE_INITIATION_MACS_BYTES = 2 * NOISE_MAC_BYTES;
/** PNC1: magic, receiver index, 24-byte nonce, 16-byte cookie sealed with a 16-byte tag. */
export const NOISE_COOKIE_REPLY_BYTES = 4 + 4 + 24 + 16 + 16;

const P = 0x50;
const N = 0x4e;
// Third and fourth magic bytes per kind: "I1", "R1", "D1".
const I = 0x49;
const R = 0x52;
const D = 0x44;
const C = 0x43;
const ONE = 0x31;

export type NoiseFrameKind = 'initiation' | 'response' | 'data' | 'cookie';

/** Kind of a Noise-suite UDP payload, or null when it is not one (e.g. a v0.5 PIL* frame or garbage). */
export function noiseFrameKind(buf: Uint8Array): NoiseFrameKind | null {
  if (buf.length < NOISE_MAGIC_BYTES || buf[0] !== P || buf[1] !== N || buf[3] !== ONE) return null;
  switch (buf[2]) {
    case I:
      return buf.length >= NOISE_INITIATION_HEADER_BYTES + NOISE_INITIATION_MACS_BYTES ? 'initiation' : null;
    case R:
      return buf.length >= NOISE_RESPONSE_HEADER_BYTES ? 'response' : null;
    case D:
      return buf.length >= NOISE_DATA_OVERHEAD_BYTES ? 'data' : null;
    case C:
      return buf.length === NOISE_COOKIE_REPLY_BYTES ? 'cookie' : null;
    default:
      return null;
  }
}

/** True when the first two bytes are the "PN" family magic (any version). */
export function isNoiseFamily(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === P && buf[1] === N;
}

export function readU32LE(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

export function writeU32LE(b: Uint8Array, off: number, v: number): void {
  b[off] = v;
  b[off + 1] = v >>> 8;
  b[off + 2] = v >>> 16;
  b[off + 3] = v >>> 24;
}

/** u64 LE as a JS number; exact below 2^53, which the session's reject limits keep us under. */
export function readU64LE(b: Uint8Array, off: number): number {
  return readU32LE(b, off) + readU32LE(b, off + 4) * 0x1_0000_0000;
}

export function writeU64LE(b: Uint8Array, off: number, v: number): void {
  writeU32LE(b, off, v >>> 0);
  writeU32LE(b, off + 4, Math.floor(v / 0x1_0000_0000) >>> 0);
}

function writeMagic(b: Uint8Array, kind: number): void {
  b[0] = P;
  b[1] = N;
  b[2] = kind;
  b[3] = ONE;
}

export interface NoiseInitiationFrame {
  senderIndex: number;
  /** Noise msg1 (view into the input). */
  noise: Uint8Array;
  /** Views of the trailing MACs. */
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface NoiseResponseFrame {
  senderIndex: number;
  receiverIndex: number;
  /** Noise msg2 (view into the input). */
  noise: Uint8Array;
}

export interface NoiseDataFrame {
  receiverIndex: number;
  counter: number;
  /** Ciphertext including the 16-byte tag (view into the input). */
  sealed: Uint8Array;
}

function badFrame<T>(what: string, length: number): Result<T> {
  return err('invalid_argument', `not a Noise ${what} frame`, { detail: { length } });
}

/** PNI1 with zeroed MACs; crypto/cookie.ts writeInitiationMacs fills them. */
export function encodeNoiseInitiation(senderIndex: number, noise: Uint8Array): Uint8Array {
  const out = new Uint8Array(NOISE_INITIATION_HEADER_BYTES + noise.length + NOISE_INITIATION_MACS_BYTES);
  writeMagic(out, I);
  writeU32LE(out, 4, senderIndex);
  out.set(noise, NOISE_INITIATION_HEADER_BYTES);
  return out;
}

export function decodeNoiseInitiation(buf: Uint8Array): Result<NoiseInitiationFrame> {
  if (noiseFrameKind(buf) !== 'initiation') return badFrame('initiation', buf.length);
  const mac1At = buf.length - NOISE_INITIATION_MACS_BYTES;
  return ok({
    senderIndex: readU32LE(buf, 4),
    noise: buf.subarray(NOISE_INITIATION_HEADER_BYTES, mac1At),
    mac1: buf.subarray(mac1At, mac1At + NOISE_MAC_BYTES),
    mac2: buf.subarray(mac1At + NOISE_MAC_BYTES),
  });
}

export function encodeNoiseResponse(senderIndex: number, receiverIndex: number, noise: Uint8Array): Uint8Array {
  const out = new Uint8Array(NOISE_RESPONSE_HEADER_BYTES + noise.length);
  writeMagic(out, R);
  writeU32LE(out, 4, senderIndex);
  writeU32LE(out, 8, receiverIndex);
  out.set(noise, NOISE_RESPONSE_HEADER_BYTES);
  return out;
}

export function decodeNoiseResponse(buf: Uint8Array): Result<NoiseResponseFrame> {
  if (noiseFrameKind(buf) !== 'response') return badFrame('response', buf.length);
  return ok({
    senderIndex: readU32LE(buf, 4),
    receiverIndex: readU32LE(buf, 8),
    noise: buf.subarray(NOISE_RESPONSE_HEADER_BYTES),
  });
}

/** Magic and receiver index of a PNC1 cookie reply into its first 8 bytes. */
export function writeCookieReplyHeader(buf: Uint8Array, receiverIndex: number): void {
  writeMagic(buf, C);
  writeU32LE(buf, 4, receiverIndex);
}

/** Write the 16-byte PND1 header at `off` of `buf` (caller checked the room). */
export function writeNoiseDataHeader(buf: Uint8Array, off: number, receiverIndex: number, counter: number): void {
  buf[off] = P;
  buf[off + 1] = N;
  buf[off + 2] = D;
  buf[off + 3] = ONE;
  writeU32LE(buf, off + 4, receiverIndex);
  writeU64LE(buf, off + 8, counter);
}

export function decodeNoiseData(buf: Uint8Array): Result<NoiseDataFrame> {
  if (noiseFrameKind(buf) !== 'data') return badFrame('data', buf.length);
  return ok({
    receiverIndex: readU32LE(buf, 4),
    counter: readU64LE(buf, 8),
    sealed: buf.subarray(NOISE_DATA_HEADER_BYTES),
  });
}

/** Receiver index of a data frame without allocating (for demultiplexing); -1 when not a data frame. */
export function peekNoiseDataReceiver(buf: Uint8Array): number {
  return noiseFrameKind(buf) === 'data' ? readU32LE(buf, 4) : -1;
}
