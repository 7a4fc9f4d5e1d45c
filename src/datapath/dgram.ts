// node:dgram datapath: the fallback when the native addon is missing (and the reference the shared tests
// hold the native one to). ~185 kpps ceiling here (../shared/README.md): one syscall and one JS callback
// per packet. Received packets are copied into a flat PacketBatch and handed over once per event-loop turn
// (setImmediate), so consumers see the same batch shape as from the native reader.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { err, ok, type Logger, type Result } from '../core/index.js';
import { bindError } from './errors.js';
import { PacketBatch, ipv4ToU32, u32ToIpv4 } from './packet-batch.js';
import { META_STRIDE, type Datapath, type DatapathStats, type RecvBatch, type SendBatch } from './types.js';

export interface DgramDatapathOptions {
  host: string;
  port: number;
  logger: Logger;
  /** Socket buffers; the kernel clamps to net.core.{r,w}mem_max (4 MiB here). */
  recvBufferBytes?: number;
  sendBufferBytes?: number;
}

const RECV_BATCH_PACKETS = 1024;
const RECV_BATCH_BYTES = 2 * 1024 * 1024;
const DEFAULT_BUFFER_BYTES = 8 * 1024 * 1024;

class DgramDatapath implements Datapath {
  readonly kind = 'dgram' as const;
  readonly localAddress: { ip: string; port: number };
  private handler: ((batch: RecvBatch) => void) | null = null;
  private readonly pending = new PacketBatch(RECV_BATCH_PACKETS, RECV_BATCH_BYTES);
  private flushScheduled = false;
  private isClosed = false;
  private readonly counters = { txPackets: 0, txBytes: 0, txDropped: 0, rxPackets: 0, rxBytes: 0, rxBatches: 0, rxDropped: 0 };
  private lastError: string | null = null;
  // rinfo.address strings repeat; parse each once.
  private readonly ipCache = new Map<string, number>();

  constructor(
    private readonly socket: Socket,
    private readonly logger: Logger,
  ) {
    const a = socket.address();
    this.localAddress = { ip: a.address, port: a.port };
    // Without a listener, a failed async send (e.g. EHOSTUNREACH) would be an uncaught 'error'.
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.counters.txDropped++;
      this.lastError = e.code ?? e.message;
      this.logger.debug({ err: e }, 'datapath(dgram): socket error');
    });
  }

  send(data: Uint8Array, ip: string, port: number): number {
    if (this.isClosed) return 0;
    // dgram may queue the buffer inside libuv after returning; copy so callers can reuse theirs at once.
    this.socket.send(Buffer.from(data), port, ip);
    this.counters.txPackets++;
    this.counters.txBytes += data.length;
    return 1;
  }

  sendBatch(batch: SendBatch): number {
    if (this.isClosed) return 0;
    const { buf, meta, count, keys } = batch;
    let sent = 0;
    for (let i = 0; i < count; i++) {
      // No key table here (tunnelKeys is absent): a packet left for the datapath to seal is never sent in clear.
      if (keys && keys[i] !== 0) {
        this.counters.txDropped++;
        continue;
      }
      const m = i * META_STRIDE;
      const off = meta[m]!;
      const len = meta[m + 1]!;
      this.socket.send(Buffer.from(buf.subarray(off, off + len)), meta[m + 3]!, u32ToIpv4(meta[m + 2]!));
      this.counters.txBytes += len;
      sent++;
    }
    this.counters.txPackets += sent;
    return sent;
  }

  onReceive(handler: (batch: RecvBatch) => void): void {
    const first = this.handler === null;
    this.handler = handler;
    if (first) this.socket.on('message', (msg, rinfo) => this.handleMessage(msg, rinfo));
  }

  private handleMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.isClosed) return;
    let ip = this.ipCache.get(rinfo.address);
    if (ip === undefined) {
      ip = ipv4ToU32(rinfo.address) >>> 0;
      if (this.ipCache.size >= 4096) this.ipCache.clear();
      this.ipCache.set(rinfo.address, ip);
    }
    const b = this.pending;
    if (!b.push(msg, ip, rinfo.port)) {
      this.flush();
      if (!b.push(msg, ip, rinfo.port)) {
        this.counters.rxDropped++;
        return;
      }
    }
    this.counters.rxPackets++;
    this.counters.rxBytes += msg.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // libuv reads up to 32 datagrams per readiness event, each a separate 'message'; setImmediate runs
      // right after this poll phase, so the batch gathers them without adding a timer's delay.
      setImmediate(this.flushBound);
    }
  }

  private readonly flushBound = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private flush(): void {
    const b = this.pending;
    if (b.count === 0 || this.isClosed || this.handler === null) return b.reset();
    this.counters.rxBatches++;
    try {
      this.handler(b);
    } finally {
      b.reset();
    }
  }

  unref(): void {
    this.socket.unref();
  }

  ref(): void {
    this.socket.ref();
  }

  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    this.isClosed = true;
    this.pending.reset();
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  stats(): DatapathStats {
    return { ...this.counters, txGsoSends: 0, lastError: this.lastError, gso: false, gro: false };
  }
}

/** Bind a node:dgram UDP socket. Bind failures are Result errors (invalid_argument for address problems). */
export function openDgramDatapath(opts: DgramDatapathOptions): Promise<Result<Datapath>> {
  const host = opts.host === 'localhost' ? '127.0.0.1' : opts.host;
  // Same contract as the native datapath: IPv4 literals only, no DNS on the datapath.
  if (ipv4ToU32(host) < 0) {
    return Promise.resolve(
      err('invalid_argument', `not an IPv4 address: ${opts.host}`, {
        hint: 'use an IPv4 literal such as 0.0.0.0 or 127.0.0.1',
        detail: { host: opts.host },
      }),
    );
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    return Promise.resolve(err('invalid_argument', `bad UDP port ${opts.port}`, { detail: { port: opts.port } }));
  }
  const bufBytes = (n: number | undefined): number => n ?? DEFAULT_BUFFER_BYTES;
  return new Promise((resolve) => {
    const socket = createSocket({
      type: 'udp4',
      recvBufferSize: bufBytes(opts.recvBufferBytes),
      sendBufferSize: bufBytes(opts.sendBufferBytes),
    });
    const onError = (e: NodeJS.ErrnoException): void => {
      try {
        socket.close();
      } catch {
        /* already closed: nothing to release */
      }
      resolve(bindError(e.code ?? 'EINVAL', host, opts.port, e));
    };
    socket.once('error', onError);
    socket.bind({ address: host, port: opts.port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(ok(new DgramDatapath(socket, opts.logger)));
    });
  });
}
