// The beacon's UDP sockets (issue 13: "a relay holds ≥ 1 Gbit/s per core"). Two drivers behind BeaconSocket:
// - the native datapath (src/datapath: recvmmsg batches in, sendmmsg + UDP GSO out) for an IPv4 listen
//   address when the addon loads — every datagram the beacon sends while handling a received batch (the relayed
//   frames above all) leaves in one sendBatch at the end of that batch; sends from elsewhere (a WebSocket
//   channel's records, timers) are gathered until the end of the current task (one microtask) and leave together;
// - node:dgram otherwise (IPv6 listen addresses, PILOT_NATIVE=0, no addon), one send per datagram.
// No beacon logic here: the beacon (beacon.ts) sees datagrams and sends bytes.
import dgram from 'node:dgram';
import { isIPv4, type AddressInfo } from 'node:net';
import type { Logger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import { openDatapath, PacketBatch, ipv4ToU32, type Datapath } from '../datapath/index.js';

export interface BeaconSocket {
  /** True when `send` copies `data` before returning (the caller may reuse it at once). */
  readonly copiesOnSend?: boolean;
  send(data: Uint8Array, ip: string, port: number): void;
  /** Every datagram that arrives, with its source (`address` as the socket reports it). The bytes are valid
   *  only during the call (a batch's memory is reused): copy what must outlive it. */
  onReceive(fn: (data: Uint8Array, from: Remote) => void): void;
  address(): AddressInfo;
  close(): Promise<void>;
}

/** A datagram's source. */
export interface Remote {
  address: string;
  port: number;
}

/** Bind a beacon socket on host:port: the native datapath where it applies, else node:dgram. */
export async function bindBeaconSocket(host: string, port: number, logger: Logger): Promise<Result<BeaconSocket>> {
  const h = host === '' ? '0.0.0.0' : host;
  if (isIPv4(h) || h === 'localhost') {
    const dp = await openDatapath({ host: h, port, logger, recvBufferBytes: 4 * 1024 * 1024, sendBufferBytes: 4 * 1024 * 1024 });
    if (!dp.ok) {
      // Worded as node:dgram words it ("bind EADDRINUSE host:port"): pilotctl rendezvous start reads the errno.
      const errno = typeof dp.error.detail?.errno === 'string' ? dp.error.detail.errno : null;
      const why = errno ? `bind ${errno} ${h}:${port} (${dp.error.message})` : dp.error.message;
      return err('connection_failed', `beacon cannot bind udp ${host}:${port}: ${why}`, { cause: dp.error });
    }
    return ok(datapathBeaconSocket(dp.value));
  }
  const s = await bindUdp(h, port);
  return s.ok ? ok(udpBeaconSocket(s.value, logger)) : s;
}

/** Datagrams queued for one sendBatch. */
const OUT_MAX_PACKETS = 256;
const OUT_BUF_BYTES = 512 * 1024;

export function datapathBeaconSocket(dp: Datapath): BeaconSocket {
  const out = new PacketBatch(OUT_MAX_PACKETS, OUT_BUF_BYTES);
  let isInBatch = false;
  let isFlushQueued = false;
  const flush = (): void => {
    isFlushQueued = false;
    if (out.count === 0) return;
    dp.sendBatch(out);
    out.reset();
  };
  const flushLater = (): void => {
    if (isFlushQueued) return;
    isFlushQueued = true;
    queueMicrotask(flush);
  };
  return {
    copiesOnSend: true,
    send: (data, ip, port) => {
      const a = ipv4ToU32(ip.startsWith('::ffff:') ? ip.slice(7) : ip);
      if (a < 0 || data.length > OUT_BUF_BYTES) return; // an IPv6 peer cannot be reached from an IPv4 socket; UDP drops it
      let off = out.reserve(data.length, a, port);
      if (off < 0) {
        flush();
        off = out.reserve(data.length, a, port);
      }
      out.buf.set(data, off);
      if (!isInBatch) flushLater();
    },
    onReceive: (fn) =>
      dp.onReceive((b) => {
        isInBatch = true;
        try {
          for (let i = 0; i < b.count; i++) fn(b.payload(i), { address: b.ip(i), port: b.port(i) });
        } finally {
          isInBatch = false;
          flush();
        }
      }),
    address: () => ({ address: dp.localAddress.ip, port: dp.localAddress.port, family: 'IPv4' }),
    close: async () => {
      flush();
      await dp.close();
    },
  };
}

/** A bound node:dgram socket as a BeaconSocket (send errors are logged at debug). */
function udpBeaconSocket(sock: dgram.Socket, logger: Logger): BeaconSocket {
  return {
    send: (data, ip, port) =>
      sock.send(data, port, ip, (e) => {
        if (e) logger.debug({ err: e }, 'beacon send failed');
      }),
    onReceive: (fn) => void sock.on('message', (msg, rinfo) => fn(msg, rinfo)),
    address: () => sock.address(),
    close: () => closeUdp(sock),
  };
}

function bindUdp(host: string, port: number): Promise<Result<dgram.Socket>> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    const onError = (e: Error) => {
      sock.close();
      resolve(err('connection_failed', `beacon cannot bind udp ${host}:${port}: ${e.message}`, { cause: e }));
    };
    sock.once('error', onError);
    sock.bind(port, host, () => {
      sock.off('error', onError);
      sock.on('error', () => undefined);
      resolve(ok(sock));
    });
  });
}

function closeUdp(sock: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      sock.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
