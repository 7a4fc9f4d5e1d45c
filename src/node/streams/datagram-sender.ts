// Sending one datagram to a peer: the fast path for a peer already resolved with a live Noise session is
// synchronous (no promise chain per datagram: it was 59% of the 64-byte datagram profile); otherwise resolve
// the ref, pick the suite, and bring a session up first.
import { err, ok, type Result } from '../../core/result.js';
import type { Micros } from '../../core/clock.js';
import { DATAGRAM_HEADER_BYTES, encodeDatagram } from '../../wire/segment.js';
import type { PeerRef } from '../api.js';
import type { LegacyTunnels } from '../legacy-tunnels.js';
import type { NoiseSuite, TunnelPeer } from '../peers/noise-suite.js';
import type { PeerResolver } from '../peers/resolver.js';
import { V05_CONNECT_TIMEOUT_MS } from '../peers/peer-suite.js';

const MAX_REF_CACHE = 4096;

export interface DatagramSenderDeps {
  resolver: Pick<PeerResolver, 'resolveRef' | 'dialPlanFor'>;
  tunnels: Pick<NoiseSuite, 'peers' | 'ensureSession' | 'sendPlaintext'>;
  legacy: Pick<LegacyTunnels, 'hasSession' | 'sendDatagram' | 'connect'>;
  nowUs(): Micros;
}

export class DatagramSender {
  /** PeerRef → node id, for the fast path. */
  private readonly refs = new Map<PeerRef, number>();
  private readonly buf = new Uint8Array(2048);

  constructor(private readonly deps: DatagramSenderDeps) {}

  send(to: PeerRef, fromPort: number, toPort: number, data: Uint8Array): Promise<Result<void>> {
    const known = this.refs.get(to);
    const peer = known === undefined ? undefined : this.deps.tunnels.peers.get(known);
    if (peer?.current && !peer.current.isExpired(this.deps.nowUs())) return Promise.resolve(this.sendNow(peer, fromPort, toPort, data));
    return this.sendSlow(to, fromPort, toPort, data);
  }

  private async sendSlow(to: PeerRef, fromPort: number, toPort: number, data: Uint8Array): Promise<Result<void>> {
    const { resolver, tunnels, legacy } = this.deps;
    const id = await resolver.resolveRef(to);
    if (!id.ok) return id;
    if (legacy.hasSession(id.value)) return legacy.sendDatagram(id.value, fromPort, toPort, data);
    if ((await resolver.dialPlanFor(id.value)) === 'v0.5') {
      const l = await legacy.connect(id.value, V05_CONNECT_TIMEOUT_MS);
      return l.ok ? legacy.sendDatagram(id.value, fromPort, toPort, data) : l;
    }
    const t = await tunnels.ensureSession(id.value);
    if (!t.ok) return t;
    if (this.refs.size >= MAX_REF_CACHE) this.refs.clear();
    this.refs.set(to, id.value);
    return this.sendNow(t.value, fromPort, toPort, data);
  }

  private sendNow(peer: TunnelPeer, fromPort: number, toPort: number, data: Uint8Array): Result<void> {
    if (data.length + DATAGRAM_HEADER_BYTES > (peer.current?.maxPlaintextBytes ?? 0)) {
      return err('invalid_argument', `datagram of ${data.length} bytes is too large`, { hint: 'datagrams carry at most 1415 bytes; use a stream' });
    }
    const n = encodeDatagram({ srcPort: fromPort, dstPort: toPort, payload: data }, this.buf);
    if (!n.ok) return n;
    const r = this.deps.tunnels.sendPlaintext(peer, this.buf.subarray(0, n.value), this.deps.nowUs());
    return r.ok ? ok() : r;
  }
}
