// The registry client's async connect (how the compat transport's TLS dial plugs in, src/node/registry-client.ts):
// a failed dial is a connect failure (kept as lastConnectError, retried with backoff), a dial that never ends is
// abandoned at the connect timeout, and an open stream registers as a plain one does.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { silentLogger } from '../../../src/core/logger.js';
import { monotonicClock, realTimers } from '../../../src/core/clock.js';
import { Rng } from '../../../src/core/rng.js';
import { err, ok, type Result } from '../../../src/core/result.js';
import { Driver } from '../../../src/node/driver.js';
import { RegistryClient } from '../../../src/node/registry-client.js';
import { RegistryServer } from '../../../src/registry/server.js';
import { MemoryStore } from '../../../src/registry/store.js';
import { signDetached } from '../../../src/registry/signature.js';
import { newIdentity } from '../registry/helpers.js';

function streamPair(): [Duplex, Duplex] {
  let a: Duplex | null = null;
  let b: Duplex | null = null;
  const end = (peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
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
  a = end(() => b!);
  b = end(() => a!);
  return [a, b];
}

test('async connect: failures are kept and retried, a hung dial is abandoned, then an open stream registers', async () => {
  const opened = await RegistryServer.open({ store: new MemoryStore(), logger: silentLogger() });
  assert.ok(opened.ok);
  const server = opened.value;
  const id = newIdentity();
  const driver = new Driver(monotonicClock, realTimers);
  let attempts = 0;
  const client = new RegistryClient({
    registryAddr: { host: 'rendezvous.test', port: 9000 },
    sign: (m) => signDetached(id.secretKey, m),
    driver,
    rng: new Rng(3),
    requestTimeoutMs: 5000,
    connectTimeoutMs: 300,
    reconnectInitialDelayMs: 20,
    reconnectMaxDelayMs: 50,
    connect: (): Promise<Result<Duplex>> => {
      attempts++;
      if (attempts <= 2) return Promise.resolve(err('proxy_failed', `proxy refused CONNECT (attempt ${attempts})`));
      if (attempts === 3) return new Promise(() => undefined); // hangs: abandoned at connectTimeoutMs
      const [nodeEnd, serverEnd] = streamPair();
      server.attach(serverEnd, { ip: '10.0.0.5', port: 40000 });
      return Promise.resolve(ok(nodeEnd));
    },
  });
  try {
    const seen: string[] = [];
    const t = setInterval(() => {
      if (client.lastConnectError) seen.push(client.lastConnectError.code);
    }, 5);
    const r = await client.register('10.0.0.5:4000', id.publicKey);
    clearInterval(t);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.value.nodeId, 1);
    assert.equal(attempts, 4);
    assert.ok(seen.includes('proxy_failed'), 'the dial error was kept while failing');
    assert.equal(client.lastConnectError, null, 'cleared once connected');
    assert.equal(client.isConnected, true);
  } finally {
    await client.close();
    driver.close();
    await server.close();
  }
});
