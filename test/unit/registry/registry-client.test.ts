import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/logger.js';
import { RegistryClient, type RegistryEvent } from '../../../src/node/registry-client.js';
import { RegistryServer } from '../../../src/registry/server.js';
import { FileStore } from '../../../src/registry/store.js';
import { signDetached, verifyChallenge } from '../../../src/registry/signature.js';
import { RegistryFrameDecoder, encodeRegistryFrame, type RegistryMessage } from '../../../src/wire/registry-frame.js';
import { newIdentity, startServer, type TestIdentity } from './helpers.js';

function client(port: number, id: TestIdentity, extra = {}) {
  const events: RegistryEvent[] = [];
  const c = new RegistryClient({
    registryAddr: `127.0.0.1:${port}`,
    sign: (m) => signDetached(id.secretKey, m),
    requestTimeoutMs: 2000,
    reconnectInitialDelayMs: 50,
    reconnectMaxDelayMs: 300,
    ...extra,
  });
  c.on((e) => events.push(e));
  const waitEvent = async (pred: (e: RegistryEvent) => boolean, timeoutMs = 3000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const i = events.findIndex(pred);
      if (i >= 0) return events.splice(i, 1)[0]!;
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error('event timeout');
  };
  return { c, events, waitEvent };
}

test('client: typed requests, push events under 1 s, trust flow', async () => {
  const { server, port } = await startServer();
  const a = newIdentity();
  const b = newIdentity();
  const A = client(port, a);
  const B = client(port, b);
  try {
    assert.ok((await A.c.connect()).ok);
    const ra = await A.c.register('127.0.0.1:5001', a.publicKey);
    assert.ok(ra.ok);
    const { beaconToken, ...rest } = ra.value;
    assert.deepEqual(rest, { nodeId: 1, address: '0:0000.0000.0001', publicKey: a.publicKeyB64 });
    assert.equal(beaconToken?.length, 32, 'a signed registration gets its beacon token');
    assert.deepEqual(A.c.beaconToken, beaconToken);
    assert.equal(A.c.pushActive, true);
    const rb = await B.c.register('127.0.0.1:5002', b.publicKey);
    assert.ok(rb.ok);
    assert.ok((await A.c.setHostname('alice')).ok);
    const taken = await B.c.setHostname('alice');
    assert.equal(!taken.ok && taken.error.code, 'already_exists');
    assert.ok((await B.c.setHostname('bob')).ok);
    assert.ok((await B.c.setTags(['gpu'])).ok);
    const hb = await A.c.heartbeat();
    assert.ok(hb.ok && hb.value.serverTimeSec > 0);
    // Our client's lookups are identified: a registered stranger gets the id and key, not the name or tags.
    const rh = await A.c.resolveHostname('bob');
    assert.ok(rh.ok && rh.value.nodeId === 2 && !rh.value.isPublic);
    const denied = await A.c.resolve(2);
    assert.equal(!denied.ok && denied.error.code, 'connection_failed');
    const anon = await A.c.lookup(2);
    assert.ok(anon.ok && anon.value.hostname === undefined && anon.value.publicKey === b.publicKeyB64);
    assert.equal(anon.value.suite, 'noise', 'our registry says a node of ours speaks Noise (no v0.5 downgrade)');

    const t0 = performance.now();
    assert.ok((await A.c.requestHandshake(2, 'let me in')).ok);
    const ev = await B.waitEvent((e) => e.kind === 'handshake_request');
    const pushMs = performance.now() - t0;
    assert.ok(ev.kind === 'handshake_request' && ev.via === 'push' && ev.request.fromNodeId === 1 && ev.request.fromHostname === 'alice');
    assert.ok(pushMs < 1000);
    console.log(`client push latency (request → event): ${pushMs.toFixed(2)} ms`);
    // The poll finds the queued copy, but it is not delivered twice.
    const polled = await B.c.pollHandshakes();
    assert.ok(polled.ok && polled.value.requests.length === 1);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(B.events.filter((e) => e.kind === 'handshake_request').length, 0);

    assert.ok((await B.c.respondHandshake(1, true)).ok);
    const resp = await A.waitEvent((e) => e.kind === 'handshake_response');
    assert.ok(resp.kind === 'handshake_response' && resp.response.accept && resp.response.fromNodeId === 2);
    const res = await A.c.resolve(2);
    assert.ok(res.ok);
    assert.equal(res.value.realAddr, '127.0.0.1:5002');
    const full = await A.c.lookup(2);
    assert.ok(full.ok && full.value.hostname === 'bob' && full.value.tags?.[0] === 'gpu');

    const punch = await A.c.punch(2);
    assert.ok(punch.ok && punch.value.nodeBAddr === '127.0.0.1:5002');
    assert.ok((await B.c.revokeTrust(1)).ok);
    await A.waitEvent((e) => e.kind === 'trust_revoked');
    assert.equal((await A.c.resolve(2)).ok, false);
    assert.ok((await A.c.deregister()).ok);
    assert.equal(A.c.nodeId, null);
  } finally {
    await A.c.close();
    await B.c.close();
    await server.close();
  }
});

test('client: two answers from one peer in the same second are both delivered (push); the poll\'s copies are not delivered again', async () => {
  // The registry's timestamps are seconds: approve, untrust, ask again, approve again can fall in one second.
  // The push/poll dedup keyed on (peer, accept, second) dropped the second approval (the requester then waited
  // forever as "outgoing"; webhooks.test.ts failed when both approvals fell in one second).
  const frozenMs = 1_800_000_000_500;
  const { server, port } = await startServer({ nowMs: () => frozenMs });
  const a = newIdentity();
  const b = newIdentity();
  const A = client(port, a, { nowMs: () => frozenMs });
  const B = client(port, b, { nowMs: () => frozenMs });
  try {
    assert.ok((await A.c.register('127.0.0.1:5101', a.publicKey)).ok);
    assert.ok((await B.c.register('127.0.0.1:5102', b.publicKey)).ok);
    for (const round of [1, 2]) {
      assert.ok((await A.c.requestHandshake(2, `round ${round}`)).ok, `request ${round}`);
      await B.waitEvent((e) => e.kind === 'handshake_request');
      assert.ok((await B.c.respondHandshake(1, true)).ok);
      const resp = await A.waitEvent((e) => e.kind === 'handshake_response');
      assert.ok(resp.kind === 'handshake_response' && resp.via === 'push' && resp.response.accept, `accept ${round} delivered`);
      if (round === 1) {
        assert.ok((await B.c.revokeTrust(1)).ok);
        await A.waitEvent((e) => e.kind === 'trust_revoked');
      }
    }
    // Both accepts sit in the registry's queue too: the poll returns them, and neither is delivered again.
    const polled = await A.c.pollHandshakes();
    assert.ok(polled.ok && polled.value.responses.length === 2, JSON.stringify(polled));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(A.events.filter((e) => e.kind === 'handshake_response').length, 0);
  } finally {
    await A.c.close();
    await B.c.close();
    await server.close();
  }
});

test('client: survives a registry restart (same store): same id, hostname and push restored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-rc-'));
  const path = join(dir, 'reg.json');
  const start = async (port: number) => {
    const r = await RegistryServer.start({ host: '127.0.0.1', port, store: new FileStore(path), logger: silentLogger() });
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    return r.value;
  };
  let server = await start(0);
  const port = server.address().port;
  const a = newIdentity();
  const b = newIdentity();
  const A = client(port, a);
  const B = client(port, b);
  try {
    assert.ok((await A.c.register('127.0.0.1:6001', a.publicKey)).ok);
    assert.ok((await B.c.register('127.0.0.1:6002', b.publicKey)).ok);
    assert.ok((await A.c.setHostname('persist-a')).ok);
    A.events.length = 0; // only events from the restart on count below
    B.events.length = 0;
    await server.close();
    await A.waitEvent((e) => e.kind === 'disconnected');
    // While down, requests fail as values.
    const down = await A.c.resolveHostname('persist-a');
    assert.equal(down.ok, false);
    server = await start(port);
    const reg = await A.waitEvent((e) => e.kind === 'registered', 5000);
    assert.ok(reg.kind === 'registered' && reg.result.nodeId === 1);
    await A.waitEvent((e) => e.kind === 'connected', 5000);
    await B.waitEvent((e) => e.kind === 'connected', 5000);
    const rh = await B.c.resolveHostname('persist-a');
    assert.ok(rh.ok && rh.value.nodeId === 1);
    assert.ok((await B.c.requestHandshake(1, 'after restart')).ok);
    const ev = await A.waitEvent((e) => e.kind === 'handshake_request');
    assert.ok(ev.kind === 'handshake_request' && ev.via === 'push');
  } finally {
    await A.c.close();
    await B.c.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A fake original registry: answers like the Go server (errors without `code`), records requests. */
async function fakeOriginal(onMsg: (m: RegistryMessage) => RegistryMessage | null) {
  const seen: RegistryMessage[] = [];
  const srv = net.createServer((sock) => {
    const d = new RegistryFrameDecoder();
    sock.on('data', (chunk) => {
      const r = d.push(chunk);
      if (!r.ok) return sock.destroy();
      for (const m of r.value) {
        seen.push(m);
        const reply = onMsg(m);
        if (reply) {
          const f = encodeRegistryFrame(reply);
          if (f.ok) sock.write(f.value);
        }
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { srv, seen, port: (srv.address() as net.AddressInfo).port };
}

test('client: an original registry (register_ok without extensions) gets bare signatures and polling', async () => {
  const a = newIdentity();
  const fake = await fakeOriginal((m) => {
    switch (m.type) {
      case 'register':
        return { type: 'register_ok', node_id: 7, network_id: 0, address: '0:0000.0000.0007', public_key: m.public_key };
      case 'set_hostname':
        return { type: 'set_hostname_ok', node_id: 7, hostname: m.hostname };
      case 'poll_handshakes':
        return { type: 'poll_handshakes_ok', requests: [{ from_node_id: 9, justification: 'j', timestamp: 5 }], responses: [] };
      default:
        return { type: 'error', error: 'request failed' };
    }
  });
  const A = client(fake.port, a, { pollFallbackMs: 100 });
  try {
    const r = await A.c.register('127.0.0.1:7001', a.publicKey);
    assert.ok(r.ok);
    const mode = await A.waitEvent((e) => e.kind === 'push_mode');
    assert.ok(mode.kind === 'push_mode' && !mode.isPushing && mode.isOriginalRegistry);
    assert.ok((await A.c.setHostname('orig')).ok);
    const sh = fake.seen.find((m) => m.type === 'set_hostname')!;
    assert.equal(sh.ts, undefined);
    assert.ok(verifyChallenge(a.publicKey, 'set_hostname:7', sh.signature as string));
    const ev = await A.waitEvent((e) => e.kind === 'handshake_request');
    assert.ok(ev.kind === 'handshake_request' && ev.via === 'poll' && ev.request.fromNodeId === 9);
    const before = fake.seen.filter((m) => m.type === 'poll_handshakes').length;
    await new Promise((res) => setTimeout(res, 350));
    assert.ok(fake.seen.filter((m) => m.type === 'poll_handshakes').length >= before + 2, 'polls every pollFallbackMs');
    // Error without code maps by request type.
    const res = await A.c.resolve(3);
    assert.equal(!res.ok && res.error.code, 'connection_failed');
  } finally {
    await A.c.close();
    fake.srv.close();
  }
});

test('client (downgrade attack): after register_ok announced our extensions, a subscribe_push error without code does not make it sign bare', async () => {
  const a = newIdentity();
  const fake = await fakeOriginal((m) => {
    switch (m.type) {
      case 'register':
        return {
          type: 'register_ok', node_id: 7, network_id: 0, address: '0:0000.0000.0007', public_key: m.public_key,
          extensions: ['fresh-signatures-v1', 'push-v1', 'beacon-token-v1'],
        };
      case 'set_hostname':
        return { type: 'set_hostname_ok', node_id: 7, hostname: m.hostname };
      case 'poll_handshakes':
        return { type: 'poll_handshakes_ok', requests: [], responses: [] };
      default:
        return { type: 'error', error: 'request failed' }; // what a man in the middle (or a bug) answers
    }
  });
  const A = client(fake.port, a, { pollFallbackMs: 100 });
  try {
    assert.ok((await A.c.register('127.0.0.1:7001', a.publicKey)).ok);
    const mode = await A.waitEvent((e) => e.kind === 'push_mode');
    assert.ok(mode.kind === 'push_mode' && !mode.isPushing && !mode.isOriginalRegistry);
    assert.ok((await A.c.setHostname('still-fresh')).ok);
    const sh = fake.seen.find((m) => m.type === 'set_hostname')!;
    assert.equal(typeof sh.ts, 'number', 'still ts/nonce');
    assert.ok(verifyChallenge(a.publicKey, `set_hostname:7:still-fresh:${sh.ts}:${sh.nonce}`, sh.signature as string));
    const reg = fake.seen.find((m) => m.type === 'register')!;
    assert.ok(verifyChallenge(a.publicKey, `register:${a.publicKeyB64}::127.0.0.1:7001:${reg.ts}:${reg.nonce}`, reg.signature as string), 'register is signed');
    const polls = fake.seen.filter((m) => m.type === 'poll_handshakes');
    assert.ok(polls.length > 0 && polls.every((p) => typeof p.nonce === 'string'));
  } finally {
    await A.c.close();
    fake.srv.close();
  }
});

test('client: a skewed clock costs one retry of the signed register (server_time), then everything is fresh', async () => {
  const { server, port } = await startServer();
  const a = newIdentity();
  const A = client(port, a, { nowMs: () => Date.now() - 600_000 });
  try {
    const r = await A.c.register('127.0.0.1:5001', a.publicKey);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(server.currentState.nodes.get(r.value.nodeId)?.isLegacy, false);
    assert.ok((await A.c.setHostname('skewed')).ok);
    assert.equal(A.c.pushActive, true);
  } finally {
    await A.c.close();
    await server.close();
  }
});

test('client: a registry that never answers yields timeout, then the client reconnects', async () => {
  let connections = 0;
  const fake = await fakeOriginal(() => null);
  fake.srv.on('connection', () => connections++);
  const a = newIdentity();
  const A = client(fake.port, a, { requestTimeoutMs: 200 });
  try {
    const t0 = Date.now();
    const r = await A.c.resolveHostname('x');
    assert.equal(!r.ok && r.error.code, 'timeout');
    assert.ok(Date.now() - t0 < 1000);
    await new Promise((res) => setTimeout(res, 300));
    assert.ok(connections >= 2, 'new connection after a timeout');
  } finally {
    await A.c.close();
    fake.srv.close();
  }
});
