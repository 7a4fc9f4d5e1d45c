// Outer UDP tunnel frames of the original v0.5 (SPEC.md §4; pkg/daemon/tunnel.go, pkg/protocol/header.go).
//
//   PILT  "PILT" | inner packet (34-byte header + payload), plaintext
//   PILS  "PILS" | u32 sender node | nonce 12 (u32 random prefix ‖ u64 BE counter) | AES-256-GCM ciphertext+tag 16
//   PILK  "PILK" | u32 sender node | X25519 public 32                        (unauthenticated key exchange)
//   PILA  "PILA" | u32 sender node | X25519 public 32 | Ed25519 public 32 | Ed25519 signature 64
//         signature over "auth" | u32 node | X25519 public (40 bytes; the Go comment says "auth:", the code
//         and the captured frames use "auth" without the colon)
//   PILP  "PILP" — NAT punch, 4 bytes
//
// Beacon messages share the socket; their first byte is < 0x10, every tunnel magic starts with 'P' (0x50).
// Decoders return views into the input (no copies) and are strict about lengths: the original tolerates
// trailing bytes after PILA/PILK/PILP/PILT but never sends any.
import { err, ok, type Result } from '../core/result.js';
import { readU32, writeU32, isU32 } from './bytes.js';
import { decodePacket, encodePacket, PACKET_HEADER_SIZE, type Packet } from './header.js';

export type LegacyFrameKind = 'PILA' | 'PILS' | 'PILP' | 'PILT' | 'PILK';

export const MAGIC_PILT = 0x50494c54;
export const MAGIC_PILS = 0x50494c53;
export const MAGIC_PILK = 0x50494c4b;
export const MAGIC_PILA = 0x50494c41;
export const MAGIC_PILP = 0x50494c50;

export const X25519_KEY_SIZE = 32;
export const ED25519_KEY_SIZE = 32;
export const ED25519_SIG_SIZE = 64;
export const LEGACY_NONCE_SIZE = 12;
export const GCM_TAG_SIZE = 16;

export const PILP_SIZE = 4;
export const PILK_SIZE = 4 + 4 + X25519_KEY_SIZE; // 40
export const PILA_SIZE = 4 + 4 + X25519_KEY_SIZE + ED25519_KEY_SIZE + ED25519_SIG_SIZE; // 136
/** Bytes before the ciphertext in a PILS frame: magic, node, nonce. Seal straight into out[20..]. */
export const PILS_HEADER_SIZE = 4 + 4 + LEGACY_NONCE_SIZE; // 20
export const PILS_MIN_SIZE = PILS_HEADER_SIZE + GCM_TAG_SIZE; // 36
export const PILT_MIN_SIZE = 4 + PACKET_HEADER_SIZE; // 38
/** Length of the PILA signed message: "auth" | u32 node | X25519 public. */
export const PILA_SIGNED_SIZE = 4 + 4 + X25519_KEY_SIZE; // 40

export interface PiltFrame {
  kind: 'PILT';
  packet: Packet;
}
export interface PilsFrame {
  kind: 'PILS';
  node: number;
  nonce: Uint8Array; // 12 bytes
  ciphertext: Uint8Array; // ciphertext ‖ 16-byte GCM tag
}
export interface PilkFrame {
  kind: 'PILK';
  node: number;
  x25519Pub: Uint8Array; // 32
}
export interface PilaFrame {
  kind: 'PILA';
  node: number;
  x25519Pub: Uint8Array; // 32
  ed25519Pub: Uint8Array; // 32
  signature: Uint8Array; // 64
}
export interface PilpFrame {
  kind: 'PILP';
}
export type LegacyFrame = PiltFrame | PilsFrame | PilkFrame | PilaFrame | PilpFrame;

/** Demultiplex by the 4-byte magic only (no length checks beyond the magic). */
export function legacyFrameKind(buf: Uint8Array): LegacyFrameKind | null {
  if (!(buf instanceof Uint8Array) || buf.length < 4) return null;
  if (buf[0] !== 0x50 || buf[1] !== 0x49 || buf[2] !== 0x4c) return null;
  switch (buf[3]) {
    case 0x54:
      return 'PILT';
    case 0x53:
      return 'PILS';
    case 0x4b:
      return 'PILK';
    case 0x41:
      return 'PILA';
    case 0x50:
      return 'PILP';
    default:
      return null;
  }
}

function bad<T>(msg: string): Result<T> {
  return err('invalid_argument', msg);
}

function checkMagic(buf: unknown, kind: LegacyFrameKind): string | null {
  if (!(buf instanceof Uint8Array)) return 'frame must be a Uint8Array';
  if (legacyFrameKind(buf) !== kind) return `not a ${kind} frame`;
  return null;
}

function checkKey(k: unknown, size: number, what: string): string | null {
  if (!(k instanceof Uint8Array) || k.length !== size) return `${what} must be ${size} bytes`;
  return null;
}

function outBuf(out: Uint8Array | undefined, offset: number, size: number): Uint8Array | string {
  const buf = out ?? new Uint8Array(size);
  if (!Number.isInteger(offset) || offset < 0 || offset + size > buf.length) {
    return `no room for ${size} bytes at offset ${offset} (buffer ${buf.length})`;
  }
  return buf;
}

// ---- PILP ----------------------------------------------------------------------------------------------

/** The punch packet itself (tunnels ignore it; NATs learn from it). Shared: never write into it. */
export const PILP_FRAME = new Uint8Array([0x50, 0x49, 0x4c, 0x50]);

/** Any frame that starts with `PILP` is a punch, as the original treats it. */
export function isPilp(buf: Uint8Array): boolean {
  return buf.length >= PILP_SIZE && buf[0] === 0x50 && buf[1] === 0x49 && buf[2] === 0x4c && buf[3] === 0x50;
}

export function encodePilp(out?: Uint8Array, offset = 0): Result<Uint8Array> {
  const buf = outBuf(out, offset, PILP_SIZE);
  if (typeof buf === 'string') return bad(buf);
  writeU32(buf, offset, MAGIC_PILP);
  return ok(buf.subarray(offset, offset + PILP_SIZE));
}

export function decodePilp(buf: Uint8Array): Result<PilpFrame> {
  const m = checkMagic(buf, 'PILP');
  if (m !== null) return bad(m);
  if (buf.length !== PILP_SIZE) return bad(`PILP frame must be ${PILP_SIZE} bytes, got ${buf.length}`);
  return ok({ kind: 'PILP' });
}

// ---- PILK ----------------------------------------------------------------------------------------------

export function encodePilk(f: Omit<PilkFrame, 'kind'>, out?: Uint8Array, offset = 0): Result<Uint8Array> {
  if (!isU32(f.node)) return bad('node must be u32');
  const k = checkKey(f.x25519Pub, X25519_KEY_SIZE, 'X25519 public key');
  if (k !== null) return bad(k);
  const buf = outBuf(out, offset, PILK_SIZE);
  if (typeof buf === 'string') return bad(buf);
  writeU32(buf, offset, MAGIC_PILK);
  writeU32(buf, offset + 4, f.node);
  buf.set(f.x25519Pub, offset + 8);
  return ok(buf.subarray(offset, offset + PILK_SIZE));
}

export function decodePilk(buf: Uint8Array): Result<PilkFrame> {
  const m = checkMagic(buf, 'PILK');
  if (m !== null) return bad(m);
  if (buf.length !== PILK_SIZE) return bad(`PILK frame must be ${PILK_SIZE} bytes, got ${buf.length}`);
  return ok({ kind: 'PILK', node: readU32(buf, 4), x25519Pub: buf.subarray(8, 40) });
}

// ---- PILA ----------------------------------------------------------------------------------------------

/** The 40 bytes a PILA signature covers: "auth" | u32 node | X25519 public key. */
export function pilaSignedMessage(node: number, x25519Pub: Uint8Array, out?: Uint8Array): Result<Uint8Array> {
  if (!isU32(node)) return bad('node must be u32');
  const k = checkKey(x25519Pub, X25519_KEY_SIZE, 'X25519 public key');
  if (k !== null) return bad(k);
  const buf = outBuf(out, 0, PILA_SIGNED_SIZE);
  if (typeof buf === 'string') return bad(buf);
  buf[0] = 0x61; // a
  buf[1] = 0x75; // u
  buf[2] = 0x74; // t
  buf[3] = 0x68; // h
  writeU32(buf, 4, node);
  buf.set(x25519Pub, 8);
  return ok(buf.subarray(0, PILA_SIGNED_SIZE));
}

export function encodePila(f: Omit<PilaFrame, 'kind'>, out?: Uint8Array, offset = 0): Result<Uint8Array> {
  if (!isU32(f.node)) return bad('node must be u32');
  const k =
    checkKey(f.x25519Pub, X25519_KEY_SIZE, 'X25519 public key') ??
    checkKey(f.ed25519Pub, ED25519_KEY_SIZE, 'Ed25519 public key') ??
    checkKey(f.signature, ED25519_SIG_SIZE, 'Ed25519 signature');
  if (k !== null) return bad(k);
  const buf = outBuf(out, offset, PILA_SIZE);
  if (typeof buf === 'string') return bad(buf);
  writeU32(buf, offset, MAGIC_PILA);
  writeU32(buf, offset + 4, f.node);
  buf.set(f.x25519Pub, offset + 8);
  buf.set(f.ed25519Pub, offset + 40);
  buf.set(f.signature, offset + 72);
  return ok(buf.subarray(offset, offset + PILA_SIZE));
}

export function decodePila(buf: Uint8Array): Result<PilaFrame> {
  const m = checkMagic(buf, 'PILA');
  if (m !== null) return bad(m);
  if (buf.length !== PILA_SIZE) return bad(`PILA frame must be ${PILA_SIZE} bytes, got ${buf.length}`);
  return ok({
    kind: 'PILA',
    node: readU32(buf, 4),
    x25519Pub: buf.subarray(8, 40),
    ed25519Pub: buf.subarray(40, 72),
    signature: buf.subarray(72, 136),
  });
}

// ---- PILS ----------------------------------------------------------------------------------------------

export function encodePils(f: Omit<PilsFrame, 'kind'>, out?: Uint8Array, offset = 0): Result<Uint8Array> {
  if (!isU32(f.node)) return bad('node must be u32');
  const k = checkKey(f.nonce, LEGACY_NONCE_SIZE, 'nonce');
  if (k !== null) return bad(k);
  if (!(f.ciphertext instanceof Uint8Array) || f.ciphertext.length < GCM_TAG_SIZE) {
    return bad(`ciphertext must include the ${GCM_TAG_SIZE}-byte tag`);
  }
  const size = PILS_HEADER_SIZE + f.ciphertext.length;
  const buf = outBuf(out, offset, size);
  if (typeof buf === 'string') return bad(buf);
  const at = offset + PILS_HEADER_SIZE;
  // The ciphertext may already be in place (sealed into out[offset+20..]); then it is not copied.
  if (!(f.ciphertext.buffer === buf.buffer && f.ciphertext.byteOffset === buf.byteOffset + at)) buf.set(f.ciphertext, at);
  writeU32(buf, offset, MAGIC_PILS);
  writeU32(buf, offset + 4, f.node);
  buf.set(f.nonce, offset + 8);
  return ok(buf.subarray(offset, offset + size));
}

export function decodePils(buf: Uint8Array): Result<PilsFrame> {
  const m = checkMagic(buf, 'PILS');
  if (m !== null) return bad(m);
  if (buf.length < PILS_MIN_SIZE) return bad(`PILS frame too short: ${buf.length} bytes (min ${PILS_MIN_SIZE})`);
  return ok({
    kind: 'PILS',
    node: readU32(buf, 4),
    nonce: buf.subarray(8, 20),
    ciphertext: buf.subarray(20),
  });
}

/** Nonce of the original: u32 per-sender random prefix ‖ u64 big-endian counter (starts at 1). */
export function encodeLegacyNonce(prefix: number, counter: bigint | number, out?: Uint8Array, offset = 0): Result<Uint8Array> {
  if (!isU32(prefix)) return bad('nonce prefix must be u32');
  let c: bigint;
  if (typeof counter === 'number') {
    if (!Number.isSafeInteger(counter) || counter < 0) return bad('nonce counter must be a non-negative safe integer');
    c = BigInt(counter);
  } else if (typeof counter === 'bigint' && counter >= 0n && counter <= 0xffffffffffffffffn) {
    c = counter;
  } else {
    return bad('nonce counter must be u64');
  }
  const buf = outBuf(out, offset, LEGACY_NONCE_SIZE);
  if (typeof buf === 'string') return bad(buf);
  writeU32(buf, offset, prefix);
  writeU32(buf, offset + 4, Number(c >> 32n));
  writeU32(buf, offset + 8, Number(c & 0xffffffffn));
  return ok(buf.subarray(offset, offset + LEGACY_NONCE_SIZE));
}

export interface LegacyNonceParts {
  prefix: number;
  counter: bigint;
}

export function decodeLegacyNonce(nonce: Uint8Array): Result<LegacyNonceParts> {
  if (!(nonce instanceof Uint8Array) || nonce.length !== LEGACY_NONCE_SIZE) {
    return bad(`nonce must be ${LEGACY_NONCE_SIZE} bytes`);
  }
  return ok({
    prefix: readU32(nonce, 0),
    counter: (BigInt(readU32(nonce, 4)) << 32n) | BigInt(readU32(nonce, 8)),
  });
}

// ---- PILT ----------------------------------------------------------------------------------------------

export function encodePilt(packet: Packet, out?: Uint8Array, offset = 0): Result<Uint8Array> {
  const size = 4 + PACKET_HEADER_SIZE + (packet?.payload?.length ?? 0);
  const buf = outBuf(out, offset, size);
  if (typeof buf === 'string') return bad(buf);
  const r = encodePacket(packet, buf, offset + 4);
  if (!r.ok) return r;
  writeU32(buf, offset, MAGIC_PILT);
  return ok(buf.subarray(offset, offset + size));
}

/** PILT: magic, then exactly one packet whose checksum is verified; the payload is a view of `buf`. */
export function decodePilt(buf: Uint8Array): Result<PiltFrame> {
  const m = checkMagic(buf, 'PILT');
  if (m !== null) return bad(m);
  if (buf.length < PILT_MIN_SIZE) return bad(`PILT frame too short: ${buf.length} bytes (min ${PILT_MIN_SIZE})`);
  const p = decodePacket(buf.subarray(4));
  if (!p.ok) return p;
  return ok({ kind: 'PILT', packet: p.value });
}

// ---- any -----------------------------------------------------------------------------------------------

/** Decode whichever legacy frame `buf` is. Total: any bytes give a Result. */
export function decodeLegacyFrame(buf: Uint8Array): Result<LegacyFrame> {
  switch (legacyFrameKind(buf)) {
    case 'PILT':
      return decodePilt(buf);
    case 'PILS':
      return decodePils(buf);
    case 'PILK':
      return decodePilk(buf);
    case 'PILA':
      return decodePila(buf);
    case 'PILP':
      return decodePilp(buf);
    default:
      return bad('not a v0.5 tunnel frame (unknown magic)');
  }
}

export function encodeLegacyFrame(f: LegacyFrame, out?: Uint8Array, offset = 0): Result<Uint8Array> {
  switch (f?.kind) {
    case 'PILT':
      return encodePilt(f.packet, out, offset);
    case 'PILS':
      return encodePils(f, out, offset);
    case 'PILK':
      return encodePilk(f, out, offset);
    case 'PILA':
      return encodePila(f, out, offset);
    case 'PILP':
      return encodePilp(out, offset);
    default:
      return bad('unknown legacy frame kind');
  }
}
