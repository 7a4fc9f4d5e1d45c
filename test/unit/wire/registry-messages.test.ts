// Typed registry messages (src/wire/registry-messages.ts): decoders are total on hostile objects and read
// missing or mistyped fields as the original's zero values; endpoints in replies arrive parsed.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/rng.js';
import type { RegistryMessage } from '../../../src/wire/registry-frame.js';
import {
  decodeErrorReply,
  decodeHeartbeatOk,
  decodeLookupOk,
  decodePollHandshakesOk,
  decodePunchOk,
  decodePush,
  decodeRegisterOk,
  decodeRegistryRequest,
  decodeResolveHostnameOk,
  decodeResolveOk,
  decodeSetTagsOk,
} from '../../../src/wire/registry-messages.js';

const decoders = [
  decodeErrorReply,
  decodeHeartbeatOk,
  decodeLookupOk,
  decodePollHandshakesOk,
  decodePunchOk,
  decodePush,
  decodeRegisterOk,
  decodeRegistryRequest,
  decodeResolveHostnameOk,
  decodeResolveOk,
  decodeSetTagsOk,
];

test('registry replies: typed fields, endpoints parsed at the edge', () => {
  const r = decodeResolveOk({ type: 'resolve_ok', node_id: 5, real_addr: '203.0.113.9:4000', observed_addr: '198.51.100.2:5000', lan_addr: '[::1]:1' });
  assert.ok(r.ok);
  assert.deepEqual(r.value, {
    nodeId: 5,
    realAddr: '203.0.113.9:4000',
    realEndpoint: { ip: '203.0.113.9', port: 4000 },
    observedAddr: '198.51.100.2:5000',
    observedEndpoint: { ip: '198.51.100.2', port: 5000 },
    lanAddr: '[::1]:1',
  });
  const reg = decodeRegisterOk({ type: 'register_ok', node_id: 1, address: '0:0000.0000.0001', public_key: 'k', extensions: ['x', 3] });
  assert.ok(reg.ok);
  assert.deepEqual(reg.value, { nodeId: 1, address: '0:0000.0000.0001', publicKey: 'k', extensions: ['x'] });
  const e = decodeErrorReply({ type: 'error', error: 'stale', code: 'invalid_argument', server_time: 1700000000 });
  assert.deepEqual(e, { ok: true, value: { error: 'stale', code: 'invalid_argument', serverTimeSec: 1700000000 } });
  assert.deepEqual(decodeErrorReply({ type: 'error', error: 'x', code: 'made_up' }), { ok: true, value: { error: 'x' } });
  const push = decodePush({ type: 'push_handshake_response', peer_id: 9, accept: true, timestamp: 3 });
  assert.deepEqual(push, { ok: true, value: { kind: 'handshake_response', response: { fromNodeId: 9, accept: true, timestampSec: 3 } } });
  assert.equal(decodePush({ type: 'push_unknown' }).ok, false);
});

test('registry requests: the original zero values for missing or mistyped fields', () => {
  const r = decodeRegistryRequest({ type: 'lookup', node_id: -1, requester_id: 'x', tags: 'no', delta: Infinity, ts: 1.5 });
  assert.ok(r.ok);
  assert.equal(r.value.nodeId, 0);
  assert.equal(r.value.requesterId, 0);
  assert.equal(r.value.hasRequesterId, true);
  assert.deepEqual(r.value.tags, []);
  assert.equal(r.value.delta, null);
  assert.equal(r.value.signed.hasTs, true);
  assert.equal(r.value.signed.ts, null);
  assert.equal(r.value.signed.hasSignature, false);
});

test('registry message decoders are total on random objects', () => {
  const seed = seedFromEnv();
  const rng = new Rng(seed);
  const keys = ['type', 'node_id', 'requester_id', 'real_addr', 'observed_addr', 'tags', 'requests', 'responses', 'extensions', 'code', 'server_time', 'ts', 'nonce', 'signature', 'delta', 'public', 'hostname', 'from_node_id', 'peer_id'];
  const values: unknown[] = [null, true, false, 0, -1, 1.5, 2 ** 40, NaN, '', 'x', '1.2.3.4:5', ':0', '[::1]:1', [], [1, 'a', {}], [{ from_node_id: 1, accept: 'yes' }], {}, { nested: [] }, 'push_handshake_request', 'error', 'internal'];
  for (let i = 0; i < 3000; i++) {
    const msg: RegistryMessage = {};
    for (let n = rng.int(8); n > 0; n--) msg[keys[rng.int(keys.length)]!] = values[rng.int(values.length)];
    for (const d of decoders) {
      const r = d(msg);
      assert.equal(typeof r.ok, 'boolean', `seed ${seed}`);
    }
  }
});
