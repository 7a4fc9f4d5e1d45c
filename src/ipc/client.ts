// Client side of the control socket: request/response multiplexed by id, events routed to per-call handlers.
// Every connection is verified before a byte of ours goes out (issue 10, "the home is ours"): the socket must be
// a real socket (not a symlink) owned by our uid, and the process behind it must sign our fresh nonce with the
// node key published in the home (src/node/daemon-proof.ts). Anything else is `daemon_unverified`.
import { lstatSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { pilotError, type PilotError } from '../core/errors.js';
import { err, errFrom, ok, type Result } from '../core/result.js';
import { checkDaemonProof, checkResumedProof, newAuthNonce, readDaemonKey, ticketOf, type ResumeTicket } from '../node/daemon-proof.js';
import {
  encodeLine,
  fromWireError,
  LineSplitter,
  MAX_RESPONSE_LINE_BYTES,
  type IpcMethod,
  type RequestId,
} from './protocol.js';

export type EventHandler = (event: string, data: unknown) => void;

interface PendingCall {
  resolve: (r: Result<unknown>) => void;
  onEvent: EventHandler | undefined;
}

/** What `connect` failures mean to a user: no daemon, or a daemon we may not talk to. */
function connectError(socketPath: string, e: NodeJS.ErrnoException): PilotError {
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ENOTDIR') {
    return pilotError('not_running', `daemon is not running (no answer on ${socketPath})`);
  }
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    return pilotError('connection_failed', `permission denied on ${socketPath}`, {
      hint: 'the socket belongs to another user; run pilotctl as the daemon owner',
    });
  }
  return pilotError('not_running', `cannot reach the daemon on ${socketPath}: ${e.message}`);
}

/** Which daemon to talk to: its control socket, and the home whose published node key it must prove. */
export interface DaemonTarget {
  socketPath: string;
  home: string;
}

/** A connected, verified socket, and the pid the daemon signed (for `daemon stop`). */
export interface VerifiedSocket {
  socket: Socket;
  daemonPid: number;
}

/** How long the daemon gets to answer `auth`. A squatter that never answers is `daemon_unverified`, not a hang. */
const AUTH_TIMEOUT_MS = 5000;

/** The socket file must be a socket owned by us: lstat, so a symlink someone planted is refused, not followed. */
function checkSocketFile(socketPath: string): Result<void> {
  let st;
  try {
    st = lstatSync(socketPath);
  } catch (e) {
    return errFrom(connectError(socketPath, e as NodeJS.ErrnoException));
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  if (!st.isSocket()) {
    return err('daemon_unverified', `${socketPath} is ${st.isSymbolicLink() ? 'a symlink' : 'not a socket'}; refusing to talk to it`, {
      detail: { socket: socketPath },
    });
  }
  if (uid !== null && st.uid !== uid) {
    return err('daemon_unverified', `socket ${socketPath} is owned by uid ${st.uid}, not by you (uid ${uid}); refusing to talk to it`, {
      detail: { socket: socketPath, owner_uid: st.uid, uid },
    });
  }
  return ok();
}

function rawConnect(socketPath: string): Promise<Result<Socket>> {
  return new Promise((resolve) => {
    const socket = createConnection({ path: socketPath, allowHalfOpen: true });
    const onError = (e: NodeJS.ErrnoException): void => resolve(errFrom(connectError(socketPath, e)));
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.removeListener('error', onError);
      resolve(ok(socket));
    });
  });
}

/**
 * Resumption tickets of the daemons this process verified (src/node/daemon-proof.ts), by socket and home: a later
 * connection to the same daemon process is checked with an HMAC instead of an Ed25519 signature and a read of
 * the key file. A daemon that restarted does not know the ticket and answers with a full proof.
 */
const tickets = new Map<string, ResumeTicket>();
const ticketKey = (t: DaemonTarget): string => `${t.socketPath}\0${t.home}`;

/**
 * Send `auth` with a fresh nonce and read exactly its response line; nothing else is written before it verifies.
 * With a ticket, the answer is the ticket's mac (or, from a daemon that does not know it, a full proof, checked
 * against the home's key like any first connection). Bytes that follow the response stay buffered in `rest`
 * (there are none from an honest daemon).
 */
function authenticate(
  socket: Socket,
  target: DaemonTarget,
  ticket: ResumeTicket | null,
  homeKey: Uint8Array | null,
): Promise<Result<{ pid: number; rest: Buffer }>> {
  const nonce = newAuthNonce();
  const nonceB64 = Buffer.from(nonce.buffer, nonce.byteOffset, nonce.byteLength).toString('base64');
  return new Promise((resolve) => {
    const splitter = new LineSplitter(MAX_RESPONSE_LINE_BYTES);
    const unverified = (why: string): Result<never> =>
      err('daemon_unverified', `the process on ${target.socketPath} did not prove it is this home's daemon: ${why}`, {
        detail: { socket: target.socketPath, home: target.home },
      });
    const finish = (r: Result<{ pid: number; rest: Buffer }>): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onClose);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onClose);
      socket.pause();
      resolve(r);
    };
    /** The answer's proof: the ticket's mac, else a full proof against the home's published key. */
    const check = (proof: unknown): Result<{ pid: number }> => {
      if (ticket !== null) {
        const resumed = checkResumedProof(ticket, nonce, proof, target.socketPath);
        if (!resumed.ok || resumed.value !== null) return resumed as Result<{ pid: number }>;
      }
      const key = homeKey !== null ? ok(homeKey) : readDaemonKey(target.home);
      if (!key.ok) return key;
      const checked = checkDaemonProof(key.value, nonce, proof, target.socketPath);
      if (checked.ok) {
        const t = ticketOf(proof);
        if (t !== null) tickets.set(ticketKey(target), t);
      }
      return checked;
    };
    const onData = (chunk: Buffer): void => {
      splitter.push(chunk);
      const line = splitter.next();
      if (line === null) {
        if (splitter.isOverflowed) finish(unverified('oversized answer'));
        return;
      }
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return finish(unverified('malformed answer'));
      }
      if (typeof msg !== 'object' || msg === null || msg.id !== 'auth') return finish(unverified('no answer to auth'));
      if (msg.ok !== true) return finish(unverified(`auth refused (${fromWireError(msg.error).message})`));
      const checked = check(msg.result);
      if (!checked.ok) return finish(checked);
      finish(ok({ pid: checked.value.pid, rest: splitter.takeRest() }));
    };
    const onClose = (): void => finish(unverified('it closed the connection'));
    const timer = setTimeout(() => finish(unverified(`no answer within ${AUTH_TIMEOUT_MS} ms`)), AUTH_TIMEOUT_MS);
    timer.unref?.();
    socket.on('data', onData);
    socket.once('end', onClose);
    socket.once('close', onClose);
    socket.once('error', onClose);
    const params = ticket !== null ? { nonce: nonceB64, ticket: ticket.id } : { nonce: nonceB64, want_ticket: true };
    socket.write(encodeLine({ id: 'auth', method: 'auth', params }));
  });
}

/**
 * Open a Unix socket to the daemon of `target.home` and verify it (see the file comment) before returning it.
 * Missing socket / nobody listening → `not_running`; wrong owner, symlink, no key in the home or no valid proof
 * → `daemon_unverified` (the socket is closed, nothing but the nonce was sent).
 */
export async function connectSocket(target: DaemonTarget): Promise<Result<VerifiedSocket>> {
  const file = checkSocketFile(target.socketPath);
  if (!file.ok) return file;
  const ticket = tickets.get(ticketKey(target)) ?? null;
  // A first connection needs the home's key; a resumed one reads it only if the daemon answers with a full proof.
  const key = ticket === null ? readDaemonKey(target.home) : null;
  const s = await rawConnect(target.socketPath);
  if (!s.ok) return s;
  const socket = s.value;
  if (key !== null && !key.ok) {
    socket.destroy();
    return key;
  }
  const a = await authenticate(socket, target, ticket, key?.ok === true ? key.value : null);
  if (!a.ok) {
    socket.destroy();
    return a;
  }
  if (a.value.rest.length > 0) socket.unshift(a.value.rest);
  return ok({ socket, daemonPid: a.value.pid });
}

/**
 * One control connection. `call` resolves with the response's Result (never rejects); events with the same id
 * go to `onEvent` — before the response for call-style methods, after it for open-style ones until `end`.
 */
export class IpcConnection {
  private readonly splitter = new LineSplitter(MAX_RESPONSE_LINE_BYTES);
  private readonly pending = new Map<RequestId, PendingCall>();
  /** Open-style calls keep receiving events after their response. */
  private readonly streams = new Map<RequestId, EventHandler>();
  private nextId = 1;
  private closeError: PilotError | null = null;
  private readonly closeListeners: Array<(e: PilotError | null) => void> = [];

  constructor(
    readonly socket: Socket,
    readonly target: DaemonTarget,
    /** The pid the daemon signed in its proof (connectSocket). */
    readonly daemonPid: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.splitter.push(chunk);
      for (let line = this.splitter.next(); line !== null; line = this.splitter.next()) this.handleLine(line);
      if (this.splitter.isOverflowed) this.fail(pilotError('internal', 'daemon sent an oversized line'));
    });
    socket.on('error', (e) => this.fail(pilotError('not_running', `daemon connection failed: ${e.message}`)));
    socket.on('end', () => socket.end());
    socket.on('close', () => this.fail(pilotError('not_running', 'daemon closed the connection')));
    socket.resume(); // connectSocket leaves it paused after the auth exchange
  }

  get socketPath(): string {
    return this.target.socketPath;
  }

  get isClosed(): boolean {
    return this.closeError !== null;
  }

  /** Called once when the connection goes away (daemon stopped, or close()). */
  onClose(fn: (e: PilotError | null) => void): void {
    this.closeListeners.push(fn);
  }

  call<T = unknown>(method: IpcMethod, params: Record<string, unknown> = {}, onEvent?: EventHandler): Promise<Result<T>> {
    if (this.closeError) return Promise.resolve(errFrom<T>(this.closeError));
    const id = this.nextId++;
    return new Promise<Result<T>>((resolve) => {
      this.pending.set(id, { resolve: resolve as (r: Result<unknown>) => void, onEvent });
      this.socket.write(encodeLine({ id, method, params }));
    });
  }

  /**
   * An open-style call (subscribe, listen): after a successful response, events keep flowing to
   * `onEvent` until an `end` event, `closeStream(id)` or the connection closing (then `end` is synthesised).
   */
  async open<T = unknown>(
    method: IpcMethod,
    params: Record<string, unknown>,
    onEvent: EventHandler,
  ): Promise<Result<{ id: RequestId; result: T }>> {
    const id = this.nextId;
    this.streams.set(id, onEvent);
    const r = await this.call<T>(method, params, onEvent);
    if (!r.ok) {
      this.streams.delete(id);
      return r;
    }
    return ok({ id, result: r.value });
  }

  /** Stop an open-style call on the daemon and locally. */
  async closeStream(id: RequestId): Promise<void> {
    if (!this.streams.delete(id)) return;
    await this.call('close', { target: id });
  }

  close(): void {
    this.fail(null);
    this.socket.destroy();
  }

  private handleLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.fail(pilotError('internal', 'daemon sent malformed JSON'));
      return;
    }
    const id = msg.id as RequestId;
    if (typeof msg.event === 'string') {
      const p = this.pending.get(id);
      const handler = p?.onEvent ?? this.streams.get(id);
      if (msg.event === 'end') this.streams.delete(id);
      handler?.(msg.event, msg.data);
      return;
    }
    const p = this.pending.get(id);
    if (!p) return; // an answer to a request we gave up on, or a protocol error for id null
    this.pending.delete(id);
    p.resolve(msg.ok === true ? ok(msg.result) : errFrom(fromWireError(msg.error)));
  }

  private fail(e: PilotError | null): void {
    if (this.closeError) return;
    this.closeError = e ?? pilotError('not_running', 'connection closed');
    for (const p of this.pending.values()) p.resolve(errFrom(this.closeError));
    this.pending.clear();
    for (const [, h] of this.streams) h('end', { error: e === null ? undefined : e.message });
    this.streams.clear();
    for (const fn of this.closeListeners) fn(e);
    this.closeListeners.length = 0;
  }
}

/** Connect a verified control connection: `not_running` when no daemon answers, `daemon_unverified` (connectSocket). */
export async function connectIpc(target: DaemonTarget): Promise<Result<IpcConnection>> {
  const s = await connectSocket(target);
  if (!s.ok) return s;
  return ok(new IpcConnection(s.value.socket, target, s.value.daemonPid));
}

/** The daemon's answer to `datagram_channel`, after which the socket carries binary datagram frames. */
export interface DatagramChannelResult {
  port: number;
  socket: string;
  max_payload_bytes: number;
}

/** `datagram_channel {port}` on a fresh connection; the socket then speaks datagram-frames.ts. */
export async function openDatagramChannel(
  target: DaemonTarget,
  port: number,
): Promise<Result<{ socket: Socket; result: DatagramChannelResult; rest: Buffer }>> {
  return openRawConnection<DatagramChannelResult>(target, 'datagram_channel', { port });
}

/** `stream_channel` on a fresh connection; the socket then speaks stream-frames.ts (stream-channel.ts). */
export async function openStreamChannelSocket(target: DaemonTarget): Promise<Result<{ socket: Socket; windowBytes: number; rest: Buffer }>> {
  const r = await openRawConnection<{ window_bytes: number }>(target, 'stream_channel', {});
  if (!r.ok) return r;
  if (typeof r.value.result.window_bytes !== 'number') return err('internal', 'daemon answered stream_channel without a channel');
  return ok({ socket: r.value.socket, windowBytes: r.value.result.window_bytes, rest: r.value.rest });
}

/**
 * One request that turns a connection into something other than JSON lines (datagram_channel, stream_channel)
 * on a fresh verified connection: read exactly its response line and hand the socket over, paused, with the
 * bytes after it.
 */
async function openRawConnection<T>(
  target: DaemonTarget,
  method: 'datagram_channel' | 'stream_channel',
  params: Record<string, unknown>,
): Promise<Result<{ socket: Socket; result: T; rest: Buffer }>> {
  const s = await connectSocket(target);
  if (!s.ok) return s;
  return requestOn<T>(s.value.socket, method, params);
}

function requestOn<T>(
  socket: Socket,
  method: 'datagram_channel' | 'stream_channel',
  params: Record<string, unknown>,
): Promise<Result<{ socket: Socket; result: T; rest: Buffer }>> {
  return new Promise((resolve) => {
    const splitter = new LineSplitter(MAX_RESPONSE_LINE_BYTES);
    const finish = (r: Result<{ socket: Socket; result: T; rest: Buffer }>): void => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onClose);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onClose);
      if (!r.ok) socket.destroy();
      else socket.pause();
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      splitter.push(chunk);
      const line = splitter.next();
      if (line === null) {
        if (splitter.isOverflowed) finish(err('internal', 'daemon sent an oversized line'));
        return;
      }
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return finish(err('internal', 'daemon sent malformed JSON'));
      }
      if (msg.ok !== true) return finish(errFrom(fromWireError(msg.error)));
      if (typeof msg.result !== 'object' || msg.result === null) return finish(err('internal', `daemon answered ${method} without a result`));
      finish(ok({ socket, result: msg.result as T, rest: splitter.takeRest() }));
    };
    // A daemon that dies before answering only half-closes this allowHalfOpen socket: 'close' never comes,
    // and with nothing left to wait for, pilotctl used to exit 13 (unsettled await) without a word.
    const onClose = (): void => finish(err('not_running', 'daemon closed the connection'));
    socket.on('data', onData);
    socket.once('end', onClose);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.resume();
    socket.write(encodeLine({ id: 1, method, params }));
  });
}

/** One request on a throwaway connection (`daemon status`, tests). */
export async function callOnce<T = unknown>(
  target: DaemonTarget,
  method: IpcMethod,
  params: Record<string, unknown> = {},
): Promise<Result<T>> {
  const c = await connectIpc(target);
  if (!c.ok) return c;
  const r = await c.value.call<T>(method, params);
  c.value.close();
  return r;
}
