// Echo (port 7) and its two clients, ping and bench, as the original does them:
// - server: every received chunk is written straight back (TeoSlayer/pilotprotocol, pkg/daemon/services.go,
//   handleEchoConn); no framing, so these bytes on the wire are exactly the original's.
// - ping: one new connection per probe, payload "ping-<seq>", rtt measured from before the dial to the
//   reply, so it includes connection setup; 1 s between probes; one overall deadline
//   (cmd/pilotctl/main.go, cmdPing).
// - bench: one connection, `bytes` written in 4096-byte chunks of i%256 as fast as the stream accepts
//   them while a reader counts bytes echoed back; send_mbps = bytes / send time, total_mbps = bytes /
//   time until everything came back, both in MiB/s (cmd/pilotctl/main.go, cmdBench).
import type { Duplex } from 'node:stream';
import { monotonicClock, type Clock } from '../core/clock.js';
import { err, ok, type Result } from '../core/result.js';
import type { Logger } from '../core/logger.js';
import { PORT_ECHO } from '../wire/address.js';
import type { BenchResult, PeerRef, PingResult, PilotStream, ProgressFn, ServiceHost } from '../node/api.js';
import { closeStream, guardStream, sleepMs, StreamReader, writeChunk, withTimeout } from './stream-io.js';

const MAX_ECHO_CHUNK_BYTES = 64 * 1024;

/** Serve one echo connection until the peer closes; ends our side after echoing everything. */
export async function serveEcho(stream: Duplex, logger?: Logger): Promise<void> {
  guardStream(stream, logger, 'echo');
  const reader = new StreamReader(stream);
  for (;;) {
    const r = await reader.readSome(MAX_ECHO_CHUNK_BYTES);
    if (!r.ok) {
      stream.destroy();
      return;
    }
    if (r.value === null) break;
    const w = await writeChunk(stream, r.value);
    if (!w.ok) {
      stream.destroy();
      return;
    }
  }
  closeStream(stream);
}

export interface PingOptions {
  count: number;
  /** Pause between probes; the original sleeps 1000 ms. */
  intervalMs: number;
  /** Payload bytes; default is the original's "ping-<seq>" text. Larger sizes pad it with '.'. */
  size?: number;
  /** Deadline for the whole run (the original's --timeout, default 30 s). */
  timeoutMs?: number;
  /** Called with each reply as it arrives (pilotctl prints them live). */
  onResult?: (r: PingResult) => void;
}

export interface PingReport {
  results: PingResult[];
  /** True when the overall deadline cut the run short (the original's "timeout" field). */
  timeout: boolean;
}

export const DEFAULT_PING_TIMEOUT_MS = 30_000;
export const MAX_PING_SIZE_BYTES = 64 * 1024;

function pingPayload(seq: number, size: number | undefined): Buffer {
  const text = Buffer.from(`ping-${seq}`, 'utf8');
  if (size === undefined || size <= text.length) return size === undefined ? text : text.subarray(0, Math.max(1, size));
  const out = Buffer.alloc(size, 0x2e);
  text.copy(out, 0);
  return out;
}

function rttMs(startUs: number, clock: Clock): number {
  // The original reports float64(Microseconds)/1000: millisecond value at microsecond resolution.
  return Math.round(clock.nowUs() - startUs) / 1000;
}

/**
 * Ping `peer` through its echo port. Never fails as a whole for per-probe problems: each failed probe is
 * a result with `error` (bytes 0, rtt_ms = time until the failure). Errors: invalid_argument only.
 * Does I/O: one dial per probe.
 */
export async function ping(
  host: ServiceHost,
  peer: PeerRef,
  opts: PingOptions,
  clock: Clock = monotonicClock,
  sleep: (ms: number) => Promise<void> = sleepMs,
): Promise<Result<PingReport>> {
  if (!Number.isInteger(opts.count) || opts.count < 1) return err('invalid_argument', 'count must be a positive integer');
  if (opts.size !== undefined && (!Number.isInteger(opts.size) || opts.size < 1 || opts.size > MAX_PING_SIZE_BYTES)) {
    return err('invalid_argument', `size must be 1..${MAX_PING_SIZE_BYTES} bytes`);
  }
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
  const deadlineUs = clock.nowUs() + timeoutMs * 1000;
  const remainingMs = (): number => Math.max(0, (deadlineUs - clock.nowUs()) / 1000);
  const results: PingResult[] = [];

  for (let seq = 0; seq < opts.count; seq++) {
    if (remainingMs() <= 0) return ok({ results, timeout: true });
    const startUs = clock.nowUs();
    const probe = await pingOnce(host, peer, pingPayload(seq, opts.size), remainingMs());
    const rtt = rttMs(startUs, clock);
    const result: PingResult = probe.ok ? { seq, bytes: probe.value, rtt_ms: rtt } : { seq, bytes: 0, rtt_ms: rtt, error: probe.error.message };
    results.push(result);
    opts.onResult?.(result);
    if (!probe.ok && probe.error.code === 'timeout') return ok({ results, timeout: true });
    if (seq < opts.count - 1) await sleep(Math.min(opts.intervalMs, remainingMs()));
  }
  return ok({ results, timeout: false });
}

async function pingOnce(host: ServiceHost, peer: PeerRef, payload: Buffer, timeoutMs: number): Promise<Result<number>> {
  const dialed = await withTimeout(host.dial(peer, PORT_ECHO, { timeoutMs }), timeoutMs, 'dial');
  if (!dialed.ok) return dialed;
  const stream = dialed.value;
  guardStream(stream);
  try {
    const exchange = async (): Promise<Result<number>> => {
      const w = await writeChunk(stream, payload);
      if (!w.ok) return w;
      const reader = new StreamReader(stream);
      let got = 0;
      while (got < payload.length) {
        const r = await reader.readSome(payload.length - got);
        if (!r.ok) return r;
        if (r.value === null) break; // peer closed early: report what came back, as the original's single Read does
        got += r.value.length;
      }
      if (got === 0) return err('connection_failed', 'EOF');
      return ok(got);
    };
    return await withTimeout(exchange(), timeoutMs, 'ping', () => stream.destroy());
  } finally {
    closeStream(stream);
  }
}

export const BENCH_CHUNK_BYTES = 4096;
export const DEFAULT_BENCH_TIMEOUT_MS = 120_000;
export const DEFAULT_BENCH_BYTES = 1024 * 1024;

/** The original's bench JSON fields plus the contract's BenchResult names. */
export interface BenchReport extends BenchResult {
  sent_bytes: number;
  recv_bytes: number;
  send_duration_ms: number;
  total_duration_ms: number;
  send_mbps: number;
  total_mbps: number;
  /** False when the receive side timed out before every byte came back (the original only warns). */
  complete: boolean;
}

export interface BenchOptions {
  /** How long to wait for the echoes after sending (the original's --timeout, default 120 s). */
  timeoutMs?: number;
  clock?: Clock;
}

/**
 * Throughput through the peer's echo port. `progress(bytesEchoed, bytes)` is called as echoes arrive.
 * Errors: invalid_argument (bytes), connection_failed (dial or write failed), timeout (dial).
 */
export async function bench(
  host: Pick<ServiceHost, 'dial'>,
  peer: PeerRef,
  bytes: number,
  progress?: ProgressFn,
  opts: BenchOptions = {},
): Promise<Result<BenchReport>> {
  if (!Number.isSafeInteger(bytes) || bytes < 1) return err('invalid_argument', 'bench size must be at least 1 byte');
  const clock = opts.clock ?? monotonicClock;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_BENCH_TIMEOUT_MS;

  const dialed = await host.dial(peer, PORT_ECHO, { timeoutMs });
  if (!dialed.ok) return dialed;
  const stream: PilotStream = dialed.value;
  guardStream(stream);

  let recvBytes = 0;
  const reader = new StreamReader(stream);
  const receiving = (async (): Promise<void> => {
    while (recvBytes < bytes) {
      const r = await reader.readSome(1 << 20);
      if (!r.ok || r.value === null) return;
      recvBytes += r.value.length;
      progress?.(recvBytes, bytes);
    }
  })();

  const chunk = Buffer.allocUnsafe(BENCH_CHUNK_BYTES);
  for (let i = 0; i < chunk.length; i++) chunk[i] = i % 256;

  const startUs = clock.nowUs();
  let sentBytes = 0;
  while (sentBytes < bytes) {
    const n = Math.min(BENCH_CHUNK_BYTES, bytes - sentBytes);
    // Reusing one buffer is safe: its bytes never change, even while a write is still queued.
    const w = await writeChunk(stream, n === BENCH_CHUNK_BYTES ? chunk : chunk.subarray(0, n));
    if (!w.ok) {
      stream.destroy();
      await receiving;
      return err('connection_failed', `write: ${w.error.message}`, { detail: { sent_bytes: sentBytes } });
    }
    sentBytes += n;
  }
  const sendUs = clock.nowUs() - startUs;

  const received = await withTimeout(
    receiving.then(() => ok()),
    timeoutMs,
    'bench receive',
  );
  const totalUs = clock.nowUs() - startUs;
  closeStream(stream, 1000);
  if (!received.ok) stream.destroy();

  // Guard a zero duration (a virtual clock) so the rate stays a finite JSON number.
  const sendS = Math.max(sendUs, 1) / 1e6;
  const totalS = Math.max(totalUs, 1) / 1e6;
  const sendMbps = bytes / sendS / 1024 / 1024;
  const totalMbps = bytes / totalS / 1024 / 1024;
  return ok({
    bytes,
    duration_ms: Math.floor(totalUs / 1000),
    send_mbps: sendMbps,
    throughput_mbps: totalMbps,
    sent_bytes: sentBytes,
    recv_bytes: recvBytes,
    // The original prints float64(d.Milliseconds()): whole milliseconds.
    send_duration_ms: Math.floor(sendUs / 1000),
    total_duration_ms: Math.floor(totalUs / 1000),
    total_mbps: totalMbps,
    complete: recvBytes >= bytes,
  });
}

