// The measurements every worker runs, written once against two small transport shapes — a byte stream
// transport (Pilot stream, TCP, TLS 1.3, udx + secret-stream) and a datagram transport (Pilot datagram
// socket, raw node:dgram) — so Pilot and its baselines execute the exact same loop in the same kind of
// process. Servers and clients live in different processes; timestamps are CLOCK_MONOTONIC µs (monoUs) so
// the orchestrator can subtract a client's start from a server's last byte.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monoUs } from './rpc.js';

/** What we need of a stream: node Duplex and streamx Duplex (secret-stream) both fit. */
export interface ByteStream {
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  destroy(err?: Error): unknown;
  on(ev: 'data', fn: (b: Uint8Array) => void): unknown;
  on(ev: 'error' | 'close' | 'end' | 'drain', fn: (...a: unknown[]) => void): unknown;
  once(ev: 'drain' | 'close' | 'end' | 'error', fn: (...a: unknown[]) => void): unknown;
  off?(ev: string, fn: (...a: never[]) => void): unknown;
  removeListener?(ev: string, fn: (...a: never[]) => void): unknown;
}

/** A stream transport. `serve` prepares `count` inbound streams for `test` and returns one dial target each. */
export interface StreamSide {
  serve(test: string, count: number, onStream: (s: ByteStream) => void): Promise<unknown[]>;
  dial(target: unknown): Promise<ByteStream>;
}

export interface DgramEndpoint {
  /** Fire and forget; a returned promise (Pilot's async send) may be awaited for pacing. */
  send(data: Uint8Array): void | Promise<unknown>;
  close(): void;
}

export interface DgramSide {
  /** Bind for `test`; `onMessage` gets each datagram and a way to answer its sender. Returns the target. */
  open(test: string, onMessage: (data: Uint8Array, reply: (d: Uint8Array) => void) => void): Promise<unknown>;
  /** A client endpoint that sends to `target` and hands answers to `onMessage`. */
  connect(target: unknown, onMessage: (data: Uint8Array) => void): Promise<DgramEndpoint>;
}

interface SinkState {
  bytes: number;
  /** 'data' events: bytes / chunks = the average read the application saw. */
  chunks: number;
  streams: number;
  firstUs: number;
  lastUs: number;
}

interface DgramSinkState {
  count: number;
  bytes: number;
  firstUs: number;
  lastUs: number;
}

/** Bulk writes as a bulk sender makes them (../shared/baselines/tls.js: 256 KiB); every transport gets the same. */
const CHUNK_BYTES = 256 * 1024;

/** Bulk-throughput tests ('s1', 's8'): TCP/TLS baselines leave Nagle on there, as a bulk sender would. */
export function isBulkTest(test: string): boolean {
  return /^s\d+$/.test(test);
}

function once<T>(s: ByteStream, ev: 'drain' | 'close'): Promise<T> {
  return new Promise((resolve) => s.once(ev, resolve as () => void));
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function setImmediateP(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function summarize(samplesUs: number[]): { n: number; p50Us: number; p99Us: number; minUs: number; meanUs: number; maxUs: number } {
  const s = [...samplesUs].sort((a, b) => a - b);
  const pick = (p: number): number => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! : NaN);
  return {
    n: s.length,
    p50Us: pick(50),
    p99Us: pick(99),
    minUs: s[0] ?? NaN,
    meanUs: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
    maxUs: s[s.length - 1] ?? NaN,
  };
}

/** RPC handlers shared by all workers. `streams` / `dgrams` may be null for transports without that shape. */
export function testHandlers(streams: StreamSide | null, dgrams: DgramSide | null): Record<string, (a: Record<string, unknown>) => unknown> {
  const sinks = new Map<string, SinkState>();
  const dsinks = new Map<string, DgramSinkState>();
  const open = new Set<ByteStream>();
  const endpoints = new Set<DgramEndpoint>();
  const track = (s: ByteStream): ByteStream => {
    open.add(s);
    s.on('error', () => undefined);
    s.once('close', () => open.delete(s));
    return s;
  };
  const needStreams = (): StreamSide => {
    if (!streams) throw new Error('this worker has no stream transport');
    return streams;
  };
  const needDgrams = (): DgramSide => {
    if (!dgrams) throw new Error('this worker has no datagram transport');
    return dgrams;
  };

  return {
    /** Throughput sink: count bytes of every inbound stream of `test`. */
    async serveSink(a) {
      const test = String(a.test);
      const st: SinkState = { bytes: 0, chunks: 0, streams: 0, firstUs: 0, lastUs: 0 };
      sinks.set(test, st);
      return needStreams().serve(test, Number(a.count ?? 1), (s) => {
        track(s);
        st.streams++;
        s.on('data', (b) => {
          const now = monoUs();
          if (st.firstUs === 0) st.firstUs = now;
          st.lastUs = now;
          st.bytes += b.byteLength;
          st.chunks++;
        });
        s.on('end', () => void s.end());
      });
    },
    sinkStatus(a) {
      return sinks.get(String(a.test)) ?? null;
    },
    /** Resolves once the sink holds `bytes`, or at the timeout with what arrived. */
    async sinkWait(a) {
      const st = sinks.get(String(a.test));
      if (!st) throw new Error(`no sink ${String(a.test)}`);
      const deadline = Date.now() + Number(a.timeoutMs ?? 120_000);
      while (st.bytes < Number(a.bytes) && Date.now() < deadline) await sleepMs(5);
      return { ...st, isComplete: st.bytes >= Number(a.bytes) };
    },
    /** Echo server for stream ping-pong. */
    async serveEcho(a) {
      return needStreams().serve(String(a.test), Number(a.count ?? 1), (s) => {
        track(s);
        s.on('data', (b) => void s.write(b));
        s.on('end', () => void s.end());
      });
    },
    /** Connection setup server: the first byte goes out as soon as the stream exists. */
    async serveSetup(a) {
      return needStreams().serve(String(a.test), Number(a.count ?? 1), (s) => {
        track(s);
        s.write(new Uint8Array([1]));
        s.on('end', () => void s.end());
      });
    },

    /**
     * Throughput client: one stream per target, `bytesPerStream` each in 256 KiB writes, all in parallel.
     * Stops writing at `maxMs` (the sink then says how much arrived). Returns the start time.
     */
    async send(a) {
      const targets = a.targets as unknown[];
      const perStream = Number(a.bytesPerStream);
      const maxMs = Number(a.maxMs ?? 300_000);
      const ss = await Promise.all(targets.map((t) => needStreams().dial(t).then(track)));
      const chunk = new Uint8Array(CHUNK_BYTES);
      for (let i = 0; i < chunk.length; i++) chunk[i] = i & 0xff;
      const startUs = monoUs();
      const deadlineUs = startUs + maxMs * 1000;
      let written = 0;
      await Promise.all(
        ss.map(async (s) => {
          let sent = 0;
          while (sent < perStream && monoUs() < deadlineUs) {
            const n = Math.min(CHUNK_BYTES, perStream - sent);
            sent += n;
            written += n;
            if (!s.write(n === CHUNK_BYTES ? chunk : chunk.subarray(0, n))) await once(s, 'drain');
          }
          s.end();
        }),
      );
      return { startUs, endUs: monoUs(), written };
    },

    /**
     * Ping-pong over one established stream: `warmup` round trips (default 10), then `count` measured ones of
     * `size` bytes. The warm-up round trips are summarised too (`cold`): what a fresh connection's first
     * exchanges cost while the JIT compiles the path.
     */
    async pingStream(a) {
      const s = track(await needStreams().dial(a.target));
      const size = Number(a.size ?? 64);
      const count = Number(a.count);
      const warmup = Number(a.warmup ?? 10);
      const msg = new Uint8Array(size).fill(7);
      const rtts: number[] = [];
      let got = 0;
      let wake: (() => void) | null = null;
      s.on('data', (b) => {
        got += b.byteLength;
        if (got >= size && wake) {
          const w = wake;
          wake = null;
          w();
        }
      });
      const cold: number[] = [];
      for (let i = 0; i < count + warmup; i++) {
        got = 0;
        const t0 = monoUs();
        const arrived = new Promise<void>((r) => (wake = r));
        s.write(msg);
        await arrived;
        (i >= warmup ? rtts : cold).push(monoUs() - t0);
      }
      s.destroy();
      // PILOT_BENCH_RTT_DUMP=DIR keeps every round trip (µs, one per line) for a histogram.
      const dump = process.env.PILOT_BENCH_RTT_DUMP;
      if (dump) writeFileSync(join(dump, `ping-${process.pid}-${Date.now()}.txt`), rtts.map((x) => x.toFixed(0)).join('\n'));
      const c = summarize(cold);
      return { ...summarize(rtts), coldP50Us: c.p50Us, coldP99Us: c.p99Us };
    },

    /** Dial → first byte from the server, `targets.length` times in sequence; sample 0 is the coldest. */
    async setup(a) {
      const targets = a.targets as unknown[];
      const samples: number[] = [];
      for (const t of targets) {
        const t0 = monoUs();
        const s = track(await needStreams().dial(t));
        await new Promise<void>((r) => s.on('data', () => r()));
        samples.push(monoUs() - t0);
        s.destroy();
      }
      return { first: samples[0], ...summarize(samples.slice(1)) };
    },

    closeStreams() {
      for (const s of open) s.destroy();
      open.clear();
      for (const e of endpoints) e.close();
      endpoints.clear();
      return null;
    },

    // ----- datagrams -----
    async dgramServeEcho(a) {
      return needDgrams().open(String(a.test), (d, reply) => reply(d));
    },
    async dgramServeSink(a) {
      const st: DgramSinkState = { count: 0, bytes: 0, firstUs: 0, lastUs: 0 };
      dsinks.set(String(a.test), st);
      return needDgrams().open(String(a.test), (d) => {
        const now = monoUs();
        if (st.firstUs === 0) st.firstUs = now;
        st.lastUs = now;
        st.count++;
        st.bytes += d.byteLength;
      });
    },
    dgramSinkStatus(a) {
      return dsinks.get(String(a.test)) ?? null;
    },
    dgramSinkReset(a) {
      const st = dsinks.get(String(a.test));
      if (st) Object.assign(st, { count: 0, bytes: 0, firstUs: 0, lastUs: 0 });
      return null;
    },
    /** Datagram ping-pong: `count` round trips; a probe unanswered after `lossMs` counts as lost. */
    async dgramPing(a) {
      const size = Number(a.size ?? 64);
      const count = Number(a.count);
      const lossMs = Number(a.lossMs ?? 1000);
      let wake: (() => void) | null = null;
      const ep = await needDgrams().connect(a.target, () => {
        if (wake) {
          const w = wake;
          wake = null;
          w();
        }
      });
      endpoints.add(ep);
      const msg = new Uint8Array(size).fill(9);
      const rtts: number[] = [];
      let lost = 0;
      for (let i = 0; i < count + 10; i++) {
        const t0 = monoUs();
        let timer: NodeJS.Timeout | null = null;
        const answered = await new Promise<boolean>((r) => {
          wake = () => r(true);
          timer = setTimeout(() => r(false), lossMs);
          void ep.send(msg);
        });
        if (timer) clearTimeout(timer);
        wake = null;
        if (!answered) lost++;
        else if (i >= 10) rtts.push(monoUs() - t0);
      }
      ep.close();
      endpoints.delete(ep);
      return { lost, ...summarize(rtts) };
    },
    /**
     * Send as fast as the transport takes it for `durationMs`: bursts of 64 per event-loop turn, as
     * ../shared/baselines/tx.js does, awaiting the burst's last send where send is async (Pilot).
     */
    async dgramFlood(a) {
      const size = Number(a.size);
      const durationMs = Number(a.durationMs);
      const ep = await needDgrams().connect(a.target, () => undefined);
      endpoints.add(ep);
      const msg = new Uint8Array(size).fill(3);
      const startUs = monoUs();
      const endAt = startUs + durationMs * 1000;
      let sent = 0;
      while (monoUs() < endAt) {
        let last: void | Promise<unknown> = undefined;
        for (let k = 0; k < 64; k++) last = ep.send(msg);
        sent += 64;
        if (last) await last;
        await setImmediateP();
      }
      const endUs = monoUs();
      await sleepMs(200);
      ep.close();
      endpoints.delete(ep);
      return { sent, startUs, endUs };
    },
  };
}
