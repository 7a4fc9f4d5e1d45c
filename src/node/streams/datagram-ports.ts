// Unreliable datagrams on virtual ports: bound sockets with a bounded receive queue (drop-oldest, as UDP).
import { err, ok, type Result } from '../../core/result.js';
import type { Datagram, DatagramSocket, PeerRef } from '../api.js';
import type { Deadline, Driver } from '../driver.js';

const MAX_QUEUED_DATAGRAMS = 4096;

export interface DatagramPortsDeps {
  send(to: PeerRef, fromPort: number, toPort: number, data: Uint8Array): Promise<Result<void>>;
  /** recv() timeouts. */
  driver: Driver;
}

class BoundSocket implements DatagramSocket {
  private readonly queue: Datagram[] = [];
  private readonly waiters: ((d: Datagram | null) => void)[] = [];
  isClosed = false;
  dropped = 0;
  constructor(
    readonly port: number,
    private readonly owner: DatagramPorts,
    private readonly deps: DatagramPortsDeps,
  ) {}

  send(to: PeerRef, port: number, data: Uint8Array): Promise<Result<void>> {
    if (this.isClosed) return Promise.resolve(err('connection_failed', 'socket closed'));
    return this.deps.send(to, this.port, port, data);
  }

  push(d: Datagram): void {
    const w = this.waiters.shift();
    if (w) return w(d);
    if (this.queue.length >= MAX_QUEUED_DATAGRAMS) {
      this.queue.shift();
      this.dropped++;
      this.owner.counters.droppedQueueFull++;
    }
    this.queue.push(d);
  }

  tryRecv(): Datagram | null {
    return this.queue.shift() ?? null;
  }

  recv(timeoutMs?: number): Promise<Datagram | null> {
    const d = this.queue.shift();
    if (d) return Promise.resolve(d);
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((resolve) => {
      let t: Deadline | null = null;
      const w = (x: Datagram | null) => {
        t?.cancel();
        resolve(x);
      };
      this.waiters.push(w);
      if (timeoutMs !== undefined) {
        t = this.deps.driver.after(timeoutMs, () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(null);
        });
      }
    });
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.waiters.splice(0)) w(null);
    this.owner.unbind(this.port);
  }
}

/** What arrived on virtual datagram ports, and what was dropped where (info's `datagrams`). */
export interface DatagramCounters {
  /** Handed to a bound socket's queue (or straight to a waiting recv). */
  received: number;
  /** No socket bound on the port (UDP semantics: dropped). */
  droppedNoListener: number;
  /** The socket's queue was full (MAX_QUEUED_DATAGRAMS): its oldest datagram was dropped. */
  droppedQueueFull: number;
}

export class DatagramPorts {
  private readonly sockets = new Map<number, BoundSocket>();
  readonly counters: DatagramCounters = { received: 0, droppedNoListener: 0, droppedQueueFull: 0 };
  constructor(private readonly deps: DatagramPortsDeps) {}

  open(port: number): Result<DatagramSocket> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) return err('invalid_argument', `invalid port ${port}`, { hint: 'ports are 1–65535' });
    if (this.sockets.has(port)) return err('already_exists', `datagram port ${port} is already bound`, { hint: 'choose another port' });
    const s = new BoundSocket(port, this, this.deps);
    this.sockets.set(port, s);
    return ok(s);
  }

  unbind(port: number): void {
    this.sockets.delete(port);
  }

  /** A datagram from the tunnel; dropped when nobody listens (UDP semantics). */
  deliver(from: string, fromNodeId: number, fromPort: number, port: number, data: Uint8Array): void {
    const s = this.sockets.get(port);
    if (!s) {
      this.counters.droppedNoListener++;
      return;
    }
    this.counters.received++;
    s.push({ from, fromNodeId, fromPort, port, data: data.slice() });
  }

  close(): void {
    for (const s of [...this.sockets.values()]) s.close();
  }
}
