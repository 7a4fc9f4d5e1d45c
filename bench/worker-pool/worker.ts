// Piscina worker for bench/worker-pool.bench.ts: the three CPU-bound jobs the issue asks about, each written the
// way the main-thread code path does it (same libraries, same layout), so the bench compares like with like.
//   seal       — ChaCha20-Poly1305 over a batch of PND1 frames laid out in one transferred buffer (NoiseSession.sealAt)
//   sha256File — streaming SHA-256 of a file in 64 KiB reads (sendFile's loop in src/services/data-exchange.ts)
//   verify     — Ed25519 checks of registry challenges (src/registry/signature.ts verifyChallenge)
// No sockets, no timers: CPU work in, result (and the moved buffer) out.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { move } from 'piscina';
import { sealDetached, writeNonce } from '../../src/crypto/aead.js';
import { verifyChallenge } from '../../src/registry/signature.js';
import { NOISE_DATA_HEADER_BYTES, NOISE_DATA_OVERHEAD_BYTES, writeNoiseDataHeader } from '../../src/wire/noise-frame.js';

export interface SealTask {
  /** The batch buffer: packet i's plaintext at [i * slot + 16, + plainBytes); moved in and moved back. */
  buf: ArrayBuffer;
  key: Uint8Array;
  remoteIndex: number;
  /** Counter of the first packet; packet i gets firstCounter + i (assigned by the main thread). */
  firstCounter: number;
  count: number;
  slotBytes: number;
  plainBytes: number;
}

const nonce = new Uint8Array(12);

export function seal(t: SealTask): ArrayBuffer {
  const buf = new Uint8Array(t.buf);
  const n = t.plainBytes;
  for (let i = 0; i < t.count; i++) {
    const off = i * t.slotBytes;
    const counter = t.firstCounter + i;
    writeNoiseDataHeader(buf, off, t.remoteIndex, counter);
    writeNonce(nonce, counter);
    const body = buf.subarray(off + NOISE_DATA_HEADER_BYTES, off + NOISE_DATA_HEADER_BYTES + n);
    sealDetached(t.key, nonce, buf.subarray(off, off + NOISE_DATA_HEADER_BYTES), body, body, buf.subarray(off + NOISE_DATA_HEADER_BYTES + n, off + NOISE_DATA_OVERHEAD_BYTES + n));
  }
  return move(t.buf) as ArrayBuffer;
}

/** The round trip alone: the buffer goes in and comes back untouched (prices piscina's per-task cost). */
export function echo(t: SealTask): ArrayBuffer {
  return move(t.buf) as ArrayBuffer;
}

/** Same as seal() but the buffer arrives and leaves by structured-clone copy (to price the copy). */
export function sealCopy(t: SealTask): ArrayBuffer {
  seal(t);
  return t.buf;
}

export async function sha256File(t: { path: string; chunkBytes: number }): Promise<string> {
  const fh = await open(t.path, 'r');
  try {
    const hash = createHash('sha256');
    const size = (await fh.stat()).size;
    let at = 0;
    while (at < size) {
      const buf = Buffer.allocUnsafe(Math.min(t.chunkBytes, size - at));
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead === 0) break;
      hash.update(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

export interface VerifyTask {
  /** 32-byte public keys back to back. */
  publicKeys: Uint8Array;
  challenges: string[];
  signatures: string[];
}

/** Number of valid signatures. */
export function verify(t: VerifyTask): number {
  let good = 0;
  for (let i = 0; i < t.challenges.length; i++) {
    if (verifyChallenge(t.publicKeys.subarray(i * 32, i * 32 + 32), t.challenges[i]!, t.signatures[i]!)) good++;
  }
  return good;
}
