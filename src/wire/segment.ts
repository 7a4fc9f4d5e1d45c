// Transport segment and datagram codecs: the plaintext carried inside one tunnel frame.
//
// Stream segment (kind 0x01), all integers big-endian, 35-byte fixed header:
//
//   off size field
//    0   1   kind = 0x01
//    1   1   flags            SYN 0x01 ACK 0x02 FIN 0x04 RST 0x08 PSH 0x10 PING 0x20 (0x40, 0x80 reserved, ignored)
//    2   2   srcPort
//    4   2   dstPort
//    6   4   connId           chosen by the opener; a new incarnation on the same ports gets a new id
//    10  4   pn               packet number: +1 for every segment sent, never reused (QUIC-style, RFC 9000 §12.3),
//                             so every ACK is unambiguous (no Karn's rule needed) and loss detection is RFC 9002's
//    14  4   seq              stream sequence of the first payload byte: (ISN + stream offset) mod 2^32
//    18  4   ack              cumulative ack: (peer ISN + next expected offset [+1 once the FIN arrived]) mod 2^32
//    22  4   window           receive window in bytes beyond `ack`
//    26  4   ackPn            largest packet number received (valid with ACK)
//    30  2   ackDelay         time the largest was held before this ACK, in 8 µs units (saturates at ~524 ms)
//    32  2   firstAckRange    packets acknowledged contiguously below ackPn (RFC 9000 §19.3.1 "First ACK Range")
//    34  1   sackCount        number of SACK blocks that follow
//    35  4n  SACK blocks      each: gap u16 (unacked packets before the next lower range, minus 1),
//                                   length u16 (packets in that range, minus 1) — descending, QUIC-style
//    35+4n   payload          stream bytes (SYN: 8 option bytes instead, see encodeSynOptions)
//
// 32-bit fields wrap; the transport unwraps them against the nearest expected value into 53-bit integers
// (src/transport/sequence.ts), which is safe while less than 2 GiB / 2^31 packets are outstanding.
//
// Datagram (kind 0x02): kind u8, srcPort u16, dstPort u16, payload — unreliable, no connection.
import { err, ok, type Result } from '../core/result.js';
import { readU16, readU32, writeU16, writeU32, isU16, isU32 } from './bytes.js';

export const KIND_STREAM = 0x01;
export const KIND_DATAGRAM = 0x02;
/** A notice from the receiver (issue 15): [0x03][a reset reason, e.g. RESET_REASON_POLICY + JSON] — a datagram it refused. */
export const KIND_NOTICE = 0x03;

/** Path MTU probe (issue 18, src/transport/pmtud.ts): [kind][u32 probe id][padding to the probed size]. */
export const KIND_PMTU_PROBE = 0x04;
/** Its acknowledgement: [kind][u32 probe id][u32 plaintext bytes received]. */
export const KIND_PMTU_ACK = 0x05;
export const PMTU_PROBE_MIN_BYTES = 5;
export const PMTU_ACK_BYTES = 9;

export const FLAG_SYN = 0x01;
export const FLAG_ACK = 0x02;
export const FLAG_FIN = 0x04;
export const FLAG_RST = 0x08;
export const FLAG_PSH = 0x10;
export const FLAG_PING = 0x20;

/** Default and maximum plaintext per tunnel frame: UDP 1452 − 32 bytes of frame header and AEAD tag. */
export const MAX_SEGMENT_BYTES = 1420;
/** The largest segment a connection advertises and sends when its tunnel's path MTU allows (65,000-byte UDP
 *  payloads on loopback; src/transport/pmtud.ts). Still fits the SYN option's u16. */
export const MAX_PATH_SEGMENT_BYTES = 65_000 - 32;
export const SEGMENT_HEADER_BYTES = 35;
export const SACK_BLOCK_BYTES = 4;
export const DATAGRAM_HEADER_BYTES = 5;
export const SYN_OPTIONS_BYTES = 8;
/** Smallest maxSegmentBytes a connection accepts (header + a useful payload). */
export const MIN_SEGMENT_BYTES = 64;
export const ACK_DELAY_UNIT_US = 8;
export const MAX_ACK_DELAY_FIELD_US = 0xffff * ACK_DELAY_UNIT_US;

// Field offsets, exported so the transport reads a segment in place without building an object.
export const OFF_FLAGS = 1;
export const OFF_SRC_PORT = 2;
export const OFF_DST_PORT = 4;
export const OFF_CONN_ID = 6;
export const OFF_PN = 10;
export const OFF_SEQ = 14;
export const OFF_ACK = 18;
export const OFF_WINDOW = 22;
export const OFF_ACK_PN = 26;
export const OFF_ACK_DELAY = 30;
export const OFF_FIRST_ACK_RANGE = 32;
export const OFF_SACK_COUNT = 34;

/** One SACK block below the previous range: `gap`+1 missing packets, then `length`+1 acknowledged ones. */
export interface SackBlock {
  gap: number;
  length: number;
}

export interface SegmentHeader {
  flags: number;
  srcPort: number;
  dstPort: number;
  connId: number;
  pn: number;
  seq: number;
  ack: number;
  window: number;
  ackPn: number;
  /** µs; encoded in 8 µs units, saturating. */
  ackDelayUs: number;
  firstAckRange: number;
  sackCount: number;
}

/** A decoded segment; `payload` is a view into the input (not a copy). */
export interface Segment extends SegmentHeader {
  sack: SackBlock[];
  payload: Uint8Array;
}

/** Fields the transport reads in place: header values plus where the SACK blocks and payload lie. */
export interface SegmentFields extends SegmentHeader {
  sackOffset: number;
  payloadOffset: number;
  payloadBytes: number;
}

export interface SegmentPeek {
  flags: number;
  srcPort: number;
  dstPort: number;
  connId: number;
  /** SYN without ACK: a connection attempt the node should hand to Connection.accept. */
  isSyn: boolean;
  isRst: boolean;
}

export function newSegmentFields(): SegmentFields {
  return {
    flags: 0,
    srcPort: 0,
    dstPort: 0,
    connId: 0,
    pn: 0,
    seq: 0,
    ack: 0,
    window: 0,
    ackPn: 0,
    ackDelayUs: 0,
    firstAckRange: 0,
    sackCount: 0,
    sackOffset: SEGMENT_HEADER_BYTES,
    payloadOffset: SEGMENT_HEADER_BYTES,
    payloadBytes: 0,
  };
}

/**
 * Demux view for the node: ports, connection id and SYN-ness from the first 10 bytes. Pure, no allocation
 * when `out` is passed. Errors: invalid_argument (short, or not a stream segment).
 */
export function peekSegmentHeader(buf: Uint8Array, out?: SegmentPeek): Result<SegmentPeek> {
  if (buf.length < SEGMENT_HEADER_BYTES) return err('invalid_argument', `segment too short: ${buf.length} bytes`);
  if (buf[0] !== KIND_STREAM) return err('invalid_argument', `not a stream segment: kind 0x${buf[0]!.toString(16)}`);
  const flags = buf[OFF_FLAGS]!;
  const p = out ?? { flags: 0, srcPort: 0, dstPort: 0, connId: 0, isSyn: false, isRst: false };
  p.flags = flags;
  p.srcPort = readU16(buf, OFF_SRC_PORT);
  p.dstPort = readU16(buf, OFF_DST_PORT);
  p.connId = readU32(buf, OFF_CONN_ID);
  p.isSyn = (flags & (FLAG_SYN | FLAG_ACK)) === FLAG_SYN;
  p.isRst = (flags & FLAG_RST) !== 0;
  return ok(p);
}

/**
 * Decode in place into `out` (reused by the transport: no allocation). Returns false for anything malformed:
 * wrong kind, short header, SACK blocks past the end. Never throws.
 */
export function decodeSegmentInto(buf: Uint8Array, out: SegmentFields): boolean {
  const len = buf.length;
  if (len < SEGMENT_HEADER_BYTES || buf[0] !== KIND_STREAM) return false;
  const sackCount = buf[OFF_SACK_COUNT]!;
  const payloadOffset = SEGMENT_HEADER_BYTES + sackCount * SACK_BLOCK_BYTES;
  if (payloadOffset > len) return false;
  out.flags = buf[OFF_FLAGS]!;
  out.srcPort = readU16(buf, OFF_SRC_PORT);
  out.dstPort = readU16(buf, OFF_DST_PORT);
  out.connId = readU32(buf, OFF_CONN_ID);
  out.pn = readU32(buf, OFF_PN);
  out.seq = readU32(buf, OFF_SEQ);
  out.ack = readU32(buf, OFF_ACK);
  out.window = readU32(buf, OFF_WINDOW);
  out.ackPn = readU32(buf, OFF_ACK_PN);
  out.ackDelayUs = readU16(buf, OFF_ACK_DELAY) * ACK_DELAY_UNIT_US;
  out.firstAckRange = readU16(buf, OFF_FIRST_ACK_RANGE);
  out.sackCount = sackCount;
  out.sackOffset = SEGMENT_HEADER_BYTES;
  out.payloadOffset = payloadOffset;
  out.payloadBytes = len - payloadOffset;
  return true;
}

/** Decode a stream segment into a fresh object; `payload` is a view, not a copy. Never throws. */
export function decodeSegment(buf: Uint8Array): Result<Segment> {
  const f = newSegmentFields();
  if (!decodeSegmentInto(buf, f)) {
    if (buf.length < SEGMENT_HEADER_BYTES) return err('invalid_argument', `segment too short: ${buf.length} bytes`);
    if (buf[0] !== KIND_STREAM) return err('invalid_argument', `not a stream segment: kind 0x${buf[0]!.toString(16)}`);
    return err('invalid_argument', `segment truncated inside its ${buf[OFF_SACK_COUNT]} SACK blocks`);
  }
  const sack: SackBlock[] = [];
  for (let i = 0; i < f.sackCount; i++) {
    const o = f.sackOffset + i * SACK_BLOCK_BYTES;
    sack.push({ gap: readU16(buf, o), length: readU16(buf, o + 2) });
  }
  return ok({
    flags: f.flags,
    srcPort: f.srcPort,
    dstPort: f.dstPort,
    connId: f.connId,
    pn: f.pn,
    seq: f.seq,
    ack: f.ack,
    window: f.window,
    ackPn: f.ackPn,
    ackDelayUs: f.ackDelayUs,
    firstAckRange: f.firstAckRange,
    sackCount: f.sackCount,
    sack,
    payload: buf.subarray(f.payloadOffset),
  });
}

/**
 * Write the fixed header (not the SACK blocks or payload) at buf[0..35). Values are masked to their field
 * widths; ackDelayUs saturates. The caller guarantees buf.length ≥ SEGMENT_HEADER_BYTES. Hot path: no checks.
 */
export function writeSegmentHeader(buf: Uint8Array, h: SegmentHeader): void {
  buf[0] = KIND_STREAM;
  buf[OFF_FLAGS] = h.flags;
  writeU16(buf, OFF_SRC_PORT, h.srcPort);
  writeU16(buf, OFF_DST_PORT, h.dstPort);
  writeU32(buf, OFF_CONN_ID, h.connId);
  writeU32(buf, OFF_PN, h.pn);
  writeU32(buf, OFF_SEQ, h.seq);
  writeU32(buf, OFF_ACK, h.ack);
  writeU32(buf, OFF_WINDOW, h.window);
  writeU32(buf, OFF_ACK_PN, h.ackPn);
  const d = Math.floor(h.ackDelayUs / ACK_DELAY_UNIT_US);
  writeU16(buf, OFF_ACK_DELAY, d > 0xffff ? 0xffff : d < 0 ? 0 : d);
  writeU16(buf, OFF_FIRST_ACK_RANGE, h.firstAckRange);
  buf[OFF_SACK_COUNT] = h.sackCount;
}

export interface SegmentInit {
  flags: number;
  srcPort: number;
  dstPort: number;
  connId: number;
  pn: number;
  seq: number;
  ack?: number;
  window?: number;
  ackPn?: number;
  ackDelayUs?: number;
  firstAckRange?: number;
  sack?: readonly SackBlock[];
  payload?: Uint8Array;
}

/**
 * Encode a whole segment into `buf`; returns its length. Errors: invalid_argument for out-of-range fields,
 * more than 255 SACK blocks, or a buffer too small. Convenience for tests and tools; the transport writes in place.
 */
export function encodeSegment(seg: SegmentInit, buf: Uint8Array): Result<number> {
  const sack = seg.sack ?? [];
  const payload = seg.payload ?? EMPTY;
  const u32s = [seg.connId, seg.pn, seg.seq, seg.ack ?? 0, seg.window ?? 0, seg.ackPn ?? 0];
  if (!isU16(seg.srcPort) || !isU16(seg.dstPort) || !u32s.every(isU32) || !isU16(seg.firstAckRange ?? 0))
    return err('invalid_argument', 'segment field out of range');
  if ((seg.flags & 0xff) !== seg.flags) return err('invalid_argument', 'flags out of range');
  if (sack.length > 255) return err('invalid_argument', `too many SACK blocks: ${sack.length}`);
  for (const b of sack) if (!isU16(b.gap) || !isU16(b.length)) return err('invalid_argument', 'SACK block out of range');
  const total = SEGMENT_HEADER_BYTES + sack.length * SACK_BLOCK_BYTES + payload.length;
  if (buf.length < total) return err('invalid_argument', `buffer too small: ${buf.length} < ${total}`);
  writeSegmentHeader(buf, {
    flags: seg.flags,
    srcPort: seg.srcPort,
    dstPort: seg.dstPort,
    connId: seg.connId,
    pn: seg.pn,
    seq: seg.seq,
    ack: seg.ack ?? 0,
    window: seg.window ?? 0,
    ackPn: seg.ackPn ?? 0,
    ackDelayUs: seg.ackDelayUs ?? 0,
    firstAckRange: seg.firstAckRange ?? 0,
    sackCount: sack.length,
  });
  let o = SEGMENT_HEADER_BYTES;
  for (const b of sack) {
    writeU16(buf, o, b.gap);
    writeU16(buf, o + 2, b.length);
    o += SACK_BLOCK_BYTES;
  }
  buf.set(payload, o);
  return ok(total);
}

/** SYN payload: what each side tells the other once. */
export interface SynOptions {
  version: number;
  maxSegmentBytes: number;
  /** Longest the sender of the SYN delays an ACK (µs); the peer adds it to its PTO (RFC 9002 §6.2.1). */
  maxAckDelayUs: number;
}

export const TRANSPORT_VERSION = 1;

export function encodeSynOptions(o: SynOptions, buf: Uint8Array, off: number): void {
  buf[off] = o.version;
  buf[off + 1] = 0;
  writeU16(buf, off + 2, o.maxSegmentBytes);
  writeU32(buf, off + 4, o.maxAckDelayUs);
}

/** Errors: invalid_argument when short or the version/segment size is unusable. */
export function decodeSynOptions(buf: Uint8Array, off: number, len: number): Result<SynOptions> {
  if (len < SYN_OPTIONS_BYTES) return err('invalid_argument', 'SYN options too short');
  const version = buf[off]!;
  if (version !== TRANSPORT_VERSION) return err('invalid_argument', `unsupported transport version ${version}`);
  const maxSegmentBytes = readU16(buf, off + 2);
  if (maxSegmentBytes < MIN_SEGMENT_BYTES) return err('invalid_argument', `peer segment size ${maxSegmentBytes} too small`);
  return ok({ version, maxSegmentBytes, maxAckDelayUs: readU32(buf, off + 4) });
}

/**
 * Write an RST answering `segment` (swapped ports, same connId) — what the node sends for a segment that
 * matches no connection (except an RST, which is never answered). Returns the length, 0 if no reply is due.
 */
export function encodeResetFor(segment: Uint8Array, buf: Uint8Array, reason?: Uint8Array): number {
  if (segment.length < SEGMENT_HEADER_BYTES || segment[0] !== KIND_STREAM) return 0;
  if ((segment[OFF_FLAGS]! & FLAG_RST) !== 0 || buf.length < SEGMENT_HEADER_BYTES) return 0;
  buf.fill(0, 0, SEGMENT_HEADER_BYTES);
  buf[0] = KIND_STREAM;
  buf[OFF_FLAGS] = FLAG_RST;
  writeU16(buf, OFF_SRC_PORT, readU16(segment, OFF_DST_PORT));
  writeU16(buf, OFF_DST_PORT, readU16(segment, OFF_SRC_PORT));
  writeU32(buf, OFF_CONN_ID, readU32(segment, OFF_CONN_ID));
  // The reason trailer rides as the RST's payload (a receiver that knows none ignores an RST's payload).
  if (reason && reason.length > 0 && reason.length <= MAX_RESET_REASON_BYTES && buf.length >= SEGMENT_HEADER_BYTES + reason.length) {
    buf.set(reason, SEGMENT_HEADER_BYTES);
    return SEGMENT_HEADER_BYTES + reason.length;
  }
  return SEGMENT_HEADER_BYTES;
}

/**
 * Why a SYN was refused, carried after the RST's header (issue 15): a network policy denied it. Layout:
 * [u8 RESET_REASON_POLICY][UTF-8 JSON {network, network_id, port, rule, rule_index, line}], ≤ 512 bytes.
 */
export const RESET_REASON_POLICY = 0x01;
export const MAX_RESET_REASON_BYTES = 512;

export interface PolicyResetReason {
  network: string;
  network_id: number;
  port: number;
  rule: string;
  /** 0-based; null = the policy's default decided. */
  rule_index: number | null;
  line: number | null;
}

/** The trailer for a policy refusal; the rule text is cut to fit. */
export function encodePolicyResetReason(r: PolicyResetReason): Uint8Array {
  const enc = new TextEncoder();
  let rule = r.rule;
  for (;;) {
    const body = enc.encode(JSON.stringify({ ...r, rule }));
    if (body.length + 1 <= MAX_RESET_REASON_BYTES || rule.length === 0) {
      const out = new Uint8Array(1 + body.length);
      out[0] = RESET_REASON_POLICY;
      out.set(body, 1);
      return out.length <= MAX_RESET_REASON_BYTES ? out : Uint8Array.of(RESET_REASON_POLICY);
    }
    rule = rule.slice(0, Math.floor(rule.length / 2)) + '…';
  }
}

/** Total: any bytes → the policy reason, or null (none, unknown kind, malformed). */
export function decodePolicyResetReason(b: Uint8Array): PolicyResetReason | null {
  if (b.length < 2 || b.length > MAX_RESET_REASON_BYTES || b[0] !== RESET_REASON_POLICY) return null;
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(1)));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const u32 = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
  const optU32 = (x: unknown): x is number | null => x === null || u32(x);
  if (typeof o.network !== 'string' || o.network.length > 63 || !u32(o.network_id) || !u32(o.port) || o.port > 65535) return null;
  if (typeof o.rule !== 'string' || !optU32(o.rule_index) || !optU32(o.line)) return null;
  return { network: o.network, network_id: o.network_id, port: o.port, rule: o.rule, rule_index: o.rule_index, line: o.line };
}

export interface Datagram {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** Encode a datagram into `buf`; returns its length. Errors: invalid_argument (ports, buffer too small). */
export function encodeDatagram(d: Datagram, buf: Uint8Array): Result<number> {
  if (!isU16(d.srcPort) || !isU16(d.dstPort)) return err('invalid_argument', 'datagram port out of range');
  const total = DATAGRAM_HEADER_BYTES + d.payload.length;
  if (buf.length < total) return err('invalid_argument', `buffer too small: ${buf.length} < ${total}`);
  return ok(encodeDatagramInto(d.srcPort, d.dstPort, d.payload, buf));
}

/** encodeDatagram without the record and the Result (the per-datagram send path): the length, or -1 when a port is
 * out of range or `buf` is too small. */
export function encodeDatagramInto(srcPort: number, dstPort: number, payload: Uint8Array, buf: Uint8Array): number {
  const total = DATAGRAM_HEADER_BYTES + payload.length;
  if (!isU16(srcPort) || !isU16(dstPort) || buf.length < total) return -1;
  buf[0] = KIND_DATAGRAM;
  writeU16(buf, 1, srcPort);
  writeU16(buf, 3, dstPort);
  buf.set(payload, DATAGRAM_HEADER_BYTES);
  return total;
}

/** Decode a datagram; `payload` is a view into `buf`. Never throws. Errors: invalid_argument. */
export function decodeDatagram(buf: Uint8Array): Result<Datagram> {
  if (buf.length < DATAGRAM_HEADER_BYTES) return err('invalid_argument', `datagram too short: ${buf.length} bytes`);
  if (buf[0] !== KIND_DATAGRAM) return err('invalid_argument', `not a datagram: kind 0x${buf[0]!.toString(16)}`);
  return ok({ srcPort: readU16(buf, 1), dstPort: readU16(buf, 3), payload: buf.subarray(DATAGRAM_HEADER_BYTES) });
}

const EMPTY = new Uint8Array(0);

/** A probe of `plaintextBytes` (≥ 5) into buf (zero padding); returns its length, 0 when it does not fit. */
export function encodePmtuProbe(id: number, plaintextBytes: number, buf: Uint8Array): number {
  if (plaintextBytes < PMTU_PROBE_MIN_BYTES || plaintextBytes > buf.length) return 0;
  buf[0] = KIND_PMTU_PROBE;
  writeU32(buf, 1, id >>> 0);
  buf.fill(0, PMTU_PROBE_MIN_BYTES, plaintextBytes);
  return plaintextBytes;
}

/** The probe id of a KIND_PMTU_PROBE plaintext; null when malformed. */
export function decodePmtuProbe(plaintext: Uint8Array): number | null {
  return plaintext.length >= PMTU_PROBE_MIN_BYTES && plaintext[0] === KIND_PMTU_PROBE ? readU32(plaintext, 1) : null;
}

export function encodePmtuAck(id: number, receivedBytes: number, buf: Uint8Array): number {
  if (buf.length < PMTU_ACK_BYTES) return 0;
  buf[0] = KIND_PMTU_ACK;
  writeU32(buf, 1, id >>> 0);
  writeU32(buf, 5, receivedBytes >>> 0);
  return PMTU_ACK_BYTES;
}

export function decodePmtuAck(plaintext: Uint8Array): { id: number; receivedBytes: number } | null {
  if (plaintext.length < PMTU_ACK_BYTES || plaintext[0] !== KIND_PMTU_ACK) return null;
  return { id: readU32(plaintext, 1), receivedBytes: readU32(plaintext, 5) };
}
