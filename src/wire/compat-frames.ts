// The compat transport's wire (issue 13): what travels on the rendezvous's TLS port (default 443) for nodes
// whose UDP does not get out. One TLS port, two protocols, told apart by ALPN:
// - ALPN `pilot-registry`: the registry protocol (src/wire/registry-frame.ts), byte for byte as on the plain port;
// - anything else (ws sends no ALPN; a browser sends h2/http/1.1): HTTP/1.1. `GET /v1/beacon` with the
//   WebSocket subprotocol `pilot-beacon.v1` upgrades to the beacon/relay channel; other paths are plain HTTP
//   (404 today; the dashboard later).
// On the channel, each binary WebSocket message carries one or more beacon datagrams (src/wire/beacon-message.ts),
// each as a record [u16 BE length][datagram], length 1..MAX_RECORD_BYTES; a message is 1..MAX_WS_MESSAGE_BYTES
// and must be whole records. The beacon treats a datagram from a channel as a datagram from that channel's
// endpoint (relay 0x05 in, relay deliver 0x06 out, discover for registration), so the frames relayed are the same
// sealed Noise frames as over UDP. A message that is not whole records (or a text message) is a protocol error:
// the receiver closes the channel with CLOSE_PROTOCOL_ERROR; a record whose datagram is not a valid beacon
// message is dropped and counted, as a malformed UDP datagram is.
import { err, ok, type Result } from '../core/result.js';
import { BEACON_RELAY_DELIVER } from './beacon-message.js';

export const COMPAT_ALPN_REGISTRY = 'pilot-registry';
export const COMPAT_WS_PATH = '/v1/beacon';
export const COMPAT_WS_SUBPROTOCOL = 'pilot-beacon.v1';
export const DEFAULT_COMPAT_PORT = 443;

/** A record's datagram: at most a UDP datagram's payload. */
export const MAX_RECORD_BYTES = 65_507;
/** A WebSocket message (the ws `maxPayload` on both ends). */
export const MAX_WS_MESSAGE_BYTES = 256 * 1024;
/** WebSocket close code for a message that is not whole records (RFC 6455 1007: inconsistent data). */
export const CLOSE_PROTOCOL_ERROR = 1007;

/** Bytes a record adds in front of its datagram. */
export const RECORD_HEADER_BYTES = 2;

/** One message of records; invalid_argument when a datagram is empty or too large, or the message too large. */
export function encodeRecords(datagrams: readonly Uint8Array[]): Result<Uint8Array> {
  let total = 0;
  for (const d of datagrams) {
    if (d.length === 0 || d.length > MAX_RECORD_BYTES) {
      return err('invalid_argument', `compat record of ${d.length} bytes (1..${MAX_RECORD_BYTES})`);
    }
    total += RECORD_HEADER_BYTES + d.length;
  }
  if (datagrams.length === 0 || total > MAX_WS_MESSAGE_BYTES) {
    return err('invalid_argument', `compat message of ${datagrams.length} records, ${total} bytes (1..${MAX_WS_MESSAGE_BYTES})`);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const d of datagrams) {
    out[off] = d.length >>> 8;
    out[off + 1] = d.length & 0xff;
    out.set(d, off + RECORD_HEADER_BYTES);
    off += RECORD_HEADER_BYTES + d.length;
  }
  return ok(out);
}


/**
 * Message buffers for RecordBatch to fill and hand over without a copy; the sender gives each back (`release`)
 * once the socket has taken it. Bounded: beyond `max` idle buffers, released ones are left to the GC.
 */
export class MessageBufferPool {
  private readonly idle: ArrayBuffer[] = [];
  constructor(private readonly max = 32) {}
  acquire(): Buffer {
    const ab = this.idle.pop();
    return ab ? Buffer.from(ab) : Buffer.allocUnsafeSlow(MAX_WS_MESSAGE_BYTES);
  }
  /** `msg` is a message a pooled RecordBatch returned from take(). */
  release(msg: Uint8Array): void {
    const ab = msg.buffer;
    if (ab instanceof ArrayBuffer && ab.byteLength === MAX_WS_MESSAGE_BYTES && this.idle.length < this.max) this.idle.push(ab);
  }
  get idleCount(): number {
    return this.idle.length;
  }
}

/**
 * Gathers datagrams into messages of at most MAX_WS_MESSAGE_BYTES (the sender's batch per flush), written
 * straight into the message buffer: no per-datagram allocation. Without a pool each message is copied out at
 * its exact size and the batch's buffer reused; with one, messages are pool buffers handed over as they are
 * (the caller releases each after sending it).
 * `push` returns false when the datagram is not 1..MAX_RECORD_BYTES (the caller drops it).
 */
export class RecordBatch {
  private buf: Buffer | null = null;
  private off = 0;
  private readonly done: Uint8Array[] = [];
  constructor(private readonly pool: MessageBufferPool | null = null) {}

  push(d: Uint8Array): boolean {
    const at = this.reserve(d.length);
    if (at < 0) return false;
    this.buf!.set(d, at);
    return true;
  }

  /** A relay deliver datagram ([0x06][u32 sender][payload], src/wire/beacon-message.ts) written in place. */
  pushRelayDeliver(senderNodeId: number, payload: Uint8Array): boolean {
    const at = this.reserve(5 + payload.length);
    if (at < 0) return false;
    const b = this.buf!;
    b[at] = BEACON_RELAY_DELIVER;
    b.writeUInt32BE(senderNodeId >>> 0, at + 1);
    b.set(payload, at + 5);
    return true;
  }

  get isEmpty(): boolean {
    return this.off === 0 && this.done.length === 0;
  }

  /** The messages so far (whole records each), and a fresh batch. */
  take(): Uint8Array[] {
    this.seal();
    return this.done.splice(0);
  }

  /** Write a record header for `len` bytes; the offset where its datagram goes, or -1 (bad length). */
  private reserve(len: number): number {
    if (len === 0 || len > MAX_RECORD_BYTES) return -1;
    if (this.off + RECORD_HEADER_BYTES + len > MAX_WS_MESSAGE_BYTES) this.seal();
    this.buf ??= this.pool ? this.pool.acquire() : Buffer.allocUnsafeSlow(MAX_WS_MESSAGE_BYTES);
    const b = this.buf;
    b[this.off] = len >>> 8;
    b[this.off + 1] = len & 0xff;
    const at = this.off + RECORD_HEADER_BYTES;
    this.off = at + len;
    return at;
  }

  private seal(): void {
    if (this.off === 0 || !this.buf) return;
    if (this.pool) {
      this.done.push(this.buf.subarray(0, this.off));
      this.buf = null;
    } else {
      // Copied out at its exact size and the buffer reused: a large buffer allocated per message made the GC
      // the relay's main cost.
      this.done.push(Buffer.from(this.buf.subarray(0, this.off)));
    }
    this.off = 0;
  }
}

/**
 * The datagrams of one message, as views into it (no copy). Total: invalid_argument for an empty message, a
 * zero length, a record running past the end, or a message over MAX_WS_MESSAGE_BYTES.
 */
export function decodeRecords(msg: Uint8Array): Result<Uint8Array[]> {
  if (msg.length === 0) return err('invalid_argument', 'empty compat message');
  if (msg.length > MAX_WS_MESSAGE_BYTES) return err('invalid_argument', `compat message of ${msg.length} bytes (max ${MAX_WS_MESSAGE_BYTES})`);
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < msg.length) {
    if (off + RECORD_HEADER_BYTES > msg.length) return err('invalid_argument', `compat message ends inside a record header at byte ${off}`);
    const len = (msg[off]! << 8) | msg[off + 1]!;
    if (len === 0) return err('invalid_argument', `compat record of 0 bytes at byte ${off}`);
    const start = off + RECORD_HEADER_BYTES;
    if (start + len > msg.length) return err('invalid_argument', `compat record of ${len} bytes at byte ${off} runs past the message (${msg.length})`);
    out.push(msg.subarray(start, start + len));
    off = start + len;
  }
  return ok(out);
}

// ---- Certificate fingerprints: SHA-256 of the certificate's DER, written as openssl and Node write it ----

/** `AB:CD:…` (32 upper-case hex pairs) — Node's `X509Certificate.fingerprint256`. */
export type Fingerprint = string;

/**
 * A fingerprint as a user may type it: 64 hex digits, with or without colons, any case, optionally prefixed
 * `sha256:` / `SHA256:` / `sha256/`. Normalized to `AB:CD:…`; invalid_argument otherwise.
 */
export function parseFingerprint(text: string): Result<Fingerprint> {
  const t = text.trim().replace(/^sha256[:/]/i, '');
  const hex = t.replace(/:/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex) || (t.includes(':') && !/^([0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$/.test(t))) {
    return err('invalid_argument', `not a SHA-256 fingerprint: ${JSON.stringify(text.slice(0, 120))}`, {
      hint: '64 hex digits, colons optional (pilot-rendezvous --print-fingerprint prints it)',
    });
  }
  return ok(hex.toUpperCase().match(/../g)!.join(':'));
}
