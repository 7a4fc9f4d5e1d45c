// Self-tests that observe each NAT kind from outside, the way a STUN client would (RFC 4787 / RFC 5780 tests):
// a reflector on two public IPs and three ports reports the mapped endpoint; unsolicited probes from the
// reflector's other port and from an unrelated host check filtering; two LAN hosts on one NAT check hairpinning
// and that same-port hosts get distinct mappings. Link checks measure RTT and loss over impaired links.
import { err, ok, type Result } from '../src/core/index.js';
import {
  NAT_EXPECTATIONS,
  NAT_KINDS,
  type FilteringBehaviour,
  type MappingBehaviour,
  type NatKind,
  type PortAllocation,
} from './nat.js';
import { withTopology, type NatSpec, type Topology, type TopologySpec } from './topology.js';
import { UdpAgent } from './udp-agent.js';
import type { LinkSpec } from './link.js';

export const CLIENT_PORT = 40000;
const REFLECTOR_PORTS = [3478, 3479, 3480] as const;
const PROBER_PORT = 4000;
/** How long a negative check (packet must NOT arrive) waits; namespaces deliver in well under 1 ms. */
const NEGATIVE_WAIT_MS = 400;

export interface NatCheckRow {
  /** NAT kind, plus "(no hairpin)" for the hairpin-off router. */
  label: string;
  kind: NatKind;
  hairpinConfigured: boolean | null;
  mapping: MappingBehaviour | '?';
  ports: PortAllocation | '?';
  filtering: FilteringBehaviour | '?';
  /** Hairpinned datagram delivered between the two LAN hosts; null when not applicable (public host). */
  hairpin: boolean | null;
  /** Two LAN hosts bound to the same local port got different public ports; null when not applicable. */
  distinctMappings: boolean | null;
  /** The mapped endpoints seen by the reflector (R1:3478, R1:3479, R2:3478). */
  mapped: string[];
  pass: boolean;
  problems: string[];
}

const SHORT: Record<NatKind, string> = {
  none: 'pub',
  'full-cone': 'fc',
  'restricted-cone': 'rc',
  'port-restricted-cone': 'prc',
  'symmetric-sequential': 'sseq',
  'symmetric-random': 'srnd',
};

/** The self-test topology: every NAT kind with two LAN hosts (hairpin on), plus a port-restricted NAT with hairpin off. */
export function natSelftestSpec(kinds: readonly NatKind[] = NAT_KINDS): TopologySpec {
  const nats: NatSpec[] = [];
  for (const kind of kinds) {
    if (kind === 'none') continue;
    const s = SHORT[kind];
    nats.push({ name: `nat-${s}`, kind, hairpin: true, hosts: [{ name: `${s}-1` }, { name: `${s}-2` }] });
  }
  nats.push({ name: 'nat-nohp', kind: 'port-restricted-cone', hairpin: false, hosts: [{ name: 'nohp-1' }, { name: 'nohp-2' }] });
  return {
    publicHosts: [{ name: 'refl', extraIps: 1 }, { name: 'probe' }, { name: 'pub' }],
    nats,
  };
}

/** Run the NAT kind checks (one topology, NATs checked in parallel). ~3 s. */
export async function runNatSelftest(kinds: readonly NatKind[] = NAT_KINDS): Promise<Result<NatCheckRow[]>> {
  const r = await withTopology(natSelftestSpec(kinds), (topo) => natChecks(topo, kinds), { timeoutMs: 60_000 });
  return r.ok ? r.value : r;
}

async function natChecks(topo: Topology, kinds: readonly NatKind[]): Promise<Result<NatCheckRow[]>> {
  const agents: UdpAgent[] = [];
  const start = async (host: string, binds: string[], reflect = false): Promise<UdpAgent> => {
    const a = await UdpAgent.start(topo, host, binds, { reflect });
    if (!a.ok) throw new Error(a.error.message);
    agents.push(a.value);
    return a.value;
  };
  try {
    const [r1, r2] = topo.host('refl').ips as [string, string];
    const reflector = await start('refl', [...REFLECTOR_PORTS.map((p) => `${r1}:${p}`), `${r2}:3478`], true);
    const prober = await start('probe', [`${topo.ipOf('probe')}:${PROBER_PORT}`]);
    const ctx: CheckContext = { topo, reflector, prober, r1, r2, start };
    const jobs: Promise<NatCheckRow>[] = [];
    for (const kind of kinds) {
      if (kind === 'none') jobs.push(checkPublic(ctx));
      else jobs.push(checkNat(ctx, kind, `nat-${SHORT[kind]}`, SHORT[kind], true));
    }
    jobs.push(checkNat(ctx, 'port-restricted-cone', 'nat-nohp', 'nohp', false));
    return ok(await Promise.all(jobs));
  } catch (cause) {
    return err('internal', `nat self-test: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  } finally {
    for (const a of agents) a.stop();
  }
}

interface CheckContext {
  topo: Topology;
  reflector: UdpAgent;
  prober: UdpAgent;
  r1: string;
  r2: string;
  start: (host: string, binds: string[], reflect?: boolean) => Promise<UdpAgent>;
}

function portOf(ep: string): number {
  return Number(ep.slice(ep.lastIndexOf(':') + 1));
}

/** Mapping behaviour from three reflector observations, in the order they were created. */
async function observeMapping(
  ctx: CheckContext,
  client: UdpAgent,
  tag: string,
): Promise<{ mapped: string[]; mapping: MappingBehaviour | '?'; ports: PortAllocation | '?' }> {
  const targets = [`${ctx.r1}:3478`, `${ctx.r1}:3479`, `${ctx.r2}:3478`];
  const mapped: string[] = [];
  for (const [i, t] of targets.entries()) {
    // one at a time: sequential allocation is only visible when flows are created in order
    const m = await client.mappedVia(0, t, `${tag}-${i}`);
    if (!m) return { mapped, mapping: '?', ports: '?' };
    mapped.push(m);
  }
  const mapping: MappingBehaviour = mapped.every((m) => m === mapped[0]) ? 'endpoint-independent' : 'endpoint-dependent';
  const ps = mapped.map(portOf);
  let ports: PortAllocation;
  if (ps.every((p) => p === CLIENT_PORT)) ports = 'preserved';
  else if (ps[1] === ps[0]! + 1 && ps[2] === ps[1]! + 1) ports = 'sequential';
  else ports = 'random';
  return { mapped, mapping, ports };
}

/** Filtering from unsolicited datagrams to the mapping made towards R1:3478. */
async function observeFiltering(ctx: CheckContext, client: UdpAgent, mapped: string, tag: string): Promise<FilteringBehaviour | '?'> {
  // sanity: the endpoint the client talked to must get through
  ctx.reflector.send(0, mapped, `known-${tag}`, 3, 50);
  // same address, port the client never sent to (R1:3480 = socket 2)
  ctx.reflector.send(2, mapped, `port-${tag}`, 3, 50);
  // unrelated address
  ctx.prober.send(0, mapped, `addr-${tag}`, 3, 50);
  const known = await client.waitFor((m) => m.text === `known-${tag}`, 1000);
  if (!known) return '?';
  const [fromOtherPort, fromOtherAddr] = await Promise.all([
    client.waitFor((m) => m.text === `port-${tag}`, NEGATIVE_WAIT_MS),
    client.waitFor((m) => m.text === `addr-${tag}`, NEGATIVE_WAIT_MS),
  ]);
  if (fromOtherAddr) return 'endpoint-independent';
  if (fromOtherPort) return 'address-dependent';
  return 'address-and-port-dependent';
}

async function checkPublic(ctx: CheckContext): Promise<NatCheckRow> {
  const client = await ctx.start('pub', [`${ctx.topo.ipOf('pub')}:${CLIENT_PORT}`]);
  const m = await observeMapping(ctx, client, 'pub');
  const filtering = m.mapped[0] ? await observeFiltering(ctx, client, m.mapped[0], 'pub') : '?';
  return judge({
    label: 'none (public)',
    kind: 'none',
    hairpinConfigured: null,
    mapping: m.mapping,
    ports: m.ports,
    filtering,
    hairpin: null,
    distinctMappings: null,
    mapped: m.mapped,
    pass: false,
    problems: [],
  });
}

async function checkNat(ctx: CheckContext, kind: NatKind, natName: string, s: string, hairpinConfigured: boolean): Promise<NatCheckRow> {
  const [h1, h2] = [`${s}-1`, `${s}-2`];
  const c1 = await ctx.start(h1, [`${ctx.topo.ipOf(h1)}:${CLIENT_PORT}`]);
  const c2 = await ctx.start(h2, [`${ctx.topo.ipOf(h2)}:${CLIENT_PORT}`]);
  const m = await observeMapping(ctx, c1, h1);
  const m2 = await c2.mappedVia(0, `${ctx.r1}:3478`, `${h2}-0`);
  const filtering = m.mapped[0] ? await observeFiltering(ctx, c1, m.mapped[0], h1) : '?';
  const distinctMappings = m.mapped[0] && m2 ? portOf(m.mapped[0]) !== portOf(m2) : null;
  // hairpin: each host sends to the other's public mapping
  let hairpin: boolean | null = null;
  const problems: string[] = [];
  if (m.mapped[0] && m2) {
    c1.send(0, m2, `hp-${h1}`, 3, 50);
    c2.send(0, m.mapped[0], `hp-${h2}`, 3, 50);
    const [got2, got1] = await Promise.all([
      c2.waitFor((x) => x.text === `hp-${h1}`, hairpinConfigured ? 1000 : NEGATIVE_WAIT_MS),
      c1.waitFor((x) => x.text === `hp-${h2}`, hairpinConfigured ? 1000 : NEGATIVE_WAIT_MS),
    ]);
    hairpin = !!got1 && !!got2;
    const pub = ctx.topo.publicIpOf(h1);
    for (const g of [got1, got2]) {
      if (g && !g.from.startsWith(`${pub}:`)) problems.push(`hairpinned datagram came from ${g.from}, not the public address ${pub}`);
    }
  }
  void natName;
  return judge({
    label: hairpinConfigured ? kind : `${kind} (no hairpin)`,
    kind,
    hairpinConfigured,
    mapping: m.mapping,
    ports: m.ports,
    filtering,
    hairpin,
    distinctMappings,
    mapped: m.mapped,
    pass: false,
    problems,
  });
}

function judge(row: NatCheckRow): NatCheckRow {
  const want = NAT_EXPECTATIONS[row.kind];
  const p = row.problems;
  if (row.mapping !== want.mapping) p.push(`mapping ${row.mapping}, want ${want.mapping}`);
  if (row.ports !== want.ports) p.push(`ports ${row.ports}, want ${want.ports}`);
  if (row.filtering !== want.filtering) p.push(`filtering ${row.filtering}, want ${want.filtering}`);
  if (row.hairpinConfigured !== null && row.hairpin !== row.hairpinConfigured) {
    p.push(`hairpin ${row.hairpin ? 'delivered' : 'not delivered'}, configured ${row.hairpinConfigured ? 'on' : 'off'}`);
  }
  if (row.distinctMappings === false) p.push('two hosts with the same local port share a public port');
  row.pass = p.length === 0;
  return row;
}

/** Fixed-width table of NAT check rows. */
export function formatNatTable(rows: readonly NatCheckRow[]): string {
  const head = ['kind', 'mapping', 'ports', 'filtering', 'hairpin', '2 hosts', 'result'];
  const yn = (b: boolean | null) => (b === null ? '-' : b ? 'yes' : 'no');
  const body = rows.map((r) => [
    r.label,
    r.mapping,
    r.ports,
    r.filtering,
    yn(r.hairpin),
    r.distinctMappings === null ? '-' : r.distinctMappings ? 'distinct' : 'SHARED',
    r.pass ? 'PASS' : `FAIL: ${r.problems.join('; ')}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cols: string[]) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [fmt(head), ...body.map(fmt)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------

export interface TimeoutCheck {
  mappingTimeoutS: number;
  conntrackTimeoutS: number | null;
  inboundBeforeExpiry: boolean;
  inboundAfterExpiry: boolean;
  pass: boolean;
}

/** Full cone with a short mapping timeout: inbound works while fresh and stops after the timeout. ~4 s. */
export async function runMappingTimeoutCheck(mappingTimeoutS = 2): Promise<Result<TimeoutCheck>> {
  const spec: TopologySpec = {
    publicHosts: [{ name: 'refl' }, { name: 'probe' }],
    nats: [{ name: 'nat', kind: 'full-cone', mappingTimeoutS, hosts: [{ name: 'c' }] }],
  };
  const r = await withTopology(
    spec,
    async (topo) => {
      const refl = await UdpAgent.start(topo, 'refl', [`${topo.ipOf('refl')}:3478`], { reflect: true });
      const probe = await UdpAgent.start(topo, 'probe', [`${topo.ipOf('probe')}:${PROBER_PORT}`]);
      const c = await UdpAgent.start(topo, 'c', [`${topo.ipOf('c')}:${CLIENT_PORT}`]);
      try {
        if (!refl.ok || !probe.ok || !c.ok) throw new Error('agents did not start');
        const sysctl = await topo.exec('nat', ['cat', '/proc/sys/net/netfilter/nf_conntrack_udp_timeout']);
        const conntrackTimeoutS = sysctl.ok && sysctl.value.code === 0 ? Number(sysctl.value.stdout.trim()) : null;
        const mapped = await c.value.mappedVia(0, `${topo.ipOf('refl')}:3478`, 't0');
        if (!mapped) throw new Error('no mapping');
        probe.value.send(0, mapped, 'fresh', 3, 50);
        const fresh = await c.value.waitFor((m) => m.text === 'fresh', 1000);
        await new Promise((res) => setTimeout(res, mappingTimeoutS * 1000 + 1500));
        probe.value.send(0, mapped, 'stale', 3, 50);
        const stale = await c.value.waitFor((m) => m.text === 'stale', NEGATIVE_WAIT_MS);
        const check: TimeoutCheck = {
          mappingTimeoutS,
          conntrackTimeoutS,
          inboundBeforeExpiry: !!fresh,
          inboundAfterExpiry: !!stale,
          pass: !!fresh && !stale && conntrackTimeoutS === mappingTimeoutS,
        };
        return check;
      } finally {
        for (const a of [refl, probe, c]) if (a.ok) a.value.stop();
      }
    },
    { timeoutMs: 30_000 },
  );
  return r;
}

// ---------------------------------------------------------------------------------------------------------

export interface LinkCheck {
  link: LinkSpec;
  /** UDP echo round trips over the impaired link. */
  rttMedianMs: number | null;
  rttMinMs: number | null;
  rttMaxMs: number | null;
  /** Fraction of a one-way burst that arrived. */
  deliveredFraction: number | null;
  /** Datagrams of the burst that arrived after a higher-numbered one. */
  reordered: number;
  /** UDP payload rate of the burst at the receiver, first to last arrival, kbit/s. */
  receivedKbit: number | null;
  buildMs: number;
}

/**
 * Two public hosts; `a`'s link carries `link`. Pings b (echo) `pings` times, then sends a one-way burst of
 * `burst` datagrams from a to b and counts what arrived and how much was reordered.
 */
export async function runLinkCheck(
  link: LinkSpec,
  pings = 20,
  burst = 0,
  burstIntervalMs = 2,
  padBytes = 0,
): Promise<Result<LinkCheck>> {
  const spec: TopologySpec = { publicHosts: [{ name: 'a', link }, { name: 'b' }] };
  return withTopology(
    spec,
    async (topo) => {
      const a = await UdpAgent.start(topo, 'a', [`${topo.ipOf('a')}:5000`]);
      const b = await UdpAgent.start(topo, 'b', [`${topo.ipOf('b')}:5001`], { reflect: true });
      try {
        if (!a.ok || !b.ok) throw new Error('agents did not start');
        const to = `${topo.ipOf('b')}:5001`;
        let rtts: number[] = [];
        if (pings > 0) {
          await a.value.ping(0, to, 3, 20, 500); // warm-up: ARP
          rtts = (await a.value.ping(0, to, pings, 20, 1000)).rttsMs.sort((x, y) => x - y);
        }
        let deliveredFraction: number | null = null;
        let reordered = 0;
        let receivedKbit: number | null = null;
        if (burst > 0) {
          await a.value.burst(0, to, 'burst', burst, burstIntervalMs, padBytes);
          await new Promise((res) => setTimeout(res, (link.delayMs ?? 0) + (link.jitterMs ?? 0) + 300));
          const got = b.value.received.filter((m) => m.text.startsWith('burst '));
          const seqs = got.map((m) => Number(m.text.split(' ')[1]));
          if (got.length > 1) {
            const bytes = got.slice(1).reduce((n, m) => n + m.text.length, 0);
            receivedKbit = (bytes * 8) / (got[got.length - 1]!.atMs - got[0]!.atMs);
          }
          deliveredFraction = seqs.length / burst;
          let highest = -1;
          for (const s of seqs) {
            if (s < highest) reordered++;
            highest = Math.max(highest, s);
          }
        }
        const check: LinkCheck = {
          link,
          rttMedianMs: rtts.length ? rtts[Math.floor(rtts.length / 2)]! : null,
          rttMinMs: rtts.length ? rtts[0]! : null,
          rttMaxMs: rtts.length ? rtts[rtts.length - 1]! : null,
          deliveredFraction,
          reordered,
          receivedKbit,
          buildMs: topo.buildMs,
        };
        return check;
      } finally {
        if (a.ok) a.value.stop();
        if (b.ok) b.value.stop();
      }
    },
    { timeoutMs: 60_000 },
  );
}

// ---------------------------------------------------------------------------------------------------------

export interface PunchCase {
  natA: NatKind;
  natB: NatKind;
  /** Both agents behind one NAT router of kind natA. */
  sameNat?: boolean;
  hairpin?: boolean;
}

export interface PunchResult extends PunchCase {
  label: string;
  /** Both agents received a datagram from the other through their public endpoints. */
  isDirect: boolean;
  expected: 'direct' | 'relay';
  /** Endpoints each side learned from the rendezvous. */
  mappedA: string | null;
  mappedB: string | null;
}

/**
 * Naive UDP hole punching (both sides send to the peer's rendezvous-reported endpoint every 50 ms for ~1.5 s,
 * and also answer any endpoint a punch came from) for several pairs at once in one topology. This is what
 * expectedPath() predicts for a daemon that does no port prediction.
 */
export async function runPunchCheck(
  cases: readonly PunchCase[],
  expected: (c: PunchCase) => 'direct' | 'relay',
): Promise<Result<PunchResult[]>> {
  const publicHosts: TopologySpec['publicHosts'] = [{ name: 'rdv' }];
  const nats: NatSpec[] = [];
  cases.forEach((c, i) => {
    if (c.sameNat) {
      nats.push({ name: `n${i}`, kind: c.natA, hairpin: c.hairpin ?? false, hosts: [{ name: `p${i}a` }, { name: `p${i}b` }] });
      return;
    }
    for (const [side, kind] of [
      ['a', c.natA],
      ['b', c.natB],
    ] as const) {
      if (kind === 'none') publicHosts.push({ name: `p${i}${side}` });
      else nats.push({ name: `n${i}${side}`, kind, hairpin: c.hairpin ?? false, hosts: [{ name: `p${i}${side}` }] });
    }
  });
  const r = await withTopology(
    { publicHosts, nats },
    async (topo) => {
      const agents: UdpAgent[] = [];
      const start = async (host: string, bind: string, reflect = false) => {
        const a = await UdpAgent.start(topo, host, [bind], { reflect });
        if (!a.ok) throw new Error(a.error.message);
        agents.push(a.value);
        return a.value;
      };
      try {
        const rdvEp = `${topo.ipOf('rdv')}:3478`;
        await start('rdv', rdvEp, true);
        return await Promise.all(
          cases.map(async (c, i): Promise<PunchResult> => {
            const a = await start(`p${i}a`, `${topo.ipOf(`p${i}a`)}:${CLIENT_PORT}`);
            const b = await start(`p${i}b`, `${topo.ipOf(`p${i}b`)}:${CLIENT_PORT}`);
            const [mappedA, mappedB] = await Promise.all([a.mappedVia(0, rdvEp, 'a'), b.mappedVia(0, rdvEp, 'b')]);
            const label = c.sameNat ? `${c.natA} x2 (hairpin ${c.hairpin ? 'on' : 'off'})` : `${c.natA} <-> ${c.natB}`;
            const base = { ...c, label, expected: expected(c), mappedA, mappedB };
            if (!mappedA || !mappedB) return { ...base, isDirect: false };
            const sources = (x: UdpAgent) => [...new Set(x.received.filter((m) => m.text.startsWith('punch ')).map((m) => m.from))];
            for (let k = 0; k < 30; k++) {
              for (const to of new Set([mappedB, ...sources(a)])) a.send(0, to, 'punch a');
              for (const to of new Set([mappedA, ...sources(b)])) b.send(0, to, 'punch b');
              await new Promise((res) => setTimeout(res, 50));
              if (sources(a).length > 0 && sources(b).length > 0 && k >= 3) break;
            }
            await new Promise((res) => setTimeout(res, 100));
            return { ...base, isDirect: sources(a).length > 0 && sources(b).length > 0 };
          }),
        );
      } finally {
        for (const a of agents) a.stop();
      }
    },
    { timeoutMs: 60_000 },
  );
  return r;
}
