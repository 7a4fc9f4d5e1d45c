// A Noise transport session: one key per direction (from Split()), a 64-bit send counter that is never reused,
// and a replay window on receive. Frames are PND1 (src/wire/noise-frame.ts); the 16-byte header is the AEAD's
// associated data, so the receiver index and counter are authenticated too.
// Limits follow WireGuard (whitepaper §6.1): rekey after 2^20 messages or 120 s, refuse after 2^60 or 180 s.
import sodium from 'sodium-native';
import { err, ok, type Micros, type Result } from '../core/index.js';
import {
  MAX_NOISE_PLAINTEXT_BYTES,
  MAX_NOISE_FRAME_PLAINTEXT_BYTES,
  NOISE_DATA_HEADER_BYTES,
  NOISE_DATA_OVERHEAD_BYTES,
  NOISE_TAG_BYTES,
  noiseFrameKind,
  readU32LE,
  readU64LE,
  writeNoiseDataHeader,
} from '../wire/noise-frame.js';
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, openDetached, sealDetached, writeNonce } from './aead.js';
import { DEFAULT_DATA_CIPHER, type DataCipher, type FrameAead } from './data-cipher.js';
import { ReplayWindow } from './replay-window.js';
import type { TunnelFailureReason, TunnelSession } from './tunnel-session.js';

export interface SessionLimits {
  /** needsRekey() after this many packets sent. */
  rekeyAfterMessages: number;
  /** seal refuses at this many packets sent; open refuses counters at or above it. */
  rejectAfterMessages: number;
  rekeyAfterTimeUs: Micros;
  /** seal and open refuse once the session is this old. */
  rejectAfterTimeUs: Micros;
}

export const DEFAULT_SESSION_LIMITS: Readonly<SessionLimits> = Object.freeze({
  rekeyAfterMessages: 2 ** 20,
  rejectAfterMessages: 2 ** 60,
  rekeyAfterTimeUs: 120_000_000,
  rejectAfterTimeUs: 180_000_000,
});

/** Marks a failed packet in openBatch's `lengths`. */
export const BATCH_OPEN_FAILED = 0xffff_ffff;

export interface NoiseSessionInit {
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  /** Our index: peers put it in the data frames they send us. */
  localIndex: number;
  /** The peer's index: we put it in the data frames we send. */
  remoteIndex: number;
  isInitiator: boolean;
  createdAtUs: Micros;
  remoteEd25519PublicKey: Uint8Array;
  remoteNodeId: number;
  /** Noise handshake hash h: a unique channel binding for this session. */
  handshakeHash: Uint8Array;
  limits?: Partial<SessionLimits>;
  /** The data frames' AEAD agreed in the handshake (src/crypto/data-cipher.ts); default ChaCha20-Poly1305. */
  cipher?: DataCipher;
  /** Required for any cipher but ChaCha20-Poly1305 (which runs here through libsodium): makes the AEAD for one
   * direction's key. Called on first use only — with a datapath key table the frames are sealed and opened there
   * and these are never made (no memory per idle session). The session owns what it makes (destroy()). */
  makeAead?: (key: Uint8Array) => FrameAead | null;
}

function fail<T>(code: 'invalid_argument' | 'connection_failed', message: string, reason: TunnelFailureReason): Result<T> {
  return err(code, message, { detail: { reason } });
}

// Failures on the receive path are common (scanners, stale sessions): share one frozen Result per reason
// instead of building an error object for every dropped packet. Callers must not mutate errors from open().
const OPEN_FAILURES: Record<string, Result<never>> = {};
function openFailure(reason: TunnelFailureReason, message: string): Result<never> {
  let r = OPEN_FAILURES[reason];
  if (r === undefined) {
    r = fail<never>(reason === 'expired' ? 'connection_failed' : 'invalid_argument', message, reason);
    if (!r.ok) {
      Object.freeze(r.error.detail);
      Object.freeze(r.error);
    }
    Object.freeze(r);
    OPEN_FAILURES[reason] = r;
  }
  return r;
}

// Scratch shared by every session: each is filled right before the synchronous call that reads it, so one copy
// serves all (a daemon with 10,000 idle peers keeps 10,000 sessions: four small typed arrays each add up).
const NONCE = new Uint8Array(AEAD_NONCE_BYTES);
const ONE_META = new Uint32Array(4);
const ONE_STATUS = new Uint8Array(1);

export class NoiseSession implements TunnelSession {
  readonly suite = 'noise' as const;
  readonly overheadBytes = NOISE_DATA_OVERHEAD_BYTES;
  readonly maxPlaintextBytes = MAX_NOISE_PLAINTEXT_BYTES;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
  readonly createdAtUs: Micros;
  readonly remoteEd25519PublicKey: Uint8Array;
  readonly remoteNodeId: number;
  readonly handshakeHash: Uint8Array;
  readonly limits: Readonly<SessionLimits>;
  /** The data frames' AEAD. */
  readonly cipher: DataCipher;

  /** For a cipher other than ChaCha20-Poly1305 the frames are sealed and opened through these, made on first use
   * (undefined: not yet; null: the maker could not make one — such frames are refused, never sent in clear). */
  private readonly makeAead: ((key: Uint8Array) => FrameAead | null) | null;
  private txAead: FrameAead | null | undefined;
  private rxAead: FrameAead | null | undefined;
  private openScratch: Uint8Array | null = null;
  private readonly sendKey: Uint8Array;
  private readonly recvKey: Uint8Array;
  private readonly replay = new ReplayWindow();
  private sendCounter = 0;
  private received = 0;
  /**
   * Non-zero while the datapath's key table holds this session's keys under this id (src/datapath
   * TunnelKeyTable; the Noise suite sets it): frames are then sealed by the datapath in its send call
   * (prepareInPlace here) and opened on its reader thread (acceptOpened here).
   */
  datapathKeyId = 0;
  private confirmed: boolean;
  private destroyed = false;

  constructor(init: NoiseSessionInit) {
    if (init.sendKey.length !== AEAD_KEY_BYTES || init.recvKey.length !== AEAD_KEY_BYTES) {
      throw new RangeError('session keys must be 32 bytes');
    }
    this.sendKey = init.sendKey;
    this.recvKey = init.recvKey;
    this.localIndex = init.localIndex >>> 0;
    this.remoteIndex = init.remoteIndex >>> 0;
    this.isInitiator = init.isInitiator;
    this.createdAtUs = init.createdAtUs;
    this.remoteEd25519PublicKey = init.remoteEd25519PublicKey;
    this.remoteNodeId = init.remoteNodeId;
    this.handshakeHash = init.handshakeHash;
    this.limits = Object.freeze({ ...DEFAULT_SESSION_LIMITS, ...init.limits });
    this.cipher = init.cipher ?? DEFAULT_DATA_CIPHER;
    if (this.cipher !== DEFAULT_DATA_CIPHER && init.makeAead === undefined) throw new RangeError(`a ${this.cipher} session needs an AEAD maker`);
    this.makeAead = this.cipher === DEFAULT_DATA_CIPHER ? null : init.makeAead!;
    // The initiator has seen msg2, proof the responder holds the keys. The responder waits for the first data
    // packet (WireGuard's key confirmation) before the node should prefer this session for sending.
    this.confirmed = init.isInitiator;
  }

  /** Packets sealed so far (= next send counter). */
  get packetsSent(): number {
    return this.sendCounter;
  }

  /** Packets opened successfully. */
  get packetsReceived(): number {
    return this.received;
  }

  /** True once the peer is known to hold the keys: at creation for the initiator, on first open for the responder. */
  get isConfirmed(): boolean {
    return this.confirmed;
  }

  needsRekey(now: Micros): boolean {
    return this.sendCounter >= this.limits.rekeyAfterMessages || now - this.createdAtUs >= this.limits.rekeyAfterTimeUs;
  }

  isExpired(now: Micros): boolean {
    return this.destroyed || now - this.createdAtUs >= this.limits.rejectAfterTimeUs;
  }

  /** Sealing here (not in the datapath's key table) with a non-ChaCha cipher needs its AEAD: made now if not yet. */
  private aeadRefusal(): Result<never> | null {
    if (this.makeAead === null || this.sendAead() !== null) return null;
    return fail('connection_failed', `cannot key ${this.cipher}: rekey`, 'expired');
  }

  private sendRefusal(now: Micros, packets: number): Result<never> | null {
    if (this.isExpired(now)) return fail('connection_failed', 'session expired: rekey', 'expired');
    if (this.sendCounter + packets > this.limits.rejectAfterMessages) {
      return fail('connection_failed', 'session counter exhausted: rekey', 'exhausted');
    }
    return null;
  }

  /**
   * Seal `plaintext` (≤ 1420 bytes) into a PND1 frame. With `out` (≥ plaintext + 32 bytes) the frame is written
   * there and a view returned; `out` must not overlap `plaintext` unless plaintext sits exactly at out[16..].
   */
  seal(plaintext: Uint8Array, now: Micros, out?: Uint8Array): Result<Uint8Array> {
    const n = plaintext.length;
    if (n > MAX_NOISE_FRAME_PLAINTEXT_BYTES) {
      return fail('invalid_argument', `plaintext of ${n} bytes exceeds ${MAX_NOISE_FRAME_PLAINTEXT_BYTES}`, 'too_large');
    }
    const refusal = this.sendRefusal(now, 1) ?? this.aeadRefusal();
    if (refusal !== null) return refusal;
    const frameLength = n + NOISE_DATA_OVERHEAD_BYTES;
    let frame: Uint8Array;
    if (out === undefined) frame = new Uint8Array(frameLength);
    else if (out.length < frameLength) return fail('invalid_argument', 'output buffer too small', 'no_room');
    else frame = out;
    if (this.makeAead !== null) {
      frame.set(plaintext, NOISE_DATA_HEADER_BYTES);
      this.sealAt(frame, 0, n);
      return ok(frame.length === frameLength ? frame : frame.subarray(0, frameLength));
    }
    const counter = this.sendCounter++;
    writeNoiseDataHeader(frame, 0, this.remoteIndex, counter);
    writeNonce(NONCE, counter);
    sealDetached(
      this.sendKey,
      NONCE,
      frame.subarray(0, NOISE_DATA_HEADER_BYTES),
      plaintext,
      frame.subarray(NOISE_DATA_HEADER_BYTES, NOISE_DATA_HEADER_BYTES + n),
      frame.subarray(NOISE_DATA_HEADER_BYTES + n, frameLength),
    );
    return ok(frame.length === frameLength ? frame : frame.subarray(0, frameLength));
  }

  /**
   * Zero-copy seal: the plaintext already sits at buf[offset + 16, offset + 16 + plaintextLength); the header
   * and tag are written around it; the frame is plaintextLength + NOISE_DATA_OVERHEAD_BYTES long. Per packet:
   * the answer is ok()'s one shared object, so a sealed packet allocates nothing.
   */
  sealInPlace(buf: Uint8Array, offset: number, plaintextLength: number, now: Micros): Result<void> {
    const refusal = this.inPlaceRefusal(buf, offset, plaintextLength, now) ?? this.aeadRefusal();
    if (refusal !== null) return refusal;
    this.sealAt(buf, offset, plaintextLength);
    return ok();
  }

  /** Why a frame of `plaintextLength` at buf[offset…] cannot be sent now (too large, no room, limits); null: it can. */
  private inPlaceRefusal(buf: Uint8Array, offset: number, plaintextLength: number, now: Micros): Result<never> | null {
    if (plaintextLength > MAX_NOISE_FRAME_PLAINTEXT_BYTES) {
      return fail('invalid_argument', `plaintext of ${plaintextLength} bytes exceeds ${MAX_NOISE_FRAME_PLAINTEXT_BYTES}`, 'too_large');
    }
    if (offset < 0 || offset + plaintextLength + NOISE_DATA_OVERHEAD_BYTES > buf.length) {
      return fail('invalid_argument', 'frame does not fit the buffer', 'no_room');
    }
    return this.sendRefusal(now, 1);
  }

  /**
   * Like sealInPlace, but leaves the encryption to the datapath's key table (datapathKeyId): checks the
   * limits, takes the next counter and writes the header (the AEAD's associated data and nonce); the tag
   * space stays unwritten. The frame is plaintextLength + NOISE_DATA_OVERHEAD_BYTES long; nothing is allocated.
   */
  prepareInPlace(buf: Uint8Array, offset: number, plaintextLength: number, now: Micros): Result<void> {
    const refusal = this.inPlaceRefusal(buf, offset, plaintextLength, now);
    if (refusal !== null) return refusal;
    writeNoiseDataHeader(buf, offset, this.remoteIndex, this.sendCounter++);
    return ok();
  }

  /** This session's AEAD for sending (a non-ChaCha cipher), made on first use; null when it cannot be made. */
  private sendAead(): FrameAead | null {
    if (this.txAead === undefined) this.txAead = this.makeAead!(this.sendKey);
    return this.txAead;
  }

  private recvAead(): FrameAead | null {
    if (this.rxAead === undefined) this.rxAead = this.makeAead!(this.recvKey);
    return this.rxAead;
  }

  /** The two keys, for the datapath's key table only (they cross to it once per session). */
  exportKeys(): { sendKey: Uint8Array; recvKey: Uint8Array } {
    return { sendKey: this.sendKey, recvKey: this.recvKey };
  }

  private sealAt(buf: Uint8Array, off: number, n: number): void {
    const counter = this.sendCounter++;
    writeNoiseDataHeader(buf, off, this.remoteIndex, counter);
    if (this.makeAead !== null) {
      ONE_META[0] = off;
      ONE_META[1] = n + NOISE_DATA_OVERHEAD_BYTES;
      // aeadRefusal made the AEAD and the callers checked the bounds: a refusal here is a bug, and a frame left
      // unsealed must not leave.
      if (this.txAead!.seal(buf, ONE_META, 1) !== 1) throw new RangeError('data frame AEAD refused a checked frame');
      return;
    }
    writeNonce(NONCE, counter);
    const body = buf.subarray(off + NOISE_DATA_HEADER_BYTES, off + NOISE_DATA_HEADER_BYTES + n);
    sealDetached(
      this.sendKey,
      NONCE,
      buf.subarray(off, off + NOISE_DATA_HEADER_BYTES),
      body,
      body,
      buf.subarray(off + NOISE_DATA_HEADER_BYTES + n, off + NOISE_DATA_OVERHEAD_BYTES + n),
    );
  }

  /**
   * Seal `count` packets laid out in one buffer: packet i's plaintext is at buf[offsets[i] + 16 ..] with
   * lengths[i] bytes; on success each becomes a frame starting at offsets[i] and lengths[i] is set to its frame
   * length. All-or-nothing: bounds and limits are checked for the whole batch before any packet is sealed.
   */
  sealBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, now: Micros): Result<number> {
    if (count > offsets.length || count > lengths.length) {
      return fail('invalid_argument', 'count exceeds offsets/lengths', 'no_room');
    }
    for (let i = 0; i < count; i++) {
      const n = lengths[i]!;
      if (n > MAX_NOISE_FRAME_PLAINTEXT_BYTES) {
        return fail('invalid_argument', `packet ${i}: plaintext of ${n} bytes exceeds ${MAX_NOISE_FRAME_PLAINTEXT_BYTES}`, 'too_large');
      }
      if (offsets[i]! + n + NOISE_DATA_OVERHEAD_BYTES > buf.length) {
        return fail('invalid_argument', `packet ${i}: frame does not fit the buffer`, 'no_room');
      }
    }
    const refusal = this.sendRefusal(now, count) ?? this.aeadRefusal();
    if (refusal !== null) return refusal;
    for (let i = 0; i < count; i++) {
      const n = lengths[i]!;
      this.sealAt(buf, offsets[i]!, n);
      lengths[i] = n + NOISE_DATA_OVERHEAD_BYTES;
    }
    return ok(count);
  }

  /**
   * Authenticate and decrypt a PND1 frame. The plaintext is written to `out` (≥ frame - 32 bytes) or, without
   * `out`, in place over the frame's ciphertext; the returned view points there. Framing, index, replay and expiry
   * are checked before decryption and leave buffers unchanged; an authentication failure zeroes the plaintext
   * target (libsodium wipes it), i.e. the ciphertext when opening in place — such a frame is garbage anyway.
   * Errors carry detail.reason: malformed | wrong_index | replay | auth | expired.
   */
  open(frame: Uint8Array, now: Micros, out?: Uint8Array): Result<Uint8Array> {
    if (noiseFrameKind(frame) !== 'data') return openFailure('malformed', 'not a Noise data frame');
    const n = frame.length - NOISE_DATA_OVERHEAD_BYTES;
    let target: Uint8Array;
    if (out === undefined) target = frame.subarray(NOISE_DATA_HEADER_BYTES, NOISE_DATA_HEADER_BYTES + n);
    else if (out.length < n) return fail('invalid_argument', 'output buffer too small', 'no_room');
    else target = out.length === n ? out : out.subarray(0, n);
    const reason = this.openInto(frame, 0, n, target, now);
    return reason === null ? ok(target) : openFailure(reason, OPEN_MESSAGES[reason]);
  }

  /**
   * A frame the datapath already authenticated and decrypted in place with this session's receive key (its
   * reader thread, src/datapath native): everything open() checks besides the AEAD — framing, expiry, index,
   * counter limit, replay window — and the window update. Returns a view of the plaintext inside `frame`.
   * Errors carry detail.reason: malformed | wrong_index | replay | expired.
   */
  acceptOpened(frame: Uint8Array, now: Micros): Result<Uint8Array> {
    const reason = this.acceptOpenedAt(frame, 0, frame.length, now);
    if (reason !== null) return openFailure(reason, OPEN_MESSAGES[reason]);
    return ok(frame.subarray(NOISE_DATA_HEADER_BYTES, frame.length - NOISE_TAG_BYTES));
  }

  /**
   * acceptOpened for the frame at buf[off, off + len) without views or Result objects (the per-packet receive
   * path): null when taken — its plaintext is buf[off + 16, off + len - 16) — else the failure reason.
   */
  acceptOpenedAt(buf: Uint8Array, off: number, len: number, now: Micros): TunnelFailureReason | null {
    if (len < NOISE_DATA_OVERHEAD_BYTES || off + len > buf.length || noiseFrameKindAt(buf, off) !== 'data') return 'malformed';
    const reason = this.admit(buf, off, now);
    if (reason !== null) return reason;
    this.accept(readU64LE(buf, off + 8));
    return null;
  }

  /** The checks before (or, for acceptOpened, instead of) decryption; null when the frame may be taken. */
  private admit(buf: Uint8Array, off: number, now: Micros): TunnelFailureReason | null {
    if (this.isExpired(now)) return 'expired';
    if (readU32LE(buf, off + 4) !== this.localIndex) return 'wrong_index';
    const counter = readU64LE(buf, off + 8);
    if (counter >= this.limits.rejectAfterMessages || !this.replay.check(counter)) return 'replay';
    return null;
  }

  /** An authentic frame with this counter was taken. */
  private accept(counter: number): void {
    this.replay.update(counter);
    this.received++;
    this.confirmed = true;
  }

  /** Returns null on success; the failure reason otherwise. `n` = ciphertext length (frame - 32). */
  private openInto(buf: Uint8Array, off: number, n: number, target: Uint8Array, now: Micros): TunnelFailureReason | null {
    const refused = this.admit(buf, off, now);
    if (refused !== null) return refused;
    const counter = readU64LE(buf, off + 8);
    if (this.makeAead !== null) {
      const aead = this.recvAead();
      if (aead === null || !this.openWith(aead, buf, off, n, target)) return 'auth';
      this.accept(counter);
      return null;
    }
    writeNonce(NONCE, counter);
    const body = off + NOISE_DATA_HEADER_BYTES;
    const authentic = openDetached(
      this.recvKey,
      NONCE,
      buf.subarray(off, body),
      buf.subarray(body, body + n),
      buf.subarray(body + n, body + n + NOISE_TAG_BYTES),
      target,
    );
    if (!authentic) return 'auth';
    this.accept(counter);
    return null;
  }

  /** Open the frame at buf[off, off + n + 32) with `aead` into `target` (in place, or through a scratch copy so
   * the frame is left as it was). A forgery zeroes `target`, as libsodium does on the ChaCha20-Poly1305 path. */
  private openWith(aead: FrameAead, buf: Uint8Array, off: number, n: number, target: Uint8Array): boolean {
    const frameLength = n + NOISE_DATA_OVERHEAD_BYTES;
    const isInPlace = target.buffer === buf.buffer && target.byteOffset === buf.byteOffset + off + NOISE_DATA_HEADER_BYTES;
    let work = buf;
    let at = off;
    if (!isInPlace) {
      if (this.openScratch === null || this.openScratch.length < frameLength) this.openScratch = new Uint8Array(Math.max(2048, frameLength));
      work = this.openScratch;
      work.set(buf.subarray(off, off + frameLength), 0);
      at = 0;
    }
    ONE_META[0] = at;
    ONE_META[1] = frameLength;
    const isAuthentic = aead.open(work, ONE_META, 1, ONE_STATUS) === 1 && ONE_STATUS[0] === 1;
    if (!isAuthentic) {
      target.fill(0);
      return false;
    }
    if (!isInPlace) target.set(work.subarray(NOISE_DATA_HEADER_BYTES, NOISE_DATA_HEADER_BYTES + n));
    return true;
  }

  /**
   * Open `count` frames laid out in one buffer (frame i at offsets[i], lengths[i] bytes), each in place: on
   * success its plaintext is at offsets[i] + 16 and lengths[i] becomes the plaintext length; a failed frame gets
   * lengths[i] = BATCH_OPEN_FAILED. Returns how many opened. Never throws on hostile bytes.
   */
  openBatch(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, now: Micros): number {
    const total = Math.min(count, offsets.length, lengths.length);
    let opened = 0;
    for (let i = 0; i < total; i++) {
      const off = offsets[i]!;
      const len = lengths[i]!;
      if (len < NOISE_DATA_OVERHEAD_BYTES || off + len > buf.length || noiseFrameKindAt(buf, off) !== 'data') {
        lengths[i] = BATCH_OPEN_FAILED;
        continue;
      }
      const n = len - NOISE_DATA_OVERHEAD_BYTES;
      const body = off + NOISE_DATA_HEADER_BYTES;
      if (this.openInto(buf, off, n, buf.subarray(body, body + n), now) === null) {
        lengths[i] = n;
        opened++;
      } else {
        lengths[i] = BATCH_OPEN_FAILED;
      }
    }
    return opened;
  }

  /** Wipe the keys; the session then refuses everything. */
  destroy(): void {
    if (!this.destroyed) {
      this.txAead?.destroy();
      this.rxAead?.destroy();
    }
    this.destroyed = true;
    sodium.sodium_memzero(this.sendKey);
    sodium.sodium_memzero(this.recvKey);
    if (this.openScratch !== null) sodium.sodium_memzero(this.openScratch);
  }
}

const OPEN_MESSAGES: Record<TunnelFailureReason, string> = {
  malformed: 'not a Noise data frame',
  wrong_index: 'data frame for another session',
  replay: 'replayed or too old counter',
  auth: 'data frame failed authentication',
  expired: 'session expired: rekey',
  exhausted: 'session counter exhausted: rekey',
  too_large: 'plaintext too large',
  no_room: 'output buffer too small',
};

// Magic check at an offset without making a view.
function noiseFrameKindAt(buf: Uint8Array, off: number): 'data' | null {
  return buf[off] === 0x50 && buf[off + 1] === 0x4e && buf[off + 2] === 0x44 && buf[off + 3] === 0x31 ? 'data' : null;
}
