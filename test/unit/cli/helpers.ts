// Run pilotctl in-process with captured streams.
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../../src/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed last JSON line of stdout (success) or stderr (error), when there is one. */
  json: Record<string, unknown> | null;
}

// Compiled runs (dist/test) use the compiled bin; tsx runs the source.
const EXT = import.meta.url.endsWith('.js') ? 'js' : 'ts';
export const PILOTCTL_SCRIPT = fileURLToPath(new URL(`../../../src/bin/pilotctl.${EXT}`, import.meta.url));
export const FAKE_DAEMON_SCRIPT = fileURLToPath(new URL(`./fake-daemon.${EXT}`, import.meta.url));

export async function pilotctl(
  args: string[],
  opts: { stdin?: string; env?: NodeJS.ProcessEnv; stderrIsTTY?: boolean; signal?: AbortSignal; cwd?: string } = {},
): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let errText = '';
  stdout.on('data', (b: Buffer) => (out += b.toString()));
  stderr.on('data', (b: Buffer) => (errText += b.toString()));
  const code = await runCli(
    args,
    {
      stdout,
      stderr,
      stdin: opts.stdin === undefined ? Readable.from([]) : Readable.from([Buffer.from(opts.stdin)]),
      stdinIsTTY: opts.stdin === undefined,
      stderrIsTTY: opts.stderrIsTTY ?? false,
      env: opts.env ?? {},
      cwd: opts.cwd ?? process.cwd(),
      scriptPath: PILOTCTL_SCRIPT,
    },
    opts.signal ? { signal: opts.signal } : {},
  );
  const last = (code === 0 ? out : errText).trim().split('\n').pop() ?? '';
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(last) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { code, stdout: out, stderr: errText, json };
}
