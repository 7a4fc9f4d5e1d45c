// The Noise suite: encrypted tunnels to peers — Noise IK handshakes (with retries), session installation and
// rekey, sealing outgoing plaintexts and opening incoming PND1 frames. Its timers are the node's Driver's; the
// crypto below it stays sans-IO. One TunnelPeer per remote node id.
import type { Logger } from 'pino';
import { err, ok, type Result } from '../../core/result.js';
import type { PilotError } from '../../core/errors.js';
import { ViewCache } from '../../core/view-cache.js';
import type { Micros, WallClock } from '../../core/clock.js';
import type { Rng } from '../../core/rng.js';
import type { Deadline, Driver } from '../driver.js';
import {
  COOKIE_LIFETIME_US,
  createInitiator,
  createInitiationReplayGuard,
  HandshakeGuard,
  identityX25519,
  respond,
  type InitiationSource,
  type NoiseInitiation,
  type NoiseSession,
  type Identity,
} from '../../crypto/index.js';
import { decodePmtuAck, decodePmtuProbe, encodePmtuAck, encodePmtuProbe, KIND_PMTU_ACK, KIND_PMTU_PROBE } from '../../wire/segment.js';
import { noiseFrameKind, peekNoiseDataReceiver, decodeNoiseResponse, readU32LE, NOISE_DATA_HEADER_BYTES, NOISE_DATA_OVERHEAD_BYTES, NOISE_TAG_BYTES } from '../../wire/noise-frame.js';
import { PacketBatch, ipv4ToU32, u32ToIpv4 } from '../../datapath/packet-batch.js';
import { RECV_FORGED, RECV_OPENED, type TunnelKeyTable } from '../../datapath/types.js';
import type { DataCipherSupport } from '../../crypto/data-cipher.js';
import type { UdpEndpoint as WireUdpEndpoint } from '../../wire/endpoint.js';
import { RELAY_HEADER_BYTES, writeRelayHeader } from '../../wire/beacon-message.js';
import { PathMtu, BASE_PLPMTU, CONFIRM_INTERVAL_US, MAX_PLPMTU } from '../../transport/pmtud.js';

/** A path to a peer: a UDP endpoint (src/wire/endpoint.ts) and how to send there. */
export interface UdpEndpoint extends WireUdpEndpoint {
  /** Cached numeric form of `ip` for the send batch. */
  ipU32?: number;
  /** Set on relay paths: frames go to the beacon at ip:port wrapped in a relay message for this node. */
  relayTo?: number;
  /** Send from this extra socket instead of the tunnel socket (a birthday-probing winner). */
  via?: { send(data: Uint8Array, ip: string, port: number): void };
}

export interface UdpSender {
  send(data: Uint8Array, ip: string, port: number): void;
  /** Many datagrams in one call (sendmmsg / GSO on the native datapath). */
  sendBatch(batch: PacketBatch): void;
  /** The socket's session key table (native datapath): sessions installed there are sealed in the send call
   * and opened on the reader thread; without it the suite seals and opens in JS. */
  readonly keys?: TunnelKeyTable | null;
  /** The local route's MTU towards ip:port (native datapath over UDP); absent or null: no path MTU discovery. */
  routeMtu?(ip: string, port: number): number | null;
}

export interface PeerContact {
  ed25519: Uint8Array;
  /** Candidate endpoints to try, best first. */
  endpoints: UdpEndpoint[];
}

export interface TunnelDeps {
  identity: Identity;
  nodeId: () => number;
  udp: UdpSender;
  logger: Logger;
  nowUs: () => Micros;
  /** Handshake retries and the end-of-turn transmit flush (the node registers `flushTx` with driver.onFlush). */
  driver: Driver;
  /** Initiation timestamps (they must rise across restarts too). */
  wall: WallClock;
  /** Session indices. */
  rng: Rng;
  /** Ed25519 key and endpoints of a peer (registry resolve + lookup). */
  resolvePeer(nodeId: number): Promise<Result<PeerContact>>;
  /** May this initiator open a tunnel to us? (trusted with the same key, or we are public and the registry agrees) */
  authorize(nodeId: number, ed25519: Uint8Array): Promise<Result<void>>;
  /** Decrypted plaintext from an established session. The view is only valid during the call. */
  onPlaintext(peer: TunnelPeer, plaintext: Uint8Array, now: Micros): void;
  /** Called when a tunnel to a peer has been established (either side). */
  onSessionUp?(peer: TunnelPeer): void;
  /** Called when we start a handshake (the daemon asks the beacon to coordinate a hole punch). */
  onHandshakeStart?(peer: TunnelPeer): void;
  /** Give up on a handshake after this long. */
  handshakeTimeoutMs?: number;
  /** The beacon that relays frames when no direct path exists; null disables the relay. */
  relay(): UdpEndpoint | null;
  /** Initiation attempts sent direct-only before the relay joins the race. */
  directOnlyAttempts?: number;
  /** Initiations a second (with a valid mac1) above which we answer with cookies (src/crypto/cookie.ts). */
  underLoadPerS?: number;
  /** Path MTU discovery on direct paths (DPLPMTUD, src/transport/pmtud.ts). Default true. */
  pmtud?: boolean;
  /** The largest plaintext a peer's path carries changed (streams resize their segments). */
  onPathMtu?(peer: TunnelPeer, plaintextBytes: number): void;
}

interface SessionEntry {
  peer: TunnelPeer;
  session: NoiseSession;
}

export class TunnelPeer {
  endpoint: UdpEndpoint | null = null;
  candidates: UdpEndpoint[] = [];
  ed25519: Uint8Array | null = null;
  current: NoiseSession | null = null;
  previous: NoiseSession | null = null;
  initiation: NoiseInitiation | null = null;
  waiters: ((r: Result<void>) => void)[] = [];
  retryTimer: Deadline | null = null;
  lastRecvUs: Micros = 0;
  lastSendUs: Micros = 0;
  rttUs: Micros | null = null;
  /** Last authenticated packet that arrived directly (not through the relay). */
  lastDirectRecvUs: Micros = 0;
  handshakeStartedUs: Micros = 0;
  isResolving = false;
  /** The PNI1 frame of the initiation in flight, re-sent to endpoints learned while punching. */
  initiationMessage: Uint8Array | null = null;
  /** Retry count of the initiation in flight (a cookie reply re-sends at the same attempt). */
  initiationAttempt = 0;
  /** The peer's cookie (it was under load and asked for mac2), and when it arrived. */
  cookie: Uint8Array | null = null;
  cookieAtUs: Micros = 0;
  /** DPLPMTUD on the current direct path (null: relayed, an extra socket, or discovery off: 1452 bytes). */
  pmtu: PathMtu | null = null;
  pmtuTimer: Deadline | null = null;
  /** The endpoint `pmtu` measures (ip:port). */
  pmtuPath = '';
  /** Discovery waits for this peer's first data: a peer that only ever exchanges keepalives is never probed (a
   * daemon with 10,000 idle peers sent each a search of up to 65,000-byte probes nobody needed: +40 MiB RSS). */
  isPmtuDeferred = false;
  /** Last plaintext sent that was neither a keepalive nor path MTU discovery's own. */
  lastDataSendUs: Micros = 0;
  /** pathPlaintextBytes as last told to onPathMtu. */
  reportedPathBytes = BASE_PLPMTU - NOISE_DATA_OVERHEAD_BYTES;
  constructor(readonly nodeId: number) {}

  /** The largest plaintext a frame on the current path may carry. */
  get pathPlaintextBytes(): number {
    return (this.pmtu?.plpmtu ?? BASE_PLPMTU) - NOISE_DATA_OVERHEAD_BYTES;
  }

  get isUp(): boolean {
    return this.current !== null;
  }

  get isRelayed(): boolean {
    return this.endpoint?.relayTo !== undefined;
  }
}

const KEEPALIVE_BYTE = 0x10;
const TX_BATCH_PACKETS = 64;
/** A relay packet may not take the peer off a direct path that was heard from this recently. */
const DIRECT_PATH_GRACE_US = 3_000_000;
/** ensureSession re-handshakes when the peer has been silent this long. */
const STALE_SESSION_US = 5_000_000;

export class NoiseSuite {
  readonly peers = new Map<number, TunnelPeer>();
  private readonly byIndex = new Map<number, SessionEntry>();
  private readonly initiations = new Map<number, TunnelPeer>();
  private readonly replayGuard = createInitiationReplayGuard();
  /** mac1 on every initiation, cookies and per-source limits under load: no DH for a flood. */
  private handshakeGuard: HandshakeGuard;
  // Data frames are sealed straight into one flat batch and leave in one sendmmsg/GSO call per flush.
  // Room for 64 base-size frames, or 16 of the largest a discovered path MTU allows.
  private readonly txBatch = new PacketBatch(TX_BATCH_PACKETS, 16 * MAX_PLPMTU);
  private probeBuf: Uint8Array | null = null;
  private readonly ackBuf = new Uint8Array(16);
  private readonly scratch = new Uint8Array(2048);
  /** Plaintext views into the datapath's receive ring (handleOpened), made once per region (core/view-cache.ts). */
  private readonly openedViews = new ViewCache();
  private lastTimestampS = 0;
  private readonly keys: TunnelKeyTable | null;
  /** What both handshake sides offer or accept beyond ChaCha20-Poly1305: the key table's data ciphers. */
  private readonly cipherOpts: { dataCiphers?: DataCipherSupport };

  constructor(private readonly deps: TunnelDeps) {
    this.keys = deps.udp.keys ?? null;
    this.cipherOpts = this.keys?.dataCiphers ? { dataCiphers: this.keys.dataCiphers } : {};
    // Every entry is written per packet (0 = sealed here), so the array is reused as it is.
    if (this.keys) this.txBatch.keys = new Uint32Array(TX_BATCH_PACKETS);
    this.handshakeGuard = new HandshakeGuard({
      staticX25519: identityX25519(deps.identity).publicKey,
      ...(deps.underLoadPerS !== undefined ? { underLoadPerS: deps.underLoadPerS } : {}),
    });
  }

  peer(nodeId: number): TunnelPeer {
    let p = this.peers.get(nodeId);
    if (!p) {
      p = new TunnelPeer(nodeId);
      this.peers.set(nodeId, p);
    }
    return p;
  }

  /** Resolves once a session to `nodeId` is up (handshaking if needed). Errors: not_found, connection_failed, timeout. */
  async ensureSession(nodeId: number): Promise<Result<TunnelPeer>> {
    const peer = this.peer(nodeId);
    const now = this.deps.nowUs();
    // A session nobody has heard from for a while may point at a peer that restarted (new index, maybe a
    // new endpoint): re-handshake (one round trip) rather than send into the void.
    const isFresh = now - peer.lastRecvUs < STALE_SESSION_US;
    if (peer.current && !peer.current.isExpired(now) && isFresh) {
      if (peer.current.needsRekey(now) && !peer.initiation) void this.startHandshake(peer);
      return ok(peer);
    }
    const done = new Promise<Result<void>>((resolve) => peer.waiters.push(resolve));
    if (!peer.initiation && !peer.isResolving) void this.startHandshake(peer);
    const r = await done;
    return r.ok ? ok(peer) : r;
  }

  /** Start a fresh handshake now unless one is under way (the peer may have restarted behind our session). */
  rehandshake(peer: TunnelPeer): void {
    if (!peer.initiation && !peer.isResolving) void this.startHandshake(peer);
  }

  private settle(peer: TunnelPeer, r: Result<void>): void {
    const ws = peer.waiters;
    peer.waiters = [];
    for (const w of ws) w(r);
  }

  private newIndex(): number {
    for (;;) {
      const i = 1 + this.deps.rng.int(0xfffffffe);
      if (!this.byIndex.has(i) && !this.initiations.has(i)) return i;
    }
  }

  private async startHandshake(peer: TunnelPeer): Promise<void> {
    if (peer.isResolving) return;
    // Marked before the await so concurrent callers join this attempt.
    peer.isResolving = true;
    const contact = await this.deps.resolvePeer(peer.nodeId);
    peer.isResolving = false;
    if (!contact.ok) {
      this.settle(peer, contact);
      return;
    }
    peer.ed25519 = contact.value.ed25519;
    peer.candidates = contact.value.endpoints;
    if (peer.candidates.length === 0 && !peer.endpoint && !this.deps.relay()) {
      this.settle(peer, err('connection_failed', `node ${peer.nodeId} has no known endpoint`));
      return;
    }
    peer.handshakeStartedUs = this.deps.nowUs();
    this.deps.onHandshakeStart?.(peer);
    this.sendInitiation(peer, 0);
  }

  private sendInitiation(peer: TunnelPeer, attempt: number): void {
    const now = this.deps.nowUs();
    const timeoutMs = this.deps.handshakeTimeoutMs ?? 5000;
    if ((now - peer.handshakeStartedUs) / 1000 >= timeoutMs) {
      this.dropInitiation(peer);
      this.settle(peer, err('connection_failed', `no tunnel answer from node ${peer.nodeId} within ${timeoutMs} ms`, {
        hint: 'peer offline, unreachable, or it does not trust us yet: `pilotctl handshake <peer>`',
      }));
      return;
    }
    this.dropInitiation(peer);
    // Timestamps must rise across initiations (responder replay guard); wall clock in ms resolution.
    const ts = Math.max(this.deps.wall.nowMs() / 1000, this.lastTimestampS + 0.001);
    this.lastTimestampS = ts;
    const localIndex = this.newIndex();
    const hasCookie = peer.cookie !== null && now - peer.cookieAtUs < COOKIE_LIFETIME_US;
    const init = createInitiator({
      local: this.deps.identity,
      localNodeId: this.deps.nodeId(),
      localIndex,
      remoteStatic: peer.ed25519!,
      remoteNodeId: peer.nodeId,
      timestampS: ts,
      now,
      cookie: hasCookie ? peer.cookie : null,
      ...this.cipherOpts,
    });
    if (!init.ok) {
      this.settle(peer, init);
      return;
    }
    peer.initiation = init.value.state;
    peer.initiationMessage = init.value.message;
    peer.initiationAttempt = attempt;
    this.initiations.set(localIndex, peer);
    const targets = peer.endpoint ? [peer.endpoint, ...peer.candidates.filter((c) => !sameEp(c, peer.endpoint!))] : [...peer.candidates];
    // Race the relay once the direct attempts went unanswered for a few hundred ms (issue 4: data on the
    // relay within 1 s of the direct attempts failing); the direct path can still win and take over later.
    const relay = this.deps.relay();
    if (relay && attempt >= (this.deps.directOnlyAttempts ?? 2) && !targets.some((t) => t.relayTo !== undefined)) {
      targets.push({ ip: relay.ip, port: relay.port, relayTo: peer.nodeId });
    }
    for (const ep of targets) this.sendRaw(init.value.message, ep);
    const delayMs = Math.min(100 * 2 ** attempt, 1000);
    peer.retryTimer = this.deps.driver.after(delayMs, () => {
      peer.retryTimer = null;
      if (peer.initiation === init.value.state) this.sendInitiation(peer, attempt + 1);
    });
  }

  /**
   * A punch packet arrived from ip:port. If we are handshaking with a peer at that IP, this is probably its
   * NAT's mapping toward us (a symmetric NAT picks a new port per destination): try the handshake there too.
   */
  handlePunchFrom(ip: string, port: number): void {
    for (const peer of this.peers.values()) {
      if (!peer.initiation || !peer.initiationMessage) continue;
      if (!peer.candidates.some((c) => c.ip === ip) || peer.candidates.some((c) => c.ip === ip && c.port === port)) continue;
      const ep = { ip, port };
      peer.candidates.push(ep);
      this.sendRaw(peer.initiationMessage, ep);
    }
  }

  /** Send a whole UDP payload to an endpoint, wrapping it for the beacon on relay paths. */
  private sendRaw(payload: Uint8Array, ep: UdpEndpoint): void {
    if (ep.relayTo === undefined) {
      this.deps.udp.send(payload, ep.ip, ep.port);
      return;
    }
    const out = new Uint8Array(RELAY_HEADER_BYTES + payload.length);
    writeRelayHeader(out, 0, this.deps.nodeId(), ep.relayTo);
    out.set(payload, RELAY_HEADER_BYTES);
    this.deps.udp.send(out, ep.ip, ep.port);
  }

  private dropInitiation(peer: TunnelPeer): void {
    if (peer.initiation) this.initiations.delete(peer.initiation.localIndex);
    peer.initiation = null;
    peer.initiationMessage = null;
    peer.retryTimer?.cancel();
    peer.retryTimer = null;
  }

  private install(peer: TunnelPeer, session: NoiseSession): void {
    if (peer.previous) this.forget(peer.previous);
    peer.previous = peer.current;
    peer.current = session;
    this.byIndex.set(session.localIndex, { peer, session });
    // Keys cross to the datapath once; if it refuses them, this session is sealed and opened here instead.
    if (this.keys) {
      const { sendKey, recvKey } = session.exportKeys();
      if (this.keys.install(session.localIndex, sendKey, recvKey, session.cipher)) session.datapathKeyId = session.localIndex;
    }
    this.deps.onSessionUp?.(peer);
    if (!peer.pmtu) this.pathChanged(peer, this.deps.nowUs());
  }

  /** Plaintext of an authentic frame: path MTU probes and their acks are the suite's, the rest the node's. */
  private deliver(peer: TunnelPeer, plaintext: Uint8Array, now: Micros): void {
    const kind = plaintext[0];
    if (kind === KIND_PMTU_PROBE) {
      const id = decodePmtuProbe(plaintext);
      // Answer on the path it came by (sendPlaintext uses the peer's current endpoint, which this frame set).
      if (id !== null) this.sendPlaintext(peer, this.ackBuf.subarray(0, encodePmtuAck(id, plaintext.length, this.ackBuf)), now);
      return;
    }
    if (kind === KIND_PMTU_ACK) {
      const a = decodePmtuAck(plaintext);
      if (a && peer.pmtu) {
        peer.pmtu.onAck(a.id, now);
        this.pumpPmtu(peer, now);
      }
      return;
    }
    this.deps.onPlaintext(peer, plaintext, now);
  }

  /**
   * The peer's path changed (or its first session came up): path MTU discovery starts over on a direct UDP path
   * the datapath can measure, and is off (1452) on the relay, an extra socket, or without a route MTU.
   */
  private pathChanged(peer: TunnelPeer, now: Micros): void {
    const ep = peer.endpoint;
    const key = ep ? `${ep.ip}:${ep.port}` : '';
    const isMeasurable = this.deps.pmtud !== false && ep !== null && ep.relayTo === undefined && !ep.via && this.deps.udp.routeMtu !== undefined;
    if (!isMeasurable || peer.lastDataSendUs === 0) {
      peer.pmtu = null;
      peer.pmtuPath = '';
      peer.pmtuTimer?.cancel();
      peer.pmtuTimer = null;
      peer.isPmtuDeferred = isMeasurable; // sendPlaintext starts it with the first data
    } else if (peer.pmtuPath !== key || !peer.pmtu) {
      peer.isPmtuDeferred = false;
      peer.pmtu = new PathMtu(this.deps.udp.routeMtu!(ep.ip, ep.port), now);
      peer.pmtuPath = key;
      this.pumpPmtu(peer, now);
    }
    this.reportPathMtu(peer);
  }

  /** Tell onPathMtu when the peer's path size differs from what it was last told (one place for every cause). */
  private reportPathMtu(peer: TunnelPeer): void {
    const bytes = peer.pathPlaintextBytes;
    if (bytes === peer.reportedPathBytes) return;
    peer.reportedPathBytes = bytes;
    this.deps.onPathMtu?.(peer, bytes);
  }

  /** Send the probe discovery asks for now, and wake it at its next deadline. */
  private pumpPmtu(peer: TunnelPeer, now: Micros): void {
    const m = peer.pmtu;
    if (!m) return;
    const probe = peer.current ? m.poll(now, now - peer.lastDataSendUs > CONFIRM_INTERVAL_US) : null;
    this.reportPathMtu(peer); // an ack or a lost confirmation may have changed it
    if (probe) {
      this.probeBuf ??= new Uint8Array(MAX_PLPMTU);
      const n = encodePmtuProbe(probe.id, probe.bytes - NOISE_DATA_OVERHEAD_BYTES, this.probeBuf);
      if (n > 0) this.sendPlaintext(peer, this.probeBuf.subarray(0, n), now);
    }
    peer.pmtuTimer?.cancel();
    peer.pmtuTimer = null;
    const at = m.deadlineUs;
    if (at !== Infinity) {
      peer.pmtuTimer = this.deps.driver.at(at, () => {
        peer.pmtuTimer = null;
        if (peer.pmtu === m) this.pumpPmtu(peer, this.deps.nowUs());
      });
    }
  }

  private forget(session: NoiseSession): void {
    this.byIndex.delete(session.localIndex);
    if (session.datapathKeyId !== 0) {
      this.keys?.remove(session.datapathKeyId);
      session.datapathKeyId = 0;
    }
  }

  /**
   * Handle one UDP payload of the Noise family. Returns false if it is not ours (caller tries other decoders).
   * `verdict` is the datapath's (RecvBatch.status): RECV_OPENED = already authenticated and decrypted in place
   * with this index's keys (the session still checks replay and expiry), RECV_FORGED = drop, else open here.
   */
  handleFrame(buf: Uint8Array, ip: string, port: number, now: Micros, relayedFrom?: number, via?: UdpEndpoint['via'], verdict = 0): boolean {
    const kind = noiseFrameKind(buf);
    if (kind === 'data') {
      if (verdict === RECV_FORGED) return true;
      const entry = this.byIndex.get(peekNoiseDataReceiver(buf));
      if (!entry) return true;
      const r = verdict === RECV_OPENED ? entry.session.acceptOpened(buf, now) : entry.session.open(buf, now);
      if (!r.ok) return true;
      const peer = entry.peer;
      peer.lastRecvUs = now;
      this.notePath(peer, ip, port, now, relayedFrom, via);
      if (r.value.length > 0 && r.value[0] !== KEEPALIVE_BYTE) this.deliver(peer, r.value, now);
      return true;
    }
    if (kind === 'initiation') {
      // Before any DH: mac1 proves the sender knows our key; under load mac2 proves it receives at its source.
      const v = this.handshakeGuard.check(buf, initiationSource(ip, port, relayedFrom), now);
      if (v.kind === 'process') void this.handleInitiation(buf.slice(), ip, port, now, relayedFrom);
      else if (v.kind === 'cookie') this.sendRaw(v.reply, relayedFrom === undefined ? { ip, port } : { ip, port, relayTo: relayedFrom });
      else if (this.deps.logger.isLevelEnabled('debug')) this.deps.logger.debug({ from: `${ip}:${port}`, reason: v.reason }, 'dropped handshake initiation before DH');
      return true;
    }
    if (kind === 'cookie') {
      const peer = this.initiations.get(readU32LE(buf, 4));
      if (!peer || !peer.initiation) return true;
      const c = peer.initiation.handleCookieReply(buf);
      if (!c.ok) return true;
      // The peer is under load: retry at once with mac2 (this initiation is dropped, so a copy of the reply
      // cannot trigger a second retry).
      peer.cookie = c.value;
      peer.cookieAtUs = now;
      this.sendInitiation(peer, peer.initiationAttempt);
      return true;
    }
    if (kind === 'response') {
      const f = decodeNoiseResponse(buf);
      if (!f.ok) return true;
      const peer = this.initiations.get(f.value.receiverIndex);
      if (!peer || !peer.initiation) return true;
      const r = peer.initiation.handleResponse(buf, now);
      if (!r.ok) {
        this.deps.logger.debug({ peer: peer.nodeId, error: r.error.message }, 'bad handshake response');
        return true;
      }
      this.dropInitiation(peer);
      this.notePath(peer, ip, port, now, relayedFrom);
      peer.rttUs = now - peer.handshakeStartedUs;
      this.install(peer, r.value.session);
      // Key confirmation for the responder, and a path check: an empty keepalive.
      this.sendPlaintext(peer, KEEPALIVE, now);
      this.settle(peer, ok());
      return true;
    }
    return false;
  }

  /**
   * A data frame the tunnel socket's reader thread already authenticated and decrypted in place
   * (RecvBatch.status = RECV_OPENED), at buf[off, off + len) from ipU32:port: the session checks replay and
   * expiry, the peer's path is noted, the plaintext goes up. The per-packet receive path of the native
   * datapath: no Result, no address string unless the peer moved, and the plaintext's view is the one made for
   * that region of the ring before (ViewCache) — nothing allocated per packet in the steady state.
   */
  handleOpened(buf: Uint8Array, off: number, len: number, ipU32: number, port: number, now: Micros): void {
    const entry = this.byIndex.get(readU32LE(buf, off + 4));
    if (!entry || entry.session.acceptOpenedAt(buf, off, len, now) !== null) return;
    const peer = entry.peer;
    peer.lastRecvUs = now;
    const cur = peer.endpoint;
    if (cur && cur.relayTo === undefined && cur.via === undefined && cur.port === port && (cur.ipU32 ?? (cur.ipU32 = ipv4ToU32(cur.ip))) === ipU32) {
      peer.lastDirectRecvUs = now;
    } else {
      this.notePath(peer, u32ToIpv4(ipU32), port, now, undefined);
    }
    const body = off + NOISE_DATA_HEADER_BYTES;
    const end = off + len - NOISE_TAG_BYTES;
    if (end <= body || buf[body] === KEEPALIVE_BYTE) return;
    this.deliver(peer, this.openedViews.view(buf, body, end), now);
  }

  /**
   * Roaming: an authenticated packet from a new source moves the peer (NAT rebinding, relay → direct). A relayed
   * packet does not pull a peer off a direct path that is still alive; the relay keeps carrying stragglers.
   */
  private notePath(peer: TunnelPeer, ip: string, port: number, now: Micros, relayedFrom: number | undefined, via?: UdpEndpoint['via']): void {
    const before = peer.endpoint;
    this.notePathOnly(peer, ip, port, now, relayedFrom, via);
    if (peer.endpoint !== before && peer.current) this.pathChanged(peer, now);
  }

  private notePathOnly(peer: TunnelPeer, ip: string, port: number, now: Micros, relayedFrom: number | undefined, via?: UdpEndpoint['via']): void {
    const cur = peer.endpoint;
    if (relayedFrom === undefined) {
      peer.lastDirectRecvUs = now;
      if (!cur || cur.relayTo !== undefined || cur.port !== port || cur.ip !== ip || cur.via !== via) peer.endpoint = via ? { ip, port, via } : { ip, port };
      return;
    }
    if (cur && cur.relayTo === undefined && now - peer.lastDirectRecvUs < DIRECT_PATH_GRACE_US) return;
    if (!cur || cur.relayTo !== relayedFrom || cur.ip !== ip || cur.port !== port) peer.endpoint = { ip, port, relayTo: relayedFrom };
  }

  private async handleInitiation(buf: Uint8Array, ip: string, port: number, now: Micros, relayedFrom?: number): Promise<void> {
    const localIndex = this.newIndex();
    const r = respond(buf, {
      local: this.deps.identity,
      localNodeId: this.deps.nodeId(),
      localIndex,
      now,
      replayGuard: this.replayGuard,
      ...this.cipherOpts,
    });
    if (!r.ok) {
      this.deps.logger.debug({ from: `${ip}:${port}`, error: r.error.message }, 'dropped handshake initiation');
      return;
    }
    const { remoteNodeId, remoteEd25519, session, message } = r.value;
    const auth = await this.deps.authorize(remoteNodeId, remoteEd25519);
    if (!auth.ok) {
      this.deps.logger.info({ node_id: remoteNodeId, from: `${ip}:${port}`, reason: auth.error.message }, 'refused tunnel from untrusted node');
      return;
    }
    if (relayedFrom !== undefined && relayedFrom !== remoteNodeId) return; // the relay vouches for its sender
    const peer = this.peer(remoteNodeId);
    peer.ed25519 = remoteEd25519;
    this.notePath(peer, ip, port, now, relayedFrom);
    peer.lastRecvUs = now;
    this.install(peer, session);
    this.sendRaw(message, relayedFrom === undefined ? { ip, port } : { ip, port, relayTo: remoteNodeId });
    // A simultaneous initiation of ours keeps running: the peer answers it and installs its half, so both
    // sides end up holding both sessions. Dropping it would leave each side sending on a session whose
    // other half the peer never completed.
    this.settle(peer, ok());
  }

  /** Seal and send one plaintext. Errors: connection_failed when there is no usable session. */
  sendPlaintext(peer: TunnelPeer, plaintext: Uint8Array, now: Micros, via: UdpEndpoint | null = peer.endpoint): Result<void> {
    const s = peer.current;
    const ep = via;
    if (!s || !ep) return err('connection_failed', `no tunnel to node ${peer.nodeId}`);
    if (ep.via) {
      // Extra sockets carry little (a birthday-probed path): seal into a scratch buffer and send directly.
      const r = s.seal(plaintext, now, this.scratch);
      if (!r.ok) return r;
      ep.via.send(r.value, ep.ip, ep.port);
      peer.lastSendUs = now;
      return ok();
    }
    const wrapBytes = ep.relayTo === undefined ? 0 : RELAY_HEADER_BYTES;
    const frameBytes = wrapBytes + plaintext.length + NOISE_DATA_OVERHEAD_BYTES;
    let off = this.txBatch.reserve(frameBytes, ep.ipU32 ?? (ep.ipU32 = ipv4ToU32(ep.ip)), ep.port);
    if (off < 0) {
      this.flushTx();
      off = this.txBatch.reserve(frameBytes, ep.ipU32, ep.port);
    }
    if (wrapBytes > 0) writeRelayHeader(this.txBatch.buf, off, this.deps.nodeId(), ep.relayTo!);
    this.txBatch.buf.set(plaintext, off + wrapBytes + NOISE_DATA_HEADER_BYTES);
    // Direct frames of a session the datapath holds keys for are sealed in its send call (one call per flush);
    // relay-wrapped frames (the frame sits behind the relay header) are sealed here.
    const keyId = wrapBytes === 0 ? s.datapathKeyId : 0;
    if (this.txBatch.keys) this.txBatch.keys[this.txBatch.count - 1] = keyId;
    const r = keyId !== 0 ? s.prepareInPlace(this.txBatch.buf, off, plaintext.length, now) : s.sealInPlace(this.txBatch.buf, off + wrapBytes, plaintext.length, now);
    if (!r.ok) {
      this.txBatch.count--;
      this.txBatch.bytesUsed = off;
      void this.startHandshake(peer);
      return r;
    }
    this.deps.driver.requestFlush();
    peer.lastSendUs = now;
    const kind = plaintext[0];
    const isData = kind !== KEEPALIVE_BYTE && kind !== KIND_PMTU_PROBE && kind !== KIND_PMTU_ACK;
    if (isData) peer.lastDataSendUs = now;
    if (s.needsRekey(now) && !peer.initiation && !peer.isResolving) void this.startHandshake(peer);
    if (isData && peer.isPmtuDeferred) this.pathChanged(peer, now); // the first data: discovery starts now
    return ok();
  }

  /** Hand every sealed frame to the datapath in one call (a driver flusher; also when the batch is full). */
  flushTx(): void {
    if (this.txBatch.count === 0) return;
    this.deps.udp.sendBatch(this.txBatch);
    this.txBatch.reset();
  }

  /** Keepalive to hold NAT bindings and detect dead paths. */
  sendKeepalive(peer: TunnelPeer, now: Micros): void {
    this.sendPlaintext(peer, KEEPALIVE, now);
  }

  /**
   * While a peer is on the relay, probe its direct candidates with authenticated keepalives: the first one
   * that gets through moves the peer (roaming), and its replies move us — the relay → direct upgrade, with
   * no effect on the streams above (the transport absorbs the reordering at the switch).
   */
  probeDirect(peer: TunnelPeer, now: Micros, extra: UdpEndpoint[] = []): void {
    if (!peer.current || !peer.isRelayed) return;
    const seen = new Set<string>();
    for (const ep of [...peer.candidates, ...extra]) {
      const k = `${ep.ip}:${ep.port}`;
      if (ep.relayTo !== undefined || (seen.has(k) && !ep.via)) continue;
      seen.add(k);
      // An extra socket (`via`: a birthday winner) reaches a peer whose NAT only answers that socket's mapping.
      this.sendPlaintext(peer, KEEPALIVE, now, ep.via ? { ip: ep.ip, port: ep.port, via: ep.via } : { ip: ep.ip, port: ep.port });
    }
    this.deps.driver.requestFlush();
  }

  /** Forget a peer's sessions (untrust, shutdown). */
  closePeer(nodeId: number, reason: PilotError | null = null): void {
    const peer = this.peers.get(nodeId);
    if (!peer) return;
    this.dropInitiation(peer);
    for (const s of [peer.current, peer.previous]) if (s) this.forget(s);
    peer.current = peer.previous = null;
    peer.pmtuTimer?.cancel();
    peer.pmtuTimer = null;
    if (reason) this.settle(peer, { ok: false, error: reason });
    this.peers.delete(nodeId);
  }

  close(): void {
    for (const id of [...this.peers.keys()]) this.closePeer(id, null);
  }

  /**
   * Issue 14 (rotate-key): answer and initiate with `identity` from now on. Every session made with the old key
   * is dropped (peers re-handshake with the new one; the caller closes their streams first).
   */
  setIdentity(identity: Identity): void {
    this.close();
    this.deps.identity = identity;
    this.handshakeGuard = new HandshakeGuard({
      staticX25519: identityX25519(identity).publicKey,
      ...(this.deps.underLoadPerS !== undefined ? { underLoadPerS: this.deps.underLoadPerS } : {}),
    });
  }
}

/**
 * What a cookie binds (ip:port, and the node a relayed frame came from) and the rate-limit bucket: the IP as
 * WireGuard does, except on loopback, where every local node shares 127.0.0.1 and the port tells them apart.
 */
function initiationSource(ip: string, port: number, relayedFrom: number | undefined): InitiationSource {
  const text = relayedFrom === undefined ? `${ip}:${port}` : `${ip}:${port}/relay:${relayedFrom}`;
  const rateKey = relayedFrom !== undefined ? `relay:${relayedFrom}` : ip.startsWith('127.') || ip === '::1' ? `${ip}:${port}` : ip;
  return { cookieBytes: new TextEncoder().encode(text), rateKey };
}

function sameEp(a: UdpEndpoint, b: UdpEndpoint): boolean {
  return a.ip === b.ip && a.port === b.port && a.relayTo === b.relayTo && a.via === b.via;
}

const KEEPALIVE = new Uint8Array([KEEPALIVE_BYTE]);
