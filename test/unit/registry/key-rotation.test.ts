// The registry's side of rotate-key (issue 14): recovery key at register, both rotate_key forms, the old key
// retired, the statement chain in lookups, the push to trust neighbours, and what it refuses.
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { bound, challenge } from '../../../src/wire/registry-frame.js';
import { signRotation } from '../../../src/crypto/key-rotation.js';
import { identityFromSeed, type Identity } from '../../../src/crypto/identity.js';
import { RawClient, fresh, identityFromKeys, registerOurs, startServer, type TestIdentity } from './helpers.js';
import type { RegistryMessage } from '../../../src/wire/registry-frame.js';

function pair(): { id: Identity; t: TestIdentity } {
  const id = identityFromSeed(new Uint8Array(randomBytes(32)));
  return { id, t: identityFromKeys(id.publicKey, id.secretKey) };
}
const nowSec = () => Math.floor(Date.now() / 1000);
const nonce = () => randomBytes(16).toString('base64');

async function registerWithRecovery(c: RawClient, who: TestIdentity, recoveryB64: string): Promise<RegistryMessage> {
  const listen = '127.0.0.1:4000';
  return c.request(fresh(who, { type: 'register', listen_addr: listen, public_key: who.publicKeyB64, recovery_key: recoveryB64 }, bound.register(who.publicKeyB64, '', listen, recoveryB64)));
}

test('rotate_key by key: same node, old key retired, chain in lookups, push to the trust neighbour', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const b = await RawClient.connect(port);
    const a0 = pair();
    const a1 = pair();
    const bk = pair();
    const recovery = pair();
    const reg = await registerWithRecovery(c, a0.t, recovery.t.publicKeyB64);
    assert.equal(reg.type, 'register_ok');
    const ida = reg.node_id as number;
    const idb = await registerOurs(b, bk.t);
    // b subscribes to pushes; a trusts b (b pinned a's key after a handshake).
    assert.equal((await b.request(fresh(bk.t, { type: 'subscribe_push', node_id: idb }, challenge.subscribePush(idb)))).type, 'subscribe_push_ok');
    assert.equal((await c.request(fresh(a0.t, { type: 'report_trust', node_id: ida, peer_id: idb }, challenge.reportTrust(ida, idb)))).type, 'report_trust_ok');
    assert.equal((await c.request(fresh(a0.t, { type: 'set_hostname', node_id: ida, hostname: 'alpha' }, bound.setHostname(ida, 'alpha')))).type, 'set_hostname_ok');

    const s = signRotation({ nodeId: ida, old: a0.id, next: a1.id, tsSec: nowSec(), nonce: nonce() });
    const rot = await c.request({ type: 'rotate_key', ...s });
    assert.equal(rot.type, 'rotate_key_ok', JSON.stringify(rot));
    assert.equal(rot.node_id, ida);
    assert.equal(rot.public_key, a1.t.publicKeyB64);
    // The same statement again: the nonce is spent.
    assert.equal((await c.request({ type: 'rotate_key', ...s })).type, 'error');

    // b got the statement pushed, as signed.
    for (let i = 0; i < 50 && b.pushes.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const push = b.pushes.find((p) => p.type === 'push_key_rotated');
    assert.ok(push, 'push_key_rotated reached the trust neighbour');
    assert.equal((push!.statement as RegistryMessage).new_public_key, a1.t.publicKeyB64);
    assert.equal((push!.statement as RegistryMessage).old_public_key, a0.t.publicKeyB64);

    // The new key registers as the same node with its hostname and trust; the old key is refused, even as a new node.
    assert.equal(await registerOurs(c, a1.t), ida);
    const old = await c.request(fresh(a0.t, { type: 'register', listen_addr: '127.0.0.1:4000', public_key: a0.t.publicKeyB64 }, bound.register(a0.t.publicKeyB64, '', '127.0.0.1:4000')));
    assert.equal(old.type, 'error');
    assert.equal(old.code, 'key_retired');
    // Requests signed by the old key fail.
    assert.equal((await c.request(fresh(a0.t, { type: 'heartbeat', node_id: ida }, challenge.heartbeat(ida)))).type, 'error');
    // An identified lookup by b sees the new key, the chain and the recovery key.
    const l = await b.request(fresh(bk.t, { type: 'lookup', node_id: ida, requester_id: idb }, challenge.lookup(idb, ida)));
    assert.equal(l.public_key, a1.t.publicKeyB64);
    assert.equal(l.hostname, 'alpha');
    assert.equal((l.key_rotations as unknown[]).length, 1);
    assert.equal(l.recovery_key, recovery.t.publicKeyB64);
    assert.equal(server.currentState.trust.has(`${ida}>${idb}`), true, 'trust kept');
    c.close();
    b.close();
  } finally {
    await server.close();
  }
});

test('rotate_key by recovery key: takes a lost key back; wrong recovery key, stale ts, replay, rotation back onto a retired key refused', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a0 = pair();
    const recovery = pair();
    const ida = (await registerWithRecovery(c, a0.t, recovery.t.publicKeyB64)).node_id as number;
    // A second register naming another recovery key does not replace it.
    const other = pair();
    const again = await registerWithRecovery(c, a0.t, other.t.publicKeyB64);
    assert.equal(again.type, 'register_ok');
    assert.match(String(again.recovery_key_error), /already has another recovery key/);

    const a1 = pair();
    const wrong = signRotation({ nodeId: ida, recovery: other.id, next: a1.id, tsSec: nowSec(), nonce: nonce() });
    assert.equal((await c.request({ type: 'rotate_key', ...wrong })).type, 'error');
    const stale = signRotation({ nodeId: ida, recovery: recovery.id, next: a1.id, tsSec: nowSec() - 3600, nonce: nonce() });
    assert.equal((await c.request({ type: 'rotate_key', ...stale })).type, 'error');
    const good = signRotation({ nodeId: ida, recovery: recovery.id, next: a1.id, tsSec: nowSec(), nonce: nonce() });
    const r = await c.request({ type: 'rotate_key', ...good });
    assert.equal(r.type, 'rotate_key_ok', JSON.stringify(r));
    assert.equal((r.statement as RegistryMessage).old_public_key, a0.t.publicKeyB64, 'the registry records which key was replaced');
    assert.equal((await c.request({ type: 'rotate_key', ...good })).type, 'error', 'replay');
    assert.equal(await registerOurs(c, a1.t), ida);
    // Back onto the retired key (by a1 and a0 both signing): refused.
    const back = signRotation({ nodeId: ida, old: a1.id, next: a0.id, tsSec: nowSec() + 1, nonce: nonce() });
    const refused = await c.request({ type: 'rotate_key', ...back });
    assert.equal(refused.type, 'error');
    assert.equal(refused.code, 'key_retired');
    // A node without a recovery key cannot be taken by one.
    const lone = pair();
    const idl = await registerOurs(c, lone.t);
    const take = signRotation({ nodeId: idl, recovery: recovery.id, next: pair().id, tsSec: nowSec(), nonce: nonce() });
    assert.equal((await c.request({ type: 'rotate_key', ...take })).type, 'error');
    c.close();
  } finally {
    await server.close();
  }
});

test('key histories survive a reopen of the SQLite store and of a JSON snapshot; retired keys are derived again', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { SqliteStore } = await import('../../../src/registry/sqlite-store.js');
  const { applyChange, stateFromJson, stateToJson } = await import('../../../src/registry/state.js');
  const { silentLogger } = await import('../../../src/core/logger.js');
  const a0 = pair();
  const a1 = pair();
  const statement = signRotation({ nodeId: 4, old: a0.id, next: a1.id, tsSec: 1000, nonce: nonce() });
  const dir = mkdtempSync(join(tmpdir(), 'pilot-keys-'));
  try {
    const path = join(dir, 'registry.db');
    const s = new SqliteStore(path, { logger: silentLogger() });
    const r = await s.load();
    assert.ok(r.ok);
    const tx = [{ k: 'keys' as const, id: 4, v: { recoveryKey: 'R', rotations: [statement] } }];
    for (const c of tx) applyChange(r.value, c);
    assert.ok((await s.commit(tx)).ok);
    await s.close();
    const s2 = new SqliteStore(path, { logger: silentLogger() });
    const r2 = await s2.load();
    assert.ok(r2.ok);
    assert.equal(r2.value.keyHistory.get(4)?.recoveryKey, 'R');
    assert.equal(r2.value.retiredKeys.get(a0.t.publicKeyB64), 4);
    const snap = stateFromJson(JSON.parse(JSON.stringify(stateToJson(r2.value, 1))));
    assert.ok(typeof snap !== 'string');
    assert.equal(snap.state.retiredKeys.get(a0.t.publicKeyB64), 4);
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
