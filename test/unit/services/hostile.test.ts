// Hostile peers: garbage, lying length prefixes, truncated frames, floods, slow readers. Each must end
// only its own connection; the services keep serving everyone else and nothing throws.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../../src/core/rng.js';
import { silentLogger } from '../../../src/core/logger.js';
import { PORT_DATAEXCHANGE, PORT_ECHO, PORT_EVENTSTREAM } from '../../../src/wire/address.js';
import {
  encodeEvent,
  encodeFileFrame,
  encodeFrameHeader,
  ping,
  publish,
  sendMessage,
  startServices,
  subscribe,
  type ReceivedEvent,
  type ServiceOptions,
} from '../../../src/services/index.js';
import { StreamReader, writeChunk } from '../../../src/services/stream-io.js';
import { MemoryNetwork, waitFor, type MemoryHost } from './memory-host.js';

const seed = Number(process.env.PILOT_SEED ?? Date.now() % 2 ** 31);

function setup(extra: Partial<ServiceOptions> = {}) {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const evil = net.addHost(66, 'evil');
  const good = net.addHost(2, 'good');
  const svc = startServices(server, { echo: true, dataExchange: true, eventStream: true, logger: silentLogger(), ...extra });
  assert.ok(svc.ok);
  return { net, server, evil, good, svc: svc.value };
}

/** Send raw bytes and report how the server ended the connection. */
async function rawSend(host: MemoryHost, port: number, bytes: Uint8Array, opts: { end?: boolean } = {}) {
  const d = await host.dial('server', port);
  assert.ok(d.ok);
  const s = d.value;
  s.on('error', () => {});
  const reader = new StreamReader(s);
  await writeChunk(s, bytes);
  if (opts.end) s.end();
  const chunks: Buffer[] = [];
  for (;;) {
    const r = await reader.readSome(1 << 20);
    if (!r.ok) return { closed: 'reset' as const, reply: Buffer.concat(chunks) };
    if (r.value === null) return { closed: 'fin' as const, reply: Buffer.concat(chunks) };
    chunks.push(r.value);
  }
}

test('data exchange: an oversized length prefix drops only that connection', async () => {
  const { net, evil, good, svc } = setup();
  // A good connection opened before the attack keeps working after it.
  const before = await good.dial('server', PORT_DATAEXCHANGE);
  assert.ok(before.ok);
  before.value.on('error', () => {});
  const r = await rawSend(evil, PORT_DATAEXCHANGE, Buffer.concat([encodeFrameHeader(1, 0xffffffff), Buffer.from('x')]));
  assert.equal(r.closed, 'reset');
  assert.equal(r.reply.length, 0, 'no ACK for a refused frame');
  const r2 = await rawSend(evil, PORT_DATAEXCHANGE, encodeFrameHeader(4, (1 << 24) + 1));
  assert.equal(r2.closed, 'reset');

  const m = await sendMessage(good, 'server', Buffer.from('still here'), 'text');
  assert.ok(m.ok && m.value.ack);
  before.value.destroy();
  await svc.stop();
  net.cleanup();
});

test('data exchange: truncated frames (message and file) leave nothing behind', async () => {
  const { net, server, evil, good, svc } = setup();
  const truncatedText = Buffer.concat([encodeFrameHeader(1, 100), Buffer.from('only ten b')]);
  const r = await rawSend(evil, PORT_DATAEXCHANGE, truncatedText, { end: true });
  assert.equal(r.closed, 'reset');
  const file = encodeFileFrame('x.bin', Buffer.alloc(50_000, 7));
  assert.ok(file.ok);
  const r2 = await rawSend(evil, PORT_DATAEXCHANGE, file.value.subarray(0, 30_000), { end: true });
  assert.equal(r2.closed, 'reset');
  // header only, and half a header
  assert.equal((await rawSend(evil, PORT_DATAEXCHANGE, encodeFrameHeader(4, 10), { end: true })).closed, 'reset');
  assert.equal((await rawSend(evil, PORT_DATAEXCHANGE, Buffer.from([0, 0, 0]), { end: true })).closed, 'reset');

  const inbox = await svc.inbox.list();
  assert.ok(inbox.ok && inbox.value.length === 0);
  const recv = join(server.home, 'received');
  if (existsSync(recv)) {
    assert.deepEqual(readdirSync(recv).filter((n) => !n.startsWith('.')), []);
    assert.deepEqual(readdirSync(join(recv, '.pilot-meta')), [], 'partial file removed');
  }
  assert.ok((await sendMessage(good, 'server', Buffer.from('ok'), 'text')).ok);
  await svc.stop();
  net.cleanup();
});

test(`random garbage on every port never throws and never stops a service (seed ${seed})`, async () => {
  const { net, evil, good, svc } = setup();
  const rng = new Rng(seed);
  const attacks: Promise<unknown>[] = [];
  for (let i = 0; i < 60; i++) {
    const junk = new Uint8Array(1 + rng.int(3000));
    rng.fill(junk);
    // Bias some towards small, plausible lengths so the parsers get past the header.
    if (rng.chance(0.5) && junk.length >= 8) {
      junk[4] = 0;
      junk[5] = 0;
    }
    const port = [PORT_ECHO, PORT_DATAEXCHANGE, PORT_EVENTSTREAM][i % 3]!;
    attacks.push(rawSend(evil, port, junk, { end: rng.chance(0.5) }).catch(() => undefined));
    if (rng.chance(0.3)) {
      // RST mid-way
      const d = await evil.dial('server', port);
      if (d.ok) {
        d.value.on('error', () => {});
        d.value.write(junk.subarray(0, Math.ceil(junk.length / 2)));
        d.value.destroy();
      }
    }
  }
  // The open-ended attacks that were not ended are still pending; don't wait on them.
  await new Promise((r) => setTimeout(r, 50));
  const m = await sendMessage(good, 'server', Buffer.from('after the storm'), 'text');
  assert.ok(m.ok && m.value.ack, 'data exchange still works');
  const p = await ping(good, 'server', { count: 1, intervalMs: 0 });
  assert.ok(p.ok && p.value.results[0]!.error === undefined, 'echo still works');
  const got: ReceivedEvent[] = [];
  const s = await subscribe(good, 'server', 'calm', (e) => got.push(e));
  assert.ok(s.ok);
  await waitFor(() => svc.broker!.subscriptionCounts()['calm'] === 1, 3000, 'sub');
  assert.ok((await publish(good, 'server', 'calm', Buffer.from('ok'))).ok);
  await waitFor(() => got.length === 1, 3000, 'event stream still works');
  s.value.close();
  await svc.stop(); // resets the pending attackers too
  await Promise.all(attacks);
  net.cleanup();
});

test('event stream: over-long topic or payload length drops only that connection', async () => {
  const { net, evil, good, svc } = setup();
  const got: ReceivedEvent[] = [];
  const s = await subscribe(good, 'server', 'room', (e) => got.push(e));
  assert.ok(s.ok);
  await waitFor(() => svc.broker!.subscriptionCounts()['room'] === 1, 3000, 'sub');

  assert.equal((await rawSend(evil, PORT_EVENTSTREAM, Buffer.from([0x04, 0x01]))).closed, 'reset');
  const sub = encodeEvent('room', new Uint8Array(0));
  assert.ok(sub.ok);
  const hugePayload = Buffer.concat([sub.value, Buffer.from([0, 4]), Buffer.from('room'), Buffer.from([0x01, 0x00, 0x00, 0x01])]);
  assert.equal((await rawSend(evil, PORT_EVENTSTREAM, hugePayload)).closed, 'reset');
  const truncated = Buffer.concat([sub.value, Buffer.from([0, 4]), Buffer.from('ro')]);
  assert.equal((await rawSend(evil, PORT_EVENTSTREAM, truncated, { end: true })).closed, 'reset');

  assert.ok((await publish(evil, 'server', 'room', Buffer.from('legit'))).ok);
  await waitFor(() => got.length === 1, 3000, 'delivery');
  assert.equal(got[0]!.data, 'legit');
  assert.equal(svc.broker!.subscriptionCounts()['room'], 1);
  s.value.close();
  await s.value.done;
  await svc.stop();
  net.cleanup();
});

test('event stream: a subscriber that never reads is dropped once its backlog passes the cap', async () => {
  const { net, evil, good, svc } = setup({ limits: { maxSubscriberBacklogBytes: 64 * 1024 } });
  // Slow subscriber: subscribes and never reads.
  const d = await evil.dial('server', PORT_EVENTSTREAM);
  assert.ok(d.ok);
  const slow = d.value;
  let isReset = false;
  slow.on('error', () => {
    isReset = true;
  });
  const sub = encodeEvent('feed', new Uint8Array(0));
  assert.ok(sub.ok);
  await writeChunk(slow, sub.value);
  const got: ReceivedEvent[] = [];
  const fast = await subscribe(good, 'server', 'feed', (e) => got.push(e));
  assert.ok(fast.ok);
  await waitFor(() => svc.broker!.subscriptionCounts()['feed'] === 2, 3000, 'subs');

  const pubConn = await subscribe(good, 'server', 'pub-only', () => {});
  assert.ok(pubConn.ok);
  const payload = Buffer.alloc(10 * 1024, 0x61);
  for (let i = 0; i < 20; i++) assert.ok((await pubConn.value.publish('feed', payload)).ok);
  await waitFor(() => got.length === 20, 5000, 'fast subscriber gets everything');
  await waitFor(() => isReset, 3000, 'slow subscriber reset');
  await waitFor(() => svc.broker!.subscriptionCounts()['feed'] === 1, 3000, 'slow one unsubscribed');
  fast.value.close();
  pubConn.value.close();
  await svc.stop();
  net.cleanup();
});

test('connection cap per peer: one peer cannot take the whole budget', async () => {
  const { net, evil, good, svc } = setup({ limits: { maxConnectionsPerPeer: 2 } });
  const held = [];
  for (let i = 0; i < 2; i++) {
    const d = await evil.dial('server', PORT_ECHO);
    assert.ok(d.ok);
    d.value.on('error', () => {});
    held.push(d.value);
  }
  await waitFor(() => svc.activeConnections() === 2, 3000, 'two held');
  assert.equal((await rawSend(evil, PORT_ECHO, Buffer.from('hi'))).closed, 'reset');
  const p = await ping(good, 'server', { count: 1, intervalMs: 0 });
  assert.ok(p.ok && p.value.results[0]!.error === undefined, 'another peer is still served');
  for (const h of held) h.destroy();
  await svc.stop();
  net.cleanup();
});

test('connection cap per service: extra streams are reset, others unaffected', async () => {
  const { net, evil, good, svc } = setup({ limits: { maxConnectionsPerService: 2 } });
  const held = [];
  for (let i = 0; i < 2; i++) {
    const d = await evil.dial('server', PORT_ECHO);
    assert.ok(d.ok);
    d.value.on('error', () => {});
    held.push(d.value);
  }
  await waitFor(() => svc.activeConnections() === 2, 3000, 'two held');
  const third = await rawSend(evil, PORT_ECHO, Buffer.from('hi'));
  assert.equal(third.closed, 'reset');
  // Other services have their own budget.
  assert.ok((await sendMessage(good, 'server', Buffer.from('x'), 'text')).ok);
  // And the per-service budget is shared: a different peer is refused too while it is full.
  assert.equal((await rawSend(good, PORT_ECHO, Buffer.from('hi'))).closed, 'reset');
  for (const h of held) h.destroy();
  await waitFor(() => svc.activeConnections() === 0, 3000, 'released');
  const p = await ping(good, 'server', { count: 1, intervalMs: 0 });
  assert.ok(p.ok && p.value.results[0]!.error === undefined);
  await svc.stop();
  net.cleanup();
});
