// The binary datagram channel's codec (src/ipc/datagram-frames.ts): round trips across any read boundary, and
// hostile input — bad lengths, unknown or wrong-direction kinds, refs running past the frame, random bytes —
// is an error value that stops the decoder, never a throw.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFromEnv } from '../../../src/core/index.js';
import {
  encodeRef,
  encodeResultFrame,
  FRAME_RECV,
  FRAME_RESULT,
  FRAME_SEND,
  FrameBatch,
  FrameDecoder,
  MAX_CHANNEL_PAYLOAD_BYTES,
  MAX_FRAME_LEN,
  recvFrameBytes,
  sendFrameBytes,
  writeRecvFrame,
  writeSendFrame,
  type ChannelFrame,
} from '../../../src/ipc/datagram-frames.js';
import { pilotError } from '../../../src/core/errors.js';

const seed = seedFromEnv();
const msg = (s: string): string => `${s} (PILOT_SEED=${seed})`;

function sendFrame(seq: number, port: number, to: string, payload: Uint8Array): Buffer {
  const ref = encodeRef(to)!;
  const b = Buffer.alloc(sendFrameBytes(ref.length, payload.length));
  assert.equal(writeSendFrame(b, 0, seq, port, ref, payload), b.length);
  return b;
}

function recvFrame(node: number, fromPort: number, port: number, from: string, payload: Uint8Array): Buffer {
  const addr = Buffer.from(from, 'latin1');
  const b = Buffer.alloc(recvFrameBytes(addr.length, payload.length));
  assert.equal(writeRecvFrame(b, 0, node, fromPort, port, addr, payload), b.length);
  return b;
}

function collect(accepts: number[]): { d: FrameDecoder; got: ChannelFrame[] } {
  const got: ChannelFrame[] = [];
  return { d: new FrameDecoder(accepts, (f) => got.push(f)), got };
}

test('SEND, RECV and RESULT frames round-trip, many per chunk', () => {
  const wire = Buffer.concat([
    sendFrame(0, 7000, 'beta', Buffer.from('hello')),
    sendFrame(42, 65535, '0:0000.0000.0005', new Uint8Array(0)),
    sendFrame(0xffffffff, 0, '5', Buffer.alloc(MAX_CHANNEL_PAYLOAD_BYTES, 7)),
  ]);
  const { d, got } = collect([FRAME_SEND]);
  assert.ok(d.push(wire).ok);
  assert.equal(got.length, 3);
  assert.deepEqual({ ...got[0]!, payload: Buffer.from(got[0]!.kind === FRAME_SEND ? got[0]!.payload : []).toString() }, {
    kind: FRAME_SEND, seq: 0, port: 7000, to: 'beta', payload: 'hello',
  });
  const g1 = got[1]!;
  assert.ok(g1.kind === FRAME_SEND && g1.seq === 42 && g1.port === 65535 && g1.to === '0:0000.0000.0005' && g1.payload.length === 0);
  const g2 = got[2]!;
  assert.ok(g2.kind === FRAME_SEND && g2.seq === 0xffffffff && g2.payload.length === MAX_CHANNEL_PAYLOAD_BYTES);

  const c = collect([FRAME_RECV, FRAME_RESULT]);
  const e = pilotError('invalid_argument', 'datagram of 2000 bytes is too large', { hint: 'use a stream', detail: { to: 'beta', port: 9 } });
  assert.ok(c.d.push(Buffer.concat([recvFrame(0xfffffffe, 1, 2, '0:0000.0000.0002', Buffer.from([1, 2, 3])), encodeResultFrame(9, null), encodeResultFrame(0, e)])).ok);
  assert.equal(c.got.length, 3);
  const r = c.got[0]!;
  assert.ok(r.kind === FRAME_RECV);
  assert.deepEqual([r.fromNodeId, r.fromPort, r.port, r.from, [...r.payload]], [0xfffffffe, 1, 2, '0:0000.0000.0002', [1, 2, 3]]);
  assert.deepEqual(c.got[1], { kind: FRAME_RESULT, seq: 9, error: null });
  const res = c.got[2]!;
  assert.ok(res.kind === FRAME_RESULT && res.seq === 0 && res.error !== null);
  assert.equal(res.error.code, 'invalid_argument');
  assert.equal(res.error.hint, 'use a stream');
  assert.deepEqual(res.error.detail, { to: 'beta', port: 9 });
});

test('frames split at every byte boundary decode the same', () => {
  const wire = Buffer.concat([sendFrame(1, 80, 'alpha', Buffer.from('x'.repeat(100))), sendFrame(0, 81, 'b', Buffer.from('yz'))]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const { d, got } = collect([FRAME_SEND]);
    assert.ok(d.push(wire.subarray(0, cut)).ok);
    assert.ok(d.push(wire.subarray(cut)).ok);
    assert.equal(got.length, 2, `cut at ${cut}`);
    assert.equal(d.bufferedBytes, 0);
  }
  // One byte at a time.
  const { d, got } = collect([FRAME_SEND]);
  for (const b of wire) assert.ok(d.push(Buffer.from([b])).ok);
  assert.equal(got.length, 2);
});

test('hostile lengths and kinds are errors that stop the decoder', () => {
  const cases: Array<[string, Buffer, number[]]> = [
    ['zero length', Buffer.from([0, 0, 0, 0, 1]), [FRAME_SEND]],
    ['length past the largest frame', (() => { const b = Buffer.alloc(5); b.writeUInt32BE(MAX_FRAME_LEN + 1); b[4] = 1; return b; })(), [FRAME_SEND]],
    ['4 GiB length', Buffer.from([0xff, 0xff, 0xff, 0xff]), [FRAME_SEND]],
    ['unknown kind', Buffer.from([0, 0, 0, 1, 99]), [FRAME_SEND]],
    ['RECV sent to the daemon', recvFrame(1, 1, 1, 'a', Buffer.from('x')), [FRAME_SEND]],
    ['SEND sent to a client', sendFrame(0, 1, 'a', Buffer.from('x')), [FRAME_RECV, FRAME_RESULT]],
    ['SEND shorter than its header', Buffer.from([0, 0, 0, 3, FRAME_SEND, 0, 0]), [FRAME_SEND]],
    ['SEND with an empty ref', Buffer.from([0, 0, 0, 8, FRAME_SEND, 0, 0, 0, 0, 0, 1, 0]), [FRAME_SEND]],
    ['SEND ref past the frame', Buffer.from([0, 0, 0, 9, FRAME_SEND, 0, 0, 0, 0, 0, 1, 5, 97]), [FRAME_SEND]],
    ['RECV addr past the frame', Buffer.from([0, 0, 0, 10, FRAME_RECV, 0, 0, 0, 1, 0, 1, 0, 1, 9]), [FRAME_RECV]],
    ['RESULT body not JSON', Buffer.from([0, 0, 0, 6, FRAME_RESULT, 0, 0, 0, 0, 123]), [FRAME_RESULT]],
    ['RESULT too short', Buffer.from([0, 0, 0, 2, FRAME_RESULT, 0]), [FRAME_RESULT]],
  ];
  for (const [name, bytes, accepts] of cases) {
    const { d, got } = collect(accepts);
    const r = d.push(bytes);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.error.code, 'invalid_argument', name);
    assert.equal(got.length, 0, name);
    // Once failed, it stays failed: later good frames are not delivered.
    assert.equal(d.push(sendFrame(0, 1, 'a', Buffer.from('x'))).ok, false, name);
    assert.equal(got.length, 0, name);
  }
});

test('a SEND payload over the limit inside a legal length is refused', () => {
  // len fits MAX_FRAME_LEN (which allows a 255-byte RECV address) but a 1-byte ref leaves > 65,535 for payload.
  const payload = MAX_CHANNEL_PAYLOAD_BYTES + 100;
  const b = Buffer.alloc(4 + 8 + 1 + payload);
  b.writeUInt32BE(8 + 1 + payload, 0);
  b[4] = FRAME_SEND;
  b[11] = 1;
  b[12] = 97;
  const { d, got } = collect([FRAME_SEND]);
  const r = d.push(b);
  assert.equal(r.ok, false);
  assert.equal(got.length, 0);
});

test('random bytes never throw, and a wrong kind is refused before its body arrives', () => {
  const rng = new Rng(seed);
  for (let i = 0; i < 3000; i++) {
    const n = rng.int(64);
    const b = Buffer.alloc(n);
    rng.fill(b);
    // Keep lengths small half the time so bodies actually get parsed.
    if (n >= 4 && rng.chance(0.5)) b.writeUInt32BE(rng.int(n), 0);
    const accepts = rng.chance(0.5) ? [FRAME_SEND] : [FRAME_RECV, FRAME_RESULT];
    const { d } = collect(accepts);
    assert.doesNotThrow(() => d.push(b), msg(`input ${b.toString('hex')}`));
  }
  const { d } = collect([FRAME_SEND]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(60_000);
  head[4] = FRAME_RECV;
  assert.equal(d.push(head).ok, false);
  assert.equal(d.bufferedBytes, 0);
});

test('refs are 1..255 bytes', () => {
  assert.equal(encodeRef(''), null);
  assert.equal(encodeRef('a'.repeat(256)), null);
  assert.equal(encodeRef('a'.repeat(255))!.length, 255);
});

test('FrameBatch: later turns fill the rest of one buffer, and what was handed to the socket is never written again', async () => {
  const writes: Buffer[] = [];
  const copies: Buffer[] = [];
  const socket = { destroyed: false, write: (b: Uint8Array) => (writes.push(b as Buffer), copies.push(Buffer.from(b)), true) };
  const out = new FrameBatch(socket);
  const ref = encodeRef('beta')!;
  const turns = 50;
  for (let t = 0; t < turns; t++) {
    for (let i = 0; i < 3; i++) {
      const payload = Buffer.alloc(60, t * 3 + i);
      const buf = out.room(sendFrameBytes(ref.length, payload.length));
      out.commit(writeSendFrame(buf, out.offset, t * 3 + i, 7000, ref, payload));
    }
    assert.ok(out.pendingBytes > 0);
    await new Promise((r) => setImmediate(r)); // the end-of-turn write
    assert.equal(out.pendingBytes, 0);
  }
  assert.equal(writes.length, turns, 'one socket write per turn');
  // Every write is a slice of a shared buffer: the bytes the socket got are still what was written then.
  assert.ok(writes.some((w, i) => i > 0 && w.buffer === writes[i - 1]!.buffer), 'turns share a buffer');
  writes.forEach((w, i) => assert.deepEqual(Buffer.from(w), copies[i], `write ${i} unchanged after later turns`));
  const { d, got } = collect([FRAME_SEND]);
  assert.ok(d.push(Buffer.concat(copies)).ok);
  assert.equal(got.length, turns * 3);
  got.forEach((f, i) => assert.ok(f.kind === FRAME_SEND && f.seq === i && f.payload[0] === (i & 0xff) && f.to === 'beta'));
});

test('refs and addresses decode right when frames alternate between peers (the decoder keeps the last one)', () => {
  const names = ['beta', 'gamma', 'beta', 'beta', '0:0000.0000.0005', 'betb', 'beta', 'b'];
  const { d, got } = collect([FRAME_SEND]);
  assert.ok(d.push(Buffer.concat(names.map((n, i) => sendFrame(i + 1, 80, n, Buffer.from([i]))))).ok);
  assert.deepEqual(got.map((f) => (f.kind === FRAME_SEND ? f.to : null)), names);
  const c = collect([FRAME_RECV]);
  const addrs = ['0:0000.0000.0002', '0:0000.0000.0003', '0:0000.0000.0003', '0:0000.0000.0002', 'x'];
  assert.ok(c.d.push(Buffer.concat(addrs.map((a, i) => recvFrame(i, 1, 2, a, Buffer.from([i]))))).ok);
  assert.deepEqual(c.got.map((f) => (f.kind === FRAME_RECV ? f.from : null)), addrs);
});
