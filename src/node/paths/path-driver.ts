// Paths to peers across NATs, the node's side: it runs the path engine (src/nat/paths.ts, which decides
// everything) and executes its actions — punches and beacon messages from the tunnel socket, plaintexts in a
// peer's session (on its path or towards a candidate endpoint), the extra sockets of birthday probing, and
// the peer's path itself. The engine's next deadline is the only timer (one Driver deadline); the tunnel
// socket (main-socket.ts) reports every destination it sends to, the flows the engine counts for port prediction.
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { Micros, WallClock } from '../../core/clock.js';
import type { Rng } from '../../core/rng.js';
import type { Result } from '../../core/result.js';
import type { Datapath, OpenDatapathOptions } from '../../datapath/index.js';
import type { MainSocket } from './main-socket.js';
import { PathEngine, TransportChoice, type NatTiming, type PathAction, type PeerView, type TransportAction } from '../../nat/index.js';
import { decodeBeaconMessage } from '../../wire/beacon-message.js';
import { isPilp, PILP_FRAME } from '../../wire/legacy-frame.js';
import { isNoiseFamily } from '../../wire/noise-frame.js';
import type { Deadline, Driver } from '../driver.js';
import type { NoiseSuite, TunnelPeer, UdpEndpoint } from '../peers/noise-suite.js';
import { BeaconClient } from './beacon-client.js';
import { ExtraSockets } from './extra-sockets.js';
import type { CompatLink } from '../compat/link.js';

export interface PathDriverDeps {
  logger: Logger;
  driver: Driver;
  rng: Rng;
  wall: WallClock;
  openExtraSocket(opts: OpenDatapathOptions): Promise<Result<Datapath>>;
  /** `relayOnly`: never try a direct path. */
  relayOnly: boolean;
  /** The primary beacon (discover, punch) and the optional second one (classification). */
  beaconAddr: UdpEndpoint;
  beacon2Addr: UdpEndpoint | null;
  /** The beacon as a relay; null when relaying is off. */
  beaconEndpoint: UdpEndpoint | null;
  /** The tunnel socket (the driver listens to its flows and sends punches and beacon messages on it). */
  socket: MainSocket;
  tunnels(): NoiseSuite;
  nodeId(): number;
  /** Host the extra (birthday) sockets bind on. */
  listenHost: string;
  /** Peers with open connections (only those need a live path). */
  busyPeers(): number[];
  /** Our beacon token (registry-client.ts); null against an original registry. */
  beaconToken(): Uint8Array | null;
  /** May `nodeId`, which asked the beacon for a punch towards us, make us punch towards it? (trusted; or we are public) */
  acceptsPunchFrom(nodeId: number): boolean;
  /** A v0.5 frame (PIL*) an original node sent through the beacon relay; the v0.5 tunnels authenticate it. */
  legacyRelayed(frame: Uint8Array, senderNodeId: number, now: Micros): void;
  /** Which carrier takes relay frames (src/nat/transport-choice.ts); this driver executes its actions too. */
  transport?: TransportChoice;
  /** The compat WebSocket link; null when there is no compat transport (udp mode, simulations). */
  link?: CompatLink | null;
  /** Tests: other constants than src/nat/timing.ts's. */
  timing?: Partial<NatTiming>;
}

function view(p: TunnelPeer): PeerView {
  return { nodeId: p.nodeId, isUp: p.isUp, isRelayed: p.isRelayed, lastRecvUs: p.lastRecvUs };
}

export class PathDriver {
  readonly engine: PathEngine;
  private readonly beacon: BeaconClient;
  private readonly extra: ExtraSockets;
  /** Each peer's direct path as it was when the engine moved it to the relay (probed while relayed). */
  private readonly lastDirect = new Map<number, UdpEndpoint>();
  private deadline: Deadline | null = null;
  private deadlineAtUs: Micros | null = null;
  /** The transport choice (deps.transport, or UDP only). */
  readonly transport: TransportChoice;
  private readonly link: CompatLink | null;
  private transportDeadline: Deadline | null = null;
  private transportDeadlineAtUs: Micros | null = null;
  private isClosed = false;

  constructor(private readonly deps: PathDriverDeps) {
    this.transport = deps.transport ?? new TransportChoice({ mode: 'udp', hasCompat: false, isRegistryProxied: false });
    this.link = deps.link ?? null;
    this.beacon = new BeaconClient({ wall: deps.wall, nodeId: deps.nodeId, beaconToken: deps.beaconToken });
    this.extra = new ExtraSockets({
      logger: deps.logger.child({ component: 'birthday' }),
      host: deps.listenHost,
      openExtraSocket: deps.openExtraSocket,
      onReceive: (peer, index, sock, batch, i) => {
        const now = this.now();
        const from = { ip: batch.ip(i), port: batch.port(i) };
        const isWinner = this.engine.handleExtraReceive(peer, index, from, now);
        this.pump();
        const p = batch.payload(i);
        if (!isWinner || isPilp(p)) return;
        // Tunnel frames on the birthday-probed path.
        deps.tunnels().handleFrame(p, from.ip, from.port, now, undefined, sock);
        deps.driver.requestFlush();
      },
    });
    const tunnelPeer = (id: number) => deps.tunnels().peers.get(id);
    this.engine = new PathEngine({
      rng: deps.rng,
      ...(deps.timing ? { timing: deps.timing } : {}),
      beacons: deps.beacon2Addr ? [deps.beaconAddr, deps.beacon2Addr] : [deps.beaconAddr],
      hasRelay: deps.beaconEndpoint !== null,
      relayOnly: deps.relayOnly,
      nodeId: deps.nodeId,
      localPort: () => deps.socket.localPort,
      localIps: () => Object.values(networkInterfaces()).flatMap((l) => (l ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address)),
      peer: (id) => {
        const p = tunnelPeer(id);
        return p ? view(p) : null;
      },
      peers: () => [...deps.tunnels().peers.values()].map(view),
      busyPeers: deps.busyPeers,
      acceptsPunchFrom: deps.acceptsPunchFrom,
    });
    deps.socket.onFlow = (ip, port) => this.engine.noteFlow(ip, port);
  }

  /** Our endpoint as the primary beacon sees it. */
  get publicEndpoint(): string | null {
    return this.engine.publicEndpoint;
  }

  /** `pilotctl info`'s nat_type; null until classified. */
  get natKind(): string | null {
    return this.engine.classifiedKind;
  }

  get natType(): string | null {
    return this.engine.natType;
  }

  get stats(): PathEngine['stats'] {
    return this.engine.stats;
  }

  /** Discovery now and periodically, path checks every second; the transport choice starts (tcp opens the link). */
  start(): void {
    const now = this.now();
    this.transport.start(now);
    this.pumpTransport();
    this.engine.start(now);
    this.pump();
  }

  /** Discover our public endpoint at the beacon(s) now (after (re)registration), over the link too when it is up. */
  discoverEndpoint(): void {
    const now = this.now();
    this.engine.discover(now);
    this.pump();
    this.link?.discoverNow();
    this.transport.handleRegistered(now);
    this.pumpTransport();
  }

  /** Our discover for the beacon, MACed (one counter for UDP and the link); null before registration. */
  encodeDiscover(): Uint8Array | null {
    if (this.deps.nodeId() === 0) return null;
    const m = this.beacon.encode({ kind: 'discover' });
    return m.ok ? m.value : null;
  }

  /** A beacon message on the tunnel socket. */
  handleBeacon(p: Uint8Array, ip: string, port: number, now: Micros): void {
    const m = decodeBeaconMessage(p);
    if (!m.ok) return;
    const from = { ip, port };
    switch (m.value.kind) {
      case 'relay_deliver': {
        // Only our beacon relays; the frame inside is authenticated by its session like any other.
        const b = this.deps.beaconEndpoint;
        if (!b || b.ip !== ip || b.port !== port) return;
        // An original node marks a peer whose frame came through the relay as relayed and answers it there.
        if (isNoiseFamily(m.value.payload)) this.deps.tunnels().handleFrame(m.value.payload, ip, port, now, m.value.senderNodeId);
        else this.deps.legacyRelayed(m.value.payload, m.value.senderNodeId, now);
        return;
      }
      case 'punch_command':
        this.engine.handlePunchCommand(this.beacon.punchCommand(m.value), from, this.beacon.hasToken, now);
        break;
      case 'discover_reply':
        // Over UDP (the link keeps its own discover replies): the transport choice hears UDP works.
        if (ip === this.deps.beaconAddr.ip && port === this.deps.beaconAddr.port) {
          this.transport.handleUdpAnswer(now);
          this.pumpTransport();
        }
        this.engine.handleDiscoverReply(from, { ip: m.value.ip, port: m.value.port }, now);
        break;
      default:
        return;
    }
    this.pump();
  }

  /** A punch packet (PILP) on the tunnel socket. */
  handlePunch(ip: string, port: number): void {
    this.deps.tunnels().handlePunchFrom(ip, port);
    this.engine.handlePunch(ip, port, this.now());
    this.pump();
  }

  /** Node control plaintexts of the path layer; false when `plaintext` is not one. */
  handleControl(peer: TunnelPeer, plaintext: Uint8Array, now: Micros): boolean {
    const isOurs = this.engine.handleControl(view(peer), plaintext, now);
    if (isOurs) this.pump();
    return isOurs;
  }

  /** A session with `peer` came up (the tunnel's onSessionUp). */
  handleSessionUp(peer: TunnelPeer): void {
    this.engine.handleSessionUp(view(peer), this.now());
    this.pump();
  }

  /** A handshake towards `peerNodeId` starts: the beacon coordinates a hole punch. */
  requestPunch(peerNodeId: number): void {
    this.engine.requestPunch(peerNodeId, this.now());
    this.pump();
  }


  close(): void {
    this.isClosed = true;
    this.deadline?.cancel();
    this.deadline = null;
    this.transportDeadline?.cancel();
    this.transportDeadline = null;
    this.link?.close();
    this.extra.closeAll();
  }

  // ---------------------------------------------------------------------------------------------------

  private now(): Micros {
    return this.deps.driver.nowUs();
  }

  /** Execute every pending action, then arm the engine's next deadline. */
  private pump(): void {
    if (this.isClosed) return;
    // Sealed control frames leave with the driver's flush at the end of this turn.
    for (let a = this.engine.pollAction(); a; a = this.engine.pollAction()) this.execute(a);
    const next = this.engine.pollTimeout();
    if (next === this.deadlineAtUs && this.deadline?.isActive) return;
    this.deadline?.cancel();
    this.deadlineAtUs = next;
    this.deadline =
      next === null
        ? null
        : this.deps.driver.at(next, () => {
            this.deadline = null;
            this.deadlineAtUs = null;
            this.engine.handleTimeout(this.now());
            this.pump();
          });
  }

  /** Execute the transport choice's actions, then arm its next deadline. */
  private pumpTransport(): void {
    if (this.isClosed) return;
    const t = this.transport;
    for (let a = t.pollAction(); a; a = t.pollAction()) this.executeTransport(a);
    const next = t.pollTimeout();
    if (next === this.transportDeadlineAtUs && this.transportDeadline?.isActive) return;
    this.transportDeadline?.cancel();
    this.transportDeadlineAtUs = next;
    this.transportDeadline =
      next === null
        ? null
        : this.deps.driver.at(next, () => {
            this.transportDeadline = null;
            this.transportDeadlineAtUs = null;
            t.handleTimeout(this.now());
            this.pumpTransport();
          });
  }

  private executeTransport(a: TransportAction): void {
    const link = this.link;
    switch (a.kind) {
      case 'probe_udp':
        // The engine's discover (both beacons): one way to discover; the reply feeds both the engine and the choice.
        this.engine.discover(this.now());
        this.pump();
        return;
      case 'open_link':
        link?.open();
        return;
      case 'close_link':
        link?.close();
        return;
      case 'link_discover':
        link?.discoverNow();
        return;
      case 'carrier': {
        this.deps.socket.setRoute(a.carrier === 'udp' ? 'udp' : this.transport.mode === 'tcp' ? 'link-only' : 'relay-over-link');
        this.deps.logger.info({ transport: a.carrier, reason: a.reason }, 'transport changed');
        if (a.carrier !== 'udp') return;
        // Back on UDP: the beacon refused punches while we were a channel node, so ask for one now for every
        // relayed peer (as at a handshake's start) — a port-restricted peer only lets our direct probes in once
        // it has sent towards our new mapping. The engine's direct probes then take over as usual.
        const now = this.now();
        for (const p of this.deps.tunnels().peers.values()) if (p.isUp && p.isRelayed) this.engine.requestPunch(p.nodeId, now);
        this.pump();
        return;
      }
    }
  }

  /** True when it queued a sealed frame (the caller flushes). */
  private execute(a: PathAction): boolean {
    const now = this.now();
    const tunnels = this.deps.tunnels();
    switch (a.kind) {
      case 'punch':
        this.deps.socket.send(PILP_FRAME, a.to.ip, a.to.port);
        return false;
      case 'beacon': {
        const m = this.beacon.encode(a.message);
        if (m.ok) this.deps.socket.send(m.value, a.to.ip, a.to.port);
        if (a.message.kind === 'discover' && this.deps.socket.sendsUdp && a.to.ip === this.deps.beaconAddr.ip && a.to.port === this.deps.beaconAddr.port) {
          this.transport.noteUdpDiscoverSent(now);
          this.pumpTransport();
        }
        return false;
      }
      case 'control': {
        const peer = tunnels.peers.get(a.peer);
        if (!peer) return false;
        tunnels.sendPlaintext(peer, a.plaintext, now, a.to ? { ip: a.to.ip, port: a.to.port } : peer.endpoint);
        return true;
      }
      case 'nat_info': {
        const peer = tunnels.peers.get(a.peer);
        const m = this.engine.natInfo(a.isRestart === true);
        if (!peer || !m) return false;
        tunnels.sendPlaintext(peer, m, now);
        return true;
      }
      case 'probe_direct': {
        const peer = tunnels.peers.get(a.peer);
        if (!peer) {
          this.lastDirect.delete(a.peer);
          return false;
        }
        // The direct path we left when it went silent: its mappings may still be open (a peer starved of CPU
        // falls silent too), and one authenticated packet through it moves both sides back (roaming).
        const last = this.lastDirect.get(a.peer);
        const isOpen = last && (!last.via || this.extra.isOpen(a.peer, last.via));
        if (last && !isOpen) this.lastDirect.delete(a.peer);
        tunnels.probeDirect(peer, now, isOpen && last ? [last] : []);
        return false;
      }
      case 'open_sockets': {
        const peer = a.peer;
        void this.extra.open(peer, a.count).then((n) => {
          if (this.isClosed) return;
          this.engine.handleSocketsOpened(peer, n, this.now());
          this.pump();
        });
        return false;
      }
      case 'prime':
        this.extra.prime(a.peer, a.targets);
        return false;
      case 'close_sockets':
        this.extra.close(a.peer, a.keep);
        return false;
      case 'set_path': {
        const peer = tunnels.peers.get(a.peer);
        if (!peer) return false;
        const p = a.path;
        if (p.kind === 'relay') {
          const cur = peer.endpoint;
          if (cur && cur.relayTo === undefined) this.lastDirect.set(a.peer, cur);
          if (this.deps.beaconEndpoint) peer.endpoint = { ...this.deps.beaconEndpoint, relayTo: peer.nodeId };
        } else if (p.socket === 0) {
          peer.endpoint = { ip: p.endpoint.ip, port: p.endpoint.port };
        } else {
          const via = this.extra.socket(a.peer, p.socket);
          if (via) peer.endpoint = { ip: p.endpoint.ip, port: p.endpoint.port, via };
        }
        return false;
      }
      case 'log':
        if (a.level === 'info') this.deps.logger.info(a.fields, a.msg);
        else this.deps.logger.debug(a.fields, a.msg);
        return false;
    }
  }
}
