// NAT kinds and the nftables ruleset that implements each one inside a NAT router namespace. Pure: this
// module only builds text; topology.ts loads it with `nft -f -`.
//
// Vocabulary is RFC 4787's: *mapping* (which public endpoint an internal endpoint gets — endpoint-independent
// or endpoint-dependent, and how ports are allocated) and *filtering* (which outside endpoints may send in
// through a mapping). All kinds share one mechanism, so they differ only in a few rules:
//
// - conntrack handles every flow the LAN host started (replies come back through it);
// - dynamic nft maps written from the packet path remember each mapping:
//     @eim  internal ip . port  -> public port      (lets later flows reuse the mapping = endpoint-independent)
//     @rev  public port         -> internal ip . port (lets unsolicited packets be DNATed back = cone inbound)
//     @used public ports handed out (a new internal endpoint whose own port is taken must not share it)
//     @seen remote ip . public port (restricted cone: which remote *addresses* a mapping has sent to)
//   `update` refreshes an element's timeout, so a mapping lives while its host keeps sending.
// - new flows from the WAN that no rule DNATs are dropped in the forward and input chains. Dropped packets
//   are never confirmed into conntrack, which avoids the collision described in ../shared/README.md
//   ("a punch packet that reaches a NAT router before its LAN host has sent outward…").
//
// Why not a userspace NAT: Node cannot open raw sockets or NFQUEUE, and the kernel's own NAT plus dynsets
// expresses all six kinds exactly (verified by test/netsim/nat.test.ts), at kernel speed and with no
// extra process to supervise.

export const NAT_KINDS = [
  'none',
  'full-cone',
  'restricted-cone',
  'port-restricted-cone',
  'symmetric-sequential',
  'symmetric-random',
] as const;

/**
 * - `none`: no NAT, the host has a public address.
 * - `full-cone`: endpoint-independent mapping (port preserved when free) and endpoint-independent filtering.
 * - `restricted-cone`: endpoint-independent mapping, address-dependent filtering.
 * - `port-restricted-cone`: endpoint-independent mapping, address-and-port-dependent filtering.
 * - `symmetric-sequential`: a new public port per destination endpoint, allocated +1 each time.
 * - `symmetric-random`: a new random public port per destination endpoint (`fully-random`).
 */
export type NatKind = (typeof NAT_KINDS)[number];

export function isNatKind(s: string): s is NatKind {
  return (NAT_KINDS as readonly string[]).includes(s);
}

/** Short aliases accepted by the CLI and scenario names. */
export const NAT_ALIASES: Record<string, NatKind> = {
  public: 'none',
  open: 'none',
  full: 'full-cone',
  restricted: 'restricted-cone',
  cone: 'port-restricted-cone',
  'port-restricted': 'port-restricted-cone',
  symmetric: 'symmetric-random',
  'sym-seq': 'symmetric-sequential',
  'sym-rand': 'symmetric-random',
};

export function parseNatKind(s: string): NatKind | null {
  if (isNatKind(s)) return s;
  return NAT_ALIASES[s] ?? null;
}

export type MappingBehaviour = 'endpoint-independent' | 'endpoint-dependent';
export type PortAllocation = 'preserved' | 'sequential' | 'random';
export type FilteringBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

/** What a kind should show to the self-test's reflector and probes. */
export interface NatExpectation {
  mapping: MappingBehaviour;
  ports: PortAllocation;
  filtering: FilteringBehaviour;
}

export const NAT_EXPECTATIONS: Record<NatKind, NatExpectation> = {
  none: { mapping: 'endpoint-independent', ports: 'preserved', filtering: 'endpoint-independent' },
  'full-cone': { mapping: 'endpoint-independent', ports: 'preserved', filtering: 'endpoint-independent' },
  'restricted-cone': { mapping: 'endpoint-independent', ports: 'preserved', filtering: 'address-dependent' },
  'port-restricted-cone': {
    mapping: 'endpoint-independent',
    ports: 'preserved',
    filtering: 'address-and-port-dependent',
  },
  'symmetric-sequential': {
    mapping: 'endpoint-dependent',
    ports: 'sequential',
    filtering: 'address-and-port-dependent',
  },
  'symmetric-random': { mapping: 'endpoint-dependent', ports: 'random', filtering: 'address-and-port-dependent' },
};

export interface NatOptions {
  kind: NatKind;
  /** Deliver LAN packets sent to the router's own public endpoints back into the LAN (NAT loopback). Default false. */
  hairpin?: boolean;
  /** Idle seconds before a mapping (and its conntrack entries) expires. Default 60. */
  mappingTimeoutS?: number;
  /** First port symmetric-sequential hands out (then +1 per new flow, wrapping after SEQUENTIAL_PORTS). Default 20000. */
  sequentialBasePort?: number;
  /**
   * Drop all UDP between the LAN and the internet (both directions), as networks that let only TCP out do.
   * Rules in table `ip pn_egress`, tagged UDP_BLOCK_COMMENT; `setUdpBlocked` (netsim/egress.ts) adds or deletes
   * them at runtime. Default false.
   */
  blockUdp?: boolean;
  /**
   * The LAN reaches nothing on the internet but TCP to this endpoint: `IPv4:port`, or `<host name>:port` of a
   * public host in the same topology (resolved by buildTopology). The network where only an HTTP proxy gets out.
   */
  proxyOnly?: string;
}

export interface NatRuleParams {
  wanIf: string;
  lanIf: string;
  publicIp: string;
  /** e.g. 192.168.1.0/24 */
  lanCidr: string;
}

export const DEFAULT_MAPPING_TIMEOUT_S = 60;
/** symmetric-sequential cycles through this many ports from sequentialBasePort. */
export const SEQUENTIAL_PORTS = 1000;

/** The nft script for one NAT router. Loading it replaces table `ip pn_nat` if present. */
export function natRuleset(opts: NatOptions, p: NatRuleParams): string {
  const kind = opts.kind;
  if (kind === 'none') return '';
  const timeoutS = Math.max(1, Math.round(opts.mappingTimeoutS ?? DEFAULT_MAPPING_TIMEOUT_S));
  const hairpin = opts.hairpin ?? false;
  const seqBase = opts.sequentialBasePort ?? 20000;
  const isCone = kind === 'full-cone' || kind === 'restricted-cone' || kind === 'port-restricted-cone';
  const wan = JSON.stringify(p.wanIf);
  const lan = JSON.stringify(p.lanIf);
  const pub = p.publicIp;
  const udp = 'meta l4proto udp';

  // How a new outbound UDP flow gets its public port, most specific first.
  const snatUdp: string[] = [];
  if (isCone) {
    snatUdp.push(`${udp} snat ip to ${pub} : ip saddr . udp sport map @eim`); // existing mapping
    snatUdp.push(`${udp} udp sport @used snat ip to ${pub} fully-random`); // own port taken by another host
    snatUdp.push(`${udp} snat ip to ${pub}`); // port-preserving when the tuple is free (Linux NAT default)
  } else if (kind === 'symmetric-sequential') {
    // numgen inc runs once per *new* conntrack (nat chains see only the first packet), so each new
    // destination endpoint gets the next port. The counter goes through a map because numgen yields a
    // host-order u32 and a bare `: numgen …` port would be byte-swapped (+256 per flow, measured).
    const ports = Array.from({ length: SEQUENTIAL_PORTS }, (_, i) => `${i} : ${seqBase + i}`).join(', ');
    snatUdp.push(`${udp} snat ip to ${pub} : numgen inc mod ${SEQUENTIAL_PORTS} map { ${ports} }`);
  } else {
    snatUdp.push(`${udp} snat ip to ${pub} fully-random`);
  }

  const sets = `
  map eim { type ipv4_addr . inet_service : inet_service; flags dynamic,timeout; timeout ${timeoutS}s; }
  map rev { type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout ${timeoutS}s; }
  set used { type inet_service; flags dynamic,timeout; timeout ${timeoutS}s; }
  set seen { type ipv4_addr . inet_service; flags dynamic,timeout; timeout ${timeoutS}s; }`;

  const pre: string[] = [];
  if (kind === 'full-cone') pre.push(`iifname ${wan} ip daddr ${pub} ${udp} dnat ip to udp dport map @rev`);
  if (kind === 'restricted-cone') {
    pre.push(`iifname ${wan} ip daddr ${pub} ${udp} ip saddr . udp dport @seen dnat ip to udp dport map @rev`);
  }
  // NAT loopback: unfiltered, like most home routers.
  if (hairpin) pre.push(`iifname ${lan} ip daddr ${pub} ${udp} dnat ip to udp dport map @rev`);

  const post: string[] = [];
  for (const r of snatUdp) post.push(`ip saddr ${p.lanCidr} oifname ${wan} ${r}`);
  post.push(`ip saddr ${p.lanCidr} oifname ${wan} snat ip to ${pub}`); // ICMP, TCP: plain masquerade
  if (hairpin) {
    // the looped-back packet must look as if it came from the sender's public mapping
    for (const r of snatUdp) post.push(`ip saddr ${p.lanCidr} oifname ${lan} ct status dnat ${r}`);
  }

  const rec = [
    // Flows started inside: original tuple = internal endpoint, translated sport = public port.
    `ct direction original ct status snat ct original ip saddr ${p.lanCidr} ${udp} update @eim { ct original ip saddr . ct original proto-src : udp sport }`,
    `ct direction original ct status snat ct original ip saddr ${p.lanCidr} ${udp} update @rev { udp sport : ct original ip saddr . ct original proto-src }`,
    `ct direction original ct status snat ct original ip saddr ${p.lanCidr} ${udp} update @used { udp sport }`,
    // Flows a cone let in (DNAT): replies keep the mapping alive.
    `oifname ${wan} ct direction reply ct status dnat ${udp} update @eim { ct reply ip saddr . ct reply proto-src : udp sport }`,
    `oifname ${wan} ct direction reply ct status dnat ${udp} update @rev { udp sport : ct reply ip saddr . ct reply proto-src }`,
    `oifname ${wan} ct direction reply ct status dnat ${udp} update @used { udp sport }`,
  ];
  if (kind === 'restricted-cone') rec.push(`oifname ${wan} ${udp} update @seen { ip daddr . udp sport }`);

  return `table ip pn_nat
delete table ip pn_nat
table ip pn_nat {${sets}
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
${indent(pre)}
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
${indent(post)}
  }
  chain rec {
    type filter hook postrouting priority srcnat + 10; policy accept;
${indent(rec)}
  }
  chain filt_in {
    type filter hook input priority filter; policy accept;
    iifname ${wan} ct state new drop
    iifname ${lan} ip daddr ${pub} ${udp} drop
  }
  chain filt_forward {
    type filter hook forward priority filter; policy accept;
    iifname ${wan} ct state new ct status dnat accept
    iifname ${wan} ct state new drop
  }
}
`;
}

/** Comment on each rule `blockUdp` adds; setUdpBlocked deletes rules by it. */
export const UDP_BLOCK_COMMENT = 'pn-udp-block';
export const EGRESS_TABLE = 'pn_egress';
export const EGRESS_CHAIN = 'forward';

/** The two rules that drop UDP between LAN and WAN (for `nft add rule ip pn_egress forward …`). */
export function udpBlockRules(p: Pick<NatRuleParams, 'wanIf' | 'lanIf'>): string[] {
  const wan = JSON.stringify(p.wanIf);
  const lan = JSON.stringify(p.lanIf);
  const tag = `comment ${JSON.stringify(UDP_BLOCK_COMMENT)}`;
  return [
    `iifname ${lan} oifname ${wan} meta l4proto udp drop ${tag}`,
    `iifname ${wan} oifname ${lan} meta l4proto udp drop ${tag}`,
  ];
}

/**
 * The egress filter of one NAT router: table `ip pn_egress`, present on every router (empty unless blockUdp or
 * proxyOnly) so UDP can be blocked later at runtime. Its forward chain runs before pn_nat's filter (priority
 * filter - 10); dropped packets are never confirmed into conntrack, so a blocked flow leaves no mapping behind.
 * `proxyEndpoint` is proxyOnly resolved to `IPv4:port`.
 */
export function egressRuleset(opts: NatOptions, p: NatRuleParams, proxyEndpoint: string | null = null): string {
  const wan = JSON.stringify(p.wanIf);
  const lan = JSON.stringify(p.lanIf);
  const fwd: string[] = [];
  const input: string[] = [];
  if (opts.blockUdp) fwd.push(...udpBlockRules(p));
  if (proxyEndpoint !== null) {
    const i = proxyEndpoint.lastIndexOf(':');
    const ip = proxyEndpoint.slice(0, i);
    const port = proxyEndpoint.slice(i + 1);
    fwd.push(`iifname ${lan} oifname ${wan} ip daddr ${ip} tcp dport ${port} accept`);
    fwd.push(`iifname ${lan} oifname ${wan} drop`);
    // nor the router's own public address (a hairpin would otherwise be a way out)
    input.push(`iifname ${lan} ip daddr ${p.publicIp} drop`);
  }
  return `table ip ${EGRESS_TABLE}
delete table ip ${EGRESS_TABLE}
table ip ${EGRESS_TABLE} {
  chain ${EGRESS_CHAIN} {
    type filter hook forward priority filter - 10; policy accept;
${indent(fwd)}
  }
  chain input {
    type filter hook input priority filter - 10; policy accept;
${indent(input)}
  }
}
`;
}

/** Parse `IPv4:port` (port 1..65535); null otherwise. */
export function parseIpv4Endpoint(s: string): { ip: string; port: number } | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[5]);
  if ([m[1], m[2], m[3], m[4]].some((o) => Number(o) > 255) || port < 1 || port > 65535) return null;
  return { ip: `${m[1]}.${m[2]}.${m[3]}.${m[4]}`, port };
}

/** sysctls for the router namespace: conntrack UDP timeouts define how long an idle mapping lives. */
export function natSysctls(opts: NatOptions): Record<string, string> {
  const timeoutS = Math.max(1, Math.round(opts.mappingTimeoutS ?? DEFAULT_MAPPING_TIMEOUT_S));
  return {
    'net.netfilter.nf_conntrack_udp_timeout': String(timeoutS),
    'net.netfilter.nf_conntrack_udp_timeout_stream': String(timeoutS),
  };
}

function indent(lines: readonly string[]): string {
  return lines.map((l) => `    ${l}`).join('\n');
}
