// Process helpers for netsim: run `ip`, `nft`, `sysctl` and arbitrary programs, with output captured and
// failures returned as values (STYLE §4). Everything here does I/O; nothing throws for expected failures.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { err, ok, type Result } from '../src/core/index.js';

export interface RunResult {
  /** Exit code; null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time in milliseconds. */
  elapsedMs: number;
}

export interface RunOptions {
  /** Written to stdin, then stdin is closed. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill (SIGKILL) after this many milliseconds; the result then has signal 'SIGKILL'. Default 30 000. */
  timeoutMs?: number;
  cwd?: string;
}

/** Run argv to completion. Resolves ok with the exit status (also non-zero); err only when it cannot start. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<Result<RunResult>> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let child;
    try {
      child = spawn(argv[0]!, argv.slice(1), {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: opts.env ?? process.env,
        cwd: opts.cwd,
      });
    } catch (cause) {
      resolve(err('internal', `cannot start ${argv[0]}`, { cause }));
      return;
    }
    const out: Buffer[] = [];
    const errs: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => errs.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (cause) => {
      clearTimeout(timer);
      resolve(err('internal', `cannot start ${argv[0]}: ${cause.message}`, { cause }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(
        ok({
          code,
          signal,
          stdout: Buffer.concat(out).toString(),
          stderr: Buffer.concat(errs).toString(),
          elapsedMs: performance.now() - t0,
        }),
      );
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Run and require exit 0; the error carries stderr so a failing `ip`/`nft` line is visible. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<Result<RunResult>> {
  const r = await run(argv, opts);
  if (!r.ok) return r;
  if (r.value.code !== 0) {
    return err('internal', `${argv.slice(0, 4).join(' ')} failed (${r.value.code ?? r.value.signal}): ${r.value.stderr.trim()}`, {
      detail: { argv: [...argv], stderr: r.value.stderr, input: opts.input?.slice(0, 4000) },
    });
  }
  return r;
}

/** Synchronous best-effort run, for `process.on('exit')` cleanup where nothing async can run. */
export function runSyncQuiet(argv: readonly string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  return r.stdout ?? '';
}

/** Absolute path of an executable on PATH (plus sbin dirs, which non-login root shells sometimes lack). */
export function which(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = `${d}/${name}`;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Why netsim cannot run here (not root, missing tools), or null when it can. Tests print this and skip. */
export function netsimUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `netsim needs Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return 'netsim needs root (network namespaces, nftables)';
  }
  const missing = ['ip', 'nft'].filter((t) => which(t) === null);
  if (missing.length > 0) {
    return `netsim needs ${missing.join(' and ')}: apt-get install -y nftables iproute2 conntrack`;
  }
  return null;
}
