// Builds a simulated internet out of Linux network namespaces:
//
//   public host k  pn-eth0 198.18.(100+k).10/24 (+ .11, .12 … extraIps)  ── pn-p<k>  198.18.(100+k).1 ┐
//   NAT router i   pn-wan  198.18.(i+1).1/24                              ── pn-n<i>  198.18.(i+1).254 ├ internet router
//                  pn-br   192.168.(i+1).1/24 (bridge of pn-h<j>)                                       ┘ (ip_forward)
//   LAN host j     pn-eth0 192.168.(i+1).(j+2)/24 ── pn-h<j> on NAT i's bridge
//
// Namespaces are `pn-<pid>x<n>-<host>`; a lock file /run/pn-netsim/<pid>x<n>.json names the owner, so a later
// run reaps what a killed one left (owner PID dead). Teardown runs on success, failure, timeout, SIGINT,
// SIGTERM and process exit. Everything here does I/O (root only).
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { err, ok, seedFromEnv, type Result } from '../src/core/index.js';
import { run, runOk, runSyncQuiet, netsimUnavailableReason, type RunOptions, type RunResult } from './exec.js';
import { lossRuleset, needsUserspaceLink, startUserspaceLink, tbfArgs, type LinkSpec } from './link.js';
import { egressRuleset, natRuleset, natSysctls, parseIpv4Endpoint, type NatOptions } from './nat.js';

export interface PublicHostSpec {
  name: string;
  /** Impairment of the host's link to the internet router. */
  link?: LinkSpec;
  /** Extra public addresses on the same interface (.11, .12, …), e.g. for a STUN-like reflector. */
  extraIps?: number;
}

export interface LanHostSpec {
  name: string;
  /** Impairment of the host's link to its NAT router. */
  link?: LinkSpec;
}

export interface NatSpec extends NatOptions {
  /** Name of the router namespace (exec/spawn there to inspect conntrack or nft). */
  name: string;
  hosts: LanHostSpec[];
  /** Impairment of the router's WAN link to the internet router. */
  wanLink?: LinkSpec;
}

export interface TopologySpec {
  publicHosts?: PublicHostSpec[];
  nats?: NatSpec[];
  /** Leave it up after this process exits (CLI `up`); only `netsim down` / teardown() removes it. */
  persist?: boolean;
  /** Seed for link jitter/reordering; default PILOT_SEED or random. */
  seed?: number;
}

export type HostRole = 'internet' | 'public' | 'nat' | 'lan';

export interface HostInfo {
  name: string;
  role: HostRole;
  /** Network namespace name (for `ip netns exec`). */
  ns: string;
  /** Primary address: public hosts their public IP, NAT routers their WAN IP, LAN hosts their private IP. */
  ip: string;
  /** All addresses of a public host (primary first). */
  ips: string[];
  /** LAN hosts: their NAT router's name; NAT routers: their own name. */
  nat?: string;
  /** The public address this host's traffic leaves with (its own for public hosts, the NAT's WAN IP otherwise). */
  publicIp: string;
  /** NAT routers: LAN-side address. */
  lanIp?: string;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  stdio?: StdioOptions;
  cwd?: string;
}

const LOCK_DIR = '/run/pn-netsim';
/** Interface names on every NAT router (each lives in its own namespace, so they repeat across routers). */
export const NAT_WAN_IF = 'pn-wan';
export const NAT_LAN_IF = 'pn-br';
const NS_RE = /^pn-(\d+)x(\d+)-/;
const HOST_RE = /^[a-z0-9][a-z0-9-]{0,23}$/;

interface LockFile {
  pid: number;
  startTime: string;
  id: string;
  persist: boolean;
  namespaces: string[];
  linkPids: number[];
}

let topoCounter = 0;
const live = new Set<Topology>();

/** A built topology. Use `withTopology` or try/finally with `teardown()`. */
export class Topology {
  readonly id: string;
  readonly hosts: ReadonlyMap<string, HostInfo>;
  /** Wall time buildTopology took, milliseconds. */
  buildMs = 0;
  private readonly children = new Set<ChildProcess>();
  private readonly linkPids: number[] = [];
  private readonly lockPath: string;
  private isTornDown = false;
  private readonly persist: boolean;

  /** @internal use buildTopology */
  constructor(id: string, hosts: Map<string, HostInfo>, persist: boolean) {
    this.id = id;
    this.hosts = hosts;
    this.persist = persist;
    this.lockPath = `${LOCK_DIR}/${id}.json`;
  }

  get namespaces(): string[] {
    return [...this.hosts.values()].map((h) => h.ns);
  }

  /** Host info; throws on an unknown name (a bug in the caller's spec). */
  host(name: string): HostInfo {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`netsim: no host ${JSON.stringify(name)} in topology ${this.id}`);
    return h;
  }

  ipOf(name: string): string {
    return this.host(name).ip;
  }

  publicIpOf(name: string): string {
    return this.host(name).publicIp;
  }

  nsOf(name: string): string {
    return this.host(name).ns;
  }

  /** Run argv inside `host`'s namespace to completion (non-zero exit is still ok; err = cannot start). */
  exec(host: string, argv: readonly string[], opts: RunOptions = {}): Promise<Result<RunResult>> {
    return run(['ip', 'netns', 'exec', this.nsOf(host), ...argv], opts);
  }

  /**
   * Start argv inside `host`'s namespace (stdio piped by default). The process is its own process group and
   * is killed (group-wide) at teardown if still running.
   */
  spawn(host: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.nsOf(host), ...argv], {
      stdio: opts.stdio ?? ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      detached: true,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    child.on('error', () => this.children.delete(child));
    return child;
  }

  /** Human-readable host table. */
  describe(): string {
    const rows = [...this.hosts.values()].filter((h) => h.role !== 'internet');
    const w = Math.max(4, ...rows.map((h) => h.name.length));
    const lines = rows.map((h) => {
      const extra =
        h.role === 'nat'
          ? `lan ${h.lanIp}`
          : h.role === 'lan'
            ? `behind ${h.nat} (public ${h.publicIp})`
            : h.ips.length > 1
              ? `also ${h.ips.slice(1).join(', ')}`
              : '';
      return `${h.name.padEnd(w)}  ${h.role.padEnd(6)}  ${h.ip.padEnd(15)}  ${h.ns.padEnd(22)}  ${extra}`;
    });
    return [`${'host'.padEnd(w)}  role    ip               netns                   notes`, ...lines].join('\n');
  }

  /** Kill every process started here, delete the namespaces and the lock. Idempotent; never rejects. */
  async teardown(): Promise<void> {
    if (this.isTornDown) return;
    this.isTornDown = true;
    live.delete(this);
    for (const c of this.children) killGroup(c.pid, 'SIGTERM');
    if (this.children.size > 0) {
      await Promise.race([
        Promise.all([...this.children].map((c) => new Promise((r) => c.once('exit', r)))),
        sleep(500),
      ]);
      for (const c of this.children) killGroup(c.pid, 'SIGKILL');
    }
    await removeNamespaces(this.namespaces, this.linkPids);
    rmSync(this.lockPath, { force: true });
    if (live.size === 0) uninstallHandlers();
  }

  /** @internal synchronous last-chance cleanup from process 'exit'. */
  teardownSync(): void {
    if (this.isTornDown || this.persist) return;
    this.isTornDown = true;
    for (const c of this.children) killGroup(c.pid, 'SIGKILL');
    removeNamespacesSync(this.namespaces, this.linkPids);
    rmSync(this.lockPath, { force: true });
  }

  /** @internal */
  addLinkPid(pid: number): void {
    this.linkPids.push(pid);
  }

  /** @internal */
  writeLock(): void {
    const lock: LockFile = {
      pid: process.pid,
      startTime: procStartTime(process.pid) ?? '',
      id: this.id,
      persist: this.persist,
      namespaces: this.namespaces,
      linkPids: this.linkPids,
    };
    mkdirSync(LOCK_DIR, { recursive: true });
    writeFileSync(this.lockPath, JSON.stringify(lock));
  }
}

/**
 * Build a topology. Also reaps stale `pn-*` namespaces whose owner died. Returns err('invalid_argument') for
 * a bad spec, err('internal') when `ip`/`nft` fail (partial state is torn down first).
 */
export async function buildTopology(spec: TopologySpec): Promise<Result<Topology>> {
  const t0 = performance.now();
  const why = netsimUnavailableReason();
  if (why) return err('internal', why);
  const planned = plan(spec);
  if (!planned.ok) return planned;
  const { hosts, links, configs } = planned.value;
  await reapStale();

  const id = `${process.pid}x${topoCounter++}`;
  const prefix = `pn-${id}-`;
  for (const h of hosts.values()) h.ns = prefix + h.ns;
  for (const l of links) {
    l.lowerNs = prefix + l.lowerNs;
    l.upperNs = prefix + l.upperNs;
  }
  const topo = new Topology(id, hosts, spec.persist ?? false);
  topo.writeLock(); // before any namespace exists, so a concurrent reaper never sees an orphan
  live.add(topo);
  installHandlers();

  const fail = async (r: Result<unknown>): Promise<Result<Topology>> => {
    await topo.teardown();
    return r.ok ? err('internal', 'unreachable') : (r as Result<Topology>);
  };

  const nsAdd = await runOk(['ip', '-batch', '-'], {
    input: [...hosts.values()].map((h) => `netns add ${h.ns}`).join('\n') + '\n',
  });
  if (!nsAdd.ok) return fail(nsAdd);

  const vethLines = links
    .filter((l) => !needsUserspaceLink(l.spec))
    .map((l) => `link add name ${l.lowerIf} netns ${l.lowerNs} type veth peer name ${l.upperIf} netns ${l.upperNs}`);
  const seed = spec.seed ?? seedFromEnv();
  const tapLinks = links.filter((l) => needsUserspaceLink(l.spec));
  const [vethR, ...tapRs] = await Promise.all([
    vethLines.length > 0 ? runOk(['ip', '-batch', '-'], { input: vethLines.join('\n') + '\n' }) : Promise.resolve(ok()),
    ...tapLinks.map((l, i) =>
      startUserspaceLink(l.lowerNs, l.lowerIf, l.upperNs, l.upperIf, l.spec!, seed + i, spec.persist ?? false),
    ),
  ]);
  for (const r of tapRs) if (r.ok) topo.addLinkPid(r.value.pid);
  topo.writeLock();
  if (!vethR!.ok) return fail(vethR!);
  for (const r of tapRs) if (!r.ok) return fail(r);

  const scripts = [...hosts.values()].map((h) => {
    const c = configs.get(h.name)!;
    return runOk(['ip', 'netns', 'exec', h.ns, 'sh', '-e'], { input: c.script() });
  });
  for (const r of await Promise.all(scripts)) if (!r.ok) return fail(r);
  topo.buildMs = performance.now() - t0;
  return ok(topo);
}

export interface WithTopologyOptions {
  /** Tear down and return err('timeout') when fn has not settled by then. */
  timeoutMs?: number;
}

/**
 * Build, run fn, always tear down. fn's thrown errors become err('internal'); a timeout becomes err('timeout').
 */
export async function withTopology<T>(
  spec: TopologySpec,
  fn: (topo: Topology) => Promise<T>,
  opts: WithTopologyOptions = {},
): Promise<Result<T>> {
  const built = await buildTopology(spec);
  if (!built.ok) return built;
  const topo = built.value;
  let timer: NodeJS.Timeout | undefined;
  try {
    const work = fn(topo).then(
      (v) => ok(v),
      (cause: unknown) =>
        err<T>('internal', `netsim scenario failed: ${cause instanceof Error ? cause.message : String(cause)}`, {
          cause,
        }),
    );
    if (opts.timeoutMs === undefined) return await work;
    const timeout = new Promise<Result<T>>((resolve) => {
      timer = setTimeout(() => resolve(err('timeout', `netsim scenario exceeded ${opts.timeoutMs} ms`)), opts.timeoutMs);
    });
    return await Promise.race([work, timeout]);
  } finally {
    if (timer) clearTimeout(timer);
    await topo.teardown();
  }
}

// ---------------------------------------------------------------------------------------------------------
// planning: names and addresses, and one shell script per namespace

interface PlannedLink {
  lowerNs: string;
  lowerIf: string;
  upperNs: string;
  upperIf: string;
  spec: LinkSpec | undefined;
}

class NsConfig {
  ipLines: string[] = ['link set lo up'];
  sysctls: Record<string, string> = {
    'net.ipv4.conf.all.rp_filter': '0',
    'net.ipv4.conf.default.rp_filter': '0',
    'net.ipv4.conf.all.accept_redirects': '0',
    // hairpinned packets leave the LAN bridge they came in on; a redirect would send the host around the NAT
    'net.ipv4.conf.all.send_redirects': '0',
    'net.ipv4.conf.default.send_redirects': '0',
  };
  lateSysctls: Record<string, string> = {};
  nft: string[] = [];
  tc: string[][] = [];
  script(): string {
    const out: string[] = [];
    out.push(`ip -batch - <<'PN_EOF'\n${this.ipLines.join('\n')}\nPN_EOF`);
    for (const [k, v] of Object.entries(this.sysctls)) out.push(`sysctl -qw ${k}=${v}`);
    if (this.nft.length > 0) out.push(`nft -f - <<'PN_EOF'\n${this.nft.join('\n')}\nPN_EOF`);
    // conntrack sysctls appear in a namespace only once conntrack is in use, i.e. after the nft rules
    for (const [k, v] of Object.entries(this.lateSysctls)) out.push(`sysctl -qw ${k}=${v}`);
    for (const t of this.tc) out.push(t.join(' '));
    return out.join('\n') + '\n';
  }
}

interface Plan {
  hosts: Map<string, HostInfo>;
  links: PlannedLink[];
  configs: Map<string, NsConfig>;
}

function plan(spec: TopologySpec): Result<Plan> {
  const pubs = spec.publicHosts ?? [];
  const nats = spec.nats ?? [];
  if (pubs.length > 100) return err('invalid_argument', 'at most 100 public hosts');
  if (nats.length > 99) return err('invalid_argument', 'at most 99 NAT routers');
  const hosts = new Map<string, HostInfo>();
  const configs = new Map<string, NsConfig>();
  const links: PlannedLink[] = [];
  const add = (h: HostInfo): Result<void> => {
    if (!HOST_RE.test(h.name)) return err('invalid_argument', `bad host name ${JSON.stringify(h.name)} (a-z0-9-, ≤ 24)`);
    if (hosts.has(h.name)) return err('invalid_argument', `duplicate host name ${JSON.stringify(h.name)}`);
    hosts.set(h.name, h);
    configs.set(h.name, new NsConfig());
    return ok();
  };
  const inetName = 'inet';
  let r = add({ name: inetName, role: 'internet', ns: inetName, ip: '198.18.0.1', ips: ['198.18.0.1'], publicIp: '198.18.0.1' });
  if (!r.ok) return r;
  const inet = configs.get(inetName)!;
  inet.sysctls['net.ipv4.ip_forward'] = '1';

  const attach = (cfg: NsConfig, ifname: string, link: LinkSpec | undefined, lower: boolean) => {
    cfg.ipLines.push(`link set ${ifname} up`);
    if (link?.rateKbit) cfg.tc.push(tbfArgs(ifname, link.rateKbit));
    if (lower && link?.lossPct) cfg.nft.push(lossRuleset(ifname, link.lossPct));
  };

  pubs.forEach((p, k) => {
    if (!r.ok) return;
    const net = `198.18.${100 + k}`;
    const ips = [`${net}.10`];
    for (let e = 0; e < (p.extraIps ?? 0); e++) ips.push(`${net}.${11 + e}`);
    r = add({ name: p.name, role: 'public', ns: p.name, ip: ips[0]!, ips, publicIp: ips[0]! });
    if (!r.ok) return;
    const cfg = configs.get(p.name)!;
    links.push({ lowerNs: p.name, lowerIf: 'pn-eth0', upperNs: inetName, upperIf: `pn-p${k}`, spec: p.link });
    attach(cfg, 'pn-eth0', p.link, true);
    for (const ip of ips) cfg.ipLines.push(`addr add ${ip}/24 dev pn-eth0`);
    cfg.ipLines.push(`route add default via ${net}.1`);
    attach(inet, `pn-p${k}`, p.link, false);
    inet.ipLines.push(`addr add ${net}.1/24 dev pn-p${k}`);
  });
  if (!r.ok) return r;

  nats.forEach((n, i) => {
    if (!r.ok) return;
    if (n.kind === 'none') {
      r = err('invalid_argument', `NAT ${n.name}: kind 'none' means a public host; put it in publicHosts`);
      return;
    }
    if (n.hosts.length > 200) {
      r = err('invalid_argument', `NAT ${n.name}: at most 200 LAN hosts`);
      return;
    }
    const wanNet = `198.18.${i + 1}`;
    const lanNet = `192.168.${i + 1}`;
    const pub = `${wanNet}.1`;
    r = add({ name: n.name, role: 'nat', ns: n.name, ip: pub, ips: [pub], nat: n.name, publicIp: pub, lanIp: `${lanNet}.1` });
    if (!r.ok) return;
    const cfg = configs.get(n.name)!;
    cfg.sysctls['net.ipv4.ip_forward'] = '1';
    links.push({ lowerNs: n.name, lowerIf: 'pn-wan', upperNs: inetName, upperIf: `pn-n${i}`, spec: n.wanLink });
    attach(cfg, 'pn-wan', n.wanLink, true);
    cfg.ipLines.push(`addr add ${pub}/24 dev pn-wan`, `route add default via ${wanNet}.254`);
    cfg.ipLines.push('link add pn-br type bridge', 'link set pn-br up', `addr add ${lanNet}.1/24 dev pn-br`);
    attach(inet, `pn-n${i}`, n.wanLink, false);
    inet.ipLines.push(`addr add ${wanNet}.254/24 dev pn-n${i}`);
    const ruleParams = { wanIf: NAT_WAN_IF, lanIf: NAT_LAN_IF, publicIp: pub, lanCidr: `${lanNet}.0/24` };
    let proxyEndpoint: string | null = null;
    if (n.proxyOnly !== undefined) {
      const i = n.proxyOnly.lastIndexOf(':');
      const host = hosts.get(n.proxyOnly.slice(0, i));
      const resolved = host?.role === 'public' ? `${host.ip}${n.proxyOnly.slice(i)}` : n.proxyOnly;
      if (!parseIpv4Endpoint(resolved)) {
        r = err('invalid_argument', `NAT ${n.name}: proxyOnly ${JSON.stringify(n.proxyOnly)} is not IPv4:port or <public host>:port`);
        return;
      }
      proxyEndpoint = resolved;
    }
    cfg.nft.push(natRuleset(n, ruleParams));
    cfg.nft.push(egressRuleset(n, ruleParams, proxyEndpoint));
    Object.assign(cfg.lateSysctls, natSysctls(n));
    n.hosts.forEach((h, j) => {
      if (!r.ok) return;
      const ip = `${lanNet}.${j + 2}`;
      r = add({ name: h.name, role: 'lan', ns: h.name, ip, ips: [ip], nat: n.name, publicIp: pub });
      if (!r.ok) return;
      const hc = configs.get(h.name)!;
      links.push({ lowerNs: h.name, lowerIf: 'pn-eth0', upperNs: n.name, upperIf: `pn-h${j}`, spec: h.link });
      attach(hc, 'pn-eth0', h.link, true);
      hc.ipLines.push(`addr add ${ip}/24 dev pn-eth0`, `route add default via ${lanNet}.1`);
      attach(cfg, `pn-h${j}`, h.link, false);
      cfg.ipLines.push(`link set pn-h${j} master pn-br`);
    });
  });
  if (!r.ok) return r;
  return ok({ hosts, links, configs });
}

// ---------------------------------------------------------------------------------------------------------
// cleanup: namespaces, processes inside them, stale runs, signals

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Start time (jiffies since boot) from /proc/<pid>/stat, to tell a live owner from a reused PID. */
function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function isAlive(pid: number, startTime?: string): boolean {
  const st = procStartTime(pid);
  if (st === null) return false;
  return startTime === undefined || startTime === '' || st === startTime;
}

/** pn-link processes are only killed when /proc says they are ours (PIDs in stale locks may be reused). */
function isLinkProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pn-link');
  } catch {
    return false;
  }
}

async function removeNamespaces(namespaces: readonly string[], linkPids: readonly number[]): Promise<void> {
  for (const pid of linkPids) if (isLinkProcess(pid)) killPid(pid);
  const existing = new Set(await listNetns());
  const mine = namespaces.filter((n) => existing.has(n));
  const pidLists = await Promise.all(mine.map((ns) => run(['ip', 'netns', 'pids', ns], { timeoutMs: 5000 })));
  for (const r of pidLists) if (r.ok) for (const p of r.value.stdout.split(/\s+/).filter(Boolean)) killPid(Number(p));
  if (mine.length > 0) {
    await run(['ip', '-force', '-batch', '-'], { input: mine.map((n) => `netns del ${n}`).join('\n') + '\n' });
  }
}

function removeNamespacesSync(namespaces: readonly string[], linkPids: readonly number[]): void {
  for (const pid of linkPids) if (isLinkProcess(pid)) killPid(pid);
  for (const ns of namespaces) {
    for (const p of runSyncQuiet(['ip', 'netns', 'pids', ns]).split(/\s+/).filter(Boolean)) killPid(Number(p));
    runSyncQuiet(['ip', 'netns', 'del', ns]);
  }
}

async function listNetns(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { timeoutMs: 5000 });
  if (!r.ok) return [];
  return r.value.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

function readLocks(): LockFile[] {
  let names: string[];
  try {
    names = readdirSync(LOCK_DIR).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const locks: LockFile[] = [];
  for (const n of names) {
    try {
      locks.push(JSON.parse(readFileSync(`${LOCK_DIR}/${n}`, 'utf8')) as LockFile);
    } catch {
      rmSync(`${LOCK_DIR}/${n}`, { force: true }); // half-written by a killed run
    }
  }
  return locks;
}

/**
 * Remove what killed runs left: locks whose owner is dead (unless `persist`), and `pn-<pid>x<n>-*`
 * namespaces with no lock whose PID is dead. Returns the namespaces removed.
 */
export async function reapStale(): Promise<string[]> {
  const all = await listNetns();
  const locks = readLocks();
  const locked = new Set(locks.map((l) => l.id));
  const doomed: string[] = [];
  const doomedLinks: number[] = [];
  for (const l of locks) {
    if (l.persist || isAlive(l.pid, l.startTime)) continue;
    doomed.push(...all.filter((n) => n.startsWith(`pn-${l.id}-`)));
    doomedLinks.push(...l.linkPids);
    rmSync(`${LOCK_DIR}/${l.id}.json`, { force: true });
  }
  for (const n of all) {
    const m = NS_RE.exec(n);
    if (!m || locked.has(`${m[1]}x${m[2]}`)) continue;
    if (!isAlive(Number(m[1]))) doomed.push(n);
  }
  if (doomed.length > 0 || doomedLinks.length > 0) await removeNamespaces(doomed, doomedLinks);
  return doomed;
}

/**
 * `netsim down`: remove every `pn-*` namespace (also other runs' and persistent ones), their processes,
 * pn-link processes named in locks, stray root-namespace `pn-*` links, and the locks. Returns namespaces removed.
 */
export async function teardownAll(): Promise<string[]> {
  const ns = (await listNetns()).filter((n) => n.startsWith('pn-'));
  const locks = readLocks();
  await removeNamespaces(
    ns,
    locks.flatMap((l) => l.linkPids),
  );
  for (const l of locks) rmSync(`${LOCK_DIR}/${l.id}.json`, { force: true });
  const links = await run(['ip', '-o', 'link', 'show'], { timeoutMs: 5000 });
  if (links.ok) {
    const names = links.value.stdout
      .split('\n')
      .map((l) => l.split(': ')[1]?.split('@')[0])
      .filter((n): n is string => !!n && n.startsWith('pn-'));
    for (const n of names) await run(['ip', 'link', 'del', n], { timeoutMs: 5000 });
  }
  return ns;
}

let handlersInstalled = false;
const onSignal = (sig: NodeJS.Signals): void => {
  const all = [...live];
  void Promise.all(all.map((t) => t.teardown())).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
};
const onExit = (): void => {
  for (const t of live) t.teardownSync();
};

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);
}

function uninstallHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('exit', onExit);
}
