import test from 'node:test';
import assert from 'node:assert/strict';
import { checkBatch, createVerifyPool, type VerifyBatchTask } from '../../../src/datapath/worker-pool.js';
import { generateSigningKeyPair, signDetached } from '../../../src/registry/signature.js';

function signed(n: number): Array<{ pk: Uint8Array; msg: Uint8Array; sig: Uint8Array }> {
  return Array.from({ length: n }, (_, i) => {
    const kp = generateSigningKeyPair();
    const msg = Buffer.from(`register:${i}:1764000000:${'ab'.repeat(i % 7)}`, 'utf8');
    return { pk: kp.publicKey, msg, sig: signDetached(kp.secretKey, msg) };
  });
}

test('checkBatch answers per entry from one packed buffer', () => {
  const items = signed(3);
  const msgBytes = items.reduce((a, e) => a + e.msg.length, 0);
  const n = items.length;
  const ab = new ArrayBuffer(n * (32 + 64 + 4) + msgBytes);
  const buf = new Uint8Array(ab);
  const view = new DataView(ab);
  let at = 0;
  items.forEach((e, i) => {
    buf.set(e.pk, i * 32);
    buf.set(i === 1 ? new Uint8Array(64) : e.sig, n * 32 + i * 64); // entry 1 forged
    buf.set(e.msg, n * 100 + at);
    at += e.msg.length;
    view.setUint32(n * 96 + i * 4, at, true);
  });
  const task: VerifyBatchTask = { buf: ab, count: n };
  assert.deepEqual([...checkBatch(task)], [1, 0, 1]);
});

test('VerifyPool: coalesced calls in workers match sodium, forgeries and bad sizes are false', async () => {
  const pool = createVerifyPool({ threads: 1, maxBatch: 16 });
  try {
    const items = signed(40); // > maxBatch: several tasks
    const answers = await Promise.all(
      items.map((e, i) => {
        if (i % 5 === 3) return pool.verify(e.pk, Buffer.from('tampered'), e.sig);
        if (i % 5 === 4) return pool.verify(e.pk.subarray(0, 31), e.msg, e.sig);
        return pool.verify(e.pk, e.msg, e.sig);
      }),
    );
    assert.deepEqual(
      answers,
      items.map((_, i) => i % 5 < 3),
    );
    assert.equal(pool.pending, 0);
  } finally {
    await pool.destroy();
  }
});

test('VerifyPool: after destroy, verify still answers (on the calling thread)', async () => {
  const pool = createVerifyPool({ threads: 1 });
  const [e] = signed(1);
  const inFlight = pool.verify(e!.pk, e!.msg, e!.sig);
  await pool.destroy();
  assert.equal(await inFlight, true);
  assert.equal(await pool.verify(e!.pk, e!.msg, e!.sig), true);
  assert.equal(await pool.verify(e!.pk, e!.msg, new Uint8Array(64)), false);
});
