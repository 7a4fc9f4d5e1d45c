// NAT control messages: round trips and "random bytes never throw".
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/index.js';
import { decodeNatInfo, encodeNatInfo, NAT_INFO, NAT_INFO_BYTES, type NatInfo } from '../../../src/nat/index.js';
import { unwrapRelayDeliver, wrapRelay, RELAY_HEADER_BYTES as RELAY_OVERHEAD_BYTES } from '../../../src/wire/beacon-message.js';
import { writeRelayDeliver } from '../../../src/wire/beacon-message.js';

const seed = seedFromEnv();

it('nat messages round-trip', () => {
  const msgs: NatInfo[] = [
    { kind: 'symmetric-sequential', publicEndpoint: { ip: '198.18.1.1', port: 20000 }, portDelta: -2, nextPort: 19998 },
    { kind: 'port-restricted-cone', publicEndpoint: { ip: '203.0.113.7', port: 40000 }, portDelta: 0, nextPort: 0 },
  ];
  for (const m of msgs) {
    const e = encodeNatInfo(m);
    assert.ok(e.ok);
    assert.equal(e.value[0], NAT_INFO);
    assert.equal(e.value.length, NAT_INFO_BYTES + 1);
    const d = decodeNatInfo(e.value);
    assert.ok(d.ok, JSON.stringify(m));
    assert.deepEqual(d.value, { ...m, isRestart: false });
    const r = decodeNatInfo(encodeNatInfo({ ...m, isRestart: true }).ok ? (encodeNatInfo({ ...m, isRestart: true }) as { value: Uint8Array }).value : new Uint8Array());
    assert.ok(r.ok && r.value.isRestart === true, 'restart flag round-trips');
    // a 12-byte message (before the flag byte) is still read, as no restart
    const old = decodeNatInfo(e.value.subarray(0, NAT_INFO_BYTES));
    assert.ok(old.ok && old.value.isRestart === false);
  }
  assert.equal(encodeNatInfo({ ...msgs[0]!, publicEndpoint: { ip: '2001:db8::1', port: 1 } }).ok, false, 'ipv4 only');
});

it(`random bytes never throw (PILOT_SEED=${seed})`, () => {
  const rng = new Rng(seed);
  for (let i = 0; i < 50_000; i++) {
    const b = new Uint8Array(rng.int(40));
    rng.fill(b);
    if (b.length > 0 && rng.chance(0.7)) b[0] = NAT_INFO;
    decodeNatInfo(b);
  }
});

it('relay wrap/unwrap matches the beacon framing', () => {
  const frame = Uint8Array.from([0x50, 0x4e, 0x44, 0x31, 9, 9]);
  const w = wrapRelay(3, 4, frame);
  assert.ok(w.ok);
  assert.equal(w.value.length, frame.length + RELAY_OVERHEAD_BYTES);
  const out = new Uint8Array(5 + frame.length);
  writeRelayDeliver(out, 3, frame);
  assert.deepEqual(unwrapRelayDeliver(out), { senderNodeId: 3, frame });
  assert.equal(unwrapRelayDeliver(w.value), null);
});
