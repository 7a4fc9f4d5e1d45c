// A simulated internet for the sans-IO NAT traversal core: NAT models per kind (RFC 4787 mapping + filtering,
// the same semantics as netsim/nat.ts builds with nftables), a beacon that answers discover, relays and
// coordinates punches, and a virtual clock that drives two Traversal instances the way the daemon will.
import { Rng, type Micros } from '../../../src/core/index.js';
import {
  classifyNat,
  decodeNatMessage,
  formatEndpoint,
  Traversal,
  type DataPath,
  type DiscoverObservation,
  type NatMessage,
  type NatProfile,
  type TraversalOptions,
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

export interface SimHost {
  name: string;
  /** LAN address (or the public address of a public host). */
  ip: string;
  nat: NatModel | null;
  sockets: Map<number, number>; // socket index → local port
  traversal: Traversal | null;
  profile: NatProfile | null;
  pathHistory: { at: Micros; path: DataPath; reason: string }[];
  directAt: Micros | null;
}

export interface WorldOptions {
  seed: number;
  /** One-way latency of every hop (host ↔ beacon, host ↔ host). */
  latencyUs?: Micros;
  lossPct?: number;
  sameNat?: boolean;
  hairpin?: boolean;
  relayMode?: 'race' | 'fallback';
  timing?: TraversalOptions['timing'];
}

const BEACON: UdpEndpoint = { ip: '198.18.100.10', port: 9001 };
const BEACON2: UdpEndpoint = { ip: '198.18.100.11', port: 9001 };

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
  get size(): number {
    return this.h.length;
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
    const mk = (name: string, kind: ModelKind, i: number, shared: NatModel | null): SimHost => {
      const nat = kind === 'none' ? null : (shared ?? new NatModel(kind, `198.18.${i + 1}.1`, this.rng));
      const ip = kind === 'none' ? `198.18.${101 + i}.10` : `192.168.${shared ? 1 : i + 1}.${shared ? 3 : 2}`;
      return { name, ip, nat, sockets: new Map([[0, 40000 + i]]), traversal: null, profile: null, pathHistory: [], directAt: null };
    };
    this.a = mk('a', kindA, 0, null);
    this.b = mk('b', opts.sameNat ? kindA : kindB, 1, opts.sameNat ? this.a.nat : null);
  }

  other(h: SimHost): SimHost {
    return h === this.a ? this.b : this.a;
  }

  /** What the daemon's classification would conclude from discover to beacon and beacon2 (socket 0). */
  classify(h: SimHost): NatProfile {
    const port = h.sockets.get(0)!;
    const obs: DiscoverObservation[] = [BEACON, BEACON2].map((server, i) => ({
      socket: 0,
      localPort: port,
      server,
      observed: this.publicSource(h, 0, server)!,
      firstSentUs: i,
    }));
    const c = classifyNat({ observations: obs, localIps: [h.ip] });
    const profile: NatProfile = { kind: c.kind, publicEndpoint: c.publicEndpoint, lanEndpoints: h.nat ? [{ ip: h.ip, port }] : [] };
    if (c.portDelta !== null) profile.portDelta = c.portDelta;
    if (c.nextPort !== null) profile.nextPort = c.nextPort;
    return profile;
  }

  /** Start both traversals (a dials b) and run until both are direct, or `limitUs` of simulated time. */
  run(limitUs: Micros, stopWhenDirect = true): void {
    if (!this.a.traversal) this.setup();
    const end = this.now + limitUs;
    for (;;) {
      if (stopWhenDirect && this.a.directAt !== null && this.b.directAt !== null && this.bothDirectNow()) return;
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
    return this.a.traversal!.path?.kind === 'direct' && this.b.traversal!.path?.kind === 'direct';
  }

  setup(): void {
    for (const h of [this.a, this.b]) {
      h.profile = this.classify(h);
      h.traversal = new Traversal({
        local: h.profile,
        isInitiator: h === this.a,
        rng: new Rng(this.rng.nextU32()),
        relayMode: this.opts.relayMode ?? 'race',
        ...(this.opts.timing ? { timing: this.opts.timing } : {}),
      });
    }
    this.a.traversal!.start(this.now);
    this.drain(this.a);
    // The responder starts when the dialer's session (over the relay) reaches it.
    this.at(this.now + 2 * this.latencyUs, () => {
      this.b.traversal!.start(this.now);
      this.drain(this.b);
    });
  }

  at(t: Micros, fn: () => void): void {
    this.q.push(t, fn);
  }

  /** Where a packet from host h socket s to dst leaves the NAT (creating NAT state). */
  private publicSource(h: SimHost, socket: number, dst: UdpEndpoint): UdpEndpoint | null {
    const port = h.sockets.get(socket);
    if (port === undefined) return null;
    const internal = { ip: h.ip, port };
    return h.nat ? h.nat.outbound(internal, dst) : internal;
  }

  /** Process every pending action of h's traversal, then re-arm its timer. */
  drain(h: SimHost): void {
    const t = h.traversal!;
    for (let a = t.pollAction(); a; a = t.pollAction()) {
      switch (a.kind) {
        case 'send':
          this.send(h, a.socket, a.to, a.plaintext);
          break;
        case 'request_punch': {
          // request travels to the beacon, commands travel to both
          const peer = this.other(h);
          this.at(this.now + 2 * this.latencyUs, () => {
            for (const [x, y] of [[h, peer], [peer, h]] as const) {
              const ep = y.profile!.publicEndpoint!;
              x.traversal!.handlePunchCommand(ep, this.now);
              this.drain(x);
            }
          });
          break;
        }
        case 'open_sockets': {
          for (let i = 1; i <= a.count; i++) if (!h.sockets.has(i)) h.sockets.set(i, 41000 + i);
          this.at(this.now + 1000, () => {
            h.traversal!.handleSocketsOpened(a.count, this.now);
            this.drain(h);
          });
          break;
        }
        case 'close_sockets':
          for (const s of [...h.sockets.keys()]) if (s !== 0 && !a.keep.includes(s)) h.sockets.delete(s);
          break;
        case 'set_path':
          h.pathHistory.push({ at: this.now, path: a.path, reason: a.reason });
          if (a.path.kind === 'direct' && h.directAt === null) h.directAt = this.now;
          break;
      }
    }
    const next = t.pollTimeout();
    if (next !== null && next !== this.timers.get(h)) {
      this.timers.set(h, next);
      this.at(Math.max(next, this.now), () => {
        if (this.timers.get(h) !== next) return;
        this.timers.set(h, null);
        h.traversal!.handleTimeout(this.now);
        this.drain(h);
      });
    }
  }

  private send(h: SimHost, socket: number, to: UdpEndpoint | null, plaintext: Uint8Array): void {
    const msg = decodeNatMessage(plaintext);
    if (!msg.ok) throw new Error('traversal emitted an undecodable message');
    const peer = this.other(h);
    if (to === null) {
      this.relayed++;
      this.at(this.now + 2 * this.latencyUs, () => {
        peer.traversal!.handleNatMessage(0, null, msg.value, this.now);
        this.drain(peer);
      });
      return;
    }
    this.packetsSent++;
    // Same LAN: straight across the bridge, no NAT involved.
    if (h.nat && h.nat === peer.nat && to.ip === peer.ip) {
      const port = h.sockets.get(socket);
      if (port === undefined) return;
      this.deliver(peer, to.port, { ip: h.ip, port }, msg.value, this.latencyUs / 5);
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
        this.deliver(peer, internal.port, src, msg.value, 0);
      } else if (!peer.nat && to.ip === peer.ip) {
        this.deliver(peer, to.port, src, msg.value, 0);
      }
    });
  }

  private deliver(peer: SimHost, localPort: number, src: UdpEndpoint, msg: NatMessage, delayUs: Micros): void {
    const go = () => {
      let socket = -1;
      for (const [s, p] of peer.sockets) if (p === localPort) socket = s;
      if (socket < 0) return; // socket closed meanwhile
      peer.traversal!.handleNatMessage(socket, src, msg, this.now);
      this.drain(peer);
    };
    if (delayUs > 0) this.at(this.now + delayUs, go);
    else go();
  }

  describe(): string {
    const p = (h: SimHost) => {
      const path = h.traversal?.path;
      return `${h.name}: ${h.profile?.kind} ${path ? (path.kind === 'direct' ? `direct s${path.socket}→${formatEndpoint(path.endpoint)}` : 'relay') : '-'}`;
    };
    return `${p(this.a)}; ${p(this.b)}`;
  }
}
