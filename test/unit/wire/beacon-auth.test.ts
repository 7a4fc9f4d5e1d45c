// The beacon's authentication trailer (issue 10): [u64 counter][HMAC-SHA256(token, …) truncated to 16],
// appended after the original's fixed part, so an original beacon/daemon still reads the message.
// Seeded: PILOT_SEED=<seed> replays the fuzz.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/rng.js';
import {
  BEACON_AUTH_TRAILER_BYTES,
  BEACON_TOKEN_BYTES,
  decodeBeaconMessage,
  encodeAuthenticatedBeaconMessage,
  encodeBeaconMessage,
  verifyBeaconAuth,
  type BeaconMessage,
} from '../../../src/wire/beacon-message.js';

const TOKEN = new Uint8Array(BEACON_TOKEN_BYTES).fill(7);
const OTHER = new Uint8Array(BEACON_TOKEN_BYTES).fill(8);
const COUNTER = 1_790_000_000_000_000; // µs since the epoch, about 2026

test('beacon auth: discover, punch request and punch command round-trip with a verifying MAC', () => {
  const cases: BeaconMessage[] = [
    { kind: 'discover', nodeId: 42 },
    { kind: 'punch_request', fromNodeId: 1, toNodeId: 0xffffffff },
    { kind: 'punch_command', ip: '10.0.0.9', port: 4000, peerNodeId: 5 },
    { kind: 'punch_command', ip: '2001:db8:0:0:0:0:0:1', port: 65535, peerNodeId: 6 },
  ];
  for (const m of cases) {
    const e = encodeAuthenticatedBeaconMessage(m, TOKEN, COUNTER);
    assert.ok(e.ok, m.kind);
    const bare = encodeBeaconMessage(m);
    assert.ok(bare.ok);
    // The original reads the same fixed part: ours only appends.
    assert.deepEqual(e.value.subarray(0, bare.value.length), bare.value);
    assert.equal(e.value.length, bare.value.length + (m.kind === 'punch_command' ? 4 : 0) + BEACON_AUTH_TRAILER_BYTES);
    const d = decodeBeaconMessage(e.value);
    assert.ok(d.ok);
    const { auth, ...rest } = d.value as BeaconMessage & { auth?: { counter: number } };
    assert.deepEqual(rest, m);
    assert.ok(auth && 'signed' in auth);
    assert.equal(auth.counter, COUNTER);
    assert.equal(verifyBeaconAuth(auth as never, TOKEN), true);
    assert.equal(verifyBeaconAuth(auth as never, OTHER), false, 'another token does not verify');
  }
});

test('beacon auth: bare messages decode exactly as before (no auth, no peer id)', () => {
  const e = encodeBeaconMessage({ kind: 'punch_command', ip: '1.2.3.4', port: 9 });
  assert.ok(e.ok);
  assert.deepEqual(decodeBeaconMessage(e.value), { ok: true, value: { kind: 'punch_command', ip: '1.2.3.4', port: 9 } });
  const d = encodeBeaconMessage({ kind: 'discover', nodeId: 3 });
  assert.ok(d.ok);
  assert.deepEqual(decodeBeaconMessage(d.value), { ok: true, value: { kind: 'discover', nodeId: 3 } });
});

test('beacon auth: any flipped bit (node id, counter, MAC) fails verification', () => {
  const e = encodeAuthenticatedBeaconMessage({ kind: 'discover', nodeId: 42 }, TOKEN, COUNTER);
  assert.ok(e.ok);
  for (let i = 0; i < e.value.length; i++) {
    const copy = Uint8Array.from(e.value);
    copy[i] ^= 0x01;
    const d = decodeBeaconMessage(copy);
    if (!d.ok || d.value.kind !== 'discover' || !d.value.auth) continue; // the type byte changed
    assert.equal(verifyBeaconAuth(d.value.auth, TOKEN), false, `bit flip at byte ${i} still verifies`);
  }
});

test('beacon auth: invalid inputs are errors, not throws', () => {
  assert.equal(encodeAuthenticatedBeaconMessage({ kind: 'discover', nodeId: 1 }, new Uint8Array(5), COUNTER).ok, false);
  assert.equal(encodeAuthenticatedBeaconMessage({ kind: 'discover', nodeId: 1 }, TOKEN, -1).ok, false);
  assert.equal(encodeAuthenticatedBeaconMessage({ kind: 'discover', nodeId: 1 }, TOKEN, 2 ** 60).ok, false);
  assert.equal(encodeAuthenticatedBeaconMessage({ kind: 'punch_command', ip: '1.2.3.4', port: 1 }, TOKEN, COUNTER).ok, false, 'peer id required');
  assert.equal(encodeAuthenticatedBeaconMessage({ kind: 'relay', senderNodeId: 1, destNodeId: 2, payload: new Uint8Array(1) }, TOKEN, COUNTER).ok, false);
});

test('beacon auth fuzz: random trailers never throw and never verify', () => {
  const seed = seedFromEnv();
  const rng = new Rng(seed);
  for (let i = 0; i < 20_000; i++) {
    const type = 1 + rng.int(7);
    const len = rng.int(64);
    const buf = new Uint8Array(len + 1);
    rng.fill(buf);
    buf[0] = type;
    const d = decodeBeaconMessage(buf);
    if (!d.ok) continue;
    const auth = 'auth' in d.value ? d.value.auth : undefined;
    if (auth) assert.equal(verifyBeaconAuth(auth, TOKEN), false, `PILOT_SEED=${seed}`);
  }
});
