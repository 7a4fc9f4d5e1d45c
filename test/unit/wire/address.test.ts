import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ADDR_BEACON,
  ADDR_NAMESERVER,
  ADDR_REGISTRY,
  ADDR_ZERO,
  addrEquals,
  broadcastAddr,
  decodeAddr,
  encodeAddr,
  formatAddr,
  formatSocketAddr,
  isBroadcastAddr,
  isValidPort,
  isZeroAddr,
  parseAddr,
  parseSocketAddr,
  PORT_DATAEXCHANGE,
  PORT_ECHO,
  PORT_EVENTSTREAM,
  PORT_HANDSHAKE,
  PORT_STDIO,
  socketAddrEquals,
} from '../../../src/wire/address.js';
import { addrArb, fcParams, socketArb } from './arbitraries.js';

test('address: text form is the original N:NNNN.HHHH.LLLL (network repeated in hex, upper case)', () => {
  assert.equal(formatAddr({ network: 0, node: 1 }), '0:0000.0000.0001');
  assert.equal(formatAddr({ network: 1, node: 0x00a3f291 }), '1:0001.00A3.F291');
  assert.equal(formatAddr({ network: 65535, node: 0xffffffff }), '65535:FFFF.FFFF.FFFF');
  assert.equal(formatAddr({ network: 300, node: 0x12345678 }), '300:012C.1234.5678');
  assert.equal(formatSocketAddr({ addr: { network: 0, node: 2 }, port: 1000 }), '0:0000.0000.0002:1000');
});

test('address: parse accepts what the original accepts', () => {
  assert.deepEqual(parseAddr('0:0000.0000.0001'), { ok: true, value: { network: 0, node: 1 } });
  assert.deepEqual(parseAddr('1:0001.00a3.f291'), { ok: true, value: { network: 1, node: 0x00a3f291 } });
  assert.deepEqual(parseAddr('007:0007.0000.0001'), { ok: true, value: { network: 7, node: 1 } });
  assert.deepEqual(parseSocketAddr('0:0000.0000.0002:444'), {
    ok: true,
    value: { addr: { network: 0, node: 2 }, port: 444 },
  });
  assert.deepEqual(parseSocketAddr('0:0000.0000.0002:00080'), {
    ok: true,
    value: { addr: { network: 0, node: 2 }, port: 80 },
  });
});

test('address: parse rejects malformed text with invalid_argument', () => {
  const bad = [
    '',
    '0',
    ':0000.0000.0001',
    '0:0000.0000',
    '0:0000.0000.0001.0002',
    '0:000.0000.0001',
    '0:00000.0000.0001',
    '0:0000.0000.000G',
    '1:00A3.F291.0004', // SPEC.md's example: hex network 0x00A3 != decimal 1, the original rejects it
    '65536:0000.0000.0001',
    '-1:0000.0000.0001',
    '+1:0001.0000.0001',
    '0x1:0001.0000.0001',
    ' 0:0000.0000.0001',
    '0:0000.0000.0001 ',
    '0:0000.0000.0001:7',
    '0:0000.0000.0001\n',
    '٣:0000.0000.0001',
  ];
  for (const s of bad) {
    const r = parseAddr(s);
    assert.equal(r.ok, false, `should reject ${JSON.stringify(s)}`);
    if (!r.ok) assert.equal(r.error.code, 'invalid_argument');
  }
  for (const s of ['0:0000.0000.0001', '0:0000.0000.0001:', '0:0000.0000.0001:65536', '0:0000.0000.0001:-1', '0:0000.0000.0001:1e3', '0:0000.0000.0001: 7', 'x:7']) {
    assert.equal(parseSocketAddr(s).ok, false, `should reject socket ${JSON.stringify(s)}`);
  }
  assert.equal(parseAddr(undefined as unknown as string).ok, false);
  assert.equal(parseAddr('9'.repeat(100000)).ok, false);
});

test('address: special addresses and well-known ports of the original', () => {
  assert.equal(formatAddr(ADDR_ZERO), '0:0000.0000.0000');
  assert.equal(formatAddr(ADDR_REGISTRY), '0:0000.0000.0001');
  assert.equal(formatAddr(ADDR_BEACON), '0:0000.0000.0002');
  assert.equal(formatAddr(ADDR_NAMESERVER), '0:0000.0000.0003');
  assert.equal(formatAddr(broadcastAddr(3)), '3:0003.FFFF.FFFF');
  assert.ok(isBroadcastAddr(broadcastAddr(3)) && !isBroadcastAddr(ADDR_REGISTRY));
  assert.ok(isZeroAddr(ADDR_ZERO) && !isZeroAddr(ADDR_BEACON));
  assert.deepEqual(
    [PORT_ECHO, PORT_HANDSHAKE, PORT_STDIO, PORT_DATAEXCHANGE, PORT_EVENTSTREAM],
    [7, 444, 1000, 1001, 1002],
  );
  for (const p of [0, 1, 65535]) assert.ok(isValidPort(p));
  for (const p of [-1, 65536, 1.5, NaN, '7', null]) assert.ok(!isValidPort(p));
});

test('address: 6-byte binary form', () => {
  const r = encodeAddr({ network: 0x0102, node: 0x03040506 });
  assert.ok(r.ok);
  if (r.ok) assert.deepEqual([...r.value], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(decodeAddr(new Uint8Array([0, 0, 0, 0, 0, 2])), { ok: true, value: { network: 0, node: 2 } });
  assert.equal(decodeAddr(new Uint8Array(5)).ok, false);
  assert.equal(decodeAddr(new Uint8Array(7)).ok, false);
  assert.deepEqual(decodeAddr(new Uint8Array([9, 0, 0, 0, 0, 0, 1]), 1), { ok: true, value: { network: 0, node: 1 } });
  assert.equal(decodeAddr(new Uint8Array(7), 2).ok, false);
  assert.equal(encodeAddr({ network: 65536, node: 0 }).ok, false);
  assert.equal(encodeAddr({ network: 0, node: -1 }).ok, false);
  assert.equal(encodeAddr({ network: 0, node: 1 }, new Uint8Array(8), 3).ok, false);
});

test('address: property — binary and text forms round-trip', () => {
  fc.assert(
    fc.property(addrArb, socketArb, (a, s) => {
      const b = encodeAddr(a);
      assert.ok(b.ok);
      if (b.ok) assert.deepEqual(decodeAddr(b.value), { ok: true, value: a });
      assert.deepEqual(parseAddr(formatAddr(a)), { ok: true, value: a });
      assert.deepEqual(parseAddr(formatAddr(a).toLowerCase()), { ok: true, value: a });
      const ps = parseSocketAddr(formatSocketAddr(s));
      assert.ok(ps.ok && socketAddrEquals(ps.value, s));
      assert.ok(addrEquals(a, { ...a }));
    }),
    fcParams(2000),
  );
});

test('address: property — anything parseAddr accepts formats back to itself (up to case and leading zeros)', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9]{1,6}:[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$/), (s) => {
      const r = parseAddr(s);
      if (!r.ok) return;
      const canon = formatAddr(r.value);
      const [n, rest] = s.split(':') as [string, string];
      assert.equal(canon, `${Number(n)}:${rest.toUpperCase()}`);
    }),
    fcParams(2000),
  );
});
