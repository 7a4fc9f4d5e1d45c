// A simulated IPv4 internet for whole nodes: public hosts in 198.18.0.0/15, LANs 192.168.n.0/24 behind NAT
// boxes (the RFC 4787 models of test/unit/nat/sim-world.ts), links with latency, loss, reordering, bit
// corruption and an optional rate, all drawn from one seeded Rng and scheduled on the simulation's Timers. A
// SimDatapath is the node's UDP socket on a host and port: it implements src/datapath's Datapath, so the node
// core sends and receives exactly as on a real socket (batches, stride-4 meta), and a corrupted packet reaches
// the receiver's real AEAD.
import { err, ok, type Result } from '../../../src/core/result.js';
import type { Rng } from '../../../src/core/rng.js';
import type { Clock, Micros, Timers } from '../../../src/core/clock.js';
import { PacketBatch, ipv4ToU32, u32ToIpv4 } from '../../../src/datapath/packet-batch.js';
import { META_STRIDE, type Datapath, type DatapathStats, type RecvBatch, type SendBatch } from '../../../src/datapath/types.js';
import { NatModel, type ModelKind } from '../../unit/nat/sim-world.js';

export type { ModelKind };
export type NatKind = Exclude<ModelKind, 'none'>;

export interface Endpoint {
  ip: string;
  port: number;
}

/** What one direction of a link does to a packet. Percentages are 0–100. */
export interface LinkProfile {
  latencyUs: Micros;
  /** Packets dropped at random. */
  lossPct: number;
  /** Packets held back by up to `reorderUs` more (so later ones overtake them). */
  reorderPct: number;
  reorderUs: Micros;
  /** Packets delivered with one random bit flipped. */
  corruptPct: number;
  /** Serialisation rate (bytes/s, 0 = unlimited) with a tail-drop queue of `queueUs`. */
  rateBytesPerSec: number;
  queueUs: Micros;
}

export const DEFAULT_LINK: Readonly<LinkProfile> = Object.freeze({
  latencyUs: 10_000,
  lossPct: 0,
  reorderPct: 0,
  reorderUs: 0,
  corruptPct: 0,
  rateBytesPerSec: 0,
  queueUs: 50_000,
});

/** One LAN hop (host ↔ its NAT, or two hosts on one LAN). */
const LAN_LATENCY_US = 500;

export interface NetStats {
  sent: number;
  delivered: number;
  lost: number;
  corrupted: number;
  reordered: number;
  /** Dropped by a NAT's filter (no mapping, or not sent-to). */
  filtered: number;
  /** Dropped by a cut (net.cut). */
  cut: number;
  /** Dropped by a full link queue. */
  queueDropped: number;
  /** No host or no socket at the destination. */
  unreachable: number;
}

export class SimNat {
  readonly lanHosts = new Map<string, SimHost>();
  constructor(
    readonly index: number,
    readonly model: NatModel,
    /** 192.168.<index>. */
    readonly lanPrefix: string,
  ) {}
  get publicIp(): string {
    return this.model.publicIp;
  }
  get kind(): NatKind {
    return this.model.kind;
  }
}

export class SimHost {
  /** Bound sockets by local port. */
  readonly sockets = new Map<number, SimDatapath>();
  private nextEphemeral = 49152;
  constructor(
    readonly net: SimNet,
    readonly name: string,
    /** The LAN address behind a NAT, or the public address. */
    readonly ip: string,
    readonly nat: SimNat | null,
  ) {}

  /** The address the internet sees (its NAT's for a LAN host). */
  get publicIp(): string {
    return this.nat ? this.nat.publicIp : this.ip;
  }

  /** A UDP socket on `port` (0 = ephemeral); `bindIp` must be the host's address or 0.0.0.0. */
  bind(port: number, bindIp = this.ip): Result<SimDatapath> {
    if (bindIp !== this.ip && bindIp !== '0.0.0.0') {
      return err('invalid_argument', `cannot bind ${bindIp}:${port} on ${this.name} (${this.ip})`, { hint: `bind ${this.ip} or 0.0.0.0` });
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) return err('invalid_argument', `bad UDP port ${port}`);
    if (port === 0) {
      for (let i = 0; i < 16384 && this.sockets.has(this.nextEphemeral); i++) this.advanceEphemeral();
      port = this.nextEphemeral;
      this.advanceEphemeral();
    }
    if (this.sockets.has(port)) return err('invalid_argument', `${this.name}: port ${port} is in use`);
    const dp = new SimDatapath(this, bindIp, port);
    this.sockets.set(port, dp);
    return ok(dp);
  }

  private advanceEphemeral(): void {
    this.nextEphemeral = this.nextEphemeral >= 65535 ? 49152 : this.nextEphemeral + 1;
  }
}

export interface SimNetOptions {
  rng: Rng;
  clock: Clock;
  timers: Timers;
  /** Every public link unless overridden with setLink. */
  link?: Partial<LinkProfile>;
  /** NATs forward a LAN host's packet to their own public address back into the LAN. Default false. */
  hairpin?: boolean;
}

interface Packet {
  src: Endpoint;
  dst: Endpoint;
  bytes: Uint8Array;
  /** A bit was flipped on the way (counted where it arrives). */
  isCorrupt?: boolean;
}

type Cut = (src: Endpoint, dst: Endpoint) => boolean;

export class SimNet {
  readonly rng: Rng;
  readonly stats: NetStats = { sent: 0, delivered: 0, lost: 0, corrupted: 0, reordered: 0, filtered: 0, cut: 0, queueDropped: 0, unreachable: 0 };
  /** Packets per public source → destination IP pair, e.g. `198.18.1.1>198.18.2.1` (tests look at paths). */
  readonly flows = new Map<string, number>();
  private readonly hosts = new Map<string, SimHost>(); // by public or LAN ip (LAN ips are unique here)
  private readonly nats = new Map<string, SimNat>(); // by public ip
  private readonly links = new Map<string, LinkProfile>();
  private readonly busyUntil = new Map<string, Micros>();
  private readonly cuts = new Set<Cut>();
  private readonly defaultLink: LinkProfile;
  private nextPublic = 1;
  private nextNat = 1;

  constructor(private readonly opts: SimNetOptions) {
    this.rng = opts.rng;
    this.defaultLink = { ...DEFAULT_LINK, ...opts.link };
  }

  get nowUs(): Micros {
    return this.opts.clock.nowUs();
  }

  /** A host on the public internet: 198.18.0.<n> unless `ip` is given. */
  addPublicHost(name: string, ip?: string): SimHost {
    const addr = ip ?? `198.18.0.${this.nextPublic++}`;
    if (this.hosts.has(addr) || this.nats.has(addr)) throw new Error(`address ${addr} taken`);
    const h = new SimHost(this, name, addr, null);
    this.hosts.set(addr, h);
    return h;
  }

  /** A NAT box with public address 198.18.<n>.1 and LAN 192.168.<n>.0/24. */
  addNat(kind: NatKind): SimNat {
    const n = this.nextNat++;
    const model = new NatModel(kind, `198.18.${n}.1`, this.rng, 20000 + n * 1000);
    const nat = new SimNat(n, model, `192.168.${n}.`);
    this.nats.set(model.publicIp, nat);
    return nat;
  }

  /** A host on a NAT's LAN: 192.168.<n>.<2, 3, …>. */
  addHostBehind(nat: SimNat, name: string): SimHost {
    const ip = `${nat.lanPrefix}${nat.lanHosts.size + 2}`;
    const h = new SimHost(this, name, ip, nat);
    nat.lanHosts.set(ip, h);
    this.hosts.set(ip, h);
    return h;
  }

  /** A host behind its own new NAT of `kind` ('none': a public host). */
  addHost(name: string, kind: ModelKind): SimHost {
    return kind === 'none' ? this.addPublicHost(name) : this.addHostBehind(this.addNat(kind), name);
  }

  /** The profile of the public link between two public IPs (both directions). */
  setLink(ipA: string, ipB: string, profile: Partial<LinkProfile>): void {
    const p = { ...this.linkBetween(ipA, ipB), ...profile };
    this.links.set(pairKey(ipA, ipB), p);
  }

  linkBetween(ipA: string, ipB: string): LinkProfile {
    return this.links.get(pairKey(ipA, ipB)) ?? this.defaultLink;
  }

  /** Drop every packet between two public IPs (both directions) until the returned function is called. */
  cutBetween(ipA: string, ipB: string): () => void {
    const c: Cut = (s, d) => (s.ip === ipA && d.ip === ipB) || (s.ip === ipB && d.ip === ipA);
    this.cuts.add(c);
    return () => void this.cuts.delete(c);
  }

  /** Packets seen on the public network from `srcIp` to `dstIp` so far. */
  flow(srcIp: string, dstIp: string): number {
    return this.flows.get(`${srcIp}>${dstIp}`) ?? 0;
  }

  /** A host sends from its socket `port` to `dst` (called by SimDatapath; copies the bytes). */
  transmit(from: SimHost, port: number, dst: Endpoint, data: Uint8Array): void {
    this.stats.sent++;
    const bytes = data.slice();
    const nat = from.nat;
    // Same LAN: across the switch, no NAT.
    if (nat && dst.ip.startsWith(nat.lanPrefix)) {
      this.later(LAN_LATENCY_US, () => this.deliverToHost(nat.lanHosts.get(dst.ip), { src: { ip: from.ip, port }, dst, bytes }));
      return;
    }
    const src: Endpoint = nat ? nat.model.outbound({ ip: from.ip, port }, dst) : { ip: from.ip, port };
    const lanUs = nat ? LAN_LATENCY_US : 0;
    if (nat && dst.ip === nat.publicIp) {
      // Hairpin: back into our own LAN through the NAT's public address.
      if (!this.opts.hairpin) {
        this.stats.filtered++;
        return;
      }
      const internal = nat.model.inbound(src, dst.port);
      if (!internal) {
        this.stats.filtered++;
        return;
      }
      this.later(2 * LAN_LATENCY_US, () => this.deliverToHost(nat.lanHosts.get(internal.ip), { src, dst: internal, bytes }));
      return;
    }
    this.onPublic({ src, dst, bytes }, lanUs);
  }

  private onPublic(p: Packet, extraUs: Micros): void {
    const k = `${p.src.ip}>${p.dst.ip}`;
    this.flows.set(k, (this.flows.get(k) ?? 0) + 1);
    for (const c of this.cuts) {
      if (c(p.src, p.dst)) {
        this.stats.cut++;
        return;
      }
    }
    const link = this.linkBetween(p.src.ip, p.dst.ip);
    if (link.lossPct > 0 && this.rng.chance(link.lossPct / 100)) {
      this.stats.lost++;
      return;
    }
    let delay = extraUs + link.latencyUs;
    if (link.rateBytesPerSec > 0) {
      // One queue per direction: serialisation delay, tail drop beyond queueUs of backlog.
      const now = this.nowUs;
      const start = Math.max(now, this.busyUntil.get(k) ?? 0);
      if (start - now > link.queueUs) {
        this.stats.queueDropped++;
        return;
      }
      const done = start + ((p.bytes.length + 28) * 1_000_000) / link.rateBytesPerSec;
      this.busyUntil.set(k, done);
      delay += done - now;
    }
    if (link.reorderPct > 0 && this.rng.chance(link.reorderPct / 100)) {
      this.stats.reordered++;
      delay += 1 + this.rng.int(Math.max(1, link.reorderUs));
    }
    if (link.corruptPct > 0 && p.bytes.length > 0 && this.rng.chance(link.corruptPct / 100)) {
      this.stats.corrupted++;
      const bit = this.rng.int(p.bytes.length * 8);
      p.bytes[bit >> 3]! ^= 1 << (bit & 7);
      p.isCorrupt = true;
    }
    this.later(delay, () => this.arrive(p));
  }

  /** A packet reaches its destination's public address. */
  private arrive(p: Packet): void {
    const nat = this.nats.get(p.dst.ip);
    if (nat) {
      const internal = nat.model.inbound(p.src, p.dst.port);
      if (!internal) {
        this.stats.filtered++;
        return;
      }
      const host = nat.lanHosts.get(internal.ip);
      this.later(LAN_LATENCY_US, () => this.deliverToHost(host, { ...p, dst: internal }));
      return;
    }
    const host = this.hosts.get(p.dst.ip);
    this.deliverToHost(host && !host.nat ? host : undefined, p);
  }

  private deliverToHost(host: SimHost | undefined, p: Packet): void {
    const sock = host?.sockets.get(p.dst.port);
    if (!sock) {
      this.stats.unreachable++;
      return;
    }
    this.stats.delivered++;
    if (p.isCorrupt) sock.corruptReceived++;
    sock.receive(p.bytes, p.src);
  }

  private later(delayUs: Micros, fn: () => void): void {
    this.opts.timers.set(delayUs / 1000, fn);
  }

  /** Schedule on the simulation's timers (the registry stream uses it). */
  schedule(delayUs: Micros, fn: () => void): void {
    this.later(delayUs, fn);
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

const RX_BATCH_PACKETS = 256;
const RX_BATCH_BYTES = 512 * 1024;

/**
 * A UDP socket of a simulated host, as src/datapath's Datapath. Packets that arrive in one turn of the
 * simulation are handed to the handler as one batch at the end of that turn (as the dgram datapath does).
 */
export class SimDatapath implements Datapath {
  readonly kind = 'dgram' as const;
  readonly localAddress: { ip: string; port: number };
  private handler: ((batch: RecvBatch) => void) | null = null;
  private readonly pending = new PacketBatch(RX_BATCH_PACKETS, RX_BATCH_BYTES);
  private isFlushQueued = false;
  private isClosed = false;
  /** Packets that arrived with a flipped bit (the node's AEAD must drop every one). */
  corruptReceived = 0;
  private readonly counters = { txPackets: 0, txBytes: 0, txDropped: 0, rxPackets: 0, rxBytes: 0, rxBatches: 0, rxDropped: 0 };

  constructor(
    readonly host: SimHost,
    bindIp: string,
    readonly port: number,
  ) {
    this.localAddress = { ip: bindIp, port };
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(data: Uint8Array, ip: string, port: number): number {
    if (this.isClosed) return 0;
    if (ipv4ToU32(ip) < 0 || port <= 0 || port > 65535) {
      this.counters.txDropped++;
      return 0;
    }
    this.counters.txPackets++;
    this.counters.txBytes += data.length;
    this.host.net.transmit(this.host, this.port, { ip, port }, data);
    return 1;
  }

  sendBatch(batch: SendBatch): number {
    if (this.isClosed) return 0;
    const { buf, meta, count } = batch;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const m = i * META_STRIDE;
      const off = meta[m]!;
      n += this.send(buf.subarray(off, off + meta[m + 1]!), u32ToIpv4(meta[m + 2]! >>> 0), meta[m + 3]!);
    }
    return n;
  }

  onReceive(handler: (batch: RecvBatch) => void): void {
    this.handler = handler;
  }

  /** A packet from the network (SimNet). */
  receive(bytes: Uint8Array, src: Endpoint): void {
    if (this.isClosed) return;
    const b = this.pending;
    if (!b.push(bytes, ipv4ToU32(src.ip) >>> 0, src.port)) {
      this.flush();
      if (!b.push(bytes, ipv4ToU32(src.ip) >>> 0, src.port)) {
        this.counters.rxDropped++;
        return;
      }
    }
    this.counters.rxPackets++;
    this.counters.rxBytes += bytes.length;
    if (!this.isFlushQueued) {
      this.isFlushQueued = true;
      // The end of this simulated instant: every packet due now is in the batch.
      this.host.net.schedule(0, () => {
        this.isFlushQueued = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    const b = this.pending;
    if (b.count === 0 || this.isClosed || this.handler === null) return b.reset();
    this.counters.rxBatches++;
    try {
      this.handler(b);
    } finally {
      b.reset();
    }
  }

  unref(): void {}
  ref(): void {}

  close(): Promise<void> {
    if (!this.isClosed) {
      this.isClosed = true;
      this.pending.reset();
      if (this.host.sockets.get(this.port) === this) this.host.sockets.delete(this.port);
    }
    return Promise.resolve();
  }

  stats(): DatapathStats {
    return { ...this.counters, txGsoSends: 0, lastError: null, gso: false, gro: false };
  }
}
