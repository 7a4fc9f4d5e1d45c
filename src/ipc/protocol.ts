// The daemon control socket's wire format: newline-delimited JSON over a Unix socket.
//
//   request   {"id":7,"method":"ping","params":{"peer":"beta","count":4,"interval_ms":1000}}
//   event     {"id":7,"event":"result","data":{"seq":0,"bytes":6,"rtt_ms":0.4}}   (0..n, streaming calls only)
//   response  {"id":7,"ok":true,"result":{…}}  |  {"id":7,"ok":false,"error":{"code":"timeout","message":…,"hint":…}}
//
// Call-style methods (ping, send_file, bench) send their events before the response. Open-style methods
// (subscribe, listen) answer first and then push events on the same id until an `end` event
// or until the client sends {"method":"close","params":{"target":id}} / closes the connection.
//
// Authentication: a client's first request on every connection is
//   {"id":"auth","method":"auth","params":{"nonce":"<base64 of 32 random bytes>"}}
// answered with {"public_key","pid","signature"}: the daemon's Ed25519 signature over
// "pilot-ipc-auth:v1:<nonce>:<pid>". The client checks it against <home>/identity.pub before sending anything
// else (src/node/daemon-proof.ts); the daemon does not require it (the socket's 0600 mode guards the daemon).
// With "want_ticket":true the answer also carries a ticket {id, key}; a later connection sends
// {"nonce","ticket":"<id>"} and gets {"pid","mac"}: HMAC-SHA256(key, "pilot-ipc-resume:v1:<nonce>:<pid>"), or a
// full proof with a fresh ticket from a daemon that did not issue it (it restarted).
//
// Byte streams, as the SDK opens them: after `stream_channel` answers {window_bytes}, that connection carries
// all of the client's streams in frames (OPEN → OPENED for dial/accept, DATA within per-stream credit, FIN,
// RST: src/ipc/stream-frames.ts), so a dial costs no connection and its end no status question.
// Listeners: `listen {port}` (open-style, answers {port, listener}) on a control connection; the channel's
// OPEN {"method":"accept","params":{"listener"}} takes the next stream from it ({closed:true} once it closes).
//
// Datagrams: after `datagram_channel {port}` answers {port, socket, max_payload_bytes}, that connection is a
// binary duplex for the bound port, the only way a client binds one (the JSON `open_datagram` / `datagram_send`
// pair, base64 per datagram, is gone: unknown method). Every frame is [u32 BE len][u8 kind][body] — len counts
// kind + body — and many frames share one write and one read:
//   SEND   client → daemon  [1][u32 seq][u16 dst port][u8 ref len][peer ref, utf8][payload]
//   RECV   daemon → client  [2][u32 from node id][u16 from port][u16 dst port][u8 addr len][from addr][payload]
//   RESULT daemon → client  [3][u32 seq][JSON WireError, or empty = success]
// Sends are fire-and-forget like UDP when seq = 0: only a failure is answered (RESULT seq 0, detail {to, port,
// suppressed}; at most one per 100 ms, the rest counted in `suppressed`). seq > 0 asks for a RESULT either way;
// the SDK uses it for the first send to each peer ref, so a wrong name fails that send() at once.
// Payloads are at most 65,535 bytes (MAX_CHANNEL_PAYLOAD_BYTES); the tunnel's own limit (≈1415 B) comes back
// as invalid_argument in a RESULT. A bad length (0 or > MAX_FRAME_LEN), an unknown kind or a kind the side must
// not receive is answered by one RESULT seq 0 (invalid_argument) and the channel closes. Either side closes the
// channel by ending its socket; the daemon then unbinds the port. Codec: src/ipc/datagram-frames.ts.
import { isErrorCode, pilotError, type PilotError } from '../core/errors.js';

/** Longest request line the server accepts; a client that sends more is answered with an error and dropped. */
export const MAX_REQUEST_LINE_BYTES = 1024 * 1024;
/**
 * Responses are bounded to stop a runaway daemon from eating the client. The largest legitimate one is an
 * inbox page holding a single 16 MiB message of control characters: JSON-escaped (\u0001 = 6 bytes each)
 * that is 96 MiB; pages are otherwise cut at INBOX_PAGE_MAX_BYTES.
 */
export const MAX_RESPONSE_LINE_BYTES = 128 * 1024 * 1024;
/** `inbox` answers at most this many messages per call (`limit` is clamped to it)... */
export const INBOX_PAGE_MAX_MESSAGES = 1000;
/** ...and stops adding messages once their stored size passes this; clients page on with `since`. */
export const INBOX_PAGE_MAX_BYTES = 16 * 1024 * 1024;

export type RequestId = number | string;

export interface IpcRequest {
  id: RequestId;
  method: string;
  params?: Record<string, unknown>;
}

/** A PilotError as it travels: `cause` is dropped (not serialisable, and may hold internals). */
export interface WireError {
  code: string;
  message: string;
  hint?: string;
  detail?: Record<string, unknown>;
}

export type IpcResponse =
  | { id: RequestId | null; ok: true; result: unknown }
  | { id: RequestId | null; ok: false; error: WireError };

export interface IpcEvent {
  id: RequestId;
  event: string;
  data: unknown;
}

/** Every method the server answers; the SDK and the tests use these names. */
export const IPC_METHODS = [
  'auth',
  'info',
  'set_hostname',
  'clear_hostname',
  'set_visibility',
  'set_tags',
  'find',
  'handshake',
  'pending',
  'approve',
  'reject',
  'trusted',
  'untrust',
  'rotate_key',
  'network',
  'listen',
  'datagram_channel',
  'stream_channel',
  'send_message',
  'inbox',
  'send_file',
  'received',
  'publish',
  'subscribe',
  'ping',
  'bench',
  'peers',
  'connections',
  'disconnect',
  'shutdown',
  'close',
  'audit',
  'audit_export',
  'set_webhook',
  'clear_webhook',
  'webhook_status',
  // issue 14 (msgs)
  'inbox_wait',
  'register',
  'deregister',
  'lookup',
] as const;
export type IpcMethod = (typeof IPC_METHODS)[number];

export function toWireError(e: PilotError): WireError {
  const w: WireError = { code: e.code, message: e.message };
  if (e.hint !== undefined) w.hint = e.hint;
  if (e.detail !== undefined) w.detail = e.detail;
  return w;
}

/** Back to a PilotError; an unknown code from a newer daemon degrades to `internal` but keeps its text. */
export function fromWireError(w: unknown): PilotError {
  if (typeof w !== 'object' || w === null) return pilotError('internal', 'malformed error from daemon');
  const o = w as Record<string, unknown>;
  const message = typeof o.message === 'string' ? o.message : 'unknown error';
  const extra: { hint?: string; detail?: Record<string, unknown> } = {};
  if (typeof o.hint === 'string') extra.hint = o.hint;
  if (typeof o.detail === 'object' && o.detail !== null) extra.detail = o.detail as Record<string, unknown>;
  if (isErrorCode(o.code)) return pilotError(o.code, message, extra);
  return pilotError('internal', message, { ...extra, detail: { ...extra.detail, code: o.code } });
}

/**
 * Splits a byte stream into lines one at a time, so a caller can stop after a line that turns the connection
 * into a raw byte stream and take the remaining bytes with `takeRest`. A line longer than `maxLineBytes` sets
 * `isOverflowed`; the caller answers with an error and drops that client.
 */
export class LineSplitter {
  private buf: Buffer = Buffer.alloc(0);
  private scanFrom = 0;
  isOverflowed = false;

  constructor(private readonly maxLineBytes: number) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** The next complete line (without the newline), or null when none is buffered or the limit was hit. */
  next(): string | null {
    if (this.isOverflowed) return null;
    const nl = this.buf.indexOf(10, this.scanFrom);
    if (nl < 0) {
      this.scanFrom = this.buf.length;
      if (this.buf.length > this.maxLineBytes) this.isOverflowed = true;
      return null;
    }
    if (nl > this.maxLineBytes) {
      this.isOverflowed = true;
      return null;
    }
    const line = this.buf.subarray(0, nl).toString('utf8');
    this.buf = this.buf.subarray(nl + 1);
    this.scanFrom = 0;
    return line;
  }

  /** Bytes after the last line taken (used when a connection stops speaking JSON lines: a stream or datagram channel). */
  takeRest(): Buffer {
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    this.scanFrom = 0;
    return rest;
  }
}

export function encodeLine(msg: IpcRequest | IpcResponse | IpcEvent): string {
  return JSON.stringify(msg) + '\n';
}
