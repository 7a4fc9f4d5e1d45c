// Shared vocabulary of the NAT traversal core (RFC 4787 terms). Pure types and tiny helpers; no I/O.

/** The six kinds netsim builds, plus `unknown` when classification had too little evidence. */
export const NAT_KINDS = [
  'none',
  'full-cone',
  'restricted-cone',
  'port-restricted-cone',
  'symmetric-sequential',
  'symmetric-random',
] as const;
export type NatKind = (typeof NAT_KINDS)[number] | 'unknown';

export type MappingBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';
export type PortAllocation = 'preserved' | 'sequential' | 'random';
export type FilteringBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

import type { UdpEndpoint } from '../wire/endpoint.js';
/** A UDP endpoint (ip:port) in the real network; defined, parsed and formatted in src/wire/endpoint.ts. */
export type { UdpEndpoint };
export { formatEndpoint, sameEndpoint } from '../wire/endpoint.js';

/** What one side knows (and tells its peer) about its own NAT. */
export interface NatProfile {
  kind: NatKind;
  /** Endpoint the beacon observed for socket 0 (the tunnel socket); null before the first discover reply. */
  publicEndpoint: UdpEndpoint | null;
  /** symmetric-sequential: port step per new flow (usually +1). */
  portDelta?: number;
  /**
   * symmetric-sequential: the public port the *next* new flow is expected to get (last observed + delta, plus
   * delta per flow created since). Defaults to publicEndpoint.port + portDelta.
   */
  nextPort?: number;
  /** Private addresses of socket 0 (LAN shortcut when both sides share a public IP). */
  lanEndpoints: UdpEndpoint[];
}

/** Endpoint-independent mapping: the peer can reach our one public port (given filtering allows it). */
export function isConeLike(kind: NatKind): boolean {
  return kind === 'none' || kind === 'full-cone' || kind === 'restricted-cone' || kind === 'port-restricted-cone';
}

export function isSymmetric(kind: NatKind): boolean {
  return kind === 'symmetric-sequential' || kind === 'symmetric-random';
}

/**
 * Filtering that lets a packet from an unknown port of an address we sent to pass (full and address-restricted
 * cones, public hosts): plain punching reaches such a side from a symmetric NAT.
 */
export function acceptsUnknownPort(kind: NatKind): boolean {
  return kind === 'none' || kind === 'full-cone' || kind === 'restricted-cone';
}
