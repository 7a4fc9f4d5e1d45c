// Which traversal strategy a pair of NAT profiles needs, and this side's part in it. Pure. The path engine
// (paths.ts) executes it once the two sides have exchanged their NAT info over the relay.
//
//   same public IP                 → lan: the registry's LAN endpoints (the tunnel's candidates) connect them
//   public / cone ↔ public / cone  → punch: both punch the peer's observed endpoint at the beacon's command
//   cone ↔ sequential symmetric, cone lets unknown ports in (full / address-restricted, public)
//                                  → punch: the symmetric side's punch reaches the cone, which answers
//   port-restricted cone ↔ sequential symmetric
//                                  → predict: the cone punches a window of the ports the symmetric NAT hands out next
//   sequential ↔ sequential        → predict on both sides: the k-th new flow of each goes to the peer's k-th port,
//                                    so both NATs open the matching pair of flows (the "diagonal")
//   cone ↔ random symmetric        → birthday: the symmetric ("hard") side opens N sockets that each punch the
//                                    cone's endpoint (N random mappings that accept the cone), the cone ("easy")
//                                    side probes random ports of the symmetric IP at a capped rate. After M probes
//                                    P(hit) = 1 − (1 − N/P)^M, P = 64512 ports: N=256 → 50 % at M=174,
//                                    95 % at M=756, 99 % at M=1163 (Tailscale, "How NAT traversal works").
//                                    The hard side must be the one with many sockets: a port-restricted cone drops
//                                    the symmetric side's packets unless it sent to that exact random port first.
//   sequential ↔ random symmetric  → birthday-2d: the sequential side's k-th random probe leaves from a port it
//                                    can predict (next + k·Δ); the random side opens N sockets and punches from each
//                                    every predicted port. E[hits] = N·M/P per attempt (N=256, M=264: ≈1.05, 65 %);
//                                    attempts repeat (the sequential side re-announces its advanced next port).
//   random ↔ random                → relay only (no port on either side can be predicted).
import { isConeLike, acceptsUnknownPort, type NatKind, type NatProfile, type UdpEndpoint } from './types.js';
import type { NatTiming } from './timing.js';

export type Strategy = 'lan' | 'punch' | 'predict' | 'birthday' | 'birthday-2d' | 'relay-only';

export type PlanParams = Pick<NatTiming, 'predictionWindow' | 'birthdaySockets' | 'birthdayProbes' | 'birthday2dPredictedPorts'>;

export interface Plan {
  strategy: Strategy;
  /** Punched from the tunnel socket in rounds, in this order (order matters for sequential NATs). */
  targets: UdpEndpoint[];
  /** Extra local sockets to open (birthday hard side). */
  extraSockets: number;
  /** Each extra socket punches each of these (opens its mappings), once per attempt. */
  extraTargets: UdpEndpoint[];
  /** Easy side: random-port probes from the tunnel socket to this IP. */
  randomProbe: { ip: string; count: number } | null;
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

/** The `n` ports a sequential NAT is predicted to allocate next (its next port, then a step of delta each). */
export function predictedPorts(p: NatProfile, n: number): UdpEndpoint[] {
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
  const plan: Plan = { strategy: 'punch', targets: [], extraSockets: 0, extraTargets: [], randomProbe: null };
  const rPub = remote.publicEndpoint;
  if (!rPub) {
    plan.strategy = remote.lanEndpoints.length ? 'lan' : 'relay-only';
    plan.targets = [...remote.lanEndpoints];
    return plan;
  }
  if (local.publicEndpoint && local.publicEndpoint.ip === rPub.ip && L !== 'none') {
    plan.strategy = 'lan';
    plan.targets = [...remote.lanEndpoints, rPub];
    return plan;
  }
  const lCone = isConeLike(L);
  const rCone = isConeLike(R);
  if (lCone && rCone) {
    plan.targets = [rPub];
  } else if (lCone) {
    // remote is symmetric
    if (R === 'symmetric-random') {
      plan.strategy = 'birthday';
      plan.randomProbe = { ip: rPub.ip, count: params.birthdayProbes };
    } else if (acceptsUnknownPort(L)) {
      plan.targets = [rPub];
    } else {
      plan.strategy = 'predict';
      plan.targets = [rPub, ...predictedPorts(remote, params.predictionWindow)];
    }
  } else if (rCone) {
    // local is symmetric
    if (L === 'symmetric-random') {
      plan.strategy = 'birthday';
      plan.extraSockets = params.birthdaySockets;
      plan.extraTargets = [rPub];
    } else {
      // sequential: the beacon's punch (observed port and the few above it) is the cone's part
      plan.strategy = acceptsUnknownPort(R) ? 'punch' : 'predict';
    }
  } else if (L === 'symmetric-sequential' && R === 'symmetric-sequential') {
    plan.strategy = 'predict';
    plan.targets = predictedPorts(remote, params.predictionWindow);
  } else if (L === 'symmetric-sequential') {
    plan.strategy = 'birthday-2d';
    plan.randomProbe = { ip: rPub.ip, count: params.birthday2dPredictedPorts };
  } else if (R === 'symmetric-sequential') {
    plan.strategy = 'birthday-2d';
    plan.extraSockets = params.birthdaySockets;
    plan.extraTargets = predictedPorts(remote, params.birthday2dPredictedPorts);
  } else {
    plan.strategy = 'relay-only';
  }
  return plan;
}
