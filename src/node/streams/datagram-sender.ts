// Sending one datagram to a peer: the fast path for a peer already resolved with a live Noise session is
// synchronous (no promise chain per datagram: it was 59% of the 64-byte datagram profile); otherwise resolve
// the ref, bring a session up in the suite the peer speaks (peers/suite-choice.ts), and send through the table.
import type { Result } from '../../core/result.js';
import type { Micros } from '../../core/clock.js';
import type { PeerRef } from '../api.js';
import type { NoiseSuite } from '../peers/noise-suite.js';
import type { PeerResolver } from '../peers/resolver.js';
import { V05_CONNECT_TIMEOUT_MS } from '../peers/peer-suite.js';
import { ensureSuite, type SuiteChoiceDeps } from '../peers/suite-choice.js';
import type { ConnectionTable } from './connection-table.js';

const MAX_REF_CACHE = 4096;

export interface DatagramSenderDeps extends SuiteChoiceDeps {
  /** Our node id (0 until registered): datagrams to it take the loopback suite. */
  selfId?(): number;
  resolver: Pick<PeerResolver, 'resolveRef' | 'dialPlanFor'>;
  tunnels: Pick<NoiseSuite, 'peers' | 'ensureSession'>;
  conns: Pick<ConnectionTable, 'sendDatagram'>;
  nowUs(): Micros;
}

export class DatagramSender {
  /** PeerRef → node id, for the fast path (Noise peers only). */
  private readonly refs = new Map<PeerRef, number>();

  constructor(private readonly deps: DatagramSenderDeps) {}

  send(to: PeerRef, fromPort: number, toPort: number, data: Uint8Array): Promise<Result<void>> {
    const known = this.refs.get(to);
    const peer = known === undefined ? undefined : this.deps.tunnels.peers.get(known);
    if (peer?.current) {
      const now = this.deps.nowUs();
      if (!peer.current.isExpired(now)) return Promise.resolve(this.deps.conns.sendDatagram(peer.nodeId, 'noise', fromPort, toPort, data, now));
    }
    return this.sendSlow(to, fromPort, toPort, data);
  }

  private async sendSlow(to: PeerRef, fromPort: number, toPort: number, data: Uint8Array): Promise<Result<void>> {
    const id = await this.deps.resolver.resolveRef(to);
    if (!id.ok) return id;
    const self = this.deps.selfId?.() ?? 0;
    if (self !== 0 && id.value === self) return this.deps.conns.sendDatagram(self, 'self', fromPort, toPort, data);
    const s = await ensureSuite(this.deps, id.value, V05_CONNECT_TIMEOUT_MS);
    if (!s.ok) return s;
    if (s.value.suite === 'noise') {
      if (this.refs.size >= MAX_REF_CACHE) this.refs.clear();
      this.refs.set(to, id.value);
    }
    return this.deps.conns.sendDatagram(id.value, s.value.suite, fromPort, toPort, data);
  }
}
