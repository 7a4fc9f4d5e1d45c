// What happened in this node, as one typed stream (issues 14 and 15): the webhook dispatcher
// (src/node/webhooks/) posts these, the audit log (src/node/audit/) records the security ones. node.ts and the
// services emit; nothing that listens may block or throw into the emitter (the datapath emits too).
//
// Names are the webhook event types users subscribe to (`set-webhook URL --events a,b`) and the audit record
// kinds; add kinds, never rename them. `data` fields are snake_case like the CLI's JSON.

export type NodeEvent =
  | { type: 'daemon.started'; data: { node_id: number; address: string | null; version: string } }
  | { type: 'daemon.stopping'; data: { reason: string } }
  | { type: 'trust.request_received'; data: { node_id: number; hostname: string | null; justification: string } }
  | { type: 'trust.approved'; data: { node_id: number; by: 'local' | 'peer' | 'auto' } }
  | { type: 'trust.rejected'; data: { node_id: number; by: 'local' | 'peer'; reason?: string } }
  | { type: 'trust.revoked'; data: { node_id: number; by: 'local' | 'peer' } }
  | { type: 'message.received'; data: { id: string; from: number; from_address: string; type: string; size: number; reply_to?: string } }
  | { type: 'file.received'; data: { name: string; from: number; size: number; sha256: string; path: string } }
  | { type: 'peer.connected'; data: { node_id: number; path: 'direct' | 'relay'; transport: 'udp' | 'wss' } }
  | { type: 'peer.disconnected'; data: { node_id: number; reason: string } }
  | { type: 'path.changed'; data: { node_id: number; from: 'direct' | 'relay'; to: 'direct' | 'relay' } }
  | { type: 'key.rotated'; data: { node_id: number; old_public_key: string; new_public_key: string; by: 'local' | 'peer' | 'recovery' } }
  | { type: 'policy.denied'; data: { node_id: number; port: number; network: string; rule: string; count: number } }
  /** A verified change of a network this node is (or was, for a kick or leave) a member of (issue 15). */
  | { type: 'network.changed'; data: { network_id: number; network: string; op: string; node_id: number; by: number; seq: number } };

export type NodeEventType = NodeEvent['type'];

export const NODE_EVENT_TYPES: readonly NodeEventType[] = [
  'daemon.started',
  'daemon.stopping',
  'trust.request_received',
  'trust.approved',
  'trust.rejected',
  'trust.revoked',
  'message.received',
  'file.received',
  'peer.connected',
  'peer.disconnected',
  'path.changed',
  'key.rotated',
  'policy.denied',
  'network.changed',
];

export type NodeEventListener = (e: NodeEvent & { at_ms: number }) => void;

/** Synchronous fan-out; a listener that throws is logged by the caller's `onError` and the rest still run. */
export class NodeEvents {
  private readonly listeners = new Set<NodeEventListener>();
  constructor(
    private readonly nowMs: () => number,
    private readonly onError: (err: unknown, e: NodeEvent) => void = () => undefined,
  ) {}

  on(fn: NodeEventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(e: NodeEvent): void {
    const at = { ...e, at_ms: this.nowMs() } as NodeEvent & { at_ms: number };
    for (const fn of this.listeners) {
      try {
        fn(at);
      } catch (x) {
        this.onError(x, e);
      }
    }
  }
}
