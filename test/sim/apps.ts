// Application behaviours for the simulated endpoints: a bulk sender that writes a buffer (or an endless
// pattern) as fast as the connection takes it, and a receiver that hashes or counts what it reads.
import { createHash, type Hash } from 'node:crypto';
import type { ConnEvent } from '../../src/transport/connection.js';
import type { SimEndpoint, SimNet } from './pair.js';

const WRITE_CHUNK = 256 * 1024;

export class BulkSender {
  offset = 0;
  isFinished = false;
  closedError: unknown = undefined;
  isPaused = false;
  /** `data` = exact bytes to send then FIN; or `endless` = repeat `data` forever. */
  constructor(
    readonly data: Uint8Array,
    readonly isEndless = false,
  ) {}

  handler = (ev: ConnEvent, ep: SimEndpoint): void => {
    if (ev.kind === 'connected' || ev.kind === 'writable') this.pump(ep);
    if (ev.kind === 'closed') this.closedError = ev.error;
  };

  pump(ep: SimEndpoint): void {
    const c = ep.conn!;
    if (this.isPaused) return;
    for (;;) {
      if (this.isEndless) {
        const off = this.offset % this.data.length;
        const n = c.write(this.data.subarray(off, Math.min(this.data.length, off + WRITE_CHUNK)));
        if (n <= 0) return;
        this.offset += n;
        continue;
      }
      if (this.offset >= this.data.length) {
        if (!this.isFinished) {
          this.isFinished = true;
          c.finish();
        }
        return;
      }
      const n = c.write(this.data.subarray(this.offset, Math.min(this.data.length, this.offset + WRITE_CHUNK)));
      if (n <= 0) return;
      this.offset += n;
    }
  }
}

export class BulkReceiver {
  readonly hash: Hash | null;
  received = 0;
  isFinished = false;
  finishedAtUs = -1;
  closedError: unknown = undefined;
  isClosed = false;
  /** While true the application does not read (to exercise a closed receive window). */
  isPaused = false;
  private readonly scratch = new Uint8Array(256 * 1024);
  /** `shouldFinishOnEof`: answer the peer's FIN with our own (a full close once both directions are done). */
  constructor(
    shouldHash: boolean,
    readonly shouldFinishOnEof = true,
  ) {
    this.hash = shouldHash ? createHash('sha256') : null;
  }

  handler = (ev: ConnEvent, ep: SimEndpoint, net: SimNet): void => {
    if (ev.kind === 'readable') this.drain(ep);
    if (ev.kind === 'finished') {
      this.isFinished = true;
      this.finishedAtUs = net.nowUs;
      if (this.shouldFinishOnEof) ep.conn!.finish();
    }
    if (ev.kind === 'closed') {
      this.isClosed = true;
      this.closedError = ev.error;
    }
  };

  drain(ep: SimEndpoint): void {
    if (this.isPaused) return;
    const c = ep.conn!;
    let n: number;
    while ((n = c.read(this.scratch)) > 0) {
      this.received += n;
      this.hash?.update(this.scratch.subarray(0, n));
    }
  }

  digest(): string {
    return this.hash!.digest('hex');
  }
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
