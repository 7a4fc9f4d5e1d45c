// Daemon side of a stream channel (`stream_channel`, framing in stream-frames.ts): many PilotStreams over one
// client socket. OPEN dials (NodeApi.dial) or accepts on a listener the client opened with JSON `listen`; every stream then
// moves DATA within the credit its client grants, and FIN / RST travel in band, so nothing about a stream's end
// needs a second connection or a status question. The socket closing resets every stream still on it, as a
// client that vanished without FIN would.
import type { Socket } from 'node:net';
import type { Logger } from '../core/logger.js';
import { pilotError, type PilotError } from '../core/errors.js';
import type { NodeApi, PilotStream, PortListener } from '../node/api.js';
import { ParamReader } from './params.js';
import { toWireError } from './protocol.js';
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
  STREAM_WINDOW_BYTES,
  writeData,
} from './stream-frames.js';

/** Longest a dial may ask to wait; a larger timeout_ms is invalid_argument. */
const MAX_TIMEOUT_MS = 10 * 60_000;

export interface StreamChannelDeps {
  api: NodeApi;
  listeners: ReadonlyMap<string, PortListener>;
  logger: Logger;
}

interface Entry {
  /** null while the OPEN is dialing / accepting. */
  stream: PilotStream | null;
  /** The client reset it while its OPEN was pending: drop what the OPEN brings. */
  isCancelled: boolean;
  /** Bytes we may still send the client. */
  credit: number;
  /** Received bytes the client may still send before a CREDIT (its window as we see it). */
  window: number;
  /** Bytes the stream has taken from the client and we have not credited yet. */
  owed: number;
  /** A piece of stream data the client's credit did not cover yet (the stream is paused meanwhile). */
  held: Buffer | null;
  /** stream.write() said wait: these bytes are credited on 'drain'. */
  unaccepted: number;
  isClientFinished: boolean;
  /** The stream ended while a piece was held: FIN follows that piece. */
  isEndHeld: boolean;
}

export function bridgeStreamChannel(socket: Socket, deps: StreamChannelDeps, rest: Buffer, hasClientEnded: boolean): void {
  const entries = new Map<number, Entry>();
  let isClosed = false;

  const send = (b: Buffer): void => {
    if (!isClosed && !socket.destroyed) socket.write(b);
  };

  const sendData = (id: number, data: Buffer): void => {
    if (!isClosed && !socket.destroyed) writeData(socket, id, data);
  };

  /** Stream data toward the client, within its credit; what does not fit is held and the stream paused. */
  const forward = (id: number, e: Entry, chunk: Buffer): void => {
    const n = Math.min(chunk.length, e.credit);
    if (n > 0) {
      e.credit -= n;
      sendData(id, n === chunk.length ? chunk : chunk.subarray(0, n));
    }
    if (n < chunk.length) {
      e.held = chunk.subarray(n);
      e.stream?.pause();
    }
  };

  const finish = (id: number): void => {
    entries.delete(id);
  };

  const protocolError = (message: string): void => {
    deps.logger.warn({ reason: message }, 'stream channel: protocol error, closing it');
    socket.destroy();
  };

  const attach = (id: number, e: Entry, stream: PilotStream): void => {
    e.stream = stream;
    stream.on('data', (chunk: Buffer) => forward(id, e, chunk));
    stream.on('drain', () => {
      if (e.unaccepted === 0) return;
      e.owed += e.unaccepted;
      e.unaccepted = 0;
      grant(id, e);
    });
    stream.on('end', () => {
      if (entries.get(id) !== e) return;
      // A paused stream still ends once its buffer is empty: the piece held for credit goes before the FIN.
      if (e.held !== null) e.isEndHeld = true;
      else sendFin(id, e);
    });
    stream.on('error', () => {
      if (entries.get(id) !== e) return;
      send(frame(FRAME_RST, id));
      finish(id);
    });
    stream.on('close', () => {
      if (entries.get(id) !== e) return;
      if (!stream.readableEnded) {
        // Closed without 'end' or 'error' (destroyed under us): an abort for the client.
        send(frame(FRAME_RST, id));
        finish(id);
      } else if (!e.isEndHeld) {
        finish(id);
      } // else done both ways here, but the piece held for credit and the FIN still go out on the next CREDIT
    });
  };

  const sendFin = (id: number, e: Entry): void => {
    send(frame(FRAME_FIN, id));
    if (e.isClientFinished) finish(id);
  };

  const grant = (id: number, e: Entry): void => {
    if (e.owed < CREDIT_STEP_BYTES) return;
    send(creditFrame(id, e.owed));
    e.window += e.owed;
    e.owed = 0;
  };

  const open = async (id: number, body: Record<string, unknown> | null): Promise<void> => {
    const e: Entry = { stream: null, isCancelled: false, credit: STREAM_WINDOW_BYTES, window: STREAM_WINDOW_BYTES, owed: 0, held: null, unaccepted: 0, isClientFinished: false, isEndHeld: false };
    entries.set(id, e);
    const answer = (v: unknown): void => send(frame(FRAME_OPENED, id, Buffer.from(JSON.stringify(v))));
    const fail = (error: PilotError): void => {
      entries.delete(id);
      answer({ ok: false, error: toWireError(error) });
    };
    const method = body?.method;
    const p = new ParamReader(body?.params ?? {});
    let stream: PilotStream | null;
    if (method === 'dial') {
      const peer = p.str('peer');
      const port = p.int('port', 0, 65535);
      const timeoutMs = p.optInt('timeout_ms', 1, MAX_TIMEOUT_MS);
      if (p.error) return fail(p.error);
      const r = await deps.api.dial(peer, port, timeoutMs === undefined ? undefined : { timeoutMs });
      if (!r.ok) {
        if (e.isCancelled || isClosed) return void entries.delete(id);
        entries.delete(id);
        return answer({ ok: false, error: toWireError(r.error) });
      }
      stream = r.value;
    } else if (method === 'accept') {
      const key = p.str('listener');
      if (p.error) return fail(p.error);
      const listener = deps.listeners.get(key);
      if (!listener) return fail(pilotError('not_found', `no listener ${key}`, { hint: 'listen first; listeners close with their connection' }));
      stream = await listener.accept();
      if (stream === null) {
        entries.delete(id);
        return answer({ ok: true, result: { closed: true } });
      }
    } else {
      return fail(pilotError('invalid_argument', `OPEN needs method dial or accept, not ${JSON.stringify(method)}`));
    }
    if (e.isCancelled || isClosed) {
      stream.destroy();
      return;
    }
    answer({
      ok: true,
      result: { remote_addr: stream.remoteAddr, remote_node_id: stream.remoteNodeId, remote_port: stream.remotePort, local_port: stream.localPort },
    });
    attach(id, e, stream);
  };

  const parser = new FrameParser({
    onFrame(type, id, payload) {
      const e = entries.get(id);
      switch (type) {
        case FRAME_OPEN:
          if (e !== undefined) return protocolError(`OPEN of stream ${id}, which is open`);
          void open(id, jsonOf(payload)).catch((x: unknown) => {
            deps.logger.error({ err: x }, 'stream channel: open threw');
            entries.delete(id);
          });
          return;
        case FRAME_FIN:
          if (e === undefined) return; // reset meanwhile
          if (e.stream === null) return protocolError(`FIN of stream ${id} before it opened`);
          e.isClientFinished = true;
          e.stream.end();
          if (e.stream.readableEnded && !e.isEndHeld) finish(id);
          return;
        case FRAME_RST:
          if (e === undefined) return;
          entries.delete(id);
          if (e.stream === null) e.isCancelled = true;
          else e.stream.destroy();
          return;
        case FRAME_CREDIT: {
          const n = creditOf(payload);
          if (n === null) return protocolError('malformed CREDIT');
          if (e === undefined || e.stream === null) return;
          e.credit += n;
          const held = e.held;
          if (held !== null) {
            e.held = null;
            forward(id, e, held);
          }
          if (e.held === null) {
            if (e.isEndHeld) sendFin(id, e);
            else e.stream.resume();
          }
          return;
        }
        default:
          return protocolError(`frame type ${type} is not for the daemon`);
      }
    },
    onData(id, chunk) {
      const e = entries.get(id);
      if (e === undefined) return; // reset meanwhile: discard
      if (e.stream === null || e.isClientFinished) return protocolError(`DATA on stream ${id} that is not open for it`);
      e.window -= chunk.length;
      if (e.window < 0) return protocolError(`DATA past the window on stream ${id}`);
      if (e.stream.write(chunk)) {
        e.owed += chunk.length;
        grant(id, e);
      } else {
        e.unaccepted += chunk.length;
      }
    },
  });

  const onData = (chunk: Buffer): void => {
    parser.push(chunk);
    if (parser.error !== null) protocolError(parser.error);
  };
  socket.on('data', onData);
  socket.on('end', () => socket.end()); // the client closed the channel: so do we (the close resets what is left)
  socket.on('error', () => socket.destroy());
  socket.once('close', () => {
    isClosed = true;
    for (const e of entries.values()) {
      if (e.stream === null) e.isCancelled = true;
      else e.stream.destroy();
    }
    entries.clear();
  });
  if (rest.length > 0) onData(rest);
  if (hasClientEnded) socket.end();
}
