// Reassembly (RecvBuffer) against a naive model: a byte array plus a received flag per offset. Segments of a
// known stream arrive in random order, overlapping and duplicated, interleaved with application reads.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { seedFromEnv } from '../../../src/core/rng.js';
import { RecvBuffer } from '../../../src/transport/recv-buffer.js';
import { SendBuffer } from '../../../src/transport/send-buffer.js';

const STREAM = new Uint8Array(4096).map((_, i) => (i * 131 + 7) & 0xff);

type Op = { kind: 'insert'; offset: number; len: number } | { kind: 'read'; max: number };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('insert' as const), offset: fc.integer({ min: 0, max: 3000 }), len: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('read' as const), max: fc.integer({ min: 1, max: 700 }) }) },
);

test('RecvBuffer reassembles like a naive model, within its window, for any arrival order', () => {
  fc.assert(
    fc.property(fc.integer({ min: 64, max: 1500 }), fc.array(opArb, { minLength: 10, maxLength: 120, size: 'max' }), (windowBytes, ops) => {
      const rb = new RecvBuffer(windowBytes);
      const got = new Array<boolean>(STREAM.length).fill(false);
      let readOffset = 0;
      let out: number[] = [];
      const nxt = () => {
        let i = readOffset;
        while (i < STREAM.length && got[i]) i++;
        return i;
      };
      for (const op of ops) {
        if (op.kind === 'insert') {
          const before = nxt();
          const end = Math.min(op.offset + op.len, STREAM.length);
          // the model: bytes inside [readOffset, readOffset + window) are kept
          for (let i = Math.max(op.offset, before); i < end && i < readOffset + windowBytes; i++) got[i] = true;
          const advanced = rb.insert(op.offset, STREAM, op.offset, Math.max(0, end - op.offset));
          assert.equal(advanced, nxt() - before);
        } else {
          const into = new Uint8Array(op.max);
          const n = rb.read(into);
          const avail = nxt() - readOffset;
          assert.equal(n, Math.min(op.max, avail));
          out = out.concat(Array.from(into.subarray(0, n)));
          readOffset += n;
        }
        assert.equal(rb.contiguousEnd, nxt());
        assert.equal(rb.readOffset, readOffset);
        assert.equal(rb.limitOffset, readOffset + windowBytes);
        assert.equal(rb.hasGaps, got.slice(nxt(), readOffset + windowBytes).some(Boolean));
      }
      assert.deepEqual(out, Array.from(STREAM.subarray(0, out.length)));
    }),
    { numRuns: 1000, seed: seedFromEnv() | 0 },
  );
});

test('RecvBuffer across chunks: copies and views agree with the stream, and views stay intact after later inserts', () => {
  const stream = new Uint8Array(900_000).map((_, i) => (i * 151 + (i >> 9)) & 0xff);
  const big: fc.Arbitrary<{ kind: 'insert' | 'read' | 'view'; at: number; len: number }> = fc.record({
    kind: fc.constantFrom('insert' as const, 'insert' as const, 'insert' as const, 'read' as const, 'view' as const),
    at: fc.integer({ min: 0, max: 900_000 }),
    len: fc.integer({ min: 1, max: 90_000 }),
  });
  fc.assert(
    fc.property(fc.integer({ min: 1500, max: 600_000 }), fc.array(big, { minLength: 5, maxLength: 80 }), (windowBytes, ops) => {
      const rb = new RecvBuffer(windowBytes);
      const views: Array<{ offset: number; view: Uint8Array }> = [];
      let readOffset = 0;
      for (const op of ops) {
        if (op.kind === 'insert') {
          // Mostly near the read point so data arrives; the rest is out of order or beyond the window.
          const offset = op.at % 3 === 0 ? op.at : Math.min(stream.length - 1, rb.contiguousEnd + (op.at % 4000));
          const len = Math.min(op.len, stream.length - offset);
          rb.insert(offset, stream, offset, len);
        } else if (op.kind === 'read') {
          const into = new Uint8Array(op.len);
          const n = rb.read(into);
          assert.equal(n, Math.min(op.len, rb.contiguousEnd - readOffset));
          assert.deepEqual(into.subarray(0, n), stream.subarray(readOffset, readOffset + n));
          readOffset += n;
        } else {
          const avail = rb.contiguousEnd - readOffset;
          const v = rb.readView(op.len);
          if (avail === 0) assert.equal(v, null);
          else {
            assert.ok(v !== null && v.length > 0 && v.length <= Math.min(op.len, avail));
            views.push({ offset: readOffset, view: v });
            readOffset += v.length;
          }
        }
        assert.equal(rb.readOffset, readOffset);
        assert.ok(rb.contiguousEnd >= readOffset && rb.contiguousEnd <= readOffset + windowBytes);
      }
      for (const { offset, view } of views) assert.deepEqual(view, stream.subarray(offset, offset + view.length));
    }),
    { numRuns: 300, seed: seedFromEnv() | 0 },
  );
});

test('SendBuffer: writes, copies out by stream offset across ring wrap and growth, frees on ack', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 5000 })), { maxLength: 60 }), (steps) => {
      const sb = new SendBuffer(9000);
      let written = 0;
      let acked = 0;
      const src = new Uint8Array(200_000).map((_, i) => (i * 7 + 3) & 0xff);
      for (const [w, a] of steps) {
        const n = sb.write(src, written, Math.min(w, src.length - written));
        assert.equal(n, Math.min(w, src.length - written, 9000 - (written - acked)));
        written += n;
        assert.equal(sb.endOffset, written);
        // copy out an arbitrary held range and check it
        const from = acked + Math.floor((written - acked) / 3);
        const len = written - from;
        const dst = new Uint8Array(len);
        sb.copyOut(from, len, dst, 0);
        assert.deepEqual(dst, src.subarray(from, written));
        acked = Math.min(written, acked + a);
        sb.ackUpTo(acked);
        assert.equal(sb.startOffset, acked);
        assert.equal(sb.freeBytes, 9000 - (written - acked));
      }
    }),
    { numRuns: 500, seed: seedFromEnv() | 0 },
  );
});
