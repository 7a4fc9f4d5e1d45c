import test from 'node:test';
import assert from 'node:assert/strict';
import { bound, challenge, withFreshness } from '../../../src/wire/registry-frame.js';
import { RawClient, fresh, newIdentity, register, registerOurs, signed, startServer } from './helpers.js';

test('register allocates sequential ids and a known key re-gets its id', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const r1 = await c.request({ type: 'register', listen_addr: '0.0.0.0:4001', public_key: a.publicKeyB64 });
    assert.deepEqual(r1, {
      type: 'register_ok',
      address: '0:0000.0000.0001',
      network_id: 0,
      node_id: 1,
      public_key: a.publicKeyB64,
    });
    assert.equal(await register(c, b), 2);
    assert.equal(await register(c, a), 1, 'same key, same id');
    // Deregistered, then back: the id is reclaimed.
    assert.equal((await c.request(signed(a, { type: 'deregister', node_id: 1 }, challenge.deregister(1)))).type, 'deregister_ok');
    assert.equal(await register(c, a), 1);
    const missingKey = await c.request({ type: 'register', listen_addr: ':1' });
    assert.equal(missingKey.type, 'error');
    const badKey = await c.request({ type: 'register', listen_addr: ':1', public_key: 'AAAA' });
    assert.equal(badKey.type, 'error');
    // listen_addr keeps only the port; the IP is the TCP source (original sanitizeListenAddr).
    const res = await c.request(
      signed(b, { type: 'resolve', node_id: 2, requester_id: 2 }, challenge.resolve(2, 2)),
    );
    assert.equal(res.real_addr, '127.0.0.1:4000');
    c.close();
  } finally {
    await server.close();
  }
});

test('hostnames: validation, uniqueness, clearing, resolve_hostname', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const ida = await register(c, a);
    const idb = await register(c, b);
    const set = (who: typeof a, id: number, hostname: string) =>
      c.request(signed(who, { type: 'set_hostname', node_id: id, hostname }, challenge.setHostname(id)));
    for (const bad of ['Upper', '-lead', 'trail-', 'a_b', 'x'.repeat(64), 'localhost', 'has space']) {
      const r = await set(a, ida, bad);
      assert.equal(r.type, 'error', bad);
      assert.equal(r.code, 'invalid_argument');
    }
    assert.deepEqual(await set(a, ida, 'alpha'), { type: 'set_hostname_ok', hostname: 'alpha', node_id: ida });
    assert.equal((await set(a, ida, 'x'.repeat(63))).type, 'set_hostname_ok');
    assert.equal((await set(a, ida, 'alpha')).type, 'set_hostname_ok');
    const taken = await set(b, idb, 'alpha');
    assert.equal(taken.type, 'error');
    assert.equal(taken.code, 'already_exists');
    // Signature by the wrong key is refused.
    const forged = await c.request(signed(b, { type: 'set_hostname', node_id: ida, hostname: 'evil' }, challenge.setHostname(ida)));
    assert.equal(forged.type, 'error');
    const r = await c.request({ type: 'resolve_hostname', hostname: 'alpha' });
    assert.deepEqual(r, { type: 'resolve_hostname_ok', address: '0:0000.0000.0001', hostname: 'alpha', node_id: ida, public: false });
    assert.equal((await set(a, ida, '')).type, 'set_hostname_ok');
    assert.equal((await c.request({ type: 'resolve_hostname', hostname: 'alpha' })).code, 'not_found');
    assert.equal((await set(b, idb, 'alpha')).type, 'set_hostname_ok', 'freed name can be taken');
    // Our bound form covers the hostname: a signature for one name does not set another.
    const ts = Math.floor(Date.now() / 1000);
    const good = fresh(a, { type: 'set_hostname', node_id: ida, hostname: 'bound' }, challenge.setHostnameBound(ida, 'bound'), ts);
    assert.equal((await c.request({ ...good, hostname: 'other' })).type, 'error');
    assert.equal((await c.request(good)).type, 'set_hostname_ok');
    c.close();
  } finally {
    await server.close();
  }
});

test('tags and visibility', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const id = await register(c, a);
    const tags = (t: unknown) => c.request(signed(a, { type: 'set_tags', node_id: id, tags: t }, challenge.setTags(id)));
    assert.deepEqual(await tags(['#web', 'gpu-1']), { type: 'set_tags_ok', node_id: id, tags: ['web', 'gpu-1'] });
    assert.equal((await tags(['BAD'])).type, 'error');
    assert.equal((await tags(Array.from({ length: 11 }, (_, i) => `t${i}`))).type, 'error');
    assert.equal((await tags([''])).type, 'error');
    const vis = await c.request(signed(a, { type: 'set_visibility', node_id: id, public: true }, challenge.setVisibility(id)));
    assert.deepEqual(vis, { type: 'set_visibility_ok', node_id: id, visibility: 'public' });
    const look = await c.request({ type: 'lookup', node_id: id });
    assert.equal(look.public, true);
    assert.equal(look.real_addr, '127.0.0.1:4000');
    assert.deepEqual(look.tags, ['web', 'gpu-1']);
    c.close();
  } finally {
    await server.close();
  }
});

test('private nodes: lookup hides hostname/tags from strangers, resolve needs the target’s trust', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const x = newIdentity();
    const ida = await register(c, a);
    const idb = await register(c, b);
    const idx = await register(c, x);
    await c.request(signed(a, { type: 'set_hostname', node_id: ida, hostname: 'secret-a' }, challenge.setHostname(ida)));
    await c.request(signed(a, { type: 'set_tags', node_id: ida, tags: ['t'] }, challenge.setTags(ida)));
    const anon = await c.request({ type: 'lookup', node_id: ida });
    assert.equal(anon.type, 'lookup_ok');
    assert.equal(anon.public_key, a.publicKeyB64, 'original daemons verify tunnel auth with it');
    assert.equal(anon.hostname, undefined);
    assert.equal(anon.tags, undefined);
    assert.equal(anon.real_addr, undefined);
    const resolve = (who: typeof a, req: number, target: number) =>
      c.request(signed(who, { type: 'resolve', node_id: target, requester_id: req }, challenge.resolve(req, target)));
    assert.equal((await resolve(b, idb, ida)).type, 'error');
    // The original lets b create the pair alone; ours: b trusting a does not let b resolve a.
    assert.equal((await c.request(signed(b, { type: 'report_trust', node_id: idb, peer_id: ida }, challenge.reportTrust(idb, ida)))).type, 'report_trust_ok');
    assert.equal((await resolve(b, idb, ida)).type, 'error');
    // Nor does a respond_handshake "accept" without a prior request from a.
    await c.request(signed(b, { type: 'respond_handshake', node_id: idb, peer_id: ida, accept: true }, challenge.respondHandshake(idb, ida)));
    assert.equal((await resolve(b, idb, ida)).type, 'error');
    // a trusts b → b may resolve a; x still may not.
    await c.request(signed(a, { type: 'report_trust', node_id: ida, peer_id: idb }, challenge.reportTrust(ida, idb)));
    const ok1 = await resolve(b, idb, ida);
    assert.deepEqual(ok1, { type: 'resolve_ok', node_id: ida, real_addr: '127.0.0.1:4000' });
    assert.equal((await resolve(x, idx, ida)).type, 'error');
    // Identified lookup by a trusted requester gets the hostname; a bad signature is an error.
    const idLook = await c.request(fresh(b, { type: 'lookup', node_id: ida, requester_id: idb }, challenge.lookup(idb, ida)));
    assert.equal(idLook.hostname, 'secret-a');
    const strangerLook = await c.request(fresh(x, { type: 'lookup', node_id: ida, requester_id: idx }, challenge.lookup(idx, ida)));
    assert.equal(strangerLook.hostname, undefined);
    assert.equal((await c.request({ type: 'lookup', node_id: ida, requester_id: idx, signature: 'AAAA' })).type, 'error');
    // punch follows the same rule.
    const punchX = await c.request(signed(x, { type: 'punch', requester_id: idx, node_a: idx, node_b: ida }, challenge.punch(idx, ida)));
    assert.equal(punchX.type, 'error');
    const punchB = await c.request(signed(b, { type: 'punch', requester_id: idb, node_a: idb, node_b: ida }, challenge.punch(idb, ida)));
    assert.equal(punchB.type, 'punch_ok');
    assert.equal(punchB.node_a_addr, '127.0.0.1:4000');
    // revoke by either side ends it.
    assert.equal((await c.request(signed(a, { type: 'revoke_trust', node_id: ida, peer_id: idb }, challenge.revokeTrust(ida, idb)))).type, 'revoke_trust_ok');
    assert.equal((await resolve(b, idb, ida)).type, 'error');
    assert.equal((await c.request(signed(a, { type: 'revoke_trust', node_id: ida, peer_id: idb }, challenge.revokeTrust(ida, idb)))).code, 'not_found');
    c.close();
  } finally {
    await server.close();
  }
});

test('an answered handshake leaves the inbox: the requester may ask again after a reject', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const ida = await register(c, a);
    const idb = await register(c, b);
    const ask = () =>
      c.request(signed(a, { type: 'request_handshake', from_node_id: ida, to_node_id: idb, justification: 'j' }, challenge.requestHandshake(ida, idb)));
    const answer = (accept: boolean) =>
      c.request(signed(b, { type: 'respond_handshake', node_id: idb, peer_id: ida, accept }, challenge.respondHandshake(idb, ida)));
    assert.equal((await ask()).type, 'request_handshake_ok');
    assert.equal((await answer(false)).type, 'respond_handshake_ok');
    const poll = await c.request(signed(b, { type: 'poll_handshakes', node_id: idb }, challenge.pollHandshakes(idb)));
    assert.deepEqual(poll.requests, [], 'the rejected request is no longer queued');
    assert.equal((await ask()).type, 'request_handshake_ok', 'asking again after a reject');
    assert.equal((await answer(true)).type, 'respond_handshake_ok');
    assert.equal((await c.request(signed(b, { type: 'revoke_trust', node_id: idb, peer_id: ida }, challenge.revokeTrust(idb, ida)))).type, 'revoke_trust_ok');
    assert.equal((await ask()).type, 'request_handshake_ok', 'asking again after an untrust');
    c.close();
  } finally {
    await server.close();
  }
});

test('trust relay: request, poll, respond; pushes arrive well under 1 s; polls still see queued items', async () => {
  const { server, port } = await startServer();
  try {
    const ca = await RawClient.connect(port);
    const cb = await RawClient.connect(port);
    const a = newIdentity();
    const b = newIdentity();
    const ida = await register(ca, a);
    const idb = await register(cb, b);
    await ca.request(signed(a, { type: 'set_hostname', node_id: ida, hostname: 'asker' }, challenge.setHostname(ida)));
    // b (private target) subscribes to pushes; subscribe_push needs a replay-safe signature.
    assert.equal((await cb.request(signed(b, { type: 'subscribe_push', node_id: idb }, challenge.subscribePush(idb)))).type, 'error');
    const sub = await cb.request(fresh(b, { type: 'subscribe_push', node_id: idb }, challenge.subscribePush(idb)));
    assert.equal(sub.type, 'subscribe_push_ok');
    const subA = await ca.request(fresh(a, { type: 'subscribe_push', node_id: ida }, challenge.subscribePush(ida)));
    assert.equal(subA.type, 'subscribe_push_ok');

    const t0 = performance.now();
    const req = await ca.request(
      signed(a, { type: 'request_handshake', from_node_id: ida, to_node_id: idb, justification: 'hi b' }, challenge.requestHandshake(ida, idb)),
    );
    assert.deepEqual(req, { type: 'request_handshake_ok', status: 'delivered' });
    const pushed = await cb.push((m) => m.type === 'push_handshake_request');
    const pushMs = performance.now() - t0;
    assert.equal(pushed.from_node_id, ida);
    assert.equal(pushed.justification, 'hi b');
    assert.equal(pushed.from_hostname, 'asker');
    assert.equal(pushed.from_public_key, a.publicKeyB64);
    assert.ok(pushMs < 1000, `push took ${pushMs} ms`);
    console.log(`# handshake request push latency: ${pushMs.toFixed(2)} ms`);
    // Duplicate while pending is refused.
    const dup = await ca.request(
      signed(a, { type: 'request_handshake', from_node_id: ida, to_node_id: idb, justification: 'again' }, challenge.requestHandshake(ida, idb)),
    );
    assert.equal(dup.code, 'already_exists');
    // The queued copy is still there for polling (at-least-once).
    const poll = await cb.request(signed(b, { type: 'poll_handshakes', node_id: idb }, challenge.pollHandshakes(idb)));
    assert.equal((poll.requests as unknown[]).length, 1);
    assert.deepEqual((poll.requests as Record<string, unknown>[])[0]!.from_node_id, ida);
    const empty = await cb.request(signed(b, { type: 'poll_handshakes', node_id: idb }, challenge.pollHandshakes(idb)));
    assert.deepEqual(empty.requests, []);

    const t1 = performance.now();
    const resp = await cb.request(
      signed(b, { type: 'respond_handshake', node_id: idb, peer_id: ida, accept: true }, challenge.respondHandshake(idb, ida)),
    );
    assert.deepEqual(resp, { type: 'respond_handshake_ok', accept: true, peer_id: ida });
    const pr = await ca.push((m) => m.type === 'push_handshake_response');
    console.log(`# handshake response push latency: ${(performance.now() - t1).toFixed(2)} ms`);
    assert.equal(pr.peer_id, idb);
    assert.equal(pr.accept, true);
    // Accepting a real request makes trust mutual: both resolve each other.
    for (const [who, req2, tgt] of [[a, ida, idb], [b, idb, ida]] as const) {
      const r = await ca.request(signed(who, { type: 'resolve', node_id: tgt, requester_id: req2 }, challenge.resolve(req2, tgt)));
      assert.equal(r.type, 'resolve_ok');
    }
    const pollA = await ca.request(signed(a, { type: 'poll_handshakes', node_id: ida }, challenge.pollHandshakes(ida)));
    assert.equal((pollA.responses as unknown[]).length, 1);
    // Revocation is pushed too.
    await cb.request(signed(b, { type: 'revoke_trust', node_id: idb, peer_id: ida }, challenge.revokeTrust(idb, ida)));
    const rv = await ca.push((m) => m.type === 'push_trust_revoked');
    assert.equal(rv.node_id, idb);
    ca.close();
    cb.close();
  } finally {
    await server.close();
  }
});

test('replay-safe signatures: replayed nonce, stale ts, wrong challenge are refused; original style still verified', async () => {
  let nowMs = Date.now();
  const { server, port } = await startServer({ nowMs: () => nowMs });
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const id = await register(c, a);
    const hb = fresh(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id), Math.floor(nowMs / 1000));
    assert.equal((await c.request(hb)).type, 'heartbeat_ok');
    const replay = await c.request(hb);
    assert.equal(replay.type, 'error');
    assert.match(String(replay.error), /replay/);
    const stale = fresh(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id), Math.floor(nowMs / 1000) - 61);
    assert.match(String((await c.request(stale)).error), /stale/);
    const future = fresh(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id), Math.floor(nowMs / 1000) + 61);
    assert.equal((await c.request(future)).type, 'error');
    // Signed over the bare challenge but sent with ts/nonce: refused.
    const mixed = { ...signed(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id)), ts: Math.floor(nowMs / 1000), nonce: 'AAAAAAAAAAAAAAAAAAAAAA==' };
    assert.equal((await c.request(mixed)).type, 'error');
    // Short nonce refused.
    const shortNonce = fresh(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id), Math.floor(nowMs / 1000), 'AAAA');
    assert.equal((await c.request(shortNonce)).type, 'error');
    // Original style: accepted, and verified.
    const orig = signed(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id));
    assert.equal((await c.request(orig)).type, 'heartbeat_ok');
    assert.equal((await c.request(orig)).type, 'heartbeat_ok', 'the original protocol cannot tell a replay');
    assert.equal((await c.request({ type: 'heartbeat', node_id: id })).type, 'error', 'unsigned');
    assert.equal((await c.request({ ...orig, signature: newIdentity().sign(challenge.heartbeat(id)) })).type, 'error');
    // After the window the nonce cache may forget: the ts check alone refuses it.
    nowMs += 200_000;
    await server.sweepNow();
    assert.equal((await c.request(hb)).type, 'error');
    c.close();
  } finally {
    await server.close();
  }
});

test('requireFreshSignatures refuses original-style signatures', async () => {
  const { server, port } = await startServer({ requireFreshSignatures: true });
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    assert.equal((await c.request({ type: 'register', listen_addr: ':1', public_key: a.publicKeyB64 })).type, 'error', 'unsigned register');
    const id = await registerOurs(c, a);
    assert.equal((await c.request(signed(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id)))).type, 'error');
    assert.equal((await c.request(fresh(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id)))).type, 'heartbeat_ok');
    c.close();
  } finally {
    await server.close();
  }
});

test('oversized, non-JSON and non-object frames close only that client', async () => {
  const { server, port } = await startServer();
  try {
    const good = await RawClient.connect(port);
    const a = newIdentity();
    const id = await register(good, a);
    const bads: Uint8Array[] = [
      Uint8Array.from([0x00, 0x20, 0x00, 0x00]), // 2 MiB length
      Uint8Array.from([0, 0, 0, 3, 0x7b, 0x7b, 0x7b]), // "{{{"
      Uint8Array.from([0, 0, 0, 2, 0x5b, 0x5d]), // "[]"
      Uint8Array.from([0, 0, 0, 1, 0xff]), // not UTF-8
    ];
    for (const b of bads) {
      const bad = await RawClient.connect(port);
      bad.sendRaw(b);
      await bad.closed;
    }
    // A frame without a type is answered with an error, not a close (as the original).
    const untyped = await RawClient.connect(port);
    assert.equal((await untyped.request({ hello: 1 })).type, 'error');
    untyped.close();
    // Slow, byte-by-byte delivery still works.
    const slow = await RawClient.connect(port);
    const frame = Buffer.from([0, 0, 0, 29, ...Buffer.from('{"type":"lookup","node_id":1}')]);
    for (const byte of frame) slow.sendRaw(Uint8Array.of(byte));
    assert.equal((await slow.reply()).type, 'lookup_ok');
    slow.close();
    assert.equal((await good.request(signed(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id)))).type, 'heartbeat_ok');
    assert.equal(server.stats.closedForBadFrames, 4);
    good.close();
  } finally {
    await server.close();
  }
});

test('pipelined requests are answered in order', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const ids = Array.from({ length: 20 }, () => newIdentity());
    for (const i of ids) c.send({ type: 'register', listen_addr: ':1', public_key: i.publicKeyB64 });
    for (let n = 0; n < ids.length; n++) assert.equal((await c.reply()).node_id, n + 1);
    c.close();
  } finally {
    await server.close();
  }
});

test('stale nodes are reaped; the key re-gets its id; misc original messages', async () => {
  let nowMs = Date.now();
  const { server, port } = await startServer({ nowMs: () => nowMs, staleNodeMs: 1000 });
  try {
    const c = await RawClient.connect(port);
    const a = newIdentity();
    const id = await register(c, a);
    nowMs += 5000;
    await server.sweepNow();
    assert.equal((await c.request({ type: 'lookup', node_id: id })).type, 'error');
    assert.equal(await register(c, a), id);
    assert.equal((await c.request({ type: 'list_nodes', network_id: 0 })).type, 'error');
    assert.equal((await c.request({ type: 'list_networks' })).type, 'list_networks_ok');
    assert.equal((await c.request({ type: 'create_network', name: 'x' })).type, 'error');
    // update_polo_score stays open for legacy nodes (original daemons send it for peers).
    assert.equal((await c.request({ type: 'update_polo_score', node_id: id, delta: 3 })).polo_score, 3);
    assert.equal((await c.request({ type: 'get_polo_score', node_id: id })).polo_score, 3);
    // Unauthenticated absolute writes and beacon announcements are refused (they used to be accepted from anyone).
    assert.equal((await c.request({ type: 'set_polo_score', node_id: id, polo_score: 99 })).type, 'error');
    assert.equal((await c.request({ type: 'get_polo_score', node_id: id })).polo_score, 3);
    assert.equal((await c.request({ type: 'beacon_register', beacon_id: 7, addr: '127.0.0.1:1' })).type, 'error');
    assert.deepEqual((await c.request({ type: 'beacon_list' })).beacons, []);
    assert.equal((await c.request({ type: 'nope' })).type, 'error');
    const b = newIdentity();
    // The original's bare rotate signature is refused: it replays onto any new key.
    const bare = await c.request({ type: 'rotate_key', node_id: id, new_public_key: b.publicKeyB64, signature: a.sign(`rotate:${id}`) });
    assert.equal(bare.type, 'error');
    const text = bound.rotateKey(id, b.publicKeyB64);
    const rotMsg = fresh(a, { type: 'rotate_key', node_id: id, new_public_key: b.publicKeyB64 }, text);
    const rot = await c.request({ ...rotMsg, new_key_signature: b.sign(withFreshness(text, rotMsg.ts as number, rotMsg.nonce as string)) });
    assert.equal(rot.type, 'rotate_key_ok');
    assert.equal(await register(c, b), id);
    c.close();
  } finally {
    await server.close();
  }
});

test('fuzz: 300 connections of random bytes and random JSON never harm a well-behaved client', async () => {
  const { Rng, seedFromEnv } = await import('../../../src/core/rng.js');
  const seed = seedFromEnv();
  const rng = new Rng(seed);
  const { server, port } = await startServer();
  try {
    const good = await RawClient.connect(port);
    const a = newIdentity();
    const id = await register(good, a);
    const types = ['register', 'lookup', 'resolve', 'set_hostname', 'heartbeat', 'poll_handshakes', 'request_handshake', 'respond_handshake', 'punch', 'subscribe_push', 'set_tags', 'revoke_trust', 'rotate_key', 'update_polo_score'];
    const junkValue = (): unknown => {
      switch (rng.int(7)) {
        case 0: return rng.int(5);
        case 1: return -rng.int(1e9);
        case 2: return 'x'.repeat(rng.int(100));
        case 3: return null;
        case 4: return [rng.int(3), 'a'];
        case 5: return { __proto__: { polluted: true }, nested: rng.int(9) };
        default: return rng.chance(0.5);
      }
    };
    for (let i = 0; i < 300; i++) {
      const c = await RawClient.connect(port);
      if (rng.chance(0.5)) {
        const buf = new Uint8Array(1 + rng.int(200));
        rng.fill(buf);
        c.sendRaw(buf);
      } else {
        const msg: Record<string, unknown> = { type: types[rng.int(types.length)] };
        for (const k of ['node_id', 'requester_id', 'peer_id', 'to_node_id', 'from_node_id', 'hostname', 'tags', 'signature', 'ts', 'nonce', 'public_key', 'delta', 'accept']) {
          if (rng.chance(0.4)) msg[k] = junkValue();
        }
        c.send(msg);
        const r = await c.reply().catch(() => null);
        if (r) assert.equal(typeof r.type, 'string');
      }
      c.close();
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((await good.request(signed(a, { type: 'heartbeat', node_id: id }, challenge.heartbeat(id)))).type, 'heartbeat_ok');
    good.close();
  } catch (e) {
    console.log(`fuzz seed: PILOT_SEED=${seed}`);
    throw e;
  } finally {
    await server.close();
  }
});

test('lookup_ok names the suite: v0.5 for a node an original client registered, noise for ours (dial without the Noise wait, no downgrade)', async () => {
  const { server, port } = await startServer();
  try {
    const c = await RawClient.connect(port);
    const original = newIdentity();
    const ours = newIdentity();
    const idOriginal = await register(c, original); // bare (unsigned) register: an original client
    const idOurs = await registerOurs(c, ours);
    const lo = await c.request({ type: 'lookup', node_id: idOriginal });
    assert.equal(lo.type, 'lookup_ok');
    assert.equal(lo.suite, 'v0.5');
    // Our node is private: it looks itself up (an identified lookup).
    const lookOurs = () => c.request(fresh(ours, { type: 'lookup', node_id: idOurs, requester_id: idOurs }, challenge.lookup(idOurs, idOurs)));
    const lu = await lookOurs();
    assert.equal(lu.type, 'lookup_ok');
    assert.equal(lu.suite, 'noise');
    // An original client re-registering our node's key cannot turn it into a v0.5 node.
    await c.request({ type: 'register', listen_addr: '127.0.0.1:4000', public_key: ours.publicKeyB64 });
    assert.equal((await lookOurs()).suite, 'noise');
    c.close();
  } finally {
    await server.close();
  }
});
