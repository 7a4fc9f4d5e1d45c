// Noise_IK_25519_ChaChaPoly_BLAKE2b (noiseprotocol.org rev 34), one round trip, sans-IO:
//   <- s
//   ...
//   -> e, es, s, ss   (+ payload: initiator's Ed25519 key, node id, sender index, timestamp, early data)
//   <- e, ee, se      (+ payload: responder's sender index, node id, early data)
// Static keys are the Ed25519 identities mapped to X25519, so the registry's Ed25519 key is all an initiator needs.
// The initiator's payload names its Ed25519 key; the responder checks that it maps to the static key Noise
// authenticated and hands key + node id to the caller, who checks them against the registry.
// Replay of msg1 is refused per initiator key by a strictly increasing timestamp, as WireGuard does with TAI64N.
import sodium from 'sodium-native';
import { err, ok, type Micros, type Result } from '../core/index.js';
import {
  decodeNoiseInitiation,
  decodeNoiseResponse,
  encodeNoiseInitiation,
  encodeNoiseResponse,
  noiseFrameKind,
  MAX_UDP_PAYLOAD_BYTES,
  NOISE_INITIATION_HEADER_BYTES,
  NOISE_INITIATION_MACS_BYTES,
  NOISE_RESPONSE_HEADER_BYTES,
  readU32LE,
  readU64LE,
  writeU32LE,
  writeU64LE,
} from '../wire/noise-frame.js';
import { AEAD_TAG_BYTES, openCounter, sealCounter } from './aead.js';
import { cookieKeyFor, mac1KeyFor, openCookieReply, verifyMac1, writeInitiationMacs } from './cookie.js';
import {
  ED25519_PUBLIC_KEY_BYTES,
  ed25519PublicToX25519,
  identityX25519,
  X25519_KEY_BYTES,
  type Identity,
  type X25519KeyPair,
} from './identity.js';
import { DEFAULT_SESSION_LIMITS, NoiseSession, type SessionLimits } from './session.js';
import {
  acceptChoice,
  chooseCipher,
  decodeEarlyRecords,
  DEFAULT_DATA_CIPHER,
  encodeEarlyRecords,
  offerFor,
  RECORD_HEADER_BYTES,
  type DataCipher,
  type DataCipherSupport,
  type FrameAead,
} from './data-cipher.js';

export const NOISE_PROTOCOL_NAME = 'Noise_IK_25519_ChaChaPoly_BLAKE2b';
/** Binds both sides to this protocol and version: a peer with another prologue fails to decrypt msg1. */
export const PILOT_NOISE_PROLOGUE = new TextEncoder().encode('pilot-protocol noise-ik v1');

const HASH_BYTES = 64; // BLAKE2b-512
const BLOCK_BYTES = 128;
const DH_BYTES = X25519_KEY_BYTES;

/** Initiator payload: ed25519 pub | node id u32 | sender index u32 | seconds u64 | nanoseconds u32 | early data. */
const INIT_PAYLOAD_FIXED_BYTES = ED25519_PUBLIC_KEY_BYTES + 4 + 4 + 8 + 4; // 52
/** Responder payload: sender index u32 | node id u32 | early data. */
const RESP_PAYLOAD_FIXED_BYTES = 8;
const MSG1_FIXED_BYTES = DH_BYTES + (DH_BYTES + AEAD_TAG_BYTES) + AEAD_TAG_BYTES; // e, enc(s), payload tag
const MSG2_FIXED_BYTES = DH_BYTES + AEAD_TAG_BYTES;

// The early-data area of each payload is a record list (src/crypto/data-cipher.ts): the data-cipher record and the
// application's early data. Room is kept for an offer of every cipher we know (2) and for a choice (1).
const MAX_OFFER_RECORD_BYTES = RECORD_HEADER_BYTES + 2;
const MAX_CHOICE_RECORD_BYTES = RECORD_HEADER_BYTES + 1;
/** Largest application early data in msg1 so the PNI1 frame (with mac1 and mac2) fits one UDP payload (1256). */
export const MAX_INITIATION_EARLY_DATA_BYTES =
  MAX_UDP_PAYLOAD_BYTES - NOISE_INITIATION_HEADER_BYTES - MSG1_FIXED_BYTES - INIT_PAYLOAD_FIXED_BYTES - NOISE_INITIATION_MACS_BYTES -
  MAX_OFFER_RECORD_BYTES - RECORD_HEADER_BYTES;
/** Largest application early data in msg2 (1377). */
export const MAX_RESPONSE_EARLY_DATA_BYTES =
  MAX_UDP_PAYLOAD_BYTES - NOISE_RESPONSE_HEADER_BYTES - MSG2_FIXED_BYTES - RESP_PAYLOAD_FIXED_BYTES - MAX_CHOICE_RECORD_BYTES - RECORD_HEADER_BYTES;

/** Fills a buffer with random bytes; injectable for deterministic tests. Default: libsodium randombytes_buf. */
export type RandomSource = (buf: Uint8Array) => void;
const defaultRandom: RandomSource = (buf) => sodium.randombytes_buf(buf);

// ---------------------------------------------------------------------------------------------------------------
// Noise primitives (spec §4, §5.2): BLAKE2b hash, HMAC-BLAKE2b HKDF, ChaChaPoly with h as associated data.

function hash(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(HASH_BYTES);
  let total = 0;
  for (const p of parts) total += p.length;
  const joined = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    joined.set(p, off);
    off += p.length;
  }
  sodium.crypto_generichash(out, joined);
  return out;
}

// RFC 2104 HMAC over BLAKE2b-512 (block 128), as Noise defines it — not BLAKE2b's own keyed mode.
function hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  const ipad = new Uint8Array(BLOCK_BYTES).fill(0x36);
  const opad = new Uint8Array(BLOCK_BYTES).fill(0x5c);
  for (let i = 0; i < key.length; i++) {
    ipad[i] ^= key[i]!;
    opad[i] ^= key[i]!;
  }
  return hash(opad, hash(ipad, data));
}

function hkdf2(chainingKey: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const temp = hmac(chainingKey, ikm);
  const out1 = hmac(temp, Uint8Array.of(1));
  const out2 = hmac(temp, concat(out1, Uint8Array.of(2)));
  sodium.sodium_memzero(temp);
  return [out1, out2];
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** X25519; null when the peer's point yields the all-zero secret (low-order point: libsodium refuses). */
function dh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
  if (publicKey.length !== DH_BYTES) return null;
  const out = new Uint8Array(DH_BYTES);
  try {
    sodium.crypto_scalarmult(out, secretKey, publicKey);
  } catch {
    return null;
  }
  return out;
}

/** Noise SymmetricState with its CipherState folded in. Exported for the spec test vectors. */
export class SymmetricState {
  h: Uint8Array;
  ck: Uint8Array;
  private k: Uint8Array | null = null;
  private n = 0;

  constructor(protocolName: string, prologue: Uint8Array) {
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASH_BYTES) {
      this.h = new Uint8Array(HASH_BYTES);
      this.h.set(name);
    } else {
      this.h = hash(name);
    }
    this.ck = this.h.slice();
    this.mixHash(prologue);
  }

  clone(): SymmetricState {
    const c = Object.create(SymmetricState.prototype) as SymmetricState;
    c.h = this.h.slice();
    c.ck = this.ck.slice();
    c.k = this.k === null ? null : this.k.slice();
    c.n = this.n;
    return c;
  }

  mixHash(data: Uint8Array): void {
    this.h = hash(this.h, data);
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, temp] = hkdf2(this.ck, ikm);
    this.ck = ck;
    this.k = temp.slice(0, 32);
    this.n = 0;
    sodium.sodium_memzero(temp);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ct = this.k === null ? plaintext.slice() : sealCounter(this.k, this.n++, this.h, plaintext);
    this.mixHash(ct);
    return ct;
  }

  /** null when not authentic (state then unusable: callers work on a clone). */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array | null {
    let pt: Uint8Array | null;
    if (this.k === null) pt = ciphertext.slice();
    else {
      pt = openCounter(this.k, this.n, this.h, ciphertext);
      if (pt === null) return null;
      this.n++;
    }
    this.mixHash(ciphertext);
    return pt;
  }

  /** Split(): [initiator→responder key, responder→initiator key]. */
  split(): [Uint8Array, Uint8Array] {
    const [a, b] = hkdf2(this.ck, new Uint8Array(0));
    const k1 = a.slice(0, 32);
    const k2 = b.slice(0, 32);
    sodium.sodium_memzero(a);
    sodium.sodium_memzero(b);
    return [k1, k2];
  }

  wipe(): void {
    sodium.sodium_memzero(this.ck);
    if (this.k !== null) sodium.sodium_memzero(this.k);
  }
}

/** A fresh X25519 key pair from `random`. */
export function generateEphemeral(random: RandomSource = defaultRandom): X25519KeyPair {
  const secretKey = new Uint8Array(DH_BYTES);
  random(secretKey);
  return x25519FromSecret(secretKey);
}

export function x25519FromSecret(secretKey: Uint8Array): X25519KeyPair {
  const publicKey = new Uint8Array(DH_BYTES);
  sodium.crypto_scalarmult_base(publicKey, secretKey);
  return { publicKey, secretKey };
}

/**
 * Raw IK message 1 (-> e, es, s, ss, payload) after the caller built `sym` and mixed in the responder's static
 * key (pre-message). null when a DH fails (responder key is a low-order point).
 */
export function writeIkMessage1(
  sym: SymmetricState,
  s: X25519KeyPair,
  e: X25519KeyPair,
  rs: Uint8Array,
  payload: Uint8Array,
): Uint8Array | null {
  sym.mixHash(e.publicKey);
  const es = dh(e.secretKey, rs);
  if (es === null) return null;
  sym.mixKey(es);
  const encS = sym.encryptAndHash(s.publicKey);
  const ss = dh(s.secretKey, rs);
  if (ss === null) return null;
  sym.mixKey(ss);
  const encPayload = sym.encryptAndHash(payload);
  const out = new Uint8Array(DH_BYTES + encS.length + encPayload.length);
  out.set(e.publicKey, 0);
  out.set(encS, DH_BYTES);
  out.set(encPayload, DH_BYTES + encS.length);
  return out;
}

/** Raw IK message 1, responder side. null when malformed or not authentic. */
export function readIkMessage1(
  sym: SymmetricState,
  s: X25519KeyPair,
  msg: Uint8Array,
): { re: Uint8Array; rs: Uint8Array; payload: Uint8Array } | null {
  if (msg.length < MSG1_FIXED_BYTES) return null;
  const re = msg.slice(0, DH_BYTES);
  sym.mixHash(re);
  const es = dh(s.secretKey, re);
  if (es === null) return null;
  sym.mixKey(es);
  const rs = sym.decryptAndHash(msg.subarray(DH_BYTES, 2 * DH_BYTES + AEAD_TAG_BYTES));
  if (rs === null) return null;
  const ss = dh(s.secretKey, rs);
  if (ss === null) return null;
  sym.mixKey(ss);
  const payload = sym.decryptAndHash(msg.subarray(2 * DH_BYTES + AEAD_TAG_BYTES));
  if (payload === null) return null;
  return { re, rs, payload };
}

/** Raw IK message 2 (<- e, ee, se, payload), responder side. */
export function writeIkMessage2(
  sym: SymmetricState,
  e: X25519KeyPair,
  re: Uint8Array,
  rs: Uint8Array,
  payload: Uint8Array,
): Uint8Array | null {
  sym.mixHash(e.publicKey);
  const ee = dh(e.secretKey, re);
  if (ee === null) return null;
  sym.mixKey(ee);
  const se = dh(e.secretKey, rs);
  if (se === null) return null;
  sym.mixKey(se);
  const encPayload = sym.encryptAndHash(payload);
  const out = new Uint8Array(DH_BYTES + encPayload.length);
  out.set(e.publicKey, 0);
  out.set(encPayload, DH_BYTES);
  return out;
}

/** Raw IK message 2, initiator side. null when malformed or not authentic. */
export function readIkMessage2(
  sym: SymmetricState,
  s: X25519KeyPair,
  e: X25519KeyPair,
  msg: Uint8Array,
): { re: Uint8Array; payload: Uint8Array } | null {
  if (msg.length < MSG2_FIXED_BYTES) return null;
  const re = msg.slice(0, DH_BYTES);
  sym.mixHash(re);
  const ee = dh(e.secretKey, re);
  if (ee === null) return null;
  sym.mixKey(ee);
  const se = dh(s.secretKey, re);
  if (se === null) return null;
  sym.mixKey(se);
  const payload = sym.decryptAndHash(msg.subarray(DH_BYTES));
  if (payload === null) return null;
  return { re, payload };
}

function newPilotSymmetric(responderStatic: Uint8Array): SymmetricState {
  const sym = new SymmetricState(NOISE_PROTOCOL_NAME, PILOT_NOISE_PROLOGUE);
  sym.mixHash(responderStatic); // IK pre-message: <- s
  return sym;
}

// The Ed25519 → X25519 map costs about as much as a DH (point decompression plus a subgroup check), and the same
// peers handshake again every rekey interval: remember recent results. Keys are public, so caching them is safe.
const X25519_CACHE_ENTRIES = 4096;
const x25519OfEd = new Map<string, Uint8Array>();

function cachedEd25519ToX25519(publicKey: Uint8Array): Result<Uint8Array> {
  if (publicKey.length !== ED25519_PUBLIC_KEY_BYTES) return ed25519PublicToX25519(publicKey);
  const key = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
  const hit = x25519OfEd.get(key);
  if (hit !== undefined) return ok(hit);
  const r = ed25519PublicToX25519(publicKey);
  if (r.ok) {
    if (x25519OfEd.size >= X25519_CACHE_ENTRIES) x25519OfEd.delete(x25519OfEd.keys().next().value as string);
    x25519OfEd.set(key, r.value);
  }
  return r;
}

// mac1 keys of the few static keys we talk to (ours, as responder; peers', as initiator).
const mac1Keys = new Map<string, Uint8Array>();
function cachedMac1Key(staticX25519: Uint8Array): Uint8Array {
  const k = Buffer.from(staticX25519.buffer, staticX25519.byteOffset, staticX25519.byteLength).toString('base64');
  let v = mac1Keys.get(k);
  if (v === undefined) {
    v = mac1KeyFor(staticX25519);
    if (mac1Keys.size >= X25519_CACHE_ENTRIES) mac1Keys.delete(mac1Keys.keys().next().value as string);
    mac1Keys.set(k, v);
  }
  return v;
}

function noiseFrameKindIsCookieFor(reply: Uint8Array, localIndex: number): boolean {
  return noiseFrameKind(reply) === 'cookie' && readU32LE(reply, 4) === localIndex;
}

// ---------------------------------------------------------------------------------------------------------------
// Timestamps: wall-clock seconds (fractional allowed) carried as u64 seconds + u32 nanoseconds.

function encodeTimestamp(buf: Uint8Array, off: number, timestampS: number): void {
  const secs = Math.floor(timestampS);
  const nanos = Math.min(999_999_999, Math.round((timestampS - secs) * 1e9));
  writeU64LE(buf, off, secs);
  writeU32LE(buf, off + 8, nanos);
}

function decodeTimestamp(buf: Uint8Array, off: number): number | null {
  const secs = readU64LE(buf, off);
  const nanos = readU32LE(buf, off + 8);
  if (!Number.isSafeInteger(secs) || nanos > 999_999_999) return null;
  return secs + nanos / 1e9;
}

/**
 * Remembers the highest initiation timestamp per initiator Ed25519 key so a captured msg1 cannot be replayed
 * (WireGuard whitepaper §5.1). Keep one per node; memory is bounded by `maxEntries` (oldest entries forgotten).
 */
export interface InitiationReplayGuard {
  lastTimestampFor(ed25519PublicKey: Uint8Array): number | undefined;
  record(ed25519PublicKey: Uint8Array, timestampS: number): void;
}

export function createInitiationReplayGuard(maxEntries = 65_536): InitiationReplayGuard {
  const last = new Map<string, number>();
  const keyOf = (pk: Uint8Array) => Buffer.from(pk.buffer, pk.byteOffset, pk.byteLength).toString('base64');
  return {
    lastTimestampFor: (pk) => last.get(keyOf(pk)),
    record(pk, timestampS) {
      const k = keyOf(pk);
      last.delete(k); // re-insert: Map order doubles as least-recently-recorded order
      last.set(k, timestampS);
      if (last.size > maxEntries) last.delete(last.keys().next().value as string);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The Pilot handshake over PNI1/PNR1 frames.

export interface InitiatorOptions {
  local: Identity;
  localNodeId: number;
  /** Our session index (u32), chosen by the node; data frames to us carry it. */
  localIndex: number;
  /** Responder's Ed25519 public key, from the registry. */
  remoteStatic: Uint8Array;
  /** The responder's node id from the registry; when given, a response claiming another id is refused. */
  remoteNodeId?: number;
  /** Wall-clock seconds (may be fractional); must increase across our initiations to the same responder. */
  timestampS: number;
  earlyData?: Uint8Array;
  now: Micros;
  random?: RandomSource;
  limits?: Partial<SessionLimits>;
  /** A cookie from the responder's PNC1 reply (less than COOKIE_LIFETIME_US old): mac2 is computed with it. */
  cookie?: Uint8Array | null;
  /** Data ciphers we can run beyond ChaCha20-Poly1305 (offered in msg1); absent = ChaCha20-Poly1305 only. */
  dataCiphers?: DataCipherSupport;
}

export interface ResponderOptions {
  local: Identity;
  localNodeId: number;
  localIndex: number;
  now: Micros;
  /** Per-initiator replay protection for msg1. Without it a replayed msg1 is accepted (tests only). */
  replayGuard?: InitiationReplayGuard;
  /** Simpler form of the check above: the highest timestamp already accepted from this initiator key. */
  lastTimestampFor?: (ed25519PublicKey: Uint8Array) => number | undefined;
  earlyData?: Uint8Array;
  random?: RandomSource;
  limits?: Partial<SessionLimits>;
  /** Data ciphers we can run beyond ChaCha20-Poly1305: the one we prefer among the initiator's offer is chosen. */
  dataCiphers?: DataCipherSupport;
}

export interface Responded {
  session: NoiseSession;
  /** The initiator's Ed25519 key (verified to own the Noise static key). Check it against the registry. */
  remoteEd25519: Uint8Array;
  /** Claimed by the initiator; bind it to `remoteEd25519` via the registry before trusting it. */
  remoteNodeId: number;
  timestampS: number;
  earlyData: Uint8Array;
  /** PNR1 frame to send back. */
  message: Uint8Array;
}

/** The session's AEAD maker for `cipher` (none for ChaCha20-Poly1305, which the session runs itself). */
function cipherInit(cipher: DataCipher, support: DataCipherSupport | undefined): { cipher: DataCipher; makeAead?: (key: Uint8Array) => FrameAead | null } {
  if (cipher === DEFAULT_DATA_CIPHER) return { cipher };
  return { cipher, makeAead: (key) => support?.create(cipher, key) ?? null };
}

function hsFail<T>(message: string, reason: string, code: 'invalid_argument' | 'connection_failed' = 'invalid_argument'): Result<T> {
  return err(code, message, { detail: { reason } });
}

/** A sent initiation waiting for its response. One use: a successful handleResponse consumes it. */
export class NoiseInitiation {
  readonly localIndex: number;
  readonly createdAtUs: Micros;
  readonly remoteEd25519PublicKey: Uint8Array;
  /** Expected responder node id, if the caller gave one. */
  readonly remoteNodeId: number | undefined;
  /** mac1 of the PNI1 frame sent: a cookie reply to it is sealed with it as associated data. */
  private readonly sentMac1: Uint8Array;
  private readonly remoteX25519: Uint8Array;
  private sym: SymmetricState | null;
  private readonly s: X25519KeyPair;
  private readonly e: X25519KeyPair;
  private readonly limits: Partial<SessionLimits> | undefined;
  private readonly offer: DataCipher[] | null;
  private readonly dataCiphers: DataCipherSupport | undefined;

  /** @internal use createInitiator */
  constructor(args: {
    localIndex: number;
    createdAtUs: Micros;
    remoteEd25519PublicKey: Uint8Array;
    remoteNodeId: number | undefined;
    sym: SymmetricState;
    s: X25519KeyPair;
    e: X25519KeyPair;
    limits: Partial<SessionLimits> | undefined;
    sentMac1: Uint8Array;
    remoteX25519: Uint8Array;
    offer: DataCipher[] | null;
    dataCiphers: DataCipherSupport | undefined;
  }) {
    this.offer = args.offer;
    this.dataCiphers = args.dataCiphers;
    this.sentMac1 = args.sentMac1;
    this.remoteX25519 = args.remoteX25519;
    this.localIndex = args.localIndex;
    this.createdAtUs = args.createdAtUs;
    this.remoteEd25519PublicKey = args.remoteEd25519PublicKey;
    this.remoteNodeId = args.remoteNodeId;
    this.sym = args.sym;
    this.s = args.s;
    this.e = args.e;
    this.limits = args.limits;
  }

  get isDone(): boolean {
    return this.sym === null;
  }

  /**
   * Open a PNC1 cookie reply to this initiation: the responder is under load and wants mac2. The caller keeps
   * the cookie (COOKIE_LIFETIME_US) and sends a new initiation with it. Errors (detail.reason): malformed, auth.
   */
  handleCookieReply(reply: Uint8Array): Result<Uint8Array> {
    if (noiseFrameKindIsCookieFor(reply, this.localIndex) === false) return hsFail('not a cookie reply to this initiation', 'malformed');
    const cookie = openCookieReply(reply, cookieKeyFor(this.remoteX25519), this.sentMac1);
    return cookie === null ? hsFail('cookie reply failed authentication', 'auth') : ok(cookie);
  }

  /**
   * Consume a PNR1 frame. A forged or mismatched response leaves this initiation waiting for the real one.
   * Errors (detail.reason): malformed, wrong_index, auth, node_mismatch, expired, done.
   */
  handleResponse(message: Uint8Array, now: Micros): Result<{ session: NoiseSession; earlyData: Uint8Array }> {
    if (this.sym === null) return hsFail('initiation already completed', 'done');
    const limits = { ...DEFAULT_SESSION_LIMITS, ...this.limits };
    if (now - this.createdAtUs >= limits.rejectAfterTimeUs) {
      return hsFail('initiation too old: start a new handshake', 'expired', 'connection_failed');
    }
    const frame = decodeNoiseResponse(message);
    if (!frame.ok) return hsFail('not a Noise response frame', 'malformed');
    if (frame.value.receiverIndex !== this.localIndex) return hsFail('response for another initiation', 'wrong_index');
    const sym = this.sym.clone();
    const read = readIkMessage2(sym, this.s, this.e, frame.value.noise);
    if (read === null) return hsFail('Noise response failed authentication', 'auth');
    const payload = read.payload;
    if (payload.length < RESP_PAYLOAD_FIXED_BYTES || readU32LE(payload, 0) !== frame.value.senderIndex) {
      return hsFail('Noise response payload is malformed', 'malformed');
    }
    const responderNodeId = readU32LE(payload, 4);
    if (this.remoteNodeId !== undefined && responderNodeId !== this.remoteNodeId) {
      return hsFail(`responder claims node ${responderNodeId}, expected ${this.remoteNodeId}`, 'node_mismatch');
    }
    const records = decodeEarlyRecords(payload.subarray(RESP_PAYLOAD_FIXED_BYTES));
    const cipher = acceptChoice(this.offer, records.ciphers);
    if (!cipher.ok) return hsFail(`Noise response: ${cipher.error.message}`, 'cipher');
    const [sendKey, recvKey] = sym.split();
    const session = new NoiseSession({
      sendKey,
      recvKey,
      ...cipherInit(cipher.value, this.dataCiphers),
      localIndex: this.localIndex,
      remoteIndex: frame.value.senderIndex,
      isInitiator: true,
      createdAtUs: now,
      remoteEd25519PublicKey: this.remoteEd25519PublicKey,
      remoteNodeId: responderNodeId,
      handshakeHash: sym.h,
      limits: this.limits,
    });
    sym.wipe();
    this.sym.wipe();
    this.sym = null;
    sodium.sodium_memzero(this.e.secretKey);
    return ok({ session, earlyData: records.appData });
  }
}

/**
 * Start a handshake: builds the PNI1 frame (full UDP payload). Pure apart from drawing the ephemeral key.
 * Errors: invalid_argument for a bad responder key, early data over MAX_INITIATION_EARLY_DATA_BYTES, a bad
 * timestamp or index.
 */
export function createInitiator(opts: InitiatorOptions): Result<{ state: NoiseInitiation; message: Uint8Array }> {
  const earlyData = opts.earlyData ?? new Uint8Array(0);
  if (earlyData.length > MAX_INITIATION_EARLY_DATA_BYTES) {
    return err('invalid_argument', `early data exceeds ${MAX_INITIATION_EARLY_DATA_BYTES} bytes`);
  }
  if (!(opts.timestampS >= 0) || !Number.isFinite(opts.timestampS) || opts.timestampS >= 2 ** 52) {
    return err('invalid_argument', 'timestampS must be non-negative wall-clock seconds');
  }
  if (opts.localIndex >>> 0 !== opts.localIndex || opts.localNodeId >>> 0 !== opts.localNodeId) {
    return err('invalid_argument', 'localIndex and localNodeId must be u32');
  }
  if (opts.remoteNodeId !== undefined && opts.remoteNodeId >>> 0 !== opts.remoteNodeId) {
    return err('invalid_argument', 'remoteNodeId must be u32');
  }
  const rs = cachedEd25519ToX25519(opts.remoteStatic);
  if (!rs.ok) return rs;
  const s = identityX25519(opts.local);
  const e = generateEphemeral(opts.random);

  const offer = offerFor(opts.dataCiphers);
  const area = encodeEarlyRecords(offer, earlyData);
  const payload = new Uint8Array(INIT_PAYLOAD_FIXED_BYTES + area.length);
  payload.set(opts.local.publicKey, 0);
  writeU32LE(payload, 32, opts.localNodeId);
  writeU32LE(payload, 36, opts.localIndex);
  encodeTimestamp(payload, 40, opts.timestampS);
  payload.set(area, INIT_PAYLOAD_FIXED_BYTES);

  const sym = newPilotSymmetric(rs.value);
  const msg1 = writeIkMessage1(sym, s, e, rs.value, payload);
  if (msg1 === null) return err('invalid_argument', 'responder key is a low-order point');
  const message = encodeNoiseInitiation(opts.localIndex, msg1);
  const sentMac1 = writeInitiationMacs(message, cachedMac1Key(rs.value), opts.cookie ?? null);
  const state = new NoiseInitiation({
    localIndex: opts.localIndex,
    createdAtUs: opts.now,
    remoteEd25519PublicKey: opts.remoteStatic.slice(),
    remoteNodeId: opts.remoteNodeId,
    sym,
    s,
    e,
    limits: opts.limits,
    sentMac1,
    remoteX25519: rs.value,
    offer,
    dataCiphers: opts.dataCiphers,
  });
  return ok({ state, message });
}

/**
 * Answer a PNI1 frame: checks mac1 (before any DH), authenticates the initiator, refuses replayed initiations,
 * and returns the session plus the PNR1 frame to send. mac2 and load are the HandshakeGuard's business (the
 * driver asks it first). Never throws on hostile input. Errors (detail.reason): malformed, mac1, auth,
 * key_mismatch, replay, too_large.
 */
export function respond(message: Uint8Array, opts: ResponderOptions): Result<Responded> {
  const earlyData = opts.earlyData ?? new Uint8Array(0);
  if (earlyData.length > MAX_RESPONSE_EARLY_DATA_BYTES) {
    return hsFail(`early data exceeds ${MAX_RESPONSE_EARLY_DATA_BYTES} bytes`, 'too_large');
  }
  const frame = decodeNoiseInitiation(message);
  if (!frame.ok) return hsFail('not a Noise initiation frame', 'malformed');
  const s = identityX25519(opts.local);
  if (!verifyMac1(message, cachedMac1Key(s.publicKey))) return hsFail('initiation mac1 is not for our key', 'mac1');
  const sym = newPilotSymmetric(s.publicKey);
  const read = readIkMessage1(sym, s, frame.value.noise);
  if (read === null) return hsFail('Noise initiation failed authentication', 'auth');
  const p = read.payload;
  if (p.length < INIT_PAYLOAD_FIXED_BYTES) return hsFail('Noise initiation payload is malformed', 'malformed');

  const remoteEd25519 = p.slice(0, ED25519_PUBLIC_KEY_BYTES);
  const remoteNodeId = readU32LE(p, 32);
  const claimedIndex = readU32LE(p, 36);
  const timestampS = decodeTimestamp(p, 40);
  if (claimedIndex !== frame.value.senderIndex || timestampS === null) {
    return hsFail('Noise initiation payload is malformed', 'malformed');
  }
  // The Ed25519 key must be the one whose X25519 image Noise just authenticated. (The map drops the sign of x,
  // so only the holder of the static secret can claim the negated key — which is the same principal.)
  const mapped = cachedEd25519ToX25519(remoteEd25519);
  if (!mapped.ok || !sodium.sodium_memcmp(mapped.value, read.rs)) {
    return hsFail('initiator Ed25519 key does not match its Noise static key', 'key_mismatch');
  }
  const last = opts.replayGuard?.lastTimestampFor(remoteEd25519) ?? opts.lastTimestampFor?.(remoteEd25519);
  if (last !== undefined && !(timestampS > last)) {
    return hsFail('replayed or stale initiation', 'replay');
  }

  // The data cipher: our preference among the initiator's offer (ChaCha20-Poly1305 without one).
  const records = decodeEarlyRecords(p.subarray(INIT_PAYLOAD_FIXED_BYTES));
  const cipher = chooseCipher(records.ciphers, opts.dataCiphers);
  const e = generateEphemeral(opts.random);
  const area = encodeEarlyRecords(records.ciphers === null ? null : [cipher], earlyData);
  const payload2 = new Uint8Array(RESP_PAYLOAD_FIXED_BYTES + area.length);
  writeU32LE(payload2, 0, opts.localIndex);
  writeU32LE(payload2, 4, opts.localNodeId);
  payload2.set(area, RESP_PAYLOAD_FIXED_BYTES);
  const msg2 = writeIkMessage2(sym, e, read.re, read.rs, payload2);
  sodium.sodium_memzero(e.secretKey);
  if (msg2 === null) return hsFail('initiator ephemeral key is a low-order point', 'auth');
  opts.replayGuard?.record(remoteEd25519, timestampS);

  const [recvKey, sendKey] = sym.split();
  const session = new NoiseSession({
    sendKey,
    recvKey,
    ...cipherInit(cipher, opts.dataCiphers),
    localIndex: opts.localIndex,
    remoteIndex: frame.value.senderIndex,
    isInitiator: false,
    createdAtUs: opts.now,
    remoteEd25519PublicKey: remoteEd25519,
    remoteNodeId,
    handshakeHash: sym.h,
    limits: opts.limits,
  });
  sym.wipe();
  return ok({
    session,
    remoteEd25519,
    remoteNodeId,
    timestampS,
    earlyData: records.appData,
    message: encodeNoiseResponse(opts.localIndex, frame.value.senderIndex, msg2),
  });
}
