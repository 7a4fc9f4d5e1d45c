// A PilotStream on the client side of the control socket: the Unix socket is the raw byte pipe.
// end() = FIN (socket half-close). destroy() before both sides finished = RST: we tell the daemon with
// `stream_reset` first, because on a Unix socket a close looks exactly like a half-close to the other side (over
// an open control connection quietly: no answer, and the daemon closes the stream socket).
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
  /** Send a request nobody waits for, on a connection that is open now; false if there is none. */
  notify?(method: IpcMethod, params: Record<string, unknown>): boolean;
  /** The outcome the daemon pushed for a stream opened with a sink (OutcomeSink), or null: ask stream_status. */
  outcome?(token: string): Promise<'fin' | 'reset' | null>;
  /** This stream will not ask for its outcome. */
  forget?(token: string): void;
}

/** Outcomes kept for streams that have not reached EOF yet; past this the oldest go (they ask instead). */
const MAX_KEPT_OUTCOMES = 4096;
/** The daemon pushes the outcome before it ends the socket; this is only a backstop before asking. */
const OUTCOME_WAIT_MS = 2000;

type Outcome = 'fin' | 'reset';
type OpenSink = (onEvent: (event: string, data: unknown) => void) => Promise<Result<{ sink: string }>>;

/**
 * The client end of `stream_outcomes` (protocol.ts): registered once on a control connection, named in every
 * dial/accept, it holds the outcomes the daemon pushes so that a stream's EOF costs no stream_status round trip.
 */
export class OutcomeSink {
  private key: string | null = null;
  private isStarting = false;
  private readonly arrived = new Map<string, Outcome>();
  private readonly waiters = new Map<string, (o: Outcome | null) => void>();

  constructor(private readonly openSink: OpenSink) {}

  /** The sink to name in dial/accept params, or undefined while it registers (the first call starts that). */
  param(): string | undefined {
    if (this.key !== null) return this.key;
    if (!this.isStarting) {
      this.isStarting = true;
      void this.openSink(this.onEvent).then((r) => {
        this.isStarting = false;
        if (r.ok) this.key = r.value.sink;
      });
    }
    return undefined;
  }

  private readonly onEvent = (event: string, data: unknown): void => {
    if (event === 'end') {
      // the control connection went away: streams still waiting ask stream_status; the next dial re-registers
      this.key = null;
      for (const w of this.waiters.values()) w(null);
      this.waiters.clear();
      return;
    }
    const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
    if (event !== 'outcome' || typeof d.stream !== 'string' || (d.state !== 'fin' && d.state !== 'reset')) return;
    const w = this.waiters.get(d.stream);
    if (w) {
      this.waiters.delete(d.stream);
      w(d.state);
      return;
    }
    this.arrived.set(d.stream, d.state);
    if (this.arrived.size > MAX_KEPT_OUTCOMES) this.arrived.delete(this.arrived.keys().next().value as string);
  };

  wait(token: string): Promise<Outcome | null> {
    const o = this.arrived.get(token);
    if (o !== undefined) {
      this.arrived.delete(token);
      return Promise.resolve(o);
    }
    if (this.key === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(token);
        resolve(null);
      }, OUTCOME_WAIT_MS);
      timer.unref();
      this.waiters.set(token, (x) => {
        clearTimeout(timer);
        resolve(x);
      });
    });
  }

  forget(token: string): void {
    this.arrived.delete(token);
  }
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
    socket.on('data', this.onSocketData);
    socket.on('end', this.onSocketEnd);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
    socket.resume();
  }

  private readonly onSocketData = (chunk: Buffer): void => {
    if (!this.push(chunk)) this.socket.pause();
  };
  private readonly onSocketEnd = (): void => void this.handleEof();
  private readonly onSocketError = (e: Error): void => {
    this.destroy(new PilotException(pilotError('connection_failed', `stream socket: ${e.message}`)));
  };
  private readonly onSocketClose = (): void => {
    if (!this.destroyed && !this.readableEnded && !this.isCheckingEof && !this.isEofPushed) {
      this.destroy(eventException(pilotError('connection_failed', 'daemon closed the stream')));
    }
  };

  private isCheckingEof = false;
  private isEofPushed = false;

  private async handleEof(): Promise<void> {
    this.isCheckingEof = true;
    let state: string | null = (await this.control.outcome?.(this.token)) ?? null;
    if (state === null) {
      const r = await this.control.call<{ state: string }>('stream_status', { stream: this.token });
      state = r.ok ? r.value.state : null;
    }
    this.isCheckingEof = false;
    if (this.destroyed) return;
    if (state === 'reset') {
      this.isResetByPeer = true;
      this.destroy(eventException(pilotError('connection_failed', 'stream reset by peer')));
      return;
    }
    this.isEofPushed = true; // the app may not have read to the end yet: our close of the socket is no error
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
    this.control.forget?.(this.token);
    const isClean = this.readableEnded && this.writableFinished;
    if (isClean || this.isResetByPeer || this.socket.destroyed) {
      this.socket.destroy();
      cb(error);
      return;
    }
    // Abort: the daemon must RST instead of reading our close as FIN. Over an open control connection the
    // reset goes unanswered (quiet) and we leave the socket open: the daemon resets the stream and closes the
    // socket itself, so no close of ours can be read as FIN first. The stream is gone for the app at once. Not
    // once the socket has ended: we would never see the daemon close it (its EOF has come already).
    if (!this.socket.readableEnded && this.control.notify?.('stream_reset', { stream: this.token, quiet: true }) === true) {
      const socket = this.socket;
      socket.removeListener('data', this.onSocketData);
      socket.removeListener('end', this.onSocketEnd);
      socket.removeListener('error', this.onSocketError);
      socket.removeListener('close', this.onSocketClose);
      const timer = setTimeout(() => socket.destroy(), RESET_DELIVERY_TIMEOUT_MS);
      timer.unref();
      socket.on('error', () => socket.destroy());
      socket.once('end', () => socket.destroy());
      socket.once('close', () => clearTimeout(timer));
      socket.resume();
      cb(error);
      return;
    }
    // Else: the reset's answer first, then drop the socket.
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
