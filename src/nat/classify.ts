// NAT classification from beacon discover replies (RFC 4787 §4 mapping, §5 filtering; RFC 5780 §4 shows the
// same probe-two-addresses method). Pure: the daemon collects observations and calls classifyNat again
// whenever a new reply arrives.
//
// What the daemon sends (see ../../README of this module in index.ts):
//   socket 0 → beacon (primary) and socket 0 → beacon2 (`--beacon-addr2`, another IP of the rendezvous);
//   optionally socket 1 (a short-lived extra socket) → both, which separates sequential from random ports.
// Mapping: the same observed endpoint for one local socket towards two server addresses = endpoint-independent.
// Port allocation: observed port == local port = preserved; under endpoint-dependent mapping, successive new
// flows whose ports step by a small constant = sequential (delta), anything else random. Two flows are enough
// for a verdict (P(|Δ| ≤ 32 | random) ≈ 0.1 %), more make it firmer.
// Filtering cannot be seen from replies to our own requests. If the beacon ever answers from an address we did
// not send to (a future `discover` flag), pass it in `filtering`; otherwise a cone is reported as
// port-restricted, the conservative choice: every traversal strategy that works for it also works for the
// laxer cones, it only costs more probes.
import type { Micros } from '../core/index.js';
import {
  formatEndpoint,
  type FilteringBehaviour,
  type MappingBehaviour,
  type NatKind,
  type PortAllocation,
  type UdpEndpoint,
} from './types.js';

export interface DiscoverObservation {
  /** Local socket index (0 = the tunnel socket). */
  socket: number;
  /** Port the local socket is bound to. */
  localPort: number;
  /** Beacon address the discover was sent to. */
  server: UdpEndpoint;
  /** Endpoint in the discover_reply. */
  observed: UdpEndpoint;
  /** When the *first* discover of this (socket, server) flow was sent: orders the NAT's port allocations. */
  firstSentUs: Micros;
  /** The order that first discover left in (discovers to both beacon addresses leave at the same `now`: this,
   *  not the order their replies came back, is the order the NAT allocated ports in). */
  sendSeq?: number;
}

export interface FilteringEvidence {
  /** A reply from another IP of the beacon (one we never sent to) arrived. */
  otherIp?: boolean | null;
  /** A reply from another port of the same beacon IP arrived. */
  otherPort?: boolean | null;
}

export interface ClassifyInput {
  observations: DiscoverObservation[];
  /** Addresses of the local interfaces (a public host sees its own address reflected). */
  localIps: string[];
  filtering?: FilteringEvidence;
}

export interface NatClassification {
  kind: NatKind;
  mapping: MappingBehaviour | 'unknown';
  portAllocation: PortAllocation | 'unknown';
  /** Sequential allocation: port step per new flow. */
  portDelta: number | null;
  filtering: FilteringBehaviour | 'unknown';
  /** Observed endpoint of socket 0 towards the primary beacon (what peers and the relay use). */
  publicEndpoint: UdpEndpoint | null;
  /** Sequential: the port the next new flow should get. */
  nextPort: number | null;
  /** Distinct (socket, server) flows the verdict rests on. */
  flows: number;
  /** One line for `pilotctl info` (nat_type). */
  summary: string;
}

/** Largest step still read as sequential allocation. */
export const MAX_SEQUENTIAL_DELTA = 32;

/** Classify from discover observations. Pure, total; `kind: 'unknown'` when the evidence is too thin. */
export function classifyNat(input: ClassifyInput): NatClassification {
  // One entry per flow (socket, server): the first observation wins (later ones are the same flow).
  const flows = new Map<string, DiscoverObservation>();
  for (const o of [...input.observations].sort((a, b) => a.firstSentUs - b.firstSentUs || (a.sendSeq ?? 0) - (b.sendSeq ?? 0))) {
    const k = `${o.socket}|${o.server.ip}|${o.server.port}`;
    if (!flows.has(k)) flows.set(k, o);
  }
  const list = [...flows.values()];
  const primary = list.find((o) => o.socket === 0) ?? list[0] ?? null;
  const base: NatClassification = {
    kind: 'unknown',
    mapping: 'unknown',
    portAllocation: 'unknown',
    portDelta: null,
    filtering: filteringFrom(input.filtering),
    publicEndpoint: primary ? { ...primary.observed } : null,
    nextPort: null,
    flows: list.length,
    summary: '',
  };
  if (!primary) return finish(base, 'unknown (no beacon reply yet)');

  const isReflectedLocal = list.every((o) => input.localIps.includes(o.observed.ip) && o.observed.port === o.localPort);
  if (isReflectedLocal) {
    return finish({ ...base, kind: 'none', mapping: 'endpoint-independent', portAllocation: 'preserved', filtering: 'endpoint-independent' }, '');
  }

  // Mapping: compare, per socket, what different servers saw.
  let pairs = 0;
  let differs = false;
  let differsForSameIp = false;
  let sameForSameIp = false;
  for (const sock of new Set(list.map((o) => o.socket))) {
    const mine = list.filter((o) => o.socket === sock);
    for (let i = 0; i < mine.length; i++) {
      for (let j = i + 1; j < mine.length; j++) {
        const a = mine[i]!;
        const b = mine[j]!;
        pairs++;
        const isSame = a.observed.ip === b.observed.ip && a.observed.port === b.observed.port;
        const isSameServerIp = a.server.ip === b.server.ip;
        if (!isSame) differs = true;
        if (isSameServerIp && !isSame) differsForSameIp = true;
        if (isSameServerIp && isSame) sameForSameIp = true;
      }
    }
  }
  // Another port of the same IP getting the old mapping while another IP gets a new one = address-dependent;
  // with only different-IP pairs we cannot tell the two apart and report the stricter one.
  const mapping: MappingBehaviour | 'unknown' =
    pairs === 0
      ? 'unknown'
      : !differs
        ? 'endpoint-independent'
        : sameForSameIp && !differsForSameIp
          ? 'address-dependent'
          : 'address-and-port-dependent';
  if (mapping === 'unknown') {
    const note = primary.observed.port === primary.localPort ? 'port preserved' : 'port translated';
    return finish({ ...base, mapping }, `unknown (one beacon address only; ${note}) — start the rendezvous with --beacon-addr2`);
  }

  if (mapping === 'endpoint-independent') {
    const preserved = list.every((o) => o.observed.port === o.localPort);
    const filtering = base.filtering;
    const kind: NatKind =
      filtering === 'endpoint-independent' ? 'full-cone' : filtering === 'address-dependent' ? 'restricted-cone' : 'port-restricted-cone';
    return finish({ ...base, kind, mapping, portAllocation: preserved ? 'preserved' : 'random' }, '');
  }

  // Endpoint-dependent: order new flows by creation time and look at the steps.
  const ports = list.map((o) => o.observed.port);
  const deltas: number[] = [];
  for (let i = 1; i < ports.length; i++) deltas.push(ports[i]! - ports[i - 1]!);
  const isSequential =
    deltas.length > 0 &&
    deltas.every((d) => d !== 0 && Math.abs(d) <= MAX_SEQUENTIAL_DELTA && Math.sign(d) === Math.sign(deltas[0]!));
  if (isSequential) {
    const sorted = [...deltas].sort((a, b) => Math.abs(a) - Math.abs(b));
    const delta = sorted[0]!; // smallest step: larger ones are other flows interleaved by other hosts
    return finish(
      { ...base, kind: 'symmetric-sequential', mapping, portAllocation: 'sequential', portDelta: delta, nextPort: ports[ports.length - 1]! + delta },
      '',
    );
  }
  return finish({ ...base, kind: 'symmetric-random', mapping, portAllocation: 'random' }, '');
}

function filteringFrom(f: FilteringEvidence | undefined): FilteringBehaviour | 'unknown' {
  if (!f) return 'unknown';
  if (f.otherIp === true) return 'endpoint-independent';
  if (f.otherPort === true) return 'address-dependent';
  if (f.otherIp === false && f.otherPort === false) return 'address-and-port-dependent';
  return 'unknown';
}

function finish(c: NatClassification, override: string): NatClassification {
  c.summary = override || describeNat(c);
  return c;
}

/** Human text for `pilotctl info`, e.g. "symmetric-sequential (endpoint-dependent mapping, ports +1 per flow) via 198.18.1.1:20001". */
export function describeNat(c: NatClassification): string {
  const via = c.publicEndpoint ? ` via ${formatEndpoint(c.publicEndpoint)}` : '';
  if (c.kind === 'none') return `none (public address)${via}`;
  if (c.kind === 'unknown') return `unknown${via}`;
  const parts: string[] = [`${c.mapping} mapping`];
  if (c.portAllocation === 'preserved') parts.push('port preserved');
  else if (c.portAllocation === 'sequential') parts.push(`ports ${c.portDelta! > 0 ? '+' : ''}${c.portDelta} per flow`);
  else if (c.portAllocation === 'random') parts.push('random ports');
  if (c.filtering === 'unknown') {
    if (c.mapping === 'endpoint-independent') parts.push('filtering not measured, assumed address-and-port-dependent');
  } else {
    parts.push(`${c.filtering} filtering`);
  }
  return `${c.kind} (${parts.join(', ')})${via}`;
}
