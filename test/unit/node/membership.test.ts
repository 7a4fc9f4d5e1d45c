// src/node/membership.ts with a fake registry: registration and directory state, re-registration, and the
// registry's trust events handed to the trust state machine as its events.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ok, err, type Result } from '../../../src/core/result.js';
import { silentLogger } from '../../../src/core/logger.js';
import { generateIdentity } from '../../../src/crypto/identity.js';
import { Membership } from '../../../src/node/membership.js';
import type { RegistryEvent } from '../../../src/node/registry-client.js';
import type { TrustEvent } from '../../../src/node/trust/transitions.js';

function fixture(opts: { hostname?: string | null; isPublic?: boolean; hostnameResult?: Result<{ hostname: string }> } = {}) {
  const calls: string[] = [];
  const trustEvents: Array<[number, TrustEvent | 'request', unknown?]> = [];
  let listener: ((e: RegistryEvent) => void) | null = null;
  let registered = 0;
  const m = new Membership({
    registry: {
      on: (l) => ((listener = l), () => {}),
      connect: async () => ok(),
      register: async (listen) => {
        calls.push(`register ${listen}`);
        return ok({ nodeId: 11, address: '0:0000.0000.000B', publicKey: '' });
      },
      prepareRegistration: (listen) => void calls.push(`prepare ${listen}`),
      setHostname: async (h) => (calls.push(`hostname ${h}`), opts.hostnameResult ?? ok({ hostname: h })),
      setVisibility: async (p) => (calls.push(`public ${p}`), ok({ isPublic: p })),
      setTags: async (t) => (calls.push(`tags ${t.join(',')}`), ok({ tags: t })),
      deregister: async () => (calls.push('deregister'), ok()),
    },
    identity: generateIdentity(),
    logger: silentLogger(),
    registryAddr: '127.0.0.1:9000',
    registryHost: '127.0.0.1',
    hostname: opts.hostname ?? null,
    isPublic: opts.isPublic ?? false,
    listenAddress: () => ({ ip: '0.0.0.0', port: 4000 }),
    trust: {
      requestReceived: async (id, input) => (trustEvents.push([id, 'request', input]), ok(null)),
      apply: async (id, e) => (trustEvents.push([id, e]), ok(null)),
    },
    onRegistered: () => void registered++,
  });
  return { m, calls, trustEvents, emit: (e: RegistryEvent) => listener!(e), registered: () => registered };
}

test('start registers (a wildcard bind advertises the loopback for a loopback registry) and pushes the directory state', async () => {
  const f = fixture({ hostname: 'alice', isPublic: true });
  assert.equal(f.m.requireRegistered().ok, false, 'not registered yet');
  assert.ok((await f.m.start()).ok);
  assert.deepEqual(f.calls, ['register 127.0.0.1:4000', 'hostname alice', 'public true']);
  assert.equal(f.m.nodeId, 11);
  assert.equal(f.m.isRegistryUp, true);
  assert.ok(f.m.requireRegistered().ok);
});

test('a hostname someone else holds fails the start (already_exists)', async () => {
  const f = fixture({ hostname: 'taken', hostnameResult: err('already_exists', 'taken') });
  const r = await f.m.start();
  assert.equal(!r.ok && r.error.code, 'already_exists');
});

test('re-registration re-applies the state and re-learns the endpoint; a disconnect marks the registry down', async () => {
  const f = fixture({ hostname: 'alice' });
  assert.ok((await f.m.start()).ok);
  assert.ok((await f.m.setTags(['gpu'])).ok);
  f.calls.length = 0;
  f.emit({ kind: 'disconnected', error: 'gone' });
  assert.equal(f.m.isRegistryUp, false);
  f.emit({ kind: 'registered', result: { nodeId: 11, address: '0:0000.0000.000B', publicKey: '' } });
  await new Promise((r) => setImmediate(r));
  assert.equal(f.m.isRegistryUp, true);
  assert.equal(f.registered(), 1);
  assert.deepEqual(f.calls, ['hostname alice', 'tags gpu']);
});

test('the registry trust events become the trust machine events', async () => {
  const f = fixture();
  assert.ok((await f.m.start()).ok);
  f.emit({ kind: 'handshake_request', via: 'push', request: { fromNodeId: 5, justification: 'hi', timestampSec: 0, fromHostname: 'bob' } });
  f.emit({ kind: 'handshake_response', via: 'poll', response: { fromNodeId: 6, accept: true, timestampSec: 0 } });
  f.emit({ kind: 'handshake_response', via: 'poll', response: { fromNodeId: 7, accept: false, timestampSec: 0 } });
  f.emit({ kind: 'trust_revoked', byNodeId: 8, timestampSec: 0 });
  assert.deepEqual(f.trustEvents, [
    [5, 'request', { justification: 'hi', hostname: 'bob', publicKey: null }],
    [6, 'response_accept'],
    [7, 'response_reject'],
    [8, 'revoked'],
  ]);
});

test('directory changes need a registration and a valid hostname', async () => {
  const f = fixture();
  const early = await f.m.setVisibility(true);
  assert.equal(!early.ok && early.error.code, 'connection_failed');
  assert.ok((await f.m.start()).ok);
  const bad = await f.m.setHostname('Not Valid');
  assert.equal(!bad.ok && bad.error.code, 'invalid_argument');
  assert.ok((await f.m.setHostname('carol')).ok);
  assert.equal(f.m.hostname, 'carol');
  assert.ok((await f.m.clearHostname()).ok);
  assert.equal(f.m.hostname, null);
});
