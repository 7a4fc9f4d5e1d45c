// The original v0.5 tunnel suite (PILA/PILS), for talking to original Go nodes. Facts from the original's
// pkg/daemon/tunnel.go and the capture in ../shared/interop (our own code, written from those facts):
//
//   key exchange  PILA = magic | u32 node | X25519 pub | Ed25519 pub | Ed25519 sig("auth" | u32 node | X25519 pub)
//                 one static X25519 key per daemon run; the receiver checks the Ed25519 key against the
//                 registry's `lookup` answer and answers with its own PILA when the peer is new or its X25519
//                 key changed (restart).
//   key           SHA-256("pilot-tunnel-v1:" ‖ X25519(ours, theirs)) — one AES-256-GCM key for both directions
//   data          PILS = magic | u32 sender node | nonce 12 | AES-256-GCM(ciphertext ‖ tag 16), NO associated data
//                 (the 20-byte header is not authenticated; Go calls aead.Seal(nil, nonce, plaintext, nil))
//   nonce         u32 random per-sender prefix ‖ u64 BE counter, the first packet uses counter 1
//   replay        the original keeps a 256-counter bitmap per peer on the counter alone
//
// What we do differently, without breaking the original:
// - The replay window is only updated after the tag verified (the original records first and undoes on failure).
// - The window belongs to one nonce prefix. The original draws a new prefix *and restarts its counter at 1*
//   whenever it re-derives (every PILA it receives, duplicates included), which a counter-only window would
//   reject as replays; we start a fresh window for an authentic frame with a new prefix and refuse prefixes
//   we already retired, so old frames cannot be replayed by switching back.
// - One key serves both directions, so the two random prefixes must differ or GCM nonces repeat. The original
//   never checks prefixes, so when the peer's prefix equals ours we simply draw a new one.
// - PILK (unauthenticated key exchange) and PILT (plaintext) are refused unless allowInsecureLegacy is set.
// No clocks, no I/O: callers pass `now` and move bytes.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import sodium from 'sodium-native';
import { err, ok, type Micros, type Result } from '../core/index.js';
import { readU32, writeU32 } from '../wire/bytes.js';
import {
  decodePila,
  decodePilk,
  encodePila,
  encodePilk,
  legacyFrameKind,
  pilaSignedMessage,
  GCM_TAG_SIZE,
  MAGIC_PILS,
  PILS_HEADER_SIZE,
  PILS_MIN_SIZE,
  X25519_KEY_SIZE,
} from '../wire/legacy-frame.js';
import { sign, verify, type Identity } from './identity.js';
import type { TunnelFailureReason, TunnelSession } from './tunnel-session.js';

/** The original's replay window, in counters (tunnel.go replayWindowSize). */
export const LEGACY_REPLAY_WINDOW = 256;
/** Bytes a PILS frame adds around the inner packet: 20 header + 16 tag. */
export const LEGACY_OVERHEAD_BYTES = PILS_HEADER_SIZE + GCM_TAG_SIZE;
/** Largest inner packet in one PILS frame: a UDP/IPv4 payload (65507) minus the PILS overhead. */
export const LEGACY_MAX_PLAINTEXT_BYTES = 65507 - LEGACY_OVERHEAD_BYTES;
/** Domain separator of the original's key derivation. */
export const LEGACY_KDF_LABEL = 'pilot-tunnel-v1:';
/** How many retired nonce prefixes a session remembers (each peer re-derivation retires one). */
const RETIRED_PREFIXES = 16;

/**
 * Where things are in a PILS frame, for src/datapath's batch AEAD (structurally its AeadLayout): no associated
 * data, the whole 12-byte nonce at offset 8, ciphertext from 20. Use with algorithm 'aes-256-gcm'.
 */
export const LEGACY_PILS_LAYOUT = Object.freeze({ headerBytes: PILS_HEADER_SIZE, aadBytes: 0, nonceOffset: 8, nonceBytes: 12 as const });

/** The part of src/datapath's AeadBatch the legacy batch paths use (crypto/ must not import datapath/). */
export interface LegacyBatchAead {
  seal(buf: Uint8Array, meta: Uint32Array, count: number): number;
  open(buf: Uint8Array, meta: Uint32Array, count: number, status: Uint8Array): number;
}
/** u32 slots per packet in a datapath meta array: offset, length, ipU32, port. */
const META_STRIDE = 4;

export interface LegacyKeyPair {
  readonly publicKey: Uint8Array; // X25519, 32
  readonly secretKey: Uint8Array; // X25519, 32
}

/** A fresh X25519 key pair (one per daemon run, as the original; or per peer). */
export function generateLegacyKeyPair(): LegacyKeyPair {
  return legacyKeyPairFromSecret(new Uint8Array(randomBytes(X25519_KEY_SIZE)));
}

/** X25519 key pair from a 32-byte secret (tests, known-answer vectors). Throws on a wrong size (a bug). */
export function legacyKeyPairFromSecret(secretKey: Uint8Array): LegacyKeyPair {
  if (secretKey.length !== X25519_KEY_SIZE) throw new RangeError('X25519 secret must be 32 bytes');
  const publicKey = new Uint8Array(X25519_KEY_SIZE);
  sodium.crypto_scalarmult_base(publicKey, secretKey);
  return { publicKey, secretKey: new Uint8Array(secretKey) };
}

/**
 * The original's tunnel key: SHA-256("pilot-tunnel-v1:" ‖ X25519(ourSecret, peerPublic)). invalid_argument for a
 * low-order peer key (all-zero shared secret; Go's crypto/ecdh refuses it too). No I/O.
 */
export function deriveLegacyTunnelKey(ourSecret: Uint8Array, peerPublic: Uint8Array): Result<Uint8Array> {
  if (ourSecret.length !== X25519_KEY_SIZE || peerPublic.length !== X25519_KEY_SIZE) {
    return err('invalid_argument', 'X25519 keys must be 32 bytes');
  }
  const shared = new Uint8Array(X25519_KEY_SIZE);
  try {
    sodium.crypto_scalarmult(shared, ourSecret, peerPublic);
  } catch (cause) {
    return err('invalid_argument', 'X25519 with the peer key failed (low-order point)', { cause });
  }
  let acc = 0;
  for (const b of shared) acc |= b;
  if (acc === 0) return err('invalid_argument', 'X25519 shared secret is zero (low-order peer key)');
  const key = createHash('sha256').update(LEGACY_KDF_LABEL, 'ascii').update(shared).digest();
  sodium.sodium_memzero(shared);
  return ok(new Uint8Array(key.buffer, key.byteOffset, key.byteLength));
}

/** A PILA whose signature verified with the Ed25519 key it carries; not yet checked against the registry. */
export interface VerifiedPila {
  readonly nodeId: number;
  readonly x25519Pub: Uint8Array; // copies: the frame buffer may be reused
  readonly ed25519Pub: Uint8Array;
}

/**
 * Decode a PILA frame and verify its signature over "auth" | u32 node | X25519 pub with the Ed25519 key inside.
 * The caller must still compare `ed25519Pub` with the registry's key for `nodeId` (LegacyKeyExchange.accept
 * does). invalid_argument for anything malformed or forged; never throws.
 */
export function verifyPilaFrame(frame: Uint8Array): Result<VerifiedPila> {
  const d = decodePila(frame);
  if (!d.ok) return d;
  const msg = pilaSignedMessage(d.value.node, d.value.x25519Pub);
  if (!msg.ok) return msg;
  if (!verify(d.value.ed25519Pub, msg.value, d.value.signature)) {
    return err('invalid_argument', 'PILA signature does not verify', { detail: { node: d.value.node, reason: 'auth' } });
  }
  return ok({ nodeId: d.value.node, x25519Pub: new Uint8Array(d.value.x25519Pub), ed25519Pub: new Uint8Array(d.value.ed25519Pub) });
}

/** What accepting a key exchange did, so the node knows whether to answer with its own PILA. */
export interface LegacyAcceptOutcome {
  session: LegacySession;
  /** new: first key from this peer; rekeyed: its X25519 key changed (restart); duplicate: same key again. */
  kind: 'new' | 'rekeyed' | 'duplicate';
  /** Answer with authFrame(): always for new/rekeyed (the original does); for duplicate the peer evidently
   * missed ours — answer, but rate-limit (e.g. once a second per peer). */
  shouldReply: boolean;
}

export interface LegacyKeyExchangeInit {
  identity: Identity;
  /** Our node id from the registry (0 until registered; see setNodeId). */
  nodeId: number;
  /** Default: a fresh pair. */
  keyPair?: LegacyKeyPair;
  /** Accept PILK (no identity) — off unless the user passed --allow-insecure-legacy. */
  allowInsecureLegacy?: boolean;
  /** Nonce prefix source (tests); default crypto-random u32. */
  randomU32?: () => number;
}

/** Our side of the original's key exchange. One instance per daemon run. */
export class LegacyKeyExchange {
  readonly keyPair: LegacyKeyPair;
  readonly allowInsecureLegacy: boolean;
  private readonly identity: Identity;
  private readonly randomU32: () => number;
  private nodeIdValue: number;
  private cachedAuth: Uint8Array | null = null;

  constructor(init: LegacyKeyExchangeInit) {
    this.identity = init.identity;
    this.nodeIdValue = init.nodeId >>> 0;
    this.keyPair = init.keyPair ?? generateLegacyKeyPair();
    this.allowInsecureLegacy = init.allowInsecureLegacy === true;
    this.randomU32 = init.randomU32 ?? (() => randomBytes(4).readUInt32BE(0));
  }

  get nodeId(): number {
    return this.nodeIdValue;
  }

  /** After (re-)registration: the PILA signs the node id, so it is rebuilt. */
  setNodeId(nodeId: number): void {
    if (nodeId >>> 0 === this.nodeIdValue) return;
    this.nodeIdValue = nodeId >>> 0;
    this.cachedAuth = null;
  }

  /** Our 136-byte PILA frame (the same bytes for the whole run, as the original's). Do not mutate. */
  authFrame(): Uint8Array {
    if (this.cachedAuth === null) {
      const msg = pilaSignedMessage(this.nodeIdValue, this.keyPair.publicKey);
      if (!msg.ok) throw new Error('PILA message: ' + msg.error.message); // node id and key sizes are invariants
      const f = encodePila({
        node: this.nodeIdValue,
        x25519Pub: this.keyPair.publicKey,
        ed25519Pub: this.identity.publicKey,
        signature: sign(this.identity, msg.value),
      });
      if (!f.ok) throw new Error('PILA encode: ' + f.error.message);
      this.cachedAuth = f.value;
    }
    return this.cachedAuth;
  }

  /** Our 40-byte PILK frame: only with allowInsecureLegacy (else invalid_argument). */
  insecureKeyFrame(): Result<Uint8Array> {
    if (!this.allowInsecureLegacy) return refusedInsecure('PILK');
    return encodePilk({ node: this.nodeIdValue, x25519Pub: this.keyPair.publicKey });
  }

  /**
   * Accept a verified PILA after checking its Ed25519 key against the registry's key for that node
   * (`registryEd25519`, from `lookup`); connection_failed when they differ or the registry had none.
   * `current` is the session we hold for that peer, if any: the same X25519 key keeps it (counters and
   * replay state survive duplicate PILAs), a different one replaces it.
   */
  accept(pila: VerifiedPila, registryEd25519: Uint8Array | null, nowUs: Micros, current?: LegacySession | null): Result<LegacyAcceptOutcome> {
    if (registryEd25519 === null || registryEd25519.length !== 32) {
      return err('connection_failed', `no registry key for node ${pila.nodeId}: cannot authenticate its PILA`, { detail: { reason: 'auth' } });
    }
    if (!sodium.sodium_memcmp(registryEd25519, pila.ed25519Pub)) {
      return err('connection_failed', `node ${pila.nodeId} signed its key exchange with a key the registry does not know`, {
        detail: { reason: 'auth', node: pila.nodeId },
      });
    }
    return this.acceptKey(pila.nodeId, pila.x25519Pub, pila.ed25519Pub, nowUs, current ?? null);
  }

  /**
   * An unauthenticated PILK from an original run with identity disabled. Refused (invalid_argument, reason
   * 'insecure') unless allowInsecureLegacy; the original itself answers PILK with PILA when it knows the
   * peer's registry key — so should the node: reply with authFrame() instead.
   */
  acceptInsecure(frame: Uint8Array, nowUs: Micros, current?: LegacySession | null): Result<LegacyAcceptOutcome> {
    if (!this.allowInsecureLegacy) return refusedInsecure('PILK');
    const d = decodePilk(frame);
    if (!d.ok) return d;
    return this.acceptKey(d.value.node, new Uint8Array(d.value.x25519Pub), null, nowUs, current ?? null);
  }

  private acceptKey(
    peerNodeId: number,
    peerX25519: Uint8Array,
    peerEd25519: Uint8Array | null,
    nowUs: Micros,
    current: LegacySession | null,
  ): Result<LegacyAcceptOutcome> {
    if (current !== null && !current.isDestroyed && sodium.sodium_memcmp(current.remoteX25519PublicKey, peerX25519)) {
      return ok({ session: current, kind: 'duplicate', shouldReply: true });
    }
    const key = deriveLegacyTunnelKey(this.keyPair.secretKey, peerX25519);
    if (!key.ok) return key;
    const session = new LegacySession({
      key: key.value,
      localNodeId: this.nodeIdValue,
      remoteNodeId: peerNodeId,
      remoteX25519PublicKey: peerX25519,
      remoteEd25519PublicKey: peerEd25519,
      createdAtUs: nowUs,
      noncePrefix: this.randomU32() >>> 0,
      randomU32: this.randomU32,
    });
    return ok({ session, kind: current === null ? 'new' : 'rekeyed', shouldReply: true });
  }
}

function refusedInsecure<T>(what: string): Result<T> {
  return err('invalid_argument', `${what} (unauthenticated v0.5 tunnel) refused: start the daemon with --allow-insecure-legacy to permit it`, {
    detail: { reason: 'insecure' },
  });
}

/** May a PILT (plaintext) frame be accepted or sent? Only with --allow-insecure-legacy. */
export function checkPlaintextAllowed(allowInsecureLegacy: boolean): Result<void> {
  return allowInsecureLegacy ? ok() : refusedInsecure('PILT');
}

export interface LegacySessionInit {
  key: Uint8Array; // 32
  localNodeId: number;
  remoteNodeId: number;
  remoteX25519PublicKey: Uint8Array;
  /** null for a PILK (unauthenticated) session. */
  remoteEd25519PublicKey: Uint8Array | null;
  createdAtUs: Micros;
  noncePrefix: number;
  randomU32?: () => number;
}

const OPEN_MESSAGES: Record<TunnelFailureReason, string> = {
  malformed: 'not a PILS frame',
  wrong_index: 'PILS frame from another node',
  replay: 'replayed or too old PILS counter',
  auth: 'PILS frame failed authentication',
  expired: 'legacy session destroyed',
  exhausted: 'nonce counter exhausted',
  too_large: 'plaintext too large',
  no_room: 'output buffer too small',
};

function fail<T>(reason: TunnelFailureReason): Result<T> {
  return err(reason === 'expired' || reason === 'exhausted' ? 'connection_failed' : 'invalid_argument', OPEN_MESSAGES[reason], {
    detail: { reason },
  });
}

/** 256-counter sliding window (bitmap over counter mod 256), exact for counters below 2^53. */
class LegacyReplayWindow {
  private readonly bits = new Uint32Array(LEGACY_REPLAY_WINDOW / 32);
  private highest = 0; // 0 = nothing yet (the original's counters start at 1)

  check(c: number): boolean {
    if (!(c >= 1) || !Number.isSafeInteger(c)) return false;
    if (c > this.highest) return true;
    if (this.highest - c >= LEGACY_REPLAY_WINDOW) return false;
    const bit = c % LEGACY_REPLAY_WINDOW;
    return ((this.bits[bit >>> 5]! >>> (bit & 31)) & 1) === 0;
  }

  update(c: number): void {
    if (c > this.highest) {
      const shift = c - this.highest;
      if (this.highest === 0 || shift >= LEGACY_REPLAY_WINDOW) this.bits.fill(0);
      else {
        for (let s = c; s > this.highest; s--) {
          const b = s % LEGACY_REPLAY_WINDOW;
          this.bits[b >>> 5] = this.bits[b >>> 5]! & ~(1 << (b & 31));
        }
      }
      this.highest = c;
    }
    const bit = c % LEGACY_REPLAY_WINDOW;
    this.bits[bit >>> 5] = this.bits[bit >>> 5]! | (1 << (bit & 31));
  }

  reset(): void {
    this.bits.fill(0);
    this.highest = 0;
  }
}

/** A v0.5 PILS session with one original peer. Implements the node's TunnelSession seam (suite 'legacy'). */
export class LegacySession implements TunnelSession {
  readonly suite = 'legacy' as const;
  readonly overheadBytes = LEGACY_OVERHEAD_BYTES;
  readonly maxPlaintextBytes = LEGACY_MAX_PLAINTEXT_BYTES;
  readonly createdAtUs: Micros;
  readonly localNodeId: number;
  readonly remoteNodeId: number;
  readonly remoteX25519PublicKey: Uint8Array;
  readonly remoteEd25519PublicKey: Uint8Array | null;

  private readonly key: Buffer;
  private readonly nonce = Buffer.alloc(12);
  private readonly randomU32: () => number;
  private prefix: number;
  private counter = 0; // last used; the first frame carries 1
  private readonly replay = new LegacyReplayWindow();
  private peerPrefix: number | null = null;
  private readonly retired: number[] = [];
  private received = 0;
  private destroyed = false;

  constructor(init: LegacySessionInit) {
    if (init.key.length !== 32) throw new RangeError('legacy session key must be 32 bytes');
    this.key = Buffer.from(init.key);
    this.localNodeId = init.localNodeId >>> 0;
    this.remoteNodeId = init.remoteNodeId >>> 0;
    this.remoteX25519PublicKey = init.remoteX25519PublicKey;
    this.remoteEd25519PublicKey = init.remoteEd25519PublicKey;
    this.createdAtUs = init.createdAtUs;
    this.prefix = init.noncePrefix >>> 0;
    this.randomU32 = init.randomU32 ?? (() => randomBytes(4).readUInt32BE(0));
  }

  /** True when the peer proved its registry identity (PILA); false for a PILK session. */
  get isAuthenticated(): boolean {
    return this.remoteEd25519PublicKey !== null;
  }
  get isDestroyed(): boolean {
    return this.destroyed;
  }
  get packetsSent(): number {
    return this.counter;
  }
  get packetsReceived(): number {
    return this.received;
  }
  /** Our current nonce prefix (u32). */
  get noncePrefix(): number {
    return this.prefix;
  }
  /**
   * The AES-256-GCM key, to hand once to src/datapath's createAeadBatch({ algorithm: 'aes-256-gcm', key,
   * layout: LEGACY_PILS_LAYOUT }) for the batch paths. A view of the session's own copy; never log it.
   */
  get aeadKey(): Uint8Array {
    return this.key;
  }

  /** The original has no rekey; a session lives as long as both daemons run. */
  needsRekey(_now: Micros): boolean {
    return false;
  }

  isExpired(_now: Micros): boolean {
    return this.destroyed;
  }

  private nextNonce(buf: Uint8Array, off: number): Result<void> {
    if (this.counter >= Number.MAX_SAFE_INTEGER) return fail('exhausted');
    this.counter++;
    writeU32(buf, off, this.prefix);
    writeU32(buf, off + 4, Math.floor(this.counter / 0x1_0000_0000));
    writeU32(buf, off + 8, this.counter >>> 0);
    return ok();
  }

  /**
   * Seal one inner packet (34-byte header + payload) into a PILS frame. With `out` (≥ plaintext + 36 bytes) the
   * frame is written at its start; `plaintext` may already sit at out[20..]. Errors: invalid_argument
   * (too_large, no_room), connection_failed (destroyed).
   */
  seal(plaintext: Uint8Array, now: Micros, out?: Uint8Array): Result<Uint8Array> {
    if (this.isExpired(now)) return fail('expired');
    const n = plaintext.length;
    if (n > LEGACY_MAX_PLAINTEXT_BYTES) return fail('too_large');
    const total = n + LEGACY_OVERHEAD_BYTES;
    let frame: Uint8Array;
    if (out === undefined) frame = new Uint8Array(total);
    else if (out.length < total) return fail('no_room');
    else frame = out;
    const nr = this.nextNonce(frame, 8);
    if (!nr.ok) return nr;
    writeU32(frame, 0, MAGIC_PILS);
    writeU32(frame, 4, this.localNodeId);
    this.nonce.set(frame.subarray(8, 20));
    const c = createCipheriv('aes-256-gcm', this.key, this.nonce);
    const body = c.update(plaintext);
    c.final();
    frame.set(body, PILS_HEADER_SIZE);
    frame.set(c.getAuthTag(), PILS_HEADER_SIZE + n);
    return ok(frame.length === total ? frame : frame.subarray(0, total));
  }

  /**
   * Authenticate and decrypt one PILS frame from this peer; returns a view of the inner packet (in `out`, or in
   * place over the ciphertext). Errors carry detail.reason: malformed | wrong_index | replay | auth | expired.
   * State changes only for authentic frames. Never throws.
   */
  open(frame: Uint8Array, now: Micros, out?: Uint8Array): Result<Uint8Array> {
    if (this.isExpired(now)) return fail('expired');
    if (!(frame instanceof Uint8Array) || frame.length < PILS_MIN_SIZE || legacyFrameKind(frame) !== 'PILS') return fail('malformed');
    if (readU32(frame, 4) !== this.remoteNodeId) return fail('wrong_index');
    const n = frame.length - LEGACY_OVERHEAD_BYTES;
    let target: Uint8Array;
    if (out === undefined) target = frame.subarray(PILS_HEADER_SIZE, PILS_HEADER_SIZE + n);
    else if (out.length < n) return fail('no_room');
    else target = out.subarray(0, n);
    const prefix = readU32(frame, 8);
    const counter = readU32(frame, 12) * 0x1_0000_0000 + readU32(frame, 16);
    const isNewEpoch = this.peerPrefix !== prefix;
    if (isNewEpoch) {
      if (this.retired.includes(prefix)) return fail('replay');
      if (!(counter >= 1) || !Number.isSafeInteger(counter)) return fail('replay');
    } else if (!this.replay.check(counter)) {
      return fail('replay');
    }
    this.nonce.set(frame.subarray(8, 20));
    const tag = frame.subarray(frame.length - GCM_TAG_SIZE);
    let plain: Buffer;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, this.nonce);
      d.setAuthTag(tag);
      plain = d.update(frame.subarray(PILS_HEADER_SIZE, PILS_HEADER_SIZE + n));
      d.final();
    } catch {
      return fail('auth');
    }
    this.commitReceive(prefix, counter, isNewEpoch);
    target.set(plain);
    return ok(target);
  }

  private commitReceive(prefix: number, counter: number, isNewEpoch: boolean): void {
    if (isNewEpoch) {
      if (this.peerPrefix !== null) {
        this.retired.push(this.peerPrefix);
        if (this.retired.length > RETIRED_PREFIXES) this.retired.shift();
      }
      this.peerPrefix = prefix;
      this.replay.reset();
      // One key for both directions: equal prefixes would repeat GCM nonces. The original never checks the
      // prefix of what it receives, so changing ours is free.
      while (this.prefix === prefix) this.prefix = this.randomU32() >>> 0;
    }
    this.replay.update(counter);
    this.received++;
  }

  /**
   * Seal `count` packets in place with a batch AEAD (native libsodium AES-GCM when the addon loaded): packet i
   * occupies buf[meta[4i], +meta[4i+1]) with its inner packet at offset 20 and 16 bytes left for the tag; this
   * writes each PILS header (magic, node, nonce) and then seals the batch in one call. Returns count, or -1
   * when the AEAD refused (nothing sent; counters are spent). Create `aead` once per session from aeadKey.
   */
  sealBatch(buf: Uint8Array, meta: Uint32Array, count: number, aead: LegacyBatchAead, now: Micros): number {
    if (this.isExpired(now) || meta.length < count * META_STRIDE) return -1;
    for (let i = 0; i < count; i++) {
      const off = meta[i * META_STRIDE]!;
      const len = meta[i * META_STRIDE + 1]!;
      if (len < LEGACY_OVERHEAD_BYTES || off + len > buf.length) return -1;
    }
    for (let i = 0; i < count; i++) {
      const off = meta[i * META_STRIDE]!;
      writeU32(buf, off, MAGIC_PILS);
      writeU32(buf, off + 4, this.localNodeId);
      if (!this.nextNonce(buf, off + 8).ok) return -1;
    }
    return aead.seal(buf, meta, count);
  }

  /**
   * Open `count` PILS frames in place with a batch AEAD: replay and sender checks first (status 0 for a
   * failure), then one AEAD call, then the replay window is updated for the authentic ones. On status[i] = 1
   * the inner packet is at offset 20, length meta[4i+1] - 36. Returns the authentic count. Never throws.
   */
  openBatch(buf: Uint8Array, meta: Uint32Array, count: number, status: Uint8Array, aead: LegacyBatchAead, now: Micros): number {
    if (this.isExpired(now) || meta.length < count * META_STRIDE || status.length < count) return 0;
    // Frames that fail the cheap checks are hidden from the AEAD by a zero length in a private meta copy.
    const m = meta.slice(0, count * META_STRIDE);
    const prefixes = new Array<number>(count);
    const counters = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      const off = m[i * META_STRIDE]!;
      const len = m[i * META_STRIDE + 1]!;
      let isOk = len >= PILS_MIN_SIZE && off + len <= buf.length && readU32(buf, off) === MAGIC_PILS && readU32(buf, off + 4) === this.remoteNodeId;
      if (isOk) {
        prefixes[i] = readU32(buf, off + 8);
        counters[i] = readU32(buf, off + 12) * 0x1_0000_0000 + readU32(buf, off + 16);
        const sameEpoch = prefixes[i] === this.peerPrefix;
        isOk = sameEpoch ? this.replay.check(counters[i]!) : !this.retired.includes(prefixes[i]!) && counters[i]! >= 1;
      }
      if (!isOk) m[i * META_STRIDE + 1] = 0;
    }
    aead.open(buf, m, count, status);
    let good = 0;
    for (let i = 0; i < count; i++) {
      if (m[i * META_STRIDE + 1] === 0) status[i] = 0;
      if (status[i] !== 1) continue;
      const isNewEpoch = prefixes[i] !== this.peerPrefix;
      // Re-check against the state left by earlier frames of this batch: a duplicate loses, and a frame of a
      // prefix an earlier frame just retired must not switch the epoch back.
      if (isNewEpoch ? this.retired.includes(prefixes[i]!) : !this.replay.check(counters[i]!)) {
        status[i] = 0;
        continue;
      }
      this.commitReceive(prefixes[i]!, counters[i]!, isNewEpoch);
      good++;
    }
    return good;
  }

  /** Wipe the key; seal and open refuse afterwards. */
  destroy(): void {
    this.destroyed = true;
    sodium.sodium_memzero(this.key);
  }
}
