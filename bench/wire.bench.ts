// Wire codec micro-benchmarks. bench/micro.bench.ts calls addWireTasks(); run this file directly
// (`npx tsx bench/wire.bench.ts` or `node dist/bench/wire.bench.js`) for a standalone table.
import { Bench } from 'tinybench';
import { formatAddr, parseAddr, type VirtualAddr } from '../src/wire/address.js';
import { crc32 } from '../src/wire/crc32.js';
import { decodePacket, encodePacket, encodePacketInto, makePacket, FLAG_ACK, type Packet } from '../src/wire/header.js';
import { decodeLegacyFrame, encodePilt } from '../src/wire/legacy-frame.js';

let sink = 0;

export function addWireTasks(bench: Bench): void {
  const addr: VirtualAddr = { network: 1, node: 0x00a3f291 };
  const addrText = formatAddr(addr);
  const bare: Packet = makePacket({
    flags: FLAG_ACK,
    src: { network: 0, node: 1 },
    dst: { network: 0, node: 2 },
    srcPort: 49152,
    dstPort: 1000,
    seq: 123456,
    ack: 654321,
    window: 512,
  });
  const payload = new Uint8Array(4096).map((_, i) => i * 13);
  const full: Packet = { ...bare, payload };
  const out = new Uint8Array(8192);
  const bareBytes = (encodePacket(bare) as { ok: true; value: Uint8Array }).value.slice();
  const fullBytes = (encodePacket(full) as { ok: true; value: Uint8Array }).value.slice();
  const piltBytes = (encodePilt(full) as { ok: true; value: Uint8Array }).value.slice();

  bench
    .add('wire: header encode (34 B, into a buffer)', () => {
      const r = encodePacketInto(bare, out, 0);
      if (r.ok) sink ^= r.value;
    })
    .add('wire: header encode (34 B, new buffer)', () => {
      const r = encodePacket(bare);
      if (r.ok) sink ^= r.value[30]!;
    })
    .add('wire: header decode + CRC (34 B)', () => {
      const r = decodePacket(bareBytes);
      if (r.ok) sink ^= r.value.seq;
    })
    .add('wire: packet encode (4096 B payload, into a buffer)', () => {
      const r = encodePacketInto(full, out, 0);
      if (r.ok) sink ^= r.value;
    })
    .add('wire: packet decode + CRC (4096 B payload)', () => {
      const r = decodePacket(fullBytes);
      if (r.ok) sink ^= r.value.payload.length;
    })
    .add('wire: PILT frame demux + decode (4096 B)', () => {
      const r = decodeLegacyFrame(piltBytes);
      if (r.ok) sink ^= r.value.kind.length;
    })
    .add('wire: crc32 (4130 B)', () => {
      sink ^= crc32(fullBytes);
    })
    .add('wire: address parse', () => {
      const r = parseAddr(addrText);
      if (r.ok) sink ^= r.value.node;
    })
    .add('wire: address format', () => {
      sink ^= formatAddr(addr).length;
    });
}

/** Keeps results observable so the JIT cannot drop the work. */
export function wireBenchSink(): number {
  return sink;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const bench = new Bench({ time: Number(process.env.BENCH_TIME_MS ?? 1000), warmupTime: 200 });
  addWireTasks(bench);
  await bench.run();
  console.table(
    bench.tasks.map((t) => {
      const r = t.result as { latency?: { mean?: number; p99?: number } } | undefined;
      return {
        task: t.name,
        'ns/op': Math.round((r?.latency?.mean ?? NaN) * 1e6),
        'p99 ns': Math.round((r?.latency?.p99 ?? NaN) * 1e6),
      };
    }),
  );
  if (wireBenchSink() === 0.5) console.log('');
}
