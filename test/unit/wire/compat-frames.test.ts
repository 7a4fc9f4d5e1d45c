import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_RECORD_BYTES,
  MAX_WS_MESSAGE_BYTES,
  MessageBufferPool,
  RecordBatch,
  decodeRecords,
  encodeRecords,
  parseFingerprint,
} from '../../../src/wire/compat-frames.js';
import { decodeBeaconMessage } from '../../../src/wire/beacon-message.js';

test('compat records round-trip, several per message', () => {
  const ds = [new Uint8Array([5, 1, 2]), new Uint8Array(1400).fill(7), new Uint8Array([6])];
  const m = encodeRecords(ds);
  assert.ok(m.ok);
  const back = decodeRecords(m.value);
  assert.ok(back.ok);
  assert.deepEqual(back.value.map((d) => Buffer.from(d).toString('hex')), ds.map((d) => Buffer.from(d).toString('hex')));
});

test('compat record decoding is total: truncations, zero lengths, empty, oversize all refused', () => {
  const m = encodeRecords([new Uint8Array([1, 2, 3, 4])]);
  assert.ok(m.ok);
  for (let cut = 0; cut < m.value.length; cut++) assert.equal(decodeRecords(m.value.subarray(0, cut)).ok, false, `cut at ${cut}`);
  assert.equal(decodeRecords(new Uint8Array([0, 0])).ok, false);
  assert.equal(decodeRecords(new Uint8Array(MAX_WS_MESSAGE_BYTES + 1)).ok, false);
  for (let i = 0; i < 2000; i++) {
    const junk = new Uint8Array(1 + (i % 300)).map(() => Math.floor(Math.random() * 256));
    const r = decodeRecords(junk);
    if (r.ok) assert.equal(r.value.reduce((n, d) => n + 2 + d.length, 0), junk.length);
  }
});

test('encodeRecords refuses empty and oversize datagrams; RecordBatch splits at the message limit', () => {
  assert.equal(encodeRecords([]).ok, false);
  assert.equal(encodeRecords([new Uint8Array(0)]).ok, false);
  assert.equal(encodeRecords([new Uint8Array(MAX_RECORD_BYTES + 1)]).ok, false);
  const b = new RecordBatch();
  assert.equal(b.push(new Uint8Array(0)), false);
  for (let i = 0; i < 400; i++) assert.ok(b.push(new Uint8Array(1400).fill(i & 0xff)));
  const msgs = b.take();
  assert.ok(msgs.length >= 3);
  let n = 0;
  for (const m of msgs) {
    assert.ok(m.length <= MAX_WS_MESSAGE_BYTES);
    const r = decodeRecords(m);
    assert.ok(r.ok);
    for (const d of r.value) assert.equal(d[0], n++ & 0xff);
  }
  assert.equal(n, 400);
  assert.ok(b.isEmpty);
});

test('parseFingerprint accepts the forms people paste and refuses the rest', () => {
  const hex = 'ab'.repeat(32);
  const want = 'AB:'.repeat(31) + 'AB';
  for (const t of [hex, hex.toUpperCase(), want, want.toLowerCase(), `sha256:${hex}`, `SHA256:${want}`, ` ${hex} `]) {
    const r = parseFingerprint(t);
    assert.ok(r.ok, t);
    assert.equal(r.value, want);
  }
  for (const t of ['', 'ab', hex + 'a', 'zz'.repeat(32), 'AB:CD' + hex.slice(4), `md5:${hex}`]) assert.equal(parseFingerprint(t).ok, false, t);
});

test('RecordBatch: relay deliver written in place decodes as the beacon message; a pushed datagram is copied at once', () => {
  const b = new RecordBatch();
  const payload = new Uint8Array(1400).fill(9);
  assert.ok(b.pushRelayDeliver(0xfffffffe, payload));
  const d = new Uint8Array([1, 2, 3]);
  assert.ok(b.push(d));
  d.fill(0); // the caller may reuse its buffer after push
  assert.equal(b.pushRelayDeliver(1, new Uint8Array(MAX_RECORD_BYTES)), false);
  const [m, ...rest] = b.take();
  assert.equal(rest.length, 0);
  const r = decodeRecords(m!);
  assert.ok(r.ok);
  const msg = decodeBeaconMessage(r.value[0]!);
  assert.ok(msg.ok);
  assert.ok(msg.value.kind === 'relay_deliver');
  assert.equal(msg.value.senderNodeId, 0xfffffffe);
  assert.deepEqual(new Uint8Array(msg.value.payload), payload);
  assert.deepEqual([...r.value[1]!], [1, 2, 3]);
  assert.ok(b.isEmpty);
});

test('RecordBatch with a pool: messages are pool buffers handed over without a copy, reused once released, the pool bounded', () => {
  const pool = new MessageBufferPool(2);
  const b = new RecordBatch(pool);
  assert.ok(b.push(new Uint8Array(100).fill(1)));
  const [m1] = b.take();
  assert.equal(m1!.length, 102);
  assert.equal(m1!.buffer.byteLength, MAX_WS_MESSAGE_BYTES, 'a pool buffer, not a copy');
  assert.ok(b.push(new Uint8Array(10).fill(2)));
  const [m2] = b.take();
  assert.notEqual(m2!.buffer, m1!.buffer, 'a message not released yet is never written again');
  const r1 = decodeRecords(m1!);
  assert.ok(r1.ok);
  assert.deepEqual([...r1.value[0]!.subarray(0, 3)], [1, 1, 1]);
  pool.release(m1!);
  assert.equal(pool.idleCount, 1);
  assert.ok(b.push(new Uint8Array(5).fill(3)));
  const [m3] = b.take();
  assert.equal(m3!.buffer, m1!.buffer, 'the released buffer is reused');
  pool.release(m2!);
  pool.release(m3!);
  pool.release(new Uint8Array(MAX_WS_MESSAGE_BYTES)); // beyond max: left to the GC
  assert.equal(pool.idleCount, 2);
  pool.release(new Uint8Array(10)); // not a pool buffer: ignored
  assert.equal(pool.idleCount, 2);
});
