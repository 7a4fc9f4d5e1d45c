// Paths to peers across NATs (issue 4), the driver side: endpoint discovery and NAT classification at the
// beacon(s), beacon-coordinated hole punching with port prediction, NAT info exchanged over the relay to pick
// a traversal role (birthday probing for random-port symmetric NATs, two-sided prediction for sequential
// ones), and path liveness (relayed peers are probed directly; a silent direct path moves to the relay).
// The tunnel manager owns sessions and roaming; this decides where packets should try to go.
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { Micros } from '../core/clock.js';
import { openDgramDatapath, type Datapath } from '../datapath/index.js';
import {
  decodeBeaconMessage,
  encodeAuthenticatedBeaconMessage,
  encodeBeaconMessage,
  verifyBeaconAuth,
  type BeaconMessage,
} from '../wire/beacon-message.js';
import { PILP_FRAME } from '../wire/legacy-frame.js';
import { isNoiseFamily } from '../wire/noise-frame.js';
import { classifyNat, NAT_KINDS, type DiscoverObservation, type NatKind } from '../nat/index.js';
import { BirthdayProber } from './birthday-probe.js';
import { parseEndpoint, splitHostPort } from './endpoint-text.js';
import type { DaemonOptions } from './daemon-options.js';
import type { NoiseSuite as TunnelManager, TunnelPeer, UdpEndpoint } from './peers/noise-suite.js';

/** Node control plaintexts (0x10–0x1f are the node's; 0x10 keepalive is absorbed by the tunnel). */
export const PATH_PROBE = 0x11;
const PATH_PROBE_REPLY = 0x12;
export const NAT_INFO = 0x13;
export const BIRTHDAY_READY = 0x14;
const PATH_PROBE_BYTES = new Uint8Array([PATH_PROBE]);
const PATH_PROBE_REPLY_BYTES = new Uint8Array([PATH_PROBE_REPLY]);
const BIRTHDAY_READY_BYTES = new Uint8Array([BIRTHDAY_READY]);
/** Two-sided birthday: predicted ports per attempt × 256 sockets ≈ 67k punches, P(hit) ≈ 65 % per attempt. */
const BIRTHDAY_2D_PREDICTED_PORTS = 264;
const BIRTHDAY_2D_MAX_ATTEMPTS = 8;
const BIRTHDAY_2D_RETRY_MS = 2000;
/** Predicted ports per side for sequential ↔ sequential NATs. */
const PREDICT_WINDOW = 24;
/** The original's punch packet. */
const PILP = PILP_FRAME;
/** Ports above the observed one that a punch also opens (sequential symmetric NATs). */
const PUNCH_PREDICT_PORTS = 8;
/** A busy peer silent this long is asked for a sign of life… */
const PATH_PROBE_AFTER_US = 2_000_000;
/** …and after this long its traffic moves to the relay. */
const PATH_DEAD_US = 5_000_000;
/** A punch command naming a peer we asked the beacon about is accepted this long after the request. */
const PUNCH_PENDING_US = 30_000_000;
const MAX_PENDING_PUNCHES = 4096;
/** At most this many punch commands are executed per second, however many arrive (each sends 27 packets). */
const PUNCH_COMMANDS_PER_SEC = 20;

export interface NatTraversalDeps {
  logger: Logger;
  nowUs(): Micros;
  opts: DaemonOptions;
  /** The tunnel socket. */
  datapath(): Datapath;
  tunnels(): TunnelManager;
  nodeId(): number;
  /** The primary beacon (discover, punch). */
  beaconAddr: UdpEndpoint;
  /** The beacon as a relay; null when relaying is off. */
  beaconEndpoint: UdpEndpoint | null;
  /** Host the extra (birthday) sockets bind on. */
  listenHost: string;
  /** Peers with open connections (only those need a live path). */
  busyPeers(): number[];
  flushConnections(): void;
  /**
   * Our beacon token (src/node/registry-client.ts, from the signed register_ok); null against an original
   * registry. With one, our discover and punch request carry its MAC and only MACed punch commands count.
   */
  beaconToken(): Uint8Array | null;
  /** May `nodeId`, which asked the beacon for a punch towards us, make us punch towards it? (trusted; or we are public) */
  acceptsPunchFrom(nodeId: number): boolean;
  /** A v0.5 frame (PIL*) an original node sent through the beacon relay; the v0.5 tunnels authenticate it. */
  legacyRelayed(frame: Uint8Array, senderNodeId: number, now: Micros): void;
}

export class NatTraversal {
  /** Our endpoint as the primary beacon sees it. */
  publicEndpoint: string | null = null;
  /** `pilotctl info`'s nat_type; null until classified. */
  natType: string | null = null;
  private natKind: NatKind = 'unknown';
  private natNextPort: number | null = null;
  private natPortDelta: number | null = null;
  private readonly discoverSentUs = new Map<string, Micros>();
  private readonly natObservations = new Map<string, DiscoverObservation>();
  /** Destinations the tunnel socket has sent to, and how many were new since the last classification. */
  private readonly contacted = new Set<string>();
  private flowsSinceClassified = 0;
  /** Public IPs of relayed peers (from their NAT info): a punch from one of them opens a direct path. */
  private readonly relayedPeerIps = new Map<string, number>();
  private readonly peerPublicIp = new Map<number, string>();
  private readonly birthdayAttempts = new Map<number, number>();
  /** Peers we told our NAT kind (over the relay), so each side can pick its traversal role. */
  private readonly natInfoSent = new Set<number>();
  private readonly birthday: BirthdayProber;
  /** Counter of our MACed beacon messages: µs since the epoch, strictly increasing (the beacon refuses replays). */
  private beaconTxCounter = 0;
  /** Highest counter of a MACed punch command the beacon sent us. */
  private beaconRxCounter = 0;
  /** Peers we asked the beacon to punch with, and when. */
  private readonly pendingPunches = new Map<number, Micros>();
  private punchWindowStartUs: Micros = 0;
  private punchesInWindow = 0;
  /** Punch commands refused (wrong source, bad MAC, replay, a peer we neither asked for nor trust, over rate). */
  readonly stats = { punchCommandsRefused: 0 };

  constructor(private readonly deps: NatTraversalDeps) {
    this.birthday = new BirthdayProber({
      logger: deps.logger.child({ component: 'birthday' }),
      openSocket: () => openDgramDatapath({ host: deps.listenHost, port: 0, logger: deps.logger, recvBufferBytes: 65536, sendBufferBytes: 65536 }),
      mainSend: (data, ip, port) => this.sendMain(data, ip, port),
      onWinner: (peerId, via, ip, port) => {
        const peer = deps.tunnels().peers.get(peerId);
        if (!peer?.isUp) return;
        peer.endpoint = { ip, port, via };
        deps.tunnels().sendPlaintext(peer, PATH_PROBE_BYTES, deps.nowUs());
      },
      onFrame: (batch, i, via) => {
        const p = batch.payload(i);
        deps.tunnels().handleFrame(p, batch.ip(i), batch.port(i), deps.nowUs(), undefined, via);
        deps.flushConnections();
        deps.tunnels().flushTx();
      },
    });
  }

  /** Node control plaintexts of the path layer; false when `plaintext` is not one. */
  handleControl(peer: TunnelPeer, plaintext: Uint8Array, now: Micros): boolean {
    switch (plaintext[0]) {
      case NAT_INFO:
        this.handleNatInfo(peer, plaintext);
        return true;
      case BIRTHDAY_READY:
        this.handleBirthdayReady(peer);
        return true;
      case PATH_PROBE:
        // Answer on the path the probe came in on (the tunnel just moved the peer there).
        this.deps.tunnels().sendPlaintext(peer, PATH_PROBE_REPLY_BYTES, now);
        this.deps.tunnels().flushTx();
        return true;
      case PATH_PROBE_REPLY:
        return true;
      default:
        return false;
    }
  }

  close(): void {
    this.birthday.close();
  }

  /** Discover our public endpoint at the beacon (and the second beacon, which tells the NAT's mapping kind). */
  discoverEndpoint(): void {
    if (this.deps.nodeId() === 0) return;
    for (const b of [this.deps.opts.beacon, this.deps.opts.beacon2]) {
      if (!b) continue;
      const msg = this.beaconMessage({ kind: 'discover', nodeId: this.deps.nodeId() });
      if (!msg.ok) return;
      const [host, port] = splitHostPort(b);
      const ip = host === 'localhost' ? '127.0.0.1' : host;
      const key = `${ip}:${port}`;
      if (!this.discoverSentUs.has(key)) this.discoverSentUs.set(key, this.deps.nowUs());
      this.sendMain(msg.value, ip, Number(port));
    }
  }

  /** A message for the beacon: MACed with our token once we hold one (each call takes a fresh counter). */
  private beaconMessage(m: BeaconMessage): ReturnType<typeof encodeBeaconMessage> {
    const token = this.deps.beaconToken();
    if (!token) return encodeBeaconMessage(m);
    this.beaconTxCounter = Math.max(this.beaconTxCounter + 1, Date.now() * 1000);
    return encodeAuthenticatedBeaconMessage(m, token, this.beaconTxCounter);
  }

  private noteDiscoverReply(fromIp: string, fromPort: number, observed: { ip: string; port: number }): void {
    const key = `${fromIp}:${fromPort}`;
    const sent = this.discoverSentUs.get(key);
    if (sent === undefined) return;
    this.natObservations.set(key, {
      socket: 0,
      localPort: this.deps.datapath().localAddress.port,
      server: { ip: fromIp, port: fromPort },
      observed: { ip: observed.ip, port: observed.port },
      firstSentUs: sent,
    });
    const localIps = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address));
    const c = classifyNat({ observations: [...this.natObservations.values()], localIps });
    if (c.summary !== this.natType) this.deps.logger.info({ nat: c.summary, kind: c.kind }, 'NAT classified');
    this.natType = c.kind === 'unknown' ? null : c.summary;
    this.natKind = c.kind;
    if (c.nextPort !== this.natNextPort) this.flowsSinceClassified = 0;
    this.natNextPort = c.nextPort;
    this.natPortDelta = c.portDelta;
  }

  handleBeacon(p: Uint8Array, ip: string, port: number, now: Micros): void {
    const m = decodeBeaconMessage(p);
    if (!m.ok) return;
    if (m.value.kind === 'relay_deliver') {
      // Only our beacon relays; the frame inside is authenticated by its session like any other.
      const b = this.deps.beaconEndpoint;
      if (!b || b.ip !== ip || b.port !== port) return;
      // An original node marks a peer whose frame came through the relay as relayed and answers it there.
      if (isNoiseFamily(m.value.payload)) this.deps.tunnels().handleFrame(m.value.payload, ip, port, now, m.value.senderNodeId);
      else this.deps.legacyRelayed(m.value.payload, m.value.senderNodeId, now);
      return;
    }
    if (m.value.kind === 'punch_command') {
      if (this.acceptPunchCommand(m.value, ip, port, now)) this.punch(m.value.ip, m.value.port);
      else this.stats.punchCommandsRefused++;
      return;
    }
    if (m.value.kind === 'discover_reply') {
      this.noteDiscoverReply(ip, port, m.value);
      if (ip !== this.deps.beaconAddr.ip || port !== this.deps.beaconAddr.port) return;
      const ep = `${m.value.ip}:${m.value.port}`;
      if (ep !== this.publicEndpoint) this.deps.logger.info({ endpoint: ep }, 'beacon observed our endpoint');
      this.publicEndpoint = ep;
    }
  }

  /**
   * Hole punching, coordinated by the beacon: it tells both sides each other's observed endpoint at the same
   * moment; each sends a few PILP packets there, which opens its own NAT for the other's handshake retries.
   * The ports just above the observed one are sprayed too: a sequential symmetric NAT maps the flow to the
   * peer on the next ports (port prediction). PILP is the original's punch packet; tunnels ignore it.
   */
  requestPunch(peerNodeId: number): void {
    if (this.deps.nodeId() === 0 || this.deps.opts.relayOnly) return;
    const m = this.beaconMessage({ kind: 'punch_request', fromNodeId: this.deps.nodeId(), toNodeId: peerNodeId });
    if (!m.ok) return;
    const now = this.deps.nowUs();
    if (this.pendingPunches.size >= MAX_PENDING_PUNCHES) {
      for (const [id, at] of this.pendingPunches) if (now - at > PUNCH_PENDING_US) this.pendingPunches.delete(id);
      if (this.pendingPunches.size >= MAX_PENDING_PUNCHES) this.pendingPunches.delete(this.pendingPunches.keys().next().value!);
    }
    this.pendingPunches.delete(peerNodeId);
    this.pendingPunches.set(peerNodeId, now);
    this.sendMain(m.value, this.deps.beaconAddr.ip, this.deps.beaconAddr.port);
  }

  /**
   * A punch command makes us send 27 packets to the address it names, so it counts only when it comes from
   * our beacon's address and, once we hold a beacon token, carries the beacon's MAC with our token, a fresh
   * counter, and names a peer we asked to punch with (we are the requester) or that may reach us (we are the
   * target: trusted, or we are public). Bare commands (an original beacon) count only while we have no
   * token, i.e. our registry is an original one. All of them are rate capped.
   */
  private acceptPunchCommand(m: Extract<BeaconMessage, { kind: 'punch_command' }>, ip: string, port: number, now: Micros): boolean {
    const b = this.deps.beaconAddr;
    if (ip !== b.ip || port !== b.port) {
      this.deps.logger.debug({ from: `${ip}:${port}` }, 'punch command not from our beacon: ignored');
      return false;
    }
    const token = this.deps.beaconToken();
    if (token) {
      if (!m.auth || m.peerNodeId === undefined) {
        this.deps.logger.debug('unauthenticated punch command: ignored (we hold a beacon token)');
        return false;
      }
      if (m.auth.counter <= this.beaconRxCounter || !verifyBeaconAuth(m.auth, token)) return false;
      const peer = m.peerNodeId;
      const askedUs = this.pendingPunches.get(peer);
      const isAsked = askedUs !== undefined && now - askedUs <= PUNCH_PENDING_US;
      if (!isAsked && !this.deps.acceptsPunchFrom(peer)) {
        this.deps.logger.debug({ peer }, 'punch command for a peer we neither asked for nor trust: ignored');
        return false;
      }
      this.beaconRxCounter = m.auth.counter;
    }
    if (now - this.punchWindowStartUs >= 1_000_000) {
      this.punchWindowStartUs = now;
      this.punchesInWindow = 0;
    }
    return ++this.punchesInWindow <= PUNCH_COMMANDS_PER_SEC;
  }

  private punch(ip: string, port: number): void {
    if (this.deps.opts.relayOnly) return;
    for (let round = 0; round < 3; round++) {
      setTimeout(() => {
        for (let d = 0; d <= PUNCH_PREDICT_PORTS; d++) if (port + d <= 65535) this.sendMain(PILP, ip, port + d);
      }, round * 50);
    }
  }

  /**
   * Every single send from the tunnel socket. A sequential symmetric NAT gives each new destination the next
   * port, so we count new destinations: our next port = last observed + delta × flows opened since.
   */
  sendMain(data: Uint8Array, ip: string, port: number): void {
    const k = `${ip}:${port}`;
    if (!this.contacted.has(k)) {
      if (this.contacted.size >= 65536) this.contacted.clear();
      this.contacted.add(k);
      this.flowsSinceClassified++;
    }
    this.deps.datapath().send(data, ip, port);
  }

  /** Tell a relayed peer our NAT kind and public endpoint: [0x13][kind u8][ipv4 4][port u16][next port u16][delta i16]. */
  private sendNatInfo(peer: TunnelPeer, now: Micros): void {
    if (this.natInfoSent.has(peer.nodeId) || this.natKind === 'unknown' || !this.publicEndpoint) return;
    const ep = parseEndpoint(this.publicEndpoint);
    const ipBytes = ep?.ip.split('.').map(Number);
    if (!ep || !ipBytes || ipBytes.length !== 4) return;
    const msg = new Uint8Array(12);
    const v = new DataView(msg.buffer);
    const next = this.natNextPort === null ? 0 : this.natNextPort + (this.natPortDelta ?? 1) * this.flowsSinceClassified;
    v.setUint16(8, next > 0 && next <= 65535 ? next : 0);
    v.setInt16(10, this.natPortDelta ?? 0);
    msg[0] = NAT_INFO;
    msg[1] = NAT_KINDS.indexOf(this.natKind as (typeof NAT_KINDS)[number]);
    msg.set(ipBytes, 2);
    msg[6] = ep.port >> 8;
    msg[7] = ep.port & 0xff;
    if (this.deps.tunnels().sendPlaintext(peer, msg, now).ok) this.natInfoSent.add(peer.nodeId);
  }

  /**
   * A relayed peer's NAT kind: pick our role. Random-port symmetric ↔ cone needs birthday probing (the
   * symmetric side opens many mappings, the cone side sprays random ports); other pairs were punched already.
   */
  private handleNatInfo(peer: TunnelPeer, m: Uint8Array): void {
    if (m.length < 12 || !peer.isRelayed || this.deps.opts.relayOnly) return;
    const theirs = NAT_KINDS[m[1]!];
    if (!theirs) return;
    const isRetry = this.birthday.isRunning(peer.nodeId);
    const ip = `${m[2]}.${m[3]}.${m[4]}.${m[5]}`;
    const port = (m[6]! << 8) | m[7]!;
    const v = new DataView(m.buffer, m.byteOffset, m.length);
    const theirNext = v.getUint16(8);
    const theirDelta = v.getInt16(10);
    this.relayedPeerIps.set(ip, peer.nodeId);
    this.peerPublicIp.set(peer.nodeId, ip);
    const isCone = (k: NatKind) => k === 'none' || k === 'full-cone' || k === 'restricted-cone' || k === 'port-restricted-cone';
    const now = this.deps.nowUs();
    this.sendNatInfo(peer, now); // make sure they know ours too
    if (this.natKind === 'symmetric-random' && theirs === 'symmetric-sequential' && theirNext > 0 && theirDelta !== 0) {
      // Two-sided birthday: every socket of ours punches every port their NAT is predicted to allocate next;
      // then they send random-port probes, the i-th from their i-th new mapping (src/nat/plan.ts 'birthday-2d').
      const targets: { ip: string; port: number }[] = [];
      for (let j = 0; j < BIRTHDAY_2D_PREDICTED_PORTS; j++) {
        const p = theirNext + j * theirDelta;
        if (p > 0 && p <= 65535) targets.push({ ip, port: p });
      }
      void this.birthday.openMany(peer.nodeId, targets).then(() => {
        if (peer.isRelayed) this.deps.tunnels().sendPlaintext(peer, BIRTHDAY_READY_BYTES, this.deps.nowUs());
        this.deps.tunnels().flushTx();
      });
      return;
    }
    if (isRetry) return;
    if (this.natKind === 'symmetric-random' && isCone(theirs)) {
      void this.birthday.openMany(peer.nodeId, [{ ip, port }]);
    } else if (isCone(this.natKind) && theirs === 'symmetric-random') {
      this.birthday.probeRandom(peer.nodeId, ip, () => !peer.isRelayed || !this.deps.tunnels().peers.has(peer.nodeId));
    } else if (this.natKind === 'symmetric-sequential' && theirs === 'symmetric-sequential' && theirNext > 0 && theirDelta !== 0) {
      this.predictBoth(ip, theirNext, theirDelta);
    }
  }

  /**
   * Sequential ↔ sequential: both sides send the i-th punch to the other's i-th predicted port, in the same
   * order, so each NAT allocates its i-th new mapping toward exactly the port the other side is allocating
   * for it. Repeated rounds go to the same destinations (no new mappings) and get through once both exist.
   */
  private predictBoth(ip: string, theirNext: number, theirDelta: number): void {
    for (let round = 0; round < 4; round++) {
      setTimeout(() => {
        for (let i = 0; i < PREDICT_WINDOW; i++) {
          const port = theirNext + i * theirDelta;
          if (port > 0 && port <= 65535) this.sendMain(PILP, ip, port);
        }
      }, round * 150);
    }
  }

  /**
   * Sequential side of the two-sided birthday: the random side's mappings toward our predicted ports are
   * open; send that many probes to random ports of its IP — each one a new flow, so the i-th leaves from the
   * i-th predicted port. No hit (≈65 % per attempt): re-announce our (now advanced) next port and go again.
   */
  private handleBirthdayReady(peer: TunnelPeer): void {
    const ip = this.peerPublicIp.get(peer.nodeId);
    if (!ip || !peer.isRelayed || this.natKind !== 'symmetric-sequential') return;
    const attempts = (this.birthdayAttempts.get(peer.nodeId) ?? 0) + 1;
    this.birthdayAttempts.set(peer.nodeId, attempts);
    this.birthday.probeRandom(peer.nodeId, ip, () => !peer.isRelayed || !this.deps.tunnels().peers.has(peer.nodeId), BIRTHDAY_2D_PREDICTED_PORTS);
    if (attempts >= BIRTHDAY_2D_MAX_ATTEMPTS) return;
    setTimeout(() => {
      if (!peer.isRelayed || !this.deps.tunnels().peers.has(peer.nodeId)) return;
      this.natInfoSent.delete(peer.nodeId);
      this.sendNatInfo(peer, this.deps.nowUs());
      this.deps.tunnels().flushTx();
    }, BIRTHDAY_2D_RETRY_MS);
  }

  /** A punch from a relayed peer's public IP: answer it with an authenticated probe, which moves the path. */
  handlePunch(ip: string, port: number): void {
    this.deps.tunnels().handlePunchFrom(ip, port);
    const nodeId = this.relayedPeerIps.get(ip);
    const peer = nodeId === undefined ? undefined : this.deps.tunnels().peers.get(nodeId);
    if (!peer?.isUp || !peer.isRelayed) return;
    this.deps.tunnels().sendPlaintext(peer, PATH_PROBE_BYTES, this.deps.nowUs(), { ip, port });
    this.deps.tunnels().flushTx();
  }

  /**
   * Path liveness, every second: relayed peers get direct probes (a direct path that opens later takes over);
   * a peer with open connections that has gone silent is probed, and after PATH_DEAD_US of silence its
   * traffic moves to the relay — streams continue, the transport retransmits what the dead path lost.
   */
  checkPaths(): void {
    const now = this.deps.nowUs();
    const busy = new Set(this.deps.busyPeers());
    for (const peer of this.deps.tunnels().peers.values()) {
      if (!peer.isUp) continue;
      if (peer.isRelayed) {
        if (!this.deps.opts.relayOnly) {
          this.deps.tunnels().probeDirect(peer, now);
          this.sendNatInfo(peer, now);
        }
        continue;
      }
      if (!busy.has(peer.nodeId)) continue;
      const silentUs = now - peer.lastRecvUs;
      if (silentUs >= PATH_DEAD_US && this.deps.beaconEndpoint) {
        this.deps.logger.info({ peer: peer.nodeId, silent_ms: Math.round(silentUs / 1000) }, 'direct path silent; switching to the relay');
        peer.endpoint = { ...this.deps.beaconEndpoint, relayTo: peer.nodeId };
        this.deps.tunnels().sendPlaintext(peer, PATH_PROBE_BYTES, now);
      } else if (silentUs >= PATH_PROBE_AFTER_US) {
        this.deps.tunnels().sendPlaintext(peer, PATH_PROBE_BYTES, now);
      }
    }
    this.deps.tunnels().flushTx();
  }
}
