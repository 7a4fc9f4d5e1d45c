// The resumable file transfer's frames (our extension of data exchange, port 1001). They use the original's
// frame layout, [u32 BE type][u32 BE length][payload] (data-exchange-codec.ts), with type numbers of their own
// ("PF" + n, 0x5046000n), so an original receiver reads the first one (the OFFER) as an unknown frame and answers
// "ACK UNKNOWN(1346764801) N bytes" — that answer is how a sender learns it must fall back to the single FILE
// frame. No other of these frames is ever sent before the receiver answered the OFFER with ACCEPT.
//
//   OFFER  s→r  [u8 version=1][u8 flags=0][u64 size][32 sha256 of the whole file][u16 name length][name]
//   ACCEPT r→s  [u8 version][u64 offset]          resume from here (0 = new transfer)
//   DATA   s→r  [u64 offset][bytes]               contiguous: offset = the end of the previous DATA
//   ACK    r→s  [u64 offset]                      everything before offset is on the receiver's disk (fsynced)
//   END    s→r  (empty)                           all bytes sent
//   DONE   r→s  [u64 size][32 sha256][u16 name length][name]   published in received/ under name
//   REFUSE r→s  JSON {"code","message","hint"?}   the transfer stops; the code is one of core/errors.ts
//
// Every decoder is total: any bytes give a value or an error, never a throw.
import { err, ok, type Result } from '../core/result.js';
import { ByteQueue } from '../wire/byte-queue.js';
import { isErrorCode, type ErrorCode } from '../core/errors.js';
import { FRAME_HEADER_BYTES } from './data-exchange-codec.js';

export const XFER_OFFER = 0x50460001;
export const XFER_ACCEPT = 0x50460002;
export const XFER_DATA = 0x50460003;
export const XFER_ACK = 0x50460004;
export const XFER_END = 0x50460005;
export const XFER_DONE = 0x50460006;
export const XFER_REFUSE = 0x50460007;

export const XFER_VERSION = 1;
/** DATA payload bytes a sender puts in one frame. */
export const XFER_CHUNK_BYTES = 256 * 1024;
/** Largest transfer frame payload either side accepts (a DATA frame of up to 1 MiB + its offset). */
export const XFER_MAX_FRAME_PAYLOAD_BYTES = 1024 * 1024 + 8;
export const XFER_MAX_NAME_BYTES = 4096;
export const SHA256_BYTES = 32;

export interface Offer {
  version: number;
  size: number;
  /** Lowercase hex. */
  sha256: string;
  name: string;
}

export interface Done {
  size: number;
  sha256: string;
  name: string;
}

export interface Refusal {
  code: ErrorCode;
  message: string;
  hint?: string;
}

export type XferFrame =
  | { type: 'offer'; offer: Offer }
  | { type: 'accept'; version: number; offset: number }
  | { type: 'data'; offset: number; data: Uint8Array }
  | { type: 'ack'; offset: number }
  | { type: 'end' }
  | { type: 'done'; done: Done }
  | { type: 'refuse'; refusal: Refusal }
  /** A frame of the original's types (TEXT: an original receiver's "ACK UNKNOWN…" answer). */
  | { type: 'legacy'; frameType: number; payload: Uint8Array };

function frame(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, type >>> 0, false);
  dv.setUint32(4, payload.length >>> 0, false);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), false);
  return b;
}

function readU64(b: Uint8Array, off: number): number | null {
  if (b.length < off + 8) return null;
  const v = new DataView(b.buffer, b.byteOffset + off, 8).getBigUint64(0, false);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(v);
}

function hexOk(h: string): boolean {
  return /^[0-9a-f]{64}$/.test(h);
}

export function encodeOffer(o: Omit<Offer, 'version'>): Result<Uint8Array> {
  const name = Buffer.from(o.name, 'utf8');
  if (name.length === 0 || name.length > XFER_MAX_NAME_BYTES) return err('invalid_argument', `file name must be 1..${XFER_MAX_NAME_BYTES} bytes`);
  if (!Number.isSafeInteger(o.size) || o.size < 0) return err('invalid_argument', `bad file size ${o.size}`);
  if (!hexOk(o.sha256)) return err('invalid_argument', 'sha256 must be 64 lowercase hex digits');
  const p = new Uint8Array(2 + 8 + SHA256_BYTES + 2 + name.length);
  p[0] = XFER_VERSION;
  p[1] = 0;
  p.set(u64(o.size), 2);
  p.set(Buffer.from(o.sha256, 'hex'), 10);
  new DataView(p.buffer).setUint16(10 + SHA256_BYTES, name.length, false);
  p.set(name, 12 + SHA256_BYTES);
  return ok(frame(XFER_OFFER, p));
}

export function encodeAccept(offset: number): Uint8Array {
  const p = new Uint8Array(9);
  p[0] = XFER_VERSION;
  p.set(u64(offset), 1);
  return frame(XFER_ACCEPT, p);
}

/** The 16 bytes before a DATA frame's data (so the data itself is never copied). */
export function encodeDataHeader(offset: number, dataBytes: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + 8);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, XFER_DATA, false);
  dv.setUint32(4, 8 + dataBytes, false);
  dv.setBigUint64(8, BigInt(offset), false);
  return out;
}

export function encodeData(offset: number, data: Uint8Array): Uint8Array {
  const h = encodeDataHeader(offset, data.length);
  const out = new Uint8Array(h.length + data.length);
  out.set(h, 0);
  out.set(data, h.length);
  return out;
}

export function encodeAck(offset: number): Uint8Array {
  return frame(XFER_ACK, u64(offset));
}

export function encodeEnd(): Uint8Array {
  return frame(XFER_END, new Uint8Array(0));
}

export function encodeDone(d: Done): Uint8Array {
  const name = Buffer.from(d.name, 'utf8').subarray(0, XFER_MAX_NAME_BYTES);
  const p = new Uint8Array(8 + SHA256_BYTES + 2 + name.length);
  p.set(u64(d.size), 0);
  p.set(Buffer.from(d.sha256, 'hex').subarray(0, SHA256_BYTES), 8);
  new DataView(p.buffer).setUint16(8 + SHA256_BYTES, name.length, false);
  p.set(name, 10 + SHA256_BYTES);
  return frame(XFER_DONE, p);
}

export function encodeRefuse(r: Refusal): Uint8Array {
  const body: Record<string, string> = { code: r.code, message: r.message.slice(0, 2000) };
  if (r.hint !== undefined) body.hint = r.hint.slice(0, 2000);
  return frame(XFER_REFUSE, Buffer.from(JSON.stringify(body), 'utf8'));
}

function decodeOffer(p: Uint8Array): Result<Offer> {
  if (p.length < 12 + SHA256_BYTES) return err('invalid_argument', 'OFFER too short');
  const version = p[0]!;
  const size = readU64(p, 2);
  if (size === null) return err('invalid_argument', 'OFFER size out of range');
  const sha256 = Buffer.from(p.subarray(10, 10 + SHA256_BYTES)).toString('hex');
  const nameLen = (p[10 + SHA256_BYTES]! << 8) | p[11 + SHA256_BYTES]!;
  if (nameLen === 0 || nameLen > XFER_MAX_NAME_BYTES || 12 + SHA256_BYTES + nameLen !== p.length) {
    return err('invalid_argument', 'OFFER name length does not match the frame');
  }
  const name = Buffer.from(p.subarray(12 + SHA256_BYTES)).toString('utf8');
  return ok({ version, size, sha256, name });
}

function decodeDone(p: Uint8Array): Result<Done> {
  if (p.length < 10 + SHA256_BYTES) return err('invalid_argument', 'DONE too short');
  const size = readU64(p, 0);
  if (size === null) return err('invalid_argument', 'DONE size out of range');
  const sha256 = Buffer.from(p.subarray(8, 8 + SHA256_BYTES)).toString('hex');
  const nameLen = (p[8 + SHA256_BYTES]! << 8) | p[9 + SHA256_BYTES]!;
  if (10 + SHA256_BYTES + nameLen !== p.length) return err('invalid_argument', 'DONE name length does not match the frame');
  return ok({ size, sha256, name: Buffer.from(p.subarray(10 + SHA256_BYTES)).toString('utf8') });
}

function decodeRefuse(p: Uint8Array): Result<Refusal> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(p).toString('utf8'));
  } catch {
    return err('invalid_argument', 'REFUSE is not JSON');
  }
  if (v === null || typeof v !== 'object') return err('invalid_argument', 'REFUSE is not an object');
  const o = v as Record<string, unknown>;
  const code: ErrorCode = isErrorCode(o.code) ? o.code : 'internal';
  const message = typeof o.message === 'string' ? o.message : 'refused';
  const r: Refusal = { code, message };
  if (typeof o.hint === 'string') r.hint = o.hint;
  return ok(r);
}

/** Decode one complete frame's payload by type. Total. */
export function decodeXferFrame(type: number, p: Uint8Array): Result<XferFrame> {
  switch (type >>> 0) {
    case XFER_OFFER: {
      const o = decodeOffer(p);
      return o.ok ? ok({ type: 'offer', offer: o.value }) : o;
    }
    case XFER_ACCEPT: {
      const off = p.length === 9 ? readU64(p, 1) : null;
      return off === null ? err('invalid_argument', 'bad ACCEPT') : ok({ type: 'accept', version: p[0]!, offset: off });
    }
    case XFER_DATA: {
      const off = readU64(p, 0);
      return off === null ? err('invalid_argument', 'bad DATA offset') : ok({ type: 'data', offset: off, data: p.subarray(8) });
    }
    case XFER_ACK: {
      const off = p.length === 8 ? readU64(p, 0) : null;
      return off === null ? err('invalid_argument', 'bad ACK') : ok({ type: 'ack', offset: off });
    }
    case XFER_END:
      return p.length === 0 ? ok({ type: 'end' }) : err('invalid_argument', 'END carries no payload');
    case XFER_DONE: {
      const d = decodeDone(p);
      return d.ok ? ok({ type: 'done', done: d.value }) : d;
    }
    case XFER_REFUSE: {
      const r = decodeRefuse(p);
      return r.ok ? ok({ type: 'refuse', refusal: r.value }) : r;
    }
    default:
      return ok({ type: 'legacy', frameType: type >>> 0, payload: p });
  }
}

/**
 * Incremental frame reader: push() stream bytes, next() pulls whole frames. Holds at most one frame plus
 * one pushed chunk. A declared length above `maxPayloadBytes` is an error (and stays one: the stream is out
 * of step). Total.
 */
export class XferFrameReader {
  private readonly queue = new ByteQueue();
  private failure: Result<never> | null = null;

  constructor(private readonly maxPayloadBytes = XFER_MAX_FRAME_PAYLOAD_BYTES) {}

  get bufferedBytes(): number {
    return this.queue.length;
  }

  push(bytes: Uint8Array): void {
    this.queue.push(bytes);
  }

  /** The next whole frame; ok(null) when more bytes are needed. */
  next(): Result<XferFrame | null> {
    if (this.failure !== null) return this.failure;
    if (this.queue.length < FRAME_HEADER_BYTES) return ok(null);
    const h = this.queue.peek(FRAME_HEADER_BYTES);
    const dv = new DataView(h.buffer, h.byteOffset, FRAME_HEADER_BYTES);
    const type = dv.getUint32(0, false);
    const len = dv.getUint32(4, false);
    if (len > this.maxPayloadBytes) {
      this.failure = err('invalid_argument', `frame too large: ${len} bytes (max ${this.maxPayloadBytes})`);
      return this.failure;
    }
    if (this.queue.length < FRAME_HEADER_BYTES + len) return ok(null);
    const whole = this.queue.take(FRAME_HEADER_BYTES + len);
    const f = decodeXferFrame(type, whole.subarray(FRAME_HEADER_BYTES));
    if (!f.ok) this.failure = f;
    return f;
  }
}
