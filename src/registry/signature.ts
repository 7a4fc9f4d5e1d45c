// Ed25519 checks for registry requests, straight on sodium-native (src/crypto/identity.ts is written in
// parallel; this file keeps the registry independent of its timing). Loaded through createRequire so no
// ambient type declarations for sodium-native are needed.
import { createRequire } from 'node:module';

interface SodiumSign {
  crypto_sign_PUBLICKEYBYTES: number;
  crypto_sign_SECRETKEYBYTES: number;
  crypto_sign_BYTES: number;
  crypto_sign_keypair(pk: Uint8Array, sk: Uint8Array): void;
  crypto_sign_detached(sig: Uint8Array, msg: Uint8Array, sk: Uint8Array): void;
  crypto_sign_verify_detached(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): boolean;
}

const sodium = createRequire(import.meta.url)('sodium-native') as SodiumSign;

export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;

const BASE64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64 (padding required), as Go's base64.StdEncoding; null otherwise. */
export function decodeBase64Strict(text: string): Uint8Array | null {
  if (typeof text !== 'string' || !BASE64_STD.test(text)) return null;
  const buf = Buffer.from(text, 'base64');
  // Non-canonical trailing bits decode silently in Node; re-encoding catches them.
  if (buf.toString('base64') !== text) return null;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** A 32-byte Ed25519 public key from base64, or null (crypto.DecodePublicKey of the original). */
export function decodePublicKey(text: string): Uint8Array | null {
  const b = decodeBase64Strict(text);
  return b && b.length === ED25519_PUBLIC_KEY_BYTES ? b : null;
}

/** Verify a detached Ed25519 signature over an ASCII challenge. Never throws. */
export function verifyChallenge(publicKey: Uint8Array, challengeText: string, signatureB64: string): boolean {
  const sig = decodeBase64Strict(signatureB64);
  if (!sig || sig.length !== ED25519_SIGNATURE_BYTES || publicKey.length !== ED25519_PUBLIC_KEY_BYTES) return false;
  try {
    return sodium.crypto_sign_verify_detached(sig, Buffer.from(challengeText, 'utf8'), publicKey);
  } catch {
    return false;
  }
}

/** A fresh key pair (tests and tools). secretKey is the 64-byte libsodium/Go form. */
export function generateSigningKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const publicKey = new Uint8Array(sodium.crypto_sign_PUBLICKEYBYTES);
  const secretKey = new Uint8Array(sodium.crypto_sign_SECRETKEYBYTES);
  sodium.crypto_sign_keypair(publicKey, secretKey);
  return { publicKey, secretKey };
}

/** Detached signature with a 64-byte secret key (tests and tools; the daemon signs with its own identity). */
export function signDetached(secretKey: Uint8Array, msg: Uint8Array): Uint8Array {
  const sig = new Uint8Array(sodium.crypto_sign_BYTES);
  sodium.crypto_sign_detached(sig, msg, secretKey);
  return sig;
}
