// pilotctl entry: one command table drives parsing, help, and the `context` catalogue.
// Exit codes: 0 ok, 1 failure (error on stderr), 2 usage error (invalid_argument before any I/O).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRORS, pilotError, type PilotError } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { resolveHome, resolveSocketPath } from '../ipc/paths.js';
import { PilotClient } from '../sdk/client.js';
import { extractGlobals, GLOBAL_FLAGS, parseCommandArgs, parseDurationMs, usageErr, type FlagSpec } from './args.js';
import { defineCommand, usageLine, type CliContext, type Command } from './command.js';
import { NODE_COMMANDS } from './commands.js';
import { FILES_COMMANDS } from './files-cmd.js';
import { DAEMON_COMMANDS } from './daemon-ctl.js';
import { CONFIG_COMMANDS, CONFIG_KEYS } from './config-cmd.js';
import { completionCommand } from './completion.js';
import { examplesOf } from './examples.js';
import { RENDEZVOUS_COMMANDS } from './rendezvous-ctl.js';
import { MCP_COMMANDS } from './mcp.js';
import { HEALTH_COMMANDS } from './health.js';
import { MESSAGE_COMMANDS } from './messages-cmd.js';
import { SKILLS_COMMANDS } from './skills.js';
import { AUDIT_COMMANDS } from './audit-cmd.js';
import { POLICY_COMMANDS } from './policy-cmd.js';
import { WEBHOOK_COMMANDS } from './webhook-cmd.js';
import { KEY_COMMANDS } from './keys-cmd.js';
import { NETWORK_COMMANDS } from './network-cmd.js';
import { writeError, writeJsonOk, type CliIo } from './output.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The version in package.json (found by walking up from this module, compiled or not). */
export function pilotVersion(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(d, 'package.json');
    if (existsSync(p)) {
      try {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'pilot-node' && pkg.version) return pkg.version;
      } catch {
        /* keep looking */
      }
    }
    d = dirname(d);
  }
  return '0.0.0';
}

const ERROR_DESCRIPTIONS: Record<keyof typeof ERRORS, string> = {
  invalid_argument: 'Bad input or usage error (do not retry); exit code 2 when caught before contacting the daemon',
  not_found: 'Resource not found (hostname/name resolve failure)',
  already_exists: 'Duplicate operation (daemon already running, hostname taken)',
  not_running: 'Service not available (daemon not running)',
  connection_failed: 'Network or dial failure (may retry)',
  timeout: 'Operation timed out (may retry with longer timeout)',
  internal: 'Unexpected system error',
  unsafe_home: 'The home directory is owned or writable by another user (fix its owner/mode, do not retry)',
  daemon_unverified: 'The socket is not served by this home\'s daemon (socket owner or node-key proof failed); nothing was sent',
  quota_exceeded: "The receiver's storage limit for this sender (or in total) is reached; nothing was stored (retry after it is cleared)",
  identity_changed: 'The registry maps a trusted peer (hostname or node id) to another node or key than the pinned one (never retried silently)',
  fingerprint_mismatch: "The rendezvous's TLS certificate is not the pinned (--registry-fingerprint) or first-seen one; the daemon does not use it (never retried silently)",
  proxy_failed: 'The HTTP CONNECT proxy refused or failed the tunnel to the rendezvous (status in the message; check the proxy URL, credentials, NO_PROXY)',
  policy_denied: "The network's policy denies this connection (the deciding rule is in the message and detail; never retried)",
  permission_denied: 'The caller may not do this (network owner or admin only); do not retry',
  verify_failed: 'An audit export failed verification: the first bad record (line, seq) and why (edited, missing, reordered, bad_signature, torn, truncated, header, wrong_key) are in the message and detail',
  key_retired: 'The identity key was rotated out of its node (rotate-key): the registry and peers refuse it (use the new identity file)',
  hash_mismatch: "The received file's SHA-256 differs from the sender's; it was not kept (send it again)",
};

const version = defineCommand<null>({
  name: 'version',
  group: 'Meta',
  summary: 'Print the pilotctl version',
  args: [],
  flags: [],
  returns: 'version, node',
  errors: [],
  parse: () => ok(null),
  async run() {
    const v = pilotVersion();
    return ok({ data: { version: v, node: process.version }, text: `pilotctl ${v} (node ${process.version})\n` });
  },
});

const demo = defineCommand<{ keep: boolean; benchMb: number }>({
  name: 'demo',
  group: 'Meta',
  summary: 'Run a local rendezvous and two daemons in a temp home and walk through trust, streams, messages, pub/sub, ping and bench',
  args: [],
  flags: [
    { name: 'bench-mb', kind: 'int', value: '<n>', description: 'bench size in MB (default 100)' },
    { name: 'keep', kind: 'bool', description: 'keep the temp home (logs) after the run' },
  ],
  returns: 'steps [{step, ok, ms, detail}], summary {trust_ms, ping_rtt_ms, bench_mbps}',
  errors: ['internal', 'timeout', 'connection_failed'],
  parse(a) {
    const b = a.flags.get('bench-mb');
    const mb = b === undefined ? 100 : typeof b === 'string' && /^\d{1,6}$/.test(b) && Number(b) > 0 ? Number(b) : NaN;
    if (!Number.isFinite(mb)) return err('invalid_argument', `invalid --bench-mb '${String(b)}'`, { hint: 'a whole number of MB, at least 1' });
    return ok({ keep: a.flags.get('keep') === true, benchMb: mb });
  },
  async run(ctx, p) {
    const { runDemo } = await import('./demo.js');
    return runDemo(ctx, p);
  },
});

function flagText(f: FlagSpec): string {
  return `--${f.name}${f.kind === 'bool' ? '' : ' ' + (f.value ?? '<value>')}`;
}

function catalogue(commands: Command[]): Record<string, unknown> {
  const cmds: Record<string, unknown> = {};
  for (const c of commands) {
    cmds[c.name] = {
      args: [
        ...c.args.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`) + (a.variadic ? '...' : '')),
        ...c.flags.map((f) => `[${flagText(f)}]`),
      ],
      description: c.summary,
      returns: c.returns,
      group: c.group,
      usage: usageLine(c),
      positional: c.args.map((a) => ({ name: a.name, required: a.required, variadic: a.variadic === true, ...(a.description ? { description: a.description } : {}) })),
      flags: c.flags.map((f) => ({ name: `--${f.name}`, type: f.kind, ...(f.value ? { value: f.value } : {}), description: f.description })),
      errors: ['invalid_argument', ...c.errors.filter((e) => e !== 'invalid_argument')],
      examples: examplesOf(c.name),
    };
  }
  const errorCodes: Record<string, string> = {};
  for (const [code, d] of Object.entries(ERROR_DESCRIPTIONS)) errorCodes[code] = d;
  return {
    version: '1.2',
    pilotctl_version: pilotVersion(),
    commands: cmds,
    error_codes: errorCodes,
    error_hints: Object.fromEntries(Object.entries(ERRORS).map(([k, v]) => [k, v.hint])),
    global_flags: Object.fromEntries(GLOBAL_FLAGS.map((f) => [flagText(f), f.description])),
    output: {
      success: '{"status":"ok","data":{…}} on stdout, exit 0',
      error: '{"status":"error","code":"…","message":"…","hint":"…"} on stderr, exit 1 (usage errors: exit 2)',
      streaming: 'unbounded subscribe/listen print one JSON object per line (NDJSON)',
    },
    environment: {
      PILOT_HOME: 'daemon home directory (default ~/.pilot)',
      PILOT_SOCKET: 'daemon socket path (default <home>/pilot.sock)',
      PILOT_REGISTRY: 'registry address for daemon start',
    },
    config_file: '<home>/config.json',
    config_keys: Object.fromEntries(CONFIG_KEYS.map((k) => [k.key, k.description])),
  };
}

function helpText(commands: Command[]): string {
  const groups = new Map<string, Command[]>();
  for (const c of commands) groups.set(c.group, [...(groups.get(c.group) ?? []), c]);
  let s = 'pilotctl — Pilot Protocol CLI\n\nGlobal flags:\n';
  for (const f of GLOBAL_FLAGS) s += `  ${flagText(f).padEnd(18)} ${f.description}\n`;
  for (const [g, cs] of groups) {
    s += `\n${g}:\n`;
    for (const c of cs) s += `  ${usageLine(c)}\n`;
  }
  s += '\n`pilotctl help <command>` shows one with examples; `source <(pilotctl completion bash)` completes them (zsh, fish too).\n';
  s += 'Agents: `pilotctl --json context` lists every command, flag, output field and error code.\n';
  return s;
}

function commandHelp(c: Command): string {
  let s = `usage: ${usageLine(c)}\n\n${c.summary}\n`;
  if (c.args.length) {
    s += '\narguments:\n';
    for (const a of c.args) s += `  ${(a.required ? `<${a.name}>` : `[${a.name}]`).padEnd(20)} ${a.description ?? ''}\n`;
  }
  if (c.flags.length) {
    s += '\nflags:\n';
    for (const f of c.flags) s += `  ${flagText(f).padEnd(24)} ${f.description}\n`;
  }
  s += `\nreturns (--json data): ${c.returns}\n`;
  const ex = examplesOf(c.name);
  if (ex.length) s += `\nexamples:\n${ex.map((e) => `  ${e}\n`).join('')}`;
  return s;
}

export const COMMANDS: Command[] = [];

const context = defineCommand<null>({
  name: 'context',
  group: 'Meta',
  summary: 'Machine-readable catalogue of commands, arguments, flags, outputs and error codes (for agents)',
  args: [],
  flags: [],
  returns: 'version, commands {name: {args, description, returns, usage, positional, flags, errors, examples}}, error_codes, global_flags, environment, config_file',
  errors: [],
  parse: () => ok(null),
  async run() {
    return ok({ data: catalogue(COMMANDS) });
  },
});

const help = defineCommand<string | null>({
  name: 'help',
  group: 'Meta',
  summary: 'Show usage for all commands or one',
  args: [{ name: 'command', required: false, variadic: true }],
  flags: [],
  returns: 'usage (text); with a command: command, usage, description, args, flags, returns',
  errors: [],
  parse(a) {
    if (a.positional.length === 0) return ok(null);
    const name = a.positional.join(' ');
    if (!COMMANDS.some((c) => c.name === name)) return usageErr(`unknown command: ${name}`);
    return ok(name);
  },
  async run(_ctx, name) {
    if (name === null) return ok({ data: { usage: helpText(COMMANDS), commands: COMMANDS.map((c) => c.name) }, text: helpText(COMMANDS) });
    const c = COMMANDS.find((x) => x.name === name)!;
    const entry = (catalogue([c]).commands as Record<string, Record<string, unknown>>)[c.name]!;
    return ok({ data: { command: c.name, ...entry }, text: commandHelp(c) });
  },
});

COMMANDS.push(...DAEMON_COMMANDS, ...RENDEZVOUS_COMMANDS, ...NODE_COMMANDS, ...FILES_COMMANDS, ...CONFIG_COMMANDS, context, help, completionCommand(() => COMMANDS, pilotVersion), version, demo);
COMMANDS.push(...MCP_COMMANDS, ...SKILLS_COMMANDS, ...HEALTH_COMMANDS);
COMMANDS.push(...AUDIT_COMMANDS, ...POLICY_COMMANDS);
COMMANDS.push(...WEBHOOK_COMMANDS);
COMMANDS.push(...KEY_COMMANDS); // issue 14: init, rotate-key (src/cli/keys-cmd.ts)
COMMANDS.push(...MESSAGE_COMMANDS);
COMMANDS.push(...NETWORK_COMMANDS);

/** Commands that have subcommands (`daemon start`), for a helpful message on `pilotctl daemon`. */
function subcommandsOf(word: string): string[] {
  return COMMANDS.filter((c) => c.name.startsWith(word + ' ')).map((c) => c.name.slice(word.length + 1));
}

export interface RunOptions {
  /** Aborted on SIGINT: streaming commands stop and print what they have. */
  signal?: AbortSignal;
}

/** Run pilotctl with `argv` (without node and script). Never throws for expected failures; returns the exit code. */
export async function runCli(argv: string[], io: CliIo, opts: RunOptions = {}): Promise<number> {
  const isJsonEarly = argv.includes('--json');
  const fail = (e: PilotError, code: number, isJson = isJsonEarly): number => {
    writeError(io, isJson, e);
    return code;
  };

  const split = extractGlobals(argv);
  if (!split.ok) return fail(split.error, EXIT_USAGE);
  const { globals, rest } = split.value;
  const isJson = globals.get('json') === true;

  if (rest.length === 0 || rest[0] === '--help' || rest[0] === '-h') {
    if (rest.length === 0 && isJson) return fail(pilotError('invalid_argument', 'missing command', { hint: "run 'pilotctl context' for the full command list" }), EXIT_USAGE, isJson);
    io.stderr.write(helpText(COMMANDS));
    return rest.length === 0 ? EXIT_USAGE : EXIT_OK;
  }
  if (rest[0] === '--version') rest[0] = 'version';

  let cmd: Command | undefined;
  let cmdArgv: string[];
  const two = rest.length >= 2 ? `${rest[0]} ${rest[1]}` : '';
  cmd = COMMANDS.find((c) => c.name === two);
  if (cmd) cmdArgv = rest.slice(2);
  else {
    cmd = COMMANDS.find((c) => c.name === rest[0]);
    cmdArgv = rest.slice(1);
    // `config bogus`: a command that also has subcommands, given a word it takes no argument for.
    if (cmd && cmd.args.length === 0 && rest[1] !== undefined && !rest[1].startsWith('-') && subcommandsOf(rest[0]!).length > 0) {
      const subs = subcommandsOf(rest[0]!);
      return fail(pilotError('invalid_argument', `unknown ${rest[0]} subcommand: ${rest[1]}`, { hint: `available: pilotctl ${rest[0]} | ${subs.map((x) => `${rest[0]} ${x}`).join(' | ')}` }), EXIT_USAGE, isJson);
    }
  }
  if (!cmd) {
    const subs = subcommandsOf(rest[0]!);
    if (subs.length > 0) {
      const msg = rest.length >= 2 ? `unknown ${rest[0]} subcommand: ${rest[1]}` : 'missing subcommand';
      return fail(pilotError('invalid_argument', msg, { hint: `available: pilotctl ${rest[0]} ${subs.join(' | ')}` }), EXIT_USAGE, isJson);
    }
    return fail(pilotError('invalid_argument', `unknown command: ${rest[0]}`, { hint: "run 'pilotctl help' or 'pilotctl context' for the full command list" }), EXIT_USAGE, isJson);
  }
  if (cmdArgv.includes('--help') || cmdArgv.includes('-h')) {
    if (isJson) writeJsonOk(io, { command: cmd.name, usage: usageLine(cmd) });
    else io.stdout.write(commandHelp(cmd));
    return EXIT_OK;
  }

  let timeoutMs: number | undefined;
  const t = globals.get('timeout');
  if (typeof t === 'string') {
    timeoutMs = parseDurationMs(t);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      return fail(pilotError('invalid_argument', `invalid --timeout '${t}'`, { hint: 'durations look like 500ms, 10s, 2m or a number of seconds' }), EXIT_USAGE, isJson);
    }
  }

  const parsed = parseCommandArgs(cmdArgv, cmd.args, cmd.flags, cmd.name);
  if (!parsed.ok) return fail(parsed.error, EXIT_USAGE, isJson);

  const homeFlag = globals.get('home');
  const socketFlag = globals.get('socket');
  const home = resolveHome(typeof homeFlag === 'string' ? homeFlag : undefined, io.env);
  const socketPath = resolveSocketPath({ socketPath: typeof socketFlag === 'string' ? socketFlag : undefined, home: typeof homeFlag === 'string' ? homeFlag : undefined }, io.env);

  let client: PilotClient | null = null;
  const ctx: CliContext = {
    io,
    isJson,
    home,
    socketPath,
    timeoutMs,
    globals,
    signal: opts.signal ?? new AbortController().signal,
    async client(): Promise<Result<PilotClient>> {
      if (client) return ok(client);
      const c = await PilotClient.connect({ socketPath, home });
      if (!c.ok) return c;
      client = c.value;
      return c;
    },
  };

  const p = cmd.parse(parsed.value, ctx);
  if (!p.ok) return fail(p.error, EXIT_USAGE, isJson);

  let r;
  try {
    r = await cmd.run(ctx, p.value);
  } catch (e) {
    // A throw is a bug; still honour the output contract.
    r = err('internal', `pilotctl bug in '${cmd.name}': ${(e as Error)?.message ?? String(e)}`);
  } finally {
    (client as PilotClient | null)?.close();
  }
  if (!r.ok) return fail(r.error, EXIT_FAILURE, isJson);
  const o = r.value;
  if (o.data !== undefined) {
    if (isJson) writeJsonOk(io, o.data);
    else if (o.text !== undefined) io.stdout.write(o.text);
    else io.stdout.write(JSON.stringify(o.data, null, 2) + '\n');
  }
  return o.exitCode ?? EXIT_OK;
}
