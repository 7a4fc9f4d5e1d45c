// Client side of the control socket: request/response multiplexed by id, events routed to per-call handlers.
import { createConnection, type Socket } from 'node:net';
import { pilotError, type PilotError } from '../core/errors.js';
import { err, errFrom, ok, type Result } from '../core/result.js';
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

/** Open a Unix socket to the daemon. Missing socket / nobody listening → `not_running`. */
export function connectSocket(socketPath: string): Promise<Result<Socket>> {
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
    readonly socketPath: string,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.splitter.push(chunk);
      for (let line = this.splitter.next(); line !== null; line = this.splitter.next()) this.handleLine(line);
      if (this.splitter.isOverflowed) this.fail(pilotError('internal', 'daemon sent an oversized line'));
    });
    socket.on('error', (e) => this.fail(pilotError('not_running', `daemon connection failed: ${e.message}`)));
    socket.on('end', () => socket.end());
    socket.on('close', () => this.fail(pilotError('not_running', 'daemon closed the connection')));
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
   * An open-style call (subscribe, listen, open_datagram): after a successful response, events keep flowing to
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

/** Connect a control connection; `not_running` when no daemon answers on `socketPath`. */
export async function connectIpc(socketPath: string): Promise<Result<IpcConnection>> {
  const s = await connectSocket(socketPath);
  if (!s.ok) return s;
  return ok(new IpcConnection(s.value, socketPath));
}

/** The daemon's answer to a successful dial/accept, after which the socket carries raw stream bytes. */
export interface StreamOpenResult {
  stream: string;
  remote_addr: string;
  remote_node_id: number;
  remote_port: number;
  local_port: number;
}

/**
 * Send one dial/accept request on a fresh connection and read exactly its response line. On success the socket
 * is handed over with any bytes that followed the response (`rest`, already stream data).
 * `{closed: true}` from accept (listener gone) comes back as ok(null).
 */
export async function openRawStream(
  socketPath: string,
  method: 'dial' | 'accept',
  params: Record<string, unknown>,
): Promise<Result<{ socket: Socket; meta: StreamOpenResult; rest: Buffer } | null>> {
  const s = await connectSocket(socketPath);
  if (!s.ok) return s;
  const socket = s.value;
  return new Promise((resolve) => {
    const splitter = new LineSplitter(MAX_RESPONSE_LINE_BYTES);
    const finish = (r: Result<{ socket: Socket; meta: StreamOpenResult; rest: Buffer } | null>): void => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onClose);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onClose);
      if (!r.ok || r.value === null) socket.destroy();
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
      const result = msg.result as Record<string, unknown> | null;
      if (result === null || result.closed === true) return finish(ok(null));
      finish(ok({ socket, meta: result as unknown as StreamOpenResult, rest: splitter.takeRest() }));
    };
    // A daemon that dies before answering only half-closes this allowHalfOpen socket: 'close' never comes,
    // and with nothing left to wait for, pilotctl used to exit 13 (unsettled await) without a word.
    const onClose = (): void => finish(err('not_running', 'daemon closed the connection'));
    socket.on('data', onData);
    socket.once('end', onClose);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.write(encodeLine({ id: 1, method, params }));
  });
}

/** One request on a throwaway connection (stream_status / stream_reset, `daemon status`). */
export async function callOnce<T = unknown>(
  socketPath: string,
  method: IpcMethod,
  params: Record<string, unknown> = {},
): Promise<Result<T>> {
  const c = await connectIpc(socketPath);
  if (!c.ok) return c;
  const r = await c.value.call<T>(method, params);
  c.value.close();
  return r;
}
