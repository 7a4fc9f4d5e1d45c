// The signed strings of registry requests, pinned byte for byte (README "Security model" documents them), and
// the decoder's memory accounting.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  EXTENSION_FRESH_SIGNATURES,
  REGISTRY_CHUNK_OVERHEAD_BYTES,
  REGISTRY_EXTENSIONS,
  RegistryFrameDecoder,
  bound,
  challenge,
  withFreshness,
} from '../../../src/wire/registry-frame.js';

test('registry signed strings: original challenges unchanged, field-covering ones exact', () => {
  // The original's (bare) challenges: what original clients sign.
  assert.equal(challenge.heartbeat(7), 'heartbeat:7');
  assert.equal(challenge.setHostname(7), 'set_hostname:7');
  assert.equal(challenge.respondHandshake(7, 9), 'respond:7:9');
  assert.equal(challenge.rotateKey(7), 'rotate:7');
  // Ours, always followed by :<ts>:<nonce>.
  const pk = 'S/D/zjappVFOydA/bCLjWGnuXmepq4Ws/VUC17H6n54=';
  assert.equal(bound.register(pk, 'alice', '10.0.0.2:4000'), `register:${pk}:alice:10.0.0.2:4000`);
  assert.equal(bound.register(pk, '', '[::1]:4000'), `register:${pk}::[::1]:4000`);
  assert.equal(bound.setHostname(7, 'alice'), 'set_hostname:7:alice');
  assert.equal(bound.setTags(7, ['web', 'gpu']), 'set_tags:7:web,gpu');
  assert.equal(bound.setTags(7, []), 'set_tags:7:');
  assert.equal(bound.setVisibility(7, true), 'set_visibility:7:public');
  assert.equal(bound.setVisibility(7, false), 'set_visibility:7:private');
  assert.equal(bound.setTaskExec(7, true), 'set_task_exec:7:enabled');
  assert.equal(bound.setTaskExec(7, false), 'set_task_exec:7:disabled');
  const j = 'hi: it is me';
  assert.equal(bound.requestHandshake(7, 9, j), `handshake:7:9:${createHash('sha256').update(j).digest('hex')}`);
  assert.equal(bound.respondHandshake(7, 9, true), 'respond:7:9:accept');
  assert.equal(bound.respondHandshake(7, 9, false), 'respond:7:9:reject');
  assert.equal(bound.rotateKey(7, pk), `rotate:7:${pk}`);
  assert.equal(bound.resolveHostname(7, 'bob'), 'resolve_hostname:7:bob');
  assert.equal(withFreshness(bound.setHostname(7, 'a'), 1700000000, 'AAAAAAAAAAA='), 'set_hostname:7:a:1700000000:AAAAAAAAAAA=');
  assert.ok(REGISTRY_EXTENSIONS.includes(EXTENSION_FRESH_SIGNATURES));
});

test('registry frame decoder: pendingCost counts bytes and chunks; clear() drops them; complete frames leave nothing', () => {
  const d = new RegistryFrameDecoder();
  const body = Buffer.from('{"type":"x"}');
  const frame = Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
  const r = d.push(frame);
  assert.ok(r.ok && r.value.length === 1);
  assert.equal(d.pendingCost, 0);
  assert.ok(d.push(frame.subarray(0, 6)).ok);
  assert.ok(d.push(frame.subarray(6, 8)).ok);
  assert.equal(d.pendingCost, 8 + 2 * REGISTRY_CHUNK_OVERHEAD_BYTES);
  const done = d.push(frame.subarray(8));
  assert.ok(done.ok && done.value.length === 1);
  assert.equal(d.pendingCost, 0);
  assert.ok(d.push(frame.subarray(0, 5)).ok);
  d.clear();
  assert.equal(d.pendingBytes, 0);
  const again = d.push(frame);
  assert.ok(again.ok && again.value.length === 1, 'usable after clear');
});
