// Batch AEAD, native and JS, against sodium-native / node:crypto reference outputs.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import sodium from 'sodium-native';
import { Rng, seedFromEnv } from '../../../src/core/index.js';
import {
  createAeadBatch,
  createJsAead,
  loadNative,
  NOISE_DATA_LAYOUT,
  PacketBatch,
  type AeadAlgorithm,
  type AeadBatch,
  type AeadLayout,
} from '../../../src/datapath/index.js';

const seed = seedFromEnv();
test.after(() => console.log(`# aead seed PILOT_SEED=${seed}`));
const native = await loadNative();
const nativeSkip: string | false =
  process.env.PILOT_NATIVE === '0'
    ? 'PILOT_NATIVE=0 forces the JS datapath'
    : native.ok
      ? false
      : `${native.error.message}; skipping the native run`;
const TAG = 16;
/** v0.5 PILS-like: magic(4) | node(4) | nonce(12) | ct | tag, no AAD. */
const EXPLICIT_NONCE_LAYOUT: AeadLayout = { headerBytes: 20, aadBytes: 0, nonceOffset: 8, nonceBytes: 12 };

function nonceOf(pkt: Uint8Array, l: AeadLayout): Buffer {
  const n = Buffer.alloc(12);
  n.set(pkt.subarray(l.nonceOffset, l.nonceOffset + l.nonceBytes), 12 - l.nonceBytes);
  return n;
}

/** Reference seal of one plaintext packet (header | body | tag space), returned as a new buffer. */
function referenceSeal(alg: AeadAlgorithm, key: Uint8Array, pkt: Uint8Array, l: AeadLayout): Buffer {
  const out = Buffer.from(pkt);
  const body = out.subarray(l.headerBytes, out.length - TAG);
  const tag = out.subarray(out.length - TAG);
  const aad = out.subarray(0, l.aadBytes);
  const nonce = nonceOf(pkt, l);
  if (alg === 'chacha20-poly1305') {
    const c = Buffer.alloc(body.length);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(c, tag, body, aad, null, nonce, key);
    body.set(c);
  } else {
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    body.set(c.update(body));
    c.final();
    tag.set(c.getAuthTag());
  }
  return out;
}

/** n packets with random headers (counter = i) and bodies of random sizes. */
function makeBatch(rng: Rng, n: number, l: AeadLayout): { batch: PacketBatch; plain: Buffer[] } {
  const batch = new PacketBatch(n, n * 1500);
  const plain: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const len = l.headerBytes + rng.int(1420) + TAG;
    const off = batch.reserve(len, 0x7f000001, 9);
    const p = batch.buf.subarray(off, off + len);
    rng.fill(p);
    p.fill(0, len - TAG);
    if (l.nonceBytes === 8) new DataView(p.buffer, p.byteOffset).setBigUint64(l.nonceOffset, BigInt(i), true);
    plain.push(Buffer.from(p));
  }
  return { batch, plain };
}

const KINDS: Array<{ kind: string; make: (alg: AeadAlgorithm, key: Uint8Array, l: AeadLayout) => Promise<AeadBatch>; skip: string | false }> = [
  { kind: 'js', make: async (alg, key, l) => createJsAead(alg, key, l), skip: false },
  {
    kind: 'native',
    make: async (alg, key, l) => {
      const r = await createAeadBatch({ algorithm: alg, key, layout: l });
      assert.ok(r.ok && r.value.kind === 'native', 'native AEAD expected');
      return r.value;
    },
    skip: nativeSkip,
  },
];

for (const { kind, make, skip } of KINDS) {
  for (const alg of ['chacha20-poly1305', 'aes-256-gcm'] as const) {
    for (const [lname, layout] of [['PND1', NOISE_DATA_LAYOUT], ['explicit-nonce', EXPLICIT_NONCE_LAYOUT]] as const) {
      test(`aead(${kind}) ${alg} ${lname}: seal equals reference, open round-trips, tampering detected`, { skip }, async () => {
        const rng = new Rng(seed);
        const key = new Uint8Array(32);
        rng.fill(key);
        const aead = await make(alg, key, layout);
        assert.equal(aead.algorithm, alg);
        const { batch, plain } = makeBatch(rng, 200, layout);
        assert.equal(aead.seal(batch.buf, batch.meta, batch.count), 200);
        for (let i = 0; i < batch.count; i++) {
          assert.deepEqual(Buffer.from(batch.payload(i)), referenceSeal(alg, key, plain[i]!, layout), `packet ${i}`);
        }
        const sealed = Array.from({ length: batch.count }, (_, i) => Buffer.from(batch.payload(i)));
        // Tamper with every 5th packet: body, tag, AAD (when there is one) or nonce, in turn.
        const status = new Uint8Array(batch.count);
        const tampered = new Set<number>();
        for (let i = 0; i < batch.count; i += 5) {
          const p = batch.payload(i);
          const where = [layout.headerBytes, p.length - 1, layout.aadBytes > 0 ? 0 : layout.headerBytes, layout.nonceOffset][(i / 5) % 4]!;
          p[where]! ^= 0x01;
          tampered.add(i);
        }
        const good = aead.open(batch.buf, batch.meta, batch.count, status);
        assert.equal(good, batch.count - tampered.size);
        for (let i = 0; i < batch.count; i++) {
          assert.equal(status[i], tampered.has(i) ? 0 : 1, `status ${i}`);
          if (!tampered.has(i)) {
            const p = batch.payload(i);
            assert.deepEqual(Buffer.from(p.subarray(0, p.length - TAG)), plain[i]!.subarray(0, p.length - TAG));
          }
        }
        // Re-open pristine copies of the tampered ones: they were not corrupted by the verify step.
        for (const i of tampered) {
          const one = new PacketBatch(1, 1500);
          one.push(sealed[i]!, 0, 0);
          assert.equal(aead.open(one.buf, one.meta, 1, status), 1);
        }
        aead.destroy();
      });
    }
  }

  test(`aead(${kind}): bad bounds → seal -1 and nothing changed; open marks them forged; destroy`, { skip }, async () => {
    const key = new Uint8Array(32).fill(7);
    const aead = await make('chacha20-poly1305', key, NOISE_DATA_LAYOUT);
    const b = new PacketBatch(3, 200);
    b.reserve(100, 0, 0);
    b.add(150, 100, 0, 0); // past the end
    const before = Buffer.from(b.buf);
    assert.equal(aead.seal(b.buf, b.meta, 2), -1);
    assert.deepEqual(Buffer.from(b.buf), before);
    const short = new PacketBatch(1, 64);
    short.reserve(NOISE_DATA_LAYOUT.headerBytes + TAG - 1, 0, 0);
    assert.equal(aead.seal(short.buf, short.meta, 1), -1);
    const status = new Uint8Array(2).fill(9);
    assert.equal(aead.open(b.buf, b.meta, 2, status), 0);
    assert.deepEqual([...status], [0, 0]);
    // Empty payload is fine: header + tag only.
    const empty = new PacketBatch(1, 64);
    empty.reserve(NOISE_DATA_LAYOUT.headerBytes + TAG, 0, 0);
    assert.equal(aead.seal(empty.buf, empty.meta, 1), 1);
    assert.equal(aead.open(empty.buf, empty.meta, 1, status), 1);
    aead.destroy();
    assert.equal(aead.seal(empty.buf, empty.meta, 1), -1);
  });
}

test('createAeadBatch: bad key and layout are invalid_argument; PILOT_NATIVE=0 gives js', async () => {
  const r = await createAeadBatch({ algorithm: 'chacha20-poly1305', key: new Uint8Array(31) });
  assert.equal(r.ok ? 'ok' : r.error.code, 'invalid_argument');
  const l = await createAeadBatch({
    algorithm: 'chacha20-poly1305',
    key: new Uint8Array(32),
    layout: { headerBytes: 4, aadBytes: 8, nonceOffset: 0, nonceBytes: 8 },
  });
  assert.equal(l.ok ? 'ok' : l.error.code, 'invalid_argument');
  const prev = process.env.PILOT_NATIVE;
  process.env.PILOT_NATIVE = '0';
  try {
    const j = await createAeadBatch({ algorithm: 'aes-256-gcm', key: new Uint8Array(32) });
    assert.ok(j.ok);
    assert.equal(j.value.kind, 'js');
  } finally {
    if (prev === undefined) delete process.env.PILOT_NATIVE;
    else process.env.PILOT_NATIVE = prev;
  }
});

test('native and js AEAD agree byte for byte (both algorithms)', { skip: nativeSkip }, async () => {
  const rng = new Rng(seed ^ 0x5a5a);
  for (const alg of ['chacha20-poly1305', 'aes-256-gcm'] as const) {
    const key = new Uint8Array(32);
    rng.fill(key);
    const n = await createAeadBatch({ algorithm: alg, key });
    assert.ok(n.ok && n.value.kind === 'native');
    const j = createJsAead(alg, key);
    const { batch } = makeBatch(rng, 64, NOISE_DATA_LAYOUT);
    const copy = new PacketBatch(Buffer.from(batch.buf), batch.meta);
    copy.count = batch.count;
    n.value.seal(batch.buf, batch.meta, batch.count);
    j.seal(copy.buf, copy.meta, copy.count);
    assert.deepEqual(Buffer.from(batch.buf), Buffer.from(copy.buf));
    const status = new Uint8Array(64);
    assert.equal(j.open(batch.buf, batch.meta, batch.count, status), 64); // js opens native's output
    assert.equal(n.value.open(copy.buf, copy.meta, copy.count, status), 64); // and vice versa
  }
});
