// Issue 10, registry memory/DoS: connections per IP, one partial-frame budget across connections, a deadline
// for a started frame, and buffers given back on close. Before, each connection could hold a 1 MiB partial
// frame forever with no per-IP cap (400 of them: 54 → 468 MB RSS, and it stayed).
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { RegistryFrameDecoder, REGISTRY_CHUNK_OVERHEAD_BYTES } from '../../../src/wire/registry-frame.js';
import { RawClient, newIdentity, registerOurs, startServer } from './helpers.js';

function openRaw(port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) }, () => resolve(s));
    s.on('error', reject);
  });
}

function closed(s: net.Socket, timeoutMs = 3000): Promise<boolean> {
  if (s.destroyed || s.readableEnded) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Header of a frame of `bodyBytes` plus `sendBytes` of its body. */
function partialFrame(bodyBytes: number, sendBytes: number): Buffer {
  const b = Buffer.alloc(4 + sendBytes, 0x20);
  b.writeUInt32BE(bodyBytes, 0);
  return b;
}

const settle = (ms = 50) => new Promise((r) => setTimeout(r, ms));

test('limits: connections per source IP are capped; a freed slot is usable again', async () => {
  const { server, port } = await startServer({ maxConnectionsPerIp: 4 });
  const socks: net.Socket[] = [];
  try {
    for (let i = 0; i < 4; i++) socks.push(await openRaw(port));
    const fifth = await openRaw(port);
    assert.equal(await closed(fifth), true, 'the fifth connection from 127.0.0.1 is closed at once');
    assert.equal(server.stats.refusedPerIp, 1);
    socks.shift()!.destroy();
    await settle();
    const c = await RawClient.connect(port);
    const id = await registerOurs(c, newIdentity());
    assert.ok(id > 0, 'a slot freed by a close is usable');
    c.close();
    const fromOther = await openRaw(port, '127.0.0.2');
    assert.equal(await closed(fromOther, 200), false, '127.0.0.2 is another IP');
    fromOther.destroy();
  } finally {
    for (const s of socks) s.destroy();
    await server.close();
  }
});

test('limits: partial frames share one budget; the connection that crosses it is closed; a good client keeps working; close gives it back', async () => {
  const budget = 256 * 1024;
  const { server, port } = await startServer({ maxConnectionsPerIp: 0, maxPendingFrameBytesTotal: budget });
  const socks: net.Socket[] = [];
  try {
    const good = await RawClient.connect(port);
    for (let i = 0; i < 10; i++) {
      const s = await openRaw(port);
      s.write(partialFrame(60_000, 50_000));
      socks.push(s);
      await settle(20);
    }
    await settle(100);
    const open = socks.filter((s) => !s.destroyed && !s.readableEnded);
    assert.ok(server.stats.closedForFrameBudget >= 4, `closed for the budget: ${server.stats.closedForFrameBudget}`);
    assert.ok(server.pendingFrameBytes <= budget, `held ${server.pendingFrameBytes} <= ${budget}`);
    assert.ok(open.length >= 1);
    // A well-behaved client is unaffected (its frames complete at once and hold nothing).
    const id = await registerOurs(good, newIdentity());
    assert.ok(id > 0);
    for (const s of socks) s.destroy();
    await settle(100);
    assert.equal(server.pendingFrameBytes, 0, 'closed connections hold nothing');
    good.close();
  } finally {
    for (const s of socks) s.destroy();
    await server.close();
  }
});

test('limits: a slow drip (partial frame past its deadline) is closed; a slow but complete frame is answered', async () => {
  // A deadline long enough that the byte-by-byte frame below (≈ 150 ms of 5 ms pauses) fits it on a loaded machine.
  const { server, port } = await startServer({ partialFrameDeadlineMs: 1000 });
  try {
    const drip = await openRaw(port);
    drip.write(partialFrame(100, 0));
    const timer = setInterval(() => drip.write('x'), 40);
    const t0 = Date.now();
    assert.equal(await closed(drip, 8000), true);
    clearInterval(timer);
    const tookMs = Date.now() - t0;
    assert.ok(tookMs >= 900, `closed after ${tookMs} ms, before the deadline`);
    assert.equal(server.stats.closedForSlowFrame, 1);
    assert.equal(server.pendingFrameBytes, 0);
    // Byte by byte but within the deadline: fine; and every new frame gets its own deadline.
    const slow = await RawClient.connect(port);
    const body = Buffer.from('{"type":"list_networks"}');
    const frame = Buffer.concat([partialFrame(body.length, 0), body]);
    for (let round = 0; round < 3; round++) {
      for (const byte of frame) {
        slow.sendRaw(Uint8Array.of(byte));
        await settle(5);
      }
      assert.equal((await slow.reply()).type, 'list_networks_ok');
    }
    slow.close();
  } finally {
    await server.close();
  }
});

test('limits: a 1-byte drip is charged per chunk, not only per byte', () => {
  const d = new RegistryFrameDecoder();
  assert.ok(d.push(Uint8Array.of(0, 0, 1, 0)).ok);
  for (let i = 0; i < 100; i++) assert.ok(d.push(Uint8Array.of(0x20)).ok);
  assert.equal(d.pendingBytes, 104);
  assert.equal(d.pendingCost, 104 + 101 * REGISTRY_CHUNK_OVERHEAD_BYTES);
  d.clear();
  assert.equal(d.pendingCost, 0);
});

test('limits: request frames are capped at 64 KiB; the largest valid request (4 KiB justification, all escaped) fits', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const ida = await registerOurs(c, a);
    const idb = await registerOurs(c, b);
    const { bound } = await import('../../../src/wire/registry-frame.js');
    const { fresh } = await import('./helpers.js');
    const j = '\u0001'.repeat(4096);
    const r = await c.request(fresh(a, { type: 'request_handshake', from_node_id: ida, to_node_id: idb, justification: j }, bound.requestHandshake(ida, idb, j)));
    assert.equal(r.type, 'request_handshake_ok');
    const big = await openRaw(port);
    big.write(partialFrame(64 * 1024 + 1, 10));
    assert.equal(await closed(big), true, 'a 64 KiB + 1 frame closes the connection at its header');
    assert.equal(server.pendingFrameBytes, 0);
    c.close();
  } finally {
    await server.close();
  }
});
