// Replay suite (issue 10): a real exchange between our RegistryClients and our registry goes through a
// recording proxy; afterwards every captured signed frame is replayed against the registry. Each replay is
// refused (or, for reads, tells no more than an anonymous request), and the registry state does not change —
// neither inside the freshness window (nonce cache) nor after it (ts check).
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { RegistryClient } from '../../../src/node/registry-client.js';
import { signDetached } from '../../../src/registry/signature.js';
import { stateToJson } from '../../../src/registry/state.js';
import { RegistryFrameDecoder, type RegistryMessage } from '../../../src/wire/registry-frame.js';
import { RawClient, newIdentity, startServer, type TestIdentity } from './helpers.js';

async function recordingProxy(targetPort: number) {
  const frames: RegistryMessage[] = [];
  const srv = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    const d = new RegistryFrameDecoder();
    down.on('data', (chunk) => {
      const r = d.push(chunk);
      if (r.ok) frames.push(...r.value);
      up.write(chunk);
    });
    up.on('data', (chunk) => down.write(chunk));
    const end = () => {
      up.destroy();
      down.destroy();
    };
    down.on('close', end);
    up.on('close', end);
    down.on('error', () => undefined);
    up.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { srv, frames, port: (srv.address() as net.AddressInfo).port };
}

function client(port: number, id: TestIdentity): RegistryClient {
  return new RegistryClient({
    registryAddr: `127.0.0.1:${port}`,
    sign: (m) => signDetached(id.secretKey, m),
    requestTimeoutMs: 2000,
    heartbeatIntervalMs: 0,
    pollWithPushMs: 0,
  });
}

const READS = new Set(['lookup', 'resolve_hostname']);

test('replay suite: every signed frame our client sent is refused on replay; the registry state is unchanged', async () => {
  let offsetMs = 0;
  const { server, port } = await startServer({ nowMs: () => Date.now() + offsetMs, staleNodeMs: 3_600_000 });
  const proxy = await recordingProxy(port);
  const [a, b, c] = [newIdentity(), newIdentity(), newIdentity()];
  const [A, B, C] = [client(proxy.port, a), client(proxy.port, b), client(proxy.port, c)];
  try {
    const ra = await A.register('127.0.0.1:7101', a.publicKey);
    const rb = await B.register('127.0.0.1:7102', b.publicKey);
    const rc = await C.register('127.0.0.1:7103', c.publicKey);
    assert.ok(ra.ok && rb.ok && rc.ok);
    const [ida, idb, idc] = [ra.value.nodeId, rb.value.nodeId, rc.value.nodeId];
    const must = async (p: Promise<{ ok: boolean }>, what: string) => assert.ok((await p).ok, what);
    await must(A.setHostname('replay-a'), 'a hostname');
    await must(B.setHostname('replay-b'), 'b hostname');
    await must(A.setTags(['#web', 'gpu']), 'tags');
    await must(A.setVisibility(true), 'public');
    await must(A.setVisibility(false), 'private');
    await must(A.heartbeat(), 'heartbeat');
    await must(A.requestHandshake(idb, 'hello: b'), 'request');
    await must(B.pollHandshakes(), 'poll');
    await must(B.respondHandshake(ida, true), 'accept');
    await must(A.resolve(idb), 'resolve');
    await must(A.lookup(idb), 'lookup');
    await must(A.resolveHostname('replay-b'), 'resolve_hostname');
    await must(A.punch(idb), 'punch');
    await must(C.requestHandshake(idb, 'me too'), 'request c');
    await must(B.respondHandshake(idc, false), 'reject');
    await must(A.reportTrust(idc), 'report_trust');
    await must(B.revokeTrust(ida), 'revoke');
    await must(C.deregister(), 'deregister');
    await new Promise((r) => setTimeout(r, 100)); // the clients' last polls
    for (const x of [A, B, C]) await x.close();

    const signedFrames = proxy.frames.filter((f) => typeof f.signature === 'string');
    const types = new Set(signedFrames.map((f) => String(f.type)));
    for (const t of ['register', 'set_hostname', 'set_tags', 'set_visibility', 'heartbeat', 'request_handshake', 'poll_handshakes', 'respond_handshake', 'resolve', 'lookup', 'resolve_hostname', 'punch', 'report_trust', 'revoke_trust', 'deregister', 'subscribe_push']) {
      assert.ok(types.has(t), `captured a signed ${t}`);
    }
    for (const f of signedFrames) {
      assert.equal(typeof f.ts, 'number', `${String(f.type)} carries ts: our client never signs bare against our registry`);
      assert.equal(typeof f.nonce, 'string', `${String(f.type)} carries a nonce`);
    }

    const before = JSON.stringify(stateToJson(server.currentState, 0));
    const raw = await RawClient.connect(port);
    const replayAll = async (phase: string) => {
      for (const f of signedFrames) {
        const r = await raw.request(f);
        const what = `${phase}: replayed ${String(f.type)}`;
        if (READS.has(String(f.type))) {
          // A replayed identified read is an anonymous one: it learns nothing more.
          const anon: RegistryMessage = { type: f.type, ...(f.node_id !== undefined ? { node_id: f.node_id } : { hostname: f.hostname }) };
          const plain = await raw.request(anon);
          if (r.type === 'error') assert.equal(r.code, plain.type === 'error' ? plain.code : r.code, what);
          else assert.deepEqual(r, plain, what);
          continue;
        }
        // deregister of an id that is gone answers ok, as the original's (nothing left to change).
        if (f.type === 'deregister' && !server.currentState.nodes.has(f.node_id as number)) continue;
        assert.equal(r.type, 'error', what);
      }
      assert.equal(JSON.stringify(stateToJson(server.currentState, 0)), before, `${phase}: state unchanged`);
    };
    await replayAll('inside the window');
    // After the window the nonce cache forgets; the ts check alone refuses them.
    offsetMs = 200_000;
    await server.sweepNow();
    await replayAll('after the window');
    raw.close();
  } finally {
    for (const x of [A, B, C]) await x.close();
    proxy.srv.close();
    await server.close();
  }
});
