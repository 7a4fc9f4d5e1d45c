// Why the node is in the state `info`, `daemon status` and `health` show (issue 17), and what its heartbeats
// report to the rendezvous's dashboard (issue 16): pure functions of the node's state, so node.ts only gathers
// the inputs. Every sentence says what is going on and, when something is wrong, what to do.
import type { PilotError } from '../core/errors.js';
import type { NodeReportWire } from '../wire/registry-messages.js';
import type { NodeInfo } from './api.js';

export interface RegistryStatusInput {
  nodeId: number;
  isRegistryUp: boolean;
  registry: string;
  lastConnectError: PilotError | null;
  /** Issue 14: the registry refused our registration itself (key_retired: the key was rotated out). */
  refusal?: PilotError | null;
}

/** registered / registry_state / registry_reason / registry_error of `info`. */
export function registryStatus(s: RegistryStatusInput): Pick<NodeInfo, 'registered' | 'registry_state' | 'registry_reason' | 'registry_error'> {
  const registered = s.nodeId !== 0;
  if (!registered && s.refusal) {
    const r = s.refusal;
    return {
      registered,
      registry_state: 'connecting',
      registry_reason: `not registered: ${s.registry} refused this node (${r.message})`,
      registry_error: { code: r.code, message: r.message, hint: r.hint ?? '' },
    };
  }
  const e = s.lastConnectError;
  let reason: string;
  if (registered && s.isRegistryUp) reason = `registered as node ${s.nodeId} at ${s.registry}`;
  else if (registered) reason = `registered as node ${s.nodeId}; the connection to ${s.registry} is lost, reconnecting with backoff${e ? ` (${e.message})` : ''}`;
  else if (e) reason = `not registered: no rendezvous at ${s.registry} (${e.message}); retrying with backoff — start one with \`pilotctl rendezvous start\`, or use --registry HOST:PORT`;
  else reason = `not registered yet: connecting to ${s.registry}`;
  return {
    registered,
    registry_state: !registered ? 'connecting' : s.isRegistryUp ? 'registered' : 'reconnecting',
    registry_reason: reason,
    registry_error: e
      ? { code: e.code, message: e.message, hint: 'start a rendezvous on this machine (pilotctl rendezvous start), or use yours: pilotctl daemon start --registry HOST:PORT' }
      : null,
  };
}

/** nat_reason of `info`. */
export function natReason(s: { transportMode: string; natType: string | null; beacon: string; hasBeacon2: boolean; isRegistryUp: boolean }): string {
  if (s.transportMode === 'tcp') return '--transport tcp: no UDP is sent, so the NAT is not classified';
  if (s.natType) return `classified from the beacon's discover replies (${s.beacon}${s.hasBeacon2 ? ' and a second beacon address' : ''})`;
  if (!s.isRegistryUp) return 'not classified: discovery starts once registered';
  return `not classified yet: waiting for discover replies from the beacon at ${s.beacon}`;
}

/** datapath_reason of `info`. */
export function datapathReason(kind: 'native' | 'dgram', fallbackReason: string | null): string {
  return kind === 'native'
    ? 'native addon loaded (batched UDP + AEAD)'
    : `node:dgram: ${fallbackReason ?? 'the native addon is not in use'} (npm run build:native builds it where cargo is)`;
}

/** transport_reason of `info`: the transport choice's reason, and on wss where the WebSocket stands. */
export function transportReason(reason: string, carrier: 'udp' | 'wss', link: { isRegistered: boolean; state: string } | null): string {
  if (carrier !== 'wss' || !link) return reason;
  return link.isRegistered ? `${reason}; the WebSocket is registered at the beacon` : `${reason}; the WebSocket is ${link.state === 'open' ? 'open, registering' : 'connecting'}`;
}

/** What the heartbeats report (NAT kind, peers up by path, carrier); null before the NAT is classified. */
export function heartbeatReport(natKind: string | null, peers: Iterable<{ isUp: boolean; isRelayed: boolean }>, carrier: 'udp' | 'wss'): NodeReportWire | null {
  if (!natKind) return null;
  let direct = 0;
  let relayed = 0;
  for (const p of peers) {
    if (!p.isUp) continue;
    if (p.isRelayed) relayed++;
    else direct++;
  }
  return { nat_type: natKind, peers_direct: direct, peers_relayed: relayed, transport: carrier };
}
