// `pilotctl rendezvous start|stop|status`: a local rendezvous (registry + beacon) in the background, as `daemon
// start` runs the daemon — files under <home>/rendezvous/: rendezvous.pid, rendezvous.log, registry.db (the
// registry's store, `--store`) and rendezvous.json (the addresses from its ready line and when it started).
// pilot-rendezvous prints one JSON ready line on stdout once both sockets listen; stdout and stderr go to the
// log, so start reads the log from where it stood before the spawn until that line (or the exit and its error).
// Only a process shown to be this home's pilot-rendezvous (same user, the pilot-rendezvous script, our --store)
// is ever signalled; a pid file naming anything else (pid reuse, or planted) is removed and the process left alone.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readlinkSync, readSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import { openAppendNoFollow, readSmallFileNoFollow, writeFileSafe } from '../core/safe-file.js';
import { prepareHome } from '../node/home.js';
import { DEFAULT_BEACON_PORT, DEFAULT_REGISTRY_PORT, formatHostPort, parseHostPort } from '../wire/endpoint.js';
import type { FlagSpec } from './args.js';
import { defineCommand, type CliContext, type Command } from './command.js';
import { isProcessAlive, readPid } from './daemon-ctl.js';
import { fields, formatDuration } from './output.js';
import { sleep } from './stream-io.js';

const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const POLL_MS = 100;
const PROBE_TIMEOUT_MS = 1_000;
const MAX_LOG_READ_BYTES = 1024 * 1024;

export interface RendezvousPaths {
  dir: string;
  pidFile: string;
  logFile: string;
  store: string;
  stateFile: string;
}

export function rendezvousPaths(home: string): RendezvousPaths {
  const dir = join(resolve(home), 'rendezvous');
  return {
    dir,
    pidFile: join(dir, 'rendezvous.pid'),
    logFile: join(dir, 'rendezvous.log'),
    store: join(dir, 'registry.db'),
    stateFile: join(dir, 'rendezvous.json'),
  };
}

/** What start recorded: the ready line's fields (registry, beacon, beacon2, …), the pid and the start time. */
interface RendezvousState {
  pid: number;
  started_at: string;
  ready: Record<string, string>;
}

const START_FLAGS: FlagSpec[] = [
  { name: 'registry-addr', kind: 'string', value: '<host:port>', description: `registry TCP listen address (default :${DEFAULT_REGISTRY_PORT}, all interfaces)` },
  { name: 'beacon-addr', kind: 'string', value: '<host:port>', description: `beacon UDP listen address (default :${DEFAULT_BEACON_PORT})` },
  { name: 'beacon-addr2', kind: 'string', value: '<host:port>', description: 'second beacon address (another IP of this machine) for NAT classification' },
  { name: 'compat-addr', kind: 'string', value: '<host:port|off>', description: 'TLS/WebSocket port for nodes without UDP (default :443 when it can bind; off = none)' },
  { name: 'dashboard-addr', kind: 'string', value: '<host:port>', description: 'serve the live dashboard here (needs PILOT_ADMIN_TOKEN in the environment)' },
  { name: 'log-level', kind: 'string', value: '<level>', description: 'debug, info, warn, error (default info)' },
];


function readState(p: RendezvousPaths): RendezvousState | null {
  const f = readSmallFileNoFollow(p.stateFile);
  if (f === null) return null;
  try {
    const v = JSON.parse(f.text) as RendezvousState;
    return typeof v.pid === 'number' && typeof v.ready === 'object' && v.ready !== null ? v : null;
  } catch {
    return null;
  }
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}


function samePath(a: string, b: string): boolean {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}

/** The argv and cwd of `pid`: /proc on Linux, `ps` elsewhere (cwd unknown there); null when it cannot be read. */
function processArgv(pid: number): { argv: string[]; cwd: string | null } | null {
  try {
    const uid = typeof process.getuid === 'function' ? process.getuid() : null;
    if (uid !== null && statSync(`/proc/${pid}`).uid !== uid) return null;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    return { argv, cwd: readlinkSync(`/proc/${pid}/cwd`) };
  } catch {
    if (process.platform === 'linux') return null;
  }
  try {
    const out = execFileSync('ps', ['-o', 'user=,args=', '-p', String(pid)], { encoding: 'utf8', timeout: 2000 }).trim();
    const [user, ...rest] = out.split(/\s+/);
    if (!user || (process.env.USER && user !== process.env.USER)) return null;
    return { argv: rest, cwd: null };
  } catch {
    return null;
  }
}

/** Is `pid` this home's pilot-rendezvous: ours, running the pilot-rendezvous script, with our --store? */
export function isOurRendezvousProcess(pid: number, p: RendezvousPaths, env: NodeJS.ProcessEnv): boolean {
  const proc = processArgv(pid);
  if (proc === null) return false;
  const { argv, cwd } = proc;
  const at = (a: string): string => (cwd !== null ? resolve(cwd, a) : resolve(a));
  const bin = env.PILOT_RENDEZVOUS_BIN ? resolve(env.PILOT_RENDEZVOUS_BIN) : null;
  const isRendezvous = argv.some((a) => /^pilot-rendezvous(\.[cm]?[jt]s)?$/.test(basename(a)) || (bin !== null && at(a) === bin));
  if (!isRendezvous) return false;
  for (let i = 0; i < argv.length; i++) {
    const store = argv[i] === '--store' ? argv[i + 1] : argv[i]!.startsWith('--store=') ? argv[i]!.slice('--store='.length) : undefined;
    if (store !== undefined) return samePath(at(store), p.store);
  }
  return false;
}

/** argv prefix running pilot-rendezvous: PILOT_RENDEZVOUS_BIN, else the script beside this pilotctl (.js, or .ts via tsx). */
export function rendezvousCommand(io: { scriptPath: string; env: NodeJS.ProcessEnv }): Result<string[]> {
  const override = io.env.PILOT_RENDEZVOUS_BIN;
  const dir = dirname(io.scriptPath);
  const candidates = override ? [override] : [join(dir, 'pilot-rendezvous.js'), join(dir, 'pilot-rendezvous.ts')];
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    return ok(c.endsWith('.ts') ? [process.execPath, '--import', tsxSpecifier(), c] : [process.execPath, c]);
  }
  return err('not_found', `pilot-rendezvous not found next to ${io.scriptPath}`, { hint: 'build the project (npm run build) or set PILOT_RENDEZVOUS_BIN' });
}

// The rendezvous runs in its own directory, so a bare `--import tsx` (resolved from the cwd) would not be found.
function tsxSpecifier(): string {
  try {
    return import.meta.resolve('tsx');
  } catch {
    return 'tsx';
  }
}

/** The log from `offset` on (at most 1 MiB). */
function readLogFrom(path: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const n = Math.max(0, Math.min(size - offset, MAX_LOG_READ_BYTES));
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const r = readSync(fd, buf, got, n - got, offset + got);
      if (r === 0) break;
      got += r;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The ready line: a JSON object with registry and beacon and no pino `level`. */
function findReady(log: string): Record<string, string> | null {
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const v = JSON.parse(line) as Record<string, unknown>;
      if (typeof v.registry === 'string' && typeof v.beacon === 'string' && !('level' in v)) {
        return Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'string')) as Record<string, string>;
      }
    } catch {
      /* a log line cut short, or not JSON */
    }
  }
  return null;
}

/** Why the rendezvous stopped, from its stderr lines and fatal log records. */
function startupError(log: string): string {
  const reasons: string[] = [];
  for (const line of log.split('\n')) {
    const t = line.trim();
    if (t === '') continue;
    if (t.startsWith('{')) {
      try {
        const v = JSON.parse(t) as { level?: number; msg?: string };
        if ((v.level ?? 0) >= 50 && v.msg) reasons.push(v.msg);
      } catch {
        /* not JSON */
      }
    } else reasons.push(t.replace(/^pilot-rendezvous: /, ''));
  }
  return [...new Set(reasons)].slice(0, 5).join('; ');
}

/** 0.0.0.0 / :: / no host → loopback: what a daemon on this machine dials. */
function localAddr(addr: string): string {
  const hp = parseHostPort(addr);
  if (!hp.ok) return addr;
  const h = hp.value.host;
  return formatHostPort(h === '' || h === '0.0.0.0' ? '127.0.0.1' : h === '::' ? '::1' : h, hp.value.port);
}

function isWildcard(addr: string): boolean {
  const hp = parseHostPort(addr);
  return hp.ok && (hp.value.host === '' || hp.value.host === '0.0.0.0' || hp.value.host === '::');
}

/** This machine's non-internal IPv4 addresses (what agents on the LAN dial). */
function lanIps(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  }
  return out;
}

function probeTcp(addr: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  const hp = parseHostPort(addr);
  if (!hp.ok) return Promise.resolve(false);
  return new Promise((done) => {
    const s = connect({ host: hp.value.host || '127.0.0.1', port: hp.value.port });
    const finish = (isUp: boolean): void => {
      clearTimeout(t);
      s.destroy();
      done(isUp);
    };
    const t = setTimeout(() => finish(false), timeoutMs);
    s.once('connect', () => finish(true));
    s.once('error', () => finish(false));
  });
}

/** Fields describing a running rendezvous, and how daemons reach it. */
function describe(pid: number, ready: Record<string, string>, p: RendezvousPaths, extra: Array<[string, string | null]> = []): { data: Record<string, unknown>; text: string } {
  const localRegistry = localAddr(ready.registry!);
  const localBeacon = localAddr(ready.beacon!);
  const lan = isWildcard(ready.registry!) ? lanIps() : [];
  const regPort = parseHostPort(ready.registry!);
  const beaconPort = parseHostPort(ready.beacon!);
  const data: Record<string, unknown> = {
    ...ready,
    pid,
    pid_file: p.pidFile,
    log_file: p.logFile,
    store: p.store,
    local_registry: localRegistry,
    local_beacon: localBeacon,
    lan_ips: lan,
  };
  let text =
    fields([
      ...extra,
      ['Registry', ready.registry],
      ['Beacon', ready.beacon],
      ...Object.entries(ready)
        .filter(([k]) => k !== 'registry' && k !== 'beacon')
        .map(([k, v]): [string, string] => [k[0]!.toUpperCase() + k.slice(1), v]),
      ['Store', p.store],
      ['Logs', p.logFile],
    ]) + `\nAgents on this machine:\n  pilotctl daemon start --registry ${localRegistry} --beacon ${localBeacon} --hostname my-agent\n`;
  if (lan.length && regPort.ok && beaconPort.ok) {
    text += `Agents on other machines (LAN):\n`;
    for (const ip of lan) text += `  pilotctl daemon start --registry ${ip}:${regPort.value.port} --beacon ${ip}:${beaconPort.value.port}\n`;
  }
  text += `Or once per home: pilotctl config set registry ${localRegistry}; pilotctl config set beacon ${localBeacon}\n`;
  return { data, text };
}

function checkAddrFlag(flags: Map<string, string | true>, name: string): Result<void> {
  const v = flags.get(name);
  if (typeof v !== 'string') return ok();
  if (!parseHostPort(v, { defaultHost: '0.0.0.0' }).ok) {
    return err('invalid_argument', `--${name} '${v}' is not HOST:PORT`, { hint: `e.g. --${name} :${name === 'registry-addr' ? DEFAULT_REGISTRY_PORT : DEFAULT_BEACON_PORT} (all interfaces) or 127.0.0.1:0 (this machine, any port)` });
  }
  return ok();
}

/** Prepare <home> and <home>/rendezvous (0700, ours). */
function prepareDirs(ctx: CliContext, p: RendezvousPaths): Result<void> {
  const h = prepareHome(ctx.home);
  if (!h.ok) return h;
  return prepareHome(p.dir);
}

const start = defineCommand<Map<string, string | true>>({
  name: 'rendezvous start',
  group: 'Rendezvous',
  summary: 'Run a rendezvous (registry + beacon) in the background for this machine or the LAN; waits until it listens',
  args: [],
  flags: START_FLAGS,
  returns: 'registry, beacon (listen addresses; beacon2, … as the ready line has them), pid, pid_file, log_file, store, local_registry, local_beacon, lan_ips',
  errors: ['already_exists', 'connection_failed', 'timeout', 'internal', 'not_found', 'unsafe_home'],
  parse(a) {
    for (const k of ['registry-addr', 'beacon-addr', 'beacon-addr2', 'dashboard-addr']) {
      const r = checkAddrFlag(a.flags, k);
      if (!r.ok) return r;
    }
    if (a.flags.get('compat-addr') !== 'off') {
      const r = checkAddrFlag(a.flags, 'compat-addr');
      if (!r.ok) return err('invalid_argument', r.error.message, { hint: 'e.g. --compat-addr :8443, or --compat-addr off' });
    }
    const lvl = a.flags.get('log-level');
    if (lvl !== undefined && (typeof lvl !== 'string' || !['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(lvl))) {
      return err('invalid_argument', `invalid --log-level '${String(lvl)}'`, { hint: 'debug, info, warn or error' });
    }
    return ok(a.flags);
  },
  async run(ctx, flags) {
    const p = rendezvousPaths(ctx.home);
    const dirs = prepareDirs(ctx, p);
    if (!dirs.ok) return dirs;
    const pid0 = readPid(p.pidFile);
    if (pid0 !== null && isProcessAlive(pid0) && isOurRendezvousProcess(pid0, p, ctx.io.env)) {
      const st = readState(p);
      const where = st ? ` on ${st.ready.registry} / ${st.ready.beacon}` : '';
      return err('already_exists', `rendezvous is already running (pid ${pid0})${where}`, {
        hint: 'stop it first with: pilotctl rendezvous stop (or run another with its own --home and ports)',
        detail: { pid: pid0, ...(st ? st.ready : {}) },
      });
    }
    if (pid0 !== null) tryUnlink(p.pidFile); // stale: not running, or not ours (left alone)
    tryUnlink(p.stateFile);

    const cmd = rendezvousCommand(ctx.io);
    if (!cmd.ok) return cmd;
    const [exe, ...pre] = cmd.value;
    const str = (k: string, d: string): string => {
      const v = flags.get(k);
      return typeof v === 'string' ? v : d;
    };
    const args = [
      ...pre,
      '--registry-addr', str('registry-addr', `:${DEFAULT_REGISTRY_PORT}`),
      '--beacon-addr', str('beacon-addr', `:${DEFAULT_BEACON_PORT}`),
      ...(['beacon-addr2', 'compat-addr', 'dashboard-addr'] as const).flatMap((k) => (typeof flags.get(k) === 'string' ? [`--${k}`, str(k, '')] : [])),
      '--store', p.store,
      '--log-level', str('log-level', 'info'),
    ];
    const offset = fileSize(p.logFile);
    const log = openAppendNoFollow(p.logFile);
    if (!log.ok) return log;
    const child = spawn(exe!, args, { detached: true, stdio: ['ignore', log.value, log.value], env: ctx.io.env, cwd: p.dir });
    closeSync(log.value);
    let exitCode: number | null = null;
    child.on('exit', (c, s) => (exitCode = c ?? (s ? 128 : 0)));
    child.on('error', () => (exitCode = 127));
    const pid = child.pid;
    if (pid === undefined) return err('internal', `cannot start ${exe}`, { hint: 'check that node can run pilot-rendezvous' });
    const pidWritten = writeFileSafe(p.pidFile, String(pid));
    if (!pidWritten.ok) {
      child.kill('SIGTERM');
      return pidWritten;
    }
    child.unref();
    if (!ctx.isJson) ctx.io.stderr.write(`starting rendezvous (pid ${pid})...`);
    const endLine = (): void => {
      if (!ctx.isJson) ctx.io.stderr.write('\n');
    };

    const deadlineMs = Date.now() + (ctx.timeoutMs ?? START_TIMEOUT_MS);
    while (Date.now() < deadlineMs) {
      await sleep(POLL_MS);
      const out = readLogFrom(p.logFile, offset);
      const ready = findReady(out);
      if (ready) {
        endLine();
        const state: RendezvousState = { pid, started_at: new Date().toISOString(), ready };
        const saved = writeFileSafe(p.stateFile, JSON.stringify(state, null, 2) + '\n');
        if (!saved.ok) return saved;
        const d = describe(pid, ready, p);
        return ok({ data: d.data, text: `Rendezvous running (pid ${pid})\n` + d.text });
      }
      if (exitCode !== null) {
        endLine();
        tryUnlink(p.pidFile);
        const why = startupError(out) || `exited with code ${exitCode}`;
        const isPortInUse = /EADDRINUSE|address already in use/i.test(out);
        const taken = /EADDRINUSE\D*?((?:\[[^\]]*\]|[\d.]+):(\d+))/.exec(why);
        const takenPort = taken ? taken[2] : null;
        return err(isPortInUse ? 'connection_failed' : 'internal', `rendezvous did not start: ${why}`, {
          hint: isPortInUse
            ? `${taken ? `port ${takenPort} (${taken[1]}) is already in use` : 'a port is already in use'} — by another rendezvous? see \`pilotctl rendezvous status\` or \`ss -ltnup | grep :${takenPort ?? DEFAULT_REGISTRY_PORT}\`; or pick free ports: pilotctl rendezvous start --registry-addr :9100 --beacon-addr :9101`
            : `see ${p.logFile}`,
          detail: { exit_code: exitCode, log_file: p.logFile, port_in_use: isPortInUse, ...(taken ? { address_in_use: taken[1] } : {}) },
        });
      }
    }
    endLine();
    return err('timeout', `rendezvous started (pid ${pid}) but printed no ready line in time`, {
      hint: `check logs: tail -f ${p.logFile}; stop it with: pilotctl rendezvous stop`,
      detail: { pid, log_file: p.logFile },
    });
  },
});

async function waitGone(pid: number, deadlineMs: number): Promise<boolean> {
  while (Date.now() < deadlineMs) {
    if (!isProcessAlive(pid)) return true;
    await sleep(50);
  }
  return !isProcessAlive(pid);
}

const stop = defineCommand<null>({
  name: 'rendezvous stop',
  group: 'Rendezvous',
  summary: "Stop this home's rendezvous (SIGTERM, then SIGKILL after a grace period)",
  args: [],
  flags: [],
  returns: 'pid, forced (bool)',
  errors: ['not_running', 'internal'],
  parse: () => ok(null),
  async run(ctx) {
    const p = rendezvousPaths(ctx.home);
    const pid = readPid(p.pidFile);
    if (pid === null || !isProcessAlive(pid)) {
      tryUnlink(p.pidFile);
      tryUnlink(p.stateFile);
      return err('not_running', 'rendezvous is not running', { hint: 'start it with: pilotctl rendezvous start' });
    }
    if (!isOurRendezvousProcess(pid, p, ctx.io.env)) {
      tryUnlink(p.pidFile);
      tryUnlink(p.stateFile);
      return err('not_running', `rendezvous is not running; the pid file named pid ${pid}, which is not a pilot-rendezvous of ${ctx.home}, so it was left alone`, {
        hint: 'the stale pid file was removed; start it with: pilotctl rendezvous start',
        detail: { pid_file: p.pidFile, foreign_pid: pid },
      });
    }
    let forced = false;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* exited meanwhile */
    }
    if (!(await waitGone(pid, Date.now() + (ctx.timeoutMs ?? STOP_GRACE_MS)))) {
      forced = true;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* exited meanwhile */
      }
      if (!(await waitGone(pid, Date.now() + 2000))) {
        return err('internal', `rendezvous (pid ${pid}) survived SIGKILL`, { hint: `check it with: ps -p ${pid}` });
      }
    }
    tryUnlink(p.pidFile);
    tryUnlink(p.stateFile);
    return ok({ data: { pid, forced }, text: `rendezvous ${forced ? 'force-stopped' : 'stopped'} (pid ${pid})\n` });
  },
});

const status = defineCommand<{ check: boolean }>({
  name: 'rendezvous status',
  group: 'Rendezvous',
  summary: "Is this home's rendezvous running: pid, uptime, addresses. --check: silent, exit 0 if running, 1 otherwise",
  args: [],
  flags: [{ name: 'check', kind: 'bool', description: 'no output; exit code only' }],
  returns: 'running (bool), responsive (bool: the registry port accepts TCP), pid, uptime_secs, started_at, registry, beacon, …, pid_file, log_file, store',
  errors: [],
  parse: (a) => ok({ check: a.flags.get('check') === true }),
  async run(ctx, q) {
    const p = rendezvousPaths(ctx.home);
    const pid = readPid(p.pidFile);
    const isRunning = pid !== null && isProcessAlive(pid) && isOurRendezvousProcess(pid, p, ctx.io.env);
    const st = isRunning ? readState(p) : null;
    const isResponsive = st !== null && st.pid === pid ? await probeTcp(localAddr(st.ready.registry!)) : false;
    if (q.check) return ok({ exitCode: isRunning ? 0 : 1 });
    if (!isRunning) {
      const data = { running: false, responsive: false, pid: null, pid_file: p.pidFile, log_file: p.logFile, store: p.store };
      return ok({ data, text: 'Rendezvous: stopped\n  start with: pilotctl rendezvous start\n' });
    }
    if (st === null || st.pid !== pid) {
      const data = { running: true, responsive: false, pid, pid_file: p.pidFile, log_file: p.logFile, store: p.store };
      return ok({ data, text: `Rendezvous: running (pid ${pid}) but not ready (no addresses recorded)\n  see ${p.logFile}\n` });
    }
    const startedMs = Date.parse(st.started_at);
    const uptimeSecs = Number.isFinite(startedMs) ? Math.max(0, Math.floor((Date.now() - startedMs) / 1000)) : null;
    const d = describe(pid, st.ready, p, [['Uptime', uptimeSecs === null ? null : formatDuration(uptimeSecs)]]);
    const data = { running: true, responsive: isResponsive, ...d.data, started_at: st.started_at, uptime_secs: uptimeSecs };
    const text = `Rendezvous: running (pid ${pid})${isResponsive ? '' : ' — but its registry port does not answer'}\n` + d.text;
    return ok({ data, text });
  },
});

export const RENDEZVOUS_COMMANDS: Command[] = [start, stop, status];
