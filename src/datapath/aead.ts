// Batch AEAD: native (libsodium, one call per batch) when the addon loads, else a JS fallback with the
// same results byte for byte — sodium-native for ChaCha20-Poly1305, node:crypto for AES-256-GCM
// (sodium-native ships no AES-GCM).
import { createCipheriv, createDecipheriv } from 'node:crypto';
import sodium from 'sodium-native';
import { err, ok, type Result } from '../core/index.js';
import { NOISE_DATA_HEADER_BYTES } from '../wire/noise-frame.js';
import { createNativeAead } from './native.js';
import { META_STRIDE, NOISE_DATA_LAYOUT, type AeadAlgorithm, type AeadBatch, type AeadLayout } from './types.js';

export const AEAD_TAG_BYTES = 16;
export const AEAD_KEY_BYTES = 32;

export { NOISE_DATA_LAYOUT };

export interface AeadBatchOptions {
  algorithm: AeadAlgorithm;
  key: Uint8Array;
  layout?: AeadLayout;
  /** Default true; PILOT_NATIVE=0 forces the JS implementation. */
  preferNative?: boolean;
}

function validLayout(l: AeadLayout): boolean {
  const ints = [l.headerBytes, l.aadBytes, l.nonceOffset].every((n) => Number.isInteger(n) && n >= 0);
  return ints && (l.nonceBytes === 8 || l.nonceBytes === 12) && l.aadBytes <= l.headerBytes && l.nonceOffset + l.nonceBytes <= l.headerBytes;
}

/** One AEAD context per key (session direction). invalid_argument on a bad key/layout. No I/O. */
export async function createAeadBatch(opts: AeadBatchOptions): Promise<Result<AeadBatch>> {
  const layout = opts.layout ?? NOISE_DATA_LAYOUT;
  if (opts.key.length !== AEAD_KEY_BYTES) return err('invalid_argument', `AEAD key must be ${AEAD_KEY_BYTES} bytes, got ${opts.key.length}`);
  if (!validLayout(layout)) return err('invalid_argument', 'bad AEAD layout', { detail: { ...layout } });
  if (opts.algorithm !== 'chacha20-poly1305' && opts.algorithm !== 'aes-256-gcm') return err('invalid_argument', `unknown AEAD ${String(opts.algorithm)}`);
  if ((opts.preferNative ?? true) && process.env.PILOT_NATIVE !== '0') {
    const n = await createNativeAead(opts.algorithm, opts.key, layout);
    if (n.ok) return n;
  }
  return ok(new JsAead(opts.algorithm, opts.key, layout));
}

/** Create the JS implementation directly (tests, benchmarks). */
export function createJsAead(algorithm: AeadAlgorithm, key: Uint8Array, layout: AeadLayout = NOISE_DATA_LAYOUT): AeadBatch {
  return new JsAead(algorithm, key, layout);
}

class JsAead implements AeadBatch {
  readonly kind = 'js' as const;
  readonly layout: Readonly<AeadLayout>;
  private readonly key: Buffer;
  private readonly nonce = Buffer.alloc(12);
  private isDestroyed = false;

  constructor(
    readonly algorithm: AeadAlgorithm,
    key: Uint8Array,
    layout: AeadLayout,
  ) {
    this.key = Buffer.from(key); // own copy: destroy() wipes it
    this.layout = { ...layout };
  }

  private setNonce(buf: Uint8Array, off: number): void {
    const { nonceOffset, nonceBytes } = this.layout;
    this.nonce.fill(0, 0, 12 - nonceBytes);
    this.nonce.set(buf.subarray(off + nonceOffset, off + nonceOffset + nonceBytes), 12 - nonceBytes);
  }

  private fits(buf: Uint8Array, off: number, len: number): boolean {
    return off + len <= buf.length && len >= this.layout.headerBytes + AEAD_TAG_BYTES;
  }

  seal(buf: Uint8Array, meta: Uint32Array, count: number): number {
    if (this.isDestroyed || meta.length < count * META_STRIDE) return -1;
    for (let i = 0; i < count; i++) if (!this.fits(buf, meta[i * META_STRIDE]!, meta[i * META_STRIDE + 1]!)) return -1;
    const { headerBytes, aadBytes } = this.layout;
    for (let i = 0; i < count; i++) {
      const off = meta[i * META_STRIDE]!;
      const end = off + meta[i * META_STRIDE + 1]!;
      this.setNonce(buf, off);
      const body = buf.subarray(off + headerBytes, end - AEAD_TAG_BYTES);
      const tag = buf.subarray(end - AEAD_TAG_BYTES, end);
      const aad = buf.subarray(off, off + aadBytes);
      if (this.algorithm === 'chacha20-poly1305') {
        sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(body, tag, body, aad, null, this.nonce, this.key);
      } else {
        const c = createCipheriv('aes-256-gcm', this.key, this.nonce);
        c.setAAD(aad);
        const out = c.update(body);
        c.final();
        body.set(out);
        tag.set(c.getAuthTag());
      }
    }
    return count;
  }

  open(buf: Uint8Array, meta: Uint32Array, count: number, status: Uint8Array): number {
    if (this.isDestroyed || meta.length < count * META_STRIDE || status.length < count) return 0;
    const { headerBytes, aadBytes } = this.layout;
    let good = 0;
    for (let i = 0; i < count; i++) {
      const off = meta[i * META_STRIDE]!;
      const len = meta[i * META_STRIDE + 1]!;
      let isAuthentic = false;
      if (this.fits(buf, off, len)) {
        const end = off + len;
        this.setNonce(buf, off);
        const body = buf.subarray(off + headerBytes, end - AEAD_TAG_BYTES);
        const tag = buf.subarray(end - AEAD_TAG_BYTES, end);
        const aad = buf.subarray(off, off + aadBytes);
        isAuthentic = this.algorithm === 'chacha20-poly1305' ? this.openChacha(body, tag, aad) : this.openGcm(body, tag, aad);
      }
      status[i] = isAuthentic ? 1 : 0;
      if (isAuthentic) good++;
    }
    return good;
  }

  private openChacha(body: Uint8Array, tag: Uint8Array, aad: Uint8Array): boolean {
    try {
      // sodium-native throws when verification fails: that is the "forged" answer here.
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(body, null, body, tag, aad, this.nonce, this.key);
      return true;
    } catch {
      return false;
    }
  }

  private openGcm(body: Uint8Array, tag: Uint8Array, aad: Uint8Array): boolean {
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, this.nonce);
      d.setAAD(aad);
      d.setAuthTag(tag);
      const out = d.update(body);
      d.final(); // throws on a bad tag, before we touch `body`
      body.set(out);
      return true;
    } catch {
      return false;
    }
  }

  destroy(): void {
    sodium.sodium_memzero(this.key);
    this.isDestroyed = true;
  }
}
