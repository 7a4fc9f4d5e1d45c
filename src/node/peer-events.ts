// Peer events for the node's event stream (events.ts), sans-IO: a view of every peer (either suite) and `now`
// in, peer.connected / peer.disconnected / path.changed out. The node feeds it when a session comes up, when
// it drops a peer (with the reason), and once a second (a path moves direct ↔ relay in several places —
// roaming, the path engine, a relayed frame — so the tick is the one place that sees them all).
import type { Micros } from '../core/clock.js';
import type { NodeEvent } from './events.js';

export interface PeerPathView {
  nodeId: number;
  isUp: boolean;
  path: 'direct' | 'relay';
  transport: 'udp' | 'wss';
  /** Last authenticated packet from the peer (monotonic µs); 0 = none yet. */
  lastRecvUs: Micros;
}

interface Known {
  path: 'direct' | 'relay';
  /** Nothing heard for longer than the silence limit: reported disconnected, comes back on the next packet. */
  isSilent: boolean;
}

export class PeerEventTracker {
  private readonly known = new Map<number, Known>();

  /** `silenceUs`: a peer heard from no longer than this counts as gone (the node's idle timeout). */
  constructor(private readonly silenceUs: Micros) {}

  /** Compare the peers now with what was reported; the events to emit, in order. Pure but for the table. */
  observe(rows: Iterable<PeerPathView>, nowUs: Micros): NodeEvent[] {
    const out: NodeEvent[] = [];
    const seen = new Set<number>();
    for (const r of rows) {
      if (!r.isUp || seen.has(r.nodeId)) continue;
      seen.add(r.nodeId);
      const k = this.known.get(r.nodeId);
      const isQuiet = r.lastRecvUs > 0 && nowUs - r.lastRecvUs > this.silenceUs;
      if (!k) {
        if (isQuiet) continue;
        this.known.set(r.nodeId, { path: r.path, isSilent: false });
        out.push({ type: 'peer.connected', data: { node_id: r.nodeId, path: r.path, transport: r.transport } });
        continue;
      }
      if (k.isSilent) {
        if (isQuiet) continue;
        k.isSilent = false;
        k.path = r.path;
        out.push({ type: 'peer.connected', data: { node_id: r.nodeId, path: r.path, transport: r.transport } });
        continue;
      }
      if (isQuiet) {
        k.isSilent = true;
        out.push({ type: 'peer.disconnected', data: { node_id: r.nodeId, reason: `nothing heard for ${Math.round(this.silenceUs / 1e6)} s` } });
        continue;
      }
      if (k.path !== r.path) {
        out.push({ type: 'path.changed', data: { node_id: r.nodeId, from: k.path, to: r.path } });
        k.path = r.path;
      }
    }
    for (const [id, k] of [...this.known]) {
      if (seen.has(id)) continue;
      this.known.delete(id);
      if (!k.isSilent) out.push({ type: 'peer.disconnected', data: { node_id: id, reason: 'session closed' } });
    }
    return out;
  }

  /** The node dropped the peer (untrust, revocation): its reason. */
  handleClosed(nodeId: number, reason: string): NodeEvent[] {
    const k = this.known.get(nodeId);
    if (!k) return [];
    this.known.delete(nodeId);
    return k.isSilent ? [] : [{ type: 'peer.disconnected', data: { node_id: nodeId, reason } }];
  }
}
