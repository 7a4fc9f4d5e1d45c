// Bound datagram sockets (src/node/streams/datagram-ports.ts): tryRecv drains what is queued without a promise,
// in order, and leaves waiting to recv(); delivered bytes are copies (the receive buffer is reused).
import test from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { ok } from '../../../src/core/result.js';
import { Driver, VirtualTimers } from '../../../src/node/driver.js';
import { DatagramPorts } from '../../../src/node/streams/datagram-ports.js';

function ports(): DatagramPorts {
  const clock = new ManualClock(0);
  return new DatagramPorts({ send: async () => ok(), driver: new Driver(clock, new VirtualTimers(clock)) });
}

test('tryRecv takes the queued datagrams in order, then null; recv still waits for the next one', async () => {
  const p = ports();
  const s = p.open(7000);
  assert.ok(s.ok);
  assert.equal(s.value.tryRecv(), null);
  const rx = new Uint8Array([1, 2, 3]);
  for (let i = 0; i < 3; i++) {
    rx[0] = i;
    p.deliver('0:0000.0000.0002', 2, 9000 + i, 7000, rx);
  }
  rx[0] = 99; // the receive buffer is reused: what was queued is a copy
  const got = [s.value.tryRecv(), s.value.tryRecv(), s.value.tryRecv()];
  assert.deepEqual(got.map((d) => [d?.fromPort, d?.data[0]]), [[9000, 0], [9001, 1], [9002, 2]]);
  assert.equal(s.value.tryRecv(), null);
  const next = s.value.recv();
  p.deliver('0:0000.0000.0002', 2, 9100, 7000, new Uint8Array([7]));
  assert.equal((await next)?.fromPort, 9100);
  s.value.close();
  assert.equal(s.value.tryRecv(), null);
});

test('counters: received, no listener, queue full (drop-oldest, counted on the socket and the node)', () => {
  const p = ports();
  const s = p.open(7001);
  assert.ok(s.ok);
  p.deliver('0:0000.0000.0002', 2, 9000, 7999, new Uint8Array([1])); // nobody on 7999
  for (let i = 0; i < 4096 + 10; i++) p.deliver('0:0000.0000.0002', 2, i, 7001, new Uint8Array([i & 0xff]));
  assert.deepEqual(p.counters, { received: 4106, droppedNoListener: 1, droppedQueueFull: 10 });
  assert.equal(s.value.dropped, 10);
  assert.equal(s.value.tryRecv()?.fromPort, 10, 'the oldest ten went');
  s.value.close();
});
