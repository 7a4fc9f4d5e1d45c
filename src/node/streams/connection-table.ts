// The daemon's transport connections: demultiplexes decrypted stream segments to sans-IO Connections, drives
// them (pollTransmit → pollEvent → pollTimeout, quinn's order), owns their single timers, and binds each to a
// PilotDuplex for services, IPC and the SDK.
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { err, ok, type Result } from '../core/result.js';
import { pilotError, type PilotError } from '../core/errors.js';
import type { Micros } from '../core/clock.js';
import { Connection, type ConnectionOptions } from '../transport/connection.js';
import { encodeResetFor, peekSegmentHeader, KIND_STREAM, type SegmentPeek } from '../wire/segment.js';
import { PilotDuplex } from './pilot-stream.js';
import { armTimer, dispatchEvents, streamEndpointFor } from './connection-driver.js';
import type { ConnectionEntry, PilotStream, PortListener } from './api.js';

export interface ConnectionTableDeps {
  logger: Logger;
  nowUs: () => Micros;
  /** Seal and queue one plaintext segment to a peer. */
  sendTo(peerNodeId: number, plaintext: Uint8Array, now: Micros): Result<void>;
  /** Hand queued frames to the socket. */
  flushTx(): void;
  addressOf(nodeId: number): string;
  connectionOptions?: ConnectionOptions;
}

interface Entry {
  id: number;
  peer: number;
  localPort: number;
  remotePort: number;
  connId: number;
  conn: Connection;
  stream: PilotDuplex;
  timer: NodeJS.Timeout | null;
  timerAtUs: Micros | null;
  fireTimer: () => void;
  isDirty: boolean;
  onConnected: ((r: Result<void>) => void) | null;
  isClosed: boolean;
}

class Listener implements PortListener {
  private readonly queue: PilotStream[] = [];
  private readonly waiters: ((s: PilotStream | null) => void)[] = [];
  isClosed = false;
  constructor(
    readonly port: number,
    private readonly onClose: () => void,
  ) {}
  push(s: PilotStream): void {
    const w = this.waiters.shift();
    if (w) w(s);
    else this.queue.push(s);
  }
  accept(): Promise<PilotStream | null> {
    const s = this.queue.shift();
    if (s) return Promise.resolve(s);
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.waiters.splice(0)) w(null);
    for (const s of this.queue.splice(0)) s.destroy();
    this.onClose();
  }
}

const MAX_BACKLOG = 1024;
const noop = (): void => {};

export class ConnectionTable {
  private readonly byPeer = new Map<number, Map<number, Entry>>();
  private readonly byId = new Map<number, Entry>();
  private readonly listeners = new Map<number, Listener>();
  private readonly dirty: Entry[] = [];
  private readonly txBuf = new Uint8Array(2048);
  private readonly peek: SegmentPeek = { flags: 0, srcPort: 0, dstPort: 0, connId: 0, isSyn: false, isRst: false };
  private nextId = 1;
  private isFlushScheduled = false;

  constructor(private readonly deps: ConnectionTableDeps) {}

  listen(port: number): Result<PortListener> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return err('invalid_argument', `invalid port ${port}`, { hint: 'ports are 1–65535' });
    }
    if (this.listeners.has(port)) return err('already_exists', `port ${port} is already bound`, { hint: 'choose another port' });
    const l = new Listener(port, () => this.listeners.delete(port));
    this.listeners.set(port, l);
    return ok(l);
  }

  /** Hand an inbound stream from another transport (the v0.5 legacy suite) to the port's listener. */
  deliverInbound(port: number, stream: PilotStream): boolean {
    const l = this.listeners.get(port);
    if (!l || l.isClosed) return false;
    l.push(stream);
    return true;
  }

  isListening(port: number): boolean {
    return this.listeners.has(port);
  }

  private ephemeralPort(): number {
    for (let i = 0; i < 64; i++) {
      const p = randomInt(49152, 65536);
      if (!this.listeners.has(p)) return p;
    }
    return randomInt(49152, 65536);
  }

  /** Opens a connection over an established tunnel; resolves when the three-way open completes. */
  async dial(peer: number, remotePort: number, timeoutMs: number): Promise<Result<PilotStream>> {
    const now = this.deps.nowUs();
    const localPort = this.ephemeralPort();
    const connId = randomInt(1, 0xffffffff);
    const conn = Connection.connect({ ...this.deps.connectionOptions, localPort, remotePort, connId }, now);
    const e = this.add(peer, localPort, remotePort, connId, conn);
    const r = await new Promise<Result<void>>((resolve) => {
      const t = setTimeout(() => {
        e.onConnected = null;
        resolve(err('timeout', `no answer from ${this.deps.addressOf(peer)} port ${remotePort} within ${timeoutMs} ms`));
      }, timeoutMs);
      e.onConnected = (res) => {
        clearTimeout(t);
        resolve(res);
      };
      this.markDirty(e);
      this.flush();
    });
    if (!r.ok) {
      this.kill(e, r.error, true);
      return r;
    }
    return ok(e.stream);
  }

  private add(peer: number, localPort: number, remotePort: number, connId: number, conn: Connection): Entry {
    const id = this.nextId++;
    const entry: Entry = {
      id, peer, localPort, remotePort, connId, conn,
      stream: null as unknown as PilotDuplex,
      timer: null, timerAtUs: null, isDirty: false, onConnected: null, isClosed: false,
      fireTimer: () => {
        const t = this.deps.nowUs();
        entry.conn.handleTimeout(t);
        this.drive(entry, t);
        this.deps.flushTx();
      },
    };
    const endpoint = streamEndpointFor(conn, entry, () => this.markDirty(entry), () => this.flush());
    entry.stream = new PilotDuplex(endpoint, this.deps.addressOf(peer), peer, remotePort, localPort);
    // A stream error nobody listens to must not take the daemon down (Node throws unhandled 'error' events):
    // a dial that fails before the stream is handed out, or a client that never attached a listener.
    entry.stream.on('error', noop);
    let m = this.byPeer.get(peer);
    if (!m) this.byPeer.set(peer, (m = new Map()));
    m.set(connId, entry);
    this.byId.set(id, entry);
    return entry;
  }

  /** One decrypted stream segment (kind 0x01) from `peer`. The view is only valid during the call. */
  handleSegment(peer: number, segment: Uint8Array, now: Micros): void {
    if (segment[0] !== KIND_STREAM) return;
    const p = peekSegmentHeader(segment, this.peek);
    if (!p.ok) return;
    const h = p.value;
    let e = this.byPeer.get(peer)?.get(h.connId);
    if (e && (e.localPort !== h.dstPort || e.remotePort !== h.srcPort)) return;
    if (!e) {
      if (!h.isSyn || h.isRst) return;
      const l = this.listeners.get(h.dstPort);
      if (!l || this.countForPort(h.dstPort) >= MAX_BACKLOG) {
        this.deps.logger.debug({ peer, port: h.dstPort }, 'SYN to a port nobody listens on');
        const rst = encodeResetFor(segment, this.txBuf);
        if (rst > 0) this.deps.sendTo(peer, this.txBuf.subarray(0, rst), now);
        return;
      }
      const a = Connection.accept(segment, this.deps.connectionOptions ?? {}, now);
      if (!a.ok) return;
      e = this.add(peer, h.dstPort, h.srcPort, h.connId, a.value);
      l.push(e.stream);
      this.markDirty(e);
      return;
    }
    e.conn.handle(segment, now);
    this.markDirty(e);
  }

  private countForPort(port: number): number {
    let n = 0;
    for (const e of this.byId.values()) if (e.localPort === port) n++;
    return n;
  }

  private markDirty(e: Entry): void {
    if (e.isDirty || e.isClosed) return;
    e.isDirty = true;
    this.dirty.push(e);
    if (!this.isFlushScheduled) {
      this.isFlushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Drive every connection touched since the last flush. Called after each receive batch too. */
  flush(): void {
    this.isFlushScheduled = false;
    const now = this.deps.nowUs();
    while (this.dirty.length > 0) {
      const e = this.dirty.pop()!;
      e.isDirty = false;
      this.drive(e, now);
    }
    this.deps.flushTx();
  }

  private drive(e: Entry, now: Micros): void {
    if (e.isClosed) return;
    const conn = e.conn;
    for (;;) {
      const n = conn.pollTransmit(now, this.txBuf);
      if (n === 0) break;
      const r = this.deps.sendTo(e.peer, this.txBuf.subarray(0, n), now);
      if (!r.ok) break;
    }
    const closed = dispatchEvents(e);
    if (closed) {
      this.kill(e, closed.error, false);
      return;
    }
    armTimer(e, now);
  }

  private kill(e: Entry, error: PilotError | null, sendReset: boolean): void {
    if (e.isClosed) return;
    if (sendReset) {
      e.conn.reset();
      const n = e.conn.pollTransmit(this.deps.nowUs(), this.txBuf);
      if (n > 0) this.deps.sendTo(e.peer, this.txBuf.subarray(0, n), this.deps.nowUs());
    }
    e.isClosed = true;
    if (e.timer) clearTimeout(e.timer);
    e.timer = null;
    this.byPeer.get(e.peer)?.delete(e.connId);
    this.byId.delete(e.id);
    e.onConnected?.(error ? { ok: false, error } : err('connection_failed', 'connection closed during open'));
    e.onConnected = null;
    e.stream.handleClosed(error);
  }

  /** Close every connection of a peer (untrust, tunnel lost). */
  closePeer(peer: number, error: PilotError): void {
    const m = this.byPeer.get(peer);
    if (!m) return;
    for (const e of [...m.values()]) this.kill(e, error, true);
    this.byPeer.delete(peer);
  }

  disconnect(id: number): Result<{ id: number }> {
    const e = this.byId.get(id);
    if (!e) return err('not_found', `no connection ${id}`, { hint: 'list them with `pilotctl connections`' });
    this.kill(e, pilotError('connection_failed', 'disconnected by the local user'), true);
    return ok({ id });
  }

  peersWithConnections(): number[] {
    return [...this.byPeer.entries()].filter(([, m]) => m.size > 0).map(([p]) => p);
  }

  get size(): number {
    return this.byId.size;
  }

  list(): ConnectionEntry[] {
    return [...this.byId.values()].map((e) => {
      const s = e.conn.stats();
      return {
        id: e.id,
        peer: this.deps.addressOf(e.peer),
        peer_node_id: e.peer,
        local_port: e.localPort,
        remote_port: e.remotePort,
        state: String(s.state),
        cwnd_bytes: s.cwndBytes,
        srtt_ms: Math.round((s.srttUs / 1000) * 100) / 100,
        bytes_in_flight: s.bytesInFlight,
        bytes_sent: s.bytesSent,
        bytes_received: s.bytesReceived,
        retransmits: s.retransmits,
      };
    });
  }

  close(): void {
    for (const l of [...this.listeners.values()]) l.close();
    for (const e of [...this.byId.values()]) this.kill(e, pilotError('connection_failed', 'daemon shutting down'), true);
  }
}
