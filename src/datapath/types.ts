// The datapath contract: the only code that touches UDP. Batch-first and allocation-light: packets travel
// as one flat buffer plus a meta array with stride 4 — [offset, length, ipU32, port] per packet — the
// layout the native addon reads and writes directly (native/index.d.ts).
import type { PilotError } from '../core/index.js';
import { NOISE_DATA_HEADER_BYTES } from '../wire/noise-frame.js';
import type { DataCipher, DataCipherSupport } from '../crypto/data-cipher.js';

/** u32 slots per packet in a meta array: offset, length, ipU32, port. */
export const META_STRIDE = 4;

/** PND1 data frames (src/wire/noise-frame.ts): magic | receiver u32 | counter u64 LE | ciphertext | tag;
 * the 16-byte header is the associated data and the counter is the nonce tail. */
export const NOISE_DATA_LAYOUT: Readonly<AeadLayout> = Object.freeze({
  headerBytes: NOISE_DATA_HEADER_BYTES,
  aadBytes: NOISE_DATA_HEADER_BYTES,
  nonceOffset: 8,
  nonceBytes: 8,
});

/** Packets to send: `buf` holds them, `meta[i*4 ..]` = offset, length, ipU32, port. The caller may reuse
 * `buf` and `meta` as soon as sendBatch returns (both implementations copy or hand the bytes over). */
export interface SendBatch {
  readonly buf: Uint8Array;
  readonly meta: Uint32Array;
  readonly count: number;
  /** Only for a datapath with `tunnelKeys`: keys[i] ≠ 0 = seal packet i (a PND1 frame whose header and
   * counter are written, tag space reserved) with that session's send key in the same call. A datapath
   * without a key table drops such packets rather than send them in clear. */
  readonly keys?: Uint32Array | null;
}

/** Verdicts in RecvBatch.status. */
export const RECV_NOT_OPENED = 0; // not a PND1 frame, or no keys for its receiver index: the caller decides
export const RECV_OPENED = 1; // authentic; decrypted in place, plaintext at [offset + 16, offset + length - 16)
export const RECV_FORGED = 2; // a PND1 frame for a known index that failed authentication: drop it

/**
 * The datapath's table of Noise session keys (native datapath only): per-packet AEAD moves off the JS thread
 * — the reader thread opens PND1 frames for installed indices before JS sees the batch (RecvBatch.status),
 * and sendBatch seals packets marked in SendBatch.keys. Replay windows, limits and expiry stay with the
 * session (src/crypto/session.ts). Keys cross once per session.
 */
export interface TunnelKeyTable {
  /** Install (or replace) a session's keys under its local index (non-zero u32), for its data cipher (default
   * ChaCha20-Poly1305). False when refused. */
  install(localIndex: number, sendKey: Uint8Array, recvKey: Uint8Array, cipher?: DataCipher): boolean;
  /** Data ciphers beyond ChaCha20-Poly1305 this table holds, with a maker of JS-side AEADs for them (frames the
   * datapath does not seal or open itself: relay-wrapped, extra sockets); null = ChaCha20-Poly1305 only. */
  readonly dataCiphers?: DataCipherSupport | null;
  /** Forget and wipe them. Unknown indices are a no-op. */
  remove(localIndex: number): void;
}

/** Received packets. Valid only during the handler call: the memory is reused for the next batch, so copy
 * what must outlive it. `buf`/`meta` follow SendBatch's layout, so a batch can be opened in place with
 * AeadBatch.open(batch.buf, batch.meta, batch.count, status). */
export interface RecvBatch {
  readonly count: number;
  readonly buf: Uint8Array;
  readonly meta: Uint32Array;
  /** Per packet RECV_NOT_OPENED | RECV_OPENED | RECV_FORGED, or null/absent when nothing was opened
   * (a datapath without tunnelKeys). */
  readonly status?: Uint8Array | null;
  /** View of packet i (no copy; a fresh subarray object). */
  payload(i: number): Uint8Array;
  offset(i: number): number;
  length(i: number): number;
  /** Sender IPv4 as (a<<24)|(b<<16)|(c<<8)|d, unsigned. */
  ipU32(i: number): number;
  /** Sender IPv4 as a dotted string (cached per address). */
  ip(i: number): string;
  port(i: number): number;
}

export interface DatapathStats {
  txPackets: number;
  txBytes: number;
  /** Packets the OS refused (full socket buffer, unreachable destination) — UDP drops, not errors. */
  txDropped: number;
  /** GSO messages sent (each carries up to 64 packets); 0 on dgram. */
  txGsoSends: number;
  rxPackets: number;
  rxBytes: number;
  rxBatches: number;
  /** Datagrams dropped on receive (truncated, or more segments than a batch holds). */
  rxDropped: number;
  /** Last OS error seen on this socket, e.g. 'ENOBUFS', or null. */
  lastError: string | null;
  gso: boolean;
  gro: boolean;
}

export type DatapathKind = 'native' | 'dgram';

export interface Datapath {
  readonly kind: DatapathKind;
  /** Bound address; port is the real one when 0 was asked for. */
  readonly localAddress: { ip: string; port: number };
  /** Session key table for in-datapath AEAD (native); absent elsewhere (callers seal and open themselves). */
  readonly tunnelKeys?: TunnelKeyTable | null;
  /** Send one datagram (IPv4 literal). Returns 1 when the OS took it, 0 when dropped or closed. No throw. */
  send(data: Uint8Array, ip: string, port: number): number;
  /** Send many datagrams in one call (native: sendmmsg + UDP GSO for same-size runs to one peer).
   * Returns packets handed to the OS; the rest were dropped (full socket buffer), as UDP may. */
  sendBatch(batch: SendBatch): number;
  /** The MTU of the route to `ip` (IP_MTU of a connected throwaway socket): DPLPMTUD's probe ceiling. Absent
   * where the datapath cannot tell (node:dgram), and null on failure: path MTU discovery then stays off. */
  routeMtu?(ip: string, port: number): number | null;
  /** Set the receive handler (replaces the previous one); receiving starts on the first call. The handler
   * gets whole batches, never single packets, on the JS thread. */
  onReceive(handler: (batch: RecvBatch) => void): void;
  /** Let the process exit while this socket is open (both implementations keep it alive by default). */
  unref(): void;
  ref(): void;
  /** Stop receiving and release the socket; later sends return 0. Idempotent. */
  close(): Promise<void>;
  stats(): DatapathStats;
}

export type AeadAlgorithm = 'chacha20-poly1305' | 'aes-256-gcm';

/** Where things are inside each packet [offset, offset+length):
 *  [0, aadBytes) associated data; [nonceOffset, +nonceBytes) nonce source (8 bytes = u64 counter, the
 *  nonce is then 4 zero bytes ‖ those 8, as WireGuard and our PND1 frames; 12 = the whole nonce, as the
 *  v0.5 PILS frames); [headerBytes, length-16) the payload, encrypted in place; the last 16 bytes the tag. */
export interface AeadLayout {
  headerBytes: number;
  aadBytes: number;
  nonceOffset: number;
  nonceBytes: 8 | 12;
}

/** Seal/open many packets per call with one key (one instance per session direction). */
export interface AeadBatch {
  readonly kind: 'native' | 'js';
  readonly algorithm: AeadAlgorithm;
  readonly layout: Readonly<AeadLayout>;
  /** Seal `count` packets in place. Returns count, or -1 (nothing changed) when a packet is out of
   * `buf` or shorter than headerBytes + 16 — a caller bug. No I/O. */
  seal(buf: Uint8Array, meta: Uint32Array, count: number): number;
  /** Open `count` packets in place; status[i] = 1 when authentic (plaintext at [headerBytes, length-16)),
   * 0 when forged, truncated or out of bounds (their bytes are unspecified afterwards: libsodium's AES-GCM
   * wipes a forged payload). Returns the authentic count. Never throws on bad input. */
  open(buf: Uint8Array, meta: Uint32Array, count: number, status: Uint8Array): number;
  /** Wipe the key; later calls return -1 / 0. */
  destroy(): void;
}

export type { PilotError };
