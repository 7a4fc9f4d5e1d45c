// The resumable transfer's sans-IO machines and frames (src/services/file-transfer-{machine,codec}.ts):
// bytes + now in, bytes/actions out; a fake disk and a loop stand in for the drivers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  ReceiverMachine,
  SenderMachine,
  type ReceiverAction,
  type SenderAction,
} from '../../../src/services/file-transfer-machine.js';
import {
  decodeXferFrame,
  encodeAccept,
  encodeAck,
  encodeData,
  encodeDone,
  encodeEnd,
  encodeOffer,
  encodeRefuse,
  XferFrameReader,
  XFER_ACCEPT,
  XFER_DATA,
  XFER_OFFER,
} from '../../../src/services/file-transfer-codec.js';
import { encodeFrame, FRAME_TYPE_TEXT } from '../../../src/services/data-exchange-codec.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function fileOf(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** Frames in `bytes` (all whole), decoded. */
function framesOf(bytes: Uint8Array[]): ReturnType<typeof decodeXferFrame>[] {
  const r = new XferFrameReader();
  for (const b of bytes) r.push(b);
  const out = [];
  for (;;) {
    const f = r.next();
    if (f.ok && f.value === null) break;
    out.push(f as ReturnType<typeof decodeXferFrame>);
    if (!f.ok) break;
  }
  return out;
}

interface PairResult {
  disk: Buffer;
  published: boolean;
  discarded: boolean;
  released: boolean;
  senderOutcome: SenderAction | null;
  receiverActions: ReceiverAction['kind'][];
  dataOffsets: number[];
}

/**
 * Run one connection between the two machines in memory. The receiver's disk starts with `disk` of which
 * `checkpointed` bytes count (a resume); `tamper` may change a DATA chunk on the way; `cutAfterBytes` ends the
 * connection once that many file bytes reached the receiver.
 */
function runPair(
  file: Buffer,
  o: { disk?: Buffer; checkpointed?: number; tamper?: (off: number, d: Buffer) => Buffer; cutAfterBytes?: number; ackIntervalBytes?: number; chunkBytes?: number; windowBytes?: number; claimedSha?: string } = {},
): PairResult {
  let now = 0;
  const s = SenderMachine.create({ name: 'f.bin', size: file.length, sha256: o.claimedSha ?? sha(file) }, now, { chunkBytes: o.chunkBytes ?? 1000, windowBytes: o.windowBytes ?? 8000 });
  assert.ok(s.ok);
  const sender = s.value;
  const rx = new ReceiverMachine(now, { ackIntervalBytes: o.ackIntervalBytes ?? 3000 });
  let disk = Buffer.from((o.disk ?? Buffer.alloc(0)).subarray(0, o.checkpointed ?? 0));
  const res: PairResult = { disk, published: false, discarded: false, released: false, senderOutcome: null, receiverActions: [], dataOffsets: [] };
  const toSender: Uint8Array[] = [];
  let isClosed = false;
  let received = 0;

  const runRx = (actions: ReceiverAction[]): void => {
    const q = [...actions];
    while (q.length > 0) {
      const a = q.shift()!;
      res.receiverActions.push(a.kind);
      switch (a.kind) {
        case 'send':
          toSender.push(a.bytes);
          break;
        case 'open':
          q.unshift(...rx.handleOpened(disk.length));
          break;
        case 'write':
          assert.equal(a.offset, disk.length, 'writes are contiguous');
          disk = Buffer.concat([disk, a.data]);
          q.unshift(...rx.handleWritten(a.offset + a.data.length));
          break;
        case 'checkpoint':
          q.unshift(...rx.handleCheckpointed(a.offset));
          break;
        case 'digest':
          q.unshift(...rx.handleDigest(sha(disk)));
          break;
        case 'publish':
          res.published = true;
          q.unshift(...rx.handlePublished({ name: 'f.bin', size: disk.length, sha256: sha(disk) }));
          break;
        case 'discard':
          res.discarded = true;
          break;
        case 'release':
          res.released = true;
          break;
        case 'close':
          isClosed = true;
          break;
      }
    }
  };
  const onSender = (actions: SenderAction[]): void => {
    for (const a of actions) if (a.kind !== 'send' && res.senderOutcome === null) res.senderOutcome = a;
  };

  runRx(rx.handleBytes(sender.offerBytes, now));
  for (let guard = 0; guard < 100_000 && res.senderOutcome === null; guard++) {
    now += 10;
    while (toSender.length > 0) onSender(sender.handleBytes(toSender.shift()!, now));
    if (res.senderOutcome !== null) break;
    if (o.cutAfterBytes !== undefined && received >= o.cutAfterBytes) {
      runRx(rx.handleEof());
      onSender(sender.handleEof());
      break;
    }
    const next = sender.pollNext(now);
    if (next === null) {
      if (isClosed) onSender(sender.handleEof());
      continue;
    }
    if (next.kind === 'end') {
      runRx(rx.handleBytes(next.bytes, now));
      continue;
    }
    res.dataOffsets.push(next.offset);
    let chunk = file.subarray(next.offset, next.offset + next.length);
    if (o.tamper) chunk = o.tamper(next.offset, Buffer.from(chunk));
    received += chunk.length;
    // Deliver the header and the data in two pieces, as the driver writes them.
    runRx(rx.handleBytes(next.header, now));
    runRx(rx.handleBytes(chunk, now));
  }
  res.disk = disk;
  return res;
}

test('a whole transfer: contiguous DATA, acknowledged, hash checked, published, DONE', () => {
  const file = fileOf(10_500);
  const r = runPair(file);
  assert.equal(r.senderOutcome?.kind, 'done');
  assert.ok(r.published && !r.discarded);
  assert.ok(r.disk.equals(file));
  assert.ok(r.receiverActions.includes('checkpoint'));
  assert.deepEqual(r.dataOffsets, Array.from({ length: 11 }, (_, i) => i * 1000));
  const done = r.senderOutcome as Extract<SenderAction, { kind: 'done' }>;
  assert.equal(done.resumedFrom, 0);
  assert.equal(done.done.sha256, sha(file));
});

test('an empty file goes through (OFFER, ACCEPT 0, END, DONE)', () => {
  const r = runPair(Buffer.alloc(0));
  assert.equal(r.senderOutcome?.kind, 'done');
  assert.ok(r.published);
});

test('resume: the receiver accepts at its checkpointed offset and the sender sends only the rest', () => {
  const file = fileOf(9000, 7);
  const first = runPair(file, { cutAfterBytes: 5000 });
  assert.equal(first.senderOutcome?.kind, 'fail');
  assert.equal((first.senderOutcome as Extract<SenderAction, { kind: 'fail' }>).retryable, true);
  assert.ok(first.released, 'the partial is kept');
  assert.ok(!first.published);
  // Checkpoints every 3000 bytes: 3000 is durable, more may be on disk but is cut back on resume.
  const second = runPair(file, { disk: first.disk, checkpointed: 3000 });
  assert.equal(second.senderOutcome?.kind, 'done');
  assert.equal((second.senderOutcome as Extract<SenderAction, { kind: 'done' }>).resumedFrom, 3000);
  assert.equal(second.dataOffsets[0], 3000);
  assert.ok(second.disk.equals(file));
});

test('a wrong hash is refused: the partial is discarded, nothing published, the sender gets hash_mismatch', () => {
  const file = fileOf(5000, 3);
  const r = runPair(file, { tamper: (off, d) => (off === 2000 ? (d[5] ^= 0xff, d) : d) });
  assert.ok(!r.published, 'file not published');
  assert.ok(r.discarded);
  assert.equal(r.senderOutcome?.kind, 'fail');
  const f = r.senderOutcome as Extract<SenderAction, { kind: 'fail' }>;
  assert.equal(f.error.code, 'hash_mismatch');
  assert.equal(f.retryable, false);
});

test('an offer whose SHA-256 is not the content\'s is refused at the end the same way', () => {
  const file = fileOf(100);
  const r = runPair(file, { claimedSha: 'ab'.repeat(32) });
  assert.ok(!r.published && r.discarded);
  assert.equal((r.senderOutcome as Extract<SenderAction, { kind: 'fail' }>).error.code, 'hash_mismatch');
});

test('the sender keeps at most windowBytes unacknowledged', () => {
  const file = fileOf(50_000);
  const s = SenderMachine.create({ name: 'x', size: file.length, sha256: sha(file) }, 0, { chunkBytes: 1000, windowBytes: 4000 });
  assert.ok(s.ok);
  s.value.handleBytes(encodeAccept(0), 1);
  let n = 0;
  while (s.value.pollNext(2) !== null) n++;
  assert.equal(n, 4);
  assert.deepEqual(s.value.handleBytes(encodeAck(2000), 3), []);
  assert.equal(s.value.pollNext(4)?.kind, 'data');
  assert.equal(s.value.pollNext(4)?.kind, 'data');
  assert.equal(s.value.pollNext(4), null);
});

test('sender: an original receiver\'s "ACK UNKNOWN(…)" answer to the OFFER means the single-frame fallback', () => {
  const s = SenderMachine.create({ name: 'x', size: 10, sha256: sha(Buffer.alloc(10)) }, 0);
  assert.ok(s.ok);
  const offerLen = s.value.offerBytes.length - 8;
  const ack = encodeFrame(FRAME_TYPE_TEXT, Buffer.from(`ACK UNKNOWN(${XFER_OFFER}) ${offerLen} bytes`));
  assert.ok(ack.ok);
  assert.deepEqual(s.value.handleBytes(ack.value, 1), [{ kind: 'legacy' }]);
  assert.equal(s.value.pollNext(2), null, 'no transfer frame is ever sent to it');
});

test('sender: hostile receiver frames end the attempt with an error, never a throw', () => {
  const mk = () => {
    const s = SenderMachine.create({ name: 'x', size: 5000, sha256: sha(Buffer.alloc(5000)) }, 0, { chunkBytes: 1000 });
    assert.ok(s.ok);
    return s.value;
  };
  const past = mk();
  assert.equal(past.handleBytes(encodeAccept(6000), 1)[0]?.kind, 'fail');
  const ackAhead = mk();
  ackAhead.handleBytes(encodeAccept(0), 1);
  ackAhead.pollNext(1);
  const a = ackAhead.handleBytes(encodeAck(3000), 2);
  assert.equal(a[0]?.kind, 'fail');
  const earlyDone = mk();
  earlyDone.handleBytes(encodeAccept(0), 1);
  assert.equal(earlyDone.handleBytes(encodeDone({ name: 'x', size: 5000, sha256: sha(Buffer.alloc(5000)) }), 2)[0]?.kind, 'fail');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const s = mk();
      s.handleBytes(bytes, 1);
      s.handleEof();
    }),
    { numRuns: 300 },
  );
});

test('refusals carry their code and hint to the sender (quota_exceeded)', () => {
  const rx = new ReceiverMachine(0);
  const s = SenderMachine.create({ name: 'big', size: 1000, sha256: sha(Buffer.alloc(1000)) }, 0);
  assert.ok(s.ok);
  const a = rx.handleBytes(s.value.offerBytes, 1);
  assert.equal(a[0]?.kind, 'open');
  const refused = rx.handleFailed({ code: 'quota_exceeded', message: 'received files quota for x reached', hint: 'free space' });
  assert.deepEqual(refused.map((x) => x.kind), ['send', 'close'], 'no partial existed, none released');
  const frame = refused[0] as Extract<ReceiverAction, { kind: 'send' }>;
  const out = s.value.handleBytes(frame.bytes, 2);
  assert.equal(out[0]?.kind, 'fail');
  const f = out[0] as Extract<SenderAction, { kind: 'fail' }>;
  assert.equal(f.error.code, 'quota_exceeded');
  assert.equal(f.error.hint, 'free space');
  assert.equal(f.retryable, false);
});

test('receiver: an offer over maxFileBytes is refused with quota_exceeded and a hint, before anything is opened', () => {
  const rx = new ReceiverMachine(0, { maxFileBytes: 100 });
  const offer = encodeOffer({ name: 'a', size: 101, sha256: sha(Buffer.alloc(1)) });
  assert.ok(offer.ok);
  const a = rx.handleBytes(offer.value, 0);
  assert.ok(!a.some((x) => x.kind === 'open'));
  const f = framesOf([(a.find((x) => x.kind === 'send') as Extract<ReceiverAction, { kind: 'send' }>).bytes])[0]!;
  assert.ok(f.ok && f.value?.type === 'refuse');
  if (f.ok && f.value?.type === 'refuse') {
    assert.equal(f.value.refusal.code, 'quota_exceeded');
    assert.ok(f.value.refusal.hint);
  }
});

function openedReceiver(size: number): ReceiverMachine {
  const rx = new ReceiverMachine(0, { ackIntervalBytes: 1000 });
  const offer = encodeOffer({ name: 'a', size, sha256: sha(Buffer.alloc(size)) });
  assert.ok(offer.ok);
  rx.handleBytes(offer.value, 0);
  rx.handleOpened(0);
  return rx;
}

function refusalCode(actions: ReceiverAction[]): string | null {
  const send = actions.filter((a) => a.kind === 'send') as Array<Extract<ReceiverAction, { kind: 'send' }>>;
  for (const s of send) {
    const f = framesOf([s.bytes])[0];
    if (f?.ok && f.value?.type === 'refuse') return f.value.refusal.code;
  }
  return null;
}

test('receiver: out-of-order, overlong and early-END data is refused (invalid_argument); the partial is kept', () => {
  const gap = openedReceiver(5000);
  const g = gap.handleBytes(encodeData(100, Buffer.alloc(10)), 1);
  assert.equal(refusalCode(g), 'invalid_argument');
  assert.ok(g.some((a) => a.kind === 'release'));
  assert.equal(gap.state, 'closed');

  const over = openedReceiver(50);
  assert.equal(refusalCode(over.handleBytes(encodeData(0, Buffer.alloc(51)), 1)), 'invalid_argument');

  const early = openedReceiver(50);
  early.handleBytes(encodeData(0, Buffer.alloc(20)), 1);
  early.handleWritten(20);
  assert.equal(refusalCode(early.handleBytes(encodeEnd(), 2)), 'invalid_argument');

  const twice = openedReceiver(50);
  const o2 = encodeOffer({ name: 'b', size: 1, sha256: sha(Buffer.alloc(1)) });
  assert.ok(o2.ok);
  assert.equal(refusalCode(twice.handleBytes(o2.value, 1)), 'invalid_argument');

  const huge = openedReceiver(50);
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32BE(XFER_DATA, 0);
  hdr.writeUInt32BE(0xffffffff, 4);
  assert.equal(refusalCode(huge.handleBytes(hdr, 1)), 'invalid_argument', 'a 4 GiB frame header is refused before any payload');

  const first = new ReceiverMachine(0);
  assert.equal(refusalCode(first.handleBytes(encodeAccept(0), 0)), 'invalid_argument', 'only an OFFER opens a transfer');
});

test('receiver: ACKs only checkpointed offsets, at most one checkpoint in flight', () => {
  const rx = openedReceiver(3000);
  const a1 = rx.handleBytes(encodeData(0, Buffer.alloc(1500)), 1);
  assert.deepEqual(a1.map((a) => a.kind), ['write']);
  const w1 = rx.handleWritten(1500);
  assert.deepEqual(w1, [{ kind: 'checkpoint', offset: 1500 }]);
  rx.handleBytes(encodeData(1500, Buffer.alloc(1500)), 2);
  assert.deepEqual(rx.handleWritten(3000), [], 'one checkpoint at a time');
  const c1 = rx.handleCheckpointed(1500);
  const acks = framesOf(c1.filter((a) => a.kind === 'send').map((a) => (a as Extract<ReceiverAction, { kind: 'send' }>).bytes));
  assert.deepEqual(acks.map((f) => f.ok && f.value), [{ type: 'ack', offset: 1500 }]);
  assert.deepEqual(c1.filter((a) => a.kind === 'checkpoint'), [{ kind: 'checkpoint', offset: 3000 }]);
});

test('receiver: an idle sender times out (partial kept); a stream end before END releases it', () => {
  const rx = openedReceiver(100);
  assert.deepEqual(rx.handleTimeout(1_000_000), []);
  const t = rx.handleTimeout(61_000_000);
  assert.deepEqual(t.map((a) => a.kind), ['release', 'close']);
  assert.equal((t[1] as Extract<ReceiverAction, { kind: 'close' }>).error?.code, 'timeout');

  const e = openedReceiver(100);
  assert.deepEqual(e.handleEof().map((a) => a.kind), ['release', 'close']);
  assert.deepEqual(new ReceiverMachine(0).handleEof().map((a) => a.kind), ['close'], 'no offer, nothing to keep');
});

test('receiver: random bytes never throw and never publish', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 8 }), fc.boolean(), (chunks, withOffer) => {
      const rx = new ReceiverMachine(0);
      const acts: ReceiverAction[] = [];
      if (withOffer) {
        const o = encodeOffer({ name: 'a', size: 300, sha256: sha(Buffer.alloc(300)) });
        assert.ok(o.ok);
        acts.push(...rx.handleBytes(o.value, 0));
        acts.push(...rx.handleOpened(0));
      }
      let off = 0;
      for (const c of chunks) {
        for (const a of rx.handleBytes(c, 1)) {
          acts.push(a);
          if (a.kind === 'write') {
            off = a.offset + a.data.length;
            acts.push(...rx.handleWritten(off));
          }
          if (a.kind === 'checkpoint') acts.push(...rx.handleCheckpointed(a.offset));
          if (a.kind === 'digest') acts.push(...rx.handleDigest('00'.repeat(32)));
        }
      }
      assert.ok(!acts.some((a) => a.kind === 'publish'));
    }),
    { numRuns: 500 },
  );
});

test('frames: round trips, and decoders are total on any type and payload', () => {
  const o = encodeOffer({ name: 'résumé.pdf', size: 2 ** 40, sha256: 'cd'.repeat(32) });
  assert.ok(o.ok);
  const f = framesOf([o.value])[0]!;
  assert.deepEqual(f.ok && f.value, { type: 'offer', offer: { version: 1, name: 'résumé.pdf', size: 2 ** 40, sha256: 'cd'.repeat(32) } });
  const more = framesOf([encodeAccept(7), encodeAck(9), encodeData(3, Buffer.from('hi')), encodeEnd(), encodeDone({ name: 'n', size: 2, sha256: 'ef'.repeat(32) }), encodeRefuse({ code: 'hash_mismatch', message: 'm', hint: 'h' })]);
  assert.deepEqual(
    more.map((x) => x.ok && x.value && x.value.type),
    ['accept', 'ack', 'data', 'end', 'done', 'refuse'],
  );
  assert.ok(!encodeOffer({ name: '', size: 1, sha256: 'cd'.repeat(32) }).ok, 'an empty name is refused');
  assert.ok(!encodeOffer({ name: 'a', size: -1, sha256: 'cd'.repeat(32) }).ok);
  // A REFUSE with an unknown code becomes internal rather than an invented code.
  const weird = decodeXferFrame(0x50460007, Buffer.from('{"code":"nope","message":5}'));
  assert.ok(weird.ok && weird.value.type === 'refuse' && weird.value.refusal.code === 'internal');
  // u64 above 2^53 is an error, not a wrong number.
  const big = Buffer.alloc(9, 0xff);
  assert.ok(!decodeXferFrame(XFER_ACCEPT, big).ok);
  fc.assert(
    fc.property(fc.integer({ min: 0x50460000, max: 0x50460010 }), fc.uint8Array({ maxLength: 120 }), (type, payload) => {
      decodeXferFrame(type, payload);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
      const r = new XferFrameReader(1024);
      for (const c of chunks) {
        r.push(c);
        for (let i = 0; i < 20; i++) {
          const n = r.next();
          if (!n.ok || n.value === null) break;
        }
      }
    }),
    { numRuns: 1000 },
  );
});

test('receiver: on a slow link a checkpoint (and so an ACK) comes about every second, whatever the byte count', () => {
  const rx = new ReceiverMachine(0, { ackIntervalBytes: 1 << 30 });
  const offer = encodeOffer({ name: 'a', size: 1000, sha256: sha(Buffer.alloc(1000)) });
  assert.ok(offer.ok);
  rx.handleBytes(offer.value, 0);
  rx.handleOpened(0);
  rx.handleBytes(encodeData(0, Buffer.alloc(10)), 500_000);
  assert.deepEqual(rx.handleWritten(10), [], 'half a second: not yet');
  rx.handleBytes(encodeData(10, Buffer.alloc(10)), 1_200_000);
  assert.deepEqual(rx.handleWritten(20), [{ kind: 'checkpoint', offset: 20 }]);
});

test('sender: a receiver silent for the idle timeout while data is unacknowledged ends the attempt (retryable)', () => {
  const s = SenderMachine.create({ name: 'x', size: 10_000, sha256: sha(Buffer.alloc(10_000)) }, 0, { chunkBytes: 1000, idleTimeoutUs: 5_000_000 });
  assert.ok(s.ok);
  s.value.handleBytes(encodeAccept(0), 0);
  s.value.pollNext(0);
  assert.deepEqual(s.value.handleTimeout(4_000_000), []);
  const t = s.value.handleTimeout(5_000_001);
  assert.equal(t[0]?.kind, 'fail');
  const f = t[0] as Extract<SenderAction, { kind: 'fail' }>;
  assert.equal(f.error.code, 'timeout');
  assert.equal(f.retryable, true);
});

test('sender: a rate cap paces DATA (one chunk of burst, then rate × time), and pacedUntil says when the next goes', () => {
  const file = fileOf(100 * 1024);
  // 64 KiB/s, 16 KiB chunks (a quarter second's worth is 16 KiB, so the 32 KiB chunk asked for is cut to it).
  const s = SenderMachine.create({ name: 'x', size: file.length, sha256: sha(file) }, 0, { chunkBytes: 32 * 1024, windowBytes: 1 << 20, rateBytesPerSec: 64 * 1024 });
  assert.ok(s.ok);
  const m = s.value;
  assert.equal(m.pacedUntil(), null, 'nothing to pace before ACCEPT');
  m.handleBytes(encodeAccept(0), 1_000_000);
  const first = m.pollNext(1_000_000);
  assert.equal(first?.kind, 'data');
  assert.equal((first as { length: number }).length, 16 * 1024);
  assert.equal(m.pollNext(1_000_000), null, 'the second chunk waits');
  assert.equal(m.pacedUntil(), 1_250_000, '16 KiB at 64 KiB/s = 250 ms after the start');
  assert.equal(m.pollNext(1_249_999), null);
  assert.equal(m.pollNext(1_250_000)?.kind, 'data');
  // Over 1 s of sending (from ACCEPT at t=1 s to t=2 s): at most rate × 1 s + one chunk.
  let sent = 2 * 16 * 1024;
  for (let t = 1_250_000; t <= 2_000_000; t += 1000) if (m.pollNext(t)?.kind === 'data') sent += 16 * 1024;
  assert.equal(sent, 64 * 1024 + 16 * 1024);
  assert.equal(m.bytesSent, sent);
  // The idle timer is the receiver's only: pacing does not end the attempt while the receiver acknowledges.
  m.handleBytes(encodeAck(sent), 2_000_000);
  assert.deepEqual(m.handleTimeout(2_000_001), []);
});

test('sender: without a cap pacedUntil is null and DATA goes as fast as the window allows', () => {
  const file = fileOf(10_000);
  const s = SenderMachine.create({ name: 'x', size: file.length, sha256: sha(file) }, 0, { chunkBytes: 1000, windowBytes: 1 << 20 });
  assert.ok(s.ok);
  s.value.handleBytes(encodeAccept(0), 0);
  let n = 0;
  while (s.value.pollNext(0)?.kind === 'data') n++;
  assert.equal(n, 10);
  assert.equal(s.value.pacedUntil(), null);
});
