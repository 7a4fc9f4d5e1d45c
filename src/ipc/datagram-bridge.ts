// Daemon side of a binary datagram channel (`datagram_channel`, framing in datagram-frames.ts): one bound
// DatagramSocket ⇄ one client socket. Received datagrams are coalesced into one socket write per event-loop turn;
// every read from the client is split into as many SEND frames as it holds. Malformed input gets one RESULT
// frame with the error and the channel closes — it never throws and never touches other clients.
import type { Socket } from 'node:net';
import { pilotError, type PilotError } from '../core/errors.js';
import type { DatagramSocket } from '../node/api.js';
import {
  encodeResultFrame,
  FRAME_SEND,
  FrameBatch,
  FrameDecoder,
  recvFrameBytes,
  writeRecvFrame,
  type ChannelFrame,
} from './datagram-frames.js';

/** Past this many bytes queued in the client socket we stop taking datagrams (the bound socket then drops oldest). */
const HIGH_WATER_BYTES = 1024 * 1024;
/** Sends the node has not answered yet (peer resolution, session setup); past it we stop reading the client. */
const MAX_PENDING_SENDS = 4096;
/** Fire-and-forget failures are reported at most this often; the rest are counted in the next report. */
const ERROR_REPORT_INTERVAL_MS = 100;

export function bridgeDatagrams(socket: Socket, sock: DatagramSocket, rest: Buffer, hasClientEnded: boolean): void {
  let isDone = false;

  // --- node → client ----------------------------------------------------------------------------------------
  const out = new FrameBatch(socket);
  let lastFrom = '';
  let lastFromBytes = Buffer.alloc(0);
  const pump = async (): Promise<void> => {
    for (;;) {
      if (socket.writableLength > HIGH_WATER_BYTES) await drained(socket);
      // What is queued is taken in this turn (one promise per burst, not per datagram); then wait for more.
      const d = sock.tryRecv() ?? (await sock.recv());
      if (d === null || isDone || socket.destroyed) break;
      if (d.from !== lastFrom) {
        lastFrom = d.from;
        lastFromBytes = Buffer.from(d.from, 'latin1').subarray(0, 255);
      }
      const buf = out.room(recvFrameBytes(lastFromBytes.length, d.data.length));
      out.commit(writeRecvFrame(buf, out.offset, d.fromNodeId, d.fromPort, d.port, lastFromBytes, d.data));
    }
    out.flush();
    if (!socket.destroyed) socket.end();
  };

  // --- client → node ----------------------------------------------------------------------------------------
  let pendingSends = 0;
  let isPausedForSends = false;
  let lastReportMs = 0;
  let suppressed = 0;
  const settle = (): void => {
    pendingSends--;
    if (isPausedForSends && pendingSends < MAX_PENDING_SENDS / 2) {
      isPausedForSends = false;
      socket.resume();
    }
  };
  const reportFailure = (e: PilotError, to: string, port: number): void => {
    const now = Date.now();
    if (now - lastReportMs < ERROR_REPORT_INTERVAL_MS) {
      suppressed++;
      return;
    }
    lastReportMs = now;
    const detail = { ...e.detail, to, port, suppressed };
    suppressed = 0;
    if (!socket.destroyed) socket.write(encodeResultFrame(0, { ...e, detail }));
  };
  const onFrame = (f: ChannelFrame): void => {
    if (f.kind !== FRAME_SEND) return; // the decoder only lets SEND through
    pendingSends++;
    const { seq, to, port } = f;
    void sock.send(to, port, f.payload).then((r) => {
      settle();
      if (seq !== 0) {
        if (!socket.destroyed) socket.write(encodeResultFrame(seq, r.ok ? null : r.error));
      } else if (!r.ok) {
        reportFailure(r.error, to, port);
      }
    });
    if (pendingSends >= MAX_PENDING_SENDS && !isPausedForSends) {
      isPausedForSends = true;
      socket.pause();
    }
  };
  const decoder = new FrameDecoder([FRAME_SEND], onFrame);
  const onData = (chunk: Buffer): void => {
    const r = decoder.push(chunk);
    if (r.ok) return;
    socket.removeListener('data', onData);
    refuse(r.error);
  };
  const refuse = (e: PilotError): void => {
    if (socket.destroyed) return;
    socket.write(encodeResultFrame(0, pilotError(e.code, `datagram channel closed: ${e.message}`)));
    socket.end();
    socket.destroySoon();
  };

  socket.on('data', onData);
  socket.on('end', () => {
    // The client is done sending; it closes the channel by ending (or destroying) its socket.
    isDone = true;
    sock.close();
  });
  socket.on('close', () => {
    isDone = true;
    sock.close();
  });
  if (rest.length > 0) onData(rest);
  if (hasClientEnded) {
    isDone = true;
    sock.close();
  }
  socket.resume();
  void pump();
}

function drained(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.removeListener('drain', done);
      socket.removeListener('close', done);
      resolve();
    };
    socket.once('drain', done);
    socket.once('close', done);
  });
}
