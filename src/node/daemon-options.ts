// pilot-daemon's flags, as the original's cmd/daemon (-registry, -beacon, -listen, …; one or two dashes),
// plus --home. Precedence: flag > environment > config file > default.
import { readJsonObjectFile } from '../core/json-text.js';
import { err, ok, type Result } from '../core/result.js';
import { DEFAULT_BEACON_ADDR, DEFAULT_REGISTRY_ADDR, hostToIp, parseHostPort, type HostPort, type UdpEndpoint } from '../wire/endpoint.js';
import { HOSTNAME_HINT, isHostname } from '../wire/hostname.js';
import { defaultHome, homePaths } from './home.js';
import { DEFAULT_COMPAT_PORT, parseFingerprint, type Fingerprint } from '../wire/compat-frames.js';
import type { TransportMode } from '../nat/transport-choice.js';
import { makeTarget } from './webhooks/config.js';
import { parseNoProxy, parseProxyUrl, type NoProxyRule, type ProxyConfig } from './compat/proxy.js';

/**
 * Storage limits for what peers store here (port 1001). Per peer (by sender address) and in total; 0 = no limit.
 * Defaults: a peer may fill at most 1/10 of the inbox and 1/8 of the file store, so a few busy (or hostile)
 * trusted peers cannot crowd out the rest; 64 MiB = 4 maximum-size (16 MiB) messages, 256 MiB = 16 maximum-size
 * files; the totals (10,000 messages / 512 MiB, 10,000 files / 2 GiB) bound the disk a node gives away and keep a
 * full inbox listable in a few pages. Inbox bytes are the stored JSON size (base64/escaping included).
 */
export interface StorageQuotas {
  inboxMessagesPerPeer: number;
  inboxBytesPerPeer: number;
  inboxMessages: number;
  inboxBytes: number;
  receivedFilesPerPeer: number;
  receivedBytesPerPeer: number;
  receivedFiles: number;
  receivedBytes: number;
}

const MIB = 1024 * 1024;
export const DEFAULT_STORAGE_QUOTAS: Readonly<StorageQuotas> = Object.freeze({
  inboxMessagesPerPeer: 1000,
  inboxBytesPerPeer: 64 * MIB,
  inboxMessages: 10_000,
  inboxBytes: 512 * MIB,
  receivedFilesPerPeer: 1000,
  receivedBytesPerPeer: 256 * MIB,
  receivedFiles: 10_000,
  receivedBytes: 2048 * MIB,
});

/** Flag name → StorageQuotas key, and whether the value is a size (64MiB, 2GiB, bytes) or a count. */
export const QUOTA_FLAGS: ReadonlyArray<{ flag: string; key: keyof StorageQuotas; size: boolean }> = [
  { flag: 'inbox-max-messages-per-peer', key: 'inboxMessagesPerPeer', size: false },
  { flag: 'inbox-max-bytes-per-peer', key: 'inboxBytesPerPeer', size: true },
  { flag: 'inbox-max-messages', key: 'inboxMessages', size: false },
  { flag: 'inbox-max-bytes', key: 'inboxBytes', size: true },
  { flag: 'received-max-files-per-peer', key: 'receivedFilesPerPeer', size: false },
  { flag: 'received-max-bytes-per-peer', key: 'receivedBytesPerPeer', size: true },
  { flag: 'received-max-files', key: 'receivedFiles', size: false },
  { flag: 'received-max-bytes', key: 'receivedBytes', size: true },
];

export interface DaemonOptions {
  home: string;
  registry: string; // host:port (TCP), as given; `a:9000,b:9000` = replicas of one directory, tried in turn
  beacon: string; // host:port (UDP), as given
  /** A second beacon address (another IP of the rendezvous) for NAT classification; null = none. */
  beacon2: string | null;
  listen: string; // host:port for the tunnel socket, as given
  socket: string;
  identity: string;
  hostname: string | null;
  public: boolean;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  echo: boolean;
  dataExchange: boolean;
  eventStream: boolean;
  trustAutoApprove: boolean;
  /** Custom networks (names) to join at start, after registering (issue 15; --networks a,b). */
  networks: string[];
  /** Fall back to (and race) the beacon relay when no direct path answers. */
  relay: boolean;
  /** Never send directly (tests and relay-only privacy). */
  relayOnly: boolean;
  /** Path MTU discovery on direct paths (DPLPMTUD; --no-pmtud keeps every datagram at 1452 bytes). */
  pmtud: boolean;
  /** Speak the original v0.5 suite (PILA/PILS) to peers that do not answer Noise. */
  legacy: boolean;
  /** Accept the original's plaintext PILT / unauthenticated PILK frames (off: refused). */
  allowInsecureLegacy: boolean;
  /** Also serve the original pilotctl's binary IPC protocol on this socket (e.g. /tmp/pilot.sock); null = off. */
  legacySocket: string | null;
  keepaliveMs: number;
  idleTimeoutMs: number;
  config: string | null;
  quotas: StorageQuotas;
  /**
   * The compat transport (issue 13): 'auto' (default: UDP, the WebSocket relay when UDP gets no answer), 'udp'
   * (UDP only), 'tcp' (no UDP at all: the registry over TLS and the relay over the WebSocket).
   */
  transport: TransportMode;
  /** The rendezvous's TLS (compat) port, `host:port` as given; null = the registry host, port 443. */
  compat: string | null;
  /** HTTP CONNECT proxy URL for the compat connections (`--proxy`, else HTTPS_PROXY / https_proxy); null = none. */
  proxy: string | null;
  /** NO_PROXY / no_proxy: destinations that skip the proxy. */
  noProxy: string | null;
  /** Pin of the rendezvous certificate's SHA-256 (as typed); null = trust on first use. */
  registryFingerprint: string | null;
  /** Webhook URL (`--webhook`); wins over `set-webhook`'s saved one at start (src/node/webhooks/). */
  webhook?: string | null;
  /** `--webhook-secret`, else PILOT_WEBHOOK_SECRET (keeps it out of `ps`). */
  webhookSecret?: string | null;
  /** `--webhook-events a,b` (default all). */
  webhookEvents?: string | null;
  /** `--webhook-queue-limit N`: events kept for delivery at most (default 1000). */
  webhookQueueLimit?: number;
}

export const TRANSPORT_MODES: readonly TransportMode[] = ['auto', 'udp', 'tcp'];

const BOOL_FLAGS = new Set(['public', 'no-echo', 'no-dataexchange', 'no-eventstream', 'trust-auto-approve', 'foreground', 'no-relay', 'relay-only', 'no-pmtud', 'no-legacy', 'allow-insecure-legacy']);
const VALUE_FLAGS = new Set([
  'home', 'registry', 'beacon', 'listen', 'socket', 'identity', 'hostname', 'log-level', 'log-format', 'config',
  'keepalive', 'idle-timeout', 'beacon2', 'legacy-socket', 'transport', 'compat', 'proxy', 'registry-fingerprint',
  'webhook', 'webhook-secret', 'webhook-events', 'webhook-queue-limit',
  'networks',
  ...QUOTA_FLAGS.map((q) => q.flag),
]);


export function isHostPort(s: string): boolean {
  return parseHostPort(s).ok;
}

/**
 * The four addresses of DaemonOptions, parsed (src/wire/endpoint.ts). parseDaemonArgs checks them; Daemon.start
 * parses them once (the SDK merges its own options over the flags' first) and the node passes these values.
 */
export interface DaemonAddresses {
  /** Registry TCP address; no host → 127.0.0.1. The first of --registry's list. */
  registry: HostPort;
  /** The rest of `--registry a:9000,b:9000` (replicas sharing one directory): the client fails over to them. */
  registryAlternates: HostPort[];
  /** Beacon UDP endpoint; `localhost` → 127.0.0.1. */
  beacon: UdpEndpoint;
  beacon2: UdpEndpoint | null;
  /** Tunnel socket bind address; no host → 0.0.0.0; port 0 = any. */
  listen: HostPort;
  /** The rendezvous's compat (TLS) port: --compat, else the registry host at DEFAULT_COMPAT_PORT (443). */
  compat: HostPort;
  proxy: ProxyConfig | null;
  noProxy: NoProxyRule[];
  registryFingerprint: Fingerprint | null;
}

type AddressOptions = Pick<DaemonOptions, 'registry' | 'beacon' | 'beacon2' | 'listen'> &
  Partial<Pick<DaemonOptions, 'compat' | 'proxy' | 'noProxy' | 'registryFingerprint'>>;

export function parseDaemonAddresses(o: AddressOptions): Result<DaemonAddresses> {
  const parsed: Partial<Record<'registry' | 'beacon' | 'listen' | 'beacon2', HostPort>> = {};
  const [firstRegistry, ...restRegistries] = o.registry.split(',');
  const registryAlternates: HostPort[] = [];
  for (const v of restRegistries) {
    const hp = parseHostPort(v, { minPort: 1 });
    if (!hp.ok) return err('invalid_argument', `--registry: '${v}' is not host:port`, { hint: 'e.g. --registry a.example:9000,b.example:9000' });
    registryAlternates.push({ host: hp.value.host || '127.0.0.1', port: hp.value.port });
  }
  for (const [k, v] of [['registry', firstRegistry!], ['beacon', o.beacon], ['listen', o.listen], ['beacon2', o.beacon2]] as const) {
    if (v === null) continue;
    const hp = parseHostPort(v);
    if (!hp.ok) return err('invalid_argument', `--${k} '${v}' is not host:port`, { hint: `e.g. --${k} ${DEFAULT_REGISTRY_ADDR}` });
    parsed[k] = hp.value;
  }
  const registry = { host: parsed.registry!.host || '127.0.0.1', port: parsed.registry!.port };
  let compat: HostPort = { host: registry.host, port: DEFAULT_COMPAT_PORT };
  if (o.compat) {
    const hp = parseHostPort(o.compat, { minPort: 1 });
    if (!hp.ok) return err('invalid_argument', `--compat '${o.compat}' is not host:port`, { hint: 'the rendezvous --compat-addr, e.g. --compat rendezvous.example.com:443' });
    compat = { host: hp.value.host || registry.host, port: hp.value.port };
  }
  let proxy: ProxyConfig | null = null;
  if (o.proxy) {
    const p = parseProxyUrl(o.proxy);
    if (!p.ok) return p;
    proxy = p.value;
  }
  let registryFingerprint: Fingerprint | null = null;
  if (o.registryFingerprint) {
    const f = parseFingerprint(o.registryFingerprint);
    if (!f.ok) return err('invalid_argument', `--registry-fingerprint: ${f.error.message}`, { hint: f.error.hint ?? '' });
    registryFingerprint = f.value;
  }
  return ok({
    registry,
    registryAlternates,
    beacon: flagEndpoint(parsed.beacon!),
    beacon2: parsed.beacon2 ? flagEndpoint(parsed.beacon2) : null,
    listen: { host: parsed.listen!.host || '0.0.0.0', port: parsed.listen!.port },
    compat,
    proxy,
    noProxy: parseNoProxy(o.noProxy),
    registryFingerprint,
  });
}

/** A flag's `host:port` as a UDP destination (`localhost` → 127.0.0.1, no host → 0.0.0.0). */
function flagEndpoint(hp: HostPort): UdpEndpoint {
  return { ip: hostToIp(hp.host, '0.0.0.0'), port: hp.port };
}

/** Parses `--x v`, `--x=v`, `-x v` and boolean `--x` / `--x=false`. */
export function parseDaemonArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Result<DaemonOptions> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--?([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(a);
    if (!m) return err('invalid_argument', `unexpected argument '${a}'`, { hint: 'see `pilot-daemon --help`' });
    const name = m[1]!;
    if (BOOL_FLAGS.has(name)) {
      flags.set(name, m[2] ?? 'true');
    } else if (VALUE_FLAGS.has(name)) {
      const v = m[2] ?? argv[++i];
      if (v === undefined) return err('invalid_argument', `flag --${name} needs a value`);
      flags.set(name, v);
    } else {
      return err('invalid_argument', `unknown flag --${name}`, { hint: 'see `pilot-daemon --help`' });
    }
  }

  const home = flags.get('home') ?? defaultHome(env);
  const paths = homePaths(home);
  const configPath = flags.get('config') ?? null;
  const cfgFile = configPath ?? paths.config;
  // A syntax error is reported as file:line:column (core/json-text); a missing file is fine unless named by --config.
  const read = readJsonObjectFile(cfgFile);
  if (!read.ok) return err('invalid_argument', read.error.message, { hint: read.error.hint ?? 'fix or remove the config file', ...(read.error.detail ? { detail: read.error.detail } : {}) });
  if (read.value === null && configPath !== null) {
    return err('invalid_argument', `cannot read config ${cfgFile}: no such file`, { hint: 'check the --config path' });
  }
  const file: Record<string, unknown> = read.value ?? {};
  const pick = (flag: string, envName: string | null, fileKey: string, dflt: string): string => {
    const f = flags.get(flag);
    if (f !== undefined) return f;
    if (envName && env[envName]) return env[envName]!;
    const v = file[fileKey];
    return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : dflt;
  };
  const bool = (flag: string, fileKey: string): boolean => {
    const f = flags.get(flag);
    if (f !== undefined) return f !== 'false' && f !== '0';
    return file[fileKey] === true;
  };

  const opts: DaemonOptions = {
    home: paths.home,
    registry: pick('registry', 'PILOT_REGISTRY', 'registry', DEFAULT_REGISTRY_ADDR),
    beacon: pick('beacon', 'PILOT_BEACON', 'beacon', DEFAULT_BEACON_ADDR),
    beacon2: pick('beacon2', 'PILOT_BEACON2', 'beacon2', '') || null,
    listen: pick('listen', null, 'listen', '0.0.0.0:0'),
    socket: pick('socket', 'PILOT_SOCKET', 'socket', paths.socket),
    identity: pick('identity', null, 'identity', paths.identity),
    hostname: pick('hostname', null, 'hostname', '') || null,
    public: bool('public', 'public'),
    logLevel: pick('log-level', 'PILOT_LOG_LEVEL', 'log_level', 'info'),
    logFormat: pick('log-format', null, 'log_format', 'json') === 'pretty' ? 'pretty' : 'json',
    echo: !bool('no-echo', 'no_echo'),
    dataExchange: !bool('no-dataexchange', 'no_dataexchange'),
    eventStream: !bool('no-eventstream', 'no_eventstream'),
    trustAutoApprove: bool('trust-auto-approve', 'trust_auto_approve'),
    networks: pick('networks', null, 'networks', '').split(',').map((n) => n.trim()).filter((n) => n !== ''),
    relay: !bool('no-relay', 'no_relay'),
    relayOnly: bool('relay-only', 'relay_only'),
    pmtud: !bool('no-pmtud', 'no_pmtud'),
    legacy: !bool('no-legacy', 'no_legacy'),
    allowInsecureLegacy: bool('allow-insecure-legacy', 'allow_insecure_legacy'),
    legacySocket: pick('legacy-socket', null, 'legacy_socket', '') || null,
    keepaliveMs: durationMs(pick('keepalive', null, 'keepalive', '15s')),
    idleTimeoutMs: durationMs(pick('idle-timeout', null, 'idle_timeout', '60s')),
    config: configPath,
    quotas: { ...DEFAULT_STORAGE_QUOTAS },
    transport: pick('transport', 'PILOT_TRANSPORT', 'transport', 'auto') as TransportMode,
    compat: pick('compat', 'PILOT_COMPAT', 'compat', '') || null,
    proxy: (flags.get('proxy') ?? (env.HTTPS_PROXY || env.https_proxy || (typeof file.proxy === 'string' ? file.proxy : ''))) || null,
    noProxy: (env.NO_PROXY || env.no_proxy || (typeof file.no_proxy === 'string' ? file.no_proxy : '')) || null,
    registryFingerprint: pick('registry-fingerprint', 'PILOT_REGISTRY_FINGERPRINT', 'registry_fingerprint', '') || null,
    webhook: pick('webhook', 'PILOT_WEBHOOK', 'webhook', '') || null,
    webhookSecret: pick('webhook-secret', 'PILOT_WEBHOOK_SECRET', 'webhook_secret', '') || null,
    webhookEvents: pick('webhook-events', null, 'webhook_events', '') || null,
    webhookQueueLimit: Number(pick('webhook-queue-limit', null, 'webhook_queue_limit', '1000')),
  };
  if (!Number.isSafeInteger(opts.webhookQueueLimit) || opts.webhookQueueLimit! < 1 || opts.webhookQueueLimit! > 1_000_000) {
    return err('invalid_argument', 'invalid --webhook-queue-limit', { hint: 'a whole number of events, 1–1000000 (default 1000)' });
  }
  if (opts.webhook) {
    const t = makeTarget(opts.webhook, opts.webhookSecret, opts.webhookEvents);
    if (!t.ok) return t;
  }
  for (const q of QUOTA_FLAGS) {
    const raw = pick(q.flag, null, q.flag.replace(/-/g, '_'), '');
    if (raw === '') continue;
    const n = q.size ? sizeBytes(raw) : /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < 0) {
      return err('invalid_argument', `invalid --${q.flag} '${raw}'`, {
        hint: q.size ? 'a size like 64MiB, 512MB, 2GiB or a byte count; 0 = no limit' : 'a whole number; 0 = no limit',
      });
    }
    opts.quotas[q.key] = n;
  }
  if (opts.listen.startsWith(':')) opts.listen = '0.0.0.0' + opts.listen;
  const addrs = parseDaemonAddresses(opts);
  if (!addrs.ok) return addrs;
  if (!TRANSPORT_MODES.includes(opts.transport)) {
    return err('invalid_argument', `invalid --transport '${opts.transport}'`, { hint: 'auto (default), udp or tcp' });
  }
  if (opts.transport === 'tcp' && !opts.relay) {
    return err('invalid_argument', '--transport tcp carries everything through the rendezvous relay; it cannot go with --no-relay', { hint: 'drop --no-relay, or use --transport auto' });
  }
  if (opts.hostname !== null && !isHostname(opts.hostname)) {
    return err('invalid_argument', `invalid hostname '${opts.hostname}'`, { hint: HOSTNAME_HINT });
  }
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(opts.logLevel)) {
    return err('invalid_argument', `invalid --log-level '${opts.logLevel}'`, { hint: 'debug, info, warn or error' });
  }
  if (!Number.isFinite(opts.keepaliveMs) || !Number.isFinite(opts.idleTimeoutMs)) {
    return err('invalid_argument', 'invalid --keepalive or --idle-timeout', { hint: 'durations like 15s, 500ms, 2m' });
  }
  return ok(opts);
}

/** "64MiB" / "64M" / "512MB" / "2GiB" / "1048576" → bytes (K/M/G and KB/MB/GB are binary too); NaN if malformed. */
export function sizeBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(s.trim());
  if (!m) return NaN;
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.round(Number(m[1]) * mult);
}

/** "15s" / "500ms" / "2m" / "30" (seconds) → ms; NaN if malformed. */
export function durationMs(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60000 : 3600000);
}
