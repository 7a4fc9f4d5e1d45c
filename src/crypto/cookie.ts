// Cheap checks before any Diffie-Hellman on a PNI1 initiation, after WireGuard's mac1/mac2 and cookie reply
// (whitepaper §5.4.4, §5.4.7; wireguard-go device/cookie.go), sans-IO: callers pass `now` and the source.
//
//   mac1 = MAC(HASH("mac1----" ‖ Spub_r), frame[..mac1])        Spub_r: responder's X25519 static (Noise `s`)
//   mac2 = MAC(cookie, frame[..mac2])                            zero when the initiator holds no cookie
//   cookie = MAC(R_t, source)    R_t: random secret of the responder, new every 2 min; source: ip:port (+relay)
//   PNC1 = magic ‖ receiver index u32 ‖ nonce(24) ‖ XChaCha20-Poly1305(HASH("cookie--" ‖ Spub_r), nonce,
//          cookie, ad = mac1 of the initiation it answers)
// MAC is keyed BLAKE2b with 16-byte output (WireGuard: BLAKE2s), HASH is BLAKE2b-256.
//
// mac1 costs one hash and proves the sender knows our static key (anyone who looked us up in the registry
// does: it stops scanners, not a determined flooder). Under load (more initiations a second than a node
// sees in normal life) a valid mac2 is required too: it proves the sender receives at the source it claims,
// so a flooder spoofing sources or replaying captured initiations from elsewhere gets cookie replies — no DH
// — and a real one is rate-limited per source. The cookie reply is encrypted and bound to mac1, so only the
// initiator that sent that initiation (and knows our key) can read it, and nobody can forge one to make an
// initiator use a wrong cookie.
import sodium from 'sodium-native';
import type { Micros } from '../core/clock.js';
import { TokenBuckets } from '../core/token-bucket.js';
import { NOISE_COOKIE_REPLY_BYTES, NOISE_MAC_BYTES, readU32LE, writeCookieReplyHeader } from '../wire/noise-frame.js';
import type { RandomSource } from './noise-ik.js';

const defaultRandom: RandomSource = (buf) => sodium.randombytes_buf(buf);

const KEY_BYTES = 32;
const NONCE_BYTES = 24;
const COOKIE_BYTES = NOISE_MAC_BYTES;
const MAC1_LABEL = new TextEncoder().encode('mac1----');
const COOKIE_LABEL = new TextEncoder().encode('cookie--');
/** WireGuard's REKEY_TIMEOUT-based lifetimes: the secret turns over every 2 min, a cookie is used for < 2 min. */
export const COOKIE_SECRET_LIFETIME_US = 120_000_000;
export const COOKIE_LIFETIME_US = COOKIE_SECRET_LIFETIME_US - 5_000_000;

function hash256(label: Uint8Array, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(KEY_BYTES);
  const input = new Uint8Array(label.length + key.length);
  input.set(label, 0);
  input.set(key, label.length);
  sodium.crypto_generichash(out, input);
  return out;
}

function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(NOISE_MAC_BYTES);
  sodium.crypto_generichash(out, data, key);
  return out;
}

/** The key of mac1 for initiations to the holder of `staticX25519`. */
export function mac1KeyFor(staticX25519: Uint8Array): Uint8Array {
  return hash256(MAC1_LABEL, staticX25519);
}

/** The key cookie replies from the holder of `staticX25519` are sealed with. */
export function cookieKeyFor(staticX25519: Uint8Array): Uint8Array {
  return hash256(COOKIE_LABEL, staticX25519);
}

/**
 * Fill the last 32 bytes of a PNI1 frame: mac1 under `mac1Key`, then mac2 under `cookie` (zeros without one).
 * Returns a copy of mac1 (the initiator keeps it to open a cookie reply).
 */
export function writeInitiationMacs(frame: Uint8Array, mac1Key: Uint8Array, cookie: Uint8Array | null): Uint8Array {
  const mac1At = frame.length - 2 * NOISE_MAC_BYTES;
  const mac2At = frame.length - NOISE_MAC_BYTES;
  const m1 = mac(mac1Key, frame.subarray(0, mac1At));
  frame.set(m1, mac1At);
  if (cookie === null) frame.fill(0, mac2At);
  else frame.set(mac(cookie, frame.subarray(0, mac2At)), mac2At);
  return m1;
}

/** Constant-time check of a PNI1 frame's mac1 (frames shorter than the two MACs fail). */
export function verifyMac1(frame: Uint8Array, mac1Key: Uint8Array): boolean {
  if (frame.length < 2 * NOISE_MAC_BYTES) return false;
  const mac1At = frame.length - 2 * NOISE_MAC_BYTES;
  const expect = mac(mac1Key, frame.subarray(0, mac1At));
  return sodium.sodium_memcmp(expect, frame.subarray(mac1At, mac1At + NOISE_MAC_BYTES));
}

/**
 * Initiator side: the cookie inside a PNC1 reply to the initiation whose mac1 was `sentMac1`, or null when the
 * reply is malformed or not from the holder of the key (`cookieKey` = cookieKeyFor(responder static)).
 */
export function openCookieReply(reply: Uint8Array, cookieKey: Uint8Array, sentMac1: Uint8Array): Uint8Array | null {
  if (reply.length !== NOISE_COOKIE_REPLY_BYTES) return null;
  const nonce = reply.subarray(8, 8 + NONCE_BYTES);
  const sealed = reply.subarray(8 + NONCE_BYTES);
  const cookie = new Uint8Array(COOKIE_BYTES);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, null, sealed, sentMac1, nonce, cookieKey);
  } catch {
    return null;
  }
  return cookie;
}

/** Receiver index of a PNC1 reply (the initiator's sender index). */
export function cookieReplyReceiver(reply: Uint8Array): number {
  return reply.length === NOISE_COOKIE_REPLY_BYTES ? readU32LE(reply, 4) : -1;
}

export interface HandshakeGuardOptions {
  /** Our Noise static public key (the X25519 image of our Ed25519 identity). */
  staticX25519: Uint8Array;
  /** Initiations with a valid mac1 per second above which we are "under load" (and stay so for 1 s). */
  underLoadPerS?: number;
  /** Under load: initiations with a valid mac2 each source may have processed per second (burst = this). */
  perSourcePerS?: number;
  /** Cookie replies per second to one source (burst = this). */
  cookieRepliesPerSourcePerS?: number;
  /** Sources remembered by the rate limiters (oldest forgotten first). */
  maxSources?: number;
  random?: RandomSource;
}

export type GuardVerdict =
  /** Do the handshake (DH and all). */
  | { kind: 'process' }
  /** Send `reply` (PNC1) to the source instead. */
  | { kind: 'cookie'; reply: Uint8Array }
  | { kind: 'drop'; reason: 'malformed' | 'mac1' | 'rate_limited' };

/** The source of an initiation: `cookieBytes` is what a cookie binds (ip:port, plus the relayed node id). */
export interface InitiationSource {
  cookieBytes: Uint8Array;
  /** Rate-limit bucket: normally the IP (WireGuard); callers on loopback may add the port. */
  rateKey: string;
}

/**
 * Responder side, in front of respond(): mac1 always, mac2 + per-source rate limit under load. One per node.
 * Costs per initiation: one keyed hash (mac1), and under load one more (mac2) or a cookie reply (two hashes and
 * one XChaCha20-Poly1305 of 16 bytes) — never a Diffie-Hellman.
 */
export class HandshakeGuard {
  readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private readonly random: RandomSource;
  private readonly underLoadPerS: number;
  private readonly perSource: TokenBuckets;
  private readonly cookieReplies: TokenBuckets;
  private secret = new Uint8Array(KEY_BYTES);
  private previousSecret: Uint8Array | null = null;
  private secretAtUs: Micros = -Infinity;
  private windowStartUs: Micros = -Infinity;
  private inWindow = 0;
  private underLoadUntilUs: Micros = -Infinity;

  constructor(opts: HandshakeGuardOptions) {
    this.mac1Key = mac1KeyFor(opts.staticX25519);
    this.cookieKey = cookieKeyFor(opts.staticX25519);
    this.random = opts.random ?? defaultRandom;
    this.underLoadPerS = opts.underLoadPerS ?? 100;
    const maxSources = opts.maxSources ?? 8192;
    const perSource = opts.perSourcePerS ?? 20;
    const cookieReplies = opts.cookieRepliesPerSourcePerS ?? 20;
    this.perSource = new TokenBuckets(perSource, perSource, maxSources);
    this.cookieReplies = new TokenBuckets(cookieReplies, cookieReplies, maxSources);
  }

  /** True while initiations arrive faster than `underLoadPerS` (and for 1 s after). */
  isUnderLoad(now: Micros): boolean {
    return now < this.underLoadUntilUs;
  }

  /** Decide what to do with one PNI1 frame from `source`. Never throws on hostile input. */
  check(frame: Uint8Array, source: InitiationSource, now: Micros): GuardVerdict {
    if (frame.length < 8 + 2 * NOISE_MAC_BYTES) return { kind: 'drop', reason: 'malformed' };
    if (!verifyMac1(frame, this.mac1Key)) return { kind: 'drop', reason: 'mac1' };
    if (now - this.windowStartUs >= 1_000_000) {
      this.windowStartUs = now;
      this.inWindow = 0;
    }
    if (++this.inWindow > this.underLoadPerS) this.underLoadUntilUs = now + 1_000_000;
    if (!this.isUnderLoad(now)) return { kind: 'process' };
    // A source that spent both budgets gets nothing, whatever its mac2: skip the hashes (the flood's case).
    if (!this.perSource.hasToken(source.rateKey, now) && !this.cookieReplies.hasToken(source.rateKey, now)) {
      return { kind: 'drop', reason: 'rate_limited' };
    }

    const mac2At = frame.length - NOISE_MAC_BYTES;
    const mac2 = frame.subarray(mac2At);
    const body = frame.subarray(0, mac2At);
    this.rotate(now);
    let isValid = sodium.sodium_memcmp(mac(this.cookieFor(this.secret, source), body), mac2);
    if (!isValid && this.previousSecret !== null) isValid = sodium.sodium_memcmp(mac(this.cookieFor(this.previousSecret, source), body), mac2);
    if (isValid) return this.perSource.take(source.rateKey, now) ? { kind: 'process' } : { kind: 'drop', reason: 'rate_limited' };
    if (!this.cookieReplies.take(source.rateKey, now)) return { kind: 'drop', reason: 'rate_limited' };
    return { kind: 'cookie', reply: this.cookieReply(frame, source) };
  }

  private rotate(now: Micros): void {
    if (now - this.secretAtUs < COOKIE_SECRET_LIFETIME_US) return;
    this.previousSecret = now - this.secretAtUs < 2 * COOKIE_SECRET_LIFETIME_US ? this.secret : null;
    this.secret = new Uint8Array(KEY_BYTES);
    this.random(this.secret);
    this.secretAtUs = now;
  }

  private cookieFor(secret: Uint8Array, source: InitiationSource): Uint8Array {
    return mac(secret, source.cookieBytes);
  }

  private cookieReply(frame: Uint8Array, source: InitiationSource): Uint8Array {
    const out = new Uint8Array(NOISE_COOKIE_REPLY_BYTES);
    writeCookieReplyHeader(out, readU32LE(frame, 4));
    const nonce = out.subarray(8, 8 + NONCE_BYTES);
    this.random(nonce);
    const mac1 = frame.subarray(frame.length - 2 * NOISE_MAC_BYTES, frame.length - NOISE_MAC_BYTES);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out.subarray(8 + NONCE_BYTES), this.cookieFor(this.secret, source), mac1, null, nonce, this.cookieKey);
    return out;
  }
}
