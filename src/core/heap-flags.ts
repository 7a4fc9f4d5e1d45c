// The V8 flag our data-plane processes (pilot-daemon, pilotctl) start with, and how to tell whether a process
// has it. Measured in issue 18 (`npm run bench -- --profile=stream --gc`, 1 GiB through the daemon): with
// Node 20's defaults a small heap (10–15 MB live) gets an old-generation limit a megabyte or two above its live
// size, so the few objects per packet that survive two scavenges (stream bookkeeping, Node's stream internals)
// start a mark-compact every 20–30 MB of traffic — 30–50 per GB in each daemon and in the receiving SDK, with
// their concurrent marking threads and the page faults of re-mapping the freed read buffers. An initial old
// space of 64 MB holds the limit at 64 MB: one mark-compact per 1–4 GiB; each daemon drops from 3.0–3.9 to
// 2.4–2.6 s/GB, and the bench's daemon path from 8.6 to 6.9 s/GB (6.1 with the SDK side flagged too). It
// reserves nothing (the limit is not memory in use); the heap keeper below bounds what an idle daemon holds.
//
// V8 reads the flag only at start (v8.setFlagsFromString later has no effect, and NODE_OPTIONS refuses it), so
// it rides on the command line: the bins' shebangs and every spawn of a daemon (daemonCommand).

export const DATA_PLANE_HEAP_FLAGS: readonly string[] = Object.freeze(['--initial-old-space-size=64']);

/** Whether this process was started with an initial old space (ours or the user's own choice). */
export function hasDataPlaneHeap(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((a) => a.startsWith('--initial-old-space-size') || a.startsWith('--initial_old_space_size'));
}

/** The keeper's period and the growth (bytes of heap used since its last collection) that makes it collect. */
export const HEAP_KEEPER_PERIOD_MS = 5000;
export const HEAP_KEEPER_GROWTH_BYTES = 16 * 1024 * 1024;

/**
 * The other half of the flag: with the limit held at 64 MB, a daemon that moves little (10,000 idle peers'
 * keepalives) would sit on up to 64 MB of garbage, since nothing reaches the limit (its RSS grew from ~195 to
 * ~270 MiB). Every HEAP_KEEPER_PERIOD_MS, when the heap grew by HEAP_KEEPER_GROWTH_BYTES since the last
 * collection, collect now — at most one full GC per period (a few ms to a few tens of ms), against the dozens
 * per GB the default limit runs under load. Only where the flag is set (else V8 collects often enough);
 * returns the stop function. Uses V8's gc() exposed at run time (--expose-gc via v8.setFlagsFromString).
 */
export async function startHeapKeeper(
  opts: { periodMs?: number; growthBytes?: number; onCollect?: (before: number, after: number, ms: number) => void } = {},
): Promise<() => void> {
  if (!hasDataPlaneHeap()) return () => undefined;
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (() => void) | undefined;
  if (typeof gc !== 'function') return () => undefined;
  const growth = opts.growthBytes ?? HEAP_KEEPER_GROWTH_BYTES;
  let base = v8.getHeapStatistics().used_heap_size;
  const t = setInterval(() => {
    const used = v8.getHeapStatistics().used_heap_size;
    if (used < base) base = used; // V8 collected by itself
    if (used - base < growth) return;
    const t0 = performance.now();
    gc();
    base = v8.getHeapStatistics().used_heap_size;
    opts.onCollect?.(used, base, performance.now() - t0);
  }, opts.periodMs ?? HEAP_KEEPER_PERIOD_MS);
  t.unref();
  return () => clearInterval(t);
}
