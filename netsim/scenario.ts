// Named scenarios and the pair runner the NAT matrix is built on: a public `rendezvous` host plus agents `a`
// and `b`, each behind a NAT of some kind (or public). The matrix (issue 4) will call
//   runPair('port-restricted-cone', 'symmetric-random', async ({ topo }) => { spawn rendezvous, daemons … })
// for every pair and compare the observed path with expectedPath().
import { err, type Result } from '../src/core/index.js';
import { NAT_EXPECTATIONS, NAT_KINDS, parseNatKind, type NatKind, type NatOptions } from './nat.js';
import { withTopology, type HostInfo, type NatSpec, type PublicHostSpec, type Topology, type TopologySpec } from './topology.js';
import type { LinkSpec } from './link.js';

/** Host names every pair scenario uses. */
export const RENDEZVOUS = 'rendezvous';
export const AGENT_A = 'a';
export const AGENT_B = 'b';

export interface PairOptions {
  /** Both agents behind one NAT router (natB is ignored; natA must not be 'none'). */
  sameNat?: boolean;
  /** Hairpinning on the NAT routers (default false). */
  hairpin?: boolean;
  /** Idle mapping timeout on the NAT routers, seconds (default 60). */
  mappingTimeoutS?: number;
  /** Impairment on each agent's uplink (the NAT's WAN link, or a public agent's own link). */
  link?: LinkSpec;
  /** Extra public addresses on the rendezvous host (e.g. a second IP for NAT-type detection). Default 1. */
  rendezvousExtraIps?: number;
  /** Give up (and tear down) after this many milliseconds. */
  timeoutMs?: number;
  /** More public hosts after the rendezvous and any public agent (e.g. an HTTP proxy, 198.18.10x.10). */
  extraPublicHosts?: PublicHostSpec[];
}

export interface PairContext {
  topo: Topology;
  rendezvous: HostInfo;
  a: HostInfo;
  b: HostInfo;
  natA: NatKind;
  natB: NatKind;
}

type NatArg = NatKind | NatOptions;

function natOpts(n: NatArg, opts: PairOptions): NatOptions {
  const base: NatOptions = typeof n === 'string' ? { kind: n } : { ...n };
  if (base.hairpin === undefined && opts.hairpin !== undefined) base.hairpin = opts.hairpin;
  if (base.mappingTimeoutS === undefined && opts.mappingTimeoutS !== undefined) base.mappingTimeoutS = opts.mappingTimeoutS;
  return base;
}

/** Topology for agents a and b behind natA / natB (kind 'none' = public agent) and a public rendezvous host. */
export function pairSpec(natA: NatArg, natB: NatArg, opts: PairOptions = {}): TopologySpec {
  const publicHosts: PublicHostSpec[] = [{ name: RENDEZVOUS, extraIps: opts.rendezvousExtraIps ?? 1 }];
  const nats: NatSpec[] = [];
  const a = natOpts(natA, opts);
  if (opts.sameNat) {
    nats.push({ ...a, name: 'nat', wanLink: opts.link, hosts: [{ name: AGENT_A }, { name: AGENT_B }] });
    publicHosts.push(...(opts.extraPublicHosts ?? []));
    return { publicHosts, nats };
  }
  for (const [agent, n] of [
    [AGENT_A, a],
    [AGENT_B, natOpts(natB, opts)],
  ] as const) {
    if (n.kind === 'none') publicHosts.push({ name: agent, link: opts.link });
    else nats.push({ ...n, name: `nat-${agent}`, wanLink: opts.link, hosts: [{ name: agent }] });
  }
  publicHosts.push(...(opts.extraPublicHosts ?? []));
  return { publicHosts, nats };
}

/** Build the pair topology, run fn, tear down (always). fn's result or err('timeout' | 'internal'). */
export async function runPair<T>(
  natA: NatArg,
  natB: NatArg,
  fn: (ctx: PairContext) => Promise<T>,
  opts: PairOptions = {},
): Promise<Result<T>> {
  if (opts.sameNat && natOpts(natA, opts).kind === 'none') return err('invalid_argument', 'sameNat needs a NAT kind');
  const spec = pairSpec(natA, natB, opts);
  const kindA = natOpts(natA, opts).kind;
  const kindB = opts.sameNat ? kindA : natOpts(natB, opts).kind;
  return withTopology(
    spec,
    (topo) =>
      fn({ topo, rendezvous: topo.host(RENDEZVOUS), a: topo.host(AGENT_A), b: topo.host(AGENT_B), natA: kindA, natB: kindB }),
    opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs },
  );
}

export type ExpectedPath = 'direct' | 'relay';

/**
 * Whether plain UDP hole punching (both sides send to the peer's endpoint as reported by the rendezvous) can
 * connect two agents, per RFC 4787 / iroh's patchbay table. Port prediction could beat symmetric-sequential; a
 * naive puncher does not try, so it counts as relay here. Hairpin and LAN addresses decide the sameNat case.
 */
export function expectedPath(natA: NatKind, natB: NatKind): ExpectedPath {
  if (natA === 'none' || natB === 'none') return 'direct';
  const a = NAT_EXPECTATIONS[natA];
  const b = NAT_EXPECTATIONS[natB];
  const symA = a.mapping === 'endpoint-dependent';
  const symB = b.mapping === 'endpoint-dependent';
  if (symA && symB) return 'relay';
  // the symmetric side's new port is unknown, so the cone side must accept a packet from an unknown port
  if (symA) return b.filtering === 'address-and-port-dependent' ? 'relay' : 'direct';
  if (symB) return a.filtering === 'address-and-port-dependent' ? 'relay' : 'direct';
  return 'direct';
}

export interface Scenario {
  name: string;
  description: string;
  spec: TopologySpec;
  /** The two agent hosts. */
  agents: [string, string];
  expect: ExpectedPath;
}

function pairScenario(name: string, a: NatKind, b: NatKind, description: string, opts: PairOptions = {}): Scenario {
  return {
    name,
    description,
    spec: pairSpec(a, b, opts),
    agents: [AGENT_A, AGENT_B],
    expect: opts.sameNat ? 'direct' : expectedPath(a, b),
  };
}

/** The CLI's `up <scenario>` registry. */
export const SCENARIOS: Record<string, Scenario> = Object.fromEntries(
  [
    pairScenario('cone-cone', 'port-restricted-cone', 'port-restricted-cone', 'a and b behind port-restricted cones (typical home routers)'),
    pairScenario('full-full', 'full-cone', 'full-cone', 'a and b behind full cones'),
    pairScenario('restricted-restricted', 'restricted-cone', 'restricted-cone', 'a and b behind address-restricted cones'),
    pairScenario('cone-symmetric', 'port-restricted-cone', 'symmetric-random', 'a behind a port-restricted cone, b behind a random symmetric NAT'),
    pairScenario('restricted-symmetric', 'restricted-cone', 'symmetric-random', 'a behind an address-restricted cone, b symmetric'),
    pairScenario('symmetric-symmetric', 'symmetric-random', 'symmetric-random', 'both behind random symmetric NATs (needs relay)'),
    pairScenario('sequential-sequential', 'symmetric-sequential', 'symmetric-sequential', 'both behind sequential symmetric NATs'),
    pairScenario('public-cone', 'none', 'port-restricted-cone', 'a public, b behind a port-restricted cone'),
    pairScenario('public-symmetric', 'none', 'symmetric-random', 'a public, b behind a random symmetric NAT'),
    pairScenario('two-behind-one-nat', 'port-restricted-cone', 'port-restricted-cone', 'a and b on one LAN behind a port-restricted cone with hairpinning', {
      sameNat: true,
      hairpin: true,
    }),
    pairScenario(
      'two-behind-one-nat-nohairpin',
      'port-restricted-cone',
      'port-restricted-cone',
      'a and b on one LAN behind a port-restricted cone without hairpinning (must use LAN addresses)',
      { sameNat: true, hairpin: false },
    ),
    pairScenario('lossy-cone-cone', 'port-restricted-cone', 'port-restricted-cone', 'cone-cone with 20 ms one-way delay, 5 ms jitter and 2% loss per WAN link', {
      link: { delayMs: 20, jitterMs: 5, lossPct: 2 },
    }),
  ].map((s) => [s.name, s]),
);

/** Scenario by name, or a pair spelled `<kindA>--<kindB>` (kinds or aliases, e.g. `full--symmetric`). */
export function findScenario(name: string): Scenario | null {
  const s = SCENARIOS[name];
  if (s) return s;
  const m = /^(.+)--(.+)$/.exec(name);
  if (!m) return null;
  const a = parseNatKind(m[1]!);
  const b = parseNatKind(m[2]!);
  if (!a || !b) return null;
  return pairScenario(name, a, b, `a: ${a}, b: ${b}`);
}

/** Every (natA, natB) pair with a ≤ b in NAT_KINDS order: the matrix rows. */
export function matrixPairs(): [NatKind, NatKind][] {
  const out: [NatKind, NatKind][] = [];
  NAT_KINDS.forEach((a, i) => NAT_KINDS.slice(i).forEach((b) => out.push([a, b])));
  return out;
}
