// The node's one connection table, for both suites: demultiplexes decrypted stream segments to sans-IO
// connections (transport/stream-connection.ts), drives them (pollTransmit → pollEvent → pollTimeout, quinn's
// order) on the Driver (one deadline each, one flush per turn), and binds each to a PilotDuplex for services,
// IPC and the SDK. A connection's suite is its peer's, chosen when it is created (dial) or by the session its
// SYN came through (handleSegment); its segments go back through that suite's session.
import type { Logger } from 'pino';
import { err, ok, type Result } from '../../core/result.js';
import { pilotError, type PilotError } from '../../core/errors.js';
import type { Micros } from '../../core/clock.js';
import type { Rng } from '../../core/rng.js';
import type { StreamConnection } from '../../transport/stream-connection.js';
import type { Deadline, Driver } from '../driver.js';
import type { ConnectionEntry, PilotStream, PortListener } from '../api.js';
import { PilotDuplex } from './pilot-stream.js';
import { armTimer, disarmTimer, dispatchEvents, streamEndpointFor, type DrivenConnection } from './connection-driver.js';
import type { StreamSuite, SuiteName } from './stream-suites.js';

export interface ConnectionTableDeps {
  logger: Logger;
  /** Deadlines (one per connection, dial timeouts) and the flush (the table registers its own flusher). */
  driver: Driver;
  /** Ephemeral ports. */
  rng: Rng;
  /** The suites a peer's connections can go through. */
  suites: StreamSuite[];
  addressOf(nodeId: number): string;
  /**
   * May `peer` open a connection to our `port` (a network policy, issue 15)? null: yes; bytes: no — answered with
   * an RST carrying them as its reason trailer (wire/segment.ts), so the dialer learns which rule refused it.
   */
  admit?(peer: number, port: number): Uint8Array | null;
  /** May we send a datagram to peer:port? An error (policy_denied the peer told us of) fails the send. Dials have no such
   *  check: the receiver decides, and its RST says why. */
  maySendDatagram?(peer: number, port: number): Result<void>;
}

interface Entry extends DrivenConnection {
  id: number;
  peer: number;
  suite: StreamSuite;
  /** The connection's key in byPeer: the suite's demux key, in that suite's own range. */
  key: number;
  localPort: number;
  remotePort: number;
  /** Opened by us (dial), not accepted. */
  isDialed: boolean;
  isDirty: boolean;
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
const EPHEMERAL_FIRST = 49152;
const EPHEMERAL_COUNT = 65536 - EPHEMERAL_FIRST;
/** Suite keys are u32; each suite gets its own range of byPeer keys. */
const KEY_RANGE = 2 ** 32;
const noop = (): void => {};

export class ConnectionTable {
  private readonly byPeer = new Map<number, Map<number, Entry>>();
  private readonly byId = new Map<number, Entry>();
  private readonly listeners = new Map<number, Listener>();
  private readonly suites = new Map<SuiteName, { suite: StreamSuite; index: number; txBuf: Uint8Array }>();
  private readonly dirty: Entry[] = [];
  private readonly txBuf: Uint8Array;
  /** The last segment view of txBuf handed to a suite: most segments are full-sized, so drive reuses it
   *  rather than allocating a subarray per packet (a per-packet allocation the daemon's GC profile found). */
  private txView: Uint8Array;
  private nextId = 1;

  constructor(private readonly deps: ConnectionTableDeps) {
    const size = Math.max(...deps.suites.map((s) => s.maxSegmentBytes));
    this.txBuf = new Uint8Array(size);
    this.txView = this.txBuf.subarray(0, 0);
    deps.suites.forEach((suite, index) => this.suites.set(suite.name, { suite, index, txBuf: this.txBuf.subarray(0, suite.maxSegmentBytes) }));
    deps.driver.onFlush(() => this.flush());
  }

  listen(port: number): Result<PortListener> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return err('invalid_argument', `invalid port ${port}`, { hint: 'ports are 1–65535' });
    }
    if (this.listeners.has(port)) return err('already_exists', `port ${port} is already bound`, { hint: 'choose another port' });
    const l = new Listener(port, () => this.listeners.delete(port));
    this.listeners.set(port, l);
    return ok(l);
  }

  isListening(port: number): boolean {
    return this.listeners.has(port);
  }

  /** A local port for a dial to peer:remotePort — not listened on, not in use towards that peer and port. */
  private ephemeralPort(peer: number, remotePort: number): number {
    const m = this.byPeer.get(peer);
    for (let i = 0; i < 64; i++) {
      const p = EPHEMERAL_FIRST + this.deps.rng.int(EPHEMERAL_COUNT);
      if (this.listeners.has(p)) continue;
      let isUsed = false;
      if (m) for (const e of m.values()) if (e.localPort === p && e.remotePort === remotePort) isUsed = true;
      if (!isUsed) return p;
    }
    return EPHEMERAL_FIRST + this.deps.rng.int(EPHEMERAL_COUNT);
  }

  /**
   * Open a connection to peer:remotePort through the peer's session of `suite` (established by the caller);
   * resolves when the open completes. Errors: invalid_argument, timeout, connection_failed (RST, closed).
   */
  async dial(peer: number, remotePort: number, timeoutMs: number, suite: SuiteName): Promise<Result<PilotStream>> {
    if (!Number.isInteger(remotePort) || remotePort < 1 || remotePort > 65535) return err('invalid_argument', `invalid port ${remotePort}`, { hint: 'ports are 1–65535' });
    const s = this.suites.get(suite);
    if (!s) return err('invalid_argument', `no ${suite} suite here`);
    const driver = this.deps.driver;
    const localPort = this.ephemeralPort(peer, remotePort);
    const { conn, key } = s.suite.connect(peer, localPort, remotePort, driver.nowUs());
    const e = this.add(peer, s, key, localPort, remotePort, conn, true);
    const r = await new Promise<Result<void>>((resolve) => {
      let t: Deadline | null = null;
      e.onConnected = (res) => {
        t?.cancel();
        resolve(res);
      };
      t = driver.after(timeoutMs, () => {
        e.onConnected = null;
        resolve(err('timeout', `no answer from ${this.deps.addressOf(peer)} port ${remotePort} within ${timeoutMs} ms`));
      });
      this.markDirty(e);
    });
    if (!r.ok) {
      this.kill(e, r.error, true);
      return r;
    }
    if (e.isClosed) return err('connection_failed', `connection to ${this.deps.addressOf(peer)} port ${remotePort} closed during open`);
    return ok(e.stream);
  }

  private add(peer: number, s: { suite: StreamSuite; index: number }, key: number, localPort: number, remotePort: number, conn: StreamConnection, isDialed: boolean): Entry {
    const entry: Entry = {
      id: this.nextId++,
      peer,
      suite: s.suite,
      key: s.index * KEY_RANGE + key,
      localPort,
      remotePort,
      conn,
      isDialed,
      stream: null as unknown as PilotDuplex,
      deadline: null,
      deadlineAtUs: null,
      isDirty: false,
      onConnected: null,
      isClosed: false,
      fireTimer: () => {
        const t = this.deps.driver.nowUs();
        entry.conn.handleTimeout(t);
        this.drive(entry, t); // the driver flushes after its deadlines ran
      },
    };
    const endpoint = streamEndpointFor(conn, entry, () => this.markDirty(entry), () => this.deps.driver.flush());
    entry.stream = new PilotDuplex(endpoint, this.deps.addressOf(peer), peer, remotePort, localPort);
    // A stream error nobody listens to must not take the daemon down (Node throws unhandled 'error' events):
    // a dial that fails before the stream is handed out, or a client that never attached a listener.
    entry.stream.on('error', noop);
    let m = this.byPeer.get(peer);
    if (!m) this.byPeer.set(peer, (m = new Map()));
    m.set(entry.key, entry);
    this.byId.set(entry.id, entry);
    return entry;
  }

  /**
   * One decrypted stream segment from `peer`'s session of `suite` (Noise: kind 0x01; v0.5: a stream inner
   * packet). The view is only valid during the call.
   */
  handleSegment(peer: number, suite: SuiteName, segment: Uint8Array, now: Micros): void {
    const s = this.suites.get(suite);
    if (!s) return;
    const h = s.suite.peek(segment);
    if (!h) return;
    let e = this.byPeer.get(peer)?.get(s.index * KEY_RANGE + h.key);
    if (e && (e.localPort !== h.localPort || e.remotePort !== h.remotePort)) return;
    if (!e) {
      if (!h.opens) return; // stragglers of a closed connection
      const port = h.localPort;
      const remotePort = h.remotePort;
      const key = h.key;
      const l = this.listeners.get(port);
      const refusal = l && !l.isClosed ? (this.deps.admit?.(peer, port) ?? null) : null;
      if (!l || l.isClosed || this.countAccepted(port) >= MAX_BACKLOG || refusal !== null) {
        this.deps.logger.debug({ peer, port, suite, refused: refusal !== null }, 'SYN refused (no listener, backlog full, or a policy)');
        const rst = s.suite.resetFor(segment, s.txBuf, refusal ?? undefined);
        if (rst > 0) s.suite.send(peer, this.segmentView(rst), now);
        return;
      }
      const a = s.suite.accept(peer, segment, now);
      if (!a.ok) return;
      e = this.add(peer, s, key, port, remotePort, a.value, false);
      l.push(e.stream);
      this.markDirty(e);
      return;
    }
    e.conn.handle(segment, now);
    this.markDirty(e);
  }

  private countAccepted(port: number): number {
    let n = 0;
    for (const e of this.byId.values()) if (e.localPort === port && !e.isDialed) n++;
    return n;
  }

  private markDirty(e: Entry): void {
    if (e.isDirty || e.isClosed) return;
    e.isDirty = true;
    this.dirty.push(e);
    this.deps.driver.requestFlush();
  }

  /** The table's flusher (driver.onFlush): drive every connection touched since the last flush. */
  private flush(): void {
    if (this.dirty.length === 0) return;
    const now = this.deps.driver.nowUs();
    while (this.dirty.length > 0) {
      const e = this.dirty.pop()!;
      e.isDirty = false;
      this.drive(e, now);
    }
  }

  private drive(e: Entry, now: Micros): void {
    if (e.isClosed) return;
    const conn = e.conn;
    const buf = this.suites.get(e.suite.name)!.txBuf;
    // Events first: the stream reads what arrived (opening the window) and writes more before we transmit, so
    // one ACK per received batch carries the new window instead of an ACK now and a window update next drive.
    const early = dispatchEvents(e);
    for (;;) {
      const n = conn.pollTransmit(now, buf);
      if (n === 0) break;
      // No session now: the transport retransmits or times out.
      if (!e.suite.send(e.peer, this.segmentView(n), now).ok) break;
    }
    const closed = early ?? dispatchEvents(e);
    if (closed) {
      this.kill(e, closed.error, false);
      return;
    }
    armTimer(e, this.deps.driver);
  }

  /** txBuf[0, n): every suite's txBuf starts at txBuf's start, so one view serves them all. */
  private segmentView(n: number): Uint8Array {
    if (this.txView.length !== n) this.txView = this.txBuf.subarray(0, n);
    return this.txView;
  }

  private kill(e: Entry, error: PilotError | null, sendReset: boolean): void {
    if (e.isClosed) return;
    if (sendReset) {
      e.conn.reset();
      const now = this.deps.driver.nowUs();
      const buf = this.suites.get(e.suite.name)!.txBuf;
      const n = e.conn.pollTransmit(now, buf);
      if (n > 0) e.suite.send(e.peer, this.segmentView(n), now);
    }
    e.isClosed = true;
    disarmTimer(e);
    const m = this.byPeer.get(e.peer);
    if (m?.get(e.key) === e) m.delete(e.key);
    if (m?.size === 0) this.byPeer.delete(e.peer);
    this.byId.delete(e.id);
    e.onConnected?.(error ? { ok: false, error } : err('connection_failed', 'connection closed during open'));
    e.onConnected = null;
    e.stream.handleClosed(error);
  }

  /** Close every connection of a peer, whatever its suite (untrust, tunnel lost). */
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

  /** One datagram from our `srcPort` to peer:dstPort through the peer's session of `suite` (`nowUs`: the caller's clock read). */
  sendDatagram(peer: number, suite: SuiteName, srcPort: number, dstPort: number, data: Uint8Array, nowUs?: Micros): Result<void> {
    const s = this.suites.get(suite);
    if (!s) return err('invalid_argument', `no ${suite} suite here`);
    const allowed = this.deps.maySendDatagram?.(peer, dstPort);
    if (allowed && !allowed.ok) return allowed;
    return s.suite.sendDatagram(peer, srcPort, dstPort, data, nowUs ?? this.deps.driver.nowUs());
  }

  /** Peers with at least one connection (of `suite`, when given). */
  /** The peer's path now carries segments of `bytes` (path MTU discovery): its connections of `suite` resize. */
  setPathSegmentBytes(peer: number, suite: SuiteName, bytes: number): void {
    const m = this.byPeer.get(peer);
    if (!m) return;
    for (const e of m.values()) if (e.suite.name === suite) e.conn.setPathSegmentBytes?.(bytes);
  }

  peersWithConnections(suite?: SuiteName): number[] {
    const out: number[] = [];
    for (const [p, m] of this.byPeer) {
      for (const e of m.values()) {
        if (suite === undefined || e.suite.name === suite) {
          out.push(p);
          break;
        }
      }
    }
    return out;
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
        packets_sent: s.packetsSent,
        packets_received: s.packetsReceived,
      };
    });
  }

  close(): void {
    for (const l of [...this.listeners.values()]) l.close();
    for (const e of [...this.byId.values()]) this.kill(e, pilotError('connection_failed', 'daemon shutting down'), true);
  }
}
