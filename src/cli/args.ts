// argv parsing against the command table (no dependency). Flags: `--name value`, `--name=value`, `--bool`;
// `--` ends flags. Global flags are accepted anywhere, like the original's `--json`.
import { err, ok, type Result } from '../core/result.js';

export type FlagKind = 'bool' | 'string' | 'int' | 'number' | 'duration';

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  /** Placeholder shown in usage, e.g. `<dur>`. */
  value?: string;
  description: string;
  /**
   * The value may be left out (`--wait`, `--wait 10s`, `--wait=10s`): the next word is taken only when it parses
   * as this flag's kind (a duration), so `--wait --data x` and `--wait agent-b` leave them alone. Alone → true.
   */
  isValueOptional?: boolean;
}

export interface ArgSpec {
  name: string;
  required: boolean;
  variadic?: boolean;
  description?: string;
}

export const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'json', kind: 'bool', description: 'machine-readable output: {"status":"ok","data":…} on stdout, errors as JSON on stderr' },
  { name: 'socket', kind: 'string', value: '<path>', description: 'daemon control socket (default $PILOT_SOCKET, else <home>/pilot.sock)' },
  { name: 'home', kind: 'string', value: '<dir>', description: 'daemon home directory (default $PILOT_HOME, else ~/.pilot)' },
  { name: 'timeout', kind: 'duration', value: '<dur>', description: 'overall time limit, e.g. 500ms, 10s, 2m (bare numbers are seconds)' },
];

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

export interface SplitArgv {
  globals: Map<string, string | true>;
  rest: string[];
}

const FLAG_RE = /^--([a-zA-Z][a-zA-Z0-9-]*)(?:=([\s\S]*))?$/;

/** Pull the global flags out of argv wherever they are; everything else stays in order. */
export function extractGlobals(argv: string[]): Result<SplitArgv> {
  const globals = new Map<string, string | true>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const m = FLAG_RE.exec(a);
    const spec = m ? GLOBAL_FLAGS.find((f) => f.name === m[1]) : undefined;
    if (!m || !spec) {
      rest.push(a);
      continue;
    }
    if (spec.kind === 'bool') {
      if (m[2] !== undefined && m[2] !== 'true' && m[2] !== 'false') return usageErr(`--${spec.name} takes no value`);
      if (m[2] !== 'false') globals.set(spec.name, true);
      continue;
    }
    const v = m[2] ?? argv[++i];
    if (v === undefined) return usageErr(`flag --${spec.name} needs a value ${spec.value ?? ''}`.trim());
    globals.set(spec.name, v);
  }
  return ok({ globals, rest });
}

/** Parse a command's own args/flags; unknown flags and wrong arg counts are usage errors. */
export function parseCommandArgs(argv: string[], args: ArgSpec[], flags: FlagSpec[], command: string): Result<ParsedArgs> {
  const positional: string[] = [];
  const out = new Map<string, string | true>();
  let isFlagsDone = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!isFlagsDone && a === '--') {
      isFlagsDone = true;
      continue;
    }
    const m = isFlagsDone ? null : FLAG_RE.exec(a);
    if (!m) {
      if (!isFlagsDone && a.startsWith('--') && a.length > 2) return usageErr(`malformed flag ${a}`, command);
      positional.push(a);
      continue;
    }
    const spec = flags.find((f) => f.name === m[1]);
    if (!spec) return usageErr(`unknown flag --${m[1]} for '${command}'`, command);
    if (spec.kind === 'bool') {
      if (m[2] !== undefined && m[2] !== 'true' && m[2] !== 'false') return usageErr(`--${spec.name} takes no value`, command);
      if (m[2] !== 'false') out.set(spec.name, true);
      continue;
    }
    if (spec.isValueOptional && m[2] === undefined) {
      const next = argv[i + 1];
      const isValue = next !== undefined && spec.kind === 'duration' && Number.isFinite(parseDurationMs(next));
      out.set(spec.name, isValue ? next : true);
      if (isValue) i++;
      continue;
    }
    const v = m[2] ?? argv[++i];
    if (v === undefined) return usageErr(`flag --${spec.name} needs a value ${spec.value ?? ''}`.trim(), command);
    out.set(spec.name, v);
  }
  const required = args.filter((a) => a.required).length;
  const isVariadic = args.some((a) => a.variadic);
  if (positional.length < required) {
    const missing = args[positional.length]!;
    return usageErr(`missing <${missing.name}> for '${command}'`, command);
  }
  if (!isVariadic && positional.length > args.length) {
    return usageErr(`unexpected argument '${positional[args.length]}' for '${command}'`, command);
  }
  return ok({ positional, flags: out });
}

export function usageErr<T = never>(message: string, command?: string): Result<T> {
  return err('invalid_argument', message, { hint: command ? `see \`pilotctl help ${command}\`` : 'see `pilotctl help`' });
}

/** Go-style durations as the original accepts (`1m30s`, `500ms`, `2h`), or a bare number of seconds. NaN if bad. */
export function parseDurationMs(text: string): number {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * unitMs[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === s.length && s.length > 0 ? total : NaN;
}
