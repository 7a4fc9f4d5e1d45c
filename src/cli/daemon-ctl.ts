// `pilotctl daemon start|stop|status`: spawn pilot-daemon detached, wait for its socket, stop it politely
// (IPC shutdown) and then firmly (SIGTERM, SIGKILL) — but only a process shown to be this home's daemon: the
// pid it signed on the verified control socket, or (daemon hung) what /proc says runs there. A pid file naming
// someone else's process (pid reuse, or planted) is never signalled.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, readFileSync, readlinkSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DATA_PLANE_HEAP_FLAGS } from '../core/heap-flags.js';
import { readJsonObjectFile } from '../core/json-text.js';
import { isErrorCode, type ErrorCode } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { openAppendNoFollow, readSmallFileNoFollow, writeFileSafe } from '../core/safe-file.js';
import { callOnce, connectIpc, type DaemonTarget } from '../ipc/client.js';
import { homePaths } from '../ipc/paths.js';
import { prepareHome } from '../node/home.js';
import type { NodeInfo } from '../node/api.js';
import { DEFAULT_STORAGE_QUOTAS, QUOTA_FLAGS } from '../node/daemon-options.js';
import type { FlagSpec } from './args.js';
import { defineCommand, type CliContext, type Command } from './command.js';
import { fields, formatDuration } from './output.js';
import { sleep } from './stream-io.js';
import { checkHostname } from './validate.js';
import { DEFAULT_REGISTRY_ADDR, parseHostPort } from '../wire/endpoint.js';

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 100;
const LOG_TAIL_LINES = 20;

/** Flags forwarded to pilot-daemon as given (the original's daemon flags, plus --home/--socket added by us). */
const DAEMON_FLAGS: FlagSpec[] = [
  { name: 'foreground', kind: 'bool', description: 'run in this terminal instead of detaching' },
  { name: 'registry', kind: 'string', value: '<host:port>', description: 'registry address (env PILOT_REGISTRY); a:9000,b:9000 = replicas, tried in turn' },
  { name: 'beacon', kind: 'string', value: '<host:port>', description: 'beacon address for NAT discovery' },
  { name: 'beacon2', kind: 'string', value: '<host:port>', description: 'second beacon address (another IP of the rendezvous) for NAT classification (env PILOT_BEACON2)' },
  { name: 'listen', kind: 'string', value: '<host:port>', description: 'UDP tunnel address (default 0.0.0.0:0)' },
  { name: 'identity', kind: 'string', value: '<path>', description: 'Ed25519 identity file (default <home>/identity.json)' },
  { name: 'hostname', kind: 'string', value: '<name>', description: 'hostname to register' },
  { name: 'networks', kind: 'string', value: '<a,b>', description: 'custom networks to join at start (open networks, or ones that invited this node; see pilotctl network)' },
  { name: 'public', kind: 'bool', description: 'public node: anyone may look up its endpoint, AND every registered node may open tunnels to it without a handshake (trusted peers are still checked against their pinned keys)' },
  { name: 'log-level', kind: 'string', value: '<level>', description: 'debug, info, warn, error' },
  { name: 'log-format', kind: 'string', value: '<fmt>', description: 'json or pretty' },
  { name: 'no-echo', kind: 'bool', description: 'disable the echo service (port 7)' },
  { name: 'no-dataexchange', kind: 'bool', description: 'disable data exchange (port 1001)' },
  { name: 'no-eventstream', kind: 'bool', description: 'disable the event stream broker (port 1002)' },
  { name: 'trust-auto-approve', kind: 'bool', description: 'approve every handshake request (tests, demos)' },
  { name: 'config', kind: 'string', value: '<path>', description: 'daemon config file (JSON)' },
  { name: 'keepalive', kind: 'string', value: '<duration>', description: 'tunnel keepalive interval (default 15s)' },
  { name: 'idle-timeout', kind: 'string', value: '<duration>', description: 'close silent connections after this long (default 60s)' },
  { name: 'no-relay', kind: 'bool', description: 'never fall back to the beacon relay' },
  { name: 'legacy-socket', kind: 'string', value: '<path>', description: 'also serve the original pilotctl protocol on this socket' },
  { name: 'no-legacy', kind: 'bool', description: 'never fall back to the original v0.5 tunnel suite' },
  { name: 'allow-insecure-legacy', kind: 'bool', description: 'accept the original plaintext PILT / unauthenticated PILK frames' },
  { name: 'relay-only', kind: 'bool', description: 'reach peers only through the beacon relay (hides our endpoint from peers)' },
  // The compat transport (issue 13): networks that block UDP or allow only an HTTPS proxy.
  { name: 'transport', kind: 'string', value: '<auto|udp|tcp>', description: 'auto (default): UDP, and the WebSocket relay on the rendezvous TLS port when UDP gets no answer within 3 s; udp: UDP only; tcp: no UDP at all (TLS registry + WebSocket relay) (env PILOT_TRANSPORT)' },
  { name: 'compat', kind: 'string', value: '<host:port>', description: 'the rendezvous TLS (compat) port (default: the registry host, port 443) (env PILOT_COMPAT)' },
  { name: 'proxy', kind: 'string', value: '<url>', description: 'HTTP CONNECT proxy for the TLS connections, http://[user:pass@]host:port (default HTTPS_PROXY / https_proxy; NO_PROXY honoured)' },
  { name: 'registry-fingerprint', kind: 'string', value: '<sha256>', description: 'pin the rendezvous certificate (pilot-rendezvous --print-fingerprint); without it the first one seen is kept in <home>/known_rendezvous.json (env PILOT_REGISTRY_FINGERPRINT)' },
  // Webhooks (docs/webhooks.md): the flag wins over set-webhook's saved URL.
  { name: 'webhook', kind: 'string', value: '<url>', description: 'POST every node event as signed JSON to this URL (env PILOT_WEBHOOK; or pilotctl set-webhook)' },
  { name: 'webhook-secret', kind: 'string', value: '<secret>', description: 'HMAC-SHA256 key for X-Pilot-Signature, ≥ 16 characters (env PILOT_WEBHOOK_SECRET keeps it out of ps)' },
  { name: 'webhook-events', kind: 'string', value: '<a,b>', description: 'only these event types (or groups like trust.*); default all' },
  { name: 'webhook-queue-limit', kind: 'string', value: '<n>', description: 'events kept for delivery while the receiver is away (default 1000; past it the oldest go, counted)' },
  // Storage quotas for what peers store here (0 = no limit); over them a sender gets quota_exceeded.
  ...QUOTA_FLAGS.map((q): FlagSpec => ({
    name: q.flag,
    kind: 'string',
    value: q.size ? '<size>' : '<n>',
    description: `${q.flag.replace(/-/g, ' ')} (default ${q.size ? `${DEFAULT_STORAGE_QUOTAS[q.key] / 1024 / 1024}MiB` : DEFAULT_STORAGE_QUOTAS[q.key]})`,
  })),
];

/** The pid in a pid file (not followed through a symlink); null when absent or not a pid. */
export function readPid(pidFile: string): number | null {
  const f = readSmallFileNoFollow(pidFile, 64); // a symlink planted at daemon.pid is not followed
  if (f === null) return null;
  const n = Number(f.text.trim());
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

function targetOf(ctx: CliContext): DaemonTarget {
  return { socketPath: ctx.socketPath, home: ctx.home };
}

function sameDir(a: string, b: string): boolean {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}

/**
 * Does /proc show `pid` as our pilot-daemon for `home`: same uid as us, argv runs pilot-daemon (or
 * PILOT_DAEMON_BIN), and its home — `--home` (relative to its cwd), else its PILOT_HOME, else its
 * $HOME/.pilot — is this one? Linux only; elsewhere false (then only the IPC-verified pid is signalled).
 */
export function isOurDaemonProcess(pid: number, home: string, env: NodeJS.ProcessEnv): boolean {
  try {
    const uid = typeof process.getuid === 'function' ? process.getuid() : null;
    if (uid !== null && statSync(`/proc/${pid}`).uid !== uid) return false;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    const bin = env.PILOT_DAEMON_BIN ? resolve(env.PILOT_DAEMON_BIN) : null;
    const cwd = readlinkSync(`/proc/${pid}/cwd`);
    const isDaemon = argv.some((a) => /^pilot-daemon(\.[cm]?[jt]s)?$/.test(basename(a)) || (bin !== null && resolve(cwd, a) === bin));
    if (!isDaemon) return false;
    let theirHome: string | null = null;
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '--home' && argv[i + 1] !== undefined) theirHome = argv[i + 1]!;
      else if (argv[i]!.startsWith('--home=')) theirHome = argv[i]!.slice('--home='.length);
    }
    if (theirHome === null) {
      const environ = new Map(
        readFileSync(`/proc/${pid}/environ`, 'utf8')
          .split('\0')
          .filter((kv) => kv.includes('='))
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
      );
      theirHome = environ.get('PILOT_HOME') ?? (environ.get('HOME') ? join(environ.get('HOME')!, '.pilot') : null);
    }
    return theirHome !== null && sameDir(resolve(cwd, theirHome), home);
  } catch {
    return false;
  }
}

/** kill(pid, 0) says it exists and it is not a zombie waiting to be reaped. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/**
 * A detached daemon is reparented when pilotctl exits; until its new parent reaps it, an exited daemon is a
 * zombie that still answers kill(pid, 0). Some container inits reap only every second or two, which made
 * `daemon stop` wait that long. Linux only; elsewhere a zombie counts as alive (the old behaviour).
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name (which may itself contain spaces or parentheses).
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

function logTail(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '';
  }
}

/**
 * argv prefix that runs pilot-daemon: PILOT_DAEMON_BIN if set, else the script beside this pilotctl
 * (pilot-daemon.js when compiled, pilot-daemon.ts through tsx when run from source), with the data plane's
 * heap flag (core/heap-flags.ts).
 */
export function daemonCommand(io: { scriptPath: string; env: NodeJS.ProcessEnv }): Result<string[]> {
  const override = io.env.PILOT_DAEMON_BIN;
  const candidates = override ? [override] : [join(dirname(io.scriptPath), 'pilot-daemon.js'), join(dirname(io.scriptPath), 'pilot-daemon.ts')];
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    // The data plane's heap flag (core/heap-flags.ts): V8 takes it only on the command line.
    return ok(c.endsWith('.ts') ? [process.execPath, ...DATA_PLANE_HEAP_FLAGS, '--import', 'tsx', c] : [process.execPath, ...DATA_PLANE_HEAP_FLAGS, c]);
  }
  return err('not_found', `pilot-daemon not found next to ${io.scriptPath}`, { hint: 'build the project (npm run build) or set PILOT_DAEMON_BIN' });
}

function forwardedArgs(ctx: CliContext, flags: Map<string, string | true>): string[] {
  const out = ['--home', ctx.home, '--socket', ctx.socketPath];
  for (const f of DAEMON_FLAGS) {
    const v = flags.get(f.name);
    // The webhook secret goes by environment (daemonEnv), not argv: argv shows in `ps` for the daemon's life.
    if (v === undefined || f.name === 'foreground' || f.name === 'webhook-secret') continue;
    out.push(`--${f.name}`);
    if (v !== true) out.push(v);
  }
  return out;
}

/** The daemon's environment: ours, plus --webhook-secret as PILOT_WEBHOOK_SECRET. */
function daemonEnv(ctx: CliContext, flags: Map<string, string | true>): NodeJS.ProcessEnv {
  const secret = flags.get('webhook-secret');
  return typeof secret === 'string' ? { ...ctx.io.env, PILOT_WEBHOOK_SECRET: secret } : ctx.io.env;
}

const start = defineCommand<Map<string, string | true>>({
  name: 'daemon start',
  group: 'Daemon',
  summary: 'Start the daemon in the background; waits until its socket answers, then prints its address',
  args: [],
  flags: DAEMON_FLAGS,
  returns: 'pid, node_id, address, hostname, socket, log_file',
  errors: ['already_exists', 'connection_failed', 'timeout', 'internal', 'not_found', 'unsafe_home', 'key_retired'],
  parse(a) {
    const h = a.flags.get('hostname');
    if (typeof h === 'string') {
      const r = checkHostname(h);
      if (!r.ok) return r;
    }
    const tr = a.flags.get('transport');
    if (tr !== undefined && (typeof tr !== 'string' || !['auto', 'udp', 'tcp'].includes(tr))) {
      return err('invalid_argument', `invalid --transport '${String(tr)}'`, { hint: 'auto (default), udp or tcp' });
    }
    for (const k of ['registry', 'beacon', 'listen', 'compat']) {
      const v = a.flags.get(k);
      // --registry may list replicas of one directory: a:9000,b:9000 (the daemon fails over between them).
      if (typeof v === 'string' && !(k === 'registry' ? v.split(',') : [v]).every((x) => parseHostPort(x).ok)) {
        return err('invalid_argument', `--${k} '${v}' is not host:port`, { hint: `e.g. --${k} ${DEFAULT_REGISTRY_ADDR}` });
      }
    }
    return ok(a.flags);
  },
  async run(ctx, flags) {
    const paths = homePaths(ctx.home);
    const home = prepareHome(paths.home); // 0700 and ours, or refused with unsafe_home
    if (!home.ok) return home;
    // A config.json that does not parse: say where at once (file:line:column), rather than after the spawn.
    const cfgFlag = flags.get('config');
    const cfg = readJsonObjectFile(typeof cfgFlag === 'string' ? resolve(ctx.io.cwd, cfgFlag) : paths.config);
    if (!cfg.ok) return cfg;
    const pid0 = readPid(paths.pidFile);
    if (pid0 !== null && isProcessAlive(pid0) && isOurDaemonProcess(pid0, paths.home, ctx.io.env)) {
      return err('already_exists', `daemon is already running (pid ${pid0})`, { hint: 'stop it first with: pilotctl daemon stop' });
    }
    const live = await callOnce(targetOf(ctx), 'info');
    if (live.ok) return err('already_exists', `daemon is already running (socket ${ctx.socketPath} is active)`, { hint: 'stop it first with: pilotctl daemon stop' });

    const cmd = daemonCommand(ctx.io);
    if (!cmd.ok) return cmd;
    const [exe, ...pre] = cmd.value;
    const args = [...pre, ...forwardedArgs(ctx, flags)];

    if (flags.get('foreground') === true) {
      const child = spawn(exe!, args, { stdio: 'inherit', env: daemonEnv(ctx, flags) });
      const relay = (sig: NodeJS.Signals) => () => child.kill(sig);
      const onInt = relay('SIGINT');
      const onTerm = relay('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
      const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      return ok({ data: { exit_code: code }, text: '', exitCode: code });
    }

    const log = openAppendNoFollow(paths.logFile);
    if (!log.ok) return log;
    const logFd = log.value;
    const child = spawn(exe!, args, { detached: true, stdio: ['ignore', logFd, logFd], env: daemonEnv(ctx, flags) });
    closeSync(logFd);
    let exitCode: number | null = null;
    child.on('exit', (c, s) => (exitCode = c ?? (s ? 128 : 0)));
    child.on('error', () => (exitCode = 127));
    const pid = child.pid;
    if (pid === undefined) return err('internal', `cannot start ${exe}`, { hint: 'check that node can run pilot-daemon' });
    const pidWritten = writeFileSafe(paths.pidFile, String(pid)); // replaces a planted symlink, never follows it
    if (!pidWritten.ok) {
      child.kill('SIGTERM');
      return pidWritten;
    }
    child.unref();
    if (!ctx.isJson) ctx.io.stderr.write(`starting daemon (pid ${pid})...`);

    const deadlineMs = Date.now() + (ctx.timeoutMs ?? START_TIMEOUT_MS);
    while (Date.now() < deadlineMs) {
      await sleep(POLL_MS);
      if (exitCode !== null) {
        if (!ctx.isJson) ctx.io.stderr.write('\n');
        try {
          unlinkSync(paths.pidFile);
        } catch {
          /* the daemon may have removed it */
        }
        const tail = logTail(paths.logFile);
        // The daemon's own fatal error (a port in use, a bad flag…) names the problem and the fix: pass it on.
        const fatal = fatalRecord(tail);
        if (fatal) {
          return err(fatal.code, `daemon did not start: ${fatal.message}`, {
            hint: fatal.hint ?? `see ${paths.logFile}`,
            detail: { exit_code: exitCode, log_file: paths.logFile, log_tail: tail },
          });
        }
        return err('internal', `daemon exited with code ${exitCode} during startup` + (tail ? `; log tail:\n${tail}` : ''), {
          hint: `see ${paths.logFile}`,
          detail: { log_file: paths.logFile, log_tail: tail },
        });
      }
      const r = await callOnce<NodeInfo>(targetOf(ctx), 'info');
      if (!r.ok) continue;
      if (!ctx.isJson) ctx.io.stderr.write('\n');
      const i = r.value;
      if (i.registered === false) {
        // The daemon runs and keeps retrying; the command says at once that it is not registered, and why.
        const why = i.registry_error?.message ?? 'no answer yet';
        // Issue 14: an identity key rotated out of its node — no rendezvous will ever take it.
        if (i.registry_error?.code === 'key_retired') {
          return err('key_retired', `not registered: ${why}; the daemon (pid ${pid}) runs without a registry`, {
            hint: i.registry_error.hint ?? '',
            detail: { pid, registered: false, registry: i.registry, socket: ctx.socketPath, log_file: paths.logFile },
          });
        }
        return err('connection_failed', `not registered: no rendezvous at ${i.registry} (${why}); the daemon (pid ${pid}) keeps running and retrying with backoff`, {
          hint: `start one on this machine: pilotctl rendezvous start — or use yours: pilotctl daemon stop && pilotctl daemon start --registry HOST:PORT (pilotctl config set registry HOST:PORT keeps it); pilotctl info shows when it registers`,
          detail: { pid, registered: false, registry: i.registry, socket: ctx.socketPath, log_file: paths.logFile },
        });
      }
      const data = { pid, node_id: i.node_id, address: i.address, hostname: i.hostname ?? '', socket: ctx.socketPath, log_file: paths.logFile };
      const text =
        `Daemon running (pid ${pid})\n` +
        fields([
          ['Node ID', i.node_id],
          ['Address', i.address],
          ['Hostname', i.hostname],
          ['Socket', ctx.socketPath],
          ['Logs', paths.logFile],
        ]);
      return ok({ data, text });
    }
    if (!ctx.isJson) ctx.io.stderr.write('\n');
    const tail = logTail(paths.logFile);
    return err('timeout', `daemon started (pid ${pid}) but did not answer on ${ctx.socketPath} in time` + (tail ? `; log tail:\n${tail}` : ''), {
      hint: `check logs: tail -f ${paths.logFile}`,
      detail: { pid, log_file: paths.logFile, log_tail: tail },
    });
  },
});

/** The last fatal (level 60) pino record in a log tail that carries an error code, or null. */
function fatalRecord(tail: string | null): { code: ErrorCode; message: string; hint: string | null } | null {
  if (!tail) return null;
  for (const line of tail.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    try {
      const r = JSON.parse(line) as { level?: number; code?: unknown; msg?: unknown; hint?: unknown };
      if (r.level === 60 && isErrorCode(r.code) && typeof r.msg === 'string') return { code: r.code, message: r.msg, hint: typeof r.hint === 'string' ? r.hint : null };
    } catch {
      /* not a log record */
    }
  }
  return null;
}

/** Wait until `isGone` or the deadline; true when gone. */
async function waitUntil(isGone: () => boolean | Promise<boolean>, deadlineMs: number): Promise<boolean> {
  while (Date.now() < deadlineMs) {
    if (await isGone()) return true;
    await sleep(POLL_MS);
  }
  return isGone();
}

const stop = defineCommand<null>({
  name: 'daemon stop',
  group: 'Daemon',
  summary: 'Stop the daemon (IPC shutdown, then SIGTERM, then SIGKILL)',
  args: [],
  flags: [],
  returns: 'pid, forced (bool)',
  errors: ['not_running', 'internal', 'daemon_unverified'],
  parse: () => ok(null),
  async run(ctx) {
    const paths = homePaths(ctx.home);
    const target = targetOf(ctx);
    const pidFromFile = readPid(paths.pidFile);
    // Ask over the verified socket first: a squatter gets neither the request nor a pid to act on.
    const conn = await connectIpc(target);
    // Unverified: a squatter, or our daemon too hung to answer. Only /proc can tell; nothing is signalled otherwise.
    if (!conn.ok && conn.error.code === 'daemon_unverified') {
      const isHungDaemon = pidFromFile !== null && isProcessAlive(pidFromFile) && isOurDaemonProcess(pidFromFile, paths.home, ctx.io.env);
      if (!isHungDaemon) return conn;
    }
    const provenPid = conn.ok ? conn.value.daemonPid : null;
    // The only pids we may signal: the one the daemon signed, or the pid file's if /proc shows our daemon there.
    // Decided before asking for shutdown: a daemon that exits at once must still be reported by its pid.
    const candidate = pidFromFile ?? provenPid;
    const isCandidateAlive = candidate !== null && isProcessAlive(candidate);
    const isCandidateOurs = isCandidateAlive && (candidate === provenPid || isOurDaemonProcess(candidate, paths.home, ctx.io.env));
    const asked = conn.ok ? await conn.value.call('shutdown') : conn;
    if (conn.ok) conn.value.close();
    const pid: number | null = isCandidateOurs ? candidate : null;
    if (isCandidateAlive && !isCandidateOurs) {
      if (!asked.ok) {
        tryUnlink(paths.pidFile);
        return err('not_running', `daemon is not running; the pid file named pid ${candidate}, which is not a pilot-daemon of ${paths.home}, so it was left alone`, {
          hint: 'the stale pid file was removed; start the daemon with: pilotctl daemon start',
          detail: { pid_file: paths.pidFile, foreign_pid: candidate },
        });
      }
    }
    if (!asked.ok && pid === null) {
      if (pidFromFile !== null) tryUnlink(paths.pidFile);
      return err('not_running', 'daemon is not running', { hint: 'start it with: pilotctl daemon start' });
    }
    const deadlineMs = Date.now() + (ctx.timeoutMs ?? STOP_TIMEOUT_MS);
    const isGone = async (): Promise<boolean> => (pid === null || !isProcessAlive(pid)) && !(await callOnce(target, 'info')).ok;
    let forced = false;
    if (!(await waitUntil(isGone, asked.ok ? deadlineMs : Date.now()))) {
      if (pid !== null) {
        process.kill(pid, 'SIGTERM');
        if (!(await waitUntil(isGone, Date.now() + 5000))) {
          forced = true;
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* exited meanwhile */
          }
          await waitUntil(() => !isProcessAlive(pid), Date.now() + 2000);
        }
      } else {
        return err('internal', 'daemon accepted shutdown but is still answering', { hint: `find it with: lsof ${ctx.socketPath}` });
      }
    }
    tryUnlink(paths.pidFile);
    const data = { pid, forced };
    return ok({ data, text: `daemon ${forced ? 'force-stopped' : 'stopped'}${pid !== null ? ` (pid ${pid})` : ''}\n` });
  },
});

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

const status = defineCommand<{ check: boolean }>({
  name: 'daemon status',
  group: 'Daemon',
  summary: 'Is the daemon running and answering? --check: silent, exit 0 if responsive, 1 otherwise',
  args: [],
  flags: [{ name: 'check', kind: 'bool', description: 'no output; exit code only' }],
  returns: 'running (bool), responsive (bool), pid, pid_file, socket, node_id, address (null until registered), hostname, uptime_secs, peers, connections, registered, registry, registry_state, registry_reason, beacon, nat_type, transport, datapath',
  errors: ['daemon_unverified'],
  parse: (a) => ok({ check: a.flags.get('check') === true }),
  async run(ctx, p) {
    const paths = homePaths(ctx.home);
    const r = await callOnce<NodeInfo>(targetOf(ctx), 'info');
    if (p.check) return ok({ exitCode: r.ok ? 0 : 1 });
    if (!r.ok && r.error.code === 'daemon_unverified') return r;
    const pid = readPid(paths.pidFile);
    const isRunning = r.ok || (pid !== null && isProcessAlive(pid) && isOurDaemonProcess(pid, paths.home, ctx.io.env));
    const data: Record<string, unknown> = { running: isRunning, responsive: r.ok, pid, pid_file: paths.pidFile, socket: ctx.socketPath };
    if (!r.ok) return ok({ data, text: `Daemon: ${isRunning ? 'running but not answering' : 'stopped'}\n  start with: pilotctl daemon start\n` });
    const i = r.value;
    Object.assign(data, {
      node_id: i.node_id,
      address: i.address,
      hostname: i.hostname ?? '',
      uptime_secs: i.uptime_s,
      peers: i.peers,
      connections: i.connections,
      // The same summary as info (issue 17): what it is connected to and why.
      registered: i.registered,
      registry: i.registry,
      registry_state: i.registry_state,
      registry_reason: i.registry_reason,
      beacon: i.beacon,
      nat_type: i.nat_type,
      transport: i.transport,
      datapath: i.datapath,
    });
    const text =
      `Daemon: running${pid !== null ? ` (pid ${pid})` : ''}\n` +
      fields([
        ['Node ID', i.registered === false ? 'not registered' : i.node_id],
        ['Address', i.address],
        ['Hostname', i.hostname],
        ['Uptime', formatDuration(i.uptime_s)],
        ['Registry', i.registry_reason ?? i.registry],
        ['NAT', i.nat_type ?? i.nat_reason ?? null],
        ['Transport', i.transport ?? null],
        ['Datapath', i.datapath],
        ['Peers', i.peers],
        ['Connections', i.connections],
      ]);
    return ok({ data, text });
  },
});

export const DAEMON_COMMANDS: Command[] = [start, stop, status];
