// The path engine: NAT traversal for every peer of a node, sans-IO (STYLE §2). The node pushes events in
// (`handle*`, `note*`, always with `now`), pulls actions out (`pollAction` until null), and arms one deadline at
// `pollTimeout()`, calling `handleTimeout(now)` when it passes. No clock, timers or sockets in here; randomness
// comes from the Rng passed in. src/node/paths/path-driver.ts executes the actions; every constant is in
// timing.ts.
//
// What it does (the behaviour the daemon proved in the netsim matrix, issue 4):
//   - discover at the beacon(s) and classify our NAT (classify.ts); count the flows the tunnel socket opened
//     since that classification, so a sequential NAT's next port is predicted from them;
//   - a punch request to the beacon when a handshake starts; the beacon's punch commands are accepted only from
//     its address, MACed once we hold a beacon token, fresh, for a peer we asked about or that may reach us,
//     and rate capped — then punched (rounds to the observed port and the ports just above it);
//   - NAT info exchanged over the relay with relayed peers: both sides plan (plan.ts) and take their role —
//     prediction rounds, birthday probing (extra sockets on the random side, random probes on the other), or
//     the two-sided birthday with its retries;
//   - path liveness: relayed peers are probed directly (a direct path that opens later takes over by the
//     tunnel's roaming); a busy peer gone silent is probed, and then moved to the relay.
import type { Micros, Rng } from '../core/index.js';
import { classifyNat, type DiscoverObservation } from './classify.js';
import { BIRTHDAY_READY, decodeNatInfo, encodeNatInfo, NAT_INFO, PATH_PROBE, PATH_PROBE_REPLY, type NatInfo } from './messages.js';
import { LOW_PORT, PORT_SPACE, planTraversal, type Strategy } from './plan.js';
import { NAT_TIMING, type NatTiming } from './timing.js';
import { parseReachableEndpoint } from '../wire/endpoint.js';
import { formatEndpoint, sameEndpoint, type NatKind, type NatProfile, type UdpEndpoint } from './types.js';

/** What the engine needs to know about a peer's tunnel (read at the moment of the event). */
export interface PeerView {
  nodeId: number;
  /** A session is up. */
  isUp: boolean;
  /** Its frames currently go through the relay. */
  isRelayed: boolean;
  /** Last authenticated packet from it. */
  lastRecvUs: Micros;
}

export type PathTo = { kind: 'relay' } | { kind: 'direct'; endpoint: UdpEndpoint; socket: number };

export type PathAction =
  /** A punch packet (PILP) from the tunnel socket. */
  | { kind: 'punch'; to: UdpEndpoint }
  /** A message for the beacon from the tunnel socket (the beacon client MACs it once we hold a token). */
  | { kind: 'beacon'; to: UdpEndpoint; message: { kind: 'discover' } | { kind: 'punch_request'; toNodeId: number } }
  /** A plaintext in the peer's session: on its current path, or to `to` from the tunnel socket. */
  | { kind: 'control'; peer: number; plaintext: Uint8Array; to?: UdpEndpoint }
  /** Our NAT info (natInfo(isRestart), taken when executed) in the peer's session, on its path. */
  | { kind: 'nat_info'; peer: number; isRestart?: boolean }
  /** Authenticated keepalives to the peer's direct candidates (the tunnel's probeDirect). */
  | { kind: 'probe_direct'; peer: number }
  /** Open `count` extra sockets for the peer (indices 1..count); call handleSocketsOpened when bound. */
  | { kind: 'open_sockets'; peer: number; count: number }
  /** Every extra socket of the peer punches each target. */
  | { kind: 'prime'; peer: number; targets: UdpEndpoint[] }
  /** Close the peer's extra sockets except `keep`. */
  | { kind: 'close_sockets'; peer: number; keep: number[] }
  /** Move the peer's frames to this path (socket 0 = the tunnel socket, k > 0 = its k-th extra socket). */
  | { kind: 'set_path'; peer: number; path: PathTo; reason: string }
  | { kind: 'log'; level: 'info' | 'debug'; msg: string; fields: Record<string, unknown> };

export interface PathEngineOptions {
  rng: Rng;
  timing?: Partial<NatTiming>;
  /** The primary beacon (discover, punch, relay) and the optional second one (tells the mapping kind). */
  beacons: UdpEndpoint[];
  /** The beacon relays for us (a silent direct path can move there). */
  hasRelay: boolean;
  /** Never try a direct path. */
  relayOnly: boolean;
  /** Our node id; 0 until registered (nothing is sent before). */
  nodeId(): number;
  /** Port the tunnel socket is bound to. */
  localPort(): number;
  /** Addresses of the local interfaces (a public host sees its own address reflected). */
  localIps(): string[];
  peer(nodeId: number): PeerView | null;
  peers(): Iterable<PeerView>;
  /** Peers with open connections (only those need a live path). */
  busyPeers(): Iterable<number>;
  /** May `nodeId`, which asked the beacon for a punch towards us, make us punch towards it? */
  acceptsPunchFrom(nodeId: number): boolean;
}

/** A beacon punch command as the beacon client decoded (and MAC-checked) it. */
export interface PunchCommand {
  ip: string;
  port: number;
  /** Present on an authenticated command. */
  peerNodeId?: number;
  /** The authentication trailer: its counter and whether the MAC is our token's; null on a bare command. */
  auth: { counter: number; isValid: boolean } | null;
}

interface Scheduled {
  atUs: Micros;
  fn: (now: Micros) => void;
}

/** Random-port side of a birthday probe (the tunnel socket, rate capped). */
interface EasyRun {
  ip: string;
  sent: number;
  max: number;
}

/** Random side of a birthday probe: many extra sockets, each punching the targets. */
interface HardRun {
  peerIp: string;
  isOpen: boolean;
  /** Target lists to punch once the sockets are bound. */
  pending: UdpEndpoint[][];
  winner: number | null;
  window: Scheduled | null;
  is2d: boolean;
}

export class PathEngine {
  private readonly t: NatTiming;
  private readonly actions: PathAction[] = [];
  private readonly scheduled: Scheduled[] = [];
  /** Our endpoint as the primary beacon sees it. */
  publicEndpoint: string | null = null;
  /** `pilotctl info`'s nat_type; null until classified. */
  natType: string | null = null;
  private natKind: NatKind = 'unknown';

  /** The classification's kind alone (`full-cone`, `symmetric-random`, `none`, …); null while unknown. */
  get classifiedKind(): NatKind | null {
    return this.natKind === 'unknown' ? null : this.natKind;
  }
  private natNextPort: number | null = null;
  private natPortDelta: number | null = null;
  private readonly discoverSentUs = new Map<string, Micros>();
  /** The order each beacon address got its first discover (ties at one `now` are broken by it, see classify.ts). */
  private readonly discoverSendSeq = new Map<string, number>();
  private readonly natObservations = new Map<string, DiscoverObservation>();
  /** Destinations the tunnel socket has sent to, and how many were new since the last classification. */
  private readonly contacted = new Set<string>();
  private flowsSinceClassified = 0;
  /** Public IPs of relayed peers (from their NAT info): a punch from one of them opens a direct path. */
  private readonly relayedPeerIps = new Map<string, number>();
  private readonly peerPublicIp = new Map<number, string>();
  private readonly strategies = new Map<number, Strategy>();
  private readonly birthdayAttempts = new Map<number, number>();
  /** Peers we told our NAT kind (over the relay), so each side can pick its role. */
  private readonly natInfoSent = new Set<number>();
  /** Relayed peers' next traversal retry and its gap (see NatTiming.traversalRetryUs). */
  private readonly retries = new Map<number, { atUs: Micros; gapUs: Micros }>();
  private readonly easy = new Map<number, EasyRun>();
  private readonly hard = new Map<number, HardRun>();
  /** Highest counter of a MACed punch command the beacon sent us. */
  private beaconRxCounter = 0;
  /** Peers we asked the beacon to punch with, and when. */
  private readonly pendingPunches = new Map<number, Micros>();
  private punchWindowStartUs: Micros = -Infinity;
  private punchesInWindow = 0;
  private isStarted = false;
  /** Punch commands refused (wrong source, bad MAC, replay, a peer we neither asked for nor trust, over rate). */
  readonly stats = { punchCommandsRefused: 0, punchesSent: 0, randomProbesSent: 0, birthdayHits: 0, deadPaths: 0 };

  constructor(private readonly opts: PathEngineOptions) {
    this.t = { ...NAT_TIMING, ...opts.timing };
  }

  get timing(): Readonly<NatTiming> {
    return this.t;
  }

  /** Our NAT as far as we know it, with the next port predicted from the flows opened since classification. */
  get localProfile(): NatProfile {
    const ep = this.publicEndpoint ? parseReachableEndpoint(this.publicEndpoint) : null;
    const p: NatProfile = { kind: this.natKind, publicEndpoint: ep, lanEndpoints: [] };
    if (this.natPortDelta !== null) p.portDelta = this.natPortDelta;
    const next = this.predictedNextPort();
    if (next > 0) p.nextPort = next;
    return p;
  }

  /** The strategy picked for a peer once both NAT infos were exchanged. */
  strategyOf(peer: number): Strategy | null {
    return this.strategies.get(peer) ?? null;
  }

  /** Periodic work begins: path checks, and discovery now and every discoverIntervalUs. */
  start(now: Micros): void {
    if (this.isStarted) return;
    this.isStarted = true;
    const check = (at: Micros): void => {
      this.later(at, (n) => {
        this.checkPaths(n);
        check(at + this.t.pathCheckIntervalUs);
      });
    };
    check(now + this.t.pathCheckIntervalUs);
    const discover = (at: Micros): void => {
      this.later(at, (n) => {
        this.discover(n);
        discover(at + this.t.discoverIntervalUs);
      });
    };
    this.discover(now);
    discover(now + this.t.discoverIntervalUs);
  }

  pollAction(): PathAction | null {
    return this.actions.shift() ?? null;
  }

  /** Earliest time handleTimeout has work to do, or null. */
  pollTimeout(): Micros | null {
    let t: Micros | null = null;
    for (const s of this.scheduled) if (t === null || s.atUs < t) t = s.atUs;
    return t;
  }

  handleTimeout(now: Micros): void {
    for (;;) {
      let due: Scheduled | null = null;
      for (const s of this.scheduled) if (s.atUs <= now && (due === null || s.atUs < due.atUs)) due = s;
      if (!due) return;
      this.scheduled.splice(this.scheduled.indexOf(due), 1);
      due.fn(now);
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Discovery and classification

  /** Discover our public endpoint at the beacon (and the second beacon, which tells the NAT's mapping kind). */
  discover(now: Micros): void {
    if (this.opts.nodeId() === 0) return;
    for (const b of this.opts.beacons) {
      const key = formatEndpoint(b);
      if (!this.discoverSentUs.has(key)) {
        this.discoverSentUs.set(key, now);
        this.discoverSendSeq.set(key, this.discoverSendSeq.size);
      }
      this.push({ kind: 'beacon', to: b, message: { kind: 'discover' } });
    }
  }

  handleDiscoverReply(from: UdpEndpoint, observed: UdpEndpoint, _now: Micros): void {
    const key = formatEndpoint(from);
    const sent = this.discoverSentUs.get(key);
    if (sent === undefined) return;
    this.natObservations.set(key, { socket: 0, localPort: this.opts.localPort(), server: from, observed, firstSentUs: sent, sendSeq: this.discoverSendSeq.get(key) ?? 0 });
    const c = classifyNat({ observations: [...this.natObservations.values()], localIps: this.opts.localIps() });
    if (c.summary !== this.natType) this.log('info', 'NAT classified', { nat: c.summary, kind: c.kind });
    this.natType = c.kind === 'unknown' ? null : c.summary;
    this.natKind = c.kind;
    if (c.nextPort !== this.natNextPort) this.flowsSinceClassified = 0;
    this.natNextPort = c.nextPort;
    this.natPortDelta = c.portDelta;
    if (!sameEndpoint(from, this.opts.beacons[0])) return;
    const ep = formatEndpoint(observed);
    if (ep !== this.publicEndpoint) this.log('info', 'beacon observed our endpoint', { endpoint: ep });
    this.publicEndpoint = ep;
  }

  /**
   * Every send from the tunnel socket. A sequential symmetric NAT gives each new destination the next port,
   * so we count new destinations: our next port = last observed + delta × flows opened since.
   */
  noteFlow(ip: string, port: number): void {
    const k = `${ip}:${port}`;
    if (this.contacted.has(k)) return;
    if (this.contacted.size >= 65536) this.contacted.clear();
    this.contacted.add(k);
    this.flowsSinceClassified++;
  }

  private predictedNextPort(): number {
    if (this.natNextPort === null) return 0;
    const next = this.natNextPort + (this.natPortDelta ?? 1) * this.flowsSinceClassified;
    return next > 0 && next <= 65535 ? next : 0;
  }

  // ---------------------------------------------------------------------------------------------------
  // Beacon-coordinated punching

  /** A handshake towards `peer` starts: ask the beacon to tell both sides each other's endpoint. */
  requestPunch(peer: number, now: Micros): void {
    if (this.opts.nodeId() === 0 || this.opts.relayOnly || this.opts.beacons.length === 0) return;
    if (this.pendingPunches.size >= this.t.maxPendingPunches) {
      for (const [id, at] of this.pendingPunches) if (now - at > this.t.punchPendingUs) this.pendingPunches.delete(id);
      if (this.pendingPunches.size >= this.t.maxPendingPunches) this.pendingPunches.delete(this.pendingPunches.keys().next().value!);
    }
    this.pendingPunches.delete(peer);
    this.pendingPunches.set(peer, now);
    this.push({ kind: 'beacon', to: this.opts.beacons[0]!, message: { kind: 'punch_request', toNodeId: peer } });
  }

  /**
   * A punch command makes us send punchRounds × (punchPredictPorts + 1) packets to the address it names, so it
   * counts only when it comes from our beacon's address and, once we hold a beacon token, carries the beacon's
   * valid MAC, a fresh counter, and names a peer we asked to punch with (we are the requester) or that may
   * reach us (we are the target: trusted, or we are public). Bare commands (an original beacon) count only
   * while we hold no token. All of them are rate capped. True when accepted (and punched).
   */
  handlePunchCommand(m: PunchCommand, from: UdpEndpoint, hasToken: boolean, now: Micros): boolean {
    if (!this.acceptPunchCommand(m, from, hasToken, now)) {
      this.stats.punchCommandsRefused++;
      return false;
    }
    if (this.opts.relayOnly) return true;
    for (let round = 0; round < this.t.punchRounds; round++) {
      const burst = (): void => {
        for (let d = 0; d <= this.t.punchPredictPorts; d++) if (m.port + d <= 65535) this.punch({ ip: m.ip, port: m.port + d });
      };
      if (round === 0) burst();
      else this.later(now + round * this.t.punchRoundGapUs, burst);
    }
    return true;
  }

  private acceptPunchCommand(m: PunchCommand, from: UdpEndpoint, hasToken: boolean, now: Micros): boolean {
    if (!sameEndpoint(from, this.opts.beacons[0])) {
      this.log('debug', 'punch command not from our beacon: ignored', { from: formatEndpoint(from) });
      return false;
    }
    if (hasToken) {
      if (!m.auth || m.peerNodeId === undefined) {
        this.log('debug', 'unauthenticated punch command: ignored (we hold a beacon token)', {});
        return false;
      }
      if (m.auth.counter <= this.beaconRxCounter || !m.auth.isValid) return false;
      const peer = m.peerNodeId;
      const askedAt = this.pendingPunches.get(peer);
      const isAsked = askedAt !== undefined && now - askedAt <= this.t.punchPendingUs;
      if (!isAsked && !this.opts.acceptsPunchFrom(peer)) {
        this.log('debug', 'punch command for a peer we neither asked for nor trust: ignored', { peer });
        return false;
      }
      this.beaconRxCounter = m.auth.counter;
    }
    if (now - this.punchWindowStartUs >= 1_000_000) {
      this.punchWindowStartUs = now;
      this.punchesInWindow = 0;
    }
    return ++this.punchesInWindow <= this.t.punchCommandsPerSec;
  }

  /** A punch packet from ip:port. From a relayed peer's public IP: answer with an authenticated probe there. */
  handlePunch(ip: string, port: number, _now: Micros): void {
    const nodeId = this.relayedPeerIps.get(ip);
    const peer = nodeId === undefined ? null : this.opts.peer(nodeId);
    if (!peer?.isUp || !peer.isRelayed) return;
    this.push({ kind: 'control', peer: peer.nodeId, plaintext: Uint8Array.of(PATH_PROBE), to: { ip, port } });
  }

  // ---------------------------------------------------------------------------------------------------
  // Path control plaintexts

  /** A plaintext of the path layer from `peer`; false when it is not one. */
  handleControl(peer: PeerView, plaintext: Uint8Array, now: Micros): boolean {
    switch (plaintext[0]) {
      case NAT_INFO: {
        const m = decodeNatInfo(plaintext);
        if (m.ok) this.handleNatInfo(peer, m.value, now);
        return true;
      }
      case BIRTHDAY_READY:
        this.handleBirthdayReady(peer, now);
        return true;
      case PATH_PROBE:
        // Answer on the path the probe came in on (the tunnel just moved the peer there).
        this.push({ kind: 'control', peer: peer.nodeId, plaintext: Uint8Array.of(PATH_PROBE_REPLY) });
        return true;
      case PATH_PROBE_REPLY:
        return true;
      default:
        return false;
    }
  }

  /** Tell a relayed peer our NAT kind, public endpoint and predicted next port (once, until a retry). */
  private sendNatInfo(peer: number, isRestart = false): void {
    if (this.natInfoSent.has(peer) || this.natKind === 'unknown' || !this.publicEndpoint) return;
    this.natInfoSent.add(peer);
    this.push(isRestart ? { kind: 'nat_info', peer, isRestart } : { kind: 'nat_info', peer });
  }

  /**
   * The NAT info plaintext as of now: the driver takes it when it executes a 'nat_info' action, after the
   * actions before it (whose new flows move the predicted next port) went out.
   */
  natInfo(isRestart = false): Uint8Array | null {
    const ep = this.publicEndpoint ? parseReachableEndpoint(this.publicEndpoint) : null;
    if (!ep || this.natKind === 'unknown') return null;
    const m = encodeNatInfo({ kind: this.natKind, publicEndpoint: ep, nextPort: this.predictedNextPort(), portDelta: this.natPortDelta ?? 0, isRestart });
    return m.ok ? m.value : null;
  }

  /** A relayed peer's NAT info: plan (plan.ts) and take our role. */
  private handleNatInfo(peer: PeerView, m: NatInfo, now: Micros): void {
    if (!peer.isRelayed || this.opts.relayOnly) return;
    const id = peer.nodeId;
    if (m.isRestart && !this.isTraversing(id)) {
      // The peer starts over (its last traversal ended without a direct path, or a direct path died): ours
      // ended too, so answer with our info again and take our role anew (a kept birthday winner is stale).
      if (this.hard.get(id)?.winner != null) this.stopBirthday(id, true);
      this.natInfoSent.delete(id);
    }
    const isRetry = this.hard.has(id) || this.easy.has(id);
    const ip = m.publicEndpoint.ip;
    this.relayedPeerIps.set(ip, id);
    this.peerPublicIp.set(id, ip);
    this.sendNatInfo(id); // make sure they know ours too
    if (this.natKind === 'unknown') return;
    const remote: NatProfile = { kind: m.kind, publicEndpoint: m.publicEndpoint, lanEndpoints: [] };
    const isPredictable = m.nextPort > 0 && m.portDelta !== 0;
    if (isPredictable) {
      remote.nextPort = m.nextPort;
      remote.portDelta = m.portDelta;
    }
    const plan = planTraversal(this.localProfile, remote, this.t);
    this.strategies.set(id, plan.strategy);
    if (plan.strategy === 'birthday-2d' && plan.extraSockets > 0) {
      // Two-sided birthday, random side: every socket punches every port the peer's NAT is predicted to
      // allocate next; then it sends random-port probes (one new flow each). A retry re-punches.
      if (isPredictable) this.openMany(id, ip, plan.extraTargets, true, now);
      return;
    }
    if (isRetry) return;
    switch (plan.strategy) {
      case 'birthday':
        if (plan.extraSockets > 0) this.openMany(id, ip, plan.extraTargets, false, now);
        else if (plan.randomProbe) this.probeRandom(id, ip, plan.randomProbe.count, now);
        return;
      case 'predict':
        if (m.kind === 'symmetric-sequential' && isPredictable && plan.targets.length > 0) this.predictRounds(plan.targets, now);
        return;
      default:
        return;
    }
  }

  /**
   * Prediction: send the i-th punch to the peer's i-th predicted port, in the same order each round, so a
   * sequential NAT on our side allocates its i-th new mapping toward exactly the port the peer's NAT allocates
   * for it. Later rounds reuse the same flows and get through once both exist.
   */
  private predictRounds(targets: UdpEndpoint[], now: Micros): void {
    for (let round = 0; round < this.t.predictRounds; round++) {
      const burst = (): void => {
        for (const to of targets) this.punch(to);
      };
      if (round === 0) burst();
      else this.later(now + round * this.t.predictRoundGapUs, burst);
    }
  }

  /**
   * Sequential side of the two-sided birthday: the random side's mappings toward our predicted ports are open;
   * send that many probes to random ports of its IP — each a new flow, so the i-th leaves from the i-th
   * predicted port. No hit: re-announce our (now advanced) next port after birthday2dRetryUs and go again.
   */
  private handleBirthdayReady(peer: PeerView, now: Micros): void {
    const ip = this.peerPublicIp.get(peer.nodeId);
    if (!ip || !peer.isRelayed || this.natKind !== 'symmetric-sequential') return;
    const id = peer.nodeId;
    const attempts = (this.birthdayAttempts.get(id) ?? 0) + 1;
    this.birthdayAttempts.set(id, attempts);
    this.probeRandom(id, ip, this.t.birthday2dPredictedPorts, now);
    if (attempts >= this.t.birthday2dAttempts) return;
    this.later(now + this.t.birthday2dRetryUs, () => {
      if (!this.opts.peer(id)?.isRelayed) return;
      this.natInfoSent.delete(id);
      this.sendNatInfo(id);
    });
  }

  // ---------------------------------------------------------------------------------------------------
  // Birthday probing

  /** Random side: open the extra sockets and punch the targets from each (or re-punch with open ones). */
  private openMany(peer: number, peerIp: string, targets: UdpEndpoint[], is2d: boolean, now: Micros): void {
    const run = this.hard.get(peer);
    if (run) {
      if (run.winner !== null) return;
      if (!run.isOpen) run.pending.push(targets);
      else this.prime(peer, run, [targets], now);
      return;
    }
    this.hard.set(peer, { peerIp, isOpen: false, pending: [targets], winner: null, window: null, is2d });
    this.push({ kind: 'open_sockets', peer, count: this.t.birthdaySockets });
  }

  /** The extra sockets of `peer` are bound (`count` of them). */
  handleSocketsOpened(peer: number, count: number, now: Micros): void {
    const run = this.hard.get(peer);
    if (!run || run.isOpen) return;
    run.isOpen = true;
    this.log('info', 'birthday probing: mappings opened', { peer, sockets: count, targets: run.pending.reduce((n, t) => n + t.length, 0) });
    const lists = run.pending;
    run.pending = [];
    // A second punch round to a single target: the cone side may have started probing before all existed.
    if (lists.length === 1 && lists[0]!.length === 1) lists.push(lists[0]!);
    this.prime(peer, run, lists, now);
  }

  private prime(peer: number, run: HardRun, lists: UdpEndpoint[][], now: Micros): void {
    for (const targets of lists) this.push({ kind: 'prime', peer, targets });
    if (run.window) this.cancel(run.window);
    run.window = this.later(now + this.t.birthdayWindowUs, () => {
      run.window = null;
      if (run.winner !== null) return;
      this.log('info', 'birthday probing: no hit; staying on the relay', { peer });
      this.stopBirthday(peer);
    });
    if (run.is2d && this.opts.peer(peer)?.isRelayed) this.push({ kind: 'control', peer, plaintext: Uint8Array.of(BIRTHDAY_READY) });
  }

  /**
   * A datagram reached extra socket `socket` of `peer`'s run from `from`. The first one from the peer's IP
   * makes that socket the peer's path. True when the datagram should go to the tunnel (the winner's traffic).
   */
  handleExtraReceive(peer: number, socket: number, from: UdpEndpoint, now: Micros): boolean {
    const run = this.hard.get(peer);
    if (!run || from.ip !== run.peerIp) return false;
    if (run.winner === null) {
      run.winner = socket;
      this.stats.birthdayHits++;
      this.log('info', 'birthday probing: hit', { peer, socket, peer_endpoint: formatEndpoint(from) });
      const view = this.opts.peer(peer);
      if (view?.isUp) {
        this.push({ kind: 'set_path', peer, path: { kind: 'direct', endpoint: from, socket }, reason: 'birthday probe hit' });
        this.push({ kind: 'control', peer, plaintext: Uint8Array.of(PATH_PROBE) });
      }
      // Keep the winner; the others have done their job.
      this.later(now + this.t.birthdayCloseLosersUs, () => this.push({ kind: 'close_sockets', peer, keep: [socket] }));
    }
    return socket === run.winner;
  }

  /** Easy side: rate-capped punches to random ports of the peer's IP until it is off the relay or `max` went. */
  private probeRandom(peer: number, ip: string, max: number, now: Micros): void {
    if (this.easy.has(peer)) return;
    const run: EasyRun = { ip, sent: 0, max };
    this.easy.set(peer, run);
    const perTick = Math.max(1, Math.round((this.t.birthdayProbeRate * this.t.birthdayTickUs) / 1e6));
    const tick = (at: Micros): void => {
      if (this.easy.get(peer) !== run) return;
      const view = this.opts.peer(peer);
      const isDone = !view || !view.isRelayed;
      if (isDone || run.sent >= run.max) {
        this.log('info', 'birthday probing: probe side finished', { peer, probes: run.sent, done: isDone });
        this.easy.delete(peer);
        return;
      }
      for (let k = 0; k < perTick && run.sent < run.max; k++, run.sent++) {
        this.stats.randomProbesSent++;
        this.punch({ ip, port: LOW_PORT + this.opts.rng.int(PORT_SPACE) });
      }
      this.later(at + this.t.birthdayTickUs, tick);
    };
    this.later(now, tick);
  }

  /** End the birthday run with `peer`; its winner socket stays open (it carries the path) unless `closeWinner`. */
  private stopBirthday(peer: number, closeWinner = false): void {
    const run = this.hard.get(peer);
    if (run) {
      if (run.window) this.cancel(run.window);
      this.hard.delete(peer);
      this.push({ kind: 'close_sockets', peer, keep: run.winner === null || closeWinner ? [] : [run.winner] });
    }
    this.easy.delete(peer);
  }

  // ---------------------------------------------------------------------------------------------------
  // Path liveness

  /**
   * A session with `peer` came up. On the relay: probe directly and send our NAT info now rather than at the
   * next path check, so the roles are picked within a relay round trip of the handshake.
   */
  handleSessionUp(peer: PeerView, now: Micros): void {
    if (this.opts.relayOnly) return;
    // Not now: a responder's session is up before its handshake response left, the peer's only after.
    this.later(now, () => {
      const p = this.opts.peer(peer.nodeId);
      if (!p?.isUp || !p.isRelayed) return;
      this.push({ kind: 'probe_direct', peer: p.nodeId });
      this.sendNatInfo(p.nodeId);
    });
  }

  /**
   * Every pathCheckIntervalUs: relayed peers get direct probes and our NAT info (a direct path that opens
   * later takes over); a busy peer that has gone silent is probed, and after pathDeadUs of silence its
   * traffic moves to the relay — streams continue, the transport retransmits what the dead path lost.
   */
  checkPaths(now: Micros): void {
    const busy = new Set(this.opts.busyPeers());
    for (const peer of this.opts.peers()) {
      if (!peer.isUp) continue;
      if (peer.isRelayed) {
        if (!this.opts.relayOnly) {
          this.push({ kind: 'probe_direct', peer: peer.nodeId });
          this.sendNatInfo(peer.nodeId);
          this.retryTraversal(peer.nodeId, now);
        }
        continue;
      }
      this.retries.delete(peer.nodeId);
      if (!busy.has(peer.nodeId)) continue;
      const silentUs = now - peer.lastRecvUs;
      if (silentUs >= this.t.pathDeadUs && this.opts.hasRelay) {
        this.stats.deadPaths++;
        this.log('info', 'direct path silent; switching to the relay', { peer: peer.nodeId, silent_ms: Math.round(silentUs / 1000) });
        this.push({ kind: 'set_path', peer: peer.nodeId, path: { kind: 'relay' }, reason: 'direct path silent' });
        this.push({ kind: 'control', peer: peer.nodeId, plaintext: Uint8Array.of(PATH_PROBE) });
      } else if (silentUs >= this.t.pathProbeAfterUs) {
        this.push({ kind: 'control', peer: peer.nodeId, plaintext: Uint8Array.of(PATH_PROBE) });
      }
    }
  }

  /** A birthday run of ours is looking for a hit (a run that found one keeps only its winner). */
  private isTraversing(peer: number): boolean {
    return this.easy.has(peer) || this.hard.get(peer)?.winner === null;
  }

  /**
   * A relayed peer we planned a traversal with and whose runs have ended: after traversalRetryUs (doubling to
   * traversalRetryMaxUs) send our NAT info marked as a restart; the peer answers with its own and both sides take
   * their roles again. Without this a pair whose first traversal failed — a path blocked for a while, mappings
   * expired, a direct path that died under load — stayed on the relay for good.
   */
  private retryTraversal(peer: number, now: Micros): void {
    if (!this.strategies.has(peer) || this.isTraversing(peer)) return;
    const r = this.retries.get(peer);
    if (!r) {
      this.retries.set(peer, { atUs: now + this.t.traversalRetryUs, gapUs: this.t.traversalRetryUs });
      return;
    }
    if (now < r.atUs) return;
    r.gapUs = Math.min(r.gapUs * 2, this.t.traversalRetryMaxUs);
    r.atUs = now + r.gapUs;
    this.log('info', 'no direct path yet; starting the traversal again', { peer, next_retry_s: Math.round(r.gapUs / 1e6) });
    if (this.hard.get(peer)?.winner != null) this.stopBirthday(peer, true);
    this.natInfoSent.delete(peer);
    this.sendNatInfo(peer, true);
  }

  // ---------------------------------------------------------------------------------------------------

  private punch(to: UdpEndpoint): void {
    this.stats.punchesSent++;
    this.push({ kind: 'punch', to });
  }

  private push(a: PathAction): void {
    this.actions.push(a);
  }

  private log(level: 'info' | 'debug', msg: string, fields: Record<string, unknown>): void {
    this.push({ kind: 'log', level, msg, fields });
  }

  private later(atUs: Micros, fn: (now: Micros) => void): Scheduled {
    const s = { atUs, fn };
    this.scheduled.push(s);
    return s;
  }

  private cancel(s: Scheduled): void {
    const i = this.scheduled.indexOf(s);
    if (i >= 0) this.scheduled.splice(i, 1);
  }
}
