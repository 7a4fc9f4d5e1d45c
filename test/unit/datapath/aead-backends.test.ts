// The addon's two AEAD backends — libsodium (native/pilot-datapath.node when libsodium-dev is installed) and
// OpenSSL EVP from the node process (native/pilot-datapath-evp.node, built in CI by native/build.mjs) — seal
// byte-identical packets, open each other's, and refuse forged ones packet by packet. Skipped with one line
// when the OpenSSL variant was not built.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rng, seedFromEnv } from '../../../src/core/index.js';
import type { NativeBinding } from '../../../native/index.js';

const require = createRequire(import.meta.url);
const nativeDir = fileURLToPath(new URL('../../../../native/', import.meta.url));
const findAddon = (name: string): string | null => {
  for (const dir of [nativeDir, fileURLToPath(new URL('../../../native/', import.meta.url))]) if (existsSync(dir + name)) return dir + name;
  return null;
};
const evpPath = findAddon('pilot-datapath-evp.node');
const mainPath = findAddon('pilot-datapath.node');
const skip = evpPath === null || mainPath === null ? 'native/pilot-datapath-evp.node not built (CI or PILOT_NATIVE_BOTH=1 npm run build:native builds it)' : false;

const seed = seedFromEnv();
const ALGS = [
  [1, 'chacha20-poly1305'],
  [2, 'aes-256-gcm'],
] as const;

test('native AEAD backends: OpenSSL EVP and libsodium agree byte for byte', { skip }, () => {
  const evp = require(evpPath!) as NativeBinding;
  const main = require(mainPath!) as NativeBinding;
  assert.equal(evp.aeadBackend(), 'openssl-evp');
  const rng = new Rng(seed);
  const bytes = (k: number): Uint8Array => {
    const b = new Uint8Array(k);
    rng.fill(b);
    return b;
  };
  for (const [alg, name] of ALGS) {
    if (!main.aeadAvailable(alg) || !evp.aeadAvailable(alg)) continue;
    const key = bytes(32);
    const n = 48;
    const stride = 1500;
    const plain = Buffer.from(bytes(n * stride));
    const meta = new Uint32Array(n * 4);
    for (let i = 0; i < n; i++) {
      meta[i * 4] = i * stride;
      meta[i * 4 + 1] = 32 + ((i * 97) % (stride - 32)); // 16-byte header, 0..1452 bytes of body, tag
    }
    const a = evp.aeadCreate(alg, key, 16, 16, 8, 8);
    const b = main.aeadCreate(alg, key, 16, 16, 8, 8);
    assert.equal(typeof a, 'object', `${name}: evp create`);
    assert.equal(typeof b, 'object', `${name}: main create`);
    if (typeof a === 'number' || typeof b === 'number') return;
    const byEvp = Buffer.from(plain);
    const byMain = Buffer.from(plain);
    assert.equal(evp.aeadSeal(a, byEvp, meta, n), n);
    assert.equal(main.aeadSeal(b, byMain, meta, n), n);
    assert.ok(byEvp.equals(byMain), `${name}: same ciphertext and tags`);

    // each opens the other's, in place, back to the plaintext
    const status = new Uint8Array(n);
    const x = Buffer.from(byEvp);
    const y = Buffer.from(byMain);
    assert.equal(main.aeadOpen(b, x, meta, n, status), n, `${name}: libsodium opens OpenSSL's`);
    assert.equal(evp.aeadOpen(a, y, meta, n, status), n, `${name}: OpenSSL opens libsodium's`);
    for (let i = 0; i < n; i++) {
      const off = meta[i * 4]!;
      const len = meta[i * 4 + 1]!;
      assert.ok(x.subarray(off, off + len - 16).equals(plain.subarray(off, off + len - 16)), `${name}: packet ${i} round trip`);
      assert.ok(y.subarray(off, off + len - 16).equals(plain.subarray(off, off + len - 16)));
    }

    // forged header (AAD), body and tag bytes are refused per packet; the rest of the batch still opens
    const f = Buffer.from(byEvp);
    const forged = [3, 10, 41];
    f[meta[3 * 4]! + 2]! ^= 0x01; // header
    f[meta[10 * 4]! + 20]! ^= 0x80; // body
    f[meta[41 * 4]! + meta[41 * 4 + 1]! - 1]! ^= 0x01; // tag
    assert.equal(evp.aeadOpen(a, f, meta, n, status), n - forged.length, `${name}: forged packets refused`);
    for (const i of forged) assert.equal(status[i], 0);
    evp.aeadDestroy(a);
    main.aeadDestroy(b);
    assert.ok(evp.aeadSeal(a, byEvp, meta, n) < 0, 'a destroyed context refuses to seal');
  }
});
