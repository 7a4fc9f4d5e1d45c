// --registry a,b (issue 16): parsed once into the first registry + alternates; the registry client tries the
// next address when one is refused or its connection drops, and registers there.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDaemonAddresses, parseDaemonArgs } from '../../../src/node/daemon-options.js';
import { RegistryClient } from '../../../src/node/registry-client.js';
import { signDetached } from '../../../src/registry/signature.js';
import { newIdentity, startServer } from '../registry/helpers.js';

test('daemon options: --registry a:9000,b:9001 → registry a + alternates [b]; a bad entry is refused', () => {
  const home = mkdtempSync(join(tmpdir(), 'pi-regs-'));
  try {
    const a = parseDaemonArgs(['--home', home, '--registry', 'a.example:9000,b.example:9001,:9002'], {});
    assert.ok(a.ok);
    const addrs = parseDaemonAddresses(a.value);
    assert.ok(addrs.ok);
    assert.deepEqual(addrs.value.registry, { host: 'a.example', port: 9000 });
    assert.deepEqual(addrs.value.registryAlternates, [{ host: 'b.example', port: 9001 }, { host: '127.0.0.1', port: 9002 }]);
    assert.deepEqual(addrs.value.compat, { host: 'a.example', port: 443 }, 'the compat port follows the first registry');
    const single = parseDaemonArgs(['--home', home, '--registry', 'a.example:9000'], {});
    assert.ok(single.ok);
    const one = parseDaemonAddresses(single.value);
    assert.ok(one.ok);
    assert.deepEqual(one.value.registryAlternates, []);
    const bad = parseDaemonArgs(['--home', home, '--registry', 'a.example:9000,nope'], {});
    const badAddrs = bad.ok ? parseDaemonAddresses(bad.value) : bad;
    assert.equal(!badAddrs.ok && badAddrs.error.code, 'invalid_argument');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('registry client: a refused first address → the next one; its server gone → back to the first', async () => {
  // A port with nothing listening: bind, note, close.
  const dead = await new Promise<number>((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
  const second = await startServer();
  const id = newIdentity();
  const c = new RegistryClient({
    registryAddr: { host: '127.0.0.1', port: dead },
    registryAlternates: [{ host: '127.0.0.1', port: second.port }],
    sign: (m) => signDetached(id.secretKey, m),
    requestTimeoutMs: 3000,
    reconnectInitialDelayMs: 50,
    reconnectMaxDelayMs: 200,
  });
  let first: Awaited<ReturnType<typeof startServer>> | null = null;
  try {
    const r = await c.register('127.0.0.1:5001', id.publicKey);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(c.currentRegistry, `127.0.0.1:${second.port}`);
    // Now the first address comes up and the second goes away: the client moves back and registers there.
    first = await startServer({ port: dead });
    await second.server.close();
    const deadline = Date.now() + 15_000;
    while (!(c.isConnected && c.currentRegistry === `127.0.0.1:${dead}`)) {
      if (Date.now() > deadline) throw new Error(`still on ${c.currentRegistry}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal(first.server.currentState.nodes.size, 1, 'registered on the first registry after the move');
  } finally {
    await c.close();
    await first?.server.close();
  }
});
