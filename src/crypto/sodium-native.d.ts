// Ambient types for the parts of sodium-native v5 (CommonJS, ships no .d.ts) that src/crypto uses.
// Only function declarations: if another folder declares the module too, the declarations merge as overloads.
// The JS wrapper throws on wrong sizes or failed verification; callers in src/crypto check sizes first and
// catch where a throw means "not authentic".
declare module 'sodium-native' {
  type Bytes = Uint8Array;
  export function randombytes_buf(buf: Bytes): void;
  export function sodium_memcmp(a: Bytes, b: Bytes): boolean;
  export function sodium_memzero(buf: Bytes): void;
  export function crypto_sign_keypair(pk: Bytes, sk: Bytes): void;
  export function crypto_sign_seed_keypair(pk: Bytes, sk: Bytes, seed: Bytes): void;
  export function crypto_sign_detached(sig: Bytes, m: Bytes, sk: Bytes): void;
  export function crypto_sign_verify_detached(sig: Bytes, m: Bytes, pk: Bytes): boolean;
  export function crypto_sign_ed25519_sk_to_pk(pk: Bytes, sk: Bytes): void;
  export function crypto_sign_ed25519_pk_to_curve25519(x25519pk: Bytes, ed25519pk: Bytes): void;
  export function crypto_sign_ed25519_sk_to_curve25519(x25519sk: Bytes, ed25519sk: Bytes): void;
  export function crypto_scalarmult_base(q: Bytes, n: Bytes): void;
  export function crypto_scalarmult(q: Bytes, n: Bytes, p: Bytes): void;
  export function crypto_generichash(out: Bytes, input: Bytes, key?: Bytes): void;
  export function crypto_generichash_init(state: Bytes, key: Bytes | null, outputLength: number): void;
  export function crypto_generichash_update(state: Bytes, input: Bytes): void;
  export function crypto_generichash_final(state: Bytes, out: Bytes): void;
  export function crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c: Bytes,
    mac: Bytes,
    m: Bytes,
    ad: Bytes | null,
    nsec: null,
    npub: Bytes,
    k: Bytes,
  ): number;
  export function crypto_aead_chacha20poly1305_ietf_decrypt_detached(
    m: Bytes,
    nsec: null,
    c: Bytes,
    mac: Bytes,
    ad: Bytes | null,
    npub: Bytes,
    k: Bytes,
  ): void;
  /** c = ciphertext ‖ tag (m.length + 16 bytes). Returns bytes written. */
  export function crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: Bytes,
    m: Bytes,
    ad: Bytes | null,
    nsec: null,
    npub: Bytes,
    k: Bytes,
  ): number;
  /** Throws when the tag does not verify. Returns bytes written. */
  export function crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: Bytes,
    nsec: null,
    c: Bytes,
    ad: Bytes | null,
    npub: Bytes,
    k: Bytes,
  ): number;
}
