// The original's 34-byte packet header (SPEC.md §3, pkg/protocol/packet.go), byte-compatible with v0.5.
//
//   off size field
//    0   1   version (high nibble, = 1) | flags (low nibble: SYN 1, ACK 2, FIN 4, RST 8)
//    1   1   protocol (1 stream, 2 datagram, 3 control)
//    2   2   payload length
//    4   6   source address      (u16 network, u32 node)
//   10   6   destination address
//   16   2   source port
//   18   2   destination port
//   20   4   sequence number     (byte offset; SYN and FIN take one number)
//   24   4   acknowledgement     (next expected byte)
//   28   2   window              (receive window in 4096-byte segments; 0 = no limit)
//   30   4   checksum            CRC-32/IEEE over header-with-checksum-zeroed ‖ payload
// All big-endian. The payload follows the header directly.
import { err, ok, type Result } from '../core/result.js';
import { readAddr, writeAddr, isValidAddr, type VirtualAddr } from './address.js';
import { isU16, isU32, readU16, readU32, writeU16, writeU32 } from './bytes.js';
import { crc32Js, crc32Update, crc32UpdateZeros } from './crc32.js';

export const PACKET_HEADER_SIZE = 34;
export const PROTOCOL_VERSION = 1;
export const MAX_PAYLOAD = 0xffff;

export const FLAG_SYN = 0x1;
export const FLAG_ACK = 0x2;
export const FLAG_FIN = 0x4;
export const FLAG_RST = 0x8;

export const PROTO_STREAM = 0x01;
export const PROTO_DATAGRAM = 0x02;
export const PROTO_CONTROL = 0x03;

const CHECKSUM_OFFSET = 30;
// Shared zero-length payload for bare headers (a fresh view costs ~90 ns; zero bytes cannot be mutated).
const EMPTY = new Uint8Array(0);

export interface Packet {
  version: number; // 4 bits; PROTOCOL_VERSION on the wire
  flags: number; // 4 bits
  protocol: number; // u8
  src: VirtualAddr;
  dst: VirtualAddr;
  srcPort: number;
  dstPort: number;
  seq: number; // u32
  ack: number; // u32
  window: number; // u16, in segments
  payload: Uint8Array; // a view into the decoded buffer (no copy)
}

export interface DecodePacketOptions {
  /** Accept bytes after header+payload and ignore them, as the original's Unmarshal does. Default false. */
  allowTrailing?: boolean;
}

export function hasFlag(p: { flags: number }, f: number): boolean {
  return (p.flags & f) !== 0;
}

export function encodedPacketLength(p: Packet): number {
  return PACKET_HEADER_SIZE + p.payload.length;
}

function checkPacket(p: Packet): string | null {
  if (typeof p !== 'object' || p === null) return 'packet must be an object';
  if (!(p.version >= 0 && p.version <= 15 && Number.isInteger(p.version))) return 'version must be 0..15';
  if (!(p.flags >= 0 && p.flags <= 15 && Number.isInteger(p.flags))) return 'flags must be 0..15';
  if (!(p.protocol >= 0 && p.protocol <= 255 && Number.isInteger(p.protocol))) return 'protocol must be a byte';
  if (!isValidAddr(p.src) || !isValidAddr(p.dst)) return 'invalid src or dst address';
  if (!isU16(p.srcPort) || !isU16(p.dstPort)) return 'ports must be 0..65535';
  if (!isU32(p.seq) || !isU32(p.ack)) return 'seq and ack must be u32';
  if (!isU16(p.window)) return 'window must be 0..65535';
  if (!(p.payload instanceof Uint8Array)) return 'payload must be a Uint8Array';
  if (p.payload.length > MAX_PAYLOAD) return `payload too large: ${p.payload.length} bytes (max ${MAX_PAYLOAD})`;
  return null;
}

/**
 * Serialize header + payload with the checksum, into `out` at `offset` when given (else a new buffer).
 * Returns the written bytes (a view of `out`). A payload that already sits at offset+34 in `out` is not
 * copied, so callers can build the payload in place.
 */
export function encodePacket(p: Packet, out?: Uint8Array, offset = 0): Result<Uint8Array> {
  const bad = checkPacket(p);
  if (bad !== null) return err('invalid_argument', bad);
  const total = PACKET_HEADER_SIZE + p.payload.length;
  const buf = out ?? new Uint8Array(total);
  if (!Number.isInteger(offset) || offset < 0 || offset + total > buf.length) {
    return err('invalid_argument', `no room for a ${total}-byte packet at offset ${offset} (buffer ${buf.length})`);
  }
  writePacketUnchecked(p, buf, offset);
  // A view costs ~90 ns in V8; skip it when the packet fills the buffer.
  return ok(offset === 0 && total === buf.length ? buf : buf.subarray(offset, offset + total));
}

/** encodePacket into `out` at `offset`, returning the byte count instead of a view (hot paths). */
export function encodePacketInto(p: Packet, out: Uint8Array, offset = 0): Result<number> {
  const bad = checkPacket(p);
  if (bad !== null) return err('invalid_argument', bad);
  const total = PACKET_HEADER_SIZE + p.payload.length;
  if (!(out instanceof Uint8Array) || !Number.isInteger(offset) || offset < 0 || offset + total > out.length) {
    return err('invalid_argument', `no room for a ${total}-byte packet at offset ${offset}`);
  }
  return ok(writePacketUnchecked(p, out, offset));
}

/** encodePacket without validation; for hot paths whose packet fields are known to be in range. */
export function writePacketUnchecked(p: Packet, buf: Uint8Array, offset: number): number {
  const plen = p.payload.length;
  const total = PACKET_HEADER_SIZE + plen;
  // Payload first, so a payload view that overlaps the header area is copied before the header is written.
  const at = offset + PACKET_HEADER_SIZE;
  if (plen > 0 && !(p.payload.buffer === buf.buffer && p.payload.byteOffset === buf.byteOffset + at)) {
    buf.set(p.payload, at);
  }
  buf[offset] = (p.version << 4) | (p.flags & 0x0f);
  buf[offset + 1] = p.protocol;
  writeU16(buf, offset + 2, plen);
  writeAddr(buf, offset + 4, p.src);
  writeAddr(buf, offset + 10, p.dst);
  writeU16(buf, offset + 16, p.srcPort);
  writeU16(buf, offset + 18, p.dstPort);
  writeU32(buf, offset + 20, p.seq);
  writeU32(buf, offset + 24, p.ack);
  writeU16(buf, offset + 28, p.window);
  writeU32(buf, offset + CHECKSUM_OFFSET, 0);
  writeU32(buf, offset + CHECKSUM_OFFSET, packetChecksum(buf, offset, total));
  return total;
}

/**
 * CRC-32 of the packet at buf[offset, offset+total) with its checksum field taken as zero; the buffer is
 * not modified. The caller guarantees 34 <= total and offset + total <= buf.length.
 */
export function packetChecksum(buf: Uint8Array, offset: number, total: number): number {
  let c = crc32Js(0, buf, offset, offset + CHECKSUM_OFFSET);
  c = crc32UpdateZeros(c, 4);
  return total > PACKET_HEADER_SIZE ? crc32Update(c, buf, offset + PACKET_HEADER_SIZE, offset + total) : c;
}

/**
 * Decode and verify one packet: length, version 1, payload length, CRC. Returns the payload as a view of
 * `buf` (no copy; a shared zero-length array when empty). Total: any bytes give a Result, never an exception.
 */
export function decodePacket(buf: Uint8Array, opts?: DecodePacketOptions): Result<Packet> {
  if (!(buf instanceof Uint8Array)) return err('invalid_argument', 'packet must be a Uint8Array');
  const n = buf.length;
  if (n < PACKET_HEADER_SIZE) {
    return err('invalid_argument', `packet too short: ${n} bytes (min ${PACKET_HEADER_SIZE})`);
  }
  const version = buf[0]! >>> 4;
  if (version !== PROTOCOL_VERSION) {
    return err('invalid_argument', `unsupported packet version ${version} (want ${PROTOCOL_VERSION})`);
  }
  const plen = readU16(buf, 2);
  const total = PACKET_HEADER_SIZE + plen;
  if (n < total) return err('invalid_argument', `packet truncated: have ${n} bytes, need ${total}`);
  if (n > total && opts?.allowTrailing !== true) {
    return err('invalid_argument', `packet has ${n - total} trailing bytes after the ${plen}-byte payload`);
  }
  const wire = readU32(buf, CHECKSUM_OFFSET);
  const computed = packetChecksum(buf, 0, total);
  if (wire !== computed) return err('invalid_argument', 'checksum mismatch', { detail: { wire, computed } });
  return ok({
    version,
    flags: buf[0]! & 0x0f,
    protocol: buf[1]!,
    src: readAddr(buf, 4),
    dst: readAddr(buf, 10),
    srcPort: readU16(buf, 16),
    dstPort: readU16(buf, 18),
    seq: readU32(buf, 20),
    ack: readU32(buf, 24),
    window: readU16(buf, 28),
    payload: plen === 0 ? EMPTY : buf.subarray(PACKET_HEADER_SIZE, total),
  });
}

/** A packet with defaults (version 1, no flags, stream, zero addresses/ports/numbers, empty payload). */
export function makePacket(fields: Partial<Packet>): Packet {
  return {
    version: PROTOCOL_VERSION,
    flags: 0,
    protocol: PROTO_STREAM,
    src: { network: 0, node: 0 },
    dst: { network: 0, node: 0 },
    srcPort: 0,
    dstPort: 0,
    seq: 0,
    ack: 0,
    window: 0,
    payload: new Uint8Array(0),
    ...fields,
  };
}

/** RFC 1982 serial-number comparison as in the original: int32(a - b) > 0. */
export function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}
