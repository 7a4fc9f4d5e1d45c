// Reading replies from streams and stdin with time limits; expected failures come back as values.
import type { Readable } from 'node:stream';
import { err, ok, type Result } from '../core/result.js';
import { PilotException } from '../core/errors.js';

/** After the first reply bytes, this much silence ends the read for peers that never send FIN. */
export const REPLY_IDLE_MS = 250;
/** Replies are for humans and agents, not bulk transfer: cap what we buffer. */
export const MAX_REPLY_BYTES = 16 * 1024 * 1024;

/**
 * Read a reply until EOF, until `idleMs` of silence after some data, or until `timeoutMs` (→ `timeout` if
 * nothing arrived). A peer reset → `connection_failed`.
 */
export function readReply(stream: Readable, timeoutMs: number, idleMs = REPLY_IDLE_MS): Promise<Result<Buffer>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    const finish = (r: Result<Buffer>): void => {
      clearTimeout(deadline);
      clearTimeout(idleTimer);
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
      stream.removeListener('close', onClose);
      resolve(r);
    };
    const deadline = setTimeout(() => {
      if (bytes > 0) finish(ok(Buffer.concat(chunks)));
      else finish(err('timeout', `no response within ${timeoutMs} ms`, { hint: 'increase with --timeout, or check that the peer listens on that port' }));
    }, timeoutMs);
    const onData = (c: Buffer): void => {
      chunks.push(c);
      bytes += c.length;
      if (bytes >= MAX_REPLY_BYTES) return finish(ok(Buffer.concat(chunks)));
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => finish(ok(Buffer.concat(chunks))), idleMs);
    };
    const onEnd = (): void => finish(ok(Buffer.concat(chunks)));
    const onError = (e: Error): void => {
      if (bytes > 0) return finish(ok(Buffer.concat(chunks)));
      const pe = e instanceof PilotException ? e.error : null;
      finish(err(pe?.code ?? 'connection_failed', pe?.message ?? `stream failed: ${e.message}`));
    };
    const onClose = (): void => finish(ok(Buffer.concat(chunks)));
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
  });
}

/** All of stdin (pipe mode); capped so a runaway producer can't exhaust memory. */
export function readAllStdin(stdin: Readable, maxBytes = 64 * 1024 * 1024): Promise<Result<Buffer>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    stdin.on('data', (c: Buffer | string) => {
      const b = typeof c === 'string' ? Buffer.from(c) : c;
      bytes += b.length;
      if (bytes > maxBytes) {
        stdin.destroy();
        resolve(err('invalid_argument', `stdin is larger than ${maxBytes} bytes`, { hint: 'use send-file for large data' }));
        return;
      }
      chunks.push(b);
    });
    stdin.once('end', () => resolve(ok(Buffer.concat(chunks))));
    stdin.once('error', (e) => resolve(err('internal', `reading stdin: ${e.message}`)));
  });
}

/** Resolve after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
