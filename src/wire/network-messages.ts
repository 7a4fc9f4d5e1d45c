// Registry messages of custom networks (issue 15), shared by the server (src/registry/networks.ts) and the
// daemon (src/node/networks/). The original's fields are kept where it has them: create_network {node_id, name,
// join_rule, token} → create_network_ok {network_id, name}; join_network {node_id, network_id, token,
// inviter_id} → join_network_ok {network_id, address}; leave_network {node_id, network_id} → leave_network_ok
// {network_id}; list_networks → list_networks_ok {networks: [{id, name, members, join_rule}]}; list_nodes
// {network_id} → list_nodes_ok {nodes: [{node_id, address, hostname?}]}. Ours add `change` (the signed
// membership change, src/crypto/network-chain.ts, carried as a plain JSON object), `network_change` for every
// other change, `get_network` (the chain), and the push `push_network_change`. Decoders are total.
import { ok, type Result } from '../core/result.js';
import type { RegistryMessage } from './registry-frame.js';
import { fieldString, fieldU32, messageType } from './registry-messages.js';

export const NETWORK_REQUEST_TYPES = ['create_network', 'join_network', 'leave_network', 'network_change', 'get_network', 'list_networks', 'list_nodes'] as const;
export type NetworkRequestType = (typeof NETWORK_REQUEST_TYPES)[number];

export function isNetworkRequestType(t: string): t is NetworkRequestType {
  return (NETWORK_REQUEST_TYPES as readonly string[]).includes(t);
}

/** A network request's own fields (the node id and signature fields are read by the generic request decoder). */
export interface NetworkRequest {
  type: NetworkRequestType;
  nodeId: number;
  networkId: number;
  /** get_network by name (ours); '' when absent. */
  name: string;
  joinRule: string;
  /** The network's token (create of a token network, token joins); '' when absent. */
  token: string;
  inviterId: number;
  /** The signed change as sent (decoded by src/crypto/network-chain.ts decodeNetworkChange); undefined when absent. */
  change: unknown;
}

export function decodeNetworkRequest(msg: RegistryMessage): Result<NetworkRequest> {
  const t = messageType(msg);
  return ok({
    type: (isNetworkRequestType(t) ? t : 'list_networks') as NetworkRequestType,
    nodeId: fieldU32(msg, 'node_id'),
    networkId: fieldU32(msg, 'network_id'),
    name: fieldString(msg, 'name'),
    joinRule: fieldString(msg, 'join_rule'),
    token: fieldString(msg, 'token'),
    inviterId: fieldU32(msg, 'inviter_id'),
    change: msg.change,
  });
}

/** The text a read request's fresh signature covers (get_network, list_networks, list_nodes). */
export function networkReadText(type: 'get_network' | 'list_networks' | 'list_nodes', nodeId: number, networkId: number, name = ''): string {
  return `${type}:${nodeId}:${networkId}:${name}`;
}

export interface NetworkSummary {
  id: number;
  name: string;
  members: number;
  joinRule: string;
  /** Ours, for an identified request: the requester's role ('' = not a member) and whether it is invited. */
  role?: string;
  isInvited?: boolean;
}

export type NetworkSummaryWire = { id: number; name: string; members: number; join_rule: string; role?: string; invited?: boolean };

export function decodeListNetworksOk(msg: RegistryMessage): Result<{ networks: NetworkSummary[] }> {
  const raw = Array.isArray(msg.networks) ? msg.networks : [];
  const networks: NetworkSummary[] = [];
  for (const e of raw) {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) continue;
    const o = e as RegistryMessage;
    const s: NetworkSummary = { id: fieldU32(o, 'id'), name: fieldString(o, 'name'), members: fieldU32(o, 'members'), joinRule: fieldString(o, 'join_rule') };
    if (typeof o.role === 'string') s.role = o.role;
    if (typeof o.invited === 'boolean') s.isInvited = o.invited;
    networks.push(s);
  }
  return ok({ networks });
}

export interface GetNetworkOk {
  networkId: number;
  /** Raw changes; the receiver folds and verifies them. Empty for a non-member of an open or token network. */
  changes: unknown[];
  /** The chain's head hash and seq (what a join signs against). */
  head: string;
  seq: number;
  joinRule: string;
}

export type GetNetworkOkWire = { type: 'get_network_ok'; network_id: number; name: string; join_rule: string; head: string; seq: number; changes: unknown[] };

export function decodeGetNetworkOk(msg: RegistryMessage): Result<GetNetworkOk> {
  const seq = msg.seq;
  return ok({
    networkId: fieldU32(msg, 'network_id'),
    changes: Array.isArray(msg.changes) ? msg.changes : [],
    head: fieldString(msg, 'head'),
    seq: typeof seq === 'number' && Number.isInteger(seq) && seq >= -1 ? seq : -1,
    joinRule: fieldString(msg, 'join_rule'),
  });
}

export type PushNetworkChangeWire = { type: 'push_network_change'; network_id: number; change: unknown };

export function decodePushNetworkChange(msg: RegistryMessage): Result<{ networkId: number; change: unknown }> {
  return ok({ networkId: fieldU32(msg, 'network_id'), change: msg.change });
}
