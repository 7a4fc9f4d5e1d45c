// Ed25519 node identity. The secret key is libsodium's 64-byte form (seed ‖ public key), the same bytes Go's
// ed25519.PrivateKey holds, so the original's identity files load unchanged. No I/O here (src/node/identity-store.ts persists it).
import sodium from 'sodium-native';
import { err, ok, type Result } from '../core/index.js';

export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SECRET_KEY_BYTES = 64;
export const ED25519_SEED_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;
export const X25519_KEY_BYTES = 32;

export interface Identity {
  readonly publicKey: Uint8Array;
  /** seed ‖ publicKey (64 bytes). Never log it. */
  readonly secretKey: Uint8Array;
}

/** A fresh identity from libsodium's CSPRNG. */
export function generateIdentity(): Identity {
  const publicKey = new Uint8Array(ED25519_PUBLIC_KEY_BYTES);
  const secretKey = new Uint8Array(ED25519_SECRET_KEY_BYTES);
  sodium.crypto_sign_keypair(publicKey, secretKey);
  return { publicKey, secretKey };
}

/** Deterministic identity from a 32-byte seed (tests, key derivation). Throws on a wrong-size seed (a bug). */
export function identityFromSeed(seed: Uint8Array): Identity {
  if (seed.length !== ED25519_SEED_BYTES) throw new RangeError(`seed must be ${ED25519_SEED_BYTES} bytes`);
  const publicKey = new Uint8Array(ED25519_PUBLIC_KEY_BYTES);
  const secretKey = new Uint8Array(ED25519_SECRET_KEY_BYTES);
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed);
  return { publicKey, secretKey };
}

/** Identity from the 64-byte secret key; checks the embedded public key matches the seed. */
export function identityFromSecretKey(secretKey: Uint8Array): Result<Identity> {
  if (secretKey.length !== ED25519_SECRET_KEY_BYTES) {
    return err('invalid_argument', `Ed25519 secret key must be ${ED25519_SECRET_KEY_BYTES} bytes`, {
      detail: { length: secretKey.length },
    });
  }
  const derived = identityFromSeed(secretKey.subarray(0, ED25519_SEED_BYTES));
  if (!sodium.sodium_memcmp(derived.secretKey, secretKey)) {
    return err('invalid_argument', 'Ed25519 secret key is inconsistent: its public half does not match its seed');
  }
  return ok(derived);
}

/** Detached Ed25519 signature (64 bytes). */
export function sign(identity: Identity, msg: Uint8Array): Uint8Array {
  const sig = new Uint8Array(ED25519_SIGNATURE_BYTES);
  sodium.crypto_sign_detached(sig, msg, identity.secretKey);
  return sig;
}

/** False for a bad signature and for wrong-size inputs; never throws. */
export function verify(publicKey: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (publicKey.length !== ED25519_PUBLIC_KEY_BYTES || sig.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return sodium.crypto_sign_verify_detached(sig, msg, publicKey);
  } catch {
    return false;
  }
}

/** Standard base64 with padding (what Go's base64.StdEncoding writes). */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64; null for anything else (Buffer.from alone silently skips bad characters). */
export function fromBase64(text: string): Uint8Array | null {
  if (typeof text !== 'string' || !BASE64_RE.test(text)) return null;
  const buf = Buffer.from(text, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Ed25519 public key → X25519 public key. Error for bytes that are not a valid curve point. */
export function ed25519PublicToX25519(publicKey: Uint8Array): Result<Uint8Array> {
  if (publicKey.length !== ED25519_PUBLIC_KEY_BYTES) {
    return err('invalid_argument', 'Ed25519 public key must be 32 bytes', { detail: { length: publicKey.length } });
  }
  const out = new Uint8Array(X25519_KEY_BYTES);
  try {
    sodium.crypto_sign_ed25519_pk_to_curve25519(out, publicKey);
  } catch (cause) {
    return err('invalid_argument', 'Ed25519 public key is not a valid curve point', { cause });
  }
  return ok(out);
}

export interface X25519KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

const x25519Cache = new WeakMap<Identity, X25519KeyPair>();

/** The identity's static Noise key pair (birationally mapped), cached per Identity object. */
export function identityX25519(identity: Identity): X25519KeyPair {
  let kp = x25519Cache.get(identity);
  if (kp === undefined) {
    const publicKey = new Uint8Array(X25519_KEY_BYTES);
    const secretKey = new Uint8Array(X25519_KEY_BYTES);
    sodium.crypto_sign_ed25519_pk_to_curve25519(publicKey, identity.publicKey);
    sodium.crypto_sign_ed25519_sk_to_curve25519(secretKey, identity.secretKey);
    kp = { publicKey, secretKey };
    x25519Cache.set(identity, kp);
  }
  return kp;
}

/** JSON document of the original's identity file: {"private_key": b64(64 B), "public_key": b64(32 B)}. */
export interface IdentityFileJson {
  private_key: string;
  public_key: string;
}

export function identityToJson(identity: Identity): IdentityFileJson {
  return { private_key: toBase64(identity.secretKey), public_key: toBase64(identity.publicKey) };
}

/** Parse an identity file's text. invalid_argument for anything malformed or inconsistent; never throws. */
export function parseIdentityJson(text: string): Result<Identity> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    return err('invalid_argument', 'identity file is not valid JSON', { cause });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return err('invalid_argument', 'identity file is not a JSON object');
  }
  const { private_key: sk64, public_key: pk64 } = doc as Record<string, unknown>;
  if (typeof sk64 !== 'string' || typeof pk64 !== 'string') {
    return err('invalid_argument', 'identity file lacks string fields "private_key" and "public_key"');
  }
  const secretKey = fromBase64(sk64);
  const publicKey = fromBase64(pk64);
  if (secretKey === null || secretKey.length !== ED25519_SECRET_KEY_BYTES) {
    return err('invalid_argument', 'identity "private_key" is not base64 of 64 bytes');
  }
  if (publicKey === null || publicKey.length !== ED25519_PUBLIC_KEY_BYTES) {
    return err('invalid_argument', 'identity "public_key" is not base64 of 32 bytes');
  }
  const id = identityFromSecretKey(secretKey);
  if (!id.ok) return id;
  if (!sodium.sodium_memcmp(id.value.publicKey, publicKey)) {
    return err('invalid_argument', 'identity "public_key" does not belong to "private_key"');
  }
  return id;
}
