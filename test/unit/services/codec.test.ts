// Golden bytes for ports 1001/1002, laid out by hand from the original's
// pkg/dataexchange/dataexchange.go (WriteFrame) and pkg/eventstream/eventstream.go (WriteEvent).
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ackText,
  decodeEvent,
  decodeFrame,
  decodeFrameHeader,
  encodeEvent,
  encodeFileFrame,
  encodeFileFramePrefix,
  encodeFrame,
  errAckText,
  frameTypeName,
  splitFilePayload,
  FRAME_TYPE_BINARY,
  FRAME_TYPE_FILE,
  FRAME_TYPE_JSON,
  FRAME_TYPE_TEXT,
  MAX_FRAME_PAYLOAD_BYTES,
} from '../../../src/services/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('type numbers and names are the original constants', () => {
  assert.deepEqual([FRAME_TYPE_TEXT, FRAME_TYPE_BINARY, FRAME_TYPE_JSON, FRAME_TYPE_FILE], [1, 2, 3, 4]);
  assert.deepEqual([1, 2, 3, 4, 9].map(frameTypeName), ['TEXT', 'BINARY', 'JSON', 'FILE', 'UNKNOWN(9)']);
  assert.equal(ackText(FRAME_TYPE_TEXT, 5), 'ACK TEXT 5 bytes');
  assert.equal(ackText(77, 0), 'ACK UNKNOWN(77) 0 bytes');
  assert.equal(errAckText(FRAME_TYPE_FILE, 'disk full'), 'ERR FILE save failed: disk full');
});

test('TEXT frame golden: [u32 type][u32 len][payload]', () => {
  const f = encodeFrame(FRAME_TYPE_TEXT, Buffer.from('hello'));
  assert.ok(f.ok);
  assert.equal(hex(f.value), '00000001' + '00000005' + '68656c6c6f');
  const j = encodeFrame(FRAME_TYPE_JSON, Buffer.from('{}'));
  assert.ok(j.ok);
  assert.equal(hex(j.value), '00000003' + '00000002' + '7b7d');
  const e = encodeFrame(FRAME_TYPE_BINARY, new Uint8Array(0));
  assert.ok(e.ok);
  assert.equal(hex(e.value), '00000002' + '00000000');
});

test('FILE frame golden: length covers [u16 name len][name][data]', () => {
  const f = encodeFileFrame('a.txt', Buffer.from('xyz'));
  assert.ok(f.ok);
  // payload = 2 + 5 + 3 = 10
  assert.equal(hex(f.value), '00000004' + '0000000a' + '0005' + '612e747874' + '78797a');
  const p = encodeFileFramePrefix('a.txt', 3);
  assert.ok(p.ok);
  assert.equal(hex(p.value), hex(f.value).slice(0, hex(p.value).length));
  const d = decodeFrame(f.value);
  assert.ok(d.ok && d.value);
  assert.equal(d.value.filename, 'a.txt');
  assert.equal(Buffer.from(d.value.payload).toString(), 'xyz');
  assert.equal(d.value.frameBytes, f.value.length);
});

test('FILE payload split follows the original on malformed names', () => {
  assert.deepEqual(splitFilePayload(Buffer.from([0x01])), { filename: '', data: Buffer.from([0x01]) });
  const overrun = Buffer.from([0x00, 0x09, 0x41]);
  assert.deepEqual(splitFilePayload(overrun), { filename: '', data: overrun });
  const empty = splitFilePayload(Buffer.from([0x00, 0x00, 0x42]));
  assert.equal(empty.filename, '');
  assert.deepEqual(Buffer.from(empty.data), Buffer.from([0x42]));
});

test('frame length above 16 MiB is refused, at exactly 16 MiB accepted', () => {
  const over = Buffer.from('00000001' + '01000001', 'hex');
  const r = decodeFrameHeader(over);
  assert.ok(!r.ok);
  assert.match(r.error.message, /frame too large: 16777217/);
  const at = decodeFrameHeader(Buffer.from('00000001' + '01000000', 'hex'));
  assert.ok(at.ok && at.value.payloadBytes === MAX_FRAME_PAYLOAD_BYTES);
  const max = decodeFrameHeader(Buffer.from('00000001ffffffff', 'hex'));
  assert.ok(!max.ok);
  assert.ok(!encodeFrame(1, new Uint8Array(MAX_FRAME_PAYLOAD_BYTES + 1)).ok);
  assert.ok(!encodeFileFramePrefix('x', MAX_FRAME_PAYLOAD_BYTES).ok);
});

test('event golden: [u16 topic len][topic][u32 payload len][payload]', () => {
  const e = encodeEvent('news', Buffer.from('hi'));
  assert.ok(e.ok);
  assert.equal(hex(e.value), '0004' + '6e657773' + '00000002' + '6869');
  const sub = encodeEvent('*', new Uint8Array(0));
  assert.ok(sub.ok);
  assert.equal(hex(sub.value), '0001' + '2a' + '00000000');
  const d = decodeEvent(e.value);
  assert.ok(d.ok && d.value);
  assert.equal(d.value.event.topic, 'news');
  assert.equal(d.value.eventBytes, e.value.length);
});

test('event caps: topic > 1024 and payload > 16 MiB refused', () => {
  assert.ok(!encodeEvent('t'.repeat(1025), new Uint8Array(0)).ok);
  assert.ok(encodeEvent('t'.repeat(1024), new Uint8Array(0)).ok);
  const longTopic = decodeEvent(Buffer.from('0401', 'hex'));
  assert.ok(!longTopic.ok);
  assert.match(longTopic.error.message, /topic too long: 1025/);
  const bigPayload = decodeEvent(Buffer.from('0001' + '61' + '01000001', 'hex'));
  assert.ok(!bigPayload.ok);
  assert.match(bigPayload.error.message, /payload too large/);
});

test('decoders: round trip, and random bytes never throw', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10 }), fc.uint8Array({ maxLength: 300 }), (type, payload) => {
      const f = encodeFrame(type, payload);
      if (!f.ok) return false;
      const d = decodeFrame(f.value);
      return d.ok && d.value !== null && (type === FRAME_TYPE_FILE || Buffer.from(d.value.payload).equals(Buffer.from(payload)));
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 50 }), fc.uint8Array({ maxLength: 300 }), (topic, payload) => {
      const e = encodeEvent(topic, payload);
      if (!e.ok) return false;
      const d = decodeEvent(e.value);
      return d.ok && d.value !== null && d.value.event.topic === topic && Buffer.from(d.value.event.payload).equals(Buffer.from(payload));
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      decodeFrame(bytes);
      decodeEvent(bytes);
      decodeFrameHeader(bytes);
      splitFilePayload(bytes);
      return true;
    }),
  );
});
