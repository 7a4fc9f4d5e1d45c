// The rendezvous without sockets (what test/sim's simulated rendezvous plugs together): RegistryServer.open +
// attach(stream) serves a RegistryClient whose `connect` returns the other end of an in-memory stream, and
// BeaconServer.over answers over a fake datagram socket. Also: one register on the first connect, not two.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../../src/core/logger.js';
import { monotonicClock, realTimers } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { Driver } from '../../../src/node/driver.js';
import { RegistryClient } from '../../../src/node/registry-client.js';
import { RegistryServer } from '../../../src/registry/server.js';
import { BeaconServer, type BeaconSocket, type Remote } from '../../../src/registry/beacon.js';
import { MemoryStore } from '../../../src/registry/store.js';
import { signDetached } from '../../../src/registry/signature.js';
import { RegistryFrameDecoder, type RegistryMessage } from '../../../src/wire/registry-frame.js';
import { decodeBeaconMessage, encodeBeaconMessage } from '../../../src/wire/beacon-message.js';
import { newIdentity } from './helpers.js';

/** Two connected in-memory stream ends; `tap` sees every chunk the first end writes. */
function streamPair(tap: (chunk: Uint8Array) => void): [Duplex, Duplex] {
  let a: Duplex | null = null;
  let b: Duplex | null = null;
  const end = (peer: () => Duplex, onWrite?: (c: Uint8Array) => void) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        onWrite?.(chunk);
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
      destroy(e, cb) {
        peer().destroy();
        cb(e);
      },
    });
  a = end(() => b!, tap);
  b = end(() => a!);
  return [a, b];
}

test('in-memory rendezvous: attach() serves a RegistryClient over an injected stream; the first connect registers once', async () => {
  const opened = await RegistryServer.open({ store: new MemoryStore(), logger: silentLogger() });
  assert.ok(opened.ok);
  const server = opened.value;
  assert.equal(server.address().port, 0, 'no TCP listener');
  const sent: RegistryMessage[] = [];
  const tapDecoder = new RegistryFrameDecoder();
  const dialed: Array<{ host: string; port: number }> = [];
  const id = newIdentity();
  const driver = new Driver(monotonicClock, realTimers);
  const client = new RegistryClient({
    registryAddr: { host: 'rendezvous.sim', port: 9000 },
    sign: (m) => signDetached(id.secretKey, m),
    driver,
    rng: new Rng(7),
    requestTimeoutMs: 2000,
    connect: (host, port) => {
      dialed.push({ host, port });
      const [nodeEnd, serverEnd] = streamPair((chunk) => {
        const r = tapDecoder.push(chunk);
        if (r.ok) sent.push(...r.value);
      });
      server.attach(serverEnd, { ip: '10.0.0.5', port: 40000 });
      process.nextTick(() => nodeEnd.emit('connect'));
      return nodeEnd;
    },
  });
  try {
    // register() before any connect(): the connection comes up for it, and the restore of the first connect
    // must leave the registering to it.
    const r = await client.register('10.0.0.5:4000', id.publicKey);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.value.nodeId, 1);
    assert.deepEqual(dialed, [{ host: 'rendezvous.sim', port: 9000 }]);
    assert.equal(sent.filter((m) => m.type === 'register').length, 1, 'exactly one register on the first connect');
    assert.equal(client.pushActive, true, 'subscribe_push went through the in-memory stream too');
    const me = await client.resolve(1);
    assert.ok(me.ok);
    assert.equal(me.value.realAddr, '10.0.0.5:4000', 'the attached remote ip is the registered ip');
    assert.deepEqual(me.value.realEndpoint, { ip: '10.0.0.5', port: 4000 }, 'the reply is parsed at the edge');
  } finally {
    await client.close();
    driver.close();
    await server.close();
  }
});

test('in-memory rendezvous: BeaconServer.over answers a discover on an injected datagram socket', async () => {
  const sentOut: Array<{ data: Uint8Array; ip: string; port: number }> = [];
  const heard: Array<(data: Uint8Array, from: Remote) => void> = [];
  const fake: BeaconSocket = {
    send: (data, ip, port) => void sentOut.push({ data: new Uint8Array(data), ip, port }),
    onReceive: (fn) => void heard.push(fn),
    address: (): AddressInfo => ({ address: '198.51.100.1', family: 'IPv4', port: 9001 }),
    close: async () => undefined,
  };
  const beacon = BeaconServer.over({ primary: fake }, { logger: silentLogger() });
  try {
    const discover = encodeBeaconMessage({ kind: 'discover', nodeId: 42 });
    assert.ok(discover.ok);
    assert.equal(heard.length, 1, 'the beacon listens on the injected socket');
    heard[0]!(discover.value, { address: '203.0.113.9', port: 5555 });
    assert.equal(sentOut.length, 1);
    assert.equal(sentOut[0]!.ip, '203.0.113.9');
    assert.equal(sentOut[0]!.port, 5555);
    const reply = decodeBeaconMessage(sentOut[0]!.data);
    assert.ok(reply.ok);
    assert.deepEqual(reply.value, { kind: 'discover_reply', ip: '203.0.113.9', port: 5555 });
    assert.equal(beacon.observedEndpoint(42), '203.0.113.9:5555');
    assert.equal(beacon.address().port, 9001);
  } finally {
    await beacon.close();
  }
});

test('RegistryClient in simulated time: reconnects on the injected driver, jitter from the seeded Rng (replays)', async () => {
  const { ManualClock } = await import('../../../src/core/clock.js');
  const { VirtualTimers } = await import('../../../src/node/driver.js');
  const run = async (seed: number): Promise<number[]> => {
    const clock = new ManualClock();
    const vt = new VirtualTimers(clock);
    const driver = new Driver(clock, vt);
    const dialsAtUs: number[] = [];
    const id = newIdentity();
    const client = new RegistryClient({
      registryAddr: '10.0.0.1:9000',
      sign: (m) => signDetached(id.secretKey, m),
      driver,
      rng: new Rng(seed),
      reconnectInitialDelayMs: 200,
      connect: () => {
        dialsAtUs.push(clock.nowUs());
        const [nodeEnd] = streamPair(() => undefined);
        process.nextTick(() => nodeEnd.destroy()); // the rendezvous is down: every dial closes at once
        return nodeEnd;
      },
    });
    void client.connect();
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setImmediate(r)); // let the stream's close event run
      vt.step(Number.POSITIVE_INFINITY);
    }
    await client.close();
    driver.close();
    return dialsAtUs;
  };
  const a = await run(11);
  assert.equal(a.length, 4, 'one dial, then a reconnect per virtual step');
  assert.equal(a[0], 0);
  const first = a[1]! - a[0]!;
  assert.ok(first >= 100_000 && first <= 200_000, `first backoff ${first} µs is 200 ms with jitter in [0.5, 1]`);
  const second = a[2]! - a[1]!;
  const third = a[3]! - a[2]!;
  assert.ok(second >= 200_000 && second <= 400_000, `second backoff ${second} µs: 400 ms with jitter`);
  assert.ok(third >= 400_000 && third <= 800_000, `third backoff ${third} µs: 800 ms with jitter`);
  assert.deepEqual(await run(11), a, 'the same seed replays the same reconnect times');
});
