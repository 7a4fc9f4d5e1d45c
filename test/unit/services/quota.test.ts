// Storage limits (issue 10): a trusted peer flooding the inbox or received files gets quota_exceeded at the
// sender, everything stored before stays intact, other peers keep their share; frames stream to disk; the
// inbox lists in pages. Every test here fails on the code before quotas (no refusal, whole-frame buffering,
// no paging).
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_STORAGE_QUOTAS, parseDaemonArgs } from '../../../src/node/daemon-options.js';
import { silentLogger } from '../../../src/core/logger.js';
import { PORT_DATAEXCHANGE } from '../../../src/wire/address.js';
import {
  encodeFrame,
  errAckText,
  FRAME_TYPE_BINARY,
  FRAME_TYPE_TEXT,
  Inbox,
  inboxKeyOf,
  parseAck,
  sanitizeFilename,
  sendFile,
  sendMessage,
  startServices,
  type ServiceOptions,
} from '../../../src/services/index.js';
import { StreamReader, writeChunk } from '../../../src/services/stream-io.js';
import { MemoryNetwork, type MemoryHost } from './memory-host.js';

function setup(extra: Partial<ServiceOptions> = {}) {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const alice = net.addHost(2, 'alice');
  const bob = net.addHost(3, 'bob');
  const svc = startServices(server, { echo: false, dataExchange: true, eventStream: false, logger: silentLogger(), ...extra });
  assert.ok(svc.ok);
  return { net, server, alice, bob, svc: svc.value };
}

const QUOTAS = {
  inboxMessagesPerPeer: 5,
  inboxBytesPerPeer: 0,
  inboxMessages: 8,
  inboxBytes: 0,
  receivedFilesPerPeer: 3,
  receivedBytesPerPeer: 0,
  receivedFiles: 0,
  receivedBytes: 0,
};

/** Frames on one connection; returns each ACK's text. */
async function rawExchange(client: MemoryHost, frames: Uint8Array[]): Promise<string[]> {
  const d = await client.dial('server', PORT_DATAEXCHANGE);
  assert.ok(d.ok);
  const s = d.value;
  s.on('error', () => {});
  const reader = new StreamReader(s);
  const out: string[] = [];
  for (const f of frames) {
    assert.ok((await writeChunk(s, f)).ok);
    const h = await reader.readExactStrict(8);
    assert.ok(h.ok, 'ack header');
    const p = await reader.readExactStrict(h.value.readUInt32BE(4));
    assert.ok(p.ok);
    out.push(p.value.toString());
  }
  s.end();
  return out;
}

test('attack: message flood beyond the per-peer quota → quota_exceeded at the sender, earlier messages intact', async () => {
  const { net, alice, bob, svc } = setup({ quotas: QUOTAS });
  for (let i = 0; i < 5; i++) {
    const r = await sendMessage(alice, 'server', Buffer.from(`msg ${i}`), 'text');
    assert.ok(r.ok && r.value.ack, `message ${i}`);
  }
  const over = await sendMessage(alice, 'server', Buffer.from('one too many'), 'text');
  assert.ok(!over.ok);
  assert.equal(over.error.code, 'quota_exceeded');
  assert.match(over.error.message, /inbox quota for 0:0000\.0000\.0002 reached \(5 of 5 messages stored\)/);
  assert.ok(over.error.hint && /inbox --clear/.test(over.error.hint));

  // Another peer still has its share, until the total (8) is reached.
  for (let i = 0; i < 3; i++) assert.ok((await sendMessage(bob, 'server', Buffer.from(`bob ${i}`), 'text')).ok);
  const total = await sendMessage(bob, 'server', Buffer.from('bob over total'), 'text');
  assert.ok(!total.ok && total.error.code === 'quota_exceeded');
  assert.match(total.error.message, /total inbox quota reached \(8 of 8 messages stored\)/);

  const list = await svc.inbox.list();
  assert.ok(list.ok);
  assert.deepEqual(list.value.map((m) => m.data).sort(), ['bob 0', 'bob 1', 'bob 2', 'msg 0', 'msg 1', 'msg 2', 'msg 3', 'msg 4']);
  assert.deepEqual(readdirSync(svc.inbox.dir).filter((n) => n.endsWith('.tmp')), [], 'no temp file left');

  // Clearing frees the quota again.
  assert.ok((await svc.inbox.clear()).ok);
  assert.ok((await sendMessage(alice, 'server', Buffer.from('after clear'), 'text')).ok);
  await svc.stop();
  net.cleanup();
});

test('attack: the byte quota holds while writing (escaping grows the stored size past the declared one)', async () => {
  const { net, alice, svc } = setup({ quotas: { ...QUOTAS, inboxMessagesPerPeer: 0, inboxBytesPerPeer: 10_000 } });
  // 2,000 control bytes declare 2 KB but store as 12 KB (\u0001 each): refused mid-write, nothing kept.
  const hostile = encodeFrame(FRAME_TYPE_TEXT, Buffer.alloc(2000, 1));
  const fine = encodeFrame(FRAME_TYPE_TEXT, Buffer.from('fine'));
  const tooBig = encodeFrame(FRAME_TYPE_BINARY, Buffer.alloc(20_000, 7));
  assert.ok(hostile.ok && fine.ok && tooBig.ok);
  const acks = await rawExchange(alice, [hostile.value, fine.value, tooBig.value, fine.value]);
  assert.match(acks[0]!, /^ERR TEXT save failed: quota_exceeded: inbox quota for 0:0000\.0000\.0002 reached/);
  assert.equal(acks[1], 'ACK TEXT 4 bytes', 'the connection stays in step after a refusal');
  // Declared size alone is over the limit: refused before anything is written.
  assert.match(acks[2]!, /^ERR BINARY save failed: quota_exceeded: /);
  assert.equal(acks[3], 'ACK TEXT 4 bytes');
  const list = await svc.inbox.list();
  assert.ok(list.ok);
  assert.deepEqual(list.value.map((m) => m.data), ['fine', 'fine']);
  assert.deepEqual(readdirSync(svc.inbox.dir).filter((n) => n.endsWith('.tmp')), []);
  await svc.stop();
  net.cleanup();
});

test('attack: file flood beyond the per-peer count and byte quotas → quota_exceeded, earlier files intact', async () => {
  const { net, alice, bob, svc, server } = setup({ quotas: { ...QUOTAS, receivedBytesPerPeer: 250_000 } });
  const dir = join(alice.home, 'out');
  mkdirSync(dir);
  const shas: string[] = [];
  for (let i = 0; i < 3; i++) {
    const content = Buffer.alloc(50_000, i + 1);
    writeFileSync(join(dir, `f${i}.bin`), content);
    shas.push(createHash('sha256').update(content).digest('hex'));
    const r = await sendFile(alice, 'server', join(dir, `f${i}.bin`));
    assert.ok(r.ok, `file ${i}`);
  }
  writeFileSync(join(dir, 'f3.bin'), 'x');
  const over = await sendFile(alice, 'server', join(dir, 'f3.bin'));
  assert.ok(!over.ok && over.error.code === 'quota_exceeded');
  assert.match(over.error.message, /received files quota for 0:0000\.0000\.0002 reached \(3 of 3 files stored\)/);

  // Bytes: bob's 300 KB file is over 250 KB declared, refused before a byte is written.
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(300_000, 9));
  const big = await sendFile(bob, 'server', join(dir, 'big.bin'));
  assert.ok(!big.ok && big.error.code === 'quota_exceeded');
  assert.match(big.error.message, /bytes used, 300000 more needed/);
  assert.ok((await sendFile(bob, 'server', join(dir, 'f3.bin'))).ok, 'bob still has room for a small one');

  const list = await svc.received.list();
  assert.ok(list.ok);
  const alices = list.value.filter((f) => f.from === alice.address).sort((a, b) => (a.name < b.name ? -1 : 1));
  assert.deepEqual(alices.map((f) => f.sha256), shas);
  for (const f of alices) assert.equal(createHash('sha256').update(readFileSync(f.path)).digest('hex'), f.sha256);
  const meta = readdirSync(join(server.home, 'received', '.pilot-meta'));
  assert.deepEqual(meta.filter((n) => n.startsWith('partial-')), [], 'no partial file left');
  await svc.stop();
  net.cleanup();
});

test('quota usage is learnt from what is already on disk (a restart does not reset it)', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const alice = net.addHost(2, 'alice');
  const first = new Inbox(join(server.home, 'inbox'), { quota: { perPeerCount: 2, totalCount: 0, perPeerBytes: 0, totalBytes: 0 } });
  for (const t of ['a', 'b']) assert.ok((await first.save({ from: alice.address, from_hostname: 'alice', type: 'text', payload: Buffer.from(t) })).ok);
  // The original daemon's files count too (sender read from the file's head).
  writeFileSync(join(server.home, 'inbox', 'TEXT-20240101-000000.000.json'), JSON.stringify({ type: 'TEXT', from: '0:0000.0000.0009', data: 'old', bytes: 3 }));
  const again = new Inbox(join(server.home, 'inbox'), { quota: { perPeerCount: 2, totalCount: 3, perPeerBytes: 0, totalBytes: 0 } });
  const r = await again.save({ from: alice.address, from_hostname: 'alice', type: 'text', payload: Buffer.from('c') });
  assert.ok(!r.ok && r.error.code === 'quota_exceeded');
  assert.deepEqual(again.quota.usage(alice.address).count, 2);
  assert.deepEqual(again.quota.usage('0:0000.0000.0009').count, 1);
  const other = await again.save({ from: '0:0000.0000.0005', from_hostname: null, type: 'text', payload: Buffer.from('d') });
  assert.ok(!other.ok && /total inbox quota reached \(3 of 3/.test(other.error.message));
  net.cleanup();
});

test('large messages stream to disk and come back byte-exact (multi-byte UTF-8 and base64 across chunk edges)', async () => {
  const { net, alice, svc } = setup();
  // 3 MB of 1-4 byte characters: chunk boundaries (64 KiB) split characters.
  const text = 'a\u00e9\u20ac\u{1f600}"\\\n\u202e'.repeat(200_000);
  const bin = Buffer.alloc(3 * 1024 * 1024 + 1);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 7919) & 0xff;
  const t = await sendMessage(alice, 'server', Buffer.from(text, 'utf8'), 'text');
  assert.ok(t.ok && t.value.ack, t.ok ? '' : t.error.message);
  const b = await sendMessage(alice, 'server', bin, 'binary');
  assert.ok(b.ok && b.value.ack);
  const list = await svc.inbox.list();
  assert.ok(list.ok);
  const gotText = list.value.find((m) => m.type === 'text')!;
  assert.equal(gotText.data, text);
  assert.equal(gotText.size, Buffer.byteLength(text));
  const gotBin = list.value.find((m) => m.type === 'binary')!;
  assert.ok(Buffer.from(gotBin.data, 'base64').equals(bin));
  assert.equal(gotBin.encoding, 'base64');
  await svc.stop();
  net.cleanup();
});

test('inbox pages: 3,000 messages in pages by count, by bytes and by time, none lost or repeated', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  let t = 0;
  const inbox = new Inbox(join(server.home, 'inbox'), { now: () => new Date(t), quota: { perPeerCount: 0, totalCount: 0, perPeerBytes: 0, totalBytes: 0 } });
  for (let i = 0; i < 3000; i++) {
    t = Date.parse('2026-01-01T00:00:00Z') + 7 * (i + 1);
    assert.ok((await inbox.save({ from: '0:0000.0000.0002', from_hostname: 'alice', type: 'text', payload: Buffer.from(`m${i}`) })).ok);
  }
  const seen: string[] = [];
  let since: string | undefined;
  let pages = 0;
  for (;;) {
    const p = await inbox.page({ limit: 1000, since });
    assert.ok(p.ok);
    pages++;
    seen.push(...p.value.messages.map((m) => m.data));
    if (!p.value.has_more) break;
    since = p.value.next_since!;
  }
  assert.equal(pages, 3);
  assert.deepEqual(seen, Array.from({ length: 3000 }, (_, i) => `m${i}`));

  // A byte budget cuts the page (always at least one message).
  const small = await inbox.page({ maxBytes: 1000 });
  assert.ok(small.ok && small.value.has_more);
  assert.ok(small.value.messages.length >= 1 && small.value.messages.length < 10, String(small.value.messages.length));
  const one = await inbox.page({ maxBytes: 1 });
  assert.ok(one.ok && one.value.messages.length === 1);

  // An RFC 3339 time: messages at or after it (message i was stamped 7·(i+1) ms after the start).
  const at = new Date(Date.parse('2026-01-01T00:00:00Z') + 7 * 2991).toISOString();
  const tail = await inbox.page({ since: at });
  assert.ok(tail.ok);
  assert.deepEqual(tail.value.messages.map((m) => m.data), ['m2990', 'm2991', 'm2992', 'm2993', 'm2994', 'm2995', 'm2996', 'm2997', 'm2998', 'm2999']);
  assert.equal(tail.value.has_more, false);
  const end = await inbox.page({ since: tail.value.next_since! });
  assert.ok(end.ok && end.value.messages.length === 0 && !end.value.has_more);
  const bad = await inbox.page({ since: 'x y' });
  assert.ok(!bad.ok && bad.error.code === 'invalid_argument');
  assert.equal(inboxKeyOf('TEXT-20240101-000000.000-abcd1234.json'), '20240101-000000.000-abcd1234');
  net.cleanup();
});

test('ack codec: quota refusals carry their code after "save failed: ", other ERRs and ACKs classify as before', () => {
  const q = errAckText(FRAME_TYPE_TEXT, 'inbox quota for x reached', 'quota_exceeded');
  assert.equal(q, 'ERR TEXT save failed: quota_exceeded: inbox quota for x reached');
  assert.deepEqual(parseAck(q), { kind: 'err', code: 'quota_exceeded', reason: 'inbox quota for x reached' });
  assert.deepEqual(parseAck('ERR FILE save failed: disk full'), { kind: 'err', code: null, reason: 'disk full' });
  assert.deepEqual(parseAck('ACK TEXT 5 bytes'), { kind: 'ack' });
  assert.deepEqual(parseAck(null), { kind: 'none' });
  assert.deepEqual(parseAck('garbage'), { kind: 'none' });
  assert.deepEqual(parseAck('ERR weird'), { kind: 'err', code: null, reason: 'weird' });
});

test('paging never misses a message that finished after the page, even one that began before it (streamed writes)', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  let t = Date.parse('2026-01-01T00:00:00Z');
  const inbox = new Inbox(join(server.home, 'inbox'), { now: () => new Date((t += 1000)) });
  const meta = { from: '0:0000.0000.0002', from_hostname: 'alice', type: 'text' as const, bytes: 4 };
  const slow = await inbox.begin(meta); // a large message still streaming…
  assert.ok(slow.ok);
  assert.ok((await slow.value.write(Buffer.from('slow'))).ok);
  assert.ok((await inbox.save({ ...meta, payload: Buffer.from('fast') })).ok);
  const first = await inbox.page();
  assert.ok(first.ok);
  assert.deepEqual(first.value.messages.map((m) => m.data), ['fast']);
  assert.deepEqual(readdirSync(inbox.dir).filter((n) => n.endsWith('.tmp')).length, 1, 'the unfinished one is a temp file, not listed');
  const done = await slow.value.commit(); // …finishes after the page was read
  assert.ok(done.ok);
  const next = await inbox.page({ since: first.value.next_since! });
  assert.ok(next.ok);
  assert.deepEqual(next.value.messages.map((m) => m.data), ['slow']);
  assert.ok(next.value.messages[0]!.received_at > first.value.messages[0]!.received_at, 'received_at = when it was complete');
  net.cleanup();
});

test('attack: a file name with U+202E or zero-width characters is stored without them', () => {
  assert.equal(sanitizeFilename('invoice\u202efdp.exe'), 'invoicefdp.exe');
  assert.equal(sanitizeFilename('a\u200bb\u2066c\ufeff.txt'), 'abc.txt');
  assert.equal(sanitizeFilename('résumé 😀.pdf'), 'résumé 😀.pdf');
});

test('daemon flags set the quotas (sizes with units, 0 = no limit); bad values are refused', () => {
  const home = join(tmpdir(), `pilot-quota-flags-${process.pid}`);
  const r = parseDaemonArgs(['--home', home, '--inbox-max-bytes', '1MiB', '--received-max-files=3', '--inbox-max-messages-per-peer', '0', '--received-max-bytes', '2G'], {});
  assert.ok(r.ok);
  assert.deepEqual(r.value.quotas, { ...DEFAULT_STORAGE_QUOTAS, inboxBytes: 1024 * 1024, receivedFiles: 3, inboxMessagesPerPeer: 0, receivedBytes: 2 * 1024 ** 3 });
  const d = parseDaemonArgs(['--home', home], {});
  assert.ok(d.ok);
  assert.deepEqual(d.value.quotas, DEFAULT_STORAGE_QUOTAS);
  for (const bad of [['--inbox-max-bytes', 'lots'], ['--received-max-files', '-1'], ['--inbox-max-messages', '1.5']]) {
    const b = parseDaemonArgs(['--home', home, ...bad], {});
    assert.ok(!b.ok && b.error.code === 'invalid_argument', bad.join(' '));
  }
});

test('attack: a message frame cut off mid-payload leaves no temp file and uses no quota', async () => {
  const { net, alice, svc } = setup({ quotas: QUOTAS });
  const d = await alice.dial('server', PORT_DATAEXCHANGE);
  assert.ok(d.ok);
  d.value.on('error', () => {});
  const frame = encodeFrame(FRAME_TYPE_TEXT, Buffer.alloc(200_000, 0x41));
  assert.ok(frame.ok);
  assert.ok((await writeChunk(d.value, frame.value.subarray(0, 150_000))).ok);
  await new Promise((r) => setTimeout(r, 50));
  d.value.end();
  for (let i = 0; i < 100 && !d.value.destroyed; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(readdirSync(svc.inbox.dir).filter((n) => !n.startsWith('TEXT-')), [], 'temp file deleted');
  assert.deepEqual(svc.inbox.quota.usage(alice.address), { count: 0, bytes: 0 });
  await svc.stop();
  net.cleanup();
});

test('temp files a crash left behind (untouched for an hour) are swept when usage is learnt; fresh ones stay', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const dir = join(server.home, 'inbox');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '.incoming-old.abc.tmp'), 'x'.repeat(1000));
  const past = new Date(Date.now() - 2 * 3600_000);
  utimesSync(join(dir, '.incoming-old.abc.tmp'), past, past);
  writeFileSync(join(dir, '.incoming-new.def.tmp'), 'y');
  const inbox = new Inbox(dir);
  assert.ok((await inbox.save({ from: '0:0000.0000.0002', from_hostname: null, type: 'text', payload: Buffer.from('hi') })).ok);
  const left = readdirSync(dir).filter((n) => n.endsWith('.tmp'));
  assert.deepEqual(left, ['.incoming-new.def.tmp']);
  net.cleanup();
});
