// src/node/peers/resolver.ts with a fake registry and trust store: a pinned trusted hostname, identity_changed,
// not_found, and the suite cache's expiry in injected time.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ok, err, type Result } from '../../../src/core/result.js';
import { ManualClock } from '../../../src/core/clock.js';
import { PeerResolver, SUITE_CACHE_US } from '../../../src/node/peers/resolver.js';
import { parseReachableEndpoint } from '../../../src/wire/endpoint.js';
import type { LookupResult, ResolveHostnameResult, ResolveResult } from '../../../src/node/registry-client.js';
import type { TrustedPeer, IncomingRequest } from '../../../src/node/trust/store.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');

function world() {
  const clock = new ManualClock(1_000_000);
  const trusted = new Map<number, TrustedPeer>();
  const pending = new Map<number, IncomingRequest>();
  const names = new Map<string, number>();
  const nodes = new Map<number, Partial<LookupResult> & { realAddr?: string }>();
  const calls = { lookup: 0, resolveHostname: 0 };
  let isDown = false;
  const resolver = new PeerResolver({
    registry: {
      lookup: async (id): Promise<Result<LookupResult>> => {
        calls.lookup++;
        if (isDown) return err('timeout', 'registry down');
        const n = nodes.get(id);
        if (!n) return err('not_found', `node ${id} not found`);
        return ok({ nodeId: id, address: `0:0000.0000.${id}`, publicKey: n.publicKey ?? KEY_A, isPublic: false, poloScore: 0, taskExec: false, ...n } as LookupResult);
      },
      resolve: async (id): Promise<Result<ResolveResult>> => {
        if (isDown) return err('timeout', 'registry down');
        const n = nodes.get(id);
        return n?.realAddr ? ok({ nodeId: id, realAddr: n.realAddr, realEndpoint: parseReachableEndpoint(n.realAddr) ?? undefined }) : err('not_found', 'no endpoint');
      },
      resolveHostname: async (h): Promise<Result<ResolveHostnameResult>> => {
        calls.resolveHostname++;
        if (isDown) return err('timeout', 'registry down');
        const id = names.get(h);
        return id === undefined ? err('not_found', `no node named ${h}`) : ok({ nodeId: id, address: '', hostname: h, isPublic: false });
      },
    },
    trust: {
      getTrusted: (id) => trusted.get(id),
      listTrusted: () => [...trusted.values()],
      getPending: (id) => pending.get(id),
    },
    clock,
    knownEndpoint: () => null,
    isNoiseUp: () => false,
    isLegacyEnabled: true,
    isRelayOnly: false,
    isPublic: () => false,
  });
  const pin = (id: number, hostname: string, key = KEY_A) =>
    trusted.set(id, { node_id: id, public_key: key, hostname, approved_at: new Date(0).toISOString(), mutual: true });
  return { resolver, clock, trusted, pending, names, nodes, calls, down: (v: boolean) => void (isDown = v), pin };
}

test('ids and addresses resolve without the registry; bad refs are invalid_argument', async () => {
  const w = world();
  assert.deepEqual(await w.resolver.resolveRef('7'), ok(7));
  assert.deepEqual(await w.resolver.resolveRef('0:0000.0000.0009'), ok(9));
  assert.equal((await w.resolver.resolveRef('Not A Name')).ok, false);
  const big = await w.resolver.resolveRef('99999999999');
  assert.equal(!big.ok && big.error.code, 'invalid_argument');
  assert.equal(w.calls.resolveHostname, 0);
});

test('a pinned trusted hostname resolves from its pin, also while the registry is down or has forgotten it', async () => {
  const w = world();
  w.pin(5, 'alice');
  w.names.set('alice', 5);
  assert.deepEqual(await w.resolver.resolveRef('alice'), ok(5));
  w.names.delete('alice');
  assert.deepEqual(await w.resolver.resolveRef('alice'), ok(5), 'the registry no longer knows the name');
  w.down(true);
  assert.deepEqual(await w.resolver.resolveRef('alice'), ok(5), 'registry unreachable');
  assert.equal(w.resolver.hostnameOf(5), 'alice');
});

test('identity_changed: the registry maps a pinned name to another node, or holds another key for the pin', async () => {
  const w = world();
  w.pin(5, 'alice');
  w.names.set('alice', 6);
  const r = await w.resolver.resolveRef('alice');
  assert.equal(!r.ok && r.error.code, 'identity_changed');
  assert.equal(!r.ok && (r.error.detail as { pinned_node_id: number }).pinned_node_id, 5);
  w.nodes.set(5, { publicKey: KEY_B, realAddr: '10.0.0.5:4000' });
  const c = await w.resolver.contactOf(5);
  assert.equal(!c.ok && c.error.code, 'identity_changed', 'nothing is sent to a key that is not the pin');
  w.nodes.set(5, { publicKey: KEY_A, realAddr: '10.0.0.5:4000' });
  const same = await w.resolver.contactOf(5);
  assert.ok(same.ok);
  assert.deepEqual(same.value.endpoints, [{ ip: '10.0.0.5', port: 4000 }]);
  assert.equal(Buffer.from(same.value.ed25519).toString('base64'), KEY_A);
});

test('not_found: an unknown hostname, and an unknown node; learned names answer only while the registry is down', async () => {
  const w = world();
  const r = await w.resolver.resolveRef('nobody');
  assert.equal(!r.ok && r.error.code, 'not_found');
  const c = await w.resolver.contactOf(77);
  assert.equal(!c.ok && c.error.code, 'not_found');
  w.names.set('bob', 8);
  assert.deepEqual(await w.resolver.resolveRef('bob'), ok(8));
  w.names.delete('bob');
  const gone = await w.resolver.resolveRef('bob');
  assert.equal(!gone.ok && gone.error.code, 'not_found', 'the registry says no: the learned name does not answer');
  w.down(true);
  assert.deepEqual(await w.resolver.resolveRef('bob'), ok(8), 'registry unreachable: the learned name answers');
});

test('the suite cache: reused for 30 s of injected time, then asked again', async () => {
  const w = world();
  w.nodes.set(3, { suite: 'v0.5' });
  assert.equal(await w.resolver.dialPlanFor(3), 'v0.5');
  assert.equal(w.calls.lookup, 1);
  w.nodes.set(3, { suite: 'noise' });
  w.clock.advance(SUITE_CACHE_US - 1);
  assert.equal(await w.resolver.dialPlanFor(3), 'v0.5', 'cached');
  assert.equal(w.calls.lookup, 1);
  w.clock.advance(1);
  assert.equal(await w.resolver.dialPlanFor(3), 'noise', 'expired: asked again');
  assert.equal(w.calls.lookup, 2);
  w.nodes.delete(4);
  assert.equal(await w.resolver.dialPlanFor(4), 'noise-then-v0.5', 'nobody said');
});

test('authorize: a pin with the same key, else only a public node with the registry agreeing', async () => {
  const w = world();
  w.pin(5, 'alice');
  assert.ok((await w.resolver.authorize(5, Buffer.from(KEY_A, 'base64'))).ok);
  assert.equal((await w.resolver.authorize(5, Buffer.from(KEY_B, 'base64'))).ok, false);
  w.nodes.set(6, { publicKey: KEY_B });
  assert.equal((await w.resolver.authorize(6, Buffer.from(KEY_B, 'base64'))).ok, false, 'private: strangers refused');
});

test('peerKey: the registry key (learning the hostname), else the request key', async () => {
  const w = world();
  w.nodes.set(9, { publicKey: KEY_B, hostname: 'carol' });
  assert.deepEqual(await w.resolver.peerKey(9), ok(KEY_B));
  assert.equal(w.resolver.hostnameOf(9), 'carol');
  w.pending.set(10, { node_id: 10, justification: '', hostname: null, public_key: KEY_A, received_at: '' });
  assert.deepEqual(await w.resolver.peerKey(10), ok(KEY_A));
  assert.equal((await w.resolver.peerKey(11)).ok, false);
});
