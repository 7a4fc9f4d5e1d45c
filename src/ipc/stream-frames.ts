// The stream channel's framing (`stream_channel`, see protocol.ts): many byte streams over one verified Unix
// connection, so a dial or an accept costs one frame each way instead of a connection (connect, auth, close).
// Every frame is [u8 type][u32 BE stream id][u32 BE len][len bytes]; the client picks the ids.
//
//   OPEN    client → daemon   JSON {"method":"dial"|"accept","params":{…}}  (the JSON methods' params)
//   OPENED  daemon → client   JSON {"ok":true,"result":{remote_addr,…}} | {"ok":true,"result":{"closed":true}}
//                             (accept on a closed listener) | {"ok":false,"error":WireError}
//   DATA    both ways         stream bytes; at most the credit the other side granted (below)
//   FIN     both ways         no more DATA from this side (half-close)
//   RST     both ways         abort; the id is done on both sides (a pending OPEN is cancelled)
//   CREDIT  both ways         [u32 BE bytes]: the receiver consumed that many more; the sender may send them
//
// Flow control is per stream: each side starts with STREAM_WINDOW_BYTES of credit per direction, so one stream
// its app does not read cannot stall the others sharing the socket. A frame the side must not receive, a DATA
// past the window, an unknown type or an oversized control frame is a protocol error: the channel closes and
// every stream on it is reset. Parsing is streaming: a DATA payload is handed on in the pieces the reads
// brought (no reassembly, no copy); control frames are assembled (they are small).
import type { Socket } from 'node:net';

export const FRAME_OPEN = 1;
export const FRAME_OPENED = 2;
export const FRAME_DATA = 3;
export const FRAME_FIN = 4;
export const FRAME_RST = 5;
export const FRAME_CREDIT = 6;

export const FRAME_HEADER_BYTES = 9;
/** Bytes each side may send on a stream before the other grants more. */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
/** Credit is returned in steps of at least this much (a ping-pong sends none). */
export const CREDIT_STEP_BYTES = STREAM_WINDOW_BYTES / 4;
/** The largest DATA payload one frame carries (writes are split). */
export const MAX_DATA_FRAME_BYTES = 256 * 1024;
/** OPEN / OPENED / CREDIT and the rest are small; past this it is hostile. */
export const MAX_CONTROL_FRAME_BYTES = 64 * 1024;
/** Ids are u32; 0 is never used. */
export const MAX_STREAM_ID = 0xffff_ffff;

export function frameHeader(type: number, id: number, len: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h[0] = type;
  h.writeUInt32BE(id, 1);
  h.writeUInt32BE(len, 5);
  return h;
}

/** A whole frame in one buffer (control frames, small DATA). */
export function frame(type: number, id: number, payload: Uint8Array | null = null): Buffer {
  const len = payload === null ? 0 : payload.length;
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
  b[0] = type;
  b.writeUInt32BE(id, 1);
  b.writeUInt32BE(len, 5);
  if (payload !== null) b.set(payload, FRAME_HEADER_BYTES);
  return b;
}

/** DATA payloads under this go out copied behind their header in one buffer; larger ones as two writes, no copy. */
const COPY_BELOW_BYTES = 16 * 1024;

/** Write `data` as DATA frames of at most MAX_DATA_FRAME_BYTES each. */
export function writeData(socket: Socket, id: number, data: Buffer): void {
  for (let off = 0; off < data.length; off += MAX_DATA_FRAME_BYTES) {
    const piece = off === 0 && data.length <= MAX_DATA_FRAME_BYTES ? data : data.subarray(off, Math.min(data.length, off + MAX_DATA_FRAME_BYTES));
    if (piece.length < COPY_BELOW_BYTES) {
      socket.write(frame(FRAME_DATA, id, piece));
      continue;
    }
    socket.cork();
    socket.write(frameHeader(FRAME_DATA, id, piece.length));
    socket.write(piece);
    socket.uncork();
  }
}

export function creditFrame(id: number, bytes: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  b[0] = FRAME_CREDIT;
  b.writeUInt32BE(id, 1);
  b.writeUInt32BE(4, 5);
  b.writeUInt32BE(bytes, 9);
  return b;
}

export interface FrameHandler {
  /** A whole frame other than DATA. */
  onFrame(type: number, id: number, payload: Buffer): void;
  /** The next piece of a DATA frame's payload (a view into the read; keep it or copy it, do not expect more). */
  onData(id: number, chunk: Buffer): void;
}

/**
 * Splits a byte stream into frames whatever the read boundaries are. Total: anything malformed (unknown type,
 * a control frame over MAX_CONTROL_FRAME_BYTES, DATA over MAX_DATA_FRAME_BYTES, id 0) sets `error` and the
 * parser takes nothing more; the owner closes the channel.
 */
export class FrameParser {
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerLen = 0;
  private type = 0;
  private id = 0;
  /** Payload bytes of the current frame still to come (0 between frames). */
  private remaining = 0;
  private control: Buffer[] = [];
  private controlLen = 0;
  error: string | null = null;

  constructor(private readonly handler: FrameHandler) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && this.error === null) {
      if (this.remaining === 0 && this.headerLen < FRAME_HEADER_BYTES) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headerLen, chunk.length - off);
        chunk.copy(this.header, this.headerLen, off, off + n);
        this.headerLen += n;
        off += n;
        if (this.headerLen < FRAME_HEADER_BYTES) return;
        if (!this.startFrame()) return;
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - off);
      const piece = chunk.subarray(off, off + n);
      off += n;
      this.remaining -= n;
      if (this.type === FRAME_DATA) {
        this.handler.onData(this.id, piece);
      } else {
        this.control.push(piece);
        this.controlLen += n;
      }
      if (this.remaining === 0) this.endFrame();
    }
  }

  private startFrame(): boolean {
    const type = this.header[0]!;
    const id = this.header.readUInt32BE(1);
    const len = this.header.readUInt32BE(5);
    this.headerLen = 0;
    if (type < FRAME_OPEN || type > FRAME_CREDIT) return this.fail(`unknown frame type ${type}`);
    if (id === 0) return this.fail('frame with stream id 0');
    if (type === FRAME_DATA ? len > MAX_DATA_FRAME_BYTES : len > MAX_CONTROL_FRAME_BYTES) {
      return this.fail(`frame of ${len} bytes is too large for its type ${type}`);
    }
    if (type === FRAME_DATA && len === 0) return true; // empty DATA: nothing to hand on
    this.type = type;
    this.id = id;
    this.remaining = len;
    if (len === 0) this.endFrame();
    return true;
  }

  private endFrame(): void {
    if (this.type !== FRAME_DATA) {
      const payload = this.control.length === 1 ? this.control[0]! : Buffer.concat(this.control, this.controlLen);
      this.control = [];
      this.controlLen = 0;
      const type = this.type;
      this.type = 0;
      this.handler.onFrame(type, this.id, payload);
      return;
    }
    this.type = 0;
  }

  private fail(message: string): boolean {
    this.error = message;
    return false;
  }
}

/** A CREDIT frame's grant, or null when malformed. */
export function creditOf(payload: Buffer): number | null {
  return payload.length === 4 ? payload.readUInt32BE(0) : null;
}

/** An OPEN / OPENED body, or null when it is not a JSON object. */
export function jsonOf(payload: Buffer): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(payload.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
