// The NAT traversal matrix (issue 4): for every pair of NAT kinds, real processes in netsim namespaces —
// pilot-rendezvous (registry + beacon, beacon2 on the rendezvous's second IP) on the public host and one
// pilot-daemon per agent — handshake, approve, then time to first byte (`pilotctl traceroute`: setup + first
// round trip) and the path the daemon reports (`pilotctl peers`). Output: Markdown, JSON, SVG heatmap.
// Everything here does I/O and needs root (netsim).
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { err, ok, type Result } from '../src/core/index.js';
import type { LinkSpec } from './link.js';
import { NAT_KINDS, type NatKind } from './nat.js';
import { matrixPairs, runPair, type PairContext } from './scenario.js';
import type { Topology } from './topology.js';

export type PathKind = 'direct' | 'relay' | 'none';

/** The issue's requirement: direct everywhere except random-symmetric ↔ random-symmetric (relay). */
export function requiredPath(a: NatKind, b: NatKind): 'direct' | 'relay' {
  return a === 'symmetric-random' && b === 'symmetric-random' ? 'relay' : 'direct';
}

/** Ordered cells: the 21 pairs with a ≤ b, then the 15 reversed ones (both orders where they differ). */
export function matrixCells(bothOrders = true): [NatKind, NatKind][] {
  const out = matrixPairs();
  if (bothOrders) for (const [a, b] of matrixPairs()) if (a !== b) out.push([b, a]);
  return out;
}

export interface TrialResult {
  connected: boolean;
  path: PathKind;
  /** Time to first byte: connection setup + first echo round trip, ms. */
  ttfbMs: number | null;
  /** Seconds from the first byte until the path became direct (null: never within the settle window). */
  directAfterMs: number | null;
  endpoint: string | null;
  natTypeA: string | null;
  natTypeB: string | null;
  error: string | null;
}

export interface MatrixCell {
  natA: NatKind;
  natB: NatKind;
  required: 'direct' | 'relay';
  trials: number;
  connectedPct: number;
  directPct: number;
  relayedPct: number;
  ttfbMedianMs: number | null;
  ttfbP95Ms: number | null;
  results: TrialResult[];
  /** Compat-transport rows (issue 13, netsim/compat-cells.ts): the cell's name; absent for the NAT-pair rows. */
  compat?: string;
  /** Row labels for A and B when a NAT kind alone does not say it (e.g. "port-restricted-cone, UDP blocked"). */
  labelA?: string;
  labelB?: string;
}

// --- processes ---------------------------------------------------------------------------------------------

const here = dirname(fileURLToPath(import.meta.url));
/** Project root from netsim/ (tsx) or dist/netsim/ (compiled). */
function projectRoot(): string {
  let d = here;
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(d, 'package.json'))) return d;
    d = dirname(d);
  }
  return resolve(here, '..');
}

/**
 * argv prefix for a bin: the compiled dist/src/bin/<name>.js when it exists (much faster start than tsx; the
 * netsim:matrix script builds first), else src/bin/<name>.ts through tsx. PILOT_MATRIX_TSX=1 forces tsx.
 */
export function binArgv(name: 'pilotctl' | 'pilot-daemon' | 'pilot-rendezvous'): string[] {
  const root = projectRoot();
  const js = join(root, 'dist', 'src', 'bin', `${name}.js`);
  if (process.env.PILOT_MATRIX_TSX !== '1' && existsSync(js)) return [process.execPath, js];
  return [process.execPath, '--import', 'tsx', join(root, 'src', 'bin', `${name}.ts`)];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Agent {
  host: string;
  home: string;
  nodeId: number;
}

/** A rendezvous and two daemons up in a pair topology, ready to talk (trusted both ways). */
export interface PairSession {
  topo: Topology;
  a: Agent;
  b: Agent;
  ctl(agent: Agent, args: string[], timeoutMs?: number): Promise<Result<Record<string, unknown>>>;
  /** The rendezvous's ready JSON line ({registry, beacon, compat?, fingerprint?}); {} when it was not JSON. */
  rendezvousReady: Record<string, unknown>;
  /** The last ~20 kB of a daemon's stderr (for error messages). */
  stderrOf(host: string): string;
}

export interface SessionOptions {
  logLevel?: string;
  /** More pilot-rendezvous flags (e.g. `--compat-addr :443`) and its environment on top of process.env. */
  rendezvousArgs?: string[];
  rendezvousEnv?: NodeJS.ProcessEnv;
  /**
   * More pilot-daemon flags per agent host name (e.g. `{ a: ['--proxy', url] }`), or a function of the
   * rendezvous's ready line (e.g. to pin its `fingerprint`).
   */
  daemonArgs?: Record<string, string[]> | ((rendezvousReady: Record<string, unknown>) => Record<string, string[]>);
  daemonEnv?: Record<string, NodeJS.ProcessEnv>;
  /** How long a daemon may take to register (default 20 s). */
  registerTimeoutMs?: number;
  /** Where the daemons' homes go (<dir>/<host>); the caller removes it after the topology is down. Default: a new temp dir. */
  dir?: string;
}

/** Start rendezvous + daemons inside a runPair context, handshake and approve. */
export async function startPairSession(ctx: PairContext, opts: SessionOptions = {}): Promise<Result<PairSession>> {
  const { topo, rendezvous } = ctx;
  const rip = rendezvous.ips[0]!;
  const rip2 = rendezvous.ips[1];
  const logLevel = opts.logLevel ?? process.env.PILOT_MATRIX_LOG_LEVEL ?? 'warn';
  const rdv = topo.spawn(rendezvous.name, [
    ...binArgv('pilot-rendezvous'),
    '--registry-addr', `${rip}:9000`,
    '--beacon-addr', `${rip}:9001`,
    ...(rip2 ? ['--beacon-addr2', `${rip2}:9001`] : []),
    '--log-level', logLevel,
    // No compat port unless a cell asks for one (rendezvousArgs come later; the last --compat-addr wins).
    '--compat-addr', 'off',
    ...(opts.rendezvousArgs ?? []),
  ], { env: { ...process.env, ...(opts.rendezvousEnv ?? {}) } });
  let rdvStderr = '';
  const logDir = process.env.PILOT_MATRIX_LOG_DIR;
  if (logDir) mkdirSync(logDir, { recursive: true });
  /** PILOT_MATRIX_LOG_DIR: every process's stderr also goes to <dir>/<host>.log (whole, appended). */
  const keepLog = (host: string, d: Buffer) => {
    if (logDir) appendFileSync(join(logDir, `${host}.log`), d);
  };
  rdv.stderr?.on('data', (d: Buffer) => {
    keepLog(rendezvous.name, d);
    if (rdvStderr.length < 20_000) rdvStderr += d.toString();
  });
  const readyLine = await new Promise<string | null>((res) => {
    let out = '';
    const t = setTimeout(() => res(null), 20_000);
    rdv.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) {
        clearTimeout(t);
        res(out.slice(0, out.indexOf('\n')));
      }
    });
    rdv.on('exit', () => res(null));
  });
  if (readyLine === null) return err('internal', `pilot-rendezvous did not start: ${rdvStderr.slice(-2000)}`);
  let rendezvousReady: Record<string, unknown> = {};
  try {
    rendezvousReady = JSON.parse(readyLine) as Record<string, unknown>;
  } catch {
    // an older rendezvous printed something else; the pair cells only need it to be up
  }

  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'pn-matrix-'));
  const mk = (host: string): Agent => ({ host, home: join(dir, host), nodeId: 0 });
  const a = mk(ctx.a.name);
  const b = mk(ctx.b.name);
  const stderr: Record<string, string> = {};
  const daemonArgs = typeof opts.daemonArgs === 'function' ? opts.daemonArgs(rendezvousReady) : (opts.daemonArgs ?? {});
  for (const ag of [a, b]) {
    mkdirSync(ag.home, { recursive: true, mode: 0o700 });
    const child = topo.spawn(
      ag.host,
      [
        ...binArgv('pilot-daemon'),
        '--home', ag.home,
        '--registry', `${rip}:9000`,
        '--beacon', `${rip}:9001`,
        '--listen', '0.0.0.0:0',
        '--hostname', `matrix-${ag.host}`,
        '--log-level', logLevel,
        ...(daemonArgs[ag.host] ?? []),
      ],
      // PILOT_BEACON2: the second beacon address for NAT classification (a daemon flag once integrated).
      { env: { ...process.env, PILOT_BEACON2: rip2 ? `${rip2}:9001` : '', ...(opts.daemonEnv?.[ag.host] ?? {}) } },
    );
    stderr[ag.host] = '';
    child.stderr?.on('data', (d: Buffer) => {
      keepLog(ag.host, d);
      if (stderr[ag.host]!.length < 20_000) stderr[ag.host] += d.toString();
    });
  }
  const ctl = async (agent: Agent, args: string[], timeoutMs = 30_000): Promise<Result<Record<string, unknown>>> => {
    const r = await topo.exec(agent.host, [...binArgv('pilotctl'), '--home', agent.home, '--json', ...args], { timeoutMs });
    if (!r.ok) return r;
    const text = r.value.stdout.trim() || r.value.stderr.trim();
    try {
      const doc = JSON.parse(text.split('\n').pop()!) as { status: string; data?: Record<string, unknown>; message?: string; code?: string };
      if (doc.status === 'ok') return ok(doc.data ?? {});
      return err('connection_failed', `pilotctl ${args[0]}: ${doc.code}: ${doc.message}`);
    } catch {
      return err('internal', `pilotctl ${args[0]}: unparseable output ${JSON.stringify(text.slice(0, 300))}`);
    }
  };
  const session: PairSession = { topo, a, b, ctl, rendezvousReady, stderrOf: (host) => stderr[host] ?? '' };
  // registered?
  for (const ag of [a, b]) {
    const deadline = Date.now() + (opts.registerTimeoutMs ?? 20_000);
    for (;;) {
      const info = await ctl(ag, ['info'], 10_000);
      if (info.ok && typeof info.value.node_id === 'number' && info.value.node_id > 0 && info.value.registry_connected) {
        ag.nodeId = info.value.node_id;
        break;
      }
      if (Date.now() > deadline) {
        return err('internal', `daemon ${ag.host} never registered: ${info.ok ? JSON.stringify(info.value) : info.error.message}; stderr: ${stderr[ag.host]!.slice(-2000)}`);
      }
      await sleep(200);
    }
  }
  const hs = await ctl(a, ['handshake', String(b.nodeId), 'netsim matrix']);
  if (!hs.ok) return hs;
  const deadline = Date.now() + 15_000;
  let isApproved = false;
  while (!isApproved && Date.now() < deadline) {
    const ap = await ctl(b, ['approve', String(a.nodeId)], 10_000);
    if (ap.ok) isApproved = true;
    else await sleep(300);
  }
  if (!isApproved) return err('timeout', 'approve never succeeded');
  // wait until a trusts b (pushed approval)
  while (Date.now() < deadline) {
    const t = await ctl(a, ['trust'], 10_000);
    if (t.ok && JSON.stringify(t.value).includes(`"node_id":${b.nodeId}`)) return ok(session);
    await sleep(300);
  }
  return err('timeout', 'a never learned that b approved');
}

/** Path and endpoint a reports for b. */
export async function peerPath(s: PairSession): Promise<{ path: PathKind; endpoint: string | null }> {
  const r = await s.ctl(s.a, ['peers'], 10_000);
  if (!r.ok) return { path: 'none', endpoint: null };
  const peers = (r.value.peers as { node_id: number; path: PathKind; endpoint: string | null }[]) ?? [];
  const p = peers.find((x) => x.node_id === s.b.nodeId);
  return p ? { path: p.path, endpoint: p.endpoint } : { path: 'none', endpoint: null };
}

export interface TrialOptions {
  link?: LinkSpec;
  /** How long to wait for a relayed connection to upgrade to direct. */
  settleMs?: number;
  timeoutMs?: number;
  /** Both agents behind one NAT of kind natA (the LAN shortcut), with or without hairpinning. */
  sameNat?: boolean;
  hairpin?: boolean;
}

/** One trial of one cell. */
export async function runTrial(natA: NatKind, natB: NatKind, opts: TrialOptions = {}): Promise<TrialResult> {
  const settleMs = opts.settleMs ?? Number(process.env.PILOT_MATRIX_SETTLE_MS ?? 20_000);
  const res: TrialResult = { connected: false, path: 'none', ttfbMs: null, directAfterMs: null, endpoint: null, natTypeA: null, natTypeB: null, error: null };
  const dir = mkdtempSync(join(tmpdir(), 'pn-matrix-'));
  const r = await runPair(
    natA,
    natB,
    async (ctx) => {
      const s = await startPairSession(ctx, { dir });
      if (!s.ok) {
        res.error = s.error.message;
        return;
      }
      const sess = s.value;
      const tr = await sess.ctl(sess.a, ['traceroute', String(sess.b.nodeId), '--timeout', '30s'], 40_000);
      if (!tr.ok) {
        res.error = tr.error.message;
        return;
      }
      res.connected = true;
      const samples = (tr.value.rtt_samples as { rtt_ms: number }[] | undefined) ?? [];
      const setup = typeof tr.value.setup_ms === 'number' ? tr.value.setup_ms : 0;
      res.ttfbMs = setup + (samples[0]?.rtt_ms ?? 0);
      const t0 = Date.now();
      for (;;) {
        const p = await peerPath(sess);
        res.path = p.path;
        res.endpoint = p.endpoint;
        if (p.path === 'direct') {
          res.directAfterMs = Date.now() - t0;
          break;
        }
        if (Date.now() - t0 > settleMs || requiredPath(natA, natB) === 'relay') break;
        await sleep(500);
      }
      for (const [ag, key] of [[sess.a, 'natTypeA'], [sess.b, 'natTypeB']] as const) {
        const info = await sess.ctl(ag, ['info'], 10_000);
        if (info.ok) res[key] = (info.value.nat_type as string | null) ?? null;
      }
    },
    {
      rendezvousExtraIps: 1,
      timeoutMs: opts.timeoutMs ?? 120_000,
      ...(opts.link ? { link: opts.link } : {}),
      ...(opts.sameNat ? { sameNat: true, hairpin: opts.hairpin ?? false } : {}),
    },
  );
  rmSync(dir, { recursive: true, force: true }); // the daemons are gone with the topology
  if (!r.ok && !res.error) res.error = r.error.message;
  return res;
}

function quantile(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

export function summarise(natA: NatKind, natB: NatKind, results: TrialResult[]): MatrixCell {
  const n = results.length || 1;
  const ttfb = results.filter((r) => r.connected && r.ttfbMs !== null).map((r) => r.ttfbMs!);
  const pct = (k: number) => Math.round((1000 * k) / n) / 10;
  return {
    natA,
    natB,
    required: requiredPath(natA, natB),
    trials: results.length,
    connectedPct: pct(results.filter((r) => r.connected).length),
    directPct: pct(results.filter((r) => r.connected && r.path === 'direct').length),
    relayedPct: pct(results.filter((r) => r.connected && r.path !== 'direct').length),
    ttfbMedianMs: quantile(ttfb, 0.5),
    ttfbP95Ms: quantile(ttfb, 0.95),
    results,
  };
}

export interface MatrixOptions {
  trials?: number;
  cells?: [NatKind, NatKind][];
  onCell?: (cell: MatrixCell) => void;
  link?: LinkSpec;
}

/** Run every cell `trials` times, one at a time (2-core CI: parallel topologies would skew the timings). */
export async function runMatrix(opts: MatrixOptions = {}): Promise<MatrixCell[]> {
  const trials = opts.trials ?? 1;
  const out: MatrixCell[] = [];
  for (const [a, b] of opts.cells ?? matrixCells()) {
    const results: TrialResult[] = [];
    for (let i = 0; i < trials; i++) results.push(await runTrial(a, b, opts.link ? { link: opts.link } : {}));
    const cell = summarise(a, b, results);
    out.push(cell);
    opts.onCell?.(cell);
  }
  return out;
}

// --- output ------------------------------------------------------------------------------------------------

const fmt = (x: number | null) => (x === null ? '–' : x.toFixed(0));

export function matrixMarkdown(cells: MatrixCell[]): string {
  const rows = cells.map(
    (c) =>
      `| ${c.labelA ?? c.natA} | ${c.labelB ?? c.natB} | ${c.required}${c.compat ? ` (${c.compat})` : ''} | ${c.connectedPct} | ${c.directPct} | ${c.relayedPct} | ${fmt(c.ttfbMedianMs)} | ${fmt(c.ttfbP95Ms)} |` +
      ` ${c.results.find((r) => r.error)?.error?.replace(/\|/g, '/').slice(0, 80) ?? ''} |`,
  );
  return [
    '| A (dials) | B | required | connected % | direct % | relayed % | TTFB median ms | TTFB p95 ms | first error |',
    '|---|---|---|---:|---:|---:|---:|---:|---|',
    ...rows,
  ].join('\n');
}

export function matrixJson(cells: MatrixCell[], meta: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...meta, cells }, null, 2);
}

const SHORT: Record<NatKind, string> = {
  none: 'public',
  'full-cone': 'full cone',
  'restricted-cone': 'restricted',
  'port-restricted-cone': 'port-restr.',
  'symmetric-sequential': 'sym. seq.',
  'symmetric-random': 'sym. random',
};

/** 6×6 heatmap: rows = A (dials), columns = B. Green = direct, amber = relayed, red = not connected. */
export function matrixSvg(cells: MatrixCell[]): string {
  const cw = 120;
  const ch = 56;
  const left = 110;
  const top = 60;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${left + cw * 6 + 20}" height="${top + ch * 6 + 40}" font-family="sans-serif" font-size="11">`);
  parts.push(`<text x="${left}" y="18" font-size="14" font-weight="bold">pilot NAT traversal matrix — rows dial columns</text>`);
  parts.push(`<text x="${left}" y="34" fill="#555">cell: connected % / direct % / median TTFB; colour: green direct, amber relayed, red failed</text>`);
  NAT_KINDS.forEach((k, i) => {
    parts.push(`<text x="${left + i * cw + cw / 2}" y="${top - 6}" text-anchor="middle">${SHORT[k]}</text>`);
    parts.push(`<text x="${left - 6}" y="${top + i * ch + ch / 2 + 4}" text-anchor="end">${SHORT[k]}</text>`);
  });
  NAT_KINDS.forEach((a, i) =>
    NAT_KINDS.forEach((b, j) => {
      const pairs = cells.filter((x) => !x.compat);
      const c = pairs.find((x) => x.natA === a && x.natB === b) ?? pairs.find((x) => x.natA === b && x.natB === a);
      const x = left + j * cw;
      const y = top + i * ch;
      if (!c) {
        parts.push(`<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="#eee"/>`);
        return;
      }
      const direct = c.directPct / 100;
      const connected = c.connectedPct / 100;
      // blend: red (0 connected) → amber (connected, relayed) → green (direct)
      const r = Math.round(220 - 180 * direct - 0 * connected);
      const g = Math.round(60 + 120 * connected + 20 * direct);
      const bl = Math.round(60 + 20 * direct);
      parts.push(`<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="rgb(${r},${g},${bl})"/>`);
      parts.push(`<text x="${x + cw / 2}" y="${y + 22}" text-anchor="middle" fill="#fff" font-weight="bold">${c.connectedPct}% / ${c.directPct}%</text>`);
      parts.push(`<text x="${x + cw / 2}" y="${y + 40}" text-anchor="middle" fill="#fff">${esc(c.ttfbMedianMs === null ? 'no TTFB' : `${c.ttfbMedianMs.toFixed(0)} ms`)}${c.required === 'relay' ? ' (relay ok)' : ''}</text>`);
    }),
  );
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** Write matrix.md / matrix.json / matrix.svg into `dir`. Returns the paths. */
export function writeMatrixResults(cells: MatrixCell[], dir: string, meta: Record<string, unknown> = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, 'matrix.md'), join(dir, 'matrix.json'), join(dir, 'matrix.svg')];
  writeFileSync(files[0]!, `# NAT traversal matrix\n\n${JSON.stringify(meta)}\n\n${matrixMarkdown(cells)}\n`);
  writeFileSync(files[1]!, matrixJson(cells, meta) + '\n');
  writeFileSync(files[2]!, matrixSvg(cells));
  return files;
}

export function defaultResultsDir(): string {
  return join(projectRoot(), 'netsim', 'results');
}

// --- 10 MB transfers ---------------------------------------------------------------------------------------

export interface TransferResult {
  isExact: boolean;
  bytes: number;
  elapsedMs: number;
  /** Paths a reported for b, sampled every 250 ms during the transfer. */
  pathSamples: PathKind[];
  error: string | null;
}

/** Send `bytes` of random data a → b with `pilotctl send-file` and compare b's sha256. */
export async function transferFile(s: PairSession, bytes = 10 * 1024 * 1024, timeoutMs = 180_000): Promise<TransferResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pn-xfer-'));
  const file = join(dir, 'payload.bin');
  const data = randomBytes(bytes);
  writeFileSync(file, data);
  const want = createHash('sha256').update(data).digest('hex');
  const samples: PathKind[] = [];
  let isDone = false;
  const sampler = (async () => {
    while (!isDone) {
      samples.push((await peerPath(s)).path);
      await sleep(250);
    }
  })();
  const t0 = Date.now();
  const r = await s.ctl(s.a, ['send-file', String(s.b.nodeId), file, '--timeout', `${Math.round(timeoutMs / 1000)}s`], timeoutMs + 10_000);
  const elapsedMs = Date.now() - t0;
  isDone = true;
  await sampler;
  // And the path the transfer ended on: a fast transfer can finish between two samples (10 MB in 345 ms
  // here), which left only the "none" taken before the dial.
  samples.push((await peerPath(s)).path);
  rmSync(dir, { recursive: true, force: true });
  if (!r.ok) return { isExact: false, bytes, elapsedMs, pathSamples: samples, error: r.error.message };
  const rec = await s.ctl(s.b, ['received'], 10_000);
  if (!rec.ok) return { isExact: false, bytes, elapsedMs, pathSamples: samples, error: rec.error.message };
  const files = (rec.value.files as { sha256?: string; size?: number; bytes?: number }[]) ?? [];
  const isExact = files.some((f) => f.sha256 === want && (f.size ?? f.bytes) === bytes);
  return { isExact, bytes, elapsedMs, pathSamples: samples, error: isExact ? null : `no received file with sha256 ${want}` };
}

// --- echo streams: byte-exact, across path or transport changes ---------------------------------------------

/** While `hold` says 'hold', echoStream keeps writing (paced); 'release' sends the final bytes; {error} gives up. */
export type EchoHold = 'hold' | 'release' | { error: string };

export interface EchoStreamOptions {
  /** Bytes sent after the hold is released (all of them when there is no hold). */
  bytes: number;
  /** Consulted before each chunk; absent = release at once. */
  hold?: () => EchoHold;
  /** While holding: wait this long between chunks (0 = as fast as flow control allows). Default 0. */
  holdPaceMs?: number;
  /** Default 64 KiB. */
  chunkBytes?: number;
  /** Give up waiting for the echo's end this long after the last write. Default 180 s. */
  echoTimeoutMs?: number;
  dialTimeoutMs?: number;
}

export interface EchoStreamResult {
  /** Sent and echoed back byte-exact (same length, same SHA-256), and the stream ended without error. */
  isExact: boolean;
  bytesSent: number;
  bytesEchoed: number;
  /** Bytes sent while holding (-1 when the hold never released). */
  bytesBeforeRelease: number;
  /** Dial start → first echoed byte, ms (null: nothing came back). */
  ttfbMs: number | null;
  elapsedMs: number;
  error: string | null;
}

/**
 * One stream from a's daemon to `peer`'s echo port (7): random chunks, each hashed on the way out and back. With
 * `hold`, the stream keeps writing until the hold releases (so a path or transport change happens mid-transfer by
 * construction, not by timing) and then carries `bytes` more. `live` is updated as bytes go and come. Talks to the
 * daemon over its control socket (a Unix socket works across network namespaces).
 */
export async function echoStream(
  home: string,
  peer: number,
  opts: EchoStreamOptions,
  live: { bytesSent: number; bytesEchoed: number } = { bytesSent: 0, bytesEchoed: 0 },
): Promise<EchoStreamResult> {
  const chunkBytes = opts.chunkBytes ?? 64 * 1024;
  const { PilotClient } = await import('../src/sdk/client.js');
  const res: EchoStreamResult = { isExact: false, bytesSent: 0, bytesEchoed: 0, bytesBeforeRelease: -1, ttfbMs: null, elapsedMs: 0, error: null };
  const t0 = Date.now();
  const c = await PilotClient.connect({ home });
  if (!c.ok) return { ...res, error: `connect to the daemon: ${c.error.message}` };
  const client = c.value;
  try {
    const d = await client.dial(String(peer), 7, { timeoutMs: opts.dialTimeoutMs ?? 30_000 });
    if (!d.ok) return { ...res, error: `dial ${peer}:7: ${d.error.message}` };
    const stream = d.value;
    const sent = createHash('sha256');
    const echoed = createHash('sha256');
    const echoDone = new Promise<string | null>((resolveEcho) => {
      stream.on('data', (b: Buffer) => {
        res.ttfbMs ??= Date.now() - t0;
        echoed.update(b);
        res.bytesEchoed += b.length;
        live.bytesEchoed = res.bytesEchoed;
      });
      stream.once('end', () => resolveEcho(null));
      stream.once('error', (e: Error) => resolveEcho(`stream: ${e.message}`));
    });
    let writeError: string | null = null;
    stream.once('error', (e: Error) => (writeError ??= e.message));
    const write = async (chunk: Buffer): Promise<void> => {
      sent.update(chunk);
      res.bytesSent += chunk.length;
      live.bytesSent = res.bytesSent;
      if (stream.write(chunk)) return;
      await new Promise<void>((r) => {
        const done = () => {
          stream.off('drain', done);
          stream.off('close', done);
          r();
        };
        stream.once('drain', done);
        stream.once('close', done);
      });
    };
    for (;;) {
      const h: EchoHold = opts.hold ? opts.hold() : 'release';
      if (h === 'release') break;
      if (typeof h === 'object') {
        writeError = h.error;
        break;
      }
      if (writeError !== null) break;
      await write(randomBytes(chunkBytes));
      if (opts.holdPaceMs) await sleep(opts.holdPaceMs);
    }
    if (writeError === null) {
      res.bytesBeforeRelease = res.bytesSent;
      for (let n = 0; n < opts.bytes && writeError === null; n += chunkBytes) await write(randomBytes(Math.min(chunkBytes, opts.bytes - n)));
    }
    stream.end();
    const echoTimeoutMs = opts.echoTimeoutMs ?? 180_000;
    // the timer is cleared: a pending one kept the test process alive for echoTimeoutMs after the last stream
    let echoTimer: NodeJS.Timeout | undefined;
    const echoError = await Promise.race([
      echoDone,
      new Promise<string>((r) => (echoTimer = setTimeout(() => r(`echo did not end within ${echoTimeoutMs} ms`), echoTimeoutMs))),
    ]);
    clearTimeout(echoTimer);
    stream.destroy();
    res.error = writeError ?? echoError;
    res.isExact = res.error === null && res.bytesEchoed === res.bytesSent && sent.digest('hex') === echoed.digest('hex');
    if (res.error === null && !res.isExact) res.error = `echo differs: sent ${res.bytesSent} B, echoed ${res.bytesEchoed} B`;
    return res;
  } finally {
    res.elapsedMs = Date.now() - t0;
    client.close();
  }
}

export interface UpgradeStreamResult {
  /** Sent and echoed back byte-exact (same length, same SHA-256). */
  isExact: boolean;
  bytesSent: number;
  bytesEchoed: number;
  /** Bytes sent before the path was seen to change from relay to direct. */
  bytesBeforeUpgrade: number;
  elapsedMs: number;
  /** a's path to b, sampled every `sampleMs` from before the dial until the stream ends. */
  pathSamples: PathKind[];
  error: string | null;
}

/**
 * A stream a → b's echo port that lasts until the path has changed relay → direct, and then carries `afterBytes`
 * more (echoStream with a hold): the sender keeps writing while only the relay has been seen, and only ends once
 * a direct sample follows a relay one. Gives up with an error when no upgrade is seen in `maxUpgradeMs`.
 */
/**
 * Drop (or stop dropping) UDP between the two agents' public addresses at the internet router, so the pair has
 * only the relay (the rendezvous stays reachable). Hosts without a NAT router use their own address.
 */
export async function blockDirect(topo: Topology, hostA: string, hostB: string, isBlocked: boolean): Promise<Result<void>> {
  const [a, b] = [topo.publicIpOf(hostA), topo.publicIpOf(hostB)];
  const rules = isBlocked
    ? `table ip pn_block
delete table ip pn_block
table ip pn_block {
  chain pair {
    type filter hook forward priority -10; policy accept;
    ip saddr ${a} ip daddr ${b} meta l4proto udp drop
    ip saddr ${b} ip daddr ${a} meta l4proto udp drop
  }
}
`
    : `table ip pn_block
delete table ip pn_block
`;
  const r = await topo.exec('inet', ['nft', '-f', '-'], { input: rules });
  if (!r.ok) return r;
  if (r.value.code !== 0) return err('internal', `nft in the internet router: ${r.value.stderr.trim()}`);
  return ok();
}

export async function streamAcrossUpgrade(
  s: PairSession,
  opts: {
    afterBytes?: number;
    maxUpgradeMs?: number;
    sampleMs?: number;
    chunkBytes?: number;
    /** Called once when this many relay samples were seen while the stream runs (e.g. to unblock the direct path). */
    onRelaySamples?: { count: number; fn: () => Promise<void> };
  } = {},
): Promise<UpgradeStreamResult> {
  const maxUpgradeMs = opts.maxUpgradeMs ?? 120_000;
  const sampleMs = opts.sampleMs ?? 250;
  const { PilotClient } = await import('../src/sdk/client.js');
  const pathSamples: PathKind[] = [];
  const c = await PilotClient.connect({ home: s.a.home });
  if (!c.ok) return { isExact: false, bytesSent: 0, bytesEchoed: 0, bytesBeforeUpgrade: -1, elapsedMs: 0, pathSamples, error: `connect to a's daemon: ${c.error.message}` };
  const client = c.value;
  const t0 = Date.now();
  let isUpgraded = false;
  let isDone = false;
  let isHookRun = false;
  const sampler = (async () => {
    while (!isDone) {
      const p = await client.peers();
      const path = p.ok ? (p.value.peers.find((x) => x.node_id === s.b.nodeId)?.path ?? 'none') : 'none';
      pathSamples.push(path);
      if (!isUpgraded && path === 'direct' && pathSamples.includes('relay')) isUpgraded = true;
      const hook = opts.onRelaySamples;
      if (hook && !isHookRun && pathSamples.filter((x) => x === 'relay').length >= hook.count) {
        isHookRun = true;
        await hook.fn();
      }
      await sleep(sampleMs);
    }
  })();
  try {
    const r = await echoStream(s.a.home, s.b.nodeId, {
      bytes: opts.afterBytes ?? 10 * 1024 * 1024,
      ...(opts.chunkBytes ? { chunkBytes: opts.chunkBytes } : {}),
      hold: () => {
        if (isUpgraded) return 'release';
        if (Date.now() - t0 > maxUpgradeMs) return { error: `no relay→direct upgrade within ${maxUpgradeMs} ms (paths ${pathSamples.join(',')})` };
        return 'hold';
      },
    });
    return {
      isExact: r.isExact,
      bytesSent: r.bytesSent,
      bytesEchoed: r.bytesEchoed,
      bytesBeforeUpgrade: r.bytesBeforeRelease,
      elapsedMs: Date.now() - t0,
      pathSamples,
      error: r.error,
    };
  } finally {
    isDone = true;
    await sampler;
    client.close();
  }
}
