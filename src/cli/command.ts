// The shape of one pilotctl command. The same table drives parsing, `help`, and the `context` catalogue,
// so what agents read can't drift from what the parser accepts.
import type { ErrorCode } from '../core/errors.js';
import type { Result } from '../core/result.js';
import type { PilotClient } from '../sdk/client.js';
import type { ArgSpec, FlagSpec, ParsedArgs } from './args.js';
import type { CliIo } from './output.js';

export interface CliContext {
  io: CliIo;
  isJson: boolean;
  home: string;
  socketPath: string;
  /** Global --timeout, when given. */
  timeoutMs: number | undefined;
  globals: Map<string, string | true>;
  /** Connect lazily to the daemon (cached; closed when the command ends). */
  client(): Promise<Result<PilotClient>>;
  /** Aborted on SIGINT/SIGTERM so streaming commands can print what they have. */
  signal: AbortSignal;
}

export interface CommandOutput {
  /** The `data` of the JSON envelope; undefined = the command already streamed its output (NDJSON). */
  data?: unknown;
  /** Human text for stdout; when absent the data is printed as indented JSON. */
  text?: string;
  /** Process exit code override (daemon status --check). */
  exitCode?: number;
}

export interface Command<P = unknown> {
  /** One or two words: 'info', 'daemon start'. */
  name: string;
  group: string;
  summary: string;
  args: ArgSpec[];
  flags: FlagSpec[];
  /** Fields of `data` on success, as in the original's catalogue. */
  returns: string;
  /** Codes this command can fail with (beyond invalid_argument, which every command can). */
  errors: ErrorCode[];
  /** Validate arguments without I/O; failures are usage errors (exit 2). */
  parse(a: ParsedArgs, ctx: CliContext): Result<P>;
  run(ctx: CliContext, p: P): Promise<Result<CommandOutput>>;
}

export function defineCommand<P>(c: Command<P>): Command<unknown> {
  return c as unknown as Command<unknown>;
}

export function usageLine(c: Command): string {
  const args = c.args.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`) + (a.variadic ? '...' : ''));
  const flags = c.flags.map((f) => `[--${f.name}${f.kind === 'bool' ? '' : ' ' + (f.value ?? '<value>')}]`);
  return ['pilotctl', c.name, ...args, ...flags].join(' ');
}
