// Issue 10, registry part: one test per attack that worked against the registry before (each fails on the old
// code: it answered *_ok and changed state). "Ours" = a node registered the way our clients do (signed
// register); "legacy" = registered by an original client (unsigned register, bare signatures).
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/logger.js';
import { RegistryServer } from '../../../src/registry/server.js';
import { FileStore } from '../../../src/registry/store.js';
import { bound, challenge, withFreshness, type RegistryMessage } from '../../../src/wire/registry-frame.js';
import { RawClient, fresh, newIdentity, register, registerOurs, signed, signedRegister, startServer, type TestIdentity } from './helpers.js';

const nowSec = () => Math.floor(Date.now() / 1000);

test('attack (hostname takeover): an unsigned register of a known key of ours is refused; endpoint, LAN address, hostname and liveness stay', async () => {
  let nowMs = Date.now();
  const { server, port } = await startServer({ nowMs: () => nowMs, staleNodeMs: 10_000 });
  try {
    const c = await RawClient.connect(port);
    const victim = newIdentity();
    const r = await c.request(signedRegister(victim, '192.168.1.5:4000', 'alice', Math.floor(nowMs / 1000)));
    assert.equal(r.type, 'register_ok');
    assert.equal(r.hostname, 'alice');
    const id = r.node_id as number;
    const before = structuredClone(server.currentState.nodes.get(id));
    assert.equal(before?.isLegacy, false);

    // The attacker knows the public key (anyone may look up a public node) and has no private key.
    nowMs += 8_000;
    const evil = await c.request({ type: 'register', public_key: victim.publicKeyB64, listen_addr: '10.9.9.9:6666', hostname: 'mallory' });
    assert.equal(evil.type, 'error');
    assert.match(String(evil.error), /must be signed/);
    // A signature by another key, or over other fields, does not help either.
    const other = newIdentity();
    const forged = fresh(other, { type: 'register', public_key: victim.publicKeyB64, listen_addr: '10.9.9.9:6666' }, bound.register(victim.publicKeyB64, '', '10.9.9.9:6666'), Math.floor(nowMs / 1000));
    assert.equal((await c.request(forged)).type, 'error');
    const real = signedRegister(victim, '192.168.1.5:4000', 'alice', Math.floor(nowMs / 1000));
    assert.equal((await c.request({ ...real, listen_addr: '10.9.9.9:6666' })).type, 'error', 'listen_addr is inside the signature');
    assert.equal((await c.request({ ...real, hostname: 'mallory' })).type, 'error', 'hostname is inside the signature');
    assert.deepEqual(server.currentState.nodes.get(id), before, 'nothing of the victim changed');
    assert.equal(server.currentState.hostnameIndex.get('alice'), id);
    // The attacker's second node cannot take the name.
    const mallory = newIdentity();
    const idm = await registerOurs(c, mallory);
    const take = await c.request(fresh(mallory, { type: 'set_hostname', node_id: idm, hostname: 'alice' }, bound.setHostname(idm, 'alice'), Math.floor(nowMs / 1000)));
    assert.equal(take.code, 'already_exists');
    // Liveness was not refreshed by the refused register: the victim is reaped on schedule.
    nowMs += 3_000;
    await server.sweepNow();
    assert.equal(server.currentState.nodes.has(id), false);
    // Even with the node gone, its key stays proven: no unsigned re-registration of it.
    const again = await c.request({ type: 'register', public_key: victim.publicKeyB64, listen_addr: '10.9.9.9:6666', hostname: 'alice' });
    assert.equal(again.type, 'error');
    assert.equal(server.currentState.nodes.has(id), false);
    c.close();
  } finally {
    await server.close();
  }
});

test('attack (takeover after a restart): proven keys and the legacy flag survive a FileStore restart; old records load as legacy', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-reg-'));
  const path = join(dir, 'reg.json');
  const start = async () => {
    const r = await RegistryServer.start({ host: '127.0.0.1', port: 0, store: new FileStore(path), logger: silentLogger() });
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    return r.value;
  };
  try {
    let server = await start();
    let c = await RawClient.connect(server.address().port);
    const ours = newIdentity();
    const legacy = newIdentity();
    const id = await registerOurs(c, ours);
    const idl = await register(c, legacy);
    assert.equal((await c.request(fresh(ours, { type: 'deregister', node_id: id }, challenge.deregister(id)))).type, 'deregister_ok');
    c.close();
    await server.close();
    server = await start();
    c = await RawClient.connect(server.address().port);
    assert.equal((await c.request({ type: 'register', public_key: ours.publicKeyB64, listen_addr: ':1' })).type, 'error');
    assert.equal(server.currentState.nodes.get(idl)?.isLegacy, true);
    assert.equal(await register(c, legacy), idl, 'original clients keep re-registering unsigned');
    assert.equal(await registerOurs(c, ours), id, 'the owner comes back with a signature and gets its id');
    c.close();
    await server.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const { stateFromJson } = await import('../../../src/registry/state.js');
  const old = stateFromJson({
    version: 1, seq: 0, next_node_id: 2,
    nodes: [{ id: 1, publicKey: 'k', owner: '', realAddr: '1.2.3.4:1', isPublic: false, hostname: '', tags: [], poloScore: 0, taskExec: false }],
    pub_keys: [['k', 1]], trust: [], intents: [], inbox: [], responses: [],
  });
  assert.ok(typeof old !== 'string');
  assert.equal(old.state.nodes.get(1)?.isLegacy, true, 'a record from before the flag never proved its key');
});

test('attack (heartbeat replay): a heartbeat of ours replayed 3x is refused, and bare heartbeats are refused for our nodes', async () => {
  let nowMs = Date.now();
  const { server, port } = await startServer({ nowMs: () => nowMs, staleNodeMs: 5_000 });
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const id = await registerOurs(c, a);
    const hb = fresh(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id), Math.floor(nowMs / 1000));
    assert.equal((await c.request(hb)).type, 'heartbeat_ok');
    nowMs += 4_000;
    for (let i = 0; i < 3; i++) assert.equal((await c.request(hb)).type, 'error', `replay ${i + 1}`);
    const bare = signed(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id));
    const r = await c.request(bare);
    assert.equal(r.type, 'error');
    assert.match(String(r.error), /bare signatures are refused/);
    nowMs += 2_000;
    await server.sweepNow();
    assert.equal(server.currentState.nodes.has(id), false, 'replays kept nothing alive');
    c.close();
  } finally {
    await server.close();
  }
});

test('attack (one set_hostname signature, two names): our nodes need the bound form; the bare one is refused', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const id = await registerOurs(c, a);
    const sig = challenge.setHostname(id);
    assert.equal((await c.request(signed(a, { type: 'set_hostname', node_id: id, hostname: 'first' }, sig))).type, 'error');
    assert.equal((await c.request(signed(a, { type: 'set_hostname', node_id: id, hostname: 'second' }, sig))).type, 'error');
    const good = fresh(a, { type: 'set_hostname', node_id: id, hostname: 'first' }, bound.setHostname(id, 'first'));
    assert.equal((await c.request({ ...good, hostname: 'second' })).type, 'error');
    assert.equal((await c.request(good)).type, 'set_hostname_ok');
    assert.equal((await c.request({ ...good, hostname: 'second' })).type, 'error');
    assert.equal(server.currentState.nodes.get(id)?.hostname, 'first');
    assert.equal(server.currentState.hostnameIndex.has('second'), false);
    c.close();
  } finally {
    await server.close();
  }
});

test('attack (poll replay): a replayed poll_handshakes neither reads nor clears the inbox of a node of ours', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const victim = newIdentity();
    const asker = newIdentity();
    const idv = await registerOurs(c, victim);
    const ida = await registerOurs(c, asker);
    const ask = (j: string) =>
      c.request(fresh(asker, { type: 'request_handshake', from_node_id: ida, to_node_id: idv, justification: j }, bound.requestHandshake(ida, idv, j)));
    const poll = fresh(victim, { type: 'poll_handshakes', node_id: idv }, challenge.pollHandshakes(idv));
    assert.equal((await c.request(poll)).type, 'poll_handshakes_ok');
    assert.equal((await ask('secret plan')).type, 'request_handshake_ok');
    const replay = await c.request(poll);
    assert.equal(replay.type, 'error');
    assert.equal(replay.requests, undefined);
    const bare = await c.request(signed(victim, { type: 'poll_handshakes', node_id: idv }, challenge.pollHandshakes(idv)));
    assert.equal(bare.type, 'error');
    assert.equal(server.currentState.inbox.get(idv)?.length, 1, 'the pending request is still there');
    c.close();
  } finally {
    await server.close();
  }
});

test('attack (reject turned into accept): accept is inside the signature; a flipped answer creates no trust', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const ida = await registerOurs(c, a);
    const idb = await registerOurs(c, b);
    const j = 'please';
    assert.equal((await c.request(fresh(a, { type: 'request_handshake', from_node_id: ida, to_node_id: idb, justification: j }, bound.requestHandshake(ida, idb, j)))).type, 'request_handshake_ok');
    const reject = fresh(b, { type: 'respond_handshake', node_id: idb, peer_id: ida, accept: false }, bound.respondHandshake(idb, ida, false));
    // The old signed string left accept out: a fresh signature over it, flipped, was an accept.
    const oldForm = fresh(b, { type: 'respond_handshake', node_id: idb, peer_id: ida, accept: false }, challenge.respondHandshake(idb, ida));
    assert.equal((await c.request({ ...oldForm, accept: true })).type, 'error');
    assert.equal(server.currentState.trust.size, 0);
    // The man in the middle flips it before it arrives.
    assert.equal((await c.request({ ...reject, accept: true })).type, 'error');
    assert.equal(server.currentState.trust.size, 0);
    // Nor does the bare original form work for a node of ours.
    assert.equal((await c.request(signed(b, { type: 'respond_handshake', node_id: idb, peer_id: ida, accept: true }, challenge.respondHandshake(idb, ida)))).type, 'error');
    assert.equal(server.currentState.trust.size, 0);
    const r = await c.request(reject);
    assert.deepEqual(r, { type: 'respond_handshake_ok', accept: false, peer_id: ida });
    assert.equal(server.currentState.trust.size, 0);
    c.close();
  } finally {
    await server.close();
  }
});

test('attack (rotate_key onto the attacker key): the new key is inside the signature and must sign too', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const id = await registerOurs(c, a);
    const wanted = newIdentity();
    const attacker = newIdentity();
    const text = bound.rotateKey(id, wanted.publicKeyB64);
    const msg = fresh(a, { type: 'rotate_key', node_id: id, new_public_key: wanted.publicKeyB64 }, text);
    const byNew = (who: TestIdentity, t: string) => who.sign(withFreshness(t, msg.ts as number, msg.nonce as string));
    // Swapped key: the old key's signature no longer matches (and the attacker signs its own key).
    const swapped = { ...msg, new_public_key: attacker.publicKeyB64, new_key_signature: byNew(attacker, bound.rotateKey(id, attacker.publicKeyB64)) };
    assert.equal((await c.request(swapped)).type, 'error');
    // The old fresh form (rotate:<id>, no key) with the attacker's key: refused.
    const oldForm = fresh(a, { type: 'rotate_key', node_id: id, new_public_key: attacker.publicKeyB64 }, challenge.rotateKey(id));
    assert.equal((await c.request(oldForm)).type, 'error');
    // The original's bare rotate:<id> is refused outright.
    assert.equal((await c.request({ type: 'rotate_key', node_id: id, new_public_key: attacker.publicKeyB64, signature: a.sign(challenge.rotateKey(id)) })).type, 'error');
    // Binding a key one does not hold (no new_key_signature by it) is refused.
    assert.equal((await c.request(msg)).type, 'error');
    assert.equal(server.currentState.nodes.get(id)?.publicKey, a.publicKeyB64);
    const r = await c.request({ ...msg, new_key_signature: byNew(wanted, text) });
    assert.equal(r.type, 'rotate_key_ok');
    assert.equal(typeof r.beacon_token, 'string', 'a new key gets a new beacon token');
    assert.equal(server.currentState.nodes.get(id)?.publicKey, wanted.publicKeyB64);
    c.close();
  } finally {
    await server.close();
  }
});

test('attack (value swap): tags, visibility, task_exec and the justification are inside the signatures of our nodes', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const id = await registerOurs(c, a);
    const idb = await registerOurs(c, b);
    const cases: [RegistryMessage, RegistryMessage][] = [
      [fresh(a, { type: 'set_visibility', node_id: id, public: false }, bound.setVisibility(id, false)), { public: true }],
      [fresh(a, { type: 'set_task_exec', node_id: id, enabled: false }, bound.setTaskExec(id, false)), { enabled: true }],
      [fresh(a, { type: 'set_tags', node_id: id, tags: ['web'] }, bound.setTags(id, ['web'])), { tags: ['evil'] }],
      [fresh(a, { type: 'request_handshake', from_node_id: id, to_node_id: idb, justification: 'hi' }, bound.requestHandshake(id, idb, 'hi')), { justification: 'send me your files' }],
    ];
    for (const [good, change] of cases) {
      const r = await c.request({ ...good, ...change });
      assert.equal(r.type, 'error', `${String(good.type)} with ${JSON.stringify(change)}`);
    }
    // The old fresh forms (id-only strings) with the swapped values: refused.
    const oldForms = [
      fresh(a, { type: 'set_visibility', node_id: id, public: true }, challenge.setVisibility(id)),
      fresh(a, { type: 'set_task_exec', node_id: id, enabled: true }, challenge.setTaskExec(id)),
      fresh(a, { type: 'set_tags', node_id: id, tags: ['evil'] }, challenge.setTags(id)),
      fresh(a, { type: 'request_handshake', from_node_id: id, to_node_id: idb, justification: 'x' }, challenge.requestHandshake(id, idb)),
    ];
    for (const m of oldForms) assert.equal((await c.request(m)).type, 'error', `old form of ${String(m.type)}`);
    const n = server.currentState.nodes.get(id)!;
    assert.equal(n.isPublic, false);
    assert.equal(n.taskExec, false);
    assert.deepEqual(n.tags, []);
    assert.equal(server.currentState.inbox.has(idb), false);
    for (const [good] of cases) assert.match(String((await c.request(good)).type), /_ok$/, String(good.type));
    assert.deepEqual(server.currentState.nodes.get(id)!.tags, ['web']);
    c.close();
  } finally {
    await server.close();
  }
});

test('attack (enumeration): a private node of ours answers unauthenticated requests exactly like a node that does not exist', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const hidden = newIdentity();
    const stranger = newIdentity();
    const friend = newIdentity();
    const idh = await registerOurs(c, hidden);
    const ids = await registerOurs(c, stranger);
    const idf = await registerOurs(c, friend);
    assert.equal((await c.request(fresh(hidden, { type: 'set_hostname', node_id: idh, hostname: 'hidden' }, bound.setHostname(idh, 'hidden')))).type, 'set_hostname_ok');
    assert.equal((await c.request(fresh(hidden, { type: 'report_trust', node_id: idh, peer_id: idf }, challenge.reportTrust(idh, idf)))).type, 'report_trust_ok');
    const missing = 999;
    const same = async (make: (target: number) => RegistryMessage, what: string) => {
      const a = await c.request(make(idh));
      const b = await c.request(make(missing));
      assert.equal(a.type, 'error', what);
      assert.deepEqual(JSON.parse(JSON.stringify(a).replaceAll(String(idh), 'N')), JSON.parse(JSON.stringify(b).replaceAll(String(missing), 'N')), what);
    };
    await same((t) => ({ type: 'lookup', node_id: t }), 'anonymous lookup');
    await same((t) => ({ type: 'get_polo_score', node_id: t }), 'get_polo_score');
    await same((t) => ({ type: 'update_polo_score', node_id: t, delta: 5 }), 'update_polo_score');
    await same((t) => ({ type: 'lookup', node_id: t, requester_id: ids, signature: 'AAAA' }), 'bad signature');
    await same((t) => signed(stranger, { type: 'lookup', node_id: t, requester_id: ids }, challenge.lookup(ids, t)), 'bare signature of our node');
    const byName = async (msg: RegistryMessage) => c.request(msg);
    const h1 = await byName({ type: 'resolve_hostname', hostname: 'hidden' });
    const h2 = await byName({ type: 'resolve_hostname', hostname: 'nobody' });
    assert.deepEqual({ ...h1, error: String(h1.error).replace('hidden', 'X') }, { ...h2, error: String(h2.error).replace('nobody', 'X') });
    const badName = await byName({ type: 'resolve_hostname', hostname: 'hidden', requester_id: ids, ts: nowSec(), nonce: 'AAAAAAAAAAAAAAAAAAAAAA==', signature: 'AAAA' });
    assert.equal(badName.code, 'not_found', 'a bad identified signature is an unauthenticated request');
    // An identified (registered, signing) stranger learns the id and key — handshake by name needs them —
    // but not the name's owner's tags or hostname through lookup.
    const hs = await byName(fresh(stranger, { type: 'resolve_hostname', hostname: 'hidden', requester_id: ids }, bound.resolveHostname(ids, 'hidden')));
    assert.equal(hs.node_id, idh);
    const ls = await c.request(fresh(stranger, { type: 'lookup', node_id: idh, requester_id: ids }, challenge.lookup(ids, idh)));
    assert.equal(ls.type, 'lookup_ok');
    assert.equal(ls.public_key, hidden.publicKeyB64);
    assert.equal(ls.hostname, undefined);
    // The peer it trusts, and the node itself, see it.
    const hf = await byName(fresh(friend, { type: 'resolve_hostname', hostname: 'hidden', requester_id: idf }, bound.resolveHostname(idf, 'hidden')));
    assert.equal(hf.node_id, idh);
    const lf = await c.request(fresh(friend, { type: 'lookup', node_id: idh, requester_id: idf }, challenge.lookup(idf, idh)));
    assert.equal(lf.hostname, 'hidden');
    // A replayed identified lookup of the friend is an unauthenticated one again.
    const lfMsg = fresh(friend, { type: 'lookup', node_id: idh, requester_id: idf }, challenge.lookup(idf, idh));
    assert.equal((await c.request(lfMsg)).type, 'lookup_ok');
    assert.equal((await c.request(lfMsg)).code, 'not_found');
    // Someone it asked for a handshake may look it up (the push already showed its key and name).
    assert.equal((await c.request(fresh(hidden, { type: 'request_handshake', from_node_id: idh, to_node_id: ids, justification: '' }, bound.requestHandshake(idh, ids, '')))).type, 'request_handshake_ok');
    assert.equal((await c.request(fresh(stranger, { type: 'lookup', node_id: idh, requester_id: ids }, challenge.lookup(ids, idh)))).hostname, 'hidden');
    c.close();
  } finally {
    await server.close();
  }
});

test('attack (unauthenticated writes): set_polo_score and beacon_register are refused; update_polo_score cannot touch our nodes', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const id = await registerOurs(c, a);
    assert.equal((await c.request(fresh(a, { type: 'set_visibility', node_id: id, public: true }, bound.setVisibility(id, true)))).type, 'set_visibility_ok');
    assert.equal((await c.request({ type: 'set_polo_score', node_id: id, polo_score: -1000 })).type, 'error');
    assert.equal((await c.request({ type: 'update_polo_score', node_id: id, delta: -1000 })).type, 'error');
    assert.equal(server.currentState.nodes.get(id)?.poloScore, 0);
    assert.equal((await c.request({ type: 'get_polo_score', node_id: id })).polo_score, 0, 'public: readable');
    assert.equal((await c.request({ type: 'beacon_register', beacon_id: 1, addr: '6.6.6.6:9001' })).type, 'error');
    assert.deepEqual((await c.request({ type: 'beacon_list' })).beacons, []);
    c.close();
  } finally {
    await server.close();
  }
});

test('legacy nodes keep the original rules, but their bare signatures change nothing of our nodes', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const orig = newIdentity();
    const ours = newIdentity();
    const idl = await register(c, orig);
    const ido = await registerOurs(c, ours);
    const plain = await c.request({ type: 'register', listen_addr: ':1', public_key: orig.publicKeyB64 });
    assert.equal(plain.extensions, undefined, 'an original client sees the original register_ok');
    assert.equal(plain.beacon_token, undefined);
    assert.equal((await c.request(signed(orig, { type: 'heartbeat', node_id: idl }, challenge.heartbeat(idl)))).type, 'heartbeat_ok');
    assert.equal((await c.request(signed(orig, { type: 'set_hostname', node_id: idl, hostname: 'orig' }, challenge.setHostname(idl)))).type, 'set_hostname_ok');
    const before = structuredClone(server.currentState.nodes.get(ido));
    // The legacy node's key signing requests for our node: all refused.
    for (const m of [
      signed(orig, { type: 'set_hostname', node_id: ido, hostname: 'x' }, challenge.setHostname(ido)),
      signed(orig, { type: 'set_visibility', node_id: ido, public: true }, challenge.setVisibility(ido)),
      signed(orig, { type: 'deregister', node_id: ido }, challenge.deregister(ido)),
      signed(orig, { type: 'poll_handshakes', node_id: ido }, challenge.pollHandshakes(ido)),
      signed(orig, { type: 'report_trust', node_id: ido, peer_id: idl }, challenge.reportTrust(ido, idl)),
    ]) {
      assert.equal((await c.request(m)).type, 'error', String(m.type));
    }
    assert.deepEqual(server.currentState.nodes.get(ido), before);
    assert.equal(server.currentState.trust.has(`${ido}>${idl}`), false);
    // A legacy node that proves its key once becomes ours: bare signatures stop working for it.
    const up = await c.request(signedRegister(orig, '127.0.0.1:4000'));
    assert.equal(up.type, 'register_ok');
    assert.deepEqual(up.extensions, ['fresh-signatures-v1', 'push-v1', 'beacon-token-v1']);
    assert.equal(server.currentState.nodes.get(idl)?.isLegacy, false);
    assert.equal((await c.request(signed(orig, { type: 'heartbeat', node_id: idl }, challenge.heartbeat(idl)))).type, 'error');
    c.close();
  } finally {
    await server.close();
  }
});

test('beacon authority: tokens only for our nodes (HMAC of the registration), legacy flagged, punches need the target’s trust', async () => {
  const secret = new Uint8Array(32).fill(7);
  const { server, port } = await startServer({ beaconSecret: secret });
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const orig = newIdentity();
    const ra = await c.request(signedRegister(a));
    const ida = ra.node_id as number;
    const idb = await registerOurs(c, b);
    const idl = await register(c, orig);
    const auth = server.beaconAuthority();
    const expected = createHmac('sha256', secret).update(`pilot-beacon-token:v1:${ida}:${a.publicKeyB64}`).digest();
    const na = auth.nodeAuth(ida);
    assert.ok(na && na.token && !na.isLegacy);
    assert.deepEqual(Buffer.from(na.token), expected);
    assert.equal(ra.beacon_token, expected.toString('base64'));
    assert.deepEqual(auth.nodeAuth(idl), { token: null, isLegacy: true });
    assert.equal(auth.nodeAuth(4242), null);
    assert.notDeepEqual(auth.nodeAuth(idb)!.token, na.token);
    // Private b: nobody may punch to it until it trusts them.
    assert.equal(auth.mayPunch(ida, idb), false);
    assert.equal(auth.mayPunch(idl, idb), false);
    assert.equal((await c.request(fresh(b, { type: 'report_trust', node_id: idb, peer_id: ida }, challenge.reportTrust(idb, ida)))).type, 'report_trust_ok');
    assert.equal(auth.mayPunch(ida, idb), true);
    assert.equal(auth.mayPunch(idb, ida), false, 'trust is directed');
    assert.equal(auth.mayPunch(4242, idb), false);
    assert.equal((await c.request(fresh(a, { type: 'set_visibility', node_id: ida, public: true }, bound.setVisibility(ida, true)))).type, 'set_visibility_ok');
    assert.equal(auth.mayPunch(idl, ida), true, 'public: anyone registered');
    c.close();
  } finally {
    await server.close();
  }
});

test('freshness: a register signed with a skewed clock is refused with server_time; nonces per signer are bounded', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const r = await c.request(signedRegister(a, '127.0.0.1:4000', '', nowSec() - 600));
    assert.equal(r.type, 'error');
    assert.equal(typeof r.server_time, 'number');
    assert.equal(server.currentState.nodes.size, 0);
    c.close();
  } finally {
    await server.close();
  }
});

test('an original client is identified by the connection it registered on: a private node of ours that trusts it can be looked up there, by nobody else', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const hidden = newIdentity();
    const idh = await registerOurs(c, hidden);
    assert.equal((await c.request(fresh(hidden, { type: 'set_hostname', node_id: idh, hostname: 'hidden' }, bound.setHostname(idh, 'hidden')))).type, 'set_hostname_ok');
    // Two original clients, each on its own connection; the private node trusts only the first.
    const friendConn = await RawClient.connect(port);
    const friend = newIdentity();
    const idf = await register(friendConn, friend);
    const otherConn = await RawClient.connect(port);
    const idx = await register(otherConn, newIdentity());
    const anonConn = await RawClient.connect(port);
    assert.equal((await c.request(fresh(hidden, { type: 'report_trust', node_id: idh, peer_id: idf }, challenge.reportTrust(idh, idf)))).type, 'report_trust_ok');

    const byFriend = await friendConn.request({ type: 'lookup', node_id: idh });
    assert.equal(byFriend.type, 'lookup_ok', 'the trusted original sees the key it needs to check our PILA');
    assert.equal(byFriend.public_key, hidden.publicKeyB64);
    assert.equal((await friendConn.request({ type: 'resolve_hostname', hostname: 'hidden' })).type, 'resolve_hostname_ok');
    for (const [conn, who] of [[otherConn, `untrusted original ${idx}`], [anonConn, 'an unregistered connection']] as const) {
      assert.equal((await conn.request({ type: 'lookup', node_id: idh })).code, 'not_found', who);
      assert.equal((await conn.request({ type: 'resolve_hostname', hostname: 'hidden' })).type, 'error', who);
    }
    // Revoking trust hides the node again.
    assert.equal((await c.request(fresh(hidden, { type: 'revoke_trust', node_id: idh, peer_id: idf }, challenge.revokeTrust(idh, idf)))).type, 'revoke_trust_ok');
    assert.equal((await friendConn.request({ type: 'lookup', node_id: idh })).code, 'not_found');
    for (const x of [c, friendConn, otherConn, anonConn]) x.close();
  } finally {
    await server.close();
  }
});
