// `pilotctl mcp`: the node as Model Context Protocol tools on stdio, for agent harnesses.
//
// A tool is not a second implementation of a command (STYLE.md §7): each one runs a pilotctl command from the
// same table — its argument checks (`parse`), its daemon calls and the `data` it builds for `--json` — so a tool
// answers with exactly what `pilotctl --json <command>` prints, and fails with the same code, message and hint.
// Input schemas are generated from the command's args and flags; arguments are handed to pilotctl's own parser
// (as `--flag=value … -- positional…`), so a bad value is reported as `invalid_argument` by the check that
// reports it on the command line, not by a schema validator with other words.
//
// stdout carries the protocol only: commands run with a private, discarded CliIo, never the process streams.
import { Readable, Writable } from 'node:stream';
// The SDK and zod are loaded when `pilotctl mcp` runs (createMcpServer), not by every pilotctl command.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { PilotError } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { parseCommandArgs, parseDurationMs, type FlagSpec } from './args.js';
import { defineCommand, type CliContext, type Command, type CommandOutput } from './command.js';
import type { CliIo } from './output.js';

/** One MCP tool: which pilotctl command it runs and how it differs from the command line. */
export interface ToolSpec {
  /** MCP tool name (snake_case). */
  name: string;
  /** The pilotctl command it runs. */
  command: string;
  title: string;
  /** Replaces the command's summary where the tool behaves differently (bounded subscribe). */
  description?: string;
  /** Properties the tool requires though the command line does not (request needs its message: no stdin here). */
  required?: string[];
  /** Accepts `timeout` although the command lists no --timeout flag (it still honours the global one). */
  hasTimeout?: boolean;
  /** Values used when the caller gives none (as command-line text). */
  defaults?: Record<string, string>;
  /** Flags of the command the tool does not offer. */
  omit?: string[];
  /** Reads state only (MCP annotation readOnlyHint). */
  isReadOnly?: boolean;
  /** Talks to other nodes (MCP annotation openWorldHint). */
  isOpenWorld?: boolean;
}

/** How an MCP host's configuration launches the server (shown by skills and on a terminal). */
export const MCP_CONFIG_EXAMPLE = '{"command": "pilotctl", "args": ["mcp"]}';

/** How long a subscribe tool call collects events when the caller bounds neither time nor count. */
export const SUBSCRIBE_DEFAULT_TIMEOUT = '10s';

export const MCP_TOOLS: ToolSpec[] = [
  { name: 'info', command: 'info', title: 'This node', isReadOnly: true },
  { name: 'peers', command: 'peers', title: 'Known peers and their paths', isReadOnly: true },
  { name: 'find', command: 'find', title: 'Look up a node by hostname', isReadOnly: true, isOpenWorld: true },
  { name: 'handshake', command: 'handshake', title: 'Ask a node for mutual trust', isOpenWorld: true },
  { name: 'pending', command: 'pending', title: 'Trust requests waiting for approval', isReadOnly: true },
  { name: 'approve', command: 'approve', title: 'Approve a trust request', isOpenWorld: true },
  { name: 'reject', command: 'reject', title: 'Reject a trust request', isOpenWorld: true },
  { name: 'trusted', command: 'trust', title: 'Trusted peers', isReadOnly: true },
  {
    name: 'send_message',
    command: 'send-message',
    title: "Send a message to a node's inbox",
    description:
      "Send a typed message to a node's inbox (data exchange, port 1001). The result's `id` names it; the receiver answers with `reply_to` = that id. " +
      '`wait` (true, or a duration such as 30s) waits for that answer and returns it as `reply` (a timeout error when none comes; a reply to another message does not count)',
    hasTimeout: true,
    isOpenWorld: true,
  },
  { name: 'inbox', command: 'inbox', title: 'Messages received' },
  { name: 'send_file', command: 'send-file', title: 'Send a file to a node', isOpenWorld: true },
  { name: 'received', command: 'received', title: 'Files received' },
  {
    name: 'request',
    command: 'connect',
    title: 'Request/reply on a port',
    description: 'Open a stream to a port of a node (default 1000, stdio), send one message, half-close and return the reply',
    required: ['message'],
    isOpenWorld: true,
  },
  {
    name: 'subscribe',
    command: 'subscribe',
    title: 'Collect events on a topic',
    description: `Subscribe to a topic on a node's event stream broker (port 1002; * for all) and collect events until \`count\` arrived or \`timeout\` passed (default ${SUBSCRIBE_DEFAULT_TIMEOUT}); returns the events collected`,
    defaults: { timeout: SUBSCRIBE_DEFAULT_TIMEOUT },
    isReadOnly: true,
    isOpenWorld: true,
  },
  { name: 'publish', command: 'publish', title: 'Publish an event on a topic', hasTimeout: true, isOpenWorld: true },
  { name: 'ping', command: 'ping', title: 'Round trips to a node', isReadOnly: true, isOpenWorld: true },
];

// Positionals carry no type in the command table; these names are numbers on the command line.
const POSITIONAL_TYPES: Record<string, 'integer' | 'number'> = { port: 'integer', node_id: 'integer', conn_id: 'integer', size_mb: 'number' };
const POSITIONAL_DESCRIPTIONS: Record<string, string> = {
  peer: 'node id (12), virtual address (0:0000.0000.0001) or hostname (agent-alpha)',
  hostname: 'hostname: lowercase letters, digits and hyphens',
  node_id: 'node id (decimal), as listed by pending or trusted',
  port: 'virtual port (1..65535): 7 echo, 1000 stdio, 1001 data exchange, 1002 events',
  topic: 'topic name (1..128 characters, no spaces; * for all)',
  path: 'file path on this machine (relative to the directory pilotctl mcp runs in)',
  justification: 'why you ask; the other operator sees it',
  reason: 'why; the requesting node sees it',
};
const TIMEOUT_DESCRIPTION = 'time limit, e.g. 500ms, 10s, 2m, or a number of seconds (pilotctl --timeout)';

/** Tool property name of a flag: `data-file` → `data_file`. */
function propertyOf(flagName: string): string {
  return flagName.replace(/-/g, '_');
}

function flagSchema(f: FlagSpec): Record<string, unknown> {
  // A flag whose value may be left out (send-message --wait): true for the bare flag, or its value.
  if (f.isValueOptional) return { type: ['boolean', 'string'], description: `${f.description} (true, or a duration: 500ms, 10s, 2m)` };
  const type = f.kind === 'bool' ? 'boolean' : f.kind === 'int' ? 'integer' : f.kind === 'number' ? 'number' : 'string';
  const extra = f.kind === 'duration' ? ' (a duration: 500ms, 10s, 2m, or a number of seconds)' : '';
  return { type, description: f.description + extra };
}

function offeredFlags(tool: ToolSpec, cmd: Command): FlagSpec[] {
  return cmd.flags.filter((f) => f.name !== 'timeout' && !(tool.omit ?? []).includes(f.name));
}

function hasTimeout(tool: ToolSpec, cmd: Command): boolean {
  return tool.hasTimeout === true || cmd.flags.some((f) => f.name === 'timeout');
}

/** The JSON Schema of a tool's arguments, from the command's args and flags. */
export function inputSchemaOf(tool: ToolSpec, cmd: Command): { type: 'object'; properties: Record<string, unknown>; required: string[]; additionalProperties: false } {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const a of cmd.args) {
    const description = a.description ? `${POSITIONAL_DESCRIPTIONS[a.name] ?? a.name}; ${a.description}` : (POSITIONAL_DESCRIPTIONS[a.name] ?? a.name);
    const item = { type: POSITIONAL_TYPES[a.name] ?? 'string' };
    properties[a.name] = a.variadic ? { type: 'array', items: item, description } : { ...item, description };
    if (a.required) required.push(a.name);
  }
  for (const f of offeredFlags(tool, cmd)) properties[propertyOf(f.name)] = flagSchema(f);
  if (hasTimeout(tool, cmd)) {
    const dflt = tool.defaults?.timeout;
    properties.timeout = { type: 'string', description: TIMEOUT_DESCRIPTION + (dflt ? ` (default ${dflt})` : '') };
  }
  for (const r of tool.required ?? []) if (!required.includes(r)) required.push(r);
  return { type: 'object', properties, required, additionalProperties: false };
}

export function descriptionOf(tool: ToolSpec, cmd: Command): string {
  const codes = ['invalid_argument', ...cmd.errors.filter((e) => e !== 'invalid_argument')];
  return `${tool.description ?? cmd.summary}. Runs \`pilotctl ${cmd.name}\`; returns its --json data: ${cmd.returns}. Error codes: ${codes.join(', ')}.`;
}

/** Text pilotctl's parser reads for a JSON argument value; null when the value has no command-line form. */
function argText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}

interface ToolInvocation {
  argv: string[];
  timeoutMs: number | undefined;
}

/**
 * Tool arguments → the argv pilotctl's parser reads: `--flag=value` for flags, then `--`, then positionals, so
 * a value starting with `-` stays a value. Only shape errors are caught here (unknown property, wrong JSON type);
 * every value check is the command's own.
 */
export function toInvocation(tool: ToolSpec, cmd: Command, input: Record<string, unknown>): Result<ToolInvocation> {
  const usage = `see \`pilotctl help ${cmd.name}\``;
  const flags = offeredFlags(tool, cmd);
  const args: Record<string, unknown> = { ...(tool.defaults ?? {}) };
  for (const [k, v] of Object.entries(input)) if (v !== undefined && v !== null) args[k] = v;
  const known = new Set([...cmd.args.map((a) => a.name), ...flags.map((f) => propertyOf(f.name)), ...(hasTimeout(tool, cmd) ? ['timeout'] : [])]);
  for (const k of Object.keys(args)) {
    if (!known.has(k)) return err('invalid_argument', `unknown argument '${k}' for tool '${tool.name}'`, { hint: known.size ? `arguments: ${[...known].join(', ')}` : `${tool.name} takes no arguments` });
  }
  for (const r of tool.required ?? []) {
    if (args[r] === undefined) return err('invalid_argument', `missing '${r}' for tool '${tool.name}'`, { hint: usage });
  }
  const bad = (name: string, want: string): Result<never> => err('invalid_argument', `argument '${name}' must be ${want}`, { hint: usage });

  let timeoutMs: number | undefined;
  if (args.timeout !== undefined) {
    const t = argText(args.timeout);
    if (t === null) return bad('timeout', 'a duration such as 10s');
    timeoutMs = parseDurationMs(t);
    // The same refusal as runCli's for the global --timeout.
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return err('invalid_argument', `invalid --timeout '${t}'`, { hint: 'durations look like 500ms, 10s, 2m or a number of seconds' });
  }

  const argv: string[] = [];
  for (const f of flags) {
    const v = args[propertyOf(f.name)];
    if (v === undefined) continue;
    if (f.kind === 'bool' || (f.isValueOptional && typeof v === 'boolean')) {
      if (typeof v !== 'boolean') return bad(propertyOf(f.name), 'true or false');
      if (v) argv.push(`--${f.name}`);
      continue;
    }
    const t = argText(v);
    if (t === null) return bad(propertyOf(f.name), f.kind === 'int' || f.kind === 'number' ? 'a number' : 'a string');
    argv.push(`--${f.name}=${t}`);
  }
  argv.push('--');
  let isGap = false;
  for (const a of cmd.args) {
    const v = args[a.name];
    if (v === undefined) {
      isGap = true;
      continue;
    }
    if (isGap) return err('invalid_argument', `'${a.name}' needs the arguments before it (${cmd.args.map((x) => x.name).join(', ')})`, { hint: usage });
    const values = a.variadic && Array.isArray(v) ? v : [v];
    for (const x of values) {
      const t = argText(x);
      if (t === null) return bad(a.name, a.variadic ? 'a list of strings' : POSITIONAL_TYPES[a.name] ? 'a number' : 'a string');
      argv.push(t);
    }
  }
  return ok({ argv, timeoutMs });
}

/** A CliIo that reads nothing and throws away what commands print for humans: stdout belongs to the protocol. */
function quietIo(base: CliIo): CliIo {
  const sink = (): Writable => new Writable({ write: (_chunk, _enc, cb) => cb() });
  return { ...base, stdout: sink(), stderr: sink(), stdin: Readable.from([]), stdinIsTTY: true, stderrIsTTY: false };
}

function textResult(doc: Record<string, unknown>, isError: boolean): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(doc) }], structuredContent: doc, ...(isError ? { isError: true } : {}) };
}

/** The tool error for a PilotError: the document `pilotctl --json` prints on stderr. */
export function toolError(e: PilotError): CallToolResult {
  const doc: Record<string, unknown> = { status: 'error', code: e.code, message: e.message };
  if (e.hint !== undefined) doc.hint = e.hint;
  if (e.detail !== undefined) doc.detail = e.detail;
  return textResult(doc, true);
}

function toolOk(data: unknown): CallToolResult {
  const value = data ?? {};
  if (typeof value === 'object' && !Array.isArray(value)) return textResult(value as Record<string, unknown>, false);
  return { content: [{ type: 'text', text: JSON.stringify(value) }] };
}

/** An AbortSignal that fires when any of `signals` does. */
function anySignal(signals: AbortSignal[]): AbortSignal {
  const c = new AbortController();
  for (const s of signals) {
    if (s.aborted) c.abort();
    else s.addEventListener('abort', () => c.abort(), { once: true });
  }
  return c.signal;
}

/** Run one tool call: the command's parse and run with a quiet io, the call's timeout and cancellation. */
export async function callTool(tool: ToolSpec, cmd: Command, input: Record<string, unknown>, ctx: CliContext, callSignal?: AbortSignal): Promise<CallToolResult> {
  const inv = toInvocation(tool, cmd, input);
  if (!inv.ok) return toolError(inv.error);
  const parsed = parseCommandArgs(inv.value.argv, cmd.args, cmd.flags, cmd.name);
  if (!parsed.ok) return toolError(parsed.error);
  // isJson stays false: commands that stream NDJSON under --json (unbounded subscribe) then still return
  // their data; the human text they print goes to the quiet io.
  const callCtx: CliContext = {
    ...ctx,
    io: quietIo(ctx.io),
    isJson: false,
    timeoutMs: inv.value.timeoutMs ?? ctx.timeoutMs,
    signal: callSignal ? anySignal([ctx.signal, callSignal]) : ctx.signal,
  };
  const p = cmd.parse(parsed.value, callCtx);
  if (!p.ok) return toolError(p.error);
  let r: Result<CommandOutput>;
  try {
    r = await cmd.run(callCtx, p.value);
  } catch (e) {
    // A throw is a bug; still answer with the contract's shape, as runCli does.
    r = err('internal', `pilotctl bug in '${cmd.name}': ${(e as Error)?.message ?? String(e)}`);
  }
  if (!r.ok) return toolError(r.error);
  return toolOk(r.value.data);
}

/**
 * The MCP server with one tool per MCP_TOOLS entry whose command exists in `commands`. Tools reach the daemon
 * through `ctx.client()` (lazy: a daemon started after the server is found; none → `not_running`).
 */
export async function createMcpServer(commands: Command[], ctx: CliContext, version: string): Promise<McpServer> {
  const [{ McpServer }, z] = await Promise.all([import('@modelcontextprotocol/sdk/server/mcp.js'), import('zod')]);
  const server = new McpServer(
    { name: 'pilot', title: 'Pilot Protocol node', version },
    {
      capabilities: { tools: {} },
      instructions:
        `Tools of the Pilot Protocol node whose daemon serves ${ctx.home}. Each tool runs the pilotctl command named in its description; ` +
        'a result is that command\'s --json data; a failure (isError) is {"status":"error","code","message","hint"} with pilotctl\'s error codes — ' +
        'not_running: start the daemon with `pilotctl daemon start`; connection_failed: the peer is offline or not trusted yet (handshake, then the other side approves).',
    },
  );
  for (const tool of MCP_TOOLS) {
    const cmd = commands.find((c) => c.name === tool.command);
    if (!cmd) continue;
    // The schema is ours (inputSchemaOf) and so is validation (toInvocation + the command's parse): the zod
    // object accepts any object and only carries the JSON Schema to tools/list.
    const inputSchema = z.looseObject({}).meta(inputSchemaOf(tool, cmd));
    server.registerTool(
      tool.name,
      {
        title: tool.title,
        description: descriptionOf(tool, cmd),
        inputSchema,
        annotations: { title: tool.title, readOnlyHint: tool.isReadOnly === true, openWorldHint: tool.isOpenWorld === true },
      },
      (args, extra) => callTool(tool, cmd, args as Record<string, unknown>, ctx, extra.signal),
    );
  }
  return server;
}

/** Serve until stdin ends or the command is interrupted. */
async function serveStdio(server: McpServer, ctx: CliContext): Promise<Result<void>> {
  const { StdioServerTransport } = await import('@modelcontextprotocol/sdk/server/stdio.js');
  const transport = new StdioServerTransport(ctx.io.stdin, ctx.io.stdout);
  let finish!: () => void;
  const closed = new Promise<void>((r) => (finish = r));
  transport.onclose = () => finish();
  const stop = (): void => void server.close().finally(finish);
  ctx.io.stdin.once('end', stop);
  ctx.io.stdin.once('close', stop);
  ctx.signal.addEventListener('abort', stop, { once: true });
  try {
    await server.connect(transport);
  } catch (e) {
    return err('internal', `cannot start the MCP server: ${(e as Error)?.message ?? String(e)}`);
  }
  await closed;
  ctx.signal.removeEventListener('abort', stop);
  return ok();
}

const mcp = defineCommand<null>({
  name: 'mcp',
  group: 'Agents',
  summary: `Serve this node as Model Context Protocol tools on stdio (${MCP_TOOLS.map((t) => t.name).join(', ')}); stdout carries only the protocol`,
  args: [],
  flags: [],
  returns: 'nothing: speaks MCP (JSON-RPC) on stdin/stdout until stdin closes; each tool returns the --json data of its pilotctl command, failures are tool errors with the same code, message and hint',
  errors: ['internal'],
  parse: () => ok(null),
  async run(ctx): Promise<Result<CommandOutput>> {
    const { COMMANDS, pilotVersion } = await import('./main.js');
    // Run by hand on a terminal: say what this is (stderr; stdout stays the protocol's).
    if (ctx.io.stdinIsTTY) ctx.io.stderr.write(`pilotctl mcp speaks the Model Context Protocol on stdin/stdout; add it to an agent harness's MCP servers as ${MCP_CONFIG_EXAMPLE}\n`);
    const served = await serveStdio(await createMcpServer(COMMANDS, ctx, pilotVersion()), ctx);
    if (!served.ok) return served;
    return ok({});
  },
});

export const MCP_COMMANDS: Command[] = [mcp];
