// The compat-transport cells of the matrix (issue 13): daemons on networks where UDP does not get out — the
// NAT drops the LAN's UDP (one side, both sides), or only TCP to an HTTP proxy (tinyproxy, basic auth) leaves
// the LAN — plus one cell where the UDP block is lifted while a stream runs. The rendezvous serves its compat
// port (`--compat-addr :443`, TLS registry + WebSocket relay); daemons run in the default `--transport auto` with
// `--compat <rendezvous>:443`. Each cell: trust handshake, a ≥ 2 MiB echo stream byte-exact, and what
// `pilotctl peers --json` / `info --json` report (path relay + transport wss on the blocked side). Does I/O; root.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setUdpBlocked } from './egress.js';
import { echoStream, startPairSession, type Agent, type EchoStreamResult, type MatrixCell, type PairSession, type PathKind, type TrialResult } from './matrix.js';
import type { NatOptions } from './nat.js';
import { PROXY_PORT, startProxy, type ProxyHandle } from './proxy.js';
import { runPair } from './scenario.js';

export const COMPAT_CELL_NAMES = ['udp-blocked-one', 'udp-blocked-both', 'proxy-only-one', 'udp-unblock'] as const;
export type CompatCellName = (typeof COMPAT_CELL_NAMES)[number];

export function isCompatCellName(s: string): s is CompatCellName {
  return (COMPAT_CELL_NAMES as readonly string[]).includes(s);
}

export interface CompatCellSpec {
  name: CompatCellName;
  description: string;
  natA: NatOptions;
  natB: NatOptions;
  /** Matrix-table labels for A and B. */
  labelA: string;
  labelB: string;
  /** Agents whose daemon must end up on the WebSocket (transport wss). */
  wssSides: ('a' | 'b')[];
  /** Start tinyproxy on a public host `proxy`; a's daemon gets `HTTPS_PROXY=http://user:pass@ip:3128`. */
  hasProxy: boolean;
  /** Lift a's UDP block mid-stream: a must move back to udp and its path to b to direct. */
  isUnblock: boolean;
  /** The path a reports for b at the end. */
  required: 'direct' | 'relay';
}

const CONE: NatOptions = { kind: 'port-restricted-cone' };
const BLOCKED: NatOptions = { kind: 'port-restricted-cone', blockUdp: true };

export const COMPAT_CELLS: Record<CompatCellName, CompatCellSpec> = {
  'udp-blocked-one': {
    name: 'udp-blocked-one',
    description: "a's NAT drops UDP, b behind a plain port-restricted cone: relay, a over wss",
    natA: BLOCKED,
    natB: CONE,
    labelA: 'port-restricted-cone, UDP blocked',
    labelB: 'port-restricted-cone',
    wssSides: ['a'],
    hasProxy: false,
    isUnblock: false,
    required: 'relay',
  },
  'udp-blocked-both': {
    name: 'udp-blocked-both',
    description: 'both NATs drop UDP: relay, both over wss',
    natA: BLOCKED,
    natB: BLOCKED,
    labelA: 'port-restricted-cone, UDP blocked',
    labelB: 'port-restricted-cone, UDP blocked',
    wssSides: ['a', 'b'],
    hasProxy: false,
    isUnblock: false,
    required: 'relay',
  },
  'proxy-only-one': {
    name: 'proxy-only-one',
    description: "only TCP to an HTTP proxy (tinyproxy, basic auth) leaves a's LAN: a uses HTTPS_PROXY, relay over wss",
    natA: { kind: 'port-restricted-cone', proxyOnly: `proxy:${PROXY_PORT}` },
    natB: CONE,
    labelA: 'port-restricted-cone, proxy only',
    labelB: 'port-restricted-cone',
    wssSides: ['a'],
    hasProxy: true,
    isUnblock: false,
    required: 'relay',
  },
  'udp-unblock': {
    name: 'udp-unblock',
    description: "a's NAT drops UDP, then the rule is deleted mid-stream: a back to udp, path direct, stream intact",
    natA: BLOCKED,
    natB: CONE,
    labelA: 'port-restricted-cone, UDP blocked → unblocked',
    labelB: 'port-restricted-cone',
    wssSides: ['a'],
    hasProxy: false,
    isUnblock: true,
    required: 'direct',
  },
};

/** Stream size per cell (the issue: ≥ 2 MB). */
export const COMPAT_STREAM_BYTES = 2 * 1024 * 1024;
/** udp-unblock: pace of the stream while it waits for the switch (32 KiB per 50 ms ≈ 640 KiB/s). */
const HOLD_CHUNK_BYTES = 32 * 1024;
const HOLD_PACE_MS = 50;
/** A daemon in auto must be on wss this soon after the session is up (contract: ≈3 s without a UDP answer). */
const WSS_WITHIN_MS = 15_000;
/** udp-unblock: back to udp and direct this soon after the rule is deleted (re-probe every ≈15 s + punching). */
const SWITCH_BACK_WITHIN_MS = Number(process.env.PILOT_COMPAT_SWITCH_BACK_MS ?? 25_000);

export interface CompatSideReport {
  /** `info --json` transport ('udp' | 'wss'), transport_mode, transport_reason, proxy. */
  transport: string | null;
  transportMode: string | null;
  transportReason: string | null;
  proxy: string | null;
  /** `peers --json` row for the other agent: path and transport. */
  peerPath: PathKind;
  peerTransport: string | null;
}

export interface CompatTrialResult extends TrialResult {
  cell: CompatCellName;
  stream: EchoStreamResult | null;
  /** Session up → every wss side reports transport wss, ms. */
  wssAfterMs: number | null;
  /** udp-unblock: rule deleted → a's info says udp / a's path to b is direct, ms. */
  udpAfterUnblockMs: number | null;
  directAfterUnblockMs: number | null;
  /** udp-unblock: what a reported for b while blocked, mid-stream. */
  beforeUnblock: CompatSideReport | null;
  sideA: CompatSideReport | null;
  sideB: CompatSideReport | null;
  /** Expectations the cell did not meet (empty = pass, together with connected and stream.isExact). */
  problems: string[];
  elapsedMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `<home>/known_rendezvous.json` ({"host:port": "AB:…"}), {} when absent or unreadable. */
function readKnownRendezvous(home: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(join(home, 'known_rendezvous.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** What one agent's pilotctl says about itself and the other agent (`info --json`, `peers --json`). */
async function sideReport(s: PairSession, self: Agent, other: Agent): Promise<CompatSideReport> {
  const [info, peers] = await Promise.all([s.ctl(self, ['info'], 10_000), s.ctl(self, ['peers'], 10_000)]);
  const i = info.ok ? info.value : {};
  const rows = peers.ok ? ((peers.value.peers as Record<string, unknown>[] | undefined) ?? []) : [];
  const row = rows.find((p) => p.node_id === other.nodeId);
  return {
    transport: str(i.transport),
    transportMode: str(i.transport_mode),
    transportReason: str(i.transport_reason),
    proxy: str(i.proxy),
    peerPath: (str(row?.path) as PathKind | null) ?? 'none',
    peerTransport: str(row?.transport),
  };
}

/** Poll an agent's daemon (SDK, no process spawn) until `pred(info, peerRow)` holds or `withinMs` passes. */
async function waitDaemon(
  home: string,
  peer: number,
  withinMs: number,
  pred: (info: Record<string, unknown>, row: Record<string, unknown> | undefined) => boolean,
): Promise<boolean> {
  const { PilotClient } = await import('../src/sdk/client.js');
  const c = await PilotClient.connect({ home });
  if (!c.ok) return false;
  const deadline = Date.now() + withinMs;
  try {
    while (Date.now() < deadline) {
      const [info, peers] = await Promise.all([c.value.info(), c.value.peers()]);
      const row = peers.ok ? (peers.value.peers as unknown as Record<string, unknown>[]).find((p) => p.node_id === peer) : undefined;
      if (info.ok && pred(info.value as unknown as Record<string, unknown>, row)) return true;
      await sleep(200);
    }
    return false;
  } finally {
    c.value.close();
  }
}

/** One trial of one compat cell. Never throws; failures are in `error` / `problems`. */
export async function runCompatTrial(name: CompatCellName, opts: { timeoutMs?: number } = {}): Promise<CompatTrialResult> {
  const cell = COMPAT_CELLS[name];
  const t0 = Date.now();
  const res: CompatTrialResult = {
    cell: name,
    connected: false,
    path: 'none',
    ttfbMs: null,
    directAfterMs: null,
    endpoint: null,
    natTypeA: null,
    natTypeB: null,
    error: null,
    stream: null,
    wssAfterMs: null,
    udpAfterUnblockMs: null,
    directAfterUnblockMs: null,
    beforeUnblock: null,
    sideA: null,
    sideB: null,
    problems: [],
    elapsedMs: 0,
  };
  const problem = (p: string) => res.problems.push(p);
  const dir = mkdtempSync(join(tmpdir(), 'pn-compat-'));
  const rdvHome = join(dir, 'rendezvous-home');
  mkdirSync(rdvHome, { mode: 0o700 });
  let proxy: ProxyHandle | null = null;
  const r = await runPair(
    cell.natA,
    cell.natB,
    async (ctx) => {
      const rip = ctx.rendezvous.ips[0]!;
      if (cell.hasProxy) {
        const p = await startProxy(ctx.topo, 'proxy');
        if (!p.ok) {
          res.error = p.error.message;
          return;
        }
        proxy = p.value;
      }
      const compat = ['--compat', `${rip}:443`];
      const s0 = await startPairSession(ctx, {
        // the self-signed certificate goes to $HOME/.pilot-rendezvous without --store: keep it in a temp home
        rendezvousArgs: ['--compat-addr', ':443'],
        rendezvousEnv: { HOME: rdvHome },
        // the proxy cell pins the certificate (--registry-fingerprint from the ready line); the others trust on
        // first use (known_rendezvous.json, checked below)
        daemonArgs: (ready) => ({
          a: [...compat, ...(cell.hasProxy && typeof ready.fingerprint === 'string' ? ['--registry-fingerprint', ready.fingerprint] : [])],
          b: compat,
        }),
        // HTTPS_PROXY rather than --proxy: test/integration/compat.test.ts covers the flag
        daemonEnv: proxy ? { a: { HTTPS_PROXY: (proxy as ProxyHandle).url } } : {},
        registerTimeoutMs: 30_000,
        dir,
      });
      if (!s0.ok) {
        res.error = s0.error.message;
        return;
      }
      const s = s0.value;
      const agents = { a: s.a, b: s.b };
      const other = (x: 'a' | 'b') => (x === 'a' ? s.b : s.a);
      // the blocked sides must have moved to the WebSocket before the stream starts (else its first frames
      // go to UDP and the cell measures retransmission, not the compat path)
      const tWss = Date.now();
      const wssOk = await Promise.all(
        cell.wssSides.map((x) => waitDaemon(agents[x].home, other(x).nodeId, WSS_WITHIN_MS, (info) => info.transport === 'wss')),
      );
      if (wssOk.every(Boolean)) res.wssAfterMs = Date.now() - tWss;
      else problem(`transport never became wss within ${WSS_WITHIN_MS} ms on ${cell.wssSides.filter((_, i) => !wssOk[i]).join(', ')}`);

      // time to first byte as the NAT-pair rows measure it (traceroute: setup + first echo round trip)
      const tr = await s.ctl(s.a, ['traceroute', String(s.b.nodeId), '--timeout', '20s'], 30_000);
      if (tr.ok) {
        const samples = (tr.value.rtt_samples as { rtt_ms: number }[] | undefined) ?? [];
        res.ttfbMs = (typeof tr.value.setup_ms === 'number' ? tr.value.setup_ms : 0) + (samples[0]?.rtt_ms ?? 0);
      } else {
        problem(`traceroute a → b: ${tr.error.message}`);
      }

      if (!cell.isUnblock) {
        res.stream = await echoStream(s.a.home, s.b.nodeId, { bytes: COMPAT_STREAM_BYTES, echoTimeoutMs: 30_000 });
      } else {
        const live = { bytesSent: 0, bytesEchoed: 0 };
        type Phase = 'blocked' | 'unblocked' | 'done' | { error: string };
        let phase = 'blocked' as Phase; // (`as`: the closures below change it; keep TS from narrowing)
        const orchestrate = (async () => {
          // mid-stream over wss first: at least 256 KiB echoed, a reports relay + wss for b
          const deadline = Date.now() + 15_000;
          while (live.bytesEchoed < 256 * 1024 && Date.now() < deadline) await sleep(50);
          if (live.bytesEchoed < 256 * 1024) return void (phase = { error: `only ${live.bytesEchoed} B echoed over wss in 15 s` });
          res.beforeUnblock = await sideReport(s, s.a, s.b);
          const un = await setUdpBlocked(ctx.topo, 'nat-a', false);
          if (!un.ok) return void (phase = { error: `unblock: ${un.error.message}` });
          const tUn = Date.now();
          phase = 'unblocked';
          const [isUdp, isDirect] = await Promise.all([
            waitDaemon(s.a.home, s.b.nodeId, SWITCH_BACK_WITHIN_MS, (info) => info.transport === 'udp').then((x) => {
              if (x) res.udpAfterUnblockMs = Date.now() - tUn;
              return x;
            }),
            waitDaemon(s.a.home, s.b.nodeId, SWITCH_BACK_WITHIN_MS, (_i, row) => row?.path === 'direct').then((x) => {
              if (x) res.directAfterUnblockMs = Date.now() - tUn;
              return x;
            }),
          ]);
          if (!isUdp || !isDirect) {
            phase = { error: `${SWITCH_BACK_WITHIN_MS} ms after unblocking: transport ${isUdp ? 'udp' : 'not udp'}, path ${isDirect ? 'direct' : 'not direct'}` };
            return;
          }
          phase = 'done';
        })();
        res.stream = await echoStream(
          s.a.home,
          s.b.nodeId,
          {
            bytes: COMPAT_STREAM_BYTES,
            chunkBytes: HOLD_CHUNK_BYTES,
            holdPaceMs: HOLD_PACE_MS,
            echoTimeoutMs: 30_000,
            hold: () => (phase === 'done' ? 'release' : typeof phase === 'object' ? phase : 'hold'),
          },
          live,
        );
        await orchestrate;
        if (typeof phase === 'object') problem(phase.error);
        const b = res.beforeUnblock as CompatSideReport | null;
        if (b && (b.transport !== 'wss' || b.peerPath !== 'relay' || b.peerTransport !== 'wss')) {
          problem(`before unblocking a reported transport ${b.transport}, path ${b.peerPath}/${b.peerTransport} (want wss, relay/wss)`);
        }
      }
      const st = res.stream;
      res.connected = st !== null && st.bytesEchoed > 0;
      if (st && !st.isExact) problem(`stream: ${st.error ?? 'not byte-exact'}`);

      [res.sideA, res.sideB] = await Promise.all([sideReport(s, s.a, s.b), sideReport(s, s.b, s.a)]);
      res.path = res.sideA.peerPath;
      if (res.path === 'direct' && cell.isUnblock) res.directAfterMs = res.directAfterUnblockMs;
      for (const x of ['a', 'b'] as const) {
        const rep = x === 'a' ? res.sideA : res.sideB;
        const wantTransport = cell.isUnblock || !cell.wssSides.includes(x) ? 'udp' : 'wss';
        const wantPath = cell.required;
        const wantPeerTransport = wantPath === 'relay' ? wantTransport : 'udp';
        if (rep.transport !== wantTransport) problem(`${x}: info transport ${rep.transport} (want ${wantTransport}; reason: ${rep.transportReason})`);
        if (rep.peerPath !== wantPath) problem(`${x}: peers path ${rep.peerPath} (want ${wantPath})`);
        if (rep.peerTransport !== wantPeerTransport) problem(`${x}: peers transport ${rep.peerTransport} (want ${wantPeerTransport})`);
      }
      const fingerprint = s.rendezvousReady.fingerprint;
      if (typeof fingerprint !== 'string') problem(`the rendezvous's ready line has no fingerprint: ${JSON.stringify(s.rendezvousReady)}`);
      for (const x of cell.wssSides) {
        if (cell.hasProxy && x === 'a') continue; // pinned, not trust on first use
        const known = readKnownRendezvous(agents[x].home);
        if (known[`${rip}:443`] !== fingerprint) {
          problem(`${x}: known_rendezvous.json ${JSON.stringify(known)} does not hold ${rip}:443 → the rendezvous's fingerprint`);
        }
      }
      if (proxy) {
        const px = proxy as ProxyHandle;
        if (!px.log().includes(`CONNECT ${rip}:443`)) problem(`tinyproxy never saw CONNECT ${rip}:443`);
        const shown = res.sideA.proxy;
        if (shown === null || shown.includes(':pass@')) problem(`a's info proxy is ${JSON.stringify(shown)} (want the URL without the password)`);
      }
      for (const [ag, key] of [[s.a, 'natTypeA'], [s.b, 'natTypeB']] as const) {
        const info = await s.ctl(ag, ['info'], 10_000);
        if (info.ok) res[key] = (info.value.nat_type as string | null) ?? null;
      }
      if (res.problems.length > 0 && !res.error) {
        res.error = res.problems.join('; ');
        const tail = (h: string) => s.stderrOf(h).split('\n').slice(-6).join(' | ');
        res.error += ` [a stderr: ${tail('a')}] [b stderr: ${tail('b')}]`;
      }
    },
    {
      rendezvousExtraIps: 1,
      timeoutMs: opts.timeoutMs ?? 90_000,
      ...(cell.hasProxy ? { extraPublicHosts: [{ name: 'proxy' }] } : {}),
    },
  );
  await (proxy as ProxyHandle | null)?.stop();
  rmSync(dir, { recursive: true, force: true }); // the daemons are gone with the topology
  if (!r.ok && !res.error) res.error = r.error.message;
  res.elapsedMs = Date.now() - t0;
  return res;
}

/** A compat trial passes when it connected, the stream was byte-exact and every expectation held. */
export function compatTrialPassed(r: CompatTrialResult): boolean {
  return r.connected && r.stream?.isExact === true && r.problems.length === 0 && r.error === null;
}

/** The matrix row of a compat cell (same columns as the NAT pairs; `compat` names the cell). */
export function summariseCompat(name: CompatCellName, results: CompatTrialResult[]): MatrixCell {
  const cell = COMPAT_CELLS[name];
  const n = results.length || 1;
  const pct = (k: number) => Math.round((1000 * k) / n) / 10;
  const ttfb = results.filter((r) => r.ttfbMs !== null).map((r) => r.ttfbMs!).sort((x, y) => x - y);
  const q = (f: number) => (ttfb.length === 0 ? null : ttfb[Math.min(ttfb.length - 1, Math.ceil(f * ttfb.length) - 1)]!);
  const passed = results.filter(compatTrialPassed);
  return {
    natA: cell.natA.kind,
    natB: cell.natB.kind,
    required: cell.required,
    trials: results.length,
    // connected = every expectation of the cell held (stream byte-exact, transports, paths)
    connectedPct: pct(passed.length),
    directPct: pct(passed.filter((r) => r.path === 'direct').length),
    relayedPct: pct(passed.filter((r) => r.path === 'relay').length),
    ttfbMedianMs: q(0.5),
    ttfbP95Ms: q(0.95),
    results,
    compat: name,
    labelA: cell.labelA,
    labelB: cell.labelB,
  };
}

/** Run compat cells `trials` times each, one at a time; onCell after each. */
export async function runCompatCells(
  names: readonly CompatCellName[] = COMPAT_CELL_NAMES,
  opts: { trials?: number; onCell?: (cell: MatrixCell) => void } = {},
): Promise<MatrixCell[]> {
  const out: MatrixCell[] = [];
  for (const name of names) {
    const results: CompatTrialResult[] = [];
    for (let i = 0; i < (opts.trials ?? 1); i++) results.push(await runCompatTrial(name));
    const cell = summariseCompat(name, results);
    out.push(cell);
    opts.onCell?.(cell);
  }
  return out;
}
