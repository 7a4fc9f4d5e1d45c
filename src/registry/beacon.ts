// Beacon: UDP endpoint discovery, punch coordination and relay (pkg/beacon/server.go of the original).
// Differences, none visible to original daemons:
// - authenticated (issue 10), when the registry is wired in as `authority` (src/registry/beacon-authority.ts):
//   a node that holds a beacon token must MAC its discover and punch request with it (trailer in
//   src/wire/beacon-message.ts, counter strictly increasing and near our clock); only such a message moves
//   its observed endpoint. Bare (original, unauthenticated) messages are accepted only for nodes the
//   registry marks legacy (registered by original clients), and can never move a token holder's endpoint;
//   messages claiming node ids the registry does not know are ignored;
// - relay (0x05) is forwarded only when it comes from the endpoint the beacon last observed for its sender
//   id — for a token holder, an endpoint its MAC proved — so nobody else can inject frames under its id;
// - punch requests are served only when the registry says the target lets the requester learn its endpoint
//   (`mayPunch`: the target trusts the requester, or is public); the punch command to a token holder is
//   MACed with its token and names the other node, so its daemon can check it asked for / trusts it;
// - per-source token buckets (a bounded table) budget relay bytes and every other datagram, malformed and
//   failed-authentication ones included; unknown or refused senders get no reply (no reflection);
// - observed endpoints expire after `endpointTtlMs` without a discover (the original keeps them forever);
// - an optional second socket answers discover too (never records, checks no counter), so a client can
//   compare the two mappings for NAT classification;
// - gossip (0x07) is parsed and ignored: one beacon per rendezvous here;
// - a second kind of source, the channel (issue 13): one WebSocket on the compat TLS port
//   (src/registry/compat-server.ts) carrying beacon datagrams as records (src/wire/compat-frames.ts), for nodes
//   whose UDP does not get out. A channel is a source endpoint like a UDP one — same budgets, MAC/counter rules
//   and "relay only from the observed endpoint" rule — with these differences: discover over it records the
//   channel as the node's endpoint and answers the TCP peer's IPv4 (0.0.0.0 if not v4) and port 0; punches
//   from or to a channel node send nothing (there is no UDP mapping); relay to a channel node goes over its
//   channel, coalesced per event-loop turn (one message of many records), dropped when the channel already
//   buffers MAX_CHANNEL_BUFFERED_BYTES; observedEndpoint() is null for channel nodes; a channel's close forgets
//   the endpoints that pointed at it; a message that is not whole records (or a text message) closes it with
//   CLOSE_PROTOCOL_ERROR.
// - relay across rendezvous replicas (issue 16, `replicaRelay`): a relay frame for a destination this beacon
//   has not observed, which the shared directory says another replica holds, goes to that replica's beacon as
//   0x08 replica relay (src/wire/beacon-message.ts: origin beacon id, sender, dest, counter, MAC keyed from the
//   replicas' shared beacon secret). The receiving beacon checks the MAC, the counter (near our clock, not seen
//   before in a window of REPLAY_WINDOW per origin beacon), charges the source's relay budget, and delivers it
//   as a relay deliver to its node; it never forwards one again (no loops). Refusals are counted in
//   stats.replicaRefused and stats.replicaReplayed. The directory lookup is injected (`peerBeaconFor`), and so
//   is the note that this beacon observed a node (`onObserved`, called on every recording discover/punch).
// Without `authority` the beacon behaves as the original (every message unauthenticated) and says so once.
// Left open: legacy nodes stay as exposed as in the original (anyone can claim a legacy node id).
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import {
  decodeBeaconMessage,
  encodeAuthenticatedBeaconMessage,
  encodeBeaconMessage,
  encodeReplicaRelay,
  verifyBeaconAuth,
  verifyReplicaRelay,
  type ReplicaRelayMessage,
  writeRelayDeliver,
  type BeaconAuth,
  type BeaconMessage,
} from '../wire/beacon-message.js';
import { CLOSE_PROTOCOL_ERROR, decodeRecords, MessageBufferPool, RecordBatch } from '../wire/compat-frames.js';
import { bindBeaconSocket, type BeaconSocket, type Remote } from './beacon-socket.js';

export type { BeaconSocket, Remote } from './beacon-socket.js';
import type { BeaconAuthority, BeaconNodeAuth } from './beacon-authority.js';

/** Where the beacon sends from and hears on: a bound UDP socket, or a simulated one (BeaconServer.over). */
/**
 * One WebSocket (or a test double) as the beacon sees it: where it comes from (the TCP peer), how to send one
 * message, how much it has queued, how to close it. The beacon never touches the socket otherwise.
 */
export interface BeaconChannel {
  /** The TCP peer of the channel. */
  remote: Remote;
  /** Send one binary message (whole records); `onSent` once the socket has taken it (or failed to). */
  send(msg: Uint8Array, onSent?: () => void): void;
  /** Bytes queued and not yet written to the network. */
  bufferedBytes(): number;
  /** Close the channel (WebSocket close code + reason). */
  close(code: number, reason: string): void;
}

/** What attachChannel returns: the channel's owner feeds it every message and its close. */
export interface BeaconChannelHandle {
  /** One WebSocket message; `isBinary` false for a text message (a protocol error). */
  receive(msg: Uint8Array, isBinary: boolean): void;
  /** The channel is closed (either side); idempotent. */
  closed(): void;
}

/** Above this many queued bytes on a channel, relayed frames to it are dropped (datagram semantics, bounded memory). */
export const MAX_CHANNEL_BUFFERED_BYTES = 4 * 1024 * 1024;

export interface BeaconOptions extends BeaconServerOptions {
  host: string;
  port: number;
  /** Second listen address answering discover only (NAT mapping comparison). */
  host2?: string;
  port2?: number;
}

/** Everything but the listen addresses (those only BeaconServer.start binds). */
export interface BeaconServerOptions {
  logger: Logger;
  /** Relay budget per source endpoint. */
  relayBytesPerSec?: number;
  /** Budget for every non-relay datagram (discover, punch, malformed, failed authentication) per source endpoint. */
  controlPacketsPerSec?: number;
  endpointTtlMs?: number;
  /** The registry: tokens, legacy nodes, who may punch whom. Absent: original, unauthenticated behaviour. */
  authority?: BeaconAuthority;
  /** Authenticated messages whose counter (µs since the epoch) is further than this from our clock are refused. */
  maxClockSkewMs?: number;
  /** Source endpoints whose budgets are kept; beyond, the oldest is forgotten. */
  maxSources?: number;
  /** Observed endpoints kept; beyond, the least recently refreshed is forgotten. */
  maxNodes?: number;
  /** Wall clock in ms (tests). */
  nowMs?: () => number;
  /** Relay to and from the beacons of other rendezvous replicas (see the file comment). Absent: none. */
  replicaRelay?: ReplicaRelayOptions;
}

/** What the beacon needs to relay across replicas: the shared key and the directory lookup. */
export interface ReplicaRelayOptions {
  /** replicaRelayKey(shared beacon secret): the same on every replica. */
  key: Uint8Array;
  /**
   * The UDP address of the beacon of the replica the shared directory says holds `nodeId`, when that is another
   * replica; null otherwise (unknown node, held here, or that replica publishes no beacon address).
   */
  peerBeaconFor(nodeId: number): Remote | null;
  /** This beacon's id in the frames it forwards; default random. */
  beaconId?: number;
  /** Called on every discover / punch request that records a node's endpoint here (the directory notes it). */
  onObserved?(nodeId: number): void;
}

/** Counters remembered below the highest seen from one origin beacon (UDP reorders; a replay is refused). */
export const REPLAY_WINDOW = 4096;
/** Origin beacons whose replay windows are kept. */
const MAX_ORIGINS = 1024;

/** The counters seen from one origin beacon: the highest, and a bitmap of the REPLAY_WINDOW below it. */
class ReplayWindow {
  private top = -1;
  private readonly bits = new Uint8Array(REPLAY_WINDOW);
  /** Accept `c` (true, and remember it) unless seen already or below the window. */
  accept(c: number): boolean {
    if (c > this.top) {
      const gap = this.top < 0 ? REPLAY_WINDOW : Math.min(c - this.top, REPLAY_WINDOW);
      for (let i = 1; i <= gap; i++) this.bits[(c - gap + i) % REPLAY_WINDOW] = 0;
      this.top = c;
      this.bits[c % REPLAY_WINDOW] = 1;
      return true;
    }
    if (this.top - c >= REPLAY_WINDOW || this.bits[c % REPLAY_WINDOW] === 1) return false;
    this.bits[c % REPLAY_WINDOW] = 1;
    return true;
  }
}

/** A beacon channel's state inside the beacon. */
class ChannelState {
  readonly batch: RecordBatch;
  /** Bytes pushed into `batch` since the last flush. */
  batchBytes = 0;
  /** Node ids whose observed endpoint is this channel. */
  readonly nodeIds = new Set<number>();
  isClosed = false;
  constructor(
    readonly id: number,
    readonly ch: BeaconChannel,
    /** The TCP peer's IPv4 (0.0.0.0 if not v4): what discover over the channel answers, with port 0. */
    readonly ip: string,
    pool: MessageBufferPool,
  ) {
    this.batch = new RecordBatch(pool);
  }
}

/**
 * A datagram's source and a node's observed endpoint: a UDP endpoint (`channel` null), or a channel (`ip` its
 * TCP peer's IPv4, `port` 0).
 */
interface Endpoint {
  ip: string;
  port: number;
  channel: ChannelState | null;
}

interface Observed extends Endpoint {
  seenMs: number;
}

function isSameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.channel !== null || b.channel !== null ? a.channel === b.channel : a.ip === b.ip && a.port === b.port;
}

/** Highest authenticated counter accepted from a node, and when (kept 2 × maxClockSkewMs). */
interface CounterState {
  counter: number;
  seenMs: number;
}

class TokenBucket {
  private tokens: number;
  private lastMs: number;
  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.lastMs = nowMs;
  }
  take(n: number, nowMs: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, nowMs - this.lastMs) / 1000) * this.ratePerSec);
    this.lastMs = nowMs;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

interface SourceBudget {
  relay: TokenBucket;
  control: TokenBucket;
  lastMs: number;
}

const DEFAULT_MAX_CLOCK_SKEW_MS = 10 * 60_000;
const DEFAULT_MAX_SOURCES = 65_536;
const DEFAULT_MAX_NODES = 262_144;

export class BeaconServer {
  private readonly nodes = new Map<number, Observed>();
  private readonly counters = new Map<number, CounterState>();
  private readonly budgets = new Map<string, SourceBudget>();
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Our own counter for the punch commands we MAC. */
  private txCounter = 0;
  private readonly channels = new Set<ChannelState>();
  private nextChannelId = 1;
  /** Channels with records waiting for this turn's flush. */
  private readonly dirtyChannels = new Set<ChannelState>();
  private flushScheduled: NodeJS.Immediate | null = null;
  /** Channel message buffers, reused once each message's socket has taken it. */
  private readonly messagePool = new MessageBufferPool();
  /** A relay deliver datagram under construction, for sockets that copy on send. */
  private readonly relayScratch = Buffer.allocUnsafeSlow(5 + 65_535);
  /** Counters for tests and logs. */
  readonly stats = {
    discovers: 0,
    punches: 0,
    relayed: 0,
    /** Payload bytes of the frames relayed (the dashboard's "relayed"). */
    relayedBytes: 0,
    relayDropped: 0,
    rateLimited: 0,
    malformed: 0,
    /** Claimed a node id the registry does not know. */
    unknownNode: 0,
    /** Bare message for a token holder, or a MAC that does not verify. */
    authFailed: 0,
    /** Counter not above the last accepted, or too far from our clock. */
    replayed: 0,
    /** The registry does not let the requester learn the target's endpoint. */
    punchRefused: 0,
    /** Channels attached so far, and open now. */
    channels: 0,
    channelsOpen: 0,
    /** Channel messages that were not whole records, or text: the channel was closed with CLOSE_PROTOCOL_ERROR. */
    protocolErrors: 0,
    /** Punch requests from or to a node whose endpoint is a channel (no UDP mapping: no punch commands). */
    punchNoUdp: 0,
    /** Relayed frames dropped because the destination channel buffered too much (also in relayDropped). */
    channelBufferDropped: 0,
    /** WebSocket messages sent on channels (each one or more records). */
    channelMessagesSent: 0,
    /** Relay frames handed to another replica's beacon (0x08), and 0x08 frames delivered here. */
    replicaForwarded: 0,
    replicaDelivered: 0,
    /** 0x08 frames refused: no replica relay configured, or a MAC that does not verify. */
    replicaRefused: 0,
    /** 0x08 frames refused: counter already seen, below the window, or far from our clock. */
    replicaReplayed: 0,
  };
  /** Replay windows per origin beacon id (bounded, oldest first). */
  private readonly origins = new Map<number, ReplayWindow>();
  /** Our counter for the 0x08 frames we send. */
  private replicaCounter = 0;
  private readonly beaconId: number;

  private constructor(
    private readonly sock: BeaconSocket,
    private readonly sock2: BeaconSocket | null,
    private readonly opts: BeaconServerOptions,
  ) {
    this.beaconId = opts.replicaRelay?.beaconId ?? randomBytes(4).readUInt32BE(0);
  }

  /**
   * A beacon over sockets the caller owns (a simulated network: test/sim): `primary` answers everything,
   * `secondary` (another address of the rendezvous) discover only. close() closes them.
   */
  static over(sockets: { primary: BeaconSocket; secondary?: BeaconSocket }, opts: BeaconServerOptions): BeaconServer {
    const b = new BeaconServer(sockets.primary, sockets.secondary ?? null, opts);
    sockets.primary.onReceive((data, from) => b.handlePacket(data, { ip: normaliseIp(from.address), port: from.port, channel: null }, false));
    sockets.secondary?.onReceive((data, from) => b.handlePacket(data, { ip: normaliseIp(from.address), port: from.port, channel: null }, true));
    b.sweepTimer = setInterval(() => b.sweep(), 30_000);
    b.sweepTimer.unref();
    if (!opts.authority) opts.logger.warn('beacon runs without the registry: discover, punch and relay are unauthenticated (original behaviour)');
    return b;
  }

  /** Bind the socket(s). connection_failed when a bind fails. */
  static async start(opts: BeaconOptions): Promise<Result<BeaconServer>> {
    const sock = await bindBeaconSocket(opts.host, opts.port, opts.logger);
    if (!sock.ok) return sock;
    let sock2: BeaconSocket | null = null;
    if (opts.port2 !== undefined) {
      const s2 = await bindBeaconSocket(opts.host2 ?? opts.host, opts.port2, opts.logger);
      if (!s2.ok) {
        await sock.value.close();
        return s2;
      }
      sock2 = s2.value;
    }
    return ok(BeaconServer.over({ primary: sock.value, ...(sock2 ? { secondary: sock2 } : {}) }, opts));
  }

  address(): AddressInfo {
    return this.sock.address();
  }

  address2(): AddressInfo | null {
    return this.sock2 ? this.sock2.address() : null;
  }

  /** Last observed UDP endpoint (`ip:port`) for a node id; null when unknown or when it is a channel (no UDP mapping). */
  observedEndpoint(nodeId: number): string | null {
    const o = this.nodes.get(nodeId);
    if (!o || o.channel) return null;
    return o.ip.includes(':') ? `[${o.ip}]:${o.port}` : `${o.ip}:${o.port}`;
  }

  /**
   * A new channel (one WebSocket): the beacon treats it as a source endpoint (see the file comment). The caller
   * feeds every message into `receive` and calls `closed` once the channel is gone. No I/O but `ch`'s.
   */
  attachChannel(ch: BeaconChannel): BeaconChannelHandle {
    const v4 = normaliseIp(ch.remote.address);
    const state = new ChannelState(this.nextChannelId++, ch, /^\d{1,3}(\.\d{1,3}){3}$/.test(v4) ? v4 : '0.0.0.0', this.messagePool);
    this.channels.add(state);
    this.stats.channels++;
    this.stats.channelsOpen++;
    const from: Endpoint = { ip: state.ip, port: 0, channel: state };
    return {
      receive: (msg, isBinary) => {
        if (state.isClosed) return;
        const records = isBinary ? decodeRecords(msg) : null;
        if (!records?.ok) {
          this.stats.protocolErrors++;
          const reason = records ? records.error.message : 'text message';
          this.opts.logger.debug({ remote: `${ch.remote.address}:${ch.remote.port}`, reason }, 'beacon channel protocol error, closing');
          ch.close(CLOSE_PROTOCOL_ERROR, 'not whole records');
          this.detach(state);
          return;
        }
        for (const d of records.value) {
          if (state.isClosed) return;
          this.handlePacket(d, from, false);
        }
      },
      closed: () => this.detach(state),
    };
  }

  /** Channels open now (tests). */
  get openChannels(): number {
    return this.channels.size;
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
    for (const c of [...this.channels]) this.detach(c);
    await Promise.all([this.sock.close(), this.sock2 ? this.sock2.close() : Promise.resolve()]);
  }

  /** Forget a channel and every node endpoint that pointed at it; idempotent. */
  private detach(state: ChannelState): void {
    if (state.isClosed) return;
    state.isClosed = true;
    this.channels.delete(state);
    this.dirtyChannels.delete(state);
    this.stats.channelsOpen--;
    for (const id of state.nodeIds) if (this.nodes.get(id)?.channel === state) this.nodes.delete(id);
    state.nodeIds.clear();
    this.budgets.delete(budgetKey({ ip: state.ip, port: 0, channel: state }));
  }

  private now(): number {
    return this.opts.nowMs ? this.opts.nowMs() : Date.now();
  }

  private handlePacket(msg: Uint8Array, from: Endpoint, isSecondary: boolean): void {
    const nowMs = this.now();
    const budget = this.budgetFor(from, nowMs);
    const decoded = decodeBeaconMessage(msg);
    if (!decoded.ok) {
      this.stats.malformed++;
      if (!budget.control.take(1, nowMs)) this.limited(from);
      return;
    }
    const m = decoded.value;
    if (m.kind === 'relay') {
      if (!isSecondary) this.handleRelay(m, from, budget, nowMs);
      return;
    }
    if (m.kind === 'replica_relay') {
      if (!isSecondary && !from.channel) this.handleReplicaRelay(m, from, budget, nowMs);
      else this.stats.replicaRefused++;
      return;
    }
    if (!budget.control.take(1, nowMs)) return this.limited(from);
    switch (m.kind) {
      case 'discover': {
        // The second address records nothing, so it checks no counter (the node's discovers to both
        // addresses share one); it still answers only known senders, to reflect nothing to strangers.
        const sender = this.authenticate(m.nodeId, m.auth, nowMs, isSecondary);
        if (!sender) return;
        this.stats.discovers++;
        if (!isSecondary) this.observe(m.nodeId, from, nowMs);
        this.send(isSecondary ? this.sock2! : this.sock, { kind: 'discover_reply', ip: from.ip, port: from.port }, from);
        return;
      }
      case 'punch_request':
        if (!isSecondary) this.handlePunchRequest(m, from, nowMs);
        return;
      case 'sync':
        this.opts.logger.debug({ beaconId: m.beaconId, nodes: m.nodeIds.length }, 'beacon gossip ignored');
        return;
      default:
        // Replies/commands/delivers are beacon → node only.
        this.stats.malformed++;
        return;
    }
  }

  private handlePunchRequest(m: Extract<BeaconMessage, { kind: 'punch_request' }>, from: Endpoint, nowMs: number): void {
    const requester = this.authenticate(m.fromNodeId, m.auth, nowMs, false);
    if (!requester) return;
    // As the original: the request refreshes the requester's endpoint (symmetric NATs move it).
    this.observe(m.fromNodeId, from, nowMs);
    const authority = this.opts.authority;
    if (authority && !authority.mayPunch(m.fromNodeId, m.toNodeId)) {
      this.stats.punchRefused++;
      this.opts.logger.debug({ from: m.fromNodeId, to: m.toNodeId }, 'beacon punch refused: target does not trust the requester');
      return;
    }
    const target = this.nodes.get(m.toNodeId);
    const targetAuth = authority ? authority.nodeAuth(m.toNodeId) : null;
    if (!target || (authority && !targetAuth)) {
      this.opts.logger.debug({ target: m.toNodeId }, 'beacon punch: target unknown');
      return;
    }
    if (from.channel || target.channel) {
      // No UDP mapping on one side: nothing to punch towards; the nodes stay on the relay.
      this.stats.punchNoUdp++;
      this.opts.logger.debug({ from: m.fromNodeId, to: m.toNodeId }, 'beacon punch: an endpoint is a channel, no punch');
      return;
    }
    this.stats.punches++;
    this.sendPunchCommand(requester.node, m.toNodeId, target, from, nowMs);
    this.sendPunchCommand(targetAuth, m.fromNodeId, from, target, nowMs);
  }

  /** Tell `to` to punch towards `peer` (node `peerNodeId`): MACed with `to`'s token when it has one. */
  private sendPunchCommand(
    toAuth: BeaconNodeAuth | null,
    peerNodeId: number,
    peer: Endpoint,
    to: Endpoint,
    nowMs: number,
  ): void {
    if (!toAuth?.token) {
      this.send(this.sock, { kind: 'punch_command', ip: peer.ip, port: peer.port }, to);
      return;
    }
    this.txCounter = Math.max(this.txCounter + 1, nowMs * 1000);
    const bytes = encodeAuthenticatedBeaconMessage({ kind: 'punch_command', ip: peer.ip, port: peer.port, peerNodeId }, toAuth.token, this.txCounter);
    if (bytes.ok) this.sendBytes(this.sock, bytes.value, to);
  }

  private handleRelay(m: Extract<BeaconMessage, { kind: 'relay' }>, from: Endpoint, budget: SourceBudget, nowMs: number): void {
    // Charged before any check, so a source spraying forged relay frames pays for them too.
    if (!budget.relay.take(m.payload.length + 9, nowMs)) return this.limited(from);
    const sender = this.nodes.get(m.senderNodeId);
    if (!sender || !isSameEndpoint(sender, from)) {
      this.stats.relayDropped++;
      return;
    }
    const dest = this.nodes.get(m.destNodeId);
    if (!dest) {
      if (!this.forwardToReplica(m, nowMs)) this.stats.relayDropped++;
      return;
    }
    this.deliver(dest, m.senderNodeId, m.payload);
  }

  /** A relay frame for a node another replica holds: to that replica's beacon as 0x08. False: nobody to send to. */
  private forwardToReplica(m: Extract<BeaconMessage, { kind: 'relay' }>, nowMs: number): boolean {
    const rr = this.opts.replicaRelay;
    const peer = rr?.peerBeaconFor(m.destNodeId);
    if (!rr || !peer) return false;
    this.replicaCounter = Math.max(this.replicaCounter + 1, nowMs * 1000);
    const bytes = encodeReplicaRelay(rr.key, {
      originBeaconId: this.beaconId,
      senderNodeId: m.senderNodeId,
      destNodeId: m.destNodeId,
      counter: this.replicaCounter,
      payload: m.payload,
    });
    if (!bytes.ok) return false;
    this.sock.send(bytes.value, normaliseIp(peer.address), peer.port);
    this.stats.replicaForwarded++;
    return true;
  }

  /** A 0x08 frame from another replica's beacon: authenticated, fresh, for a node observed here → delivered. */
  private handleReplicaRelay(m: ReplicaRelayMessage, from: Endpoint, budget: SourceBudget, nowMs: number): void {
    if (!budget.relay.take(m.payload.length + 37, nowMs)) return this.limited(from);
    const rr = this.opts.replicaRelay;
    if (!rr || !verifyReplicaRelay(m, rr.key)) {
      this.stats.replicaRefused++;
      this.opts.logger.debug({ from: `${from.ip}:${from.port}` }, 'beacon replica relay refused (not authenticated)');
      return;
    }
    const skewMs = this.opts.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    if (Math.abs(m.counter / 1000 - nowMs) > skewMs) {
      this.stats.replicaReplayed++;
      return;
    }
    let w = this.origins.get(m.originBeaconId);
    if (!w) {
      w = new ReplayWindow();
      this.origins.set(m.originBeaconId, w);
      if (this.origins.size > MAX_ORIGINS) this.origins.delete(this.origins.keys().next().value!);
    }
    if (!w.accept(m.counter)) {
      this.stats.replicaReplayed++;
      return;
    }
    const dest = this.nodes.get(m.destNodeId);
    if (!dest) {
      // Never forwarded again: a stale directory must not make frames loop between replicas.
      this.stats.relayDropped++;
      return;
    }
    this.stats.replicaDelivered++;
    this.deliver(dest, m.senderNodeId, m.payload);
  }

  /** A relay deliver of `payload` from `senderNodeId` to an observed endpoint (UDP or channel). */
  private deliver(dest: Observed, senderNodeId: number, payload: Uint8Array): void {
    if (dest.channel && !this.hasChannelRoom(dest.channel, 7 + payload.length)) {
      this.stats.relayDropped++;
      this.stats.channelBufferDropped++;
      return;
    }
    const state = dest.channel;
    if (state) {
      // Written straight into the channel's message for this turn's flush.
      if (state.isClosed || !state.batch.pushRelayDeliver(senderNodeId, payload)) return;
      this.noteBatched(state, 5 + payload.length);
    } else if (this.sock.copiesOnSend) {
      // The socket copies into its send batch: one scratch buffer serves every frame.
      const n = writeRelayDeliver(this.relayScratch, senderNodeId, payload);
      this.sock.send(this.relayScratch.subarray(0, n), dest.ip, dest.port);
    } else {
      // dgram owns the buffer until the send callback, so each relayed frame gets its own.
      const out = Buffer.allocUnsafe(5 + payload.length);
      writeRelayDeliver(out, senderNodeId, payload);
      this.sock.send(out, dest.ip, dest.port);
    }
    this.stats.relayed++;
    this.stats.relayedBytes += payload.length;
  }

  /** May `bytes` more be queued on the channel (queued on the socket + this turn's batch, under the cap)? */
  private hasChannelRoom(state: ChannelState, bytes: number): boolean {
    return state.ch.bufferedBytes() + state.batchBytes + bytes <= MAX_CHANNEL_BUFFERED_BYTES;
  }

  /**
   * Does this message really come from `nodeId`? Without an authority, yes (original behaviour). A token
   * holder must MAC it, with a counter above the last one accepted (checked and recorded unless
   * `isReadOnly`) and near our clock; a legacy node may send it bare. null (counted) when refused; else the
   * sender as the registry sees it (null without an authority).
   */
  private authenticate(nodeId: number, auth: BeaconAuth | undefined, nowMs: number, isReadOnly: boolean): { node: BeaconNodeAuth | null } | null {
    const authority = this.opts.authority;
    if (!authority) return { node: null };
    const node = authority.nodeAuth(nodeId);
    if (!node) {
      this.stats.unknownNode++;
      return null;
    }
    if (!node.token) {
      if (node.isLegacy) return { node };
      this.stats.authFailed++;
      return null;
    }
    if (!auth) {
      this.stats.authFailed++;
      return null;
    }
    const skewMs = this.opts.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    const last = isReadOnly ? undefined : this.counters.get(nodeId);
    if ((last && auth.counter <= last.counter) || Math.abs(auth.counter / 1000 - nowMs) > skewMs) {
      this.stats.replayed++;
      return null;
    }
    if (!verifyBeaconAuth(auth, node.token)) {
      this.stats.authFailed++;
      return null;
    }
    if (!isReadOnly) {
      this.counters.delete(nodeId);
      this.counters.set(nodeId, { counter: auth.counter, seenMs: nowMs });
      if (this.counters.size > (this.opts.maxNodes ?? DEFAULT_MAX_NODES)) this.counters.delete(this.counters.keys().next().value!);
    }
    return { node };
  }

  /** Record a node's endpoint; the table is bounded, the least recently refreshed entry goes first. */
  private observe(nodeId: number, at: Endpoint, nowMs: number): void {
    this.forget(nodeId);
    this.nodes.set(nodeId, { ip: at.ip, port: at.port, channel: at.channel, seenMs: nowMs });
    at.channel?.nodeIds.add(nodeId);
    this.opts.replicaRelay?.onObserved?.(nodeId);
    if (this.nodes.size > (this.opts.maxNodes ?? DEFAULT_MAX_NODES)) this.forget(this.nodes.keys().next().value!);
  }

  private forget(nodeId: number): void {
    const o = this.nodes.get(nodeId);
    if (!o) return;
    this.nodes.delete(nodeId);
    o.channel?.nodeIds.delete(nodeId);
  }

  private send(sock: BeaconSocket, m: BeaconMessage, to: Endpoint): void {
    const bytes = encodeBeaconMessage(m);
    if (bytes.ok) this.sendBytes(sock, bytes.value, to);
  }

  /** To a UDP endpoint through `sock`, or into a channel's batch for this turn's flush. */
  private sendBytes(sock: BeaconSocket, bytes: Uint8Array, to: Endpoint): void {
    const state = to.channel;
    if (!state) {
      sock.send(bytes, to.ip, to.port);
      return;
    }
    if (state.isClosed || !state.batch.push(bytes)) return;
    this.noteBatched(state, bytes.length);
  }

  private noteBatched(state: ChannelState, datagramBytes: number): void {
    state.batchBytes += datagramBytes + 2;
    this.dirtyChannels.add(state);
    // One flush per event-loop turn: every datagram handled in this turn's I/O phase rides in one message.
    this.flushScheduled ??= setImmediate(() => this.flushChannels());
  }

  private flushChannels(): void {
    this.flushScheduled = null;
    for (const state of this.dirtyChannels) {
      state.batchBytes = 0;
      for (const msg of state.batch.take()) {
        this.stats.channelMessagesSent++;
        state.ch.send(msg, () => this.messagePool.release(msg));
      }
    }
    this.dirtyChannels.clear();
  }

  /** The source endpoint's budget. The table is bounded: a flood of fresh sources evicts the oldest entries. */
  private budgetFor(from: Endpoint, nowMs: number): SourceBudget {
    const key = budgetKey(from);
    let b = this.budgets.get(key);
    if (!b) {
      const relayRate = this.opts.relayBytesPerSec ?? 64 * 1024 * 1024;
      const controlRate = this.opts.controlPacketsPerSec ?? 50;
      b = {
        relay: new TokenBucket(relayRate, relayRate, nowMs),
        control: new TokenBucket(controlRate, controlRate * 2, nowMs),
        lastMs: nowMs,
      };
      this.budgets.set(key, b);
      if (this.budgets.size > (this.opts.maxSources ?? DEFAULT_MAX_SOURCES)) this.budgets.delete(this.budgets.keys().next().value!);
    }
    b.lastMs = nowMs;
    return b;
  }

  private limited(from: Endpoint): void {
    this.stats.rateLimited++;
    this.opts.logger.debug({ from: from.channel ? `channel ${from.channel.id} (${from.ip})` : `${from.ip}:${from.port}` }, 'beacon rate limited');
  }

  /** Sizes of the bounded tables (tests). */
  tableSizes(): { nodes: number; counters: number; sources: number } {
    return { nodes: this.nodes.size, counters: this.counters.size, sources: this.budgets.size };
  }

  private sweep(): void {
    const nowMs = this.now();
    const ttl = this.opts.endpointTtlMs ?? 10 * 60_000;
    const counterTtl = 2 * (this.opts.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS);
    for (const [id, o] of this.nodes) if (nowMs - o.seenMs > ttl) this.forget(id);
    // A forgotten counter re-opens replays of messages still within the clock window: keep it past that.
    for (const [id, c] of this.counters) if (nowMs - c.seenMs > counterTtl) this.counters.delete(id);
    for (const [k, b] of this.budgets) if (nowMs - b.lastMs > 60_000) this.budgets.delete(k);
  }
}

/** Budgets are per UDP endpoint, or per channel. */
function budgetKey(e: Endpoint): string {
  return e.channel ? `#${e.channel.id}` : `${e.ip}|${e.port}`;
}

/** `::ffff:1.2.3.4` (dual-stack sockets) → `1.2.3.4`, as Go's To4() in the original's replies. */
function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
