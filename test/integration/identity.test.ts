// Who a peer is, at the tunnel layer (issue 10): keys, not the registry, decide. Real rendezvous and daemons
// on loopback; the attacker's Noise initiations come from this test process (src/crypto), sent straight to
// the victim daemon's tunnel socket, so the refusal is seen where it happens — at the receiving daemon.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, explain, sleep } from './harness.js';
import { createInitiator, fromBase64, generateIdentity, toBase64, type Identity } from '../../src/crypto/index.js';
import { loadIdentity } from '../../src/node/identity-store.js';
import { decodeNoiseResponse, noiseFrameKind } from '../../src/wire/noise-frame.js';

let c: Cluster;
let sock: Socket;
const received: Buffer[] = [];
let nextIndex = 1;
let nextTs = Date.now() / 1000;

before(async () => {
  c = await Cluster.start('ident', ['alice', 'bob', 'mallory', 'vic']);
  await c.trust('bob', 'alice', 'identity tests');
  await c.trust('bob', 'vic', 'identity tests');
  sock = createSocket('udp4');
  sock.on('message', (m) => received.push(m));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
});

after(async () => {
  sock?.close();
  await c?.close();
});

async function inboxOf(name: string): Promise<string[]> {
  const r = await c.ok(name, ['inbox']);
  return (r.messages as { data: string }[]).map((m) => m.data);
}

async function tunnelEndpointOf(name: string): Promise<{ ip: string; port: number; key: Uint8Array }> {
  const i = await c.ok(name, ['info']);
  const at = String(i.listen).lastIndexOf(':');
  return { ip: String(i.listen).slice(0, at), port: Number(String(i.listen).slice(at + 1)), key: fromBase64(i.public_key)! };
}

/** Send one Noise initiation as `as`/`claimedNodeId` to `target`; true if a PNR1 response came back within 1 s. */
async function initiationAnswered(target: string, as: Identity, claimedNodeId: number): Promise<boolean> {
  const ep = await tunnelEndpointOf(target);
  const localIndex = nextIndex++;
  nextTs += 1;
  const init = createInitiator({ local: as, localNodeId: claimedNodeId, localIndex, remoteStatic: ep.key, timestampS: nextTs, now: 0 });
  assert.ok(init.ok);
  received.length = 0;
  sock.send(init.value.message, ep.port, ep.ip);
  const deadline = Date.now() + 1000;
  while (Date.now() < deadline) {
    for (const m of received) {
      if (noiseFrameKind(m) !== 'response') continue;
      const f = decodeNoiseResponse(m);
      if (f.ok && f.value.receiverIndex === localIndex && init.value.state.handleResponse(m, 1).ok) return true;
    }
    await sleep(20);
  }
  return false;
}

function identityOf(name: string): Identity {
  const r = loadIdentity(join(c.homeOf(name), 'identity.json'));
  assert.ok(r.ok);
  return r.value;
}

// Attack: "take over a node's name and receive its messages" (issue 10, critical). The registry is made to map
// the trusted peer's hostname to another node (here: alice renames, mallory claims "alice" and goes public — the
// same registry state the register-without-proof takeover produced). Old code: `send-message alice` resolved the
// name at the registry, dialed mallory (public, so she accepted), and delivered with ack:true.
test('hostname takeover: a trusted peer\'s hostname the registry now maps to another node is identity_changed, nothing delivered', async () => {
  assert.equal((await c.ok('bob', ['send-message', 'alice', '--data', 'before'])).ack, true);
  assert.deepEqual(await inboxOf('alice'), ['before']);
  await c.ok('alice', ['set-hostname', 'alice-moved']);
  await c.ok('mallory', ['set-hostname', 'alice']);
  await c.ok('mallory', ['set-public']);
  const m = await c.json('bob', ['send-message', 'alice', '--data', 'secret for alice']);
  assert.equal(m.code, 1, explain(m));
  assert.equal(m.error?.code, 'identity_changed', explain(m));
  assert.match(m.error?.hint ?? '', /untrust/);
  assert.match(m.error?.message ?? '', new RegExp(`node ${c.node('alice').nodeId}`));
  assert.deepEqual(await inboxOf('mallory'), [], 'the attacker received nothing');
  // No silent fallback on a retry either.
  assert.equal((await c.json('bob', ['send-message', 'alice', '--data', 'again'])).error?.code, 'identity_changed');
  assert.deepEqual(await inboxOf('mallory'), []);
  assert.deepEqual(await inboxOf('alice'), ['before']);
});

test('a trusted peer\'s hostname resolves from its pin when the registry no longer knows it; by id it always does', async () => {
  assert.equal((await c.ok('bob', ['send-message', String(c.node('alice').nodeId), '--data', 'by id'])).ack, true);
  await c.ok('mallory', ['set-hostname', 'mallory']); // "alice" is now unknown to the registry
  assert.equal((await c.ok('bob', ['send-message', 'alice', '--data', 'pinned'])).ack, true);
  assert.deepEqual(await inboxOf('alice'), ['before', 'by id', 'pinned']);
  assert.deepEqual(await inboxOf('mallory'), []);
});

// Test gap of issue 10: every trust test passed with the receiver's authorizeTunnel forced to ok(). These
// initiations are built by this process and sent straight to vic's tunnel socket: only vic's own check stands
// between them and a session.
test('receiver side: vic (private) answers an initiation from the trusted key only', async () => {
  const bob = c.node('bob');
  // Untrusted stranger, with a node id nobody has.
  assert.equal(await initiationAnswered('vic', generateIdentity(), 0x7ff0_0001), false, 'stranger refused');
  // A registered node vic does not trust (its real key and id).
  assert.equal(await initiationAnswered('vic', identityOf('mallory'), c.node('mallory').nodeId), false, 'untrusted registered node refused');
  // A trusted node id with a key that is not the pinned one.
  assert.equal(await initiationAnswered('vic', generateIdentity(), bob.nodeId), false, "bob's node id with another key refused");
  // Control: bob's real key and id are answered, so the refusals above are vic's decision, not a broken probe.
  assert.equal(await initiationAnswered('vic', identityOf('bob'), bob.nodeId), true, 'trusted key answered');
  // (That session moved vic's idea of bob's endpoint to this socket; bob's next packets move it back.)
  const e = await c.ok('bob', ['connect', 'vic', '7', '--message', 'still fine']);
  assert.equal(e.response, 'still fine');
});

// `--public` / set-public is more than "visible": every registered node may open a tunnel (issue 10, low).
test('receiver side: a public node accepts any registered node with its registry key, and still refuses a forged key', async () => {
  await c.ok('mallory', ['set-public']);
  assert.equal(await initiationAnswered('mallory', identityOf('alice'), c.node('alice').nodeId), true, 'registered node, registry key');
  assert.equal(await initiationAnswered('mallory', generateIdentity(), c.node('alice').nodeId), false, 'key the registry does not bind to that id');
  assert.equal(await initiationAnswered('mallory', generateIdentity(), 0x7ff0_0002), false, 'unregistered id');
});

// The other half of "a trusted peer the registry now maps to another key": same node id, another key. From bob's
// side that is exactly a pin that differs from the registry's key, so the pin is edited while bob is stopped.
// Old code dialed the pinned key and waited for a handshake that cannot complete (connection_failed after the
// timeout); now bob says identity_changed at once and sends nothing.
test('a trusted node id whose registry key differs from the pin is identity_changed, without waiting for a handshake', async () => {
  const bob = c.node('bob');
  await c.stopDaemon('bob');
  const path = join(bob.home, 'trust.json');
  const t = JSON.parse(readFileSync(path, 'utf8'));
  const entry = t.trusted.find((x: { node_id: number }) => x.node_id === c.node('vic').nodeId);
  assert.ok(entry);
  entry.public_key = toBase64(generateIdentity().publicKey);
  writeFileSync(path, JSON.stringify(t));
  await c.startDaemon('bob', bob.flags);
  const before = (await c.ok('vic', ['inbox'])).messages.length;
  const t0 = Date.now();
  const m = await c.json('bob', ['send-message', String(c.node('vic').nodeId), '--data', 'to a changed key']);
  assert.equal(m.code, 1, explain(m));
  assert.equal(m.error?.code, 'identity_changed', explain(m));
  assert.ok(Date.now() - t0 < 4000, 'no handshake timeout');
  assert.equal((await c.ok('vic', ['inbox'])).messages.length, before);
  // And vic's own initiations are refused by bob: its key is not the pin.
  const k = await c.json('vic', ['connect', 'bob', '7', '--message', 'x', '--timeout', '3s']);
  assert.equal(k.code, 1, explain(k));
});
