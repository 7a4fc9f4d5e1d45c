// Which traversal strategy a pair of NAT profiles needs, and this side's part in it. Pure.
//
//   same public IP                 → lan: probe the peer's LAN endpoints (and its public one, for hairpinning)
//   public / cone ↔ public / cone  → punch: both probe the peer's public endpoint at the punch command
//   cone ↔ symmetric, cone lets unknown ports in (full / address-restricted, public)
//                                  → punch: the symmetric side's probe reaches the cone, which answers
//   port-restricted cone ↔ sequential symmetric
//                                  → predict: the cone probes a window of the ports the symmetric NAT hands out next
//   sequential ↔ sequential        → predict on both sides: the k-th new flow of each goes to the peer's k-th port,
//                                    so both NATs open the matching pair of flows (the "diagonal")
//   port-restricted cone ↔ random symmetric
//                                  → birthday: the symmetric ("hard") side opens N sockets that each send to the
//                                    cone's endpoint (N random mappings that accept the cone), the cone ("easy")
//                                    side probes random ports of the symmetric IP at a capped rate. After M probes
//                                    P(hit) = 1 − (1 − N/P)^M, P = 64512 ports: N=256 → 50 % at M=174,
//                                    95 % at M=756, 99 % at M=1163 (Tailscale, "How NAT traversal works").
//                                    Note: the hard side must be the one with many sockets. Many sockets on the
//                                    cone side cannot help: a port-restricted cone drops the symmetric side's
//                                    packets unless it sent to that exact random port first.
//   sequential ↔ random symmetric  → birthday-2d: the sequential side's k-th random probe leaves from a port it
//                                    can predict (next + k·Δ); the random side opens N sockets and sends from each
//                                    to every predicted port. E[hits] = N·M/P per attempt (N=M=256: 1.0, 63 %);
//                                    attempts repeat until one hits.
//   random ↔ random                → relay only (no port on either side can be predicted).
import {
  acceptsUnknownPort,
  isConeLike,
  type NatKind,
  type NatProfile,
  type UdpEndpoint,
} from './types.js';

export type Strategy = 'lan' | 'punch' | 'predict' | 'birthday' | 'birthday-2d' | 'relay-only';

export interface PlanParams {
  /** Ports probed past the sequential peer's next port. */
  predictionWindow: number;
  birthdaySockets: number;
  birthdayProbes: number;
  birthday2dSockets: number;
  /** Probes (and predicted ports) of the sequential side per birthday-2d attempt. */
  birthday2dProbes: number;
}

export interface Plan {
  strategy: Strategy;
  /** Probed from socket 0 every round, in this order (order matters for sequential NATs). */
  targets: UdpEndpoint[];
  /** Extra local sockets to open (birthday hard side). */
  extraSockets: number;
  /** Each extra socket sends one probe to each of these (opens its mappings), once per attempt. */
  extraTargets: UdpEndpoint[];
  /** Easy side: random-port probes from socket 0 to this IP. */
  randomProbe: { ip: string; count: number } | null;
  /** New flows this side's NAT allocates per attempt (sequential sides advance nextPort by this). */
  newFlowsPerAttempt: number;
}

export const LOW_PORT = 1024;
export const PORT_SPACE = 65536 - LOW_PORT;

/** Unknown is planned as the most common kind, a port-restricted cone. */
function norm(k: NatKind): NatKind {
  return k === 'unknown' ? 'port-restricted-cone' : k;
}

function nextPortOf(p: NatProfile): number {
  if (p.nextPort) return p.nextPort;
  return (p.publicEndpoint?.port ?? 0) + (p.portDelta ?? 1);
}

function window(p: NatProfile, n: number): UdpEndpoint[] {
  const ip = p.publicEndpoint!.ip;
  const d = p.portDelta ?? 1;
  const first = nextPortOf(p);
  const out: UdpEndpoint[] = [];
  for (let i = 0; i < n; i++) {
    const port = first + i * d;
    if (port >= 1 && port <= 65535) out.push({ ip, port });
  }
  return out;
}

/** This side's part of the plan for (local, remote). Both sides compute it from the same two profiles. */
export function planTraversal(local: NatProfile, remote: NatProfile, params: PlanParams): Plan {
  const L = norm(local.kind);
  const R = norm(remote.kind);
  const plan: Plan = { strategy: 'punch', targets: [], extraSockets: 0, extraTargets: [], randomProbe: null, newFlowsPerAttempt: 0 };
  const rPub = remote.publicEndpoint;
  if (!rPub) {
    plan.strategy = remote.lanEndpoints.length ? 'lan' : 'relay-only';
    plan.targets = [...remote.lanEndpoints];
    return plan;
  }
  if (local.publicEndpoint && local.publicEndpoint.ip === rPub.ip && L !== 'none') {
    plan.strategy = 'lan';
    plan.targets = [...remote.lanEndpoints, rPub];
    plan.newFlowsPerAttempt = plan.targets.length;
    return plan;
  }
  const lCone = isConeLike(L);
  const rCone = isConeLike(R);
  if (lCone && rCone) {
    plan.targets = [rPub];
  } else if (lCone) {
    // remote is symmetric
    if (acceptsUnknownPort(L)) plan.targets = [rPub];
    else if (R === 'symmetric-sequential') {
      plan.strategy = 'predict';
      plan.targets = [rPub, ...window(remote, params.predictionWindow)];
    } else {
      plan.strategy = 'birthday';
      plan.targets = [rPub];
      plan.randomProbe = { ip: rPub.ip, count: params.birthdayProbes };
    }
  } else if (rCone) {
    // local is symmetric
    plan.targets = [rPub];
    if (acceptsUnknownPort(R)) plan.strategy = 'punch';
    else if (L === 'symmetric-sequential') plan.strategy = 'predict';
    else {
      plan.strategy = 'birthday';
      plan.extraSockets = params.birthdaySockets;
      plan.extraTargets = [rPub];
    }
  } else if (L === 'symmetric-sequential' && R === 'symmetric-sequential') {
    plan.strategy = 'predict';
    plan.targets = window(remote, params.predictionWindow);
  } else if (L === 'symmetric-sequential') {
    plan.strategy = 'birthday-2d';
    plan.randomProbe = { ip: rPub.ip, count: params.birthday2dProbes };
  } else if (R === 'symmetric-sequential') {
    plan.strategy = 'birthday-2d';
    plan.extraSockets = params.birthday2dSockets;
    // a margin of a few ports for flows the peer's NAT handed out between its info and its probes
    plan.extraTargets = window(remote, params.birthday2dProbes + 8);
  } else {
    plan.strategy = 'relay-only';
  }
  plan.newFlowsPerAttempt = plan.targets.length + (plan.randomProbe?.count ?? 0);
  return plan;
}
