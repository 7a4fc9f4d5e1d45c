// Parent ↔ worker RPC over the fork() IPC channel: the orchestrator (bench/e2e.bench.ts) drives every worker
// process with `call(cmd, args)`; a worker answers with `serveRpc(handlers)`. JSON only (numbers, strings).
import { fork, type ChildProcess } from 'node:child_process';

type Handler = (args: Record<string, unknown>) => unknown;

interface RpcRequest {
  id: number;
  cmd: string;
  args: Record<string, unknown>;
}
interface RpcReply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export interface Worker {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  call<T = unknown>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Ask the worker to exit (runs its `exit` handler), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  execArgv?: string[];
  args?: string[];
}

/** Fork `script` and wait for its `ready` message. Throws if it exits first (bench harness, not product code). */
export async function spawnWorker(name: string, script: string, opts: SpawnOptions = {}): Promise<Worker> {
  const child = fork(script, opts.args ?? [], {
    env: opts.env ?? process.env,
    execArgv: opts.execArgv ?? [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout | null }>();
  let exited = false;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      for (const p of pending.values()) {
        if (p.timer) clearTimeout(p.timer);
        p.reject(new Error(`${name} exited (${code ?? signal}) with a call pending`));
      }
      pending.clear();
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const onMsg = (m: unknown): void => {
      if ((m as { ready?: boolean }).ready) {
        child.off('message', onMsg);
        resolve();
      }
    };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
  });
  child.on('message', (m: unknown) => {
    const r = m as RpcReply;
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    if (p.timer) clearTimeout(p.timer);
    if (r.ok) p.resolve(r.value);
    else p.reject(new Error(`${name}: ${r.error}`));
  });
  return {
    name,
    pid: child.pid!,
    child,
    call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 600_000): Promise<T> {
      if (exited) return Promise.reject(new Error(`${name} has exited`));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = timeoutMs > 0 ? setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: ${cmd} timed out after ${timeoutMs} ms`));
        }, timeoutMs) : null;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
        child.send({ id, cmd, args } satisfies RpcRequest);
      });
    },
    async stop(graceMs = 3000): Promise<void> {
      if (exited) return;
      try {
        child.send({ id: 0, cmd: 'exit', args: {} } satisfies RpcRequest);
      } catch {
        /* channel already closed */
      }
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exitPromise;
      clearTimeout(t);
    },
  };
}

/** Worker side: answer calls with `handlers[cmd](args)`; `exit` runs handlers.exit (if any) then exits 0. */
export function serveRpc(handlers: Record<string, Handler>): void {
  process.on('message', (m: unknown) => {
    const req = m as RpcRequest;
    void (async () => {
      if (req.cmd === 'exit') {
        try {
          await handlers.exit?.({});
        } finally {
          // process.exit lets --cpu-prof write its profile.
          process.exit(0);
        }
      }
      const h = handlers[req.cmd];
      let reply: RpcReply;
      try {
        if (!h) throw new Error(`unknown command ${req.cmd}`);
        reply = { id: req.id, ok: true, value: (await h(req.args)) ?? null };
      } catch (e) {
        reply = { id: req.id, ok: false, error: (e as Error)?.stack ?? String(e) };
      }
      process.send!(reply);
    })();
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true });
}

/** CLOCK_MONOTONIC in µs: comparable across processes on one machine. */
export function monoUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
