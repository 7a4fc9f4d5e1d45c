// The resumable transfer's drivers over in-memory streams and a real disk: a cut transfer resumes from the
// checkpoint with its hash state rebuilt, nothing partial is listed as received, an original receiver gets the
// single FILE frame, stale partials are swept.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/logger.js';
import { PORT_DATAEXCHANGE } from '../../../src/wire/address.js';
import {
  Inbox,
  PartialStore,
  ReceivedFiles,
  sendFile,
  serveDataExchange,
  startServices,
  type RunningServices,
} from '../../../src/services/index.js';
import { MemoryNetwork as BaseNetwork } from './memory-host.js';

/** Every network made here, so after() removes their temp homes (some hold 10+ MB files). */
const networks: BaseNetwork[] = [];
class MemoryNetwork extends BaseNetwork {
  constructor() {
    super();
    networks.push(this);
  }
}
after(() => {
  for (const n of networks) n.cleanup();
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function start(server: Parameters<typeof startServices>[0]): RunningServices {
  const s = startServices(server, { echo: false, dataExchange: true, eventStream: false, logger: silentLogger() });
  assert.ok(s.ok);
  return s.value;
}

test('a transfer cut by a receiver restart resumes from its checkpoint and lands whole, hash checked', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'alice');
  const file = randomBytes(13 * 1024 * 1024 + 123);
  const path = join(client.home, 'big.bin');
  writeFileSync(path, file);

  let svc = start(server);
  let isCut = false;
  let sawPartialOnly = false;
  const restarted = new Promise<void>((resolve) => {
    void (async () => {
      // Wait until 9 MiB went out (two 4 MiB checkpoints), then stop the receiver's services mid-way.
      while (!isCut) await new Promise((r) => setTimeout(r, 5));
      await svc.stop();
      const partials = readdirSync(join(server.home, 'partial'));
      const listed = await new ReceivedFiles(join(server.home, 'received')).list();
      sawPartialOnly = partials.some((n) => n.endsWith('.part')) && listed.ok && listed.value.length === 0;
      await new Promise((r) => setTimeout(r, 300));
      svc = start(server);
      resolve();
    })();
  });
  const r = await sendFile(
    client,
    'server',
    path,
    (done) => {
      if (done >= 9 * 1024 * 1024) isCut = true;
    },
    { retryForMs: 30_000 },
  );
  await restarted;
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.equal(r.value.protocol, 'resumable');
  assert.ok(r.value.attempts >= 2, `attempts ${r.value.attempts}`);
  assert.equal(r.value.resume_offsets[0], 0);
  const resumedAt = r.value.resume_offsets[r.value.resume_offsets.length - 1]!;
  assert.ok(resumedAt >= 4 * 1024 * 1024, `the second connection resumed at ${resumedAt}, not from zero`);
  assert.ok(sawPartialOnly, 'while cut: a partial in partial/, nothing listed in received/');
  const stored = readFileSync(join(server.home, 'received', 'big.bin'));
  assert.equal(sha(stored), sha(file));
  assert.equal(r.value.sha256, sha(file));
  const list = await svc.received.list();
  assert.ok(list.ok);
  assert.equal(list.value[0]?.sha256, sha(file));
  assert.deepEqual(readdirSync(join(server.home, 'partial')), [], 'the partial is gone once published');
  await svc.stop();
});

test('without retryForMs a cut is reported at once (resumable, with a hint); sending again resumes', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'alice');
  const file = randomBytes(40 * 1024 * 1024); // past the 32 MiB window: the sender waits for checkpoints
  const path = join(client.home, 'again.bin');
  writeFileSync(path, file);
  let svc = start(server);
  let isStopping = false;
  // Cut once the receiver has checkpointed ≥ 4 MiB (what the sender has sent says nothing about that on a
  // loaded machine: its window is 32 MiB).
  const checkpointed = (): number => {
    const dir = join(server.home, 'partial');
    let best = 0;
    try {
      for (const n of readdirSync(dir)) {
        if (!n.endsWith('.json')) continue;
        try {
          best = Math.max(best, Number(JSON.parse(readFileSync(join(dir, n), 'utf8')).offset) || 0);
        } catch {
          /* being rewritten */
        }
      }
    } catch {
      /* not made yet */
    }
    return best;
  };
  const first = await sendFile(client, 'server', path, () => {
    if (!isStopping && checkpointed() >= 4 * 1024 * 1024) {
      isStopping = true;
      void svc.stop();
    }
  });
  assert.ok(isStopping, 'the receiver checkpointed 4 MiB before the end');
  assert.ok(!first.ok);
  assert.ok(['connection_failed', 'timeout'].includes(first.error.code), first.error.code);
  assert.equal(first.error.detail?.resumable, true);
  assert.match(first.error.hint ?? '', /send the same file again/);
  svc = start(server);
  const again = await sendFile(client, 'server', path);
  assert.ok(again.ok, again.ok ? '' : again.error.message);
  assert.equal(again.value.attempts, 1);
  assert.ok(again.value.resumed_from >= 4 * 1024 * 1024, `resumed at ${again.value.resumed_from}`);
  assert.equal(sha(readFileSync(join(server.home, 'received', 'again.bin'))), sha(file));
  await svc.stop();
});

test('a partial of the same content from the same sender resumes under any name; another sender starts over', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const alice = net.addHost(2, 'alice');
  const file = randomBytes(2 * 1024 * 1024);
  const store = new PartialStore(join(server.home, 'partial'));
  const offer = { version: 1, size: file.length, sha256: sha(file), name: 'a.bin' };
  const p = await store.open({ addr: alice.address, nodeId: 2, hostname: 'alice' }, offer);
  assert.ok(p.ok);
  assert.ok((await p.value.append(file.subarray(0, 1_000_000))).ok);
  assert.ok((await p.value.checkpoint(1_000_000)).ok);
  assert.ok((await p.value.append(file.subarray(1_000_000, 1_200_000))).ok, 'written but not checkpointed');
  await p.value.release();

  const again = await store.open({ addr: alice.address, nodeId: 2, hostname: 'alice' }, { ...offer, name: 'renamed.bin' });
  assert.ok(again.ok);
  assert.equal(again.value.offset, 1_000_000, 'cut back to the checkpoint');
  assert.ok((await again.value.append(file.subarray(1_000_000))).ok);
  assert.equal(again.value.digest(), sha(file), 'hash state rebuilt from the partial on disk');
  await again.value.release();

  const other = await store.open({ addr: '0:0000.0000.0009', nodeId: 9, hostname: null }, offer);
  assert.ok(other.ok);
  assert.equal(other.value.offset, 0);
  await other.value.discard();
  assert.ok(existsSync(again.value.path));
});

test('stale partials are deleted after PARTIAL_STALE_MS; fresh ones stay', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  let nowMs = Date.now();
  const store = new PartialStore(join(server.home, 'partial'), { nowMs: () => nowMs });
  const p = await store.open({ addr: 'x', nodeId: 3, hostname: null }, { version: 1, size: 10, sha256: sha(Buffer.alloc(10)), name: 'x' });
  assert.ok(p.ok);
  await p.value.append(Buffer.alloc(5));
  await p.value.checkpoint(5);
  await p.value.release();
  assert.equal(await store.sweep(), 0);
  nowMs += 25 * 60 * 60 * 1000;
  assert.equal(await store.sweep(), 1);
  assert.deepEqual(readdirSync(join(server.home, 'partial')), []);
});

test('too many unfinished transfers from one sender: quota_exceeded with a hint', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const store = new PartialStore(join(server.home, 'partial'), { maxPerPeer: 2 });
  const from = { addr: 'p', nodeId: 4, hostname: null };
  for (let i = 0; i < 2; i++) {
    const p = await store.open(from, { version: 1, size: 10, sha256: sha(Buffer.from([i])), name: `f${i}` });
    assert.ok(p.ok);
    await p.value.release();
  }
  const third = await store.open(from, { version: 1, size: 10, sha256: sha(Buffer.from([9])), name: 'f9' });
  assert.ok(!third.ok);
  assert.equal(third.error.code, 'quota_exceeded');
  assert.match(third.error.hint ?? '', /24 h/);
});

test('the receiver quota refuses an offer up front: quota_exceeded reaches the sender, nothing stored', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'alice');
  const s = startServices(server, { echo: false, dataExchange: true, eventStream: false, logger: silentLogger(), quotas: undefined, received: new ReceivedFiles(join(server.home, 'received'), { quota: { perPeerBytes: 1000 } }) });
  assert.ok(s.ok);
  const path = join(client.home, 'f.bin');
  writeFileSync(path, randomBytes(5000));
  const r = await sendFile(client, 'server', path);
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'quota_exceeded');
  assert.ok(r.error.hint);
  assert.deepEqual((await s.value.received.list()).ok && (await s.value.received.list()), { ok: true, value: [] });
  await s.value.stop();
});

test('an original receiver (no resumable transfers) gets the single FILE frame; > 16 MiB is refused with a hint', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'original');
  const client = net.addHost(2, 'alice');
  const received = new ReceivedFiles(join(server.home, 'received'));
  const inbox = new Inbox(join(server.home, 'inbox'));
  const ln = server.listen(PORT_DATAEXCHANGE);
  assert.ok(ln.ok);
  const offers: number[] = [];
  void (async () => {
    for (;;) {
      const st = await ln.value.accept();
      if (st === null) return;
      st.on('data', (d: Buffer) => {
        if (d.length >= 4) offers.push(d.readUInt32BE(0));
      });
      void serveDataExchange(st, {
        inbox,
        received,
        hostnameOf: () => null,
        logger: silentLogger(),
        maxFramePayloadBytes: 1 << 24,
        maxFileBytes: 1 << 24,
      });
    }
  })();
  const small = join(client.home, 'small.txt');
  writeFileSync(small, 'hello original');
  const r = await sendFile(client, 'original', small);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.equal(r.value.protocol, 'single-frame');
  assert.equal(readFileSync(join(server.home, 'received', 'small.txt'), 'utf8'), 'hello original');

  const big = join(client.home, 'big.bin');
  writeFileSync(big, Buffer.alloc(17 * 1024 * 1024));
  const b = await sendFile(client, 'original', big);
  assert.ok(!b.ok);
  assert.equal(b.error.code, 'invalid_argument');
  assert.match(b.error.message, /16 MiB/);
  assert.ok(b.error.hint);
  ln.value.close();
});

test('received: --limit/--since page oldest first; a cursor continues strictly after', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'alice');
  let t = Date.parse('2026-01-01T00:00:00Z');
  const received = new ReceivedFiles(join(server.home, 'received'), { now: () => new Date((t += 1000)) });
  const s = startServices(server, { echo: false, dataExchange: true, eventStream: false, logger: silentLogger(), received });
  assert.ok(s.ok);
  for (let i = 0; i < 5; i++) {
    const p = join(client.home, `f${i}.txt`);
    writeFileSync(p, `file ${i}`);
    assert.ok((await sendFile(client, 'server', p)).ok);
  }
  const p1 = await received.page({ limit: 2 });
  assert.ok(p1.ok);
  assert.deepEqual(p1.value.files.map((f) => f.name), ['f0.txt', 'f1.txt']);
  assert.equal(p1.value.has_more, true);
  const p2 = await received.page({ limit: 2, since: p1.value.next_since! });
  assert.ok(p2.ok);
  assert.deepEqual(p2.value.files.map((f) => f.name), ['f2.txt', 'f3.txt']);
  const byTime = await received.page({ since: '2026-01-01T00:00:04Z' });
  assert.ok(byTime.ok);
  assert.deepEqual(byTime.value.files.map((f) => f.name), ['f3.txt', 'f4.txt']);
  const bad = await received.page({ since: 'yesterday' });
  assert.ok(!bad.ok);
  assert.equal(bad.error.code, 'invalid_argument');
  await s.value.stop();
});

/** Speak the transfer protocol by hand on a fresh 1001 connection; returns the frames the receiver sent. */
async function rawTransfer(client: ReturnType<MemoryNetwork['addHost']>, frames: Uint8Array[]): Promise<string[]> {
  const { XferFrameReader } = await import('../../../src/services/file-transfer-codec.js');
  const d = await client.dial('server', PORT_DATAEXCHANGE);
  assert.ok(d.ok);
  const st = d.value;
  st.on('error', () => {});
  for (const f of frames) st.write(f);
  st.end();
  const reader = new XferFrameReader();
  const got: string[] = [];
  for await (const chunk of st) reader.push(chunk as Buffer);
  for (;;) {
    const f = reader.next();
    if (!f.ok || f.value === null) break;
    got.push(f.value.type === 'refuse' ? `refuse:${f.value.refusal.code}` : f.value.type === 'ack' ? 'ack' : f.value.type);
  }
  return got;
}

test('a wrong hash is refused end to end: hash_mismatch, nothing in received/, the partial deleted', async () => {
  const { encodeOffer, encodeData, encodeEnd } = await import('../../../src/services/file-transfer-codec.js');
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'mallory');
  const svc = start(server);
  const data = randomBytes(100_000);
  const offer = encodeOffer({ name: 'evil.bin', size: data.length, sha256: sha(Buffer.from('something else')) });
  assert.ok(offer.ok);
  const got = await rawTransfer(client, [offer.value, encodeData(0, data), encodeEnd()]);
  assert.equal(got[0], 'accept');
  assert.equal(got[got.length - 1], 'refuse:hash_mismatch');
  assert.deepEqual((await svc.received.list()).ok && (await svc.received.list()), { ok: true, value: [] });
  assert.ok(!existsSync(join(server.home, 'received', 'evil.bin')));
  assert.deepEqual(readdirSync(join(server.home, 'partial')), []);
  await svc.stop();
});

test('hostile senders: a gap in the data or a frame of 4 GiB is refused (invalid_argument); the service keeps serving', async () => {
  const { encodeOffer, encodeData } = await import('../../../src/services/file-transfer-codec.js');
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'mallory');
  const svc = start(server);
  const offer = encodeOffer({ name: 'x.bin', size: 1000, sha256: sha(Buffer.alloc(1000)) });
  assert.ok(offer.ok);
  assert.deepEqual(await rawTransfer(client, [offer.value, encodeData(500, Buffer.alloc(10))]), ['accept', 'refuse:invalid_argument']);
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(0x50460003, 0);
  huge.writeUInt32BE(0xffffffff, 4);
  assert.deepEqual(await rawTransfer(client, [offer.value, huge]), ['accept', 'refuse:invalid_argument']);
  // Still serving: a real send goes through.
  const p = join(client.home, 'ok.txt');
  writeFileSync(p, 'fine');
  const r = await sendFile(client, 'server', p);
  assert.ok(r.ok);
  await svc.stop();
});
