// ChaCha20-Poly1305 (IETF, 96-bit nonce) through libsodium, with Noise's nonce layout:
// 4 zero bytes ‖ 64-bit little-endian counter (Noise spec §12.3 "ChaChaPoly"). Callers own and reuse the nonce
// buffer, so the per-packet path allocates nothing but the typed-array views it passes in.
import sodium from 'sodium-native';

export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;

/** Write a Noise ChaChaPoly nonce for `counter` (an integer below 2^53) into the 12-byte `nonce`. */
export function writeNonce(nonce: Uint8Array, counter: number): void {
  const lo = counter >>> 0;
  const hi = Math.floor(counter / 0x1_0000_0000) >>> 0;
  nonce[0] = 0;
  nonce[1] = 0;
  nonce[2] = 0;
  nonce[3] = 0;
  nonce[4] = lo;
  nonce[5] = lo >>> 8;
  nonce[6] = lo >>> 16;
  nonce[7] = lo >>> 24;
  nonce[8] = hi;
  nonce[9] = hi >>> 8;
  nonce[10] = hi >>> 16;
  nonce[11] = hi >>> 24;
}

/**
 * Encrypt `plaintext` into `ciphertextOut` (same length; may be the same memory for in-place) and the tag into
 * `tagOut` (16 bytes). Sizes are the caller's invariant; a wrong size throws (a bug, not hostile input).
 */
export function sealDetached(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array | null,
  plaintext: Uint8Array,
  ciphertextOut: Uint8Array,
  tagOut: Uint8Array,
): void {
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(ciphertextOut, tagOut, plaintext, ad, null, nonce, key);
}

/**
 * Verify and decrypt (in place when `plaintextOut` is `ciphertext`). libsodium verifies the tag before decrypting
 * and zeroes `plaintextOut` on failure, so a forged in-place frame reads as zeros afterwards. Returns false for
 * any forgery; never throws for hostile bytes.
 */
export function openDetached(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array | null,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  plaintextOut: Uint8Array,
): boolean {
  if (tag.length !== AEAD_TAG_BYTES || plaintextOut.length !== ciphertext.length) return false;
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(plaintextOut, null, ciphertext, tag, ad, nonce, key);
    return true;
  } catch {
    return false;
  }
}

/** Allocating seal: ciphertext ‖ tag. For the handshake, not the datapath. */
export function sealCounter(key: Uint8Array, counter: number, ad: Uint8Array | null, plaintext: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(AEAD_NONCE_BYTES);
  writeNonce(nonce, counter);
  const out = new Uint8Array(plaintext.length + AEAD_TAG_BYTES);
  sealDetached(key, nonce, ad, plaintext, out.subarray(0, plaintext.length), out.subarray(plaintext.length));
  return out;
}

/** Allocating open of ciphertext ‖ tag; null when too short or not authentic. */
export function openCounter(
  key: Uint8Array,
  counter: number,
  ad: Uint8Array | null,
  sealed: Uint8Array,
): Uint8Array | null {
  if (sealed.length < AEAD_TAG_BYTES) return null;
  const nonce = new Uint8Array(AEAD_NONCE_BYTES);
  writeNonce(nonce, counter);
  const n = sealed.length - AEAD_TAG_BYTES;
  const out = new Uint8Array(n);
  return openDetached(key, nonce, ad, sealed.subarray(0, n), sealed.subarray(n), out) ? out : null;
}
