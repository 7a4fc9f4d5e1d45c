// The binary datagram channel's framing (`datagram_channel`, see protocol.ts): bytes in, values out, total on
// any input. Every frame is [u32 BE len][u8 kind][body], len counting kind + body. Many frames share one socket
// write and one read; FrameDecoder splits them whatever the read boundaries are.
//
//   SEND   client → daemon   [u8 1][u32 seq][u16 dst port][u8 ref len][ref utf8][payload]
//   RECV   daemon → client   [u8 2][u32 from node][u16 from port][u16 dst port][u8 addr len][from addr][payload]
//   RESULT daemon → client   [u8 3][u32 seq][JSON WireError, or nothing for success]
//
// seq 0 = fire-and-forget (UDP-like: no answer unless the send fails, then a RESULT with seq 0 and detail
// {to, port}); seq > 0 asks for a RESULT either way. The SDK confirms the first send to each peer ref so a
// wrong name or an untrusted peer fails that send() at once, and sends the rest fire-and-forget.
import { pilotError, type PilotError } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { fromWireError, toWireError } from './protocol.js';

export const FRAME_SEND = 1;
export const FRAME_RECV = 2;
export const FRAME_RESULT = 3;

/** The largest payload a frame carries: a UDP payload's bound. The tunnel's own limit (≈1415 B) is the daemon's to report. */
export const MAX_CHANNEL_PAYLOAD_BYTES = 65_535;
/** Peer refs and addresses travel with a u8 length. */
export const MAX_REF_BYTES = 255;
/** An error body (JSON) is at most this long. */
export const MAX_RESULT_BODY_BYTES = 16 * 1024;

const LEN_BYTES = 4;
const SEND_FIXED = 1 + 4 + 2 + 1;
const RECV_FIXED = 1 + 4 + 2 + 2 + 1;
const RESULT_FIXED = 1 + 4;
/** The longest len field any legal frame has: anything above is hostile and ends the channel. */
export const MAX_FRAME_LEN = RECV_FIXED + MAX_REF_BYTES + MAX_CHANNEL_PAYLOAD_BYTES;

export interface SendFrame {
  kind: typeof FRAME_SEND;
  seq: number;
  port: number;
  to: string;
  payload: Uint8Array;
}
export interface RecvFrame {
  kind: typeof FRAME_RECV;
  fromNodeId: number;
  fromPort: number;
  port: number;
  from: string;
  payload: Uint8Array;
}
export interface ResultFrame {
  kind: typeof FRAME_RESULT;
  seq: number;
  error: PilotError | null;
}
export type ChannelFrame = SendFrame | RecvFrame | ResultFrame;

/** Bytes a SEND frame takes (for batching). */
export function sendFrameBytes(refBytes: number, payloadBytes: number): number {
  return LEN_BYTES + SEND_FIXED + refBytes + payloadBytes;
}
export function recvFrameBytes(addrBytes: number, payloadBytes: number): number {
  return LEN_BYTES + RECV_FIXED + addrBytes + payloadBytes;
}

/**
 * Write a SEND frame at `off` in `buf` (caller sized it with sendFrameBytes); returns the offset after it.
 * `ref` is the already-encoded peer ref (1..255 bytes). Throws only on a caller bug (too small a buffer).
 */
export function writeSendFrame(buf: Buffer, off: number, seq: number, port: number, ref: Uint8Array, payload: Uint8Array): number {
  const len = SEND_FIXED + ref.length + payload.length;
  buf.writeUInt32BE(len, off);
  buf[off + 4] = FRAME_SEND;
  buf.writeUInt32BE(seq, off + 5);
  buf.writeUInt16BE(port, off + 9);
  buf[off + 11] = ref.length;
  buf.set(ref, off + 12);
  buf.set(payload, off + 12 + ref.length);
  return off + LEN_BYTES + len;
}

export function writeRecvFrame(buf: Buffer, off: number, fromNodeId: number, fromPort: number, port: number, addr: Uint8Array, payload: Uint8Array): number {
  const len = RECV_FIXED + addr.length + payload.length;
  buf.writeUInt32BE(len, off);
  buf[off + 4] = FRAME_RECV;
  buf.writeUInt32BE(fromNodeId >>> 0, off + 5);
  buf.writeUInt16BE(fromPort, off + 9);
  buf.writeUInt16BE(port, off + 11);
  buf[off + 13] = addr.length;
  buf.set(addr, off + 14);
  buf.set(payload, off + 14 + addr.length);
  return off + LEN_BYTES + len;
}

/** A RESULT frame as its own buffer (rare: confirmations and failures). The error's `cause` is dropped. */
export function encodeResultFrame(seq: number, error: PilotError | null): Buffer {
  let body = error === null ? Buffer.alloc(0) : Buffer.from(JSON.stringify(toWireError(error)), 'utf8');
  if (body.length > MAX_RESULT_BODY_BYTES) body = Buffer.from(JSON.stringify({ code: error!.code, message: error!.message.slice(0, 1000) }), 'utf8');
  const buf = Buffer.allocUnsafe(LEN_BYTES + RESULT_FIXED + body.length);
  buf.writeUInt32BE(RESULT_FIXED + body.length, 0);
  buf[4] = FRAME_RESULT;
  buf.writeUInt32BE(seq >>> 0, 5);
  body.copy(buf, 9);
  return buf;
}

/** Peer refs are encoded once per distinct ref; null when empty or longer than MAX_REF_BYTES. */
export function encodeRef(ref: string): Buffer | null {
  const b = Buffer.from(ref, 'utf8');
  return b.length === 0 || b.length > MAX_REF_BYTES ? null : b;
}

/**
 * The last ref/address decoded, kept with its bytes: a channel's frames name the same peer again and again, and
 * comparing ≤ 255 bytes costs less than decoding them into a new string per frame.
 */
class LastText {
  private bytes = Buffer.alloc(0);
  private text = '';
  decode(buf: Buffer, start: number, end: number, encoding: 'utf8' | 'latin1'): string {
    const n = end - start;
    const last = this.bytes;
    if (n === last.length) {
      let i = 0;
      while (i < n && buf[start + i] === last[i]) i++;
      if (i === n) return this.text;
    }
    this.text = buf.toString(encoding, start, end);
    this.bytes = Buffer.from(buf.subarray(start, end));
    return this.text;
  }
}
const refText = new LastText();
const addrText = new LastText();

/** Parse one frame body (after the len field). Returns an error for anything malformed; never throws. */
export function decodeFrame(buf: Buffer, start: number, end: number): Result<ChannelFrame> {
  const len = end - start;
  if (len < 1) return err('invalid_argument', 'empty channel frame');
  const kind = buf[start];
  if (kind === FRAME_SEND) {
    if (len < SEND_FIXED) return err('invalid_argument', `SEND frame of ${len} bytes is too short`);
    const refLen = buf[start + 7]!;
    if (refLen === 0) return err('invalid_argument', 'SEND frame without a peer ref');
    const payloadAt = start + SEND_FIXED + refLen;
    if (payloadAt > end) return err('invalid_argument', 'SEND frame: peer ref runs past the frame');
    if (end - payloadAt > MAX_CHANNEL_PAYLOAD_BYTES) return err('invalid_argument', `SEND payload exceeds ${MAX_CHANNEL_PAYLOAD_BYTES} bytes`);
    return ok({
      kind: FRAME_SEND,
      seq: buf.readUInt32BE(start + 1),
      port: buf.readUInt16BE(start + 5),
      to: refText.decode(buf, start + SEND_FIXED, payloadAt, 'utf8'),
      payload: buf.subarray(payloadAt, end),
    });
  }
  if (kind === FRAME_RECV) {
    if (len < RECV_FIXED) return err('invalid_argument', `RECV frame of ${len} bytes is too short`);
    const addrLen = buf[start + 9]!;
    const payloadAt = start + RECV_FIXED + addrLen;
    if (payloadAt > end) return err('invalid_argument', 'RECV frame: address runs past the frame');
    if (end - payloadAt > MAX_CHANNEL_PAYLOAD_BYTES) return err('invalid_argument', `RECV payload exceeds ${MAX_CHANNEL_PAYLOAD_BYTES} bytes`);
    return ok({
      kind: FRAME_RECV,
      fromNodeId: buf.readUInt32BE(start + 1),
      fromPort: buf.readUInt16BE(start + 5),
      port: buf.readUInt16BE(start + 7),
      from: addrText.decode(buf, start + RECV_FIXED, payloadAt, 'latin1'),
      payload: buf.subarray(payloadAt, end),
    });
  }
  if (kind === FRAME_RESULT) {
    if (len < RESULT_FIXED) return err('invalid_argument', `RESULT frame of ${len} bytes is too short`);
    if (len - RESULT_FIXED > MAX_RESULT_BODY_BYTES) return err('invalid_argument', 'RESULT frame body is too long');
    const seq = buf.readUInt32BE(start + 1);
    if (len === RESULT_FIXED) return ok({ kind: FRAME_RESULT, seq, error: null });
    let body: unknown;
    try {
      body = JSON.parse(buf.toString('utf8', start + RESULT_FIXED, end));
    } catch {
      return err('invalid_argument', 'RESULT frame body is not JSON');
    }
    return ok({ kind: FRAME_RESULT, seq, error: fromWireError(body) });
  }
  return err('invalid_argument', `unknown channel frame kind ${kind}`);
}

/**
 * Splits a byte stream into frames across arbitrary read boundaries. `push` hands every complete frame to
 * `onFrame` and returns an error (then the channel is unusable: close it) on a bad length, an unknown kind or a
 * frame of a kind this side must not receive. Never throws on input.
 */
export class FrameDecoder {
  private tail: Buffer | null = null;
  private failed: PilotError | null = null;

  constructor(
    /** Kinds this side accepts: the daemon takes SEND, the client RECV and RESULT. */
    private readonly accepts: readonly number[],
    private readonly onFrame: (f: ChannelFrame) => void,
  ) {}

  push(chunk: Buffer): Result<void> {
    if (this.failed) return { ok: false, error: this.failed };
    let buf = chunk;
    if (this.tail !== null) {
      buf = Buffer.concat([this.tail, chunk]);
      this.tail = null;
    }
    let off = 0;
    while (buf.length - off >= LEN_BYTES) {
      const len = buf.readUInt32BE(off);
      if (len < 1 || len > MAX_FRAME_LEN) return this.fail(pilotError('invalid_argument', `channel frame length ${len} is out of range (1..${MAX_FRAME_LEN})`));
      // The kind is known as soon as its byte is here: refuse a wrong one before buffering up to 64 KiB of it.
      if (buf.length - off > LEN_BYTES && !this.accepts.includes(buf[off + LEN_BYTES]!)) {
        return this.fail(pilotError('invalid_argument', `channel frame kind ${buf[off + LEN_BYTES]} is not accepted here`));
      }
      if (buf.length - off - LEN_BYTES < len) break;
      const f = decodeFrame(buf, off + LEN_BYTES, off + LEN_BYTES + len);
      if (!f.ok) return this.fail(f.error);
      off += LEN_BYTES + len;
      this.onFrame(f.value);
      if (this.failed) return { ok: false, error: this.failed };
    }
    if (off < buf.length) this.tail = off === 0 ? buf : buf.subarray(off);
    return ok();
  }

  /** Bytes of an incomplete frame held for the next push. */
  get bufferedBytes(): number {
    return this.tail?.length ?? 0;
  }

  private fail(e: PilotError): Result<void> {
    this.failed = e;
    this.tail = null;
    return { ok: false, error: e };
  }
}

/** One write buffer; a turn's frames fill as many as they need. */
const BATCH_BYTES = 64 * 1024;

/**
 * Frames on their way to one socket, both sides of the channel: a turn's frames share 64 KiB buffers, a full
 * buffer is written at once, the rest at the end of the turn (setImmediate) or on flush(). Usage:
 * `const buf = b.room(n); b.commit(writeXFrame(buf, b.offset, …))`.
 */
export class FrameBatch {
  private buf: Buffer | null = null;
  /** [start, used) is queued; [0, start) was handed to the socket (never touched again); [used, end) is free. */
  private start = 0;
  private used = 0;
  private isFlushScheduled = false;

  constructor(private readonly socket: { write(b: Uint8Array): unknown; readonly destroyed: boolean }) {}

  /**
   * A buffer with room for an `n`-byte frame at `offset`. The buffer outlives its writes: later turns fill the
   * rest of it (the socket keeps the written slices), so a turn of a few frames does not cost a 64 KiB buffer.
   */
  room(n: number): Buffer {
    if (this.buf === null || this.used + n > this.buf.length) {
      this.write();
      this.buf = Buffer.allocUnsafe(Math.max(BATCH_BYTES, n));
      this.start = 0;
      this.used = 0;
    }
    return this.buf;
  }

  get offset(): number {
    return this.used;
  }

  /** Bytes queued here, not yet handed to the socket. */
  get pendingBytes(): number {
    return this.used - this.start;
  }

  /** The frame written into room()'s buffer ends at `end`; it leaves by the end of this turn. */
  commit(end: number): void {
    this.used = end;
    if (!this.isFlushScheduled) {
      this.isFlushScheduled = true;
      setImmediate(this.scheduledFlush);
    }
  }

  flush(): void {
    this.write();
  }

  private readonly scheduledFlush = (): void => {
    this.isFlushScheduled = false;
    this.write();
  };

  private write(): void {
    if (this.buf !== null && this.used > this.start && !this.socket.destroyed) this.socket.write(this.buf.subarray(this.start, this.used));
    this.start = this.used;
  }
}
