import test from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/logger.js';
import { BeaconServer } from '../../../src/registry/beacon.js';
import { BeaconPeer } from './beacon-peer.js';

async function startBeacon(extra = {}) {
  const r = await BeaconServer.start({ host: '127.0.0.1', port: 0, host2: '127.0.0.1', port2: 0, logger: silentLogger(), ...extra });
  assert.ok(r.ok);
  return r.value;
}

test('beacon: discover answers the observed endpoint on both ports; punch tells both sides', async () => {
  const b = await startBeacon();
  const p1 = await BeaconPeer.open();
  const p2 = await BeaconPeer.open();
  try {
    const port = b.address().port;
    p1.send({ kind: 'discover', nodeId: 1 }, port);
    assert.deepEqual(await p1.next('discover_reply'), { kind: 'discover_reply', ip: '127.0.0.1', port: p1.port });
    p1.send({ kind: 'discover', nodeId: 1 }, b.address2()!.port);
    assert.deepEqual(await p1.next('discover_reply'), { kind: 'discover_reply', ip: '127.0.0.1', port: p1.port });
    p2.send({ kind: 'discover', nodeId: 2 }, port);
    await p2.next('discover_reply');
    assert.equal(b.observedEndpoint(2), `127.0.0.1:${p2.port}`);
    p2.send({ kind: 'punch_request', fromNodeId: 2, toNodeId: 1 }, port);
    assert.deepEqual(await p2.next('punch_command'), { kind: 'punch_command', ip: '127.0.0.1', port: p1.port });
    assert.deepEqual(await p1.next('punch_command'), { kind: 'punch_command', ip: '127.0.0.1', port: p2.port });
    // Unknown target: nothing happens, no crash.
    p2.send({ kind: 'punch_request', fromNodeId: 2, toNodeId: 99 }, port);
    // Garbage is counted, not fatal.
    p2.sock.send(Buffer.from([0x09, 1, 2]), port, '127.0.0.1');
    p2.sock.send(Buffer.alloc(0), port, '127.0.0.1');
    p2.send({ kind: 'discover', nodeId: 2 }, port);
    await p2.next('discover_reply');
    assert.ok(b.stats.malformed >= 1);
  } finally {
    p1.close();
    p2.close();
    await b.close();
  }
});

test('beacon: relay forwards opaque frames; spoofed senders and unknown targets are dropped; rate limited', async () => {
  const b = await startBeacon({ relayBytesPerSec: 10_000 });
  const p1 = await BeaconPeer.open();
  const p2 = await BeaconPeer.open();
  const evil = await BeaconPeer.open();
  try {
    const port = b.address().port;
    for (const [p, id] of [[p1, 1], [p2, 2], [evil, 3]] as const) {
      p.send({ kind: 'discover', nodeId: id }, port);
      await p.next('discover_reply');
    }
    const frame = Uint8Array.from(Buffer.from('PILS-opaque-bytes'));
    p1.send({ kind: 'relay', senderNodeId: 1, destNodeId: 2, payload: frame }, port);
    const got = await p2.next('relay_deliver');
    assert.deepEqual(got, { kind: 'relay_deliver', senderNodeId: 1, payload: frame });
    // evil claims to be node 1: dropped.
    evil.send({ kind: 'relay', senderNodeId: 1, destNodeId: 2, payload: frame }, port);
    p1.send({ kind: 'relay', senderNodeId: 1, destNodeId: 77, payload: frame }, port);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(p2.inbox.length, 0);
    assert.ok(b.stats.relayDropped >= 2);
    // 10 kB/s budget (burst 10 kB): a 30 kB burst is cut.
    const big = new Uint8Array(1000);
    for (let i = 0; i < 30; i++) p1.send({ kind: 'relay', senderNodeId: 1, destNodeId: 2, payload: big }, port);
    await new Promise((r) => setTimeout(r, 200));
    const delivered = p2.inbox.filter((m) => m.kind === 'relay_deliver').length;
    assert.ok(delivered >= 8 && delivered <= 12, `delivered ${delivered}`);
    assert.ok(b.stats.rateLimited > 0);
  } finally {
    p1.close();
    p2.close();
    evil.close();
    await b.close();
  }
});
