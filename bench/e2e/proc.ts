// Per-process CPU and memory from /proc, so the orchestrator can account any child (daemons included)
// the same way: utime + stime of all threads (native worker threads count too).
import { readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_S = 100; // Linux USER_HZ; `getconf CLK_TCK` is 100 on every x86_64 distro

/** User + system CPU seconds of `pid` so far; NaN when the process is gone or /proc is unavailable. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return NaN;
  }
}

/** [user, system] CPU seconds of `pid` so far; NaNs when unavailable. */
export function cpuSplit(pid: number): [number, number] {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return [Number(rest[11]) / CLOCK_TICKS_PER_S, Number(rest[12]) / CLOCK_TICKS_PER_S];
  } catch {
    return [NaN, NaN];
  }
}

/** Resident set size of `pid` in bytes (VmRSS); NaN when unavailable. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Sum of cpuSeconds over pids. */
export function cpuOf(pids: number[]): number {
  return pids.reduce((a, p) => a + cpuSeconds(p), 0);
}

export function percentile(sortedAsc: number[], p: number): number {
  if (sortedAsc.length === 0) return NaN;
  const i = Math.min(sortedAsc.length - 1, Math.max(0, Math.ceil((p / 100) * sortedAsc.length) - 1));
  return sortedAsc[i]!;
}
