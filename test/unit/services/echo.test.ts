import test from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/core/logger.js';
import { PORT_ECHO } from '../../../src/wire/address.js';
import { bench, ping, startServices, BENCH_CHUNK_BYTES } from '../../../src/services/index.js';
import { StreamReader, writeChunk } from '../../../src/services/stream-io.js';
import { MemoryNetwork } from './memory-host.js';

function setup(opts: { echo?: boolean } = {}) {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'client');
  const svc = startServices(server, { echo: opts.echo ?? true, dataExchange: false, eventStream: false, logger: silentLogger() });
  assert.ok(svc.ok);
  return { net, server, client, svc: svc.value };
}

test('echo returns every byte, in order, then FIN', async () => {
  const { net, client, svc } = setup();
  const d = await client.dial('server', PORT_ECHO);
  assert.ok(d.ok);
  const s = d.value;
  s.on('error', () => {});
  const payload = Buffer.alloc(200_000);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) % 251;
  const reader = new StreamReader(s);
  const got = reader.readExactStrict(payload.length);
  assert.ok((await writeChunk(s, payload)).ok);
  s.end();
  const r = await got;
  assert.ok(r.ok);
  assert.deepEqual(r.value, payload);
  const eof = await reader.readSome(10);
  assert.ok(eof.ok && eof.value === null, 'server ends after echoing everything: ' + JSON.stringify(eof));
  await svc.stop();
  net.cleanup();
});

test('ping: one result per probe with seq, bytes and rtt_ms as the original prints them', async () => {
  const { net, svc } = setup();
  const client = net.addHost(3);
  const clock = new ManualClock(0, 250); // every read advances 250 µs
  const sleeps: number[] = [];
  const r = await ping(client, 'server', { count: 3, intervalMs: 1000 }, clock, async (ms) => {
    sleeps.push(ms);
  });
  assert.ok(r.ok);
  assert.equal(r.value.timeout, false);
  assert.equal(r.value.results.length, 3);
  r.value.results.forEach((p, i) => {
    assert.equal(p.seq, i);
    assert.equal(p.bytes, `ping-${i}`.length);
    assert.equal(p.error, undefined);
    assert.ok(p.rtt_ms > 0);
    assert.equal(Math.round(p.rtt_ms * 1000), p.rtt_ms * 1000, 'microsecond resolution');
  });
  assert.deepEqual(sleeps, [1000, 1000], 'sleeps between probes, not after the last');
  await svc.stop();
  net.cleanup();
});

test('ping with size pads the payload; a dead port gives per-probe errors', async () => {
  const { net, svc, client } = setup();
  const r = await ping(client, 'server', { count: 1, intervalMs: 0, size: 1000 });
  assert.ok(r.ok);
  assert.equal(r.value.results[0]!.bytes, 1000);
  await svc.stop();
  const r2 = await ping(client, 'server', { count: 2, intervalMs: 0 });
  assert.ok(r2.ok);
  assert.equal(r2.value.results.length, 2);
  for (const p of r2.value.results) {
    assert.equal(p.bytes, 0);
    assert.match(p.error ?? '', /refused/);
  }
  const bad = await ping(client, 'server', { count: 0, intervalMs: 0 });
  assert.ok(!bad.ok && bad.error.code === 'invalid_argument');
  net.cleanup();
});

test('ping stops with timeout:true when the deadline passes', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2);
  // A black hole on the echo port: accepts and never answers.
  const ln = server.listen(PORT_ECHO);
  assert.ok(ln.ok);
  const held: unknown[] = [];
  void (async () => {
    for (;;) {
      const s = await ln.value.accept();
      if (!s) return;
      s.on('error', () => {});
      held.push(s);
    }
  })();
  const r = await ping(client, 'server', { count: 3, intervalMs: 0, timeoutMs: 100 });
  assert.ok(r.ok);
  assert.equal(r.value.timeout, true);
  assert.equal(r.value.results.length, 1);
  assert.match(r.value.results[0]!.error ?? '', /no response/);
  ln.value.close();
  net.cleanup();
});

test('bench sends exactly the requested bytes in 4096-byte chunks and counts the echo', async () => {
  const { net, client, svc } = setup();
  const total = 1024 * 1024 + 123;
  const progress: number[] = [];
  const r = await bench(client, 'server', total, (done, all) => {
    assert.equal(all, total);
    progress.push(done);
  });
  assert.ok(r.ok);
  const b = r.value;
  assert.equal(b.sent_bytes, total);
  assert.equal(b.recv_bytes, total);
  assert.equal(b.bytes, total);
  assert.equal(b.complete, true);
  assert.ok(b.send_mbps > 0 && Number.isFinite(b.send_mbps));
  assert.ok(b.total_mbps > 0 && Number.isFinite(b.total_mbps));
  assert.equal(b.throughput_mbps, b.total_mbps);
  assert.ok(b.total_duration_ms >= b.send_duration_ms);
  assert.equal(Number.isInteger(b.send_duration_ms), true);
  assert.equal(progress.at(-1), total);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i]! > progress[i - 1]!);
  // What reached the wire: the original's chunking.
  const dialStream = net.dials.at(-1)!.stream;
  assert.equal(dialStream.bytesWritten, total);
  assert.equal(BENCH_CHUNK_BYTES, 4096);
  await svc.stop();
  net.cleanup();
});

test('bench against a peer without echo fails with connection_failed', async () => {
  const { net, client, svc } = setup({ echo: false });
  const r = await bench(client, 'server', 1000);
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'connection_failed');
  const bad = await bench(client, 'server', 0);
  assert.ok(!bad.ok && bad.error.code === 'invalid_argument');
  await svc.stop();
  net.cleanup();
});
