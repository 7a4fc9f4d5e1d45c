// Which AEAD seals a Noise session's data frames, and how the two peers agree on it.
//
// Every peer runs ChaCha20-Poly1305 (the Noise suite's cipher; the handshake itself always uses it). A peer whose
// datapath has hardware AES (AES-NI / ARMv8 AES) can also run AES-256-GCM, about half the cost per packet there.
// The initiator offers what it can run in msg1's early-data area; the responder picks one it can run too and names
// it in msg2's. Both payloads are encrypted and authenticated by the handshake, so nobody in between can steer the
// choice. A peer that sends no offer (an older pilot-node) gets ChaCha20-Poly1305 and the bytes it always got; an
// older responder ignores the offer and answers without a choice, which means ChaCha20-Poly1305 too.
//
// The early-data area is a list of records: type u8 | length u16 LE | value. Type 1 = data ciphers (msg1: the
// offer, most preferred first; msg2: exactly one, the choice); type 2 = the application's early data. Unknown types
// are skipped; a truncated list ends at the last whole record.
import { err, ok, type Result } from '../core/index.js';

export type DataCipher = 'chacha20-poly1305' | 'aes-256-gcm';

export const DEFAULT_DATA_CIPHER: DataCipher = 'chacha20-poly1305';

const CIPHER_IDS: Record<DataCipher, number> = { 'chacha20-poly1305': 1, 'aes-256-gcm': 2 };
const CIPHER_BY_ID: Record<number, DataCipher> = { 1: 'chacha20-poly1305', 2: 'aes-256-gcm' };

export const RECORD_CIPHERS = 1;
export const RECORD_APP_DATA = 2;
export const RECORD_HEADER_BYTES = 3;

/**
 * A batch AEAD keyed for one direction of one session, over PND1 frames laid out as in src/datapath (associated
 * data = the 16-byte header, nonce = 4 zero bytes ‖ header[8, 16)). The datapath's AeadBatch has this shape; the
 * session only needs these three calls. meta has stride 4: offset, length, (ip, port unused).
 */
export interface FrameAead {
  seal(buf: Uint8Array, meta: Uint32Array, count: number): number;
  open(buf: Uint8Array, meta: Uint32Array, count: number, status: Uint8Array): number;
  destroy(): void;
}

/** What a peer can run beyond ChaCha20-Poly1305: a factory per extra cipher (sync; one AEAD per key). */
export interface DataCipherSupport {
  /** Most preferred first; 'chacha20-poly1305' need not be listed (every peer runs it). */
  readonly ciphers: readonly DataCipher[];
  /** An AEAD for `cipher` keyed with `key` (32 bytes); null when it cannot be made after all. */
  create(cipher: DataCipher, key: Uint8Array): FrameAead | null;
}

export interface EarlyRecords {
  /** Type-1 record's ciphers (unknown ids dropped); null when there was no such record. */
  ciphers: DataCipher[] | null;
  /** Type-2 record's value; empty when absent. */
  appData: Uint8Array;
}

/** Parse an early-data area. Total: any bytes give an answer (a truncated tail is ignored). */
export function decodeEarlyRecords(area: Uint8Array): EarlyRecords {
  let ciphers: DataCipher[] | null = null;
  let appData: Uint8Array = new Uint8Array(0);
  let off = 0;
  while (off + RECORD_HEADER_BYTES <= area.length) {
    const type = area[off]!;
    const len = area[off + 1]! | (area[off + 2]! << 8);
    const start = off + RECORD_HEADER_BYTES;
    if (start + len > area.length) break;
    const value = area.subarray(start, start + len);
    if (type === RECORD_CIPHERS && ciphers === null) {
      ciphers = [];
      for (const id of value) {
        const c = CIPHER_BY_ID[id];
        if (c !== undefined && !ciphers.includes(c)) ciphers.push(c);
      }
    } else if (type === RECORD_APP_DATA && appData.length === 0) {
      appData = value;
    }
    off = start + len;
  }
  return { ciphers, appData };
}

/** Build an early-data area: a cipher record when `ciphers` is non-null, the app data record when non-empty. */
export function encodeEarlyRecords(ciphers: readonly DataCipher[] | null, appData: Uint8Array): Uint8Array {
  const cipherBytes = ciphers === null ? 0 : RECORD_HEADER_BYTES + ciphers.length;
  const appBytes = appData.length === 0 ? 0 : RECORD_HEADER_BYTES + appData.length;
  const out = new Uint8Array(cipherBytes + appBytes);
  let off = 0;
  if (ciphers !== null) {
    out[0] = RECORD_CIPHERS;
    out[1] = ciphers.length;
    out[2] = 0;
    ciphers.forEach((c, i) => (out[RECORD_HEADER_BYTES + i] = CIPHER_IDS[c]));
    off = cipherBytes;
  }
  if (appData.length > 0) {
    out[off] = RECORD_APP_DATA;
    out[off + 1] = appData.length & 0xff;
    out[off + 2] = appData.length >>> 8;
    out.set(appData, off + RECORD_HEADER_BYTES);
  }
  return out;
}

/** The initiator's offer: null (send no record, the bytes an older peer sends) when only ChaCha20-Poly1305 runs. */
export function offerFor(support: DataCipherSupport | undefined): DataCipher[] | null {
  const extra = (support?.ciphers ?? []).filter((c) => c !== DEFAULT_DATA_CIPHER);
  return extra.length === 0 ? null : [...extra, DEFAULT_DATA_CIPHER];
}

/** The responder's pick: its most preferred cipher that the initiator offered; ChaCha20-Poly1305 without an offer. */
export function chooseCipher(offer: readonly DataCipher[] | null, support: DataCipherSupport | undefined): DataCipher {
  if (offer === null) return DEFAULT_DATA_CIPHER;
  for (const c of support?.ciphers ?? []) if (offer.includes(c)) return c;
  return DEFAULT_DATA_CIPHER;
}

/**
 * The initiator's reading of the responder's answer: no record = ChaCha20-Poly1305 (an older responder); a choice
 * must be exactly one cipher we offered — anything else refuses the response (invalid_argument).
 */
export function acceptChoice(offer: readonly DataCipher[] | null, choice: readonly DataCipher[] | null): Result<DataCipher> {
  if (choice === null) return ok(DEFAULT_DATA_CIPHER);
  const c = choice[0];
  if (choice.length !== 1 || c === undefined) return err('invalid_argument', 'responder named no single data cipher');
  if (c === DEFAULT_DATA_CIPHER || (offer !== null && offer.includes(c))) return ok(c);
  return err('invalid_argument', `responder chose ${c}, which was not offered`);
}
