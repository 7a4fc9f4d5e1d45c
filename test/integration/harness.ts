// Shared by the integration tests: a rendezvous and N daemons as real processes on loopback (random ports,
// temporary homes), pilotctl run as a real process with or without --json, and cleanup that kills exactly the
// processes this file started — from `after` hooks, and from an exit hook as a last resort.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binCommand } from '../helpers/bins.js';
import { PilotClient } from '../../src/sdk/client.js';

/** Every pid this process started (rendezvous, daemons); killed on exit if a test forgot. */
const livePids = new Set<number>();
let isExitHookInstalled = false;
function trackPid(pid: number): void {
  livePids.add(pid);
  if (isExitHookInstalled) return;
  isExitHookInstalled = true;
  process.on('exit', () => {
    for (const p of livePids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/** True while `pid` runs; an exited daemon that its (re)parent has not reaped yet (a zombie) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `fn` until it returns a non-null value; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` + (lastErr ? `: ${String(lastErr)}` : ''));
    await sleep(intervalMs);
  }
}

// --- pilotctl as a process -----------------------------------------------------------------------------------

export interface CliRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  stdin?: string | Buffer;
  /** Leave stdin open (a pipe with nothing written) instead of /dev/null. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill pilotctl (SIGKILL) after this long; default 60 s. */
  killAfterMs?: number;
}

/** Environment without the caller's PILOT_* settings, so tests never reach a real ~/.pilot. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PILOT_')) env[k] = v;
  return { ...env, ...extra };
}

export interface RunningCli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  done: Promise<CliRun>;
}

/** Start `pilotctl ...args` and return at once (for recv/listen/subscribe running beside other commands). */
export function spawnPilotctl(args: string[], opts: RunOptions = {}): RunningCli {
  let out = '';
  let errText = '';
  let child!: ChildProcess;
  const done = runPilotctl(args, opts, (c) => {
    child = c;
    c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (errText += b.toString()));
  });
  return { child, stdout: () => out, stderr: () => errText, done };
}

/**
 * Unix-socket connections `pid` holds (Linux /proc). A waiting `pilotctl recv` holds two — its control
 * connection and the pending `accept` — only once its listener is registered: the readiness signal for --json
 * mode, which prints nothing until it ends.
 */
export function unixSocketCount(pid: number): number {
  try {
    const fds = readdirSync(`/proc/${pid}/fd`);
    let n = 0;
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
      } catch {
        /* closed meanwhile */
      }
    }
    return n;
  } catch {
    return 0;
  }
}

/**
 * Wait until a spawned `pilotctl recv --json` has registered its listener: it then holds its stdio pipes plus
 * two daemon connections, steadily (tsx's esbuild pipes come and go during startup, hence the steady window).
 */
export async function waitRecvReady(cli: RunningCli, timeoutMs = 20_000): Promise<void> {
  const pid = cli.child.pid!;
  let steadySince = 0;
  await waitFor('pilotctl recv to register its listener', () => {
    if (cli.child.exitCode !== null) throw new Error(`recv exited: ${cli.stderr()}`);
    if (unixSocketCount(pid) < 4) {
      steadySince = 0;
      return false;
    }
    if (steadySince === 0) steadySince = Date.now();
    return Date.now() - steadySince >= 400;
  }, timeoutMs, 25);
}

/** Run `pilotctl ...args` to completion. */
export function runPilotctl(args: string[], opts: RunOptions = {}, onSpawn?: (c: ChildProcess) => void): Promise<CliRun> {
  const [exe, ...pre] = binCommand('pilotctl');
  const t0 = performance.now();
  const child = spawn(exe!, [...pre, ...args], {
    stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: opts.env ?? cleanEnv(),
    cwd: opts.cwd,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  onSpawn?.(child);
  if (opts.stdin !== undefined) {
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.stdin);
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 60_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

export interface JsonRun extends CliRun {
  /** `data` of a `{"status":"ok"}` envelope on stdout. */
  data: any;
  /** The `{"status":"error",…}` envelope from stderr. */
  error: { status: string; code: string; message: string; hint?: string; detail?: any } | null;
}

/** The last line of `text` that parses as JSON, or null. */
export function lastJson(text: string): any {
  const lines = text.trim().split('\n').reverse();
  for (const l of lines) {
    try {
      return JSON.parse(l);
    } catch {
      /* not JSON */
    }
  }
  return null;
}

export async function runJson(args: string[], opts: RunOptions = {}): Promise<JsonRun> {
  const r = await runPilotctl([...args, '--json'], opts);
  const outDoc = lastJson(r.stdout);
  const errDoc = lastJson(r.stderr);
  return {
    ...r,
    data: outDoc && outDoc.status === 'ok' ? outDoc.data : null,
    error: errDoc && errDoc.status === 'error' ? errDoc : null,
  };
}

/** Summary for assertion messages. */
export function explain(r: CliRun): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
}

// --- rendezvous ----------------------------------------------------------------------------------------------

export interface Rendezvous {
  child: ChildProcess;
  registry: string;
  beacon: string;
  /** The compat TLS port and its certificate's fingerprint (with `compatAddr`). */
  compat?: string;
  fingerprint?: string;
  /** With --dashboard-addr in `extraArgs`. */
  dashboard?: string;
  stderr(): string;
}

/**
 * Start pilot-rendezvous; resolves on its ready line. `registryAddr`/`beaconAddr` default to 127.0.0.1:0; the compat
 * TLS port is off unless `compatAddr` names one (its default, :443, is no place for tests).
 */
export function startRendezvous(opts: { store?: string; registryAddr?: string; beaconAddr?: string; compatAddr?: string; extraArgs?: string[] } = {}): Promise<Rendezvous> {
  const [exe, ...pre] = binCommand('pilot-rendezvous');
  const args = [
    ...pre,
    '--registry-addr',
    opts.registryAddr ?? '127.0.0.1:0',
    '--beacon-addr',
    opts.beaconAddr ?? '127.0.0.1:0',
    '--log-level',
    'warn',
    '--compat-addr',
    opts.compatAddr ?? 'off',
    ...(opts.store ? ['--store', opts.store] : []),
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(exe!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  if (child.pid !== undefined) trackPid(child.pid);
  let out = '';
  let errText = '';
  child.stderr!.on('data', (d: Buffer) => (errText = (errText + d.toString()).slice(-8000)));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('pilot-rendezvous printed no ready line; stderr: ' + errText));
    }, 20_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(t);
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      const ready = JSON.parse(out.slice(0, nl)) as { registry: string; beacon: string; compat?: string; fingerprint?: string; dashboard?: string };
      resolve({ child, ...ready, stderr: () => errText });
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(t);
      if (child.pid !== undefined) livePids.delete(child.pid);
      reject(new Error(`pilot-rendezvous exited ${code} before ready; stderr: ${errText}`));
    });
  });
}

/** How `child` ended (at once when it already has). */
export function exitStatus(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

// --- a cluster of daemons ------------------------------------------------------------------------------------

export interface NodeProc {
  name: string;
  home: string;
  nodeId: number;
  address: string;
  pid: number;
  /** Extra flags it was started with (reused by restart). */
  flags: string[];
}

export interface ClusterOptions {
  /** Start the rendezvous with `--store <root>/registry.json`. */
  store?: boolean;
  /** Flags added to every `daemon start`. */
  daemonFlags?: string[];
  /** Use this registry + beacon (e.g. an original rendezvous) instead of starting ours. */
  external?: { registry: string; beacon: string };
  /** More pilot-rendezvous flags (e.g. --dashboard-addr). */
  rendezvousArgs?: string[];
}

export class Cluster {
  readonly root: string;
  rendezvous: Rendezvous | null = null;
  registry = '';
  beacon = '';
  readonly nodes: NodeProc[] = [];
  private readonly clients: PilotClient[] = [];

  private constructor(
    readonly label: string,
    private readonly opts: ClusterOptions,
  ) {
    // Short prefix: Unix socket paths must stay under 108 bytes.
    this.root = mkdtempSync(join(tmpdir(), `pi-${label}-`));
  }

  /** A rendezvous plus one daemon per name (started one after another, so node ids follow `names`). */
  static async start(label: string, names: string[], opts: ClusterOptions = {}): Promise<Cluster> {
    const c = new Cluster(label, opts);
    try {
      if (opts.external) {
        c.registry = opts.external.registry;
        c.beacon = opts.external.beacon;
      } else await c.startRendezvous();
      for (const n of names) await c.startDaemon(n);
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  get storePath(): string {
    return join(this.root, 'registry.json');
  }

  /** (Re)start the rendezvous; after the first start it binds the same ports, so daemons find it again. */
  async startRendezvous(): Promise<Rendezvous> {
    const r = await startRendezvous({
      ...(this.opts.store ? { store: this.storePath } : {}),
      ...(this.registry ? { registryAddr: this.registry, beaconAddr: this.beacon } : {}),
      ...(this.opts.rendezvousArgs ? { extraArgs: this.opts.rendezvousArgs } : {}),
    });
    this.rendezvous = r;
    this.registry = r.registry;
    this.beacon = r.beacon;
    return r;
  }

  async killRendezvous(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const r = this.rendezvous;
    if (!r) return;
    r.child.kill(signal);
    await exited(r.child);
    if (r.child.pid !== undefined) livePids.delete(r.child.pid);
    this.rendezvous = null;
  }

  homeOf(name: string): string {
    return join(this.root, name);
  }

  node(name: string): NodeProc {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** `pilotctl daemon start` (real, detached daemon) with --json; returns the node. */
  async startDaemon(name: string, flags: string[] = []): Promise<NodeProc> {
    const home = this.homeOf(name);
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const all = [...(this.opts.daemonFlags ?? []), ...flags];
    const r = await runJson([
      '--home', home, 'daemon', 'start',
      '--registry', this.registry,
      '--beacon', this.beacon,
      '--hostname', name,
      '--listen', '127.0.0.1:0',
      ...all,
    ]);
    // Not registered (no rendezvous answering yet, a refused certificate…): the daemon runs and keeps retrying,
    // and `daemon start` says so with connection_failed — the tests that want that node still get it (node id 0).
    const unregistered = r.code === 1 && r.error?.code === 'connection_failed' && r.error.detail?.registered === false ? r.error.detail : null;
    const pid = r.data?.pid ?? unregistered?.pid ?? readPidFile(home);
    if (typeof pid === 'number') trackPid(pid);
    if (!unregistered && (r.code !== 0 || !r.data)) throw new Error(`daemon start ${name} failed: ${explain(r)}\nlog:\n${this.logTail(name)}`);
    const n: NodeProc = unregistered
      ? { name, home, nodeId: 0, address: '', pid: unregistered.pid, flags }
      : { name, home, nodeId: r.data.node_id, address: r.data.address, pid: r.data.pid, flags };
    const i = this.nodes.findIndex((x) => x.name === name);
    if (i >= 0) this.nodes[i] = n;
    else this.nodes.push(n);
    return n;
  }

  /** `pilotctl daemon stop`; SIGKILL if it is still there. */
  async stopDaemon(name: string): Promise<void> {
    const n = this.node(name);
    await runJson(['--home', n.home, 'daemon', 'stop', '--timeout', '5s']);
    await this.reap(n.pid, 'SIGKILL');
  }

  /** Kill a daemon process directly (SIGKILL by default). */
  async killDaemon(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = this.node(name);
    try {
      process.kill(n.pid, signal);
    } catch {
      /* gone */
    }
    await this.reap(n.pid, 'SIGKILL', 5000);
  }

  private async reap(pid: number, signal: NodeJS.Signals, graceMs = 3000): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (isAlive(pid) && Date.now() < deadline) await sleep(25);
    if (isAlive(pid)) {
      try {
        process.kill(pid, signal);
      } catch {
        /* gone */
      }
      while (isAlive(pid)) await sleep(25);
    }
    livePids.delete(pid);
  }

  async restartDaemon(name: string): Promise<NodeProc> {
    const flags = this.node(name).flags;
    await this.stopDaemon(name);
    return this.startDaemon(name, flags);
  }

  /** pilotctl for a node's home, with --json. */
  json(name: string, args: string[], opts: RunOptions = {}): Promise<JsonRun> {
    return runJson(['--home', this.homeOf(name), ...args], opts);
  }

  /** pilotctl for a node's home, text mode. */
  text(name: string, args: string[], opts: RunOptions = {}): Promise<CliRun> {
    return runPilotctl(['--home', this.homeOf(name), ...args], opts);
  }

  /** --json call that must succeed; returns `data`. */
  async ok(name: string, args: string[], opts: RunOptions = {}): Promise<any> {
    const r = await this.json(name, args, opts);
    if (r.code !== 0 || r.data === null) throw new Error(`pilotctl ${args.join(' ')} (${name}) failed: ${explain(r)}`);
    return r.data;
  }

  /** An SDK client to a node's daemon (closed by close()). */
  async client(name: string): Promise<PilotClient> {
    const c = await PilotClient.connect({ home: this.homeOf(name) });
    if (!c.ok) throw new Error(`connect to ${name}: ${c.error.message}`);
    this.clients.push(c.value);
    return c.value;
  }

  /** a handshakes b, b approves; resolves when both sides list each other as mutual. Returns ms from approve to mutual. */
  async trust(a: string, b: string, justification = 'integration test'): Promise<number> {
    const ca = await this.client(a);
    const cb = await this.client(b);
    const na = this.node(a);
    const nb = this.node(b);
    const h = await ca.handshake(String(nb.nodeId), justification);
    if (!h.ok) throw new Error(`handshake ${a}→${b}: ${h.error.message}`);
    if (h.value.status === 'already_trusted') return 0;
    await waitFor(`${b} to see ${a}'s request`, async () => {
      const p = await cb.pending();
      return p.ok && p.value.pending.some((x) => x.node_id === na.nodeId);
    });
    const t0 = performance.now();
    const ap = await cb.approve(na.nodeId);
    if (!ap.ok) throw new Error(`approve ${b}←${a}: ${ap.error.message}`);
    await waitFor(`mutual trust ${a}↔${b}`, async () => (await isMutual(ca, nb.nodeId)) && (await isMutual(cb, na.nodeId)), 10_000, 10);
    return performance.now() - t0;
  }

  logTail(name: string, lines = 30): string {
    try {
      return readFileSync(join(this.homeOf(name), 'daemon.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Stop every daemon and the rendezvous, remove the temp root (kept when PILOT_KEEP_TEST_HOME is set). */
  async close(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    await Promise.all(
      this.nodes.map(async (n) => {
        if (!isAlive(n.pid)) return livePids.delete(n.pid);
        await runJson(['--home', n.home, 'daemon', 'stop', '--timeout', '3s'], { killAfterMs: 15_000 });
        await this.reap(n.pid, 'SIGKILL', 1000);
      }),
    );
    await this.killRendezvous('SIGKILL');
    if (process.env.PILOT_KEEP_TEST_HOME) console.log(`kept ${this.root}`);
    else rmSync(this.root, { recursive: true, force: true });
  }
}

export async function isMutual(c: PilotClient, nodeId: number): Promise<boolean> {
  const t = await c.trusted();
  return t.ok && t.value.trusted.some((x) => x.node_id === nodeId && x.mutual);
}

function readPidFile(home: string): number | null {
  const p = join(home, 'daemon.pid');
  if (!existsSync(p)) return null;
  const n = Number(readFileSync(p, 'utf8').trim());
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** Read a PilotStream until `n` bytes or end; resolves with what arrived. */
export function readBytes(stream: NodeJS.ReadableStream, n: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const done = (e?: Error): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (e) reject(e);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (b: Buffer): void => {
      chunks.push(b);
      got += b.length;
      if (got >= n) done();
    };
    const onEnd = (): void => done();
    const onError = (e: Error): void => done(e);
    const timer = setTimeout(() => done(new Error(`read timed out with ${got}/${n} bytes`)), timeoutMs);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}
