// The tunnel socket as every sender sees it (Noise suite, v0.5 suite, path driver): single sends and sealed
// batches go to the datapath; each single send also tells the flow listener its destination (the path engine
// counts new flows since classification for port prediction). Nobody sends "through the NAT layer".
//
// It is also where the compat transport's carrier choice takes effect (issue 13; src/nat/transport-choice.ts
// decides, the path driver sets `route`):
//   'udp'              everything to UDP (today's behaviour);
//   'relay-over-link'  relay frames (0x05) to the beacon go to the WebSocket link once it is registered at the
//                      beacon (before, UDP: the beacon takes relay frames only from our last discovered endpoint,
//                      so the frames follow the registration); everything else to UDP (auto);
//   'link-only'        relay frames to the link, everything else is dropped: no UDP is sent at all (tcp).
// Frames are not touched: the link carries the same bytes UDP would.
import type { Datapath, SendBatch, TunnelKeyTable } from '../../datapath/index.js';
import { ipv4ToU32, META_STRIDE } from '../../datapath/index.js';
import { BEACON_RELAY } from '../../wire/beacon-message.js';
import type { UdpEndpoint } from '../peers/noise-suite.js';

export type SocketRoute = 'udp' | 'relay-over-link' | 'link-only';

/** Where relay frames go when the route says so (src/node/compat/link.ts). */
export interface LinkSink {
  /** Registered at the beacon (its discover answered over the channel): relay frames for us travel on it. */
  readonly isRegistered: boolean;
  /** Queue a datagram; it is referenced until `seal` (copy what will be reused before). False when dropped. */
  push(datagram: Uint8Array): boolean;
  /** Encode the queued datagrams now (their buffers may be reused after this). */
  seal(): void;
}

export class MainSocket {
  /** Set by the path driver: a destination the socket sent to (new or not; the engine keeps the set). */
  onFlow: ((ip: string, port: number) => void) | null = null;
  private routeNow: SocketRoute = 'udp';
  private beaconIpU32 = -1;
  private beaconPort = -1;
  private scratchMeta = new Uint32Array(0);
  private scratchKeys = new Uint32Array(0);
  readonly stats = { toLink: 0, linkDropped: 0, udpSuppressed: 0 };

  constructor(
    private readonly datapath: Datapath,
    private readonly opts: { beacon: UdpEndpoint | null; link: LinkSink | null; requestFlush(): void } = { beacon: null, link: null, requestFlush: () => undefined },
  ) {
    if (opts.beacon) {
      this.beaconIpU32 = ipv4ToU32(opts.beacon.ip);
      this.beaconPort = opts.beacon.port;
    }
  }

  /** The datapath's session key table (native: AEAD in the send call and on the reader thread), or null. */
  get tunnelKeys(): TunnelKeyTable | null {
    return this.datapath.tunnelKeys ?? null;
  }

  /** The route MTU towards ip:port for path MTU discovery; null when frames may leave by the link (TCP/WS)
   *  or the datapath cannot tell. */
  routeMtu(ip: string, port: number): number | null {
    if (this.routeNow !== 'udp' || !this.datapath.routeMtu) return null;
    return this.datapath.routeMtu(ip, port);
  }

  get route(): SocketRoute {
    return this.routeNow;
  }

  /** The path driver executes the transport choice here; without a link nothing but 'udp' is possible. */
  setRoute(route: SocketRoute): void {
    this.routeNow = this.opts.link ? route : 'udp';
  }

  /** Whether a send to the beacon's UDP endpoint leaves as UDP (false in tcp mode). */
  get sendsUdp(): boolean {
    return this.routeNow !== 'link-only';
  }

  /** Relay frames take the link now (link-only: always; relay-over-link: once it is registered). */
  private get isRelayOnLink(): boolean {
    return this.routeNow === 'link-only' || (this.routeNow === 'relay-over-link' && this.opts.link!.isRegistered);
  }

  send(data: Uint8Array, ip: string, port: number): void {
    if (this.routeNow !== 'udp' && this.isRelayOnLink) {
      if (data[0] === BEACON_RELAY && port === this.beaconPort && ipv4ToU32(ip) === this.beaconIpU32) {
        // Single sends (handshakes, cookies) are copied: their buffers are reused before the flush.
        if (this.opts.link!.push(data.slice())) this.stats.toLink++;
        else this.stats.linkDropped++;
        this.opts.requestFlush();
        return;
      }
      if (this.routeNow === 'link-only') {
        this.stats.udpSuppressed++;
        return;
      }
    }
    this.onFlow?.(ip, port);
    this.datapath.send(data, ip, port);
  }

  sendBatch(batch: SendBatch): void {
    if (this.routeNow === 'udp' || !this.isRelayOnLink) {
      void this.datapath.sendBatch(batch);
      return;
    }
    const link = this.opts.link!;
    const { buf, meta, count, keys } = batch;
    if (this.scratchMeta.length < count * META_STRIDE) this.scratchMeta = new Uint32Array(count * META_STRIDE);
    if (keys && this.scratchKeys.length < count) this.scratchKeys = new Uint32Array(count);
    const kept = this.scratchMeta;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const m = i * META_STRIDE;
      const off = meta[m]!;
      const len = meta[m + 1]!;
      if (buf[off] === BEACON_RELAY && meta[m + 2] === this.beaconIpU32 && meta[m + 3] === this.beaconPort) {
        if (link.push(buf.subarray(off, off + len))) this.stats.toLink++;
        else this.stats.linkDropped++;
        continue;
      }
      if (this.routeNow === 'link-only') {
        this.stats.udpSuppressed++;
        continue;
      }
      kept.set(meta.subarray(m, m + META_STRIDE), n * META_STRIDE);
      if (keys) this.scratchKeys[n] = keys[i]!;
      n++;
    }
    // The batch's buffer is reused once this returns: the link encodes its records now.
    link.seal();
    if (n === count) void this.datapath.sendBatch(batch);
    else if (n > 0) void this.datapath.sendBatch({ buf, meta: kept, count: n, keys: keys ? this.scratchKeys : null });
  }

  get localPort(): number {
    return this.datapath.localAddress.port;
  }
}
