// In-band control encodings of the original v0.5 daemon (pkg/daemon/ports.go, daemon.go), for interop.
//
// SACK — carried as the *payload of an ACK-flagged stream packet*, not in a separate protocol:
//   "SACK" | u8 count (1..4) | count × (u32 left, u32 right), big-endian; left = seq of the first byte of
//   the block, right = seq of the first byte after it. The original's receiver treats any ACK payload that
//   starts with "SACK", has count 1..4 and at least 5+8·count bytes as SACK (trailing bytes ignored), and
//   then does NOT deliver it as data. So a data segment of ours that happens to look like that would be
//   swallowed by the original: check isLegacySackPayload() before sending data to an original peer and
//   split the segment (e.g. send its first byte alone) when it matches.
//
// Window — the header's u16 window counts free *segments* of the receiver's queue (capacity 512), one
//   segment = MSS 4096 bytes; the sender uses window × 4096 as the peer's receive window in bytes.
//   0 means "no limit" (the sender then uses only its congestion window) — the original itself advertises 0
//   when its queue is full, i.e. "full" and "unlimited" collide; we never advertise 0 (min 1).
//
// Sequence numbers — byte offsets starting at 0 (no random ISN); SYN and FIN take one number each; the
//   responder's SYN-ACK acks seq+1. Pure ACKs and keepalives (every 30 s idle) carry no payload.
//
// Control protocol (3) — only ping: a control packet to port 0 is answered with ACK, src port 0, dst port =
//   the ping's src port, seq = ping seq, ack = ping seq + 1, window 0, same payload.
import { err, ok, type Result } from '../core/result.js';
import { isU32, readU32, writeU32 } from './bytes.js';
import { PORT_PING, type VirtualAddr } from './address.js';
import { FLAG_ACK, PROTO_CONTROL, PROTOCOL_VERSION, type Packet } from './header.js';

export const LEGACY_MSS = 4096;
export const LEGACY_RECV_QUEUE_SEGMENTS = 512;
export const LEGACY_MAX_SACK_BLOCKS = 4;
export const LEGACY_SACK_MAGIC = 0x5341434b; // "SACK"
export const LEGACY_SACK_BLOCK_SIZE = 8;

export interface SackBlock {
  left: number; // u32, first byte in the block
  right: number; // u32, first byte after the block
}

export function legacySackSize(count: number): number {
  return 5 + count * LEGACY_SACK_BLOCK_SIZE;
}

/** Encode 1..4 SACK blocks as the original's ACK payload. */
export function encodeLegacySack(blocks: readonly SackBlock[], out?: Uint8Array, offset = 0): Result<Uint8Array> {
  if (!Array.isArray(blocks) || blocks.length < 1 || blocks.length > LEGACY_MAX_SACK_BLOCKS) {
    return err('invalid_argument', `SACK needs 1..${LEGACY_MAX_SACK_BLOCKS} blocks`);
  }
  for (const b of blocks) {
    if (typeof b !== 'object' || b === null || !isU32(b.left) || !isU32(b.right)) {
      return err('invalid_argument', 'SACK block edges must be u32');
    }
  }
  const size = legacySackSize(blocks.length);
  const buf = out ?? new Uint8Array(size);
  if (!Number.isInteger(offset) || offset < 0 || offset + size > buf.length) {
    return err('invalid_argument', `no room for a ${size}-byte SACK at offset ${offset}`);
  }
  writeU32(buf, offset, LEGACY_SACK_MAGIC);
  buf[offset + 4] = blocks.length;
  for (let i = 0; i < blocks.length; i++) {
    const at = offset + 5 + i * LEGACY_SACK_BLOCK_SIZE;
    writeU32(buf, at, blocks[i]!.left);
    writeU32(buf, at + 4, blocks[i]!.right);
  }
  return ok(buf.subarray(offset, offset + size));
}

/** Exactly the original's test (DecodeSACK): would it read this ACK payload as SACK rather than data? */
export function isLegacySackPayload(payload: Uint8Array): boolean {
  if (!(payload instanceof Uint8Array) || payload.length < 5) return false;
  if (readU32(payload, 0) !== LEGACY_SACK_MAGIC) return false;
  const n = payload[4]!;
  return n >= 1 && n <= LEGACY_MAX_SACK_BLOCKS && payload.length >= legacySackSize(n);
}

/** Decode a SACK payload with the original's rules (bytes after the last block are ignored). */
export function decodeLegacySack(payload: Uint8Array): Result<SackBlock[]> {
  if (!isLegacySackPayload(payload)) return err('invalid_argument', 'not a SACK payload');
  const n = payload[4]!;
  const blocks: SackBlock[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const at = 5 + i * LEGACY_SACK_BLOCK_SIZE;
    blocks[i] = { left: readU32(payload, at), right: readU32(payload, at + 4) };
  }
  return ok(blocks);
}

/** A peer's advertised window in bytes, or null for "no limit" (window 0). */
export function legacyWindowBytes(window: number): number | null {
  if (!Number.isInteger(window) || window <= 0) return null;
  return Math.min(window, 0xffff) * LEGACY_MSS;
}

/**
 * The window to advertise for `freeBytes` of receive space: whole 4096-byte segments, clamped to 1..65535
 * (0 would tell the original "no limit").
 */
export function legacyWindowFromFreeBytes(freeBytes: number): number {
  if (!(freeBytes > 0)) return 1;
  const segs = Math.floor(freeBytes / LEGACY_MSS);
  return segs < 1 ? 1 : segs > 0xffff ? 0xffff : segs;
}

/** Is this the original's ping (control protocol to port 0)? */
export function isLegacyPing(p: Packet): boolean {
  return p.protocol === PROTO_CONTROL && p.dstPort === PORT_PING;
}

/** The original's pong for a ping, as sent from `local`; null when `ping` is not a ping. */
export function legacyPongFor(ping: Packet, local: VirtualAddr): Packet | null {
  if (!isLegacyPing(ping)) return null;
  return {
    version: PROTOCOL_VERSION,
    flags: FLAG_ACK,
    protocol: PROTO_CONTROL,
    src: { network: local.network, node: local.node },
    dst: { network: ping.src.network, node: ping.src.node },
    srcPort: PORT_PING,
    dstPort: ping.srcPort,
    seq: ping.seq,
    ack: (ping.seq + 1) >>> 0,
    window: 0,
    payload: ping.payload,
  };
}
