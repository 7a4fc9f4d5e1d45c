// Paths to peers across NATs (issue 4), the driver side: endpoint discovery and NAT classification at the
// beacon(s), beacon-coordinated hole punching with port prediction, NAT info exchanged over the relay to pick
// a traversal role (birthday probing for random-port symmetric NATs, two-sided prediction for sequential
// ones), and path liveness (relayed peers are probed directly; a silent direct path moves to the relay).
// The tunnel manager owns sessions and roaming; this decides where packets should try to go.
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { Micros } from '../core/clock.js';
import { openDgramDatapath, type Datapath } from '../datapath/index.js';
import { decodeBeaconMessage, encodeBeaconMessage } from '../wire/beacon-message.js';
import { PILP_FRAME } from '../wire/legacy-frame.js';
import { isNoiseFamily } from '../wire/noise-frame.js';
import { classifyNat, NAT_KINDS, type DiscoverObservation, type NatKind } from '../nat/index.js';
import { BirthdayProber } from './birthday-probe.js';
import { parseEndpoint, splitHostPort } from './endpoint-text.js';
import type { DaemonOptions } from './daemon-options.js';
import type { TunnelManager, TunnelPeer, UdpEndpoint } from './tunnel-manager.js';

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
    const msg = encodeBeaconMessage({ kind: 'discover', nodeId: this.deps.nodeId() });
    if (!msg.ok) return;
    for (const b of [this.deps.opts.beacon, this.deps.opts.beacon2]) {
      if (!b) continue;
      const [host, port] = splitHostPort(b);
      const ip = host === 'localhost' ? '127.0.0.1' : host;
      const key = `${ip}:${port}`;
      if (!this.discoverSentUs.has(key)) this.discoverSentUs.set(key, this.deps.nowUs());
      this.sendMain(msg.value, ip, Number(port));
    }
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
      this.punch(m.value.ip, m.value.port);
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
    const m = encodeBeaconMessage({ kind: 'punch_request', fromNodeId: this.deps.nodeId(), toNodeId: peerNodeId });
    if (m.ok) this.sendMain(m.value, this.deps.beaconAddr.ip, this.deps.beaconAddr.port);
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
