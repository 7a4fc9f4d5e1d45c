// The resumable file transfer as two sans-IO state machines (frames: file-transfer-codec.ts). They read no
// clock and touch no disk or socket: stream bytes and `now` (µs) go in, actions come out, and the driver
// (file-transfer.ts) performs each action and reports its outcome back (handleOpened, handleWritten, …).
// Actions are returned in the order they must be performed.
//
// Receiver: OFFER → `open` (find the partial for this sender + content, or start one) → ACCEPT(offset) →
// DATA… each `write`, a `checkpoint` (fsync + persisted offset) every ackIntervalBytes, then ACK(offset) → END →
// `digest` → the machine compares the SHA-256 of the whole file with the offer's: equal → `publish` → DONE;
// different → `discard` → REFUSE hash_mismatch (nothing appears in received/). A stream that ends or goes
// idle before END → `release` (the partial stays for a retry).
// Sender: OFFER → ACCEPT(offset) → DATA from offset with at most windowBytes unacknowledged → END → DONE.
// An original receiver answers the OFFER with a TEXT "ACK UNKNOWN(…)" frame → `legacy` (single FILE frame).
import { err, type Result } from '../core/result.js';
import { pilotError, type PilotError } from '../core/errors.js';
import { parseAck, FRAME_TYPE_TEXT } from './data-exchange-codec.js';
import {
  encodeAccept,
  encodeAck,
  encodeDataHeader,
  encodeDone,
  encodeEnd,
  encodeOffer,
  encodeRefuse,
  XFER_CHUNK_BYTES,
  XFER_VERSION,
  XferFrameReader,
  type Done,
  type Offer,
  type Refusal,
  type XferFrame,
} from './file-transfer-codec.js';

export type Micros = number;

export const DEFAULT_ACK_INTERVAL_BYTES = 4 * 1024 * 1024;
/** …or after this long with new bytes written, so a slow link still sees an ACK about every second. */
export const DEFAULT_ACK_INTERVAL_US = 1_000_000;
export const DEFAULT_WINDOW_BYTES = 32 * 1024 * 1024;
/** Receiver: no input for this long ends the connection (the partial is kept). */
export const DEFAULT_IDLE_TIMEOUT_US = 60_000_000;
/**
 * Sender: no frame from the receiver for this long while data is unacknowledged ends the attempt, and the
 * sender redials. A receiver that was killed sends no reset, so this bounds how long a cut goes unnoticed; an
 * ACK comes every 4 MiB, and a resume reads the partial back first (≈1 s per 200 MB), so 20 s is generous.
 */
export const DEFAULT_SENDER_IDLE_TIMEOUT_US = 20_000_000;
/** The smallest DATA chunk under a rate cap (the smallest cap is MIN_RATE_LIMIT_BYTES_PER_SEC in node/api.ts). */
export const PACED_MIN_CHUNK_BYTES = 4096;

// ------------------------------------------------------------------------------------------- receiver

export type ReceiverAction =
  | { kind: 'send'; bytes: Uint8Array }
  /** Find or create the partial; answer with handleOpened(offset) or handleOpenFailed(refusal). */
  | { kind: 'open'; offer: Offer }
  /** Append `data` at `offset` (= the partial's end); answer with handleWritten(offset + data.length). */
  | { kind: 'write'; offset: number; data: Uint8Array }
  /** Make everything before `offset` durable and persist the offset; answer with handleCheckpointed(offset). */
  | { kind: 'checkpoint'; offset: number }
  /** Finish the SHA-256 of the whole partial; answer with handleDigest(hex). */
  | { kind: 'digest' }
  /** Move the partial into received/; answer with handlePublished(done) or handleFailed(refusal). */
  | { kind: 'publish' }
  /** Delete the partial (its content is wrong). */
  | { kind: 'discard' }
  /** Keep the partial for a later retry and let go of it. */
  | { kind: 'release' }
  /** End the connection (after any send before it). */
  | { kind: 'close'; error: PilotError | null };

export type ReceiverState = 'await_offer' | 'opening' | 'receiving' | 'checkpointing' | 'digesting' | 'publishing' | 'closed';

export interface ReceiverOptions {
  ackIntervalBytes?: number;
  ackIntervalUs?: Micros;
  idleTimeoutUs?: Micros;
  /** Offers above this size are refused (0 = no limit). */
  maxFileBytes?: number;
}

export class ReceiverMachine {
  private readonly reader = new XferFrameReader();
  private stateValue: ReceiverState = 'await_offer';
  private offerValue: Offer | null = null;
  /** End of the bytes handed to `write`. */
  private expected = 0;
  /** End of the bytes the driver reported written. */
  private written = 0;
  private lastAcked = 0;
  private isEndSeen = false;
  private isCheckpointPending = false;
  private lastInputUs: Micros;
  private lastCheckpointUs: Micros;
  private readonly ackIntervalBytes: number;
  private readonly ackIntervalUs: Micros;
  private readonly idleTimeoutUs: Micros;
  private readonly maxFileBytes: number;

  constructor(now: Micros, opts: ReceiverOptions = {}) {
    this.lastInputUs = now;
    this.lastCheckpointUs = now;
    this.ackIntervalBytes = opts.ackIntervalBytes ?? DEFAULT_ACK_INTERVAL_BYTES;
    this.ackIntervalUs = opts.ackIntervalUs ?? DEFAULT_ACK_INTERVAL_US;
    this.idleTimeoutUs = opts.idleTimeoutUs ?? DEFAULT_IDLE_TIMEOUT_US;
    this.maxFileBytes = opts.maxFileBytes ?? 0;
  }

  get state(): ReceiverState {
    return this.stateValue;
  }
  get offer(): Offer | null {
    return this.offerValue;
  }
  /** Bytes of the file on the receiver's disk (written, not necessarily checkpointed). */
  get bytesWritten(): number {
    return this.written;
  }

  /** Stream bytes from the sender. */
  handleBytes(bytes: Uint8Array, now: Micros): ReceiverAction[] {
    if (this.stateValue === 'closed') return [];
    this.lastInputUs = now;
    this.reader.push(bytes);
    return this.pump();
  }

  /** The sender closed its side (or the stream broke). */
  handleEof(): ReceiverAction[] {
    if (this.stateValue === 'closed') return [];
    const hadPartial = this.stateValue !== 'await_offer' && this.stateValue !== 'opening';
    this.stateValue = 'closed';
    return [...(hadPartial ? [{ kind: 'release' } as const] : []), { kind: 'close', error: null }];
  }

  handleTimeout(now: Micros): ReceiverAction[] {
    if (this.stateValue === 'closed' || now - this.lastInputUs < this.idleTimeoutUs) return [];
    if (this.stateValue !== 'await_offer' && this.stateValue !== 'receiving') return []; // waiting on our own disk
    const hadPartial = this.stateValue === 'receiving';
    this.stateValue = 'closed';
    return [
      ...(hadPartial ? [{ kind: 'release' } as const] : []),
      { kind: 'close', error: pilotError('timeout', `sender idle for ${Math.round(this.idleTimeoutUs / 1e6)} s`) },
    ];
  }

  pollTimeout(): Micros | null {
    return this.stateValue === 'await_offer' || this.stateValue === 'receiving' ? this.lastInputUs + this.idleTimeoutUs : null;
  }

  handleOpened(offset: number): ReceiverAction[] {
    if (this.stateValue !== 'opening' || this.offerValue === null) return [];
    const o = Math.max(0, Math.min(offset, this.offerValue.size));
    this.expected = o;
    this.written = o;
    this.lastAcked = o;
    this.stateValue = 'receiving';
    return [{ kind: 'send', bytes: encodeAccept(o) }, ...this.pump()];
  }

  handleOpenFailed(r: Refusal): ReceiverAction[] {
    if (this.stateValue !== 'opening') return [];
    return this.refuse(r, false);
  }

  handleWritten(end: number): ReceiverAction[] {
    if (this.stateValue === 'closed') return [];
    this.written = Math.max(this.written, end);
    return this.maybeCheckpoint();
  }

  handleCheckpointed(offset: number): ReceiverAction[] {
    if (this.stateValue === 'closed') return [];
    this.isCheckpointPending = false;
    const out: ReceiverAction[] = [];
    if (offset > this.lastAcked) {
      this.lastAcked = offset;
      out.push({ kind: 'send', bytes: encodeAck(offset) });
    }
    if (this.stateValue === 'checkpointing') this.stateValue = 'receiving';
    out.push(...this.maybeCheckpoint(), ...this.pump());
    return out;
  }

  handleDigest(sha256Hex: string): ReceiverAction[] {
    if (this.stateValue !== 'digesting' || this.offerValue === null) return [];
    if (sha256Hex !== this.offerValue.sha256) {
      this.stateValue = 'closed';
      return [
        { kind: 'discard' },
        {
          kind: 'send',
          bytes: encodeRefuse({
            code: 'hash_mismatch',
            message: `SHA-256 of the received file is ${sha256Hex}, the sender offered ${this.offerValue.sha256}; the file was not kept`,
          }),
        },
        { kind: 'close', error: pilotError('hash_mismatch', 'received file does not match its SHA-256') },
      ];
    }
    this.stateValue = 'publishing';
    return [{ kind: 'publish' }];
  }

  handlePublished(done: Done): ReceiverAction[] {
    if (this.stateValue !== 'publishing') return [];
    this.stateValue = 'closed';
    return [{ kind: 'send', bytes: encodeDone(done) }, { kind: 'close', error: null }];
  }

  /** A disk or publish step failed: refuse with `r`, keep the partial (a retry may succeed). */
  handleFailed(r: Refusal): ReceiverAction[] {
    if (this.stateValue === 'closed') return [];
    if (this.stateValue === 'opening') return this.refuse(r, false);
    return this.refuse(r, true);
  }

  private refuse(r: Refusal, keepPartial: boolean): ReceiverAction[] {
    const hadPartial = keepPartial || (this.stateValue !== 'await_offer' && this.stateValue !== 'opening');
    this.stateValue = 'closed';
    return [
      ...(hadPartial ? [{ kind: 'release' } as const] : []),
      { kind: 'send', bytes: encodeRefuse(r) },
      { kind: 'close', error: pilotError(r.code, r.message) },
    ];
  }

  private violation(message: string): ReceiverAction[] {
    return this.refuse({ code: 'invalid_argument', message: `transfer protocol: ${message}` }, false);
  }

  private maybeCheckpoint(): ReceiverAction[] {
    if (this.offerValue === null || this.isCheckpointPending) return [];
    const size = this.offerValue.size;
    const isWhole = this.written === size && this.expected === size;
    const isDue = this.written - this.lastAcked >= this.ackIntervalBytes || (this.written > this.lastAcked && this.lastInputUs - this.lastCheckpointUs >= this.ackIntervalUs);
    if (isDue || (isWhole && this.written > this.lastAcked)) {
      this.isCheckpointPending = true;
      this.lastCheckpointUs = this.lastInputUs;
      if (this.isEndSeen) this.stateValue = 'checkpointing';
      return [{ kind: 'checkpoint', offset: this.written }];
    }
    if (this.isEndSeen && isWhole && this.stateValue === 'receiving') {
      this.stateValue = 'digesting';
      return [{ kind: 'digest' }];
    }
    return [];
  }

  private pump(): ReceiverAction[] {
    const out: ReceiverAction[] = [];
    while (this.stateValue === 'await_offer' || this.stateValue === 'receiving') {
      if (this.isEndSeen) break;
      const f = this.reader.next();
      if (!f.ok) return [...out, ...this.violation(f.error.message)];
      if (f.value === null) break;
      out.push(...this.onFrame(f.value));
    }
    return out;
  }

  private onFrame(f: XferFrame): ReceiverAction[] {
    if (this.stateValue === 'await_offer') {
      if (f.type !== 'offer') return this.violation(`expected OFFER, got ${f.type}`);
      const o = f.offer;
      if (o.version !== XFER_VERSION) {
        return this.refuse({ code: 'invalid_argument', message: `transfer protocol version ${o.version} not supported (this node speaks ${XFER_VERSION})` }, false);
      }
      if (this.maxFileBytes > 0 && o.size > this.maxFileBytes) {
        return this.refuse(
          { code: 'quota_exceeded', message: `file too large: ${o.size} bytes (this node takes at most ${this.maxFileBytes})`, hint: 'send a smaller file, or ask its operator to raise the limit' },
          false,
        );
      }
      this.offerValue = o;
      this.stateValue = 'opening';
      return [{ kind: 'open', offer: o }];
    }
    // receiving
    const size = this.offerValue!.size;
    switch (f.type) {
      case 'data': {
        if (f.offset !== this.expected) return this.violation(`DATA at ${f.offset}, expected ${this.expected}`);
        if (f.offset + f.data.length > size) return this.violation(`DATA runs past the offered ${size} bytes`);
        if (f.data.length === 0) return [];
        this.expected += f.data.length;
        return [{ kind: 'write', offset: f.offset, data: f.data }];
      }
      case 'end': {
        if (this.expected !== size) return this.violation(`END after ${this.expected} of ${size} bytes`);
        this.isEndSeen = true;
        return this.maybeCheckpoint();
      }
      default:
        return this.violation(`unexpected ${f.type} frame`);
    }
  }
}

// --------------------------------------------------------------------------------------------- sender

export type SenderAction =
  | { kind: 'send'; bytes: Uint8Array }
  /** The receiver is an original node: send the file as one FILE frame instead (≤ 16 MiB). */
  | { kind: 'legacy' }
  | { kind: 'done'; done: Done; resumedFrom: number }
  /** `retryable`: a new connection may resume (the receiver keeps the partial). */
  | { kind: 'fail'; error: PilotError; retryable: boolean };

/** What the driver should send next: DATA bytes read from the file at [offset, offset+length), or END. */
export type SenderNext = { kind: 'data'; offset: number; length: number; header: Uint8Array } | { kind: 'end'; bytes: Uint8Array };

export type SenderState = 'offered' | 'sending' | 'ending' | 'legacy' | 'done' | 'failed';

export interface SenderOptions {
  chunkBytes?: number;
  windowBytes?: number;
  idleTimeoutUs?: Micros;
  /** Cap on the sending rate in bytes per second (send-file --limit-rate); absent = as fast as the window allows. */
  rateBytesPerSec?: number;
}

export class SenderMachine {
  private readonly reader = new XferFrameReader();
  private stateValue: SenderState = 'offered';
  private sent = 0;
  private acked = 0;
  private resumedFromValue = 0;
  private lastInputUs: Micros;
  private readonly chunkBytes: number;
  private readonly windowBytes: number;
  private readonly idleTimeoutUs: Micros;
  private readonly rateBytesPerSec: number | null;
  /** Pacing: when DATA started (ACCEPT) and from which offset; null before. */
  private paceStartUs: Micros | null = null;
  private paceStartOffset = 0;

  private constructor(
    private readonly file: { name: string; size: number; sha256: string },
    readonly offerBytes: Uint8Array,
    now: Micros,
    opts: SenderOptions,
  ) {
    this.lastInputUs = now;
    this.windowBytes = opts.windowBytes ?? DEFAULT_WINDOW_BYTES;
    this.idleTimeoutUs = opts.idleTimeoutUs ?? DEFAULT_SENDER_IDLE_TIMEOUT_US;
    this.rateBytesPerSec = opts.rateBytesPerSec !== undefined && opts.rateBytesPerSec > 0 ? opts.rateBytesPerSec : null;
    // Under a low cap, smaller chunks (a quarter second's worth, at least 4 KiB): data keeps arriving, so the
    // receiver keeps acknowledging (at least once a second while data flows) and neither side's idle timer fires.
    const chunk = opts.chunkBytes ?? XFER_CHUNK_BYTES;
    this.chunkBytes = this.rateBytesPerSec === null ? chunk : Math.min(chunk, Math.max(PACED_MIN_CHUNK_BYTES, Math.floor(this.rateBytesPerSec / 4)));
  }

  /** A sender for one connection; send `offerBytes` first. Errors: invalid_argument (name, size, hash). */
  static create(file: { name: string; size: number; sha256: string }, now: Micros, opts: SenderOptions = {}): Result<SenderMachine> {
    const offer = encodeOffer(file);
    if (!offer.ok) return offer;
    return { ok: true, value: new SenderMachine(file, offer.value, now, opts) };
  }

  get state(): SenderState {
    return this.stateValue;
  }
  get bytesSent(): number {
    return this.sent;
  }
  get bytesAcked(): number {
    return this.acked;
  }
  get resumedFrom(): number {
    return this.resumedFromValue;
  }

  handleBytes(bytes: Uint8Array, now: Micros): SenderAction[] {
    if (this.isFinished) return [];
    this.lastInputUs = now;
    this.reader.push(bytes);
    const out: SenderAction[] = [];
    while (!this.isFinished) {
      const f = this.reader.next();
      if (!f.ok) return [...out, this.fail(pilotError('connection_failed', `receiver broke the transfer protocol: ${f.error.message}`), true)];
      if (f.value === null) break;
      out.push(...this.onFrame(f.value));
    }
    return out;
  }

  handleEof(): SenderAction[] {
    if (this.isFinished) return [];
    return [this.fail(pilotError('connection_failed', `connection ended after ${this.acked} of ${this.file.size} bytes were acknowledged`), true)];
  }

  handleTimeout(now: Micros): SenderAction[] {
    if (this.isFinished || now - this.lastInputUs < this.idleTimeoutUs) return [];
    return [this.fail(pilotError('timeout', `receiver silent for ${Math.round(this.idleTimeoutUs / 1e6)} s`), true)];
  }

  /** The deadline for handleTimeout: only while we wait on the receiver. */
  pollTimeout(): Micros | null {
    if (this.isFinished) return null;
    return this.lastInputUs + this.idleTimeoutUs;
  }

  /** The next thing to send, or null (wait for the receiver). Calling it commits to sending what it returns. */
  pollNext(now: Micros): SenderNext | null {
    if (this.stateValue !== 'sending') return null;
    if (this.sent === this.file.size) {
      this.stateValue = 'ending';
      this.lastInputUs = Math.max(this.lastInputUs, now);
      return { kind: 'end', bytes: encodeEnd() };
    }
    if (this.sent - this.acked >= this.windowBytes) return null;
    const length = Math.min(this.chunkBytes, this.file.size - this.sent);
    const paced = this.pacedUntilFor(length);
    if (paced !== null && paced > now) return null;
    const offset = this.sent;
    // While the window was full the silence is the receiver's; once it has room again, its clock restarts.
    if (this.sent - this.acked === 0) this.lastInputUs = Math.max(this.lastInputUs, now);
    this.sent += length;
    return { kind: 'data', offset, length, header: encodeDataHeader(offset, length) };
  }

  /**
   * With a rate cap: the time the next DATA chunk may go (pollNext returns null before it), else null. The
   * driver waits until min(this, pollTimeout()) when pollNext has nothing.
   */
  pacedUntil(): Micros | null {
    if (this.stateValue !== 'sending' || this.sent === this.file.size) return null;
    return this.pacedUntilFor(Math.min(this.chunkBytes, this.file.size - this.sent));
  }

  /** One chunk of burst: chunk k of the attempt may go once the chunks before it fit the rate. */
  private pacedUntilFor(length: number): Micros | null {
    if (this.rateBytesPerSec === null || this.paceStartUs === null) return null;
    const due = this.sent - this.paceStartOffset + length - this.chunkBytes;
    return due <= 0 ? null : this.paceStartUs + (due / this.rateBytesPerSec) * 1e6;
  }

  private get isFinished(): boolean {
    return this.stateValue === 'done' || this.stateValue === 'failed' || this.stateValue === 'legacy';
  }

  private fail(e: PilotError, retryable: boolean): SenderAction {
    this.stateValue = 'failed';
    return { kind: 'fail', error: e, retryable };
  }

  private onFrame(f: XferFrame): SenderAction[] {
    const size = this.file.size;
    if (this.stateValue === 'offered') {
      if (f.type === 'legacy' && f.frameType === FRAME_TYPE_TEXT) {
        const text = Buffer.from(f.payload).toString('utf8');
        const a = parseAck(text);
        if (a.kind === 'ack') {
          this.stateValue = 'legacy';
          return [{ kind: 'legacy' }];
        }
        if (a.kind === 'err') return [this.fail(pilotError(a.code ?? 'connection_failed', `receiver refused the offer: ${a.reason}`), false)];
      }
      if (f.type === 'accept') {
        if (f.offset > size) return [this.fail(pilotError('connection_failed', `receiver resumes at ${f.offset}, past the file's ${size} bytes`), false)];
        this.sent = f.offset;
        this.acked = f.offset;
        this.resumedFromValue = f.offset;
        this.stateValue = 'sending';
        this.paceStartUs = this.lastInputUs;
        this.paceStartOffset = f.offset;
        return [];
      }
    }
    if (f.type === 'refuse') return [this.fail(pilotError(f.refusal.code, `receiver refused: ${f.refusal.message}`, f.refusal.hint ? { hint: f.refusal.hint } : {}), false)];
    if (this.stateValue === 'sending' || this.stateValue === 'ending') {
      if (f.type === 'ack') {
        if (f.offset > this.sent || f.offset < this.acked) {
          return [this.fail(pilotError('connection_failed', `receiver acknowledged ${f.offset}, outside ${this.acked}..${this.sent}`), true)];
        }
        this.acked = f.offset;
        return [];
      }
      if (f.type === 'done' && this.stateValue === 'ending') {
        if (f.done.size !== size || f.done.sha256 !== this.file.sha256) {
          return [this.fail(pilotError('hash_mismatch', `receiver stored ${f.done.size} bytes with SHA-256 ${f.done.sha256}, expected ${this.file.sha256}`), false)];
        }
        this.acked = size;
        this.stateValue = 'done';
        return [{ kind: 'done', done: f.done, resumedFrom: this.resumedFromValue }];
      }
    }
    return [this.fail(pilotError('connection_failed', `receiver sent an unexpected ${f.type} frame in state ${this.stateValue}`), true)];
  }
}

export function refusalOf(e: PilotError): Refusal {
  const r: Refusal = { code: e.code, message: e.message };
  if (e.hint !== undefined) r.hint = e.hint;
  return r;
}

/** For callers that need a Result from a failed action. */
export function failResult(a: Extract<SenderAction, { kind: 'fail' }>): Result<never> {
  return err(a.error.code, a.error.message, { hint: a.error.hint, detail: a.error.detail });
}
