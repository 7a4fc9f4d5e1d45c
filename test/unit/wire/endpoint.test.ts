// One parser each (issue 11): host:port text, reachable endpoints, hostnames, relay framing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/rng.js';
import {
  formatEndpoint,
  formatHostPort,
  parseHostPort,
  parseReachableEndpoint,
  sameEndpoint,
} from '../../../src/wire/endpoint.js';
import { hostnameProblem, isHostname, parseHostname } from '../../../src/wire/hostname.js';
import {
  RELAY_HEADER_BYTES,
  decodeBeaconMessage,
  encodeBeaconMessage,
  unwrapRelayDeliver,
  wrapRelay,
  writeRelayDeliver,
  writeRelayHeader,
} from '../../../src/wire/beacon-message.js';

test('parseHostPort: host:port, [v6]:port, :port; refuses the rest', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9000'), { ok: true, value: { host: '127.0.0.1', port: 9000 } });
  assert.deepEqual(parseHostPort('rendezvous.example:9001'), { ok: true, value: { host: 'rendezvous.example', port: 9001 } });
  assert.deepEqual(parseHostPort('[::1]:9000'), { ok: true, value: { host: '::1', port: 9000 } });
  assert.deepEqual(parseHostPort(':9000'), { ok: true, value: { host: '', port: 9000 } });
  assert.deepEqual(parseHostPort(':9000', { defaultHost: '0.0.0.0' }), { ok: true, value: { host: '0.0.0.0', port: 9000 } });
  assert.deepEqual(parseHostPort('0.0.0.0:0'), { ok: true, value: { host: '0.0.0.0', port: 0 } });
  for (const bad of ['', '9000', 'host', 'host:', 'host:65536', 'host:-1', 'host:9x', '::1:9000', '[]:1', '[host]:1', 'a:b:1', 'x'.repeat(400) + ':1']) {
    const r = parseHostPort(bad);
    assert.equal(r.ok, false, bad);
    assert.equal(!r.ok && r.error.code, 'invalid_argument');
  }
  assert.equal(parseHostPort('h:0', { minPort: 1 }).ok, false);
  assert.equal(formatHostPort('::1', 5), '[::1]:5');
  assert.equal(formatEndpoint({ ip: '1.2.3.4', port: 5 }), '1.2.3.4:5');
  assert.ok(sameEndpoint({ ip: '1.2.3.4', port: 5 }, { ip: '1.2.3.4', port: 5 }));
  assert.ok(!sameEndpoint({ ip: '1.2.3.4', port: 5 }, null));
});

test('parseReachableEndpoint: IPv4 endpoints from the registry/beacon; wildcard → loopback; null otherwise', () => {
  assert.deepEqual(parseReachableEndpoint('203.0.113.9:4000'), { ip: '203.0.113.9', port: 4000 });
  assert.deepEqual(parseReachableEndpoint('0.0.0.0:4000'), { ip: '127.0.0.1', port: 4000 });
  assert.deepEqual(parseReachableEndpoint(':4000'), { ip: '127.0.0.1', port: 4000 });
  for (const bad of ['[::1]:4000', 'host.example:4000', '1.2.3.4:0', '1.2.3.256:1', '1.2.3:1', '']) assert.equal(parseReachableEndpoint(bad), null, bad);
});

test('host:port parsers are total on random text', () => {
  const seed = seedFromEnv();
  const rng = new Rng(seed);
  const alphabet = '0123456789abcdef:.[]- %x';
  for (let i = 0; i < 5000; i++) {
    let s = '';
    for (let n = rng.int(24); n > 0; n--) s += alphabet[rng.int(alphabet.length)];
    const r = parseHostPort(s);
    if (r.ok) assert.ok(r.value.port >= 0 && r.value.port <= 65535, `seed ${seed}: ${s}`);
    const e = parseReachableEndpoint(s);
    if (e) assert.ok(e.port >= 1 && /^\d+\.\d+\.\d+\.\d+$/.test(e.ip), `seed ${seed}: ${s}`);
  }
});

test('hostnames: one rule for flags, the API and the registry', () => {
  for (const good of ['a', 'agent-alpha', 'x'.repeat(63), '0-9']) assert.ok(isHostname(good) && parseHostname(good).ok, good);
  for (const bad of ['', 'UPPER', '-a', 'a-', 'a_b', 'x'.repeat(64), 'a.b']) {
    const r = parseHostname(bad);
    assert.equal(!r.ok && r.error.code, 'invalid_argument', bad);
  }
  assert.equal(hostnameProblem('localhost'), 'hostname "localhost" is reserved');
  assert.equal(hostnameProblem('x'.repeat(64)), 'hostname too long (max 63 chars)');
  assert.equal(hostnameProblem('ok-name'), null);
});

test('relay framing: the in-place writers and the codec produce the same bytes', () => {
  const frame = new Uint8Array([1, 2, 3, 4]);
  const wrapped = wrapRelay(7, 0xfffffffe, frame);
  assert.ok(wrapped.ok);
  const inPlace = new Uint8Array(RELAY_HEADER_BYTES + frame.length);
  writeRelayHeader(inPlace, 0, 7, 0xfffffffe);
  inPlace.set(frame, RELAY_HEADER_BYTES);
  assert.deepEqual(inPlace, wrapped.value);
  const d = decodeBeaconMessage(inPlace);
  assert.ok(d.ok && d.value.kind === 'relay' && d.value.senderNodeId === 7 && d.value.destNodeId === 0xfffffffe);
  const deliver = new Uint8Array(5 + frame.length);
  writeRelayDeliver(deliver, 7, frame);
  const enc = encodeBeaconMessage({ kind: 'relay_deliver', senderNodeId: 7, payload: frame });
  assert.ok(enc.ok);
  assert.deepEqual(deliver, enc.value);
  assert.deepEqual(unwrapRelayDeliver(deliver), { senderNodeId: 7, frame });
  assert.equal(unwrapRelayDeliver(inPlace), null);
});
