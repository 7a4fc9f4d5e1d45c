// A piscina pool for Ed25519 signature checks in bursts (the registry's register/lookup challenges). Measured in
// bench/worker-pool.bench.ts (results in bench/results/worker-pool.json): a pool pays off here and only here —
//   - batched checks (≥ ~100 per task) move ~97 % of the verify CPU off the event loop, at equal or better burst
//     throughput with 2 workers; one task per signature is 2× SLOWER than the main thread (per-task cost ≈ the
//     60 µs verify itself), so calls are coalesced: everything asked within one event-loop turn (setImmediate)
//     goes out as one task, split at maxBatch;
//   - bulk AEAD and file hashing were measured too and lost (throughput 0.6–0.97× on 2 cores, +0.5–2 ms per
//     batch of latency): they stay on the main thread.
// Buffers go to the worker by transfer (one packed ArrayBuffer per task); no handles, no sockets (STYLE §3).
// This module is also the worker script: piscina loads it and calls verifyBatch.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFileSafe } from '../core/safe-file.js';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina, move } from 'piscina';

interface SodiumVerify {
  crypto_sign_verify_detached(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): boolean;
}
const sodium = createRequire(import.meta.url)('sodium-native') as SodiumVerify;

export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;

export interface VerifyPoolOptions {
  /** Worker threads; default min(2, availableParallelism() - 1), at least 1. */
  threads?: number;
  /** Most signatures per task; default 128 (the bench's sweet spot was 125). */
  maxBatch?: number;
}

export interface VerifyPool {
  /** True iff `signature` is a valid Ed25519 signature of `message` by `publicKey`. Never rejects: malformed
   * input answers false, and a failed worker falls back to checking on the calling thread. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
  /** Signatures queued or in flight. */
  readonly pending: number;
  /** Stops the workers; later verify() calls check on the calling thread. */
  destroy(): Promise<void>;
}

/** The worker's task: n entries packed in one transferred buffer:
 * [public keys 32·n][signatures 64·n][message end offsets u32 LE ·n][messages back to back]. */
export interface VerifyBatchTask {
  buf: ArrayBuffer;
  count: number;
}

function layout(count: number): { sigAt: number; endsAt: number; msgAt: number } {
  const sigAt = count * ED25519_PUBLIC_KEY_BYTES;
  const endsAt = sigAt + count * ED25519_SIGNATURE_BYTES;
  return { sigAt, endsAt, msgAt: endsAt + count * 4 };
}

function checkOne(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): boolean {
  try {
    return sodium.crypto_sign_verify_detached(sig, msg, pk);
  } catch {
    return false;
  }
}

/** Check a packed batch on the calling thread: one result byte per entry, 1 = valid. */
export function checkBatch(task: VerifyBatchTask): Uint8Array {
  const n = task.count;
  const buf = new Uint8Array(task.buf);
  const view = new DataView(task.buf);
  const { sigAt, endsAt, msgAt } = layout(n);
  const out = new Uint8Array(n);
  let start = msgAt;
  for (let i = 0; i < n; i++) {
    const end = msgAt + view.getUint32(endsAt + i * 4, true);
    const pk = buf.subarray(i * ED25519_PUBLIC_KEY_BYTES, (i + 1) * ED25519_PUBLIC_KEY_BYTES);
    const sig = buf.subarray(sigAt + i * ED25519_SIGNATURE_BYTES, sigAt + (i + 1) * ED25519_SIGNATURE_BYTES);
    out[i] = checkOne(sig, buf.subarray(start, end), pk) ? 1 : 0;
    start = end;
  }
  return out;
}

/** Worker entry point: checkBatch, its answer moved (not copied) back. */
export function verifyBatch(task: VerifyBatchTask): ArrayBuffer {
  return move(checkBatch(task).buffer as ArrayBuffer) as ArrayBuffer;
}

/** Piscina needs a loadable .js worker. From dist/ that is this file; under tsx (tests, dev runs) Node 20 workers
 * do not inherit tsx's hooks, so they boot through a small module that registers tsx and then imports this one. */
let bootDir: string | null = null;

function workerFilename(): string {
  const self = fileURLToPath(import.meta.url);
  if (!self.endsWith('.ts')) return self;
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const src =
    `import { register } from ${JSON.stringify(tsxApi)};\nregister();\n` +
    `const m = await import(${JSON.stringify(import.meta.url)});\nexport const verifyBatch = m.verifyBatch;\n`;
  // A private directory of our own (mkdtemp: random name, 0700), never a guessable shared path: a module planted
  // at a predictable /tmp name would run as code in our worker.
  bootDir ??= mkdtempSync(join(tmpdir(), 'pilot-worker-pool-'));
  const boot = join(bootDir, 'boot.mjs');
  if (!existsSync(boot)) {
    const w = writeFileSafe(boot, src);
    if (!w.ok) throw new Error(w.error.message);
    process.once('exit', () => rmSync(bootDir!, { recursive: true, force: true }));
  }
  return boot;
}

interface Entry {
  pk: Uint8Array;
  msg: Uint8Array;
  sig: Uint8Array;
  resolve: (ok: boolean) => void;
}

export function createVerifyPool(opts: VerifyPoolOptions = {}): VerifyPool {
  const threads = Math.max(1, opts.threads ?? Math.min(2, availableParallelism() - 1));
  const maxBatch = Math.max(1, opts.maxBatch ?? 128);
  let pool: Piscina | null = new Piscina({ filename: workerFilename(), minThreads: threads, maxThreads: threads, idleTimeout: 30_000 });
  let queue: Entry[] = [];
  let isFlushScheduled = false;
  let pending = 0;

  const onMain = (batch: Entry[]): void => {
    for (const e of batch) e.resolve(checkOne(e.sig, e.msg, e.pk));
  };

  const send = (batch: Entry[]): void => {
    if (pool === null) return onMain(batch);
    const n = batch.length;
    const { sigAt, endsAt, msgAt } = layout(n);
    let msgBytes = 0;
    for (const e of batch) msgBytes += e.msg.length;
    const ab = new ArrayBuffer(msgAt + msgBytes);
    const buf = new Uint8Array(ab);
    const view = new DataView(ab);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const e = batch[i]!;
      buf.set(e.pk, i * ED25519_PUBLIC_KEY_BYTES);
      buf.set(e.sig, sigAt + i * ED25519_SIGNATURE_BYTES);
      buf.set(e.msg, msgAt + at);
      at += e.msg.length;
      view.setUint32(endsAt + i * 4, at, true);
    }
    const task: VerifyBatchTask = { buf: ab, count: n };
    (pool.run(task, { name: 'verifyBatch', transferList: [ab] }) as Promise<ArrayBuffer>).then(
      (res) => {
        const r = new Uint8Array(res);
        for (let i = 0; i < n; i++) batch[i]!.resolve(r[i] === 1);
      },
      () => onMain(batch),
    );
  };

  const flush = (): void => {
    isFlushScheduled = false;
    const q = queue;
    queue = [];
    for (let i = 0; i < q.length; i += maxBatch) send(q.slice(i, i + maxBatch));
  };

  return {
    verify(publicKey, message, signature) {
      if (publicKey.length !== ED25519_PUBLIC_KEY_BYTES || signature.length !== ED25519_SIGNATURE_BYTES) return Promise.resolve(false);
      pending++;
      return new Promise<boolean>((resolve) => {
        queue.push({
          pk: publicKey,
          msg: message,
          sig: signature,
          resolve: (ok) => {
            pending--;
            resolve(ok);
          },
        });
        if (queue.length >= maxBatch) flush();
        else if (!isFlushScheduled) {
          isFlushScheduled = true;
          setImmediate(flush);
        }
      });
    },
    get pending() {
      return pending;
    },
    async destroy() {
      const p = pool;
      pool = null;
      flush();
      if (p !== null) await p.destroy();
    },
  };
}
