// Client side of a stream channel (framing in stream-frames.ts, daemon side in stream-channel-bridge.ts): one
// verified connection per PilotClient carries all its dialed and accepted streams. A dial is an OPEN frame and
// its OPENED answer; end() is a FIN frame, destroy() before both sides finished an RST frame, and the peer's FIN
// or RST arrives the same way — no connection per stream, no status question at EOF.
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { eventException, PilotException, pilotError } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import type { PilotStream } from '../node/api.js';
import { fromWireError } from './protocol.js';
import {
  creditFrame,
  creditOf,
  CREDIT_STEP_BYTES,
  frame,
  FrameParser,
  FRAME_CREDIT,
  FRAME_FIN,
  FRAME_OPEN,
  FRAME_OPENED,
  FRAME_RST,
  jsonOf,
  MAX_STREAM_ID,
  writeData,
} from './stream-frames.js';

type Opening = (r: Result<ChannelStream | null>) => void;

export class StreamChannel {
  private readonly streams = new Map<number, ChannelStream>();
  private readonly opening = new Map<number, Opening>();
  private readonly parser: FrameParser;
  private nextId = 1;
  /** close() was called: no new streams, the socket closes once the last one is done. */
  private isDraining = false;
  isClosed = false;

  constructor(
    private readonly socket: Socket,
    readonly windowBytes: number,
    rest: Buffer,
  ) {
    this.parser = new FrameParser({
      onFrame: (type, id, payload) => this.onFrame(type, id, payload),
      onData: (id, chunk) => this.streams.get(id)?.onPeerData(chunk),
    });
    socket.on('data', this.onSocketData);
    socket.on('error', () => socket.destroy());
    socket.on('end', () => socket.destroy());
    socket.once('close', () => this.onSocketClose());
    this.updateRef();
    socket.resume();
    if (rest.length > 0) this.onSocketData(rest);
  }

  /** Usable for new streams (open, and not closing). */
  get isUsable(): boolean {
    return !this.isClosed && !this.isDraining;
  }

  /** Dial or accept on this channel; accept resolves null when the listener closed. */
  open(method: 'dial' | 'accept', params: Record<string, unknown>): Promise<Result<ChannelStream | null>> {
    if (!this.isUsable) return Promise.resolve(err('not_running', 'the stream channel to the daemon is closed'));
    const id = this.nextId;
    this.nextId = this.nextId === MAX_STREAM_ID ? 1 : this.nextId + 1;
    return new Promise((resolve) => {
      this.opening.set(id, resolve);
      this.updateRef();
      this.send(frame(FRAME_OPEN, id, Buffer.from(JSON.stringify({ method, params }))));
    });
  }

  /** No new streams; the connection closes when the streams on it are done (they may outlive the client). */
  close(): void {
    this.isDraining = true;
    for (const resolve of this.opening.values()) resolve(err('not_running', 'the client was closed'));
    this.opening.clear();
    this.closeIfIdle();
  }

  // --- for ChannelStream ---
  /** @internal */
  send(b: Buffer): void {
    if (!this.isClosed) this.socket.write(b);
  }

  /** @internal */
  sendData(id: number, data: Buffer): void {
    if (!this.isClosed) writeData(this.socket, id, data);
  }

  /** @internal The stream's id is finished on both sides (or reset): no more frames for it. */
  done(id: number): void {
    if (!this.streams.delete(id)) return;
    this.updateRef();
    this.closeIfIdle();
  }

  /** @internal */
  isLive(id: number): boolean {
    return this.streams.has(id);
  }

  private readonly onSocketData = (chunk: Buffer): void => {
    this.parser.push(chunk);
    if (this.parser.error !== null) this.socket.destroy();
  };

  private onFrame(type: number, id: number, payload: Buffer): void {
    if (type === FRAME_OPENED) {
      const resolve = this.opening.get(id);
      if (resolve === undefined) return;
      this.opening.delete(id);
      resolve(this.opened(id, jsonOf(payload)));
      this.updateRef();
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) return; // reset or finished here meanwhile
    if (type === FRAME_FIN) s.onPeerFin();
    else if (type === FRAME_RST) s.onPeerReset();
    else if (type === FRAME_CREDIT) s.onCredit(creditOf(payload) ?? 0);
    else this.socket.destroy(); // OPEN and DATA (handled by the parser) are not for a client
  }

  private opened(id: number, body: Record<string, unknown> | null): Result<ChannelStream | null> {
    if (body === null) return err('internal', 'daemon sent a malformed OPENED');
    if (body.ok !== true) return { ok: false, error: fromWireError(body.error) };
    const m = (body.result ?? {}) as Record<string, unknown>;
    if (m.closed === true) return ok(null);
    if (this.isClosed) return err('not_running', 'daemon closed the connection');
    const s = new ChannelStream(this, id, {
      remoteAddr: String(m.remote_addr),
      remoteNodeId: Number(m.remote_node_id),
      remotePort: Number(m.remote_port),
      localPort: Number(m.local_port),
    });
    this.streams.set(id, s);
    return ok(s);
  }

  private onSocketClose(): void {
    this.isClosed = true;
    for (const resolve of this.opening.values()) resolve(err('not_running', 'daemon closed the connection'));
    this.opening.clear();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) s.onChannelClosed();
  }

  /** An idle channel never keeps the process alive; one with streams or a pending dial/accept does. */
  private updateRef(): void {
    if (this.streams.size + this.opening.size > 0) this.socket.ref();
    else this.socket.unref();
  }

  private closeIfIdle(): void {
    if (this.isDraining && this.streams.size === 0 && this.opening.size === 0 && !this.isClosed) this.socket.end();
  }
}

interface StreamMeta {
  remoteAddr: string;
  remoteNodeId: number;
  remotePort: number;
  localPort: number;
}

export class ChannelStream extends Duplex implements PilotStream {
  readonly remoteAddr: string;
  readonly remoteNodeId: number;
  readonly remotePort: number;
  readonly localPort: number;
  /** Bytes we may still send (the daemon's grant). */
  private credit: number;
  private pendingWrite: { data: Buffer; cb: (e?: Error | null) => void } | null = null;
  /** Bytes received in all, and credited back to the daemon in all. */
  private received = 0;
  private credited = 0;
  private isFinSent = false;
  private isFinReceived = false;

  constructor(
    private readonly channel: StreamChannel,
    readonly id: number,
    meta: StreamMeta,
  ) {
    super({ allowHalfOpen: true });
    this.remoteAddr = meta.remoteAddr;
    this.remoteNodeId = meta.remoteNodeId;
    this.remotePort = meta.remotePort;
    this.localPort = meta.localPort;
    this.credit = channel.windowBytes;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.pendingWrite = { data: chunk, cb };
    this.pump();
  }

  private pump(): void {
    const p = this.pendingWrite;
    if (p === null) return;
    const n = Math.min(p.data.length, this.credit);
    if (n > 0) {
      this.channel.sendData(this.id, n === p.data.length ? p.data : p.data.subarray(0, n)); // split into frames there
      this.credit -= n;
      p.data = p.data.subarray(n);
    }
    if (p.data.length > 0) return; // the rest goes on the next CREDIT
    this.pendingWrite = null;
    p.cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.channel.send(frame(FRAME_FIN, this.id));
    this.isFinSent = true;
    if (this.isFinReceived) this.channel.done(this.id);
    cb();
  }

  override _read(): void {
    this.grant();
  }

  /** Give back the credit for what the app has consumed, in steps (a ping-pong never needs any). */
  private grant(): void {
    const owed = this.received - this.readableLength - this.credited;
    if (owed < CREDIT_STEP_BYTES || !this.channel.isLive(this.id)) return;
    this.credited += owed;
    this.channel.send(creditFrame(this.id, owed));
  }

  override _destroy(error: Error | null, cb: (e: Error | null) => void): void {
    if (this.pendingWrite !== null) {
      const p = this.pendingWrite;
      this.pendingWrite = null;
      p.cb(error ?? new PilotException(pilotError('connection_failed', 'stream destroyed')));
    }
    // Still live on the channel: this is an abort (both FINs would have finished it).
    if (this.channel.isLive(this.id)) {
      this.channel.send(frame(FRAME_RST, this.id));
      this.channel.done(this.id);
    }
    cb(error);
  }

  // --- from the channel ---
  onPeerData(chunk: Buffer): void {
    if (this.isFinReceived) return;
    this.received += chunk.length;
    this.push(chunk);
    this.grant();
  }

  onPeerFin(): void {
    this.isFinReceived = true;
    if (this.isFinSent) this.channel.done(this.id);
    this.push(null);
  }

  onPeerReset(): void {
    this.channel.done(this.id);
    this.destroy(eventException(pilotError('connection_failed', 'stream reset by peer')));
  }

  onCredit(n: number): void {
    this.credit += n;
    this.pump();
  }

  onChannelClosed(): void {
    if (!this.destroyed && !(this.readableEnded && this.writableFinished)) {
      this.destroy(eventException(pilotError('connection_failed', 'daemon closed the stream')));
    }
  }
}
