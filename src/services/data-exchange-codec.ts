// Data exchange (port 1001) frames, byte-identical to the original
// (TeoSlayer/pilotprotocol, pkg/dataexchange/dataexchange.go):
//
//   frame   = [u32 BE type][u32 BE length][payload: length bytes]
//   type    = 1 TEXT | 2 BINARY | 3 JSON | 4 FILE (anything else is read and ACKed as UNKNOWN(n))
//   FILE payload = [u16 BE name length][name bytes][file data]
//
// ReadFrame rejects length > 1<<24 ("frame too large") and drops the connection; a FILE payload shorter
// than 2 bytes, or whose name length overruns it, is kept whole with an empty filename (not saved).
// The server answers every frame with a TEXT frame "ACK <TYPE> <n> bytes", n = payload bytes after the
// filename, or "ERR <TYPE> save failed: <reason>" (pkg/daemon/services.go, handleDataExchangeConn).
// Our extension, compatible with that text: a refusal our senders must tell apart carries its error code
// first, "ERR TEXT save failed: quota_exceeded: <message>"; an original sender just prints the ERR line.
//
// Message ids and replies (our extension, issue 14): a sender of ours puts a META frame (type 16, a JSON
// payload {"v":1} or {"v":1,"reply_to":"<id>"}) right before a TEXT/JSON/BINARY frame on the same connection.
// Our receiver names the message to come and answers "ACK META <n> bytes id=<uuid>"; the next frame is stored
// with that id (and reply_to). An original receiver reads type 16 as UNKNOWN(16) and only ACKs it, so the
// message itself still lands; the sender then reports id null. Only the frame right after META gets it.
import { err, ok, type Result } from '../core/result.js';
import type { MessageType } from '../node/api.js';
import { checkReplyTo, isMessageId } from '../wire/message-id.js';

export const FRAME_TYPE_TEXT = 1;
export const FRAME_TYPE_BINARY = 2;
export const FRAME_TYPE_JSON = 3;
export const FRAME_TYPE_FILE = 4;
/** Ours: the attributes of the next message frame (see the header comment). */
export const FRAME_TYPE_META = 16;
/** A META payload larger than this is read, discarded and refused. */
export const MAX_META_PAYLOAD_BYTES = 4096;

export const FRAME_HEADER_BYTES = 8;
export const FILE_NAME_LEN_BYTES = 2;
/** The original's ReadFrame cap: 16 MiB of payload. */
export const MAX_FRAME_PAYLOAD_BYTES = 1 << 24;
export const MAX_FILE_NAME_BYTES = 0xffff;

export interface FrameHeader {
  type: number;
  payloadBytes: number;
}

/** The original's TypeName (used in ACK text and inbox file names). */
export function frameTypeName(type: number): string {
  switch (type) {
    case FRAME_TYPE_TEXT:
      return 'TEXT';
    case FRAME_TYPE_BINARY:
      return 'BINARY';
    case FRAME_TYPE_JSON:
      return 'JSON';
    case FRAME_TYPE_FILE:
      return 'FILE';
    case FRAME_TYPE_META:
      return 'META';
    default:
      return `UNKNOWN(${type >>> 0})`;
  }
}

export function frameTypeOf(t: MessageType): number {
  switch (t) {
    case 'text':
      return FRAME_TYPE_TEXT;
    case 'binary':
      return FRAME_TYPE_BINARY;
    case 'json':
      return FRAME_TYPE_JSON;
    case 'file':
      return FRAME_TYPE_FILE;
  }
}

export function messageTypeOf(type: number): MessageType | null {
  switch (type) {
    case FRAME_TYPE_TEXT:
      return 'text';
    case FRAME_TYPE_BINARY:
      return 'binary';
    case FRAME_TYPE_JSON:
      return 'json';
    case FRAME_TYPE_FILE:
      return 'file';
    default:
      return null;
  }
}

export function encodeFrameHeader(type: number, payloadBytes: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, type >>> 0, false);
  dv.setUint32(4, payloadBytes >>> 0, false);
  return out;
}

/** A complete non-file frame. */
export function encodeFrame(type: number, payload: Uint8Array): Result<Uint8Array> {
  if (payload.length > MAX_FRAME_PAYLOAD_BYTES) {
    return err('invalid_argument', `payload of ${payload.length} bytes exceeds the 16 MiB frame limit`, {
      detail: { bytes: payload.length, max_bytes: MAX_FRAME_PAYLOAD_BYTES },
    });
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  out.set(encodeFrameHeader(type, payload.length), 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return ok(out);
}

/**
 * Everything of a FILE frame before the file data: frame header + name length + name. The data
 * (`fileBytes` of it) follows, so a sender can stream it without holding the file in memory.
 */
export function encodeFileFramePrefix(name: string, fileBytes: number): Result<Uint8Array> {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > MAX_FILE_NAME_BYTES) {
    return err('invalid_argument', `file name of ${nameBytes.length} bytes is too long`);
  }
  const payloadBytes = FILE_NAME_LEN_BYTES + nameBytes.length + fileBytes;
  if (payloadBytes > MAX_FRAME_PAYLOAD_BYTES) {
    return err('invalid_argument', `file of ${fileBytes} bytes exceeds the 16 MiB frame limit of the data exchange protocol`, {
      detail: { bytes: fileBytes, max_bytes: MAX_FRAME_PAYLOAD_BYTES - FILE_NAME_LEN_BYTES - nameBytes.length },
    });
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + FILE_NAME_LEN_BYTES + nameBytes.length);
  out.set(encodeFrameHeader(FRAME_TYPE_FILE, payloadBytes), 0);
  new DataView(out.buffer).setUint16(FRAME_HEADER_BYTES, nameBytes.length, false);
  out.set(nameBytes, FRAME_HEADER_BYTES + FILE_NAME_LEN_BYTES);
  return ok(out);
}

/** A complete FILE frame (small files, tests). */
export function encodeFileFrame(name: string, data: Uint8Array): Result<Uint8Array> {
  const prefix = encodeFileFramePrefix(name, data.length);
  if (!prefix.ok) return prefix;
  const out = new Uint8Array(prefix.value.length + data.length);
  out.set(prefix.value, 0);
  out.set(data, prefix.value.length);
  return ok(out);
}

/** Decode the 8-byte header; lengths above `maxPayloadBytes` are refused (the original closes the connection). */
export function decodeFrameHeader(bytes: Uint8Array, maxPayloadBytes = MAX_FRAME_PAYLOAD_BYTES): Result<FrameHeader> {
  if (bytes.length < FRAME_HEADER_BYTES) {
    return err('invalid_argument', `frame header needs ${FRAME_HEADER_BYTES} bytes, got ${bytes.length}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_BYTES);
  const type = dv.getUint32(0, false);
  const payloadBytes = dv.getUint32(4, false);
  if (payloadBytes > maxPayloadBytes) {
    return err('invalid_argument', `frame too large: ${payloadBytes}`, {
      detail: { bytes: payloadBytes, max_bytes: maxPayloadBytes },
    });
  }
  return ok({ type, payloadBytes });
}

export interface DecodedFrame {
  type: number;
  /** For FILE frames, the file data after the name; otherwise the whole payload. */
  payload: Uint8Array;
  /** '' unless a FILE frame carried a well-formed name. */
  filename: string;
  /** Bytes this frame occupied. */
  frameBytes: number;
}

/**
 * Decode one complete frame from the front of `bytes`; ok(null) when more bytes are needed.
 * Never throws; used by tests and by clients reading small frames.
 */
export function decodeFrame(bytes: Uint8Array, maxPayloadBytes = MAX_FRAME_PAYLOAD_BYTES): Result<DecodedFrame | null> {
  if (bytes.length < FRAME_HEADER_BYTES) return ok(null);
  const h = decodeFrameHeader(bytes, maxPayloadBytes);
  if (!h.ok) return h;
  const end = FRAME_HEADER_BYTES + h.value.payloadBytes;
  if (bytes.length < end) return ok(null);
  const payload = bytes.subarray(FRAME_HEADER_BYTES, end);
  const split = h.value.type === FRAME_TYPE_FILE ? splitFilePayload(payload) : { filename: '', data: payload };
  return ok({ type: h.value.type, payload: split.data, filename: split.filename, frameBytes: end });
}

/** The original's filename split: malformed name fields leave the payload whole and the name empty. */
export function splitFilePayload(payload: Uint8Array): { filename: string; data: Uint8Array } {
  if (payload.length < FILE_NAME_LEN_BYTES) return { filename: '', data: payload };
  const nameLen = (payload[0]! << 8) | payload[1]!;
  if (FILE_NAME_LEN_BYTES + nameLen > payload.length) return { filename: '', data: payload };
  return {
    filename: Buffer.from(payload.subarray(2, 2 + nameLen)).toString('utf8'),
    data: payload.subarray(2 + nameLen),
  };
}

/** ACK text exactly as the original formats it. */
export function ackText(type: number, dataBytes: number): string {
  return `ACK ${frameTypeName(type)} ${dataBytes} bytes`;
}

export function errAckText(type: number, reason: string, code?: AckErrorCode): string {
  return `ERR ${frameTypeName(type)} save failed: ${code === undefined ? '' : `${code}: `}${reason}`;
}

/** Error codes an ERR ack may carry (see errAckText). */
export type AckErrorCode = 'quota_exceeded';
const ACK_ERROR_CODES: readonly AckErrorCode[] = ['quota_exceeded'];

export type ParsedAck =
  | { kind: 'ack' }
  | { kind: 'err'; code: AckErrorCode | null; reason: string }
  | { kind: 'none' };

/** Classify an ACK frame's text (null = no ACK came). Total: any text gives a value. */
export function parseAck(text: string | null): ParsedAck {
  if (text === null) return { kind: 'none' };
  if (text.startsWith('ACK ')) return { kind: 'ack' };
  const m = /^ERR \S+ save failed: (.*)$/s.exec(text);
  if (m === null) return text.startsWith('ERR ') ? { kind: 'err', code: null, reason: text.slice(4) } : { kind: 'none' };
  const reason = m[1]!;
  for (const code of ACK_ERROR_CODES) {
    if (reason.startsWith(`${code}: `)) return { kind: 'err', code, reason: reason.slice(code.length + 2) };
  }
  return { kind: 'err', code: null, reason };
}

// ---------------------------------------------------------------- META (message ids, replies)

export { checkReplyTo, isMessageId } from '../wire/message-id.js';

export interface MessageMeta {
  replyTo: string | null;
}

export function encodeMeta(m: MessageMeta): Uint8Array {
  return Buffer.from(JSON.stringify(m.replyTo === null ? { v: 1 } : { v: 1, reply_to: m.replyTo }), 'utf8');
}

/** Total: any bytes give a value or invalid_argument. Unknown fields are ignored (newer senders). */
export function decodeMeta(payload: Uint8Array): Result<MessageMeta> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    return err('invalid_argument', 'META payload is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return err('invalid_argument', 'META payload is not an object');
  const o = v as Record<string, unknown>;
  if (o.v !== 1) return err('invalid_argument', `unknown META version ${JSON.stringify(o.v)}`);
  if (o.reply_to === undefined || o.reply_to === null) return ok({ replyTo: null });
  if (typeof o.reply_to !== 'string') return err('invalid_argument', 'META reply_to is not a string');
  const r = checkReplyTo(o.reply_to);
  return r.ok ? ok({ replyTo: r.value }) : r;
}

/** Our receiver's answer to a META frame: the ACK text plus the id the next message will get. */
export function metaAckText(payloadBytes: number, id: string): string {
  return `${ackText(FRAME_TYPE_META, payloadBytes)} id=${id}`;
}

/** The id in a META ACK; null for anything else (an original receiver's "ACK UNKNOWN(16) …", no ACK). */
export function parseMetaAck(text: string | null): string | null {
  if (text === null) return null;
  const m = /^ACK META \d+ bytes id=(\S+)$/.exec(text);
  return m !== null && isMessageId(m[1]!) ? m[1]! : null;
}
