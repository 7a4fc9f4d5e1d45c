// What the beacon asks the registry (same process, pilot-rendezvous) before it lets a datagram change
// anything: which key a node id belongs to, its beacon token, whether it may be spoken to by bare (original,
// unauthenticated) beacon messages, and whether a punch between two nodes is allowed.
//
// The token is handed to a node inside its freshly signed `register_ok` (field `beacon_token`, base64, our
// extension); the node MACs its beacon messages with it. Nodes registered by original clients get no token:
// the beacon accepts their bare messages (original behaviour), and a bare message can never move the observed
// endpoint of a node that holds a token.

export { BEACON_TOKEN_BYTES } from '../wire/beacon-message.js';

/** A node as the beacon needs to see it. */
export interface BeaconNodeAuth {
  /** 32-byte secret shared by the registry and this node; null for nodes registered by original clients. */
  token: Uint8Array | null;
  /** True when the node registered with bare (original-style) signatures: bare beacon messages are accepted. */
  isLegacy: boolean;
}

export interface BeaconAuthority {
  /** null: the registry does not know this node id (the beacon then ignores what claims to come from it). */
  nodeAuth(nodeId: number): BeaconNodeAuth | null;
  /** May `fromNodeId` learn `toNodeId`'s observed endpoint through a punch? (`to` trusts `from`, or `to` is public.) */
  mayPunch(fromNodeId: number, toNodeId: number): boolean;
}
