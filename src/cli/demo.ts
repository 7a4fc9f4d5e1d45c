// `pilotctl demo` (and `npm start`): a local rendezvous and two daemons in a temp home, then the main job —
// trust with a justification, a piped stream request, a message, pub/sub, ping and a bench — with measured
// figures. Everything it started is stopped, and the temp home removed, on success, failure and SIGINT.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { err, ok, type Result } from '../core/result.js';
import { homePaths } from '../ipc/paths.js';
import { PilotClient } from '../sdk/client.js';
import type { CliContext, CommandOutput } from './command.js';
import { createProgress, table, type CliIo } from './output.js';
import { sleep } from './stream-io.js';

const STEP_TIMEOUT_MS = 20_000;
const RENDEZVOUS_READY_TIMEOUT_MS = 10_000;

interface StepRecord {
  step: string;
  ok: boolean;
  ms: number;
  detail: string;
}

interface PilotctlResult {
  code: number;
  data: Record<string, unknown> | null;
  error: { code: string; message: string; hint?: string } | null;
}

/** The rendezvous bin beside this pilotctl (PILOT_RENDEZVOUS_BIN overrides). */
function rendezvousCommand(io: CliIo): Result<string[]> {
  const override = io.env.PILOT_RENDEZVOUS_BIN;
  const dir = dirname(io.scriptPath);
  const candidates = override ? [override] : [join(dir, 'pilot-rendezvous.js'), join(dir, 'pilot-rendezvous.ts')];
  for (const c of candidates) {
    try {
      readFileSync(c);
    } catch {
      continue;
    }
    return ok(c.endsWith('.ts') ? [process.execPath, '--import', 'tsx', c] : [process.execPath, c]);
  }
  return err('not_found', `pilot-rendezvous not found next to ${io.scriptPath}`, { hint: 'build the project (npm run build) or set PILOT_RENDEZVOUS_BIN' });
}

function startRendezvous(io: CliIo, logFile: string): Promise<Result<{ child: ChildProcess; registry: string; beacon: string }>> {
  const cmd = rendezvousCommand(io);
  if (!cmd.ok) return Promise.resolve(cmd);
  const [exe, ...pre] = cmd.value;
  const child = spawn(exe!, [...pre, '--registry-addr', '127.0.0.1:0', '--beacon-addr', '127.0.0.1:0', '--compat-addr', 'off', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: io.env,
  });
  let stderrText = '';
  child.stderr!.on('data', (b: Buffer) => (stderrText = (stderrText + b.toString()).slice(-4000)));
  return new Promise((resolve) => {
    let buf = '';
    const timer = setTimeout(() => done(err('timeout', 'pilot-rendezvous did not print its ready line')), RENDEZVOUS_READY_TIMEOUT_MS);
    const done = (r: Result<{ child: ChildProcess; registry: string; beacon: string }>): void => {
      clearTimeout(timer);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume(); // keep draining so it never blocks on a full pipe
      if (!r.ok) child.kill('SIGKILL');
      resolve(r);
    };
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const ready = JSON.parse(buf.slice(0, nl)) as { registry?: string; beacon?: string };
        if (typeof ready.registry === 'string' && typeof ready.beacon === 'string') {
          return done(ok({ child, registry: ready.registry, beacon: ready.beacon }));
        }
      } catch {
        /* fall through */
      }
      done(err('internal', `unexpected ready line from pilot-rendezvous: ${buf.slice(0, nl)}`));
    });
    child.once('exit', (code) =>
      done(err('internal', `pilot-rendezvous exited with code ${code}` + (stderrText ? `: ${stderrText.trim()}` : ''), { detail: { log: logFile } })),
    );
  });
}

/** Run one pilotctl command in-process with --json and capture its envelope. */
async function pilotctl(io: CliIo, home: string, args: string[], stdin?: string): Promise<PilotctlResult> {
  const { runCli } = await import('./main.js');
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let outText = '';
  let errText = '';
  stdout.on('data', (b: Buffer) => (outText += b.toString()));
  stderr.on('data', (b: Buffer) => (errText += b.toString()));
  const code = await runCli([...args, '--json', '--home', home], {
    ...io,
    stdout,
    stderr,
    stdin: stdin === undefined ? Readable.from([]) : Readable.from([Buffer.from(stdin)]),
    stdinIsTTY: stdin === undefined,
    stderrIsTTY: false,
  });
  const parse = (t: string): Record<string, unknown> | null => {
    const line = t.trim().split('\n').pop();
    try {
      return line ? (JSON.parse(line) as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  };
  if (code === 0) return { code, data: (parse(outText)?.data as Record<string, unknown>) ?? {}, error: null };
  const e = parse(errText);
  return {
    code,
    data: null,
    error: e ? { code: String(e.code), message: String(e.message), ...(e.hint ? { hint: String(e.hint) } : {}) } : { code: 'internal', message: errText.trim() || `exit ${code}` },
  };
}

function logTail(home: string, lines = 15): string {
  try {
    return readFileSync(homePaths(home).logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function runDemo(ctx: CliContext, p: { keep: boolean; benchMb: number }): Promise<Result<CommandOutput>> {
  const io = ctx.io;
  const say = (s: string): void => void (ctx.isJson ? io.stderr : io.stdout).write(s);
  const root = mkdtempSync(join(tmpdir(), 'pilot-demo-'));
  const alphaHome = join(root, 'alpha');
  const betaHome = join(root, 'beta');
  const steps: StepRecord[] = [];
  const summary: Record<string, number | null> = { trust_ms: null, ping_rtt_ms: null, bench_mbps: null };
  let rendezvous: ChildProcess | null = null;
  const started: string[] = [];
  let isCleanedUp = false;

  const cleanup = async (): Promise<void> => {
    if (isCleanedUp) return;
    isCleanedUp = true;
    for (const home of started) await pilotctl(io, home, ['daemon', 'stop', '--timeout', '5s']);
    rendezvous?.kill('SIGTERM');
    if (!p.keep) rmSync(root, { recursive: true, force: true });
    else say(`kept ${root}\n`);
  };
  const onAbort = (): void => void cleanup();
  ctx.signal.addEventListener('abort', onAbort, { once: true });

  /** Run a step; a failure stops the walk with a clear message (the daemon may not implement it yet). */
  const step = async (name: string, fn: () => Promise<Result<string>>): Promise<boolean> => {
    if (ctx.signal.aborted) return false;
    say(`• ${name} ... `);
    const t0 = performance.now();
    let r: Result<string>;
    try {
      r = await fn();
    } catch (e) {
      r = err('internal', (e as Error)?.message ?? String(e));
    }
    const ms = Math.round(performance.now() - t0);
    steps.push({ step: name, ok: r.ok, ms, detail: r.ok ? r.value : `${r.error.code}: ${r.error.message}` });
    say(r.ok ? `ok (${ms} ms)${r.value ? ' — ' + r.value : ''}\n` : `FAILED\n    ${r.error.code}: ${r.error.message}\n${r.error.hint ? `    hint: ${r.error.hint}\n` : ''}`);
    return r.ok;
  };
  const fromCli = (r: PilotctlResult): Result<Record<string, unknown>> =>
    r.error ? err((r.error.code as 'internal') ?? 'internal', r.error.message, r.error.hint ? { hint: r.error.hint } : {}) : ok(r.data ?? {});

  /** Poll `fn` until it returns ok or the step times out. */
  const until = async <T>(what: string, fn: () => Promise<Result<T | null>>): Promise<Result<T>> => {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    let last: Result<T | null> = ok(null);
    while (Date.now() < deadline && !ctx.signal.aborted) {
      last = await fn();
      if (last.ok && last.value !== null) return ok(last.value);
      await sleep(200, ctx.signal);
    }
    if (!last.ok) return last;
    return err('timeout', `${what} did not happen within ${STEP_TIMEOUT_MS / 1000}s`);
  };

  let registry = '';
  let beacon = '';
  let alphaId = 0;
  let betaId = 0;
  try {
    say(`Pilot demo in ${root}\n`);
    const okRdv = await step('start pilot-rendezvous', async () => {
      const r = await startRendezvous(io, join(root, 'rendezvous.log'));
      if (!r.ok) return r;
      rendezvous = r.value.child;
      registry = r.value.registry;
      beacon = r.value.beacon;
      return ok(`registry ${registry}, beacon ${beacon}`);
    });
    if (!okRdv) return finish();

    for (const [name, home] of [['agent-alpha', alphaHome], ['agent-beta', betaHome]] as const) {
      const isOk = await step(`daemon start ${name}`, async () => {
        started.push(home);
        const r = fromCli(await pilotctl(io, home, ['daemon', 'start', '--registry', registry, '--beacon', beacon, '--hostname', name, '--listen', '127.0.0.1:0']));
        if (!r.ok) return err(r.error.code, `${r.error.message}\n    log tail:\n${logTail(home)}`, r.error.hint ? { hint: r.error.hint } : {});
        if (name === 'agent-alpha') alphaId = Number(r.value.node_id);
        else betaId = Number(r.value.node_id);
        return ok(`node ${String(r.value.node_id)} ${String(r.value.address)}`);
      });
      if (!isOk) return finish();
    }

    const trustStart = performance.now();
    if (!(await step('beta → alpha: handshake with justification', async () => {
      const r = fromCli(await pilotctl(io, betaHome, ['handshake', String(alphaId), 'demo: agent-beta wants to exchange status reports']));
      return r.ok ? ok(`status ${String(r.value.status)}`) : r;
    }))) return finish();

    if (!(await step('alpha: pending shows the request', () =>
      until('the handshake request reaching alpha', async () => {
        const r = fromCli(await pilotctl(io, alphaHome, ['pending']));
        if (!r.ok) return r;
        const list = (r.value.pending as Array<{ node_id: number; justification: string }>) ?? [];
        const hit = list.find((x) => x.node_id === betaId);
        return ok(hit ? `"${hit.justification}"` : null);
      })))) return finish();

    if (!(await step('alpha: approve beta', async () => {
      const r = fromCli(await pilotctl(io, alphaHome, ['approve', String(betaId)]));
      return r.ok ? ok(`status ${String(r.value.status)}`) : r;
    }))) return finish();

    if (!(await step('mutual trust', () =>
      until('mutual trust', async () => {
        const a = fromCli(await pilotctl(io, alphaHome, ['trust']));
        const b = fromCli(await pilotctl(io, betaHome, ['trust']));
        if (!a.ok) return a;
        if (!b.ok) return b;
        const has = (r: Record<string, unknown>, id: number): boolean => ((r.trusted as Array<{ node_id: number }>) ?? []).some((t) => t.node_id === id);
        if (!has(a.value, betaId) || !has(b.value, alphaId)) return ok(null);
        summary.trust_ms = Math.round(performance.now() - trustStart);
        return ok(`${summary.trust_ms} ms from handshake to mutual trust`);
      })))) return finish();

    const request = '{"action":"status"}';
    await step(`beta: echo '${request}' | pilotctl connect agent-alpha 7`, async () => {
      const r = fromCli(await pilotctl(io, betaHome, ['connect', String(alphaId), '7'], request));
      if (!r.ok) return r;
      return r.value.response === request ? ok(`reply ${String(r.value.response)}`) : err('internal', `unexpected reply ${JSON.stringify(r.value.response)}`);
    });

    await step('beta → alpha: send-message, alpha: inbox', async () => {
      const s = fromCli(await pilotctl(io, betaHome, ['send-message', String(alphaId), '--data', 'hello from agent-beta']));
      if (!s.ok) return s;
      return until('the message reaching alpha', async () => {
        const r = fromCli(await pilotctl(io, alphaHome, ['inbox']));
        if (!r.ok) return r;
        const m = ((r.value.messages as Array<{ data: string }>) ?? []).find((x) => x.data === 'hello from agent-beta');
        return ok(m ? `inbox has "${m.data}"` : null);
      });
    });

    await step("beta: subscribe to alpha's 'status', publish, receive", async () => {
      const c = await PilotClient.connect({ home: betaHome });
      if (!c.ok) return c;
      try {
        let got: string | null = null;
        const sub = await c.value.subscribe(String(alphaId), 'status', (e) => (got = e.data));
        if (!sub.ok) return sub;
        const pub = fromCli(await pilotctl(io, betaHome, ['publish', String(alphaId), 'status', '--data', 'all systems nominal']));
        if (!pub.ok) {
          sub.value.close();
          return pub;
        }
        const r = await until('the published event', async () => ok(got));
        sub.value.close();
        return r.ok ? ok(`event "${r.value}"`) : r;
      } finally {
        c.value.close();
      }
    });

    await step('beta → alpha: ping', async () => {
      const r = fromCli(await pilotctl(io, betaHome, ['ping', String(alphaId), '--count', '5', '--interval', '200ms']));
      if (!r.ok) return r;
      const rtts = ((r.value.results as Array<{ rtt_ms: number; error?: string }>) ?? []).filter((x) => !x.error).map((x) => x.rtt_ms);
      if (rtts.length === 0) return err('connection_failed', 'no ping replies');
      summary.ping_rtt_ms = Math.round((rtts.reduce((a, b) => a + b, 0) / rtts.length) * 1000) / 1000;
      return ok(`${rtts.length}/5 replies, avg ${summary.ping_rtt_ms} ms`);
    });

    await step(`beta → alpha: bench ${p.benchMb} MB`, async () => {
      const c = await PilotClient.connect({ home: betaHome });
      if (!c.ok) return c;
      const bar = createProgress(io, false, '  bench');
      if (io.stderrIsTTY) say('\n');
      const r = await c.value.bench(String(alphaId), p.benchMb * 1024 * 1024, (d, t) => bar.update(d, t));
      bar.finish();
      c.value.close();
      if (!r.ok) return r;
      summary.bench_mbps = Math.round(r.value.send_mbps * 10) / 10;
      return ok(`${summary.bench_mbps} MB/s`);
    });
    return finish();
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    await cleanup();
  }

  function finish(): Result<CommandOutput> {
    const failed = steps.filter((s) => !s.ok);
    if (failed.length > 0 && !ctx.isJson) {
      for (const home of started) say(`\n${home === alphaHome ? 'alpha' : 'beta'} daemon log tail:\n${logTail(home)}\n`);
    }
    const text =
      '\nSummary\n' +
      table(
        ['FIGURE', 'VALUE'],
        [
          ['time to mutual trust', summary.trust_ms === null ? '-' : `${summary.trust_ms} ms`],
          ['ping RTT (avg)', summary.ping_rtt_ms === null ? '-' : `${summary.ping_rtt_ms} ms`],
          [`bench ${p.benchMb} MB`, summary.bench_mbps === null ? '-' : `${summary.bench_mbps} MB/s`],
          ['steps', `${steps.length - failed.length}/${steps.length} ok`],
        ],
      );
    if (failed.length > 0) {
      say(text);
      return err('internal', `demo: ${failed.length} step(s) failed: ${failed.map((s) => s.step).join('; ')}`, {
        hint: 'each failed step above says why; the daemon may not implement that part yet',
        detail: { steps, summary },
      });
    }
    return ok({ data: { steps, summary }, text });
  }
}
