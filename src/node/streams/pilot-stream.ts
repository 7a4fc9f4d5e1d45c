// Node Duplex over one transport connection. The daemon's connection table implements StreamEndpoint
// and calls the handle* methods when the sans-IO Connection reports events.
import { Duplex } from 'node:stream';
import { eventException, PilotException, pilotError, type PilotError } from '../../core/errors.js';
import type { PilotStream } from '../api.js';

export interface StreamEndpoint {
  /** Bytes accepted (flow control / send buffer); 0 means wait for handleWritable; -1 means closed. */
  write(data: Uint8Array): number;
  /** Bytes buffered in order and ready to read. */
  readableBytes(): number;
  /** Up to maxBytes buffered bytes the stream may keep (a view, no copy); null means nothing buffered now. */
  readView(maxBytes: number): Uint8Array | null;
  /** Queue FIN after all written data. */
  finish(): void;
  /** Abort with RST. */
  reset(): void;
}

const MAX_READ_CHUNK_BYTES = 1024 * 1024;

export class PilotDuplex extends Duplex implements PilotStream {
  private pendingWrite: { data: Uint8Array; cb: (e?: Error | null) => void } | null = null;
  private wantsRead = false;
  private isPeerFinished = false;

  constructor(
    private readonly endpoint: StreamEndpoint,
    readonly remoteAddr: string,
    readonly remoteNodeId: number,
    readonly remotePort: number,
    readonly localPort: number,
  ) {
    super({ allowHalfOpen: true, highWaterMark: 1024 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.pendingWrite = { data: chunk, cb };
    this.pumpWrite();
  }

  private pumpWrite(): void {
    const p = this.pendingWrite;
    if (!p) return;
    while (p.data.length > 0) {
      const n = this.endpoint.write(p.data);
      if (n === 0) return; // resumed by handleWritable
      if (n < 0) {
        // The send side is closed (reset or finished underneath us): fail this write instead of spinning.
        this.pendingWrite = null;
        p.cb(new PilotException(pilotError('connection_failed', 'stream is closed for writing')));
        return;
      }
      p.data = p.data.subarray(n);
    }
    this.pendingWrite = null;
    p.cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.endpoint.finish();
    cb();
  }

  override _read(): void {
    this.wantsRead = true;
    this.pumpRead();
  }

  private pumpRead(): void {
    while (this.wantsRead) {
      // The transport's own memory, as large as it holds contiguously (capped): no copy, no allocation.
      const view = this.endpoint.readView(MAX_READ_CHUNK_BYTES);
      if (view === null) {
        if (this.isPeerFinished) {
          this.wantsRead = false;
          this.push(null);
        }
        return;
      }
      this.wantsRead = this.push(Buffer.from(view.buffer, view.byteOffset, view.length));
    }
  }

  override _destroy(error: Error | null, cb: (e: Error | null) => void): void {
    if (this.pendingWrite) {
      const p = this.pendingWrite;
      this.pendingWrite = null;
      p.cb(error ?? new PilotException(pilotError('connection_failed', 'stream destroyed')));
    }
    // Auto-destroy after both directions ended is an orderly close (FINs already queued), not an abort.
    const isOrderly = error === null && this.writableFinished && this.readableEnded;
    if (!this.isClosedByTransport && !isOrderly) this.endpoint.reset();
    cb(error);
  }

  private isClosedByTransport = false;

  // --- called by the daemon's connection table ---
  handleReadable(): void {
    this.pumpRead();
  }
  handleWritable(): void {
    this.pumpWrite();
  }
  /** Peer sent FIN and all its data was read. */
  handleFinished(): void {
    this.isPeerFinished = true;
    this.pumpRead();
    if (this.wantsRead) {
      this.wantsRead = false;
      this.push(null);
    }
  }
  /** Connection gone: error null = orderly close after both FINs. */
  handleClosed(error: PilotError | null): void {
    this.isClosedByTransport = true;
    if (error) {
      this.destroy(eventException(error));
    } else {
      this.handleFinished();
    }
  }
}
