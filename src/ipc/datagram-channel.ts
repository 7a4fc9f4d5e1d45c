// Client side of a binary datagram channel (`datagram_channel`, framing in datagram-frames.ts): a DatagramSocket
// whose socket to the daemon carries frames, many per write and per read.
//
// send() semantics (UDP-like, but with the node's errors where they matter): the first send to each peer ref is
// confirmed (seq > 0) and resolves with the daemon's verdict, so an unknown name or an untrusted peer fails that
// call. After a confirmed success, sends to that ref are fire-and-forget: they
// resolve ok once queued (or, past HIGH_WATER_BYTES in the socket, once it drains), and a later failure (a
// payload over the tunnel's limit, a lost session) arrives as a RESULT with seq 0: it is counted in
// `sendErrors`, kept in `lastSendError`, and makes the next send to that ref a confirmed one again.
import type { Socket } from 'node:net';
import { pilotError, type PilotError } from '../core/errors.js';
import { err, errFrom, ok, type Result } from '../core/result.js';
import type { Datagram, DatagramSocket, PeerRef } from '../node/api.js';
import {
  encodeRef,
  FRAME_RECV,
  FRAME_RESULT,
  FrameBatch,
  FrameDecoder,
  MAX_CHANNEL_PAYLOAD_BYTES,
  sendFrameBytes,
  writeSendFrame,
  type ChannelFrame,
} from './datagram-frames.js';

/** Bounded receive queue, drop-oldest, as the daemon's bound sockets (node/streams/datagram-ports.ts). */
const MAX_QUEUED_DATAGRAMS = 4096;
/** Past this many bytes waiting in the socket, send() resolves on 'drain' instead of at once. */
const HIGH_WATER_BYTES = 1024 * 1024;
const MAX_REF_CACHE = 4096;
const MAX_SEQ = 0xffffffff;

const OK: Result<void> = Object.freeze({ ok: true, value: undefined }) as Result<void>;
const OK_PROMISE: Promise<Result<void>> = Promise.resolve(OK);

interface PendingSend {
  to: string;
  resolve: (r: Result<void>) => void;
}

export class IpcDatagramChannel implements DatagramSocket {
  /** Fire-and-forget sends the daemon reported as failed (RESULT seq 0, including `suppressed` ones). */
  sendErrors = 0;
  lastSendError: PilotError | null = null;
  /** Datagrams this side's queue dropped because the application did not read them fast enough. */
  dropped = 0;
  /** Why the channel closed, when it was not close(). */
  error: PilotError | null = null;
  private isClosed = false;
  private readonly queue: Datagram[] = [];
  private waiters: Array<(d: Datagram | null) => void> = [];
  private readonly refBytes = new Map<string, Buffer>();
  /** Refs whose confirmed send succeeded: sends to them go fire-and-forget. */
  private readonly confirmed = new Set<string>();
  private readonly pending = new Map<number, PendingSend>();
  private nextSeq = 1;
  private readonly out: FrameBatch;
  private readonly decoder: FrameDecoder;

  constructor(
    private readonly socket: Socket,
    readonly port: number,
    rest: Buffer,
  ) {
    this.out = new FrameBatch(socket);
    this.decoder = new FrameDecoder([FRAME_RECV, FRAME_RESULT], (f) => this.handleFrame(f));
    socket.on('data', this.onData);
    socket.on('end', () => this.shut(pilotError('connection_failed', 'daemon closed the datagram channel')));
    socket.on('close', () => this.shut(pilotError('connection_failed', 'daemon closed the datagram channel')));
    socket.on('error', (e) => this.shut(pilotError('connection_failed', `datagram channel: ${e.message}`)));
    if (rest.length > 0) this.onData(rest);
    socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    const r = this.decoder.push(chunk);
    if (!r.ok) this.shut(pilotError('internal', `daemon sent a malformed datagram frame: ${r.error.message}`));
  };

  private handleFrame(f: ChannelFrame): void {
    if (f.kind === FRAME_RECV) {
      const d: Datagram = { from: f.from, fromNodeId: f.fromNodeId, fromPort: f.fromPort, port: f.port, data: f.payload };
      const w = this.waiters.shift();
      if (w) return w(d);
      if (this.queue.length >= MAX_QUEUED_DATAGRAMS) {
        this.queue.shift();
        this.dropped++;
      }
      this.queue.push(d);
      return;
    }
    if (f.kind !== FRAME_RESULT) return;
    if (f.seq === 0) {
      if (f.error === null) return;
      const suppressed = Number(f.error.detail?.suppressed ?? 0);
      this.sendErrors += 1 + (Number.isInteger(suppressed) && suppressed > 0 ? suppressed : 0);
      this.lastSendError = f.error;
      const to = f.error.detail?.to;
      if (typeof to === 'string') this.confirmed.delete(to);
      return;
    }
    const p = this.pending.get(f.seq);
    if (!p) return;
    this.pending.delete(f.seq);
    if (f.error === null) {
      this.confirmed.add(p.to);
      p.resolve(OK);
    } else {
      this.confirmed.delete(p.to);
      p.resolve(errFrom(f.error));
    }
  }

  /**
   * Queue one datagram for `to:port`. Errors at once: invalid_argument (port, empty/overlong ref, payload over
   * MAX_CHANNEL_PAYLOAD_BYTES), connection_failed (closed). Confirmed sends also get the node's errors.
   */
  send(to: PeerRef, port: number, data: Uint8Array): Promise<Result<void>> {
    if (this.isClosed) return Promise.resolve(errFrom(this.error ?? pilotError('connection_failed', 'datagram socket closed')));
    if (!Number.isInteger(port) || port < 0 || port > 65535) return Promise.resolve(err('invalid_argument', `invalid port ${port}`, { hint: 'ports are 0–65535' }));
    if (data.length > MAX_CHANNEL_PAYLOAD_BYTES) {
      return Promise.resolve(err('invalid_argument', `datagram of ${data.length} bytes is too large`, { hint: 'datagrams carry at most 1415 bytes; use a stream' }));
    }
    let ref = this.refBytes.get(to);
    if (ref === undefined) {
      const enc = encodeRef(String(to));
      if (enc === null) return Promise.resolve(err('invalid_argument', `invalid peer '${String(to).slice(0, 80)}'`, { hint: 'a hostname, node id or address' }));
      if (this.refBytes.size >= MAX_REF_CACHE) {
        // Bounded like the daemon's ref cache: forgetting a confirmation only costs one confirmed send.
        this.refBytes.clear();
        this.confirmed.clear();
      }
      this.refBytes.set(to, enc);
      ref = enc;
    }
    const isConfirmed = this.confirmed.has(to);
    let seq = 0;
    if (!isConfirmed) {
      seq = this.nextSeq;
      this.nextSeq = this.nextSeq >= MAX_SEQ ? 1 : this.nextSeq + 1;
    }
    const buf = this.out.room(sendFrameBytes(ref.length, data.length));
    this.out.commit(writeSendFrame(buf, this.out.offset, seq, port, ref, data));
    if (!isConfirmed) return new Promise((resolve) => this.pending.set(seq, { to, resolve }));
    if (this.socket.writableLength + this.out.pendingBytes > HIGH_WATER_BYTES) return this.drained();
    return OK_PROMISE;
  }


  /** One promise for every send that hit the high-water mark: resolved by the next 'drain' (or the close). */
  private drainPromise: Promise<Result<void>> | null = null;
  private drained(): Promise<Result<void>> {
    if (this.drainPromise !== null) return this.drainPromise;
    this.drainPromise = new Promise((resolve) => {
      const done = (): void => {
        this.socket.removeListener('drain', done);
        this.socket.removeListener('close', done);
        this.drainPromise = null;
        resolve(this.isClosed ? errFrom(this.error ?? pilotError('connection_failed', 'datagram socket closed')) : OK);
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
    return this.drainPromise;
  }

  tryRecv(): Datagram | null {
    return this.queue.shift() ?? null;
  }

  recv(timeoutMs?: number): Promise<Datagram | null> {
    const d = this.queue.shift();
    if (d) return Promise.resolve(d);
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const w = (dg: Datagram | null): void => {
        if (timer) clearTimeout(timer);
        resolve(dg);
      };
      this.waiters.push(w);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(null);
        }, timeoutMs);
      }
    });
  }

  /** Flush what is queued, then end the socket: the daemon unbinds the port. */
  close(): void {
    if (this.isClosed) return;
    this.out.flush();
    this.socket.end();
    this.shut(null);
  }

  private shut(e: PilotError | null): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.error = e;
    this.socket.removeListener('data', this.onData);
    if (e !== null) this.socket.destroy();
    const closed = e ?? pilotError('connection_failed', 'datagram socket closed');
    for (const p of this.pending.values()) p.resolve(errFrom(closed));
    this.pending.clear();
    for (const w of this.waiters.splice(0)) w(null);
  }
}
