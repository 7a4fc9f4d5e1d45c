import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Rng, seedFromEnv } from '../../../src/core/rng.js';
import {
  RegistryFrameDecoder,
  encodeRegistryFrame,
  registryAddressText,
  type RegistryMessage,
} from '../../../src/wire/registry-frame.js';
import {
  decodeBeaconMessage,
  encodeBeaconMessage,
  encodeReplicaRelay,
  formatIp,
  parseIp,
  type BeaconMessage,
} from '../../../src/wire/beacon-message.js';
import { fromHex } from '../../../src/wire/bytes.js';

const seed = seedFromEnv();
test.after(() => console.log(`registry codecs seed: PILOT_SEED=${seed}`));

const jsonValue = fc.jsonValue({ maxDepth: 3 });
const message: fc.Arbitrary<RegistryMessage> = fc
  .record({ type: fc.string({ maxLength: 20 }), body: fc.dictionary(fc.string({ maxLength: 8 }), jsonValue, { maxKeys: 5 }) })
  .map(({ type, body }) => ({ ...body, type }));

test('registry frames: decode(encode(x)) == x, under any chunking', () => {
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 5 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1 }), (msgs, cuts) => {
      const bytes = Buffer.concat(msgs.map((m) => encodeRegistryFrame(m)).map((r) => (r.ok ? r.value : assert.fail())));
      const d = new RegistryFrameDecoder();
      const got: RegistryMessage[] = [];
      let off = 0;
      let i = 0;
      while (off < bytes.length) {
        const n = cuts[i++ % cuts.length]!;
        const r = d.push(bytes.subarray(off, off + n));
        assert.ok(r.ok);
        got.push(...r.value);
        off += n;
      }
      // JSON round trip normalises -0 to 0, as any JSON peer would.
      assert.deepEqual(got, JSON.parse(JSON.stringify(msgs)));
      assert.equal(d.pendingBytes, 0);
    }),
    { seed, numRuns: 300 },
  );
});

test('registry frames: limits and bad input are error values', () => {
  const big = encodeRegistryFrame({ type: 'x', pad: 'a'.repeat(100) }, 50);
  assert.equal(big.ok, false);
  const d = new RegistryFrameDecoder(64);
  const r = d.push(Uint8Array.from([0, 0, 0, 65]));
  assert.equal(r.ok, false);
  assert.equal(d.push(Uint8Array.from([0, 0, 0, 2, 0x7b, 0x7d])).ok, false, 'stays failed');
  for (const body of ['null', '1', '"s"', '[1]', '{', 'tru']) {
    const b = Buffer.from(body);
    const dd = new RegistryFrameDecoder();
    assert.equal(dd.push(Buffer.concat([Buffer.from([0, 0, 0, b.length]), b])).ok, false, body);
  }
  const cyclic: Record<string, unknown> = { type: 'x' };
  cyclic.self = cyclic;
  assert.equal(encodeRegistryFrame(cyclic).ok, false);
  assert.equal(encodeRegistryFrame({ type: 'x', n: 10n } as unknown as RegistryMessage).ok, false);
  assert.equal(registryAddressText(1), '0:0000.0000.0001');
  assert.equal(registryAddressText(0x1abcd), '0:0000.0001.ABCD');
});

test('registry frames fuzz: 100,000 random inputs never throw', () => {
  const rng = new Rng(seed);
  const d = () => new RegistryFrameDecoder(4096);
  let dec = d();
  for (let i = 0; i < 100_000; i++) {
    const len = rng.int(64);
    const buf = new Uint8Array(len);
    rng.fill(buf);
    if (rng.chance(0.5) && len >= 4) {
      // plausible length prefix
      buf[0] = 0;
      buf[1] = 0;
      buf[2] = 0;
      buf[3] = rng.int(len);
    }
    if (rng.chance(0.3) && len >= 9) buf.set(Buffer.from('{"a":'), 4);
    const r = dec.push(buf);
    if (!r.ok) dec = d();
  }
});

const ip4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const ip6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((b) => !(b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)).map((b) => formatIp(b));
const u32 = fc.nat(0xffffffff);
const beaconMsg: fc.Arbitrary<BeaconMessage> = fc.oneof(
  u32.map((nodeId) => ({ kind: 'discover' as const, nodeId })),
  fc.tuple(fc.oneof(ip4, ip6), fc.nat(0xffff), fc.boolean()).map(([ip, port, r]) => ({ kind: r ? ('discover_reply' as const) : ('punch_command' as const), ip, port })),
  fc.tuple(u32, u32).map(([fromNodeId, toNodeId]) => ({ kind: 'punch_request' as const, fromNodeId, toNodeId })),
  fc.tuple(u32, u32, fc.uint8Array({ maxLength: 64 })).map(([senderNodeId, destNodeId, payload]) => ({ kind: 'relay' as const, senderNodeId, destNodeId, payload })),
  fc.tuple(u32, fc.uint8Array({ maxLength: 64 })).map(([senderNodeId, payload]) => ({ kind: 'relay_deliver' as const, senderNodeId, payload })),
  fc.tuple(u32, fc.array(u32, { maxLength: 20 })).map(([beaconId, nodeIds]) => ({ kind: 'sync' as const, beaconId, nodeIds })),
);

test('beacon messages: decode(encode(x)) == x', () => {
  fc.assert(
    fc.property(beaconMsg, (m) => {
      const e = encodeBeaconMessage(m);
      assert.ok(e.ok);
      const d = decodeBeaconMessage(e.value);
      assert.ok(d.ok);
      const norm = (x: BeaconMessage) => ('payload' in x ? { ...x, payload: Array.from(x.payload) } : x);
      assert.deepEqual(norm(d.value), norm(m));
    }),
    { seed, numRuns: 2000 },
  );
});

test('beacon messages: bytes captured from the original (udp-frames.txt)', () => {
  const dec = (hex: string) => {
    const r = decodeBeaconMessage(fromHex(hex)!);
    assert.ok(r.ok, hex);
    return r.value;
  };
  assert.deepEqual(dec('0100000002'), { kind: 'discover', nodeId: 2 });
  assert.deepEqual(dec('02047f00000136bb'), { kind: 'discover_reply', ip: '127.0.0.1', port: 14011 });
  assert.deepEqual(dec('030000000200000001'), { kind: 'punch_request', fromNodeId: 2, toNodeId: 1 });
  assert.deepEqual(dec('04047f00000136bc'), { kind: 'punch_command', ip: '127.0.0.1', port: 14012 });
  const enc = (m: BeaconMessage) => {
    const r = encodeBeaconMessage(m);
    assert.ok(r.ok);
    return Buffer.from(r.value).toString('hex');
  };
  assert.equal(enc({ kind: 'discover_reply', ip: '127.0.0.1', port: 14011 }), '02047f00000136bb');
  assert.equal(enc({ kind: 'punch_command', ip: '::ffff:127.0.0.1', port: 14012 }), '04047f00000136bc');
  // Short and unknown messages are errors, trailing bytes are ignored (as the original).
  for (const bad of ['', '01000000', '0300000002', '0502', '0600', '0700000001000100', '0205', '02107f', '08', 'ff']) {
    assert.equal(decodeBeaconMessage(fromHex(bad)!).ok, false, bad);
  }
  assert.deepEqual(dec('0100000002ffff'), { kind: 'discover', nodeId: 2 });
  assert.equal(encodeBeaconMessage({ kind: 'discover', nodeId: -1 }).ok, false);
  assert.equal(encodeBeaconMessage({ kind: 'punch_command', ip: '300.1.1.1', port: 1 }).ok, false);
  assert.equal(encodeBeaconMessage({ kind: 'punch_command', ip: '1.1.1.1', port: 70000 }).ok, false);
  assert.deepEqual(Array.from(parseIp('::1')!), [...new Array(15).fill(0), 1]);
  assert.equal(parseIp('1::2::3'), null);
  assert.equal(parseIp('fe80::1%eth0')!.length, 16);
});

test('beacon messages fuzz: 100,000 random inputs never throw', () => {
  const rng = new Rng(seed ^ 0x5a5a);
  let okCount = 0;
  for (let i = 0; i < 100_000; i++) {
    const buf = new Uint8Array(rng.int(40));
    rng.fill(buf);
    if (buf.length > 0 && rng.chance(0.8)) buf[0] = 1 + rng.int(8);
    const r = decodeBeaconMessage(buf);
    if (r.ok) {
      okCount++;
      // Whatever decodes re-encodes to a prefix-compatible message (a replica relay needs its MAC key).
      const e = r.value.kind === 'replica_relay' ? encodeReplicaRelay(new Uint8Array(32), r.value) : encodeBeaconMessage(r.value);
      assert.ok(e.ok, r.value.kind);
    }
  }
  assert.ok(okCount > 1000);
});
