// The compat link (issue 13): the node's WebSocket channel to the rendezvous's beacon, a second carrier for the
// datagrams the node exchanges with the beacon (src/wire/compat-frames.ts: each binary message = whole records
// [u16 len][datagram]). What it does:
//   - dials through dial.ts (proxy, TLS, fingerprint) and upgrades with the `ws` client on COMPAT_WS_PATH,
//     subprotocol COMPAT_WS_SUBPROTOCOL, maxPayload MAX_WS_MESSAGE_BYTES, no compression;
//   - on open, and every linkDiscoverIntervalUs, sends an authenticated discover (the path driver's BeaconClient
//     MACs it, one counter for UDP and link), so the beacon maps our node id to this channel; the beacon's
//     discover_reply over the channel means "registered on the channel" and is not passed on (its endpoint is
//     the TCP peer's, port 0 — not a NAT observation);
//   - every other datagram on the link goes to `onDatagrams` as a batch from the beacon's endpoint, so the node
//     sorts it exactly as a UDP datagram from the beacon;
//   - sends: `push` per datagram, RecordBatch gathers them, `flush` (a Driver flusher) sends one message per
//     ≤ 256 KiB of records; over linkMaxBufferedBytes in the socket's buffer, or while the link is down, datagrams
//     are dropped (counted) — datagram semantics: the stream ARQ retransmits;
//   - pings every linkPingIntervalUs; nothing heard for linkSilentUs → terminate (half-open detected within
//     linkSilentUs + linkPingIntervalUs); after any drop, reconnects with exponential backoff (linkBackoffInitialUs
//     → linkBackoffMaxUs) × jitter from the seeded Rng.
// All its deadlines are the Driver's (the `ws` library keeps its own internal timers).
import WebSocket from 'ws';
import type { Logger } from '../../core/logger.js';
import type { Rng } from '../../core/rng.js';
import type { Micros } from '../../core/clock.js';
import type { Result } from '../../core/result.js';
import { pilotError, type PilotError } from '../../core/errors.js';
import { PacketBatch, ipv4ToU32, type RecvBatch } from '../../datapath/index.js';
import { COMPAT_TIMING, type CompatTiming } from '../../nat/index.js';
import { BEACON_DISCOVER_REPLY } from '../../wire/beacon-message.js';
import {
  CLOSE_PROTOCOL_ERROR,
  COMPAT_WS_PATH,
  COMPAT_WS_SUBPROTOCOL,
  MAX_WS_MESSAGE_BYTES,
  RecordBatch,
  decodeRecords,
  encodeRecords,
} from '../../wire/compat-frames.js';
import { formatHostPort, type HostPort, type UdpEndpoint } from '../../wire/endpoint.js';
import type { Deadline, Driver } from '../driver.js';
import type { CompatConnection } from './dial.js';

export type LinkState = 'closed' | 'connecting' | 'open' | 'registered';

export interface CompatLinkDeps {
  driver: Driver;
  rng: Rng;
  logger: Logger;
  /** The rendezvous's compat port (the WebSocket URL's host). */
  target: HostPort;
  /** One verified TLS connection to it (dial.ts with ALPN http/1.1, proxy and fingerprint bound by the node). */
  dial(): Promise<Result<CompatConnection>>;
  /** Our authenticated discover (the path driver's BeaconClient), or null before we are registered. */
  encodeDiscover(): Uint8Array | null;
  /** Beacon datagrams that arrived on the link, as from `beacon` (the node's sorting path). */
  onDatagrams(batch: RecvBatch): void;
  /** The endpoint link datagrams are presented as coming from (the beacon's UDP endpoint, which relay checks name). */
  beacon: UdpEndpoint;
  /** The link became registered, or lost its channel. */
  onStateChange?(state: LinkState): void;
  timing?: Partial<CompatTiming>;
}

export class CompatLink {
  private readonly t: CompatTiming;
  private ws: WebSocket | null = null;
  private isWanted = false;
  private stateNow: LinkState = 'closed';
  /** Bumped by every dial and by close(): a dial that finishes for an older generation is discarded. */
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: Deadline | null = null;
  private upgradeTimer: Deadline | null = null;
  private pingTimer: Deadline | null = null;
  private discoverTimer: Deadline | null = null;
  private lastHeardUs: Micros = 0;
  private readonly batch = new RecordBatch();
  private readonly outbox: Uint8Array[] = [];
  private readonly beaconIpU32: number;
  /** The last dial or channel failure; null once registered on a channel. */
  lastError: PilotError | null = null;
  readonly stats = {
    dials: 0,
    opens: 0,
    drops: 0,
    messagesSent: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
    droppedDown: 0,
    droppedFull: 0,
    protocolErrors: 0,
    halfOpen: 0,
  };

  constructor(private readonly deps: CompatLinkDeps) {
    this.t = { ...COMPAT_TIMING, ...deps.timing };
    this.beaconIpU32 = ipv4ToU32(deps.beacon.ip);
  }

  get state(): LinkState {
    return this.stateNow;
  }

  get isOpen(): boolean {
    return this.stateNow === 'open' || this.stateNow === 'registered';
  }

  get isRegistered(): boolean {
    return this.stateNow === 'registered';
  }

  /** Start (idempotent); the link reconnects by itself until close(). */
  open(): void {
    if (this.isWanted) return;
    this.isWanted = true;
    this.attempt = 0;
    this.dial();
  }

  /** Stop and stay stopped (until open()); its last error goes too (a closed link is not failing). */
  close(): void {
    this.isWanted = false;
    this.lastError = null;
    this.generation++;
    this.reconnectTimer?.cancel();
    this.reconnectTimer = null;
    this.teardown();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
    }
    this.setState('closed');
  }

  /** Send our discover over the channel now (after a (re)registration, or when a UDP discover may have moved us). */
  discoverNow(): void {
    if (!this.isOpen) return;
    const d = this.deps.encodeDiscover();
    if (!d) return;
    const m = encodeRecords([d]);
    if (m.ok) this.sendMessage(m.value);
  }

  /**
   * Queue one datagram for the beacon (it is referenced, not copied, until the next `seal` or `flush`). False when
   * dropped: the link is down, or the datagram is not 1..65,507 bytes.
   */
  push(datagram: Uint8Array): boolean {
    if (!this.isOpen) {
      this.stats.droppedDown++;
      return false;
    }
    return this.batch.push(datagram);
  }

  /** Encode what was pushed into messages now (the pushed views may be reused after this). */
  seal(): void {
    if (this.batch.isEmpty) return;
    for (const m of this.batch.take()) this.outbox.push(m);
  }

  /** Send the queued messages (a Driver flusher: once per event-loop turn). */
  flush(): void {
    this.seal();
    if (this.outbox.length === 0) return;
    const msgs = this.outbox.splice(0);
    for (const m of msgs) this.sendMessage(m);
  }

  // ---------------------------------------------------------------------------------------------------

  private now(): Micros {
    return this.deps.driver.nowUs();
  }

  private setState(s: LinkState): void {
    if (s === this.stateNow) return;
    this.stateNow = s;
    this.deps.onStateChange?.(s);
  }

  private sendMessage(m: Uint8Array): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      this.stats.droppedDown++;
      return;
    }
    if (ws.bufferedAmount + m.length > this.t.linkMaxBufferedBytes) {
      this.stats.droppedFull++;
      return;
    }
    this.stats.messagesSent++;
    ws.send(m, { binary: true });
  }

  private dial(): void {
    if (!this.isWanted) return;
    const gen = ++this.generation;
    this.stats.dials++;
    this.setState('connecting');
    void this.deps.dial().then((r) => {
      if (gen !== this.generation || !this.isWanted) {
        if (r.ok) r.value.socket.destroy();
        return;
      }
      if (!r.ok) {
        this.fail(r.error);
        this.scheduleReconnect();
        return;
      }
      this.upgrade(gen, r.value);
    });
  }

  private upgrade(gen: number, conn: CompatConnection): void {
    const url = `wss://${formatHostPort(this.deps.target.host, this.deps.target.port)}${COMPAT_WS_PATH}`;
    const ws = new WebSocket(url, COMPAT_WS_SUBPROTOCOL, {
      createConnection: () => conn.socket,
      maxPayload: MAX_WS_MESSAGE_BYTES,
      perMessageDeflate: false,
      // A zero mask: ws then skips masking here and unmasking at the rendezvous (a byte-by-byte XOR in JS on
      // both ends without the optional bufferutil). Masking protects HTTP intermediaries that read the frames;
      // ours run inside TLS end to end, so no intermediary sees them.
      generateMask: (mask: Buffer) => void mask.fill(0),
    });
    this.ws = ws;
    this.upgradeTimer = this.deps.driver.after(this.t.linkDialTimeoutUs / 1000, () => {
      this.fail(pilotError('timeout', `WebSocket upgrade at ${url} did not finish within ${this.t.linkDialTimeoutUs / 1000} ms`));
      ws.terminate();
    });
    ws.on('open', () => {
      if (gen !== this.generation) return;
      this.upgradeTimer?.cancel();
      this.upgradeTimer = null;
      this.stats.opens++;
      this.lastHeardUs = this.now();
      this.setState('open');
      this.deps.logger.debug({ url }, 'compat link open');
      this.discoverNow();
      this.pingTimer = this.deps.driver.every(this.t.linkPingIntervalUs / 1000, () => this.pingTick());
      this.discoverTimer = this.deps.driver.every(this.t.linkDiscoverIntervalUs / 1000, () => this.discoverNow());
    });
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      if (gen !== this.generation) return;
      this.lastHeardUs = this.now();
      const msg = toBytes(data);
      if (!isBinary) return this.protocolError('a text message');
      const recs = decodeRecords(msg);
      if (!recs.ok) return this.protocolError(recs.error.message);
      this.receive(msg, recs.value);
    });
    ws.on('pong', () => (this.lastHeardUs = this.now()));
    ws.on('ping', () => (this.lastHeardUs = this.now()));
    ws.on('unexpected-response', (_req, res) => {
      this.fail(pilotError('connection_failed', `the rendezvous refused the WebSocket upgrade at ${url}: HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim()));
      res.resume();
      ws.terminate();
    });
    ws.on('error', (e: Error) => {
      if (gen !== this.generation) return;
      if (!this.isOpen && this.lastError?.message.includes('refused the WebSocket upgrade')) return;
      this.fail(pilotError('connection_failed', `compat link to ${url}: ${e.message}`, { cause: e }));
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (gen !== this.generation) return;
      const wasOpen = this.isOpen;
      this.teardown();
      this.ws = null;
      if (wasOpen) {
        this.stats.drops++;
        this.deps.logger.info({ url, code, reason: reason.toString('utf8').slice(0, 120) }, 'compat link closed; reconnecting');
        if (code !== 1000 && this.lastError === null) this.lastError = pilotError('connection_failed', `compat link closed (code ${code})`);
      }
      this.setState('connecting');
      this.scheduleReconnect();
    });
  }

  private receive(msg: Uint8Array, datagrams: Uint8Array[]): void {
    const batch = new PacketBatch(msg, new Uint32Array(datagrams.length * 4));
    for (const d of datagrams) {
      this.stats.datagramsReceived++;
      if (d[0] === BEACON_DISCOVER_REPLY) {
        if (this.stateNow !== 'registered') {
          this.attempt = 0;
          this.lastError = null;
          this.setState('registered');
          this.deps.logger.info({ compat: formatHostPort(this.deps.target.host, this.deps.target.port) }, 'compat link registered at the beacon');
        }
        continue;
      }
      batch.add(d.byteOffset - msg.byteOffset, d.length, this.beaconIpU32, this.deps.beacon.port);
    }
    if (batch.count > 0) this.deps.onDatagrams(batch);
  }

  private protocolError(why: string): void {
    this.stats.protocolErrors++;
    this.deps.logger.warn({ why }, 'compat link: the rendezvous sent a message that is not whole records; closing');
    this.ws?.close(CLOSE_PROTOCOL_ERROR, 'not whole records');
  }

  private pingTick(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const silentUs = this.now() - this.lastHeardUs;
    if (silentUs >= this.t.linkSilentUs) {
      this.stats.halfOpen++;
      this.lastError = pilotError('timeout', `compat link silent for ${Math.round(silentUs / 1000)} ms (half-open); reconnecting`);
      this.deps.logger.warn({ silent_ms: Math.round(silentUs / 1000) }, 'compat link silent: terminating and reconnecting');
      ws.terminate();
      return;
    }
    ws.ping();
  }

  private fail(e: PilotError): void {
    const isNew = this.lastError?.code !== e.code || this.lastError?.message !== e.message;
    this.lastError = e;
    if (isNew) this.deps.logger.warn({ code: e.code, hint: e.hint }, `compat link: ${e.message}`);
  }

  private teardown(): void {
    this.upgradeTimer?.cancel();
    this.upgradeTimer = null;
    this.pingTimer?.cancel();
    this.pingTimer = null;
    this.discoverTimer?.cancel();
    this.discoverTimer = null;
    this.batch.take();
    this.outbox.length = 0;
  }

  private scheduleReconnect(): void {
    if (!this.isWanted || this.reconnectTimer?.isActive) return;
    const baseUs = Math.min(this.t.linkBackoffMaxUs, this.t.linkBackoffInitialUs * 2 ** this.attempt);
    const delayUs = Math.round(baseUs * (0.5 + this.deps.rng.next() * 0.5));
    this.attempt = Math.min(this.attempt + 1, 30);
    this.reconnectTimer = this.deps.driver.after(delayUs / 1000, () => {
      this.reconnectTimer = null;
      this.dial();
    });
  }
}

function toBytes(data: Buffer | ArrayBuffer | Buffer[]): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}
