// `pilotctl config` (show everything; `--set key=value`, as before) and `config get|set|unset|show`: the daemon's
// settings in <home>/config.json, keyed as pilot-daemon reads them (src/node/daemon-options.ts: the flag's name
// with '_' for '-'; the flag spelling is accepted too). Values of known keys are checked with the same parsers
// the daemon uses, so a value `config set` accepts is one `daemon start` accepts. Precedence when the daemon
// starts: flag > environment > file > default; `get`/`show` report the environment-or-file-or-default one.
// Writes are atomic (core/safe-file) and never replace a file that does not parse.
import { err, ok, type Result } from '../core/result.js';
import { readJsonObjectFile } from '../core/json-text.js';
import { writeFileSafe } from '../core/safe-file.js';
import { homePaths } from '../ipc/paths.js';
import { DEFAULT_STORAGE_QUOTAS, QUOTA_FLAGS, durationMs, sizeBytes } from '../node/daemon-options.js';
import { prepareHome } from '../node/home.js';
import { DEFAULT_BEACON_ADDR, DEFAULT_REGISTRY_ADDR, parseHostPort } from '../wire/endpoint.js';
import { HOSTNAME_HINT, isHostname } from '../wire/hostname.js';
import { usageErr } from './args.js';
import { defineCommand, type CliContext, type Command } from './command.js';
import { table } from './output.js';

export type ConfigValue = string | number | boolean;
type Kind = 'hostport' | 'hostports' | 'bool' | 'duration' | 'size' | 'count' | 'hostname' | 'path' | 'url' | 'text' | readonly string[];

export interface ConfigKey {
  /** The key in config.json (what pilot-daemon reads). */
  key: string;
  kind: Kind;
  /** Environment variable that overrides the file. */
  env?: string;
  /** Default when neither environment nor file sets it; a function of the home for paths; null = unset. */
  dflt: ConfigValue | null | ((home: string) => string);
  description: string;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** Every setting pilot-daemon reads from config.json. */
export const CONFIG_KEYS: readonly ConfigKey[] = [
  { key: 'registry', kind: 'hostports', env: 'PILOT_REGISTRY', dflt: DEFAULT_REGISTRY_ADDR, description: 'rendezvous registry (TCP); a:9000,b:9000 = replicas, tried in turn' },
  { key: 'beacon', kind: 'hostport', env: 'PILOT_BEACON', dflt: DEFAULT_BEACON_ADDR, description: 'rendezvous beacon (UDP, NAT discovery and relay)' },
  { key: 'beacon2', kind: 'hostport', env: 'PILOT_BEACON2', dflt: null, description: 'second beacon address (another IP of the rendezvous)' },
  { key: 'listen', kind: 'hostport', dflt: '0.0.0.0:0', description: 'UDP tunnel address' },
  { key: 'hostname', kind: 'hostname', dflt: null, description: 'hostname to register' },
  { key: 'public', kind: 'bool', dflt: false, description: 'public node (anyone may look it up and open tunnels)' },
  { key: 'socket', kind: 'path', env: 'PILOT_SOCKET', dflt: (h) => homePaths(h).socket, description: 'control socket' },
  { key: 'identity', kind: 'path', dflt: (h) => homePaths(h).identity, description: 'Ed25519 identity file' },
  { key: 'log_level', kind: LOG_LEVELS, env: 'PILOT_LOG_LEVEL', dflt: 'info', description: 'daemon log level' },
  { key: 'log_format', kind: ['json', 'pretty'], dflt: 'json', description: 'daemon log format' },
  { key: 'keepalive', kind: 'duration', dflt: '15s', description: 'tunnel keepalive interval' },
  { key: 'idle_timeout', kind: 'duration', dflt: '60s', description: 'close silent connections after this long' },
  { key: 'no_echo', kind: 'bool', dflt: false, description: 'disable the echo service (port 7)' },
  { key: 'no_dataexchange', kind: 'bool', dflt: false, description: 'disable data exchange (port 1001)' },
  { key: 'no_eventstream', kind: 'bool', dflt: false, description: 'disable the event stream broker (port 1002)' },
  { key: 'trust_auto_approve', kind: 'bool', dflt: false, description: 'approve every handshake request' },
  { key: 'no_relay', kind: 'bool', dflt: false, description: 'never fall back to the beacon relay' },
  { key: 'relay_only', kind: 'bool', dflt: false, description: 'reach peers only through the beacon relay' },
  { key: 'no_legacy', kind: 'bool', dflt: false, description: 'never fall back to the original v0.5 tunnel suite' },
  { key: 'allow_insecure_legacy', kind: 'bool', dflt: false, description: "accept the original's plaintext PILT / unauthenticated PILK frames" },
  { key: 'legacy_socket', kind: 'path', dflt: null, description: 'also serve the original pilotctl protocol on this socket' },
  // Compat transport (TCP/TLS/WebSocket to the rendezvous when UDP is blocked).
  { key: 'transport', kind: ['auto', 'udp', 'tcp'], env: 'PILOT_TRANSPORT', dflt: 'auto', description: 'carrier to the rendezvous: auto, udp or tcp' },
  { key: 'compat', kind: 'hostport', env: 'PILOT_COMPAT', dflt: null, description: "rendezvous compat (TLS) address; default the registry's host:443" },
  { key: 'proxy', kind: 'url', env: 'HTTPS_PROXY', dflt: null, description: 'HTTP CONNECT proxy, http://[user:pass@]host:port' },
  { key: 'no_proxy', kind: 'text', env: 'NO_PROXY', dflt: null, description: 'hosts reached without the proxy (comma-separated)' },
  { key: 'registry_fingerprint', kind: 'text', env: 'PILOT_REGISTRY_FINGERPRINT', dflt: null, description: "pinned SHA-256 of the rendezvous's TLS certificate" },
  { key: 'webhook', kind: 'url', env: 'PILOT_WEBHOOK', dflt: null, description: 'POST node events to this URL (docs/webhooks.md; pilotctl set-webhook does it at run time)' },
  { key: 'webhook_events', kind: 'text', dflt: null, description: 'only these webhook event types (a,b or groups like trust.*); default all' },
  { key: 'webhook_queue_limit', kind: 'count', dflt: 1000, description: 'webhook events kept while the receiver is away' },
  ...QUOTA_FLAGS.map((q): ConfigKey => ({
    key: q.flag.replace(/-/g, '_'),
    kind: q.size ? 'size' : 'count',
    dflt: q.size ? `${DEFAULT_STORAGE_QUOTAS[q.key] / 1024 / 1024}MiB` : DEFAULT_STORAGE_QUOTAS[q.key],
    description: `${q.flag.replace(/-/g, ' ')} (0 = no limit)`,
  })),
];

/** The table entry for `name` (config key or flag spelling: `log-level`, `--log-level`), or null. */
export function configKey(name: string): ConfigKey | null {
  const k = name.replace(/^--/, '').replace(/-/g, '_');
  return CONFIG_KEYS.find((c) => c.key === k) ?? null;
}

function kindText(kind: Kind): string {
  if (typeof kind !== 'string') return kind.join(', ');
  return {
    hostport: 'HOST:PORT',
    hostports: 'HOST:PORT[,HOST:PORT…]',
    bool: 'true or false',
    duration: 'a duration like 500ms, 15s, 2m',
    size: 'a size like 64MiB, 512MB, 2GiB or a byte count (0 = no limit)',
    count: 'a whole number (0 = no limit)',
    hostname: HOSTNAME_HINT,
    path: 'a file path',
    url: 'http://[user:pass@]host:port',
    text: 'text',
  }[kind];
}

/** Edit distance, for "did you mean" on a mistyped key. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

function unknownKey(name: string): Result<never> {
  const k = name.replace(/-/g, '_');
  const near = CONFIG_KEYS.map((c) => c.key).filter((c) => distance(c, k) <= 2 || (k.length >= 4 && c.includes(k)));
  return err('invalid_argument', `unknown config key '${name}'`, {
    hint: (near.length ? `did you mean ${near.slice(0, 3).join(' or ')}? ` : '') + 'list the keys with: pilotctl config show',
  });
}

/**
 * Check `raw` for `key` and convert it to what config.json stores (booleans and counts as JSON booleans/numbers,
 * the rest as text). Errors: `invalid_argument` naming the key and the expected form. Pure.
 */
export function parseConfigValue(k: ConfigKey, raw: string): Result<ConfigValue> {
  const v = raw.trim();
  const bad = (): Result<never> =>
    err('invalid_argument', `invalid value for ${k.key}: '${raw.slice(0, 80)}'`, { hint: `${k.key} takes ${kindText(k.kind)}; e.g. pilotctl config set ${k.key} ${example(k)}` });
  const kind = k.kind;
  if (typeof kind !== 'string') return kind.includes(v) ? ok(v) : bad();
  switch (kind) {
    case 'hostport':
      return parseHostPort(v).ok && v !== '' ? ok(v) : bad();
    case 'hostports':
      return v !== '' && v.split(',').every((x) => parseHostPort(x).ok) ? ok(v) : bad();
    case 'bool': {
      const b = v.toLowerCase();
      if (['true', 'yes', 'on', '1'].includes(b)) return ok(true);
      if (['false', 'no', 'off', '0'].includes(b)) return ok(false);
      return bad();
    }
    case 'duration':
      return Number.isFinite(durationMs(v)) ? ok(v) : bad();
    case 'size': {
      const n = sizeBytes(v);
      return Number.isSafeInteger(n) && n >= 0 ? ok(v) : bad();
    }
    case 'count':
      return /^\d{1,15}$/.test(v) ? ok(Number(v)) : bad();
    case 'hostname':
      return isHostname(v) ? ok(v) : bad();
    case 'url':
      return /^https?:\/\/[^\s/]+/.test(v) ? ok(v) : bad();
    case 'path':
    case 'text':
      return v !== '' ? ok(v) : bad();
  }
}

function example(k: ConfigKey): string {
  const kind = k.kind;
  if (typeof kind !== 'string') return kind[0]!;
  return { hostport: k.key === 'listen' ? '0.0.0.0:4000' : '10.0.0.5:9000', hostports: '10.0.0.5:9000,10.0.0.6:9000', bool: 'true', duration: '30s', size: '64MiB', count: '100', hostname: 'my-agent', path: '/path/to/file', url: 'http://proxy.example:3128', text: 'value' }[kind];
}

export interface EffectiveValue {
  value: ConfigValue | null;
  source: 'env' | 'file' | 'default';
  env?: string;
}

/** What the daemon would use for `k` absent a flag: environment > file > default. Pure. */
export function effectiveValue(k: ConfigKey, file: Record<string, unknown>, env: NodeJS.ProcessEnv, home: string): EffectiveValue {
  if (k.env && env[k.env]) return { value: env[k.env]!, source: 'env', env: k.env };
  const f = file[k.key];
  if (typeof f === 'string' || typeof f === 'number' || typeof f === 'boolean') return { value: f, source: 'file' };
  const d = typeof k.dflt === 'function' ? k.dflt(home) : k.dflt;
  return { value: d, source: 'default' };
}

/** <home>/config.json as an object ({} when absent). Errors: its syntax (file:line:column), `internal`. Does I/O. */
export function loadConfig(home: string): Result<Record<string, unknown>> {
  const r = readJsonObjectFile(homePaths(home).config);
  if (!r.ok) return r;
  return ok(r.value ?? {});
}

export function saveConfig(home: string, cfg: Record<string, unknown>): Result<void> {
  const h = prepareHome(home);
  if (!h.ok) return h;
  const saved = writeFileSafe(homePaths(home).config, JSON.stringify(cfg, null, 2) + '\n');
  if (!saved.ok) return err('internal', `save config: ${saved.error.message}`, { hint: saved.error.hint ?? '' });
  return ok();
}

/** A key and its checked value; unknown keys are refused (they would be silently ignored by the daemon). */
function checkSetting(name: string, raw: string): Result<{ key: string; value: ConfigValue }> {
  const k = configKey(name);
  if (!k) return unknownKey(name);
  const v = parseConfigValue(k, raw);
  if (!v.ok) return v;
  return ok({ key: k.key, value: v.value });
}

function fullConfig(ctx: CliContext): Result<Record<string, unknown>> {
  const cfg = loadConfig(ctx.home);
  if (!cfg.ok) return cfg;
  const paths = homePaths(ctx.home);
  const effective: Record<string, EffectiveValue> = {};
  // A proxy URL may carry a password: shown masked (config get proxy prints it as stored).
  const mask = (v: unknown): unknown => (typeof v === 'string' ? v.replace(/^(\w+:\/\/[^:@/]*):[^@/]*@/, '$1:***@') : v);
  const shown: Record<string, unknown> = { ...cfg.value };
  for (const k of CONFIG_KEYS) {
    const e = effectiveValue(k, cfg.value, ctx.io.env, paths.home);
    if (k.kind === 'url') {
      e.value = mask(e.value) as ConfigValue | null;
      if (k.key in shown) shown[k.key] = mask(shown[k.key]);
    }
    effective[k.key] = e;
  }
  return ok({
    registry: ctx.io.env.PILOT_REGISTRY ?? DEFAULT_REGISTRY_ADDR,
    ...shown,
    home: paths.home,
    config_path: paths.config,
    pid_file: paths.pidFile,
    log_file: paths.logFile,
    socket: ctx.socketPath,
    effective,
  });
}

async function setAndSave(ctx: CliContext, key: string, value: ConfigValue): Promise<Result<{ previous: unknown }>> {
  const cfg = loadConfig(ctx.home); // a file that does not parse is refused, never overwritten
  if (!cfg.ok) return cfg;
  const previous = cfg.value[key] ?? null;
  cfg.value[key] = value;
  const s = saveConfig(ctx.home, cfg.value);
  if (!s.ok) return s;
  return ok({ previous });
}

function overrideNote(ctx: CliContext, key: string): string | null {
  const k = configKey(key);
  return k?.env && ctx.io.env[k.env] ? k.env : null;
}

const config = defineCommand<{ set: { key: string; value: ConfigValue } | null }>({
  name: 'config',
  group: 'Bootstrap',
  summary: 'Show the configuration (<home>/config.json plus defaults) or set one key',
  args: [],
  flags: [{ name: 'set', kind: 'string', value: 'key=value', description: 'store a value (checked like `config set`; true/false become booleans)' }],
  returns: 'current configuration (config_path, pid_file, log_file, socket, registry, …, effective {key: {value, source}}); with --set: key, value',
  errors: ['internal', 'unsafe_home'],
  parse(a) {
    const s = a.flags.get('set');
    if (s === undefined) return ok({ set: null });
    const m = typeof s === 'string' ? /^([A-Za-z_][A-Za-z0-9_-]*)=([\s\S]*)$/.exec(s) : null;
    if (!m) return err('invalid_argument', 'usage: pilotctl config --set key=value', { hint: 'e.g. pilotctl config --set registry=127.0.0.1:9000' });
    const c = checkSetting(m[1]!, m[2]!);
    if (!c.ok) return c;
    return ok({ set: c.value });
  },
  async run(ctx, p) {
    if (p.set) {
      const { key, value } = p.set;
      const r = await setAndSave(ctx, key, value);
      if (!r.ok) return r;
      return ok({ data: { key, value }, text: `${key} = ${JSON.stringify(value)}\n` });
    }
    const data = fullConfig(ctx);
    if (!data.ok) return data;
    return ok({ data: data.value });
  },
});

const get = defineCommand<string>({
  name: 'config get',
  group: 'Bootstrap',
  summary: 'Print one setting as the daemon would use it (environment > config.json > default)',
  args: [{ name: 'key', required: true, description: 'a config key (registry, beacon, hostname, log_level, …) or its flag name' }],
  flags: [],
  returns: 'key, value (null when unset), source (env|file|default), env (when from the environment), config_path',
  errors: ['internal'],
  parse(a) {
    const name = a.positional[0]!;
    if (!configKey(name) && !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) return unknownKey(name);
    return ok(name);
  },
  async run(ctx, name) {
    const cfg = loadConfig(ctx.home);
    if (!cfg.ok) return cfg;
    const k = configKey(name);
    const path = homePaths(ctx.home).config;
    let e: EffectiveValue;
    let key = name;
    if (k) {
      key = k.key;
      e = effectiveValue(k, cfg.value, ctx.io.env, homePaths(ctx.home).home);
    } else if (name in cfg.value) {
      e = { value: cfg.value[name] as ConfigValue, source: 'file' };
    } else return unknownKey(name);
    const data = { key, ...e, config_path: path };
    const shown = e.value === null ? '' : typeof e.value === 'string' ? e.value : JSON.stringify(e.value);
    return ok({ data, text: shown + '\n' });
  },
});

const set = defineCommand<{ key: string; value: ConfigValue }>({
  name: 'config set',
  group: 'Bootstrap',
  summary: 'Store one setting in <home>/config.json (checked: HOST:PORT, true/false, durations, sizes); the next daemon start uses it',
  args: [
    { name: 'key', required: true, description: 'a config key (registry, beacon, hostname, log_level, …) or its flag name' },
    { name: 'value', required: true },
  ],
  flags: [],
  returns: 'key, value, previous (null when it was unset), config_path, overridden_by (env var that wins over the file, when set)',
  errors: ['internal', 'unsafe_home'],
  parse(a) {
    return checkSetting(a.positional[0]!, a.positional[1]!);
  },
  async run(ctx, p) {
    const r = await setAndSave(ctx, p.key, p.value);
    if (!r.ok) return r;
    const over = overrideNote(ctx, p.key);
    const data = { key: p.key, value: p.value, previous: r.value.previous, config_path: homePaths(ctx.home).config, ...(over ? { overridden_by: over } : {}) };
    const text = `${p.key} = ${JSON.stringify(p.value)}\n` + (over ? `note: ${over} is set in the environment and wins over the file\n` : '');
    return ok({ data, text });
  },
});

const unset = defineCommand<string>({
  name: 'config unset',
  group: 'Bootstrap',
  summary: 'Remove one setting from <home>/config.json (back to the default)',
  args: [{ name: 'key', required: true }],
  flags: [],
  returns: 'key, previous (null when it was not set), config_path',
  errors: ['internal', 'unsafe_home'],
  parse(a) {
    const name = a.positional[0]!;
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) return usageErr(`invalid config key '${name}'`, 'config unset');
    return ok(name);
  },
  async run(ctx, name) {
    const cfg = loadConfig(ctx.home);
    if (!cfg.ok) return cfg;
    const key = configKey(name)?.key ?? name;
    if (!(key in cfg.value) && !configKey(name)) return unknownKey(name);
    const previous = cfg.value[key] ?? null;
    if (key in cfg.value) {
      delete cfg.value[key];
      const s = saveConfig(ctx.home, cfg.value);
      if (!s.ok) return s;
    }
    return ok({ data: { key, previous, config_path: homePaths(ctx.home).config }, text: previous === null ? `${key} was not set\n` : `${key} unset (was ${JSON.stringify(previous)})\n` });
  },
});

const show = defineCommand<null>({
  name: 'config show',
  group: 'Bootstrap',
  summary: 'Every setting with its value and where it comes from (environment, config.json or default)',
  args: [],
  flags: [],
  returns: 'as `config`: config_path, pid_file, log_file, socket, the file’s keys, effective {key: {value, source, env}}',
  errors: ['internal'],
  parse: () => ok(null),
  async run(ctx) {
    const data = fullConfig(ctx);
    if (!data.ok) return data;
    const eff = data.value.effective as Record<string, EffectiveValue>;
    const rows = Object.entries(eff).map(([k, e]) => [k, e.value === null ? '-' : String(e.value), e.source === 'env' ? `env ${e.env}` : e.source]);
    const text = `config file: ${String(data.value.config_path)}\n\n` + table(['KEY', 'VALUE', 'SOURCE'], rows) + '\nset one with: pilotctl config set KEY VALUE   (flags to daemon start win over all of these)\n';
    return ok({ data: data.value, text });
  },
});

export const CONFIG_COMMANDS: Command[] = [config, get, set, unset, show];
