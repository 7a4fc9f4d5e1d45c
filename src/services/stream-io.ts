// Small Result-returning helpers over a PilotStream (a Node Duplex). Every service reads through
// StreamReader and writes through writeChunk, so a peer that resets, stalls or lies about lengths
// turns into a PilotError value on that one connection, never an exception or an unhandled 'error'.
import type { Duplex, Readable } from 'node:stream';
import { err, ok, type Result } from '../core/result.js';
import type { Logger } from '../core/logger.js';

/** Attach the one 'error' listener every stream needs (an RST is emitted as 'error' by PilotDuplex). */
export function guardStream(stream: Duplex, logger?: Logger, context?: string): void {
  stream.on('error', (e: unknown) => {
    logger?.debug({ err: messageOf(e), context }, 'stream error');
  });
}

export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  return Buffer.alloc(0);
}

/**
 * Pull-based reader: buffers only what the caller asked for (plus one transport chunk), so memory per
 * connection is bounded by the largest read the caller allows.
 */
export class StreamReader {
  private readonly iter: AsyncIterator<unknown>;
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private isEnded = false;
  private failure: string | null = null;

  constructor(stream: Readable) {
    // destroyOnReturn:false — the default iterator destroys the stream when the peer's FIN arrives,
    // which would reset our still-open sending half (PilotDuplex maps destroy to RST).
    this.iter = stream.iterator({ destroyOnReturn: false });
  }

  /** Bytes already received but not yet consumed. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  private async fill(): Promise<boolean> {
    if (this.isEnded || this.failure !== null) return false;
    try {
      const r = await this.iter.next();
      if (r.done) {
        this.isEnded = true;
        return false;
      }
      const b = toBuffer(r.value);
      if (b.length > 0) {
        this.chunks.push(b);
        this.bufferedBytes += b.length;
      }
      return true;
    } catch (e) {
      this.failure = messageOf(e);
      return false;
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      this.bufferedBytes -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.bufferedBytes -= n;
    return out;
  }

  private endError<T>(wanted: number): Result<T> {
    if (this.failure !== null) return err('connection_failed', `stream failed: ${this.failure}`);
    return err('connection_failed', `stream ended early (${this.bufferedBytes} of ${wanted} bytes)`, {
      detail: { truncated: true },
    });
  }

  /**
   * Exactly `n` bytes. ok(null) when the stream ended cleanly before the first byte (a frame boundary);
   * connection_failed when it ended or failed mid-way. Callers cap `n` before calling.
   */
  async readExact(n: number): Promise<Result<Buffer | null>> {
    while (this.bufferedBytes < n) {
      if (!(await this.fill())) {
        if (this.bufferedBytes === 0 && this.failure === null) return ok(null);
        return this.endError(n);
      }
    }
    return ok(this.take(n));
  }

  /** Exactly `n` bytes; a clean end before them is also an error. */
  async readExactStrict(n: number): Promise<Result<Buffer>> {
    const r = await this.readExact(n);
    if (!r.ok) return r;
    if (r.value === null) return this.endError(n);
    return ok(r.value);
  }

  /** Up to `maxBytes` (at least 1) as they arrive; ok(null) on a clean end. */
  async readSome(maxBytes: number): Promise<Result<Buffer | null>> {
    if (this.bufferedBytes === 0 && !(await this.fill())) {
      if (this.failure !== null) return err('connection_failed', `stream failed: ${this.failure}`);
      return ok(null);
    }
    return ok(this.take(Math.min(maxBytes, this.bufferedBytes)));
  }
}

/** Write one chunk, waiting for 'drain' when the stream pushes back. */
export function writeChunk(stream: Duplex, chunk: Uint8Array): Promise<Result<void>> {
  if (stream.destroyed || stream.writableEnded) {
    return Promise.resolve(err('connection_failed', 'stream closed'));
  }
  let isAccepted: boolean;
  try {
    isAccepted = stream.write(chunk);
  } catch (e) {
    return Promise.resolve(err('connection_failed', `write failed: ${messageOf(e)}`, { cause: e }));
  }
  if (isAccepted) return Promise.resolve(ok());
  return new Promise((resolve) => {
    const cleanup = (): void => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      stream.off('error', onError);
    };
    const onDrain = (): void => {
      cleanup();
      resolve(ok());
    };
    const onClose = (): void => {
      cleanup();
      resolve(err('connection_failed', 'stream closed while writing'));
    };
    const onError = (e: unknown): void => {
      cleanup();
      resolve(err('connection_failed', `write failed: ${messageOf(e)}`, { cause: e }));
    };
    stream.on('drain', onDrain);
    stream.on('close', onClose);
    stream.on('error', onError);
  });
}

/** Half-close (FIN) after queued data, drop whatever the peer still sends, and force-close if it lingers. */
export function closeStream(stream: Duplex, lingerMs = 5000): void {
  if (stream.destroyed) return;
  if (!stream.writableEnded) stream.end();
  stream.resume();
  const t = setTimeout(() => stream.destroy(), lingerMs);
  t.unref();
  stream.once('close', () => clearTimeout(t));
}

/** Wait for the stream to finish writing (all data handed to the transport) or to close. */
export function endStream(stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableFinished) return resolve();
    const done = (): void => {
      stream.off('finish', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('finish', done);
    stream.on('close', done);
    stream.on('error', done);
    if (!stream.writableEnded) stream.end();
  });
}

/**
 * Race `p` against a timer; on timeout returns a `timeout` error and calls onTimeout (typically to
 * destroy the stream, which also settles `p`). timeoutMs <= 0 or Infinity means no timer.
 */
export async function withTimeout<T>(
  p: Promise<Result<T>>,
  timeoutMs: number,
  what: string,
  onTimeout?: () => void,
): Promise<Result<T>> {
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) return p;
  let timer: NodeJS.Timeout | undefined;
  const timed = new Promise<Result<T>>((resolve) => {
    timer = setTimeout(() => {
      onTimeout?.();
      resolve(err('timeout', `${what}: no response within ${timeoutMs} ms`, { detail: { timeout_ms: timeoutMs } }));
    }, timeoutMs);
  });
  try {
    return await Promise.race([p, timed]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
