// Transport micro-benchmarks. bench/micro.bench.ts calls addTransportTasks(); run this file directly
// (`npx tsx bench/transport.bench.ts` or `node dist/bench/transport.bench.js`) for a standalone table with
// the per-segment figures.
//
// "loopback" = a client and a server Connection wired back to back in memory (no loss, no link model):
// each task iteration moves SEGMENTS full data segments client → server and their ACKs back, so
// ns/op ÷ SEGMENTS is the protocol cost of one segment sent + received + acknowledged, both ends together
// (encode, decode, reassembly copy, read copy, SACK scoreboard, RTT/rate sampling, congestion control).
import { Bench } from 'tinybench';
import { Connection } from '../src/transport/connection.js';
import type { CongestionController, CongestionControllerFactory } from '../src/transport/congestion/controller.js';
import { newRenoFactory } from '../src/transport/congestion/new-reno.js';
import {
  decodeSegment,
  decodeSegmentInto,
  encodeSegment,
  newSegmentFields,
  FLAG_ACK,
  MAX_SEGMENT_BYTES,
  SEGMENT_HEADER_BYTES,
} from '../src/wire/segment.js';

export const SEGMENTS = 1000;
const PAYLOAD = MAX_SEGMENT_BYTES - SEGMENT_HEADER_BYTES;

let sink = 0;

/** No congestion limit, no pacing: isolates the per-segment machinery from controller dynamics. */
const unlimited: CongestionControllerFactory = (): CongestionController => ({
  name: 'unlimited',
  onPacketSent() {},
  onAck() {},
  onLoss() {},
  onRtoTimeout() {},
  cwndBytes: () => 64 * 1024 * 1024,
  pacingRateBps: () => Infinity,
  debugState: () => 'unlimited',
});

/** A long-lived in-memory pair; transfer(n) moves n full segments and returns when all are read. */
export function loopbackPair(congestion?: CongestionControllerFactory) {
  const buf = new Uint8Array(MAX_SEGMENT_BYTES);
  const src = new Uint8Array(256 * 1024).map((_, i) => i & 0xff);
  const into = new Uint8Array(256 * 1024);
  let nowUs = 0;
  const opts = congestion ? { congestion } : {};
  const client = Connection.connect({ localPort: 1, remotePort: 2, connId: 9, nagle: false, ...opts }, nowUs);
  let n = client.pollTransmit(nowUs, buf);
  const acc = Connection.accept(buf.subarray(0, n), opts, nowUs);
  if (!acc.ok) throw new Error(acc.error.message);
  const server = acc.value;
  const pumpAll = (): void => {
    let k: number;
    while ((k = client.pollTransmit(nowUs, buf)) > 0) server.handle(buf.subarray(0, k), nowUs);
    while ((k = server.pollTransmit(nowUs, buf)) > 0) client.handle(buf.subarray(0, k), nowUs);
  };
  nowUs += 100;
  pumpAll();
  while (client.pollEvent() !== null);
  while (server.pollEvent() !== null);

  function transfer(segments: number): void {
    const total = segments * PAYLOAD;
    let written = 0;
    let read = 0;
    while (read < total) {
      if (written < total) {
        const w = client.write(src.subarray(0, Math.min(src.length, total - written)));
        if (w > 0) written += w;
      }
      pumpAll();
      let r: number;
      while ((r = server.read(into)) > 0) read += r;
      while (client.pollEvent() !== null);
      while (server.pollEvent() !== null);
      // ~1.1 µs per segment of virtual time: a 10 Gbit/s path with a tiny RTT, so pacing rarely bites
      nowUs += 20;
      const t = client.pollTimeout();
      if (t !== null && t <= nowUs) client.handleTimeout(nowUs);
      const u = server.pollTimeout();
      if (u !== null && u <= nowUs) server.handleTimeout(nowUs);
    }
    sink ^= read;
  }
  return { client, server, transfer };
}

export function addTransportTasks(bench: Bench): void {
  const unlimitedPair = loopbackPair(unlimited);
  const bbrPair = loopbackPair();
  const renoPair = loopbackPair(newRenoFactory());

  const seg = new Uint8Array(MAX_SEGMENT_BYTES);
  const payload = new Uint8Array(PAYLOAD).fill(7);
  const init = {
    flags: FLAG_ACK,
    srcPort: 1,
    dstPort: 2,
    connId: 3,
    pn: 4,
    seq: 5,
    ack: 6,
    window: 7,
    ackPn: 8,
    sack: [{ gap: 1, length: 2 }],
    payload,
  };
  const encoded = seg.slice(0, (encodeSegment(init, seg) as { value: number }).value);
  const fields = newSegmentFields();

  bench
    .add(`transport: loopback ${SEGMENTS} segments sent+acked (no cc)`, () => unlimitedPair.transfer(SEGMENTS))
    .add(`transport: loopback ${SEGMENTS} segments sent+acked (BBR)`, () => bbrPair.transfer(SEGMENTS))
    .add(`transport: loopback ${SEGMENTS} segments sent+acked (NewReno)`, () => renoPair.transfer(SEGMENTS))
    .add('transport: encodeSegment 1 KiB+ payload', () => {
      const r = encodeSegment(init, seg);
      if (r.ok) sink ^= r.value;
    })
    .add('transport: decodeSegmentInto (hot path, no alloc)', () => {
      if (decodeSegmentInto(encoded, fields)) sink ^= fields.payloadBytes;
    })
    .add('transport: decodeSegment (object + views)', () => {
      const r = decodeSegment(encoded);
      if (r.ok) sink ^= r.value.payload.length;
    });
}

/** Keeps results observable so the JIT cannot drop the work. */
export function transportBenchSink(): number {
  return sink;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const bench = new Bench({ time: Number(process.env.BENCH_TIME_MS ?? 1000), warmupTime: 200 });
  addTransportTasks(bench);
  await bench.run();
  console.table(
    bench.tasks.map((t) => {
      const r = t.result as { latency?: { mean?: number; p99?: number } } | undefined;
      const ns = (r?.latency?.mean ?? NaN) * 1e6;
      const perSegment = t.name.includes('loopback') ? ns / SEGMENTS : ns;
      return {
        task: t.name,
        'ns/op': Math.round(ns),
        'ns/segment': Math.round(perSegment),
        'Gbit/s (1 core, payload)': t.name.includes('loopback') ? ((PAYLOAD * 8) / perSegment).toFixed(2) : '',
      };
    }),
  );
  if (transportBenchSink() === 0.5) console.log('');
}
