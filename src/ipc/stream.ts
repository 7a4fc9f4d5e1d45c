// A PilotStream on the client side of the control socket: the Unix socket is the raw byte pipe.
// end() = FIN (socket half-close). destroy() before both sides finished = RST: we tell the daemon with
// `stream_reset` first, because on a Unix socket a close looks exactly like a half-close to the other side.
// For the same reason, at EOF we ask `stream_status` whether the peer finished or reset. Both go over the
// PilotClient's control connection when there is one (one round trip), else over a throwaway one (callOnce).
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { eventException, PilotException, pilotError } from '../core/errors.js';
import type { PilotStream } from '../node/api.js';
import type { Result } from '../core/result.js';
import { callOnce, type DaemonTarget, type StreamOpenResult } from './client.js';
import type { IpcMethod } from './protocol.js';

/** How a stream reaches the daemon out of band (stream_status / stream_reset). */
export interface StreamControl {
  call<T>(method: IpcMethod, params: Record<string, unknown>): Promise<Result<T>>;
}

/** Longest we hold a destroy() to deliver the RST to the daemon. */
const RESET_DELIVERY_TIMEOUT_MS = 1000;

export class IpcStream extends Duplex implements PilotStream {
  readonly remoteAddr: string;
  readonly remoteNodeId: number;
  readonly remotePort: number;
  readonly localPort: number;
  /** The daemon's handle for this stream (for stream_status / stream_reset). */
  readonly token: string;
  private isResetByPeer = false;
  private readonly control: StreamControl;

  constructor(
    private readonly socket: Socket,
    meta: StreamOpenResult,
    rest: Buffer,
    control: DaemonTarget | StreamControl,
  ) {
    super({ allowHalfOpen: true });
    this.control = 'call' in control ? control : { call: (method, params) => callOnce(control, method, params) };
    this.remoteAddr = meta.remote_addr;
    this.remoteNodeId = meta.remote_node_id;
    this.remotePort = meta.remote_port;
    this.localPort = meta.local_port;
    this.token = meta.stream;
    if (rest.length > 0) this.push(rest);
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => void this.handleEof());
    socket.on('error', (e) => this.destroy(new PilotException(pilotError('connection_failed', `stream socket: ${e.message}`))));
    socket.on('close', () => {
      if (!this.destroyed && !this.readableEnded && !this.isCheckingEof) {
        this.destroy(eventException(pilotError('connection_failed', 'daemon closed the stream')));
      }
    });
    socket.resume();
  }

  private isCheckingEof = false;

  private async handleEof(): Promise<void> {
    this.isCheckingEof = true;
    const r = await this.control.call<{ state: string }>('stream_status', { stream: this.token });
    this.isCheckingEof = false;
    if (this.destroyed) return;
    if (r.ok && r.value.state === 'reset') {
      this.isResetByPeer = true;
      this.destroy(eventException(pilotError('connection_failed', 'stream reset by peer')));
      return;
    }
    this.push(null);
    if (this.writableFinished) this.socket.destroy();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.socket.write(chunk, cb);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.socket.end(() => {
      if (this.readableEnded) this.socket.destroy();
    });
    cb();
  }

  override _destroy(error: Error | null, cb: (e: Error | null) => void): void {
    const isClean = this.readableEnded && this.writableFinished;
    if (isClean || this.isResetByPeer || this.socket.destroyed) {
      this.socket.destroy();
      cb(error);
      return;
    }
    // Abort: make sure the daemon RSTs instead of reading our close as FIN, then drop the socket.
    const timer = setTimeout(() => done(), RESET_DELIVERY_TIMEOUT_MS);
    let isDone = false;
    const done = (): void => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      this.socket.destroy();
      cb(error);
    };
    void this.control.call('stream_reset', { stream: this.token }).then(done);
  }
}
