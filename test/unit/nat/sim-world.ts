// A simulated internet for the path engine the daemon runs (src/nat/paths.ts): NAT models per kind (RFC 4787
// mapping + filtering, the same semantics as netsim/nat.ts builds with nftables), a beacon that answers
// discover, relays and coordinates punches, a model of the tunnel (handshake retries to the candidates, the
// relay joining after two direct attempts, roaming: an authenticated packet from a new source moves the peer),
// and a virtual clock that drives two PathEngine instances the way src/node/paths/path-driver.ts does.
import { Rng, type Micros } from '../../../src/core/index.js';
import {
  formatEndpoint,
  NAT_TIMING,
  PathEngine,
  sameEndpoint,
  type NatTiming,
  type PathAction,
  type PathTo,
  type PeerView,
  type UdpEndpoint,
} from '../../../src/nat/index.js';

export type ModelKind = 'none' | 'full-cone' | 'restricted-cone' | 'port-restricted-cone' | 'symmetric-sequential' | 'symmetric-random';

const key = (e: UdpEndpoint) => `${e.ip}:${e.port}`;

interface Mapping {
  internal: UdpEndpoint;
  port: number;
  /** Remote endpoints (ip:port) and IPs this mapping has sent to: the filter state. */
  sentTo: Set<string>;
  sentToIp: Set<string>;
  /** Endpoint-dependent mappings serve one destination. */
  dst: string | null;
}

/** One NAT router. Mappings never expire unless flush() (tests simulate a reboot with it). */
export class NatModel {
  private readonly byKey = new Map<string, Mapping>();
  /** EIM: by public port; EDM: by public port + destination (the kernel only keeps 5-tuples unique). */
  private readonly byPort = new Map<string, Mapping>();
  private seq: number;
  flowsCreated = 0;

  constructor(
    readonly kind: Exclude<ModelKind, 'none'>,
    readonly publicIp: string,
    private readonly rng: Rng,
    seqBase = 20000,
  ) {
    this.seq = seqBase;
  }

  get isEndpointDependent(): boolean {
    return this.kind === 'symmetric-sequential' || this.kind === 'symmetric-random';
  }

  /** Outbound packet: the public source it leaves with (creates/refreshes state). */
  outbound(internal: UdpEndpoint, dst: UdpEndpoint): UdpEndpoint {
    const k = this.isEndpointDependent ? `${key(internal)}>${key(dst)}` : key(internal);
    let m = this.byKey.get(k);
    if (!m) {
      const dk = this.isEndpointDependent ? key(dst) : null;
      m = { internal, port: this.allocate(internal.port, dk), sentTo: new Set(), sentToIp: new Set(), dst: dk };
      this.byKey.set(k, m);
      this.byPort.set(dk === null ? String(m.port) : `${m.port}|${dk}`, m);
      this.flowsCreated++;
    }
    m.sentTo.add(key(dst));
    m.sentToIp.add(dst.ip);
    return { ip: this.publicIp, port: m.port };
  }

  /** Inbound packet from `src` to our public port: the internal endpoint, or null when filtered. */
  inbound(src: UdpEndpoint, port: number): UdpEndpoint | null {
    const m = this.byPort.get(this.isEndpointDependent ? `${port}|${key(src)}` : String(port));
    if (!m) return null;
    switch (this.kind) {
      case 'full-cone':
        return m.internal;
      case 'restricted-cone':
        return m.sentToIp.has(src.ip) ? m.internal : null;
      default:
        return m.sentTo.has(key(src)) ? m.internal : null;
    }
  }

  flush(): void {
    this.byKey.clear();
    this.byPort.clear();
  }

  private allocate(localPort: number, dst: string | null): number {
    const taken = (p: number) => this.byPort.has(dst === null ? String(p) : `${p}|${dst}`);
    if (this.kind === 'symmetric-sequential') return this.seq++;
    if (this.kind !== 'symmetric-random' && !taken(localPort)) return localPort;
    for (;;) {
      const p = 1024 + this.rng.int(65536 - 1024);
      if (!taken(p)) return p;
    }
  }
}


/** What travels in the simulation: punches, beacon messages and (authenticated) tunnel frames. */
type Packet =
  | { kind: 'pilp' }
  | { kind: 'discover' }
  | { kind: 'punch_request' }
  | { kind: 'init' }
  | { kind: 'resp' }
  | { kind: 'data'; plaintext: Uint8Array };

/** The tunnel to the other host, as src/node/peers/noise-suite.ts behaves (one peer). */
interface SimTunnel {
  isUp: boolean;
  path: PathTo | null;
  lastRecvUs: Micros;
  lastDirectRecvUs: Micros;
  /** The peer's registered endpoints (registry resolve): its public endpoint at the beacon, its LAN one. */
  candidates: UdpEndpoint[];
  isInitiating: boolean;
}

export interface SimHost {
  name: string;
  id: number;
  /** LAN address (or the public address of a public host). */
  ip: string;
  nat: NatModel | null;
  sockets: Map<number, number>; // socket index → local port
  engine: PathEngine;
  tunnel: SimTunnel;
  /** Open connections to the peer (the engine's busyPeers). */
  isBusy: boolean;
  pathHistory: { at: Micros; path: PathTo; reason: string }[];
  directAt: Micros | null;
}

export interface WorldOptions {
  seed: number;
  /** One-way latency of every hop (host ↔ beacon, host ↔ host). */
  latencyUs?: Micros;
  lossPct?: number;
  sameNat?: boolean;
  hairpin?: boolean;
  timing?: Partial<NatTiming>;
}

const BEACON: UdpEndpoint = { ip: '198.18.100.10', port: 9001 };
const BEACON2: UdpEndpoint = { ip: '198.18.100.11', port: 9001 };
const KEEPALIVE = Uint8Array.of(0x10);
/** peers/noise-suite.ts: a relay packet may not take the peer off a direct path heard from this recently. */
const DIRECT_PATH_GRACE_US = 3_000_000;
/** peers/noise-suite.ts: initiation attempts sent direct-only before the relay joins the race. */
const DIRECT_ONLY_ATTEMPTS = 2;

interface Ev {
  at: Micros;
  order: number;
  fn: () => void;
}

/** Binary min-heap of events by (time, insertion order). */
class EventQueue {
  private readonly h: Ev[] = [];
  private n = 0;
  push(at: Micros, fn: () => void): void {
    const e = { at, order: this.n++, fn };
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, e)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }
  pop(): Ev | null {
    const h = this.h;
    if (h.length === 0) return null;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && less(h[r]!, h[l]!) ? r : l;
        if (less(last, h[c]!)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
function less(a: Ev, b: Ev): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

export class World {
  now: Micros = 0;
  readonly rng: Rng;
  readonly a: SimHost;
  readonly b: SimHost;
  private readonly q = new EventQueue();
  private readonly latencyUs: Micros;
  private readonly lossPct: number;
  private readonly timers = new Map<SimHost, Micros | null>();
  /** What the beacon observed for each host's tunnel socket (its punch commands name these). */
  private readonly observed = new Map<SimHost, UdpEndpoint>();
  private isSetUp = false;
  /** When a dialed b (after both classified). */
  dialAt: Micros | null = null;
  packetsSent = 0;
  relayed = 0;
  /** Drop every packet between the two hosts' public addresses (a dead path), relay keeps working. */
  isDirectCut = false;

  constructor(
    kindA: ModelKind,
    kindB: ModelKind,
    private readonly opts: WorldOptions,
  ) {
    this.rng = new Rng(opts.seed);
    this.latencyUs = opts.latencyUs ?? 15_000;
    this.lossPct = opts.lossPct ?? 0;
    const mk = (name: string, id: number, kind: ModelKind, i: number, shared: NatModel | null): SimHost => {
      const nat = kind === 'none' ? null : (shared ?? new NatModel(kind, `198.18.${i + 1}.1`, this.rng));
      const ip = kind === 'none' ? `198.18.${101 + i}.10` : `192.168.${shared ? 1 : i + 1}.${shared ? 3 : 2}`;
      const h: SimHost = {
        name,
        id,
        ip,
        nat,
        sockets: new Map([[0, 40000 + i]]),
        engine: null as unknown as PathEngine,
        tunnel: { isUp: false, path: null, lastRecvUs: 0, lastDirectRecvUs: 0, candidates: [], isInitiating: false },
        isBusy: false,
        pathHistory: [],
        directAt: null,
      };
      const peerId = id === 1 ? 2 : 1;
      const v = (): PeerView => ({ nodeId: peerId, isUp: h.tunnel.isUp, isRelayed: h.tunnel.path?.kind === 'relay', lastRecvUs: h.tunnel.lastRecvUs });
      h.engine = new PathEngine({
        rng: new Rng(this.rng.nextU32()),
        ...(opts.timing ? { timing: opts.timing } : {}),
        beacons: [BEACON, BEACON2],
        hasRelay: true,
        relayOnly: false,
        nodeId: () => id,
        localPort: () => h.sockets.get(0)!,
        localIps: () => [h.ip],
        peer: (n) => (n === peerId ? v() : null),
        peers: () => [v()],
        busyPeers: () => (h.isBusy ? [peerId] : []),
        acceptsPunchFrom: () => true,
      });
      return h;
    };
    this.a = mk('a', 1, kindA, 0, null);
    this.b = mk('b', 2, opts.sameNat ? kindA : kindB, 1, opts.sameNat ? this.a.nat : null);
  }

  other(h: SimHost): SimHost {
    return h === this.a ? this.b : this.a;
  }

  /** Both engines start (discover, classify); a dials b once both are classified. */
  setup(): void {
    this.isSetUp = true;
    // A busy host's connections send a segment every 100 ms on the current path.
    const traffic = (): void => {
      for (const h of [this.a, this.b]) if (h.isBusy) this.sendData(h);
      this.at(this.now + 100_000, traffic);
    };
    this.at(this.now + 100_000, traffic);
    for (const h of [this.a, this.b]) {
      h.engine.start(this.now);
      this.drain(h);
    }
    this.at(this.now + 4 * this.latencyUs, () => {
      for (const h of [this.a, this.b]) {
        const o = this.other(h);
        const pub = this.observed.get(o)!;
        h.tunnel.candidates = o.nat ? [pub, { ip: o.ip, port: o.sockets.get(0)! }] : [pub];
      }
      this.dialAt = this.now;
      this.a.tunnel.isInitiating = true;
      this.a.engine.requestPunch(this.b.id, this.now); // onHandshakeStart
      this.drain(this.a);
      this.sendInitiation(this.a, 0, this.now);
    });
  }

  /** Run until both are direct, or `limitUs` of simulated time. */
  run(limitUs: Micros, stopWhenDirect = true): void {
    if (!this.isSetUp) this.setup();
    const end = this.now + limitUs;
    for (;;) {
      if (stopWhenDirect && this.bothDirectNow()) return;
      const e = this.q.pop();
      if (!e || e.at > end) {
        this.now = end;
        return;
      }
      this.now = e.at;
      e.fn();
    }
  }

  bothDirectNow(): boolean {
    return this.a.tunnel.path?.kind === 'direct' && this.b.tunnel.path?.kind === 'direct';
  }

  /** The peer's strategy as h's engine planned it (null: no NAT info was needed). */
  strategy(h: SimHost): string | null {
    return h.engine.strategyOf(this.other(h).id);
  }

  at(t: Micros, fn: () => void): void {
    this.q.push(t, fn);
  }

  /** One data frame (a stream segment) from h on its current path. */
  sendData(h: SimHost): void {
    this.tunnelSend(h, Uint8Array.of(0x01), undefined);
  }

  /** Execute every pending action of h's engine, then re-arm its timer (as path-driver.ts does). */
  drain(h: SimHost): void {
    const e = h.engine;
    for (let a = e.pollAction(); a; a = e.pollAction()) this.execute(h, a);
    const next = e.pollTimeout();
    if (next !== null && next !== this.timers.get(h)) {
      this.timers.set(h, next);
      this.at(Math.max(next, this.now), () => {
        if (this.timers.get(h) !== next) return;
        this.timers.set(h, null);
        h.engine.handleTimeout(this.now);
        this.drain(h);
      });
    }
  }

  private execute(h: SimHost, a: PathAction): void {
    switch (a.kind) {
      case 'punch':
        this.sendRaw(h, 0, a.to, { kind: 'pilp' });
        return;
      case 'beacon':
        this.sendRaw(h, 0, a.to, a.message.kind === 'discover' ? { kind: 'discover' } : { kind: 'punch_request' });
        return;
      case 'control':
        this.tunnelSend(h, a.plaintext, a.to);
        return;
      case 'nat_info': {
        const m = h.engine.natInfo(a.isRestart === true);
        if (m) this.tunnelSend(h, m, undefined);
        return;
      }
      case 'probe_direct':
        if (h.tunnel.isUp && h.tunnel.path?.kind === 'relay') for (const c of h.tunnel.candidates) this.tunnelSend(h, KEEPALIVE, c);
        return;
      case 'open_sockets': {
        for (let i = 1; i <= a.count; i++) if (!h.sockets.has(i)) h.sockets.set(i, 41000 + i);
        this.at(this.now + 1000, () => {
          h.engine.handleSocketsOpened(a.peer, a.count, this.now);
          this.drain(h);
        });
        return;
      }
      case 'prime':
        for (const s of h.sockets.keys()) if (s !== 0) for (const t of a.targets) this.sendRaw(h, s, t, { kind: 'pilp' });
        return;
      case 'close_sockets':
        for (const s of [...h.sockets.keys()]) if (s !== 0 && !a.keep.includes(s)) h.sockets.delete(s);
        return;
      case 'set_path':
        if (a.path.kind === 'direct' && !h.sockets.has(a.path.socket)) return;
        this.setPath(h, a.path, a.reason);
        return;
      case 'log':
        return;
    }
  }

  private setPath(h: SimHost, p: PathTo, reason: string): void {
    const cur = h.tunnel.path;
    const same = cur?.kind === p.kind && (p.kind === 'relay' || (cur?.kind === 'direct' && cur.socket === p.socket && sameEndpoint(cur.endpoint, p.endpoint)));
    if (same) return;
    h.tunnel.path = p;
    h.pathHistory.push({ at: this.now, path: p, reason });
    if (p.kind === 'direct' && h.directAt === null) h.directAt = this.now;
  }

  // --- the tunnel model -------------------------------------------------------------------------------

  private sendInitiation(h: SimHost, attempt: number, startUs: Micros): void {
    const t = h.tunnel;
    if (t.isUp || !t.isInitiating || this.now - startUs > 10_000_000) return;
    for (const c of t.candidates) this.sendRaw(h, 0, c, { kind: 'init' });
    if (attempt >= DIRECT_ONLY_ATTEMPTS) this.relay(h, { kind: 'init' });
    this.at(this.now + Math.min(100 * 2 ** attempt, 1000) * 1000, () => this.sendInitiation(h, attempt + 1, startUs));
  }

  private tunnelSend(h: SimHost, plaintext: Uint8Array, to: UdpEndpoint | undefined): void {
    const t = h.tunnel;
    if (!t.isUp) return;
    const p: Packet = { kind: 'data', plaintext };
    if (to) this.sendRaw(h, 0, to, p);
    else if (t.path?.kind === 'relay') this.relay(h, p);
    else if (t.path?.kind === 'direct') this.sendRaw(h, t.path.socket, t.path.endpoint, p);
  }

  private relay(h: SimHost, p: Packet): void {
    this.relayed++;
    const peer = this.other(h);
    this.at(this.now + 2 * this.latencyUs, () => this.tunnelReceive(peer, p, 0, null));
  }

  /** An authenticated frame (or handshake message) at h, on socket `socket` from `src`, or relayed (null). */
  private tunnelReceive(h: SimHost, p: Packet, socket: number, src: UdpEndpoint | null): void {
    const t = h.tunnel;
    const peer = this.other(h);
    if (p.kind === 'init') {
      const wasUp = t.isUp;
      t.isUp = true;
      this.notePath(h, socket, src);
      t.lastRecvUs = this.now;
      if (src) this.sendRaw(h, socket, src, { kind: 'resp' });
      else this.relay(h, { kind: 'resp' });
      if (!wasUp) h.engine.handleSessionUp({ nodeId: peer.id, isUp: true, isRelayed: t.path?.kind === 'relay', lastRecvUs: this.now }, this.now);
    } else if (p.kind === 'resp') {
      if (!t.isInitiating) return;
      t.isInitiating = false;
      t.isUp = true;
      this.notePath(h, socket, src);
      t.lastRecvUs = this.now;
      h.engine.handleSessionUp({ nodeId: peer.id, isUp: true, isRelayed: t.path?.kind === 'relay', lastRecvUs: this.now }, this.now);
    } else if (p.kind === 'data') {
      if (!t.isUp) return;
      this.notePath(h, socket, src);
      t.lastRecvUs = this.now;
      h.engine.handleControl({ nodeId: peer.id, isUp: true, isRelayed: t.path?.kind === 'relay', lastRecvUs: this.now }, p.plaintext, this.now);
    }
    this.drain(h);
  }

  /** Roaming (peers/noise-suite.ts notePath). */
  private notePath(h: SimHost, socket: number, src: UdpEndpoint | null): void {
    const t = h.tunnel;
    if (src) {
      t.lastDirectRecvUs = this.now;
      this.setPath(h, { kind: 'direct', socket, endpoint: src }, 'roaming: authenticated packet');
      return;
    }
    if (t.path?.kind === 'direct' && this.now - t.lastDirectRecvUs < DIRECT_PATH_GRACE_US) return;
    this.setPath(h, { kind: 'relay' }, 'roaming: relayed packet');
  }

  /** peers/noise-suite.ts handlePunchFrom: a punch from a candidate's IP on a new port gets the initiation too. */
  private handlePunchFrom(h: SimHost, src: UdpEndpoint): void {
    const t = h.tunnel;
    if (!t.isInitiating || !t.candidates.some((c) => c.ip === src.ip) || t.candidates.some((c) => sameEndpoint(c, src))) return;
    t.candidates.push(src);
    this.sendRaw(h, 0, src, { kind: 'init' });
  }

  // --- the network ------------------------------------------------------------------------------------

  /** Where a packet from host h socket s to dst leaves the NAT (creating NAT state). */
  private publicSource(h: SimHost, socket: number, dst: UdpEndpoint): UdpEndpoint | null {
    const port = h.sockets.get(socket);
    if (port === undefined) return null;
    const internal = { ip: h.ip, port };
    return h.nat ? h.nat.outbound(internal, dst) : internal;
  }

  private sendRaw(h: SimHost, socket: number, to: UdpEndpoint, p: Packet): void {
    if (socket === 0) h.engine.noteFlow(to.ip, to.port); // paths/main-socket.ts reports each send
    if (sameEndpoint(to, BEACON) || sameEndpoint(to, BEACON2)) {
      const src = this.publicSource(h, socket, to);
      if (!src) return;
      this.at(this.now + this.latencyUs, () => this.beacon(h, to, src, p));
      return;
    }
    const peer = this.other(h);
    this.packetsSent++;
    // Same LAN: straight across the bridge, no NAT involved.
    if (h.nat && h.nat === peer.nat && to.ip === peer.ip) {
      const port = h.sockets.get(socket);
      if (port === undefined) return;
      this.at(this.now + this.latencyUs / 5, () => this.deliver(peer, to.port, { ip: h.ip, port }, p));
      return;
    }
    const src = this.publicSource(h, socket, to);
    if (!src) return;
    if (this.lossPct > 0 && this.rng.chance(this.lossPct / 100)) return;
    if (this.isDirectCut) return;
    this.at(this.now + this.latencyUs, () => {
      if (peer.nat && to.ip === peer.nat.publicIp) {
        if (h.nat === peer.nat && !this.opts.hairpin) return; // no NAT loopback
        const internal = peer.nat.inbound(src, to.port);
        if (!internal || internal.ip !== peer.ip) return;
        this.deliver(peer, internal.port, src, p);
      } else if (!peer.nat && to.ip === peer.ip) {
        this.deliver(peer, to.port, src, p);
      }
    });
  }

  /** The beacon: discover replies, punch commands to both sides (the other's observed endpoint each). */
  private beacon(h: SimHost, server: UdpEndpoint, src: UdpEndpoint, p: Packet): void {
    if (p.kind === 'discover') {
      if (sameEndpoint(server, BEACON)) this.observed.set(h, src);
      this.at(this.now + this.latencyUs, () => {
        h.engine.handleDiscoverReply(server, src, this.now);
        this.drain(h);
      });
    } else if (p.kind === 'punch_request') {
      const peer = this.other(h);
      for (const [x, y] of [[h, peer], [peer, h]] as const) {
        const ep = this.observed.get(y);
        if (!ep) continue;
        this.at(this.now + this.latencyUs, () => {
          x.engine.handlePunchCommand({ ip: ep.ip, port: ep.port, auth: null }, BEACON, false, this.now);
          this.drain(x);
        });
      }
    }
  }

  private deliver(h: SimHost, localPort: number, src: UdpEndpoint, p: Packet): void {
    let socket = -1;
    for (const [s, port] of h.sockets) if (port === localPort) socket = s;
    if (socket < 0) return; // socket closed meanwhile
    const peer = this.other(h);
    if (socket === 0) {
      if (p.kind === 'pilp') {
        this.handlePunchFrom(h, src);
        h.engine.handlePunch(src.ip, src.port, this.now);
        this.drain(h);
      } else this.tunnelReceive(h, p, 0, src);
      return;
    }
    const isWinner = h.engine.handleExtraReceive(peer.id, socket, src, this.now);
    this.drain(h);
    if (isWinner && p.kind !== 'pilp') this.tunnelReceive(h, p, socket, src);
  }

  describe(): string {
    const p = (h: SimHost) => {
      const path = h.tunnel.path;
      return `${h.name}: ${h.engine.natType ?? 'unclassified'} ${this.strategy(h) ?? '-'} ${path ? (path.kind === 'direct' ? `direct s${path.socket}→${formatEndpoint(path.endpoint)}` : 'relay') : '-'}`;
    };
    return `${p(this.a)}; ${p(this.b)}`;
  }
}

export { NAT_TIMING };
