// An in-memory TCP connection for the simulation: two Duplex ends whose writes arrive at the other end after
// a fixed latency in simulated time (in order: one latency, timers keep insertion order). Each end looks
// enough like a net.Socket for the registry client and server (remoteAddress/remotePort, setNoDelay,
// setKeepAlive, setTimeout, a 'connect' event on the dialing end).
import { Duplex } from 'node:stream';
import type { Micros } from '../../../src/core/clock.js';

export interface StreamScheduler {
  schedule(delayUs: Micros, fn: () => void): void;
}

export class SimStream extends Duplex {
  peer!: SimStream;
  private isBroken = false;

  constructor(
    private readonly sched: StreamScheduler,
    private readonly latencyUs: Micros,
    readonly localAddress: string,
    readonly localPort: number,
    readonly remoteAddress: string,
    readonly remotePort: number,
  ) {
    super({ allowHalfOpen: false });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const copy = Buffer.from(chunk);
    this.sched.schedule(this.latencyUs, () => {
      if (!this.peer.destroyed && !this.isBroken) this.peer.push(copy);
    });
    cb();
  }

  override _read(): void {}

  override _final(cb: (e?: Error | null) => void): void {
    this.sched.schedule(this.latencyUs, () => {
      if (!this.peer.destroyed) this.peer.push(null);
    });
    cb();
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    this.sched.schedule(this.latencyUs, () => {
      if (!this.peer.destroyed) this.peer.destroy();
    });
    cb(e);
  }

  /** The network dropped this connection: both ends close (as a reset), nothing in flight arrives. */
  break(): void {
    this.isBroken = true;
    this.peer.isBroken = true;
    this.destroy();
    this.peer.destroy();
  }

  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  /** Idle timeouts are not modelled (the registry's would need real inactivity). */
  setTimeout(): this {
    return this;
  }
}

/**
 * A connection from `client` to `server` (ip:port each): the client end emits 'connect' after one latency,
 * when `onAccept` gets the server end.
 */
export function connectPair(
  sched: StreamScheduler,
  latencyUs: Micros,
  client: { ip: string; port: number },
  server: { ip: string; port: number },
  onAccept: (serverEnd: SimStream) => void,
): SimStream {
  const c = new SimStream(sched, latencyUs, client.ip, client.port, server.ip, server.port);
  const s = new SimStream(sched, latencyUs, server.ip, server.port, client.ip, client.port);
  c.peer = s;
  s.peer = c;
  sched.schedule(latencyUs, () => {
    if (c.destroyed) return;
    onAccept(s);
    c.emit('connect');
  });
  return c;
}
