import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/logger.js';
import {
  encodeFileFrame,
  encodeFrame,
  FRAME_TYPE_TEXT,
  sanitizeFilename,
  sendFile,
  sendMessage,
  startServices,
  type ServiceOptions,
} from '../../../src/services/index.js';
import { MemoryNetwork, rawExchange, type MemoryHost } from './memory-host.js';

const FIXED_NOW = new Date('2024-05-06T07:08:09.123Z');

function setup(extra: Partial<ServiceOptions> = {}) {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'alice');
  const svc = startServices(server, {
    echo: false,
    dataExchange: true,
    eventStream: false,
    logger: silentLogger(),
    now: () => FIXED_NOW,
    ...extra,
  });
  assert.ok(svc.ok);
  return { net, server, client, svc: svc.value };
}

test('send-message text/json/binary: ACK text, inbox fields, one atomic file each', async () => {
  const { net, server, client, svc } = setup();
  const t = await sendMessage(client, 'server', Buffer.from('hello world'), 'text');
  assert.ok(t.ok);
  const { id: sentId, ...rest } = t.value;
  assert.deepEqual(rest, { target: server.address, type: 'text', bytes: 11, ack: true, ack_text: 'ACK TEXT 11 bytes' });
  assert.match(String(sentId), /^[0-9a-f-]{36}$/, 'the receiver names the message (META ack)');
  const j = await sendMessage(client, 'server', Buffer.from('{"a":1}'), 'json');
  assert.ok(j.ok && j.value.ack_text === 'ACK JSON 7 bytes');
  const bin = Buffer.from([0, 255, 1, 254]);
  const b = await sendMessage(client, 'server', bin, 'binary');
  assert.ok(b.ok && b.value.ack_text === 'ACK BINARY 4 bytes');

  const list = await svc.inbox.list();
  assert.ok(list.ok);
  assert.equal(list.value.length, 3);
  const text = list.value.find((m) => m.type === 'text')!;
  assert.equal(text.data, 'hello world');
  assert.equal(text.from, client.address);
  assert.equal(text.from_hostname, 'alice');
  assert.equal(text.size, 11);
  assert.equal(text.bytes, 11);
  assert.equal(text.received_at, '2024-05-06T07:08:09Z');
  assert.equal(text.id, sentId, 'stored under the id the sender was told');
  const binary = list.value.find((m) => m.type === 'binary')!;
  assert.equal(binary.encoding, 'base64');
  assert.deepEqual(Buffer.from(binary.data, 'base64'), bin);

  const files = readdirSync(join(server.home, 'inbox')).sort();
  assert.equal(files.length, 3);
  assert.ok(files.every((f) => /^(TEXT|JSON|BINARY)-20240506-070809\.123-[0-9a-f]{8}-[0-9a-f-]{36}\.json$/.test(f)), files.join());
  const onDisk = JSON.parse(readFileSync(join(server.home, 'inbox', files.find((f) => f.startsWith('TEXT'))!), 'utf8'));
  assert.equal(onDisk.type, 'text');
  assert.equal(onDisk.bytes, 11);

  const bad = await sendMessage(client, 'server', Buffer.from('x'), 'file');
  assert.ok(!bad.ok && bad.error.code === 'invalid_argument');
  await svc.stop();
  net.cleanup();
});

test('several frames on one connection are ACKed in order; unknown types ACKed and not saved', async () => {
  const { net, client, svc } = setup();
  const a = encodeFrame(FRAME_TYPE_TEXT, Buffer.from('one'));
  const u = encodeFrame(9, Buffer.from('zz'));
  const c = encodeFrame(FRAME_TYPE_TEXT, Buffer.from('three'));
  assert.ok(a.ok && u.ok && c.ok);
  const acks = await rawExchange(client, Buffer.concat([a.value, u.value, c.value]), 3);
  assert.deepEqual(acks, ['ACK TEXT 3 bytes', 'ACK UNKNOWN(9) 2 bytes', 'ACK TEXT 5 bytes']);
  const list = await svc.inbox.list();
  assert.ok(list.ok);
  assert.deepEqual(list.value.map((m) => m.data).sort(), ['one', 'three']);
  await svc.stop();
  net.cleanup();
});

test('send-file streams, hashes, keeps the name; duplicates get -1, -2', async () => {
  const { net, server, client, svc } = setup();
  const dir = join(client.home, 'out');
  mkdirSync(dir);
  const path = join(dir, 'report.tar.gz');
  const content = Buffer.alloc(300_000);
  for (let i = 0; i < content.length; i++) content[i] = (i * 31) % 256;
  writeFileSync(path, content);
  const sha = createHash('sha256').update(content).digest('hex');

  const progress: number[] = [];
  const r = await sendFile(client, 'server', path, (done, total) => {
    assert.equal(total, content.length);
    progress.push(done);
  });
  assert.ok(r.ok);
  assert.equal(r.value.sha256, sha);
  assert.equal(r.value.name, 'report.tar.gz');
  assert.equal(r.value.filename, 'report.tar.gz');
  assert.equal(r.value.bytes, content.length);
  assert.equal(r.value.ack_text, `ACK FILE ${content.length} bytes`);
  assert.equal(progress.at(-1), content.length);

  assert.ok((await sendFile(client, 'server', path)).ok);
  assert.ok((await sendFile(client, 'server', path)).ok);
  const recvDir = join(server.home, 'received');
  assert.deepEqual(
    readdirSync(recvDir).filter((n) => !n.startsWith('.')).sort(),
    ['report.tar-1.gz', 'report.tar-2.gz', 'report.tar.gz'],
  );
  assert.ok(readFileSync(join(recvDir, 'report.tar-2.gz')).equals(content));

  const list = await svc.received.list();
  assert.ok(list.ok);
  assert.equal(list.value.length, 3);
  for (const f of list.value) {
    assert.equal(f.sha256, sha);
    assert.equal(f.size, content.length);
    assert.equal(f.from, client.address);
    assert.equal(f.from_hostname, 'alice');
    assert.equal(f.received_at, '2024-05-06T07:08:09Z');
    assert.equal(f.path, join(recvDir, f.name));
  }
  // No partial files left behind.
  assert.deepEqual(readdirSync(join(recvDir, '.pilot-meta')).filter((n) => n.startsWith('partial-')), []);

  const cleared = await svc.received.clear();
  assert.ok(cleared.ok && cleared.value.cleared === 3);
  const after = await svc.received.list();
  assert.ok(after.ok && after.value.length === 0);

  const missing = await sendFile(client, 'server', join(dir, 'nope'));
  assert.ok(!missing.ok && missing.error.code === 'not_found');
  const isDir = await sendFile(client, 'server', dir);
  assert.ok(!isDir.ok && isDir.error.code === 'invalid_argument');
  await svc.stop();
  net.cleanup();
});

test('hostile file names are sanitised: no traversal, no hidden files, never outside received/', async () => {
  const { net, server, client, svc } = setup();
  const names = ['../../etc/passwd', '..\\..\\win.ini', '/abs/path/x.bin', '..', '.bashrc', 'a\u0000b\nc.txt', ''];
  for (const n of names) {
    const f = encodeFileFrame(n, Buffer.from('data'));
    assert.ok(f.ok);
    const [ack] = await rawExchange(client, f.value, 1);
    assert.equal(ack, 'ACK FILE 4 bytes');
  }
  const saved = readdirSync(join(server.home, 'received')).filter((n) => n !== '.pilot-meta').sort();
  // '' is the original's "no filename": ACKed, not saved.
  assert.deepEqual(saved, ['abc.txt', 'bashrc', 'file', 'passwd', 'win.ini', 'x.bin']);
  assert.equal(existsSync(join(server.home, '..', 'etc')), false);
  assert.equal(sanitizeFilename('a'.repeat(300) + '.txt').length, 200);
  assert.ok(sanitizeFilename('a'.repeat(300) + '.txt').endsWith('.txt'));
  await svc.stop();
  net.cleanup();
});

test('files over the size cap are discarded with an ERR ack and the connection stays usable', async () => {
  const { net, server, client, svc } = setup({ limits: { maxFileBytes: 1000 } });
  const big = encodeFileFrame('big.bin', Buffer.alloc(5000, 1));
  const small = encodeFrame(FRAME_TYPE_TEXT, Buffer.from('after'));
  assert.ok(big.ok && small.ok);
  const acks = await rawExchange(client, Buffer.concat([big.value, small.value]), 2);
  assert.deepEqual(acks, ['ERR FILE save failed: file too large: 5000 bytes (max 1000)', 'ACK TEXT 5 bytes']);
  const recvDir = join(server.home, 'received');
  assert.deepEqual(existsSync(recvDir) ? readdirSync(recvDir).filter((n) => !n.startsWith('.')) : [], []);
  await svc.stop();
  net.cleanup();
});

test('inbox: corrupt files are moved aside with a warning, others still listed; clear counts files', async () => {
  const logs: string[] = [];
  const logger = silentLogger();
  const spy = Object.assign(Object.create(logger), {
    warn: (o: unknown, msg?: string) => {
      logs.push(`${msg} ${JSON.stringify(o)}`);
    },
    child: () => spy,
  });
  const { net, server, client, svc } = setup({ logger: spy });
  assert.ok((await sendMessage(client, 'server', Buffer.from('good'), 'text')).ok);
  const dir = join(server.home, 'inbox');
  writeFileSync(join(dir, 'TEXT-bad.json'), '{"type": "TEXT", "data": ');
  writeFileSync(join(dir, 'weird.json'), '[1,2,3]');
  // A message written by the original daemon (upper-case type, no id, `bytes`).
  writeFileSync(
    join(dir, 'JSON-20240101-000000.000.json'),
    JSON.stringify({ type: 'JSON', from: '0:0000.0000.0009', data: '{"k":1}', bytes: 7, received_at: '2024-01-01T00:00:00Z' }),
  );
  // Something already called TEXT-bad.json.corrupt must not be overwritten.
  writeFileSync(join(dir, 'TEXT-bad.json.corrupt'), 'older');

  const list = await svc.inbox.list();
  assert.ok(list.ok);
  assert.deepEqual(list.value.map((m) => m.data), ['{"k":1}', 'good']);
  const orig = list.value[0]!;
  assert.equal(orig.type, 'json');
  assert.equal(orig.id, 'JSON-20240101-000000.000');
  assert.equal(orig.size, 7);
  assert.equal(orig.from_hostname, null);

  const names = readdirSync(dir).sort();
  assert.ok(names.includes('TEXT-bad.json.corrupt-1'), names.join());
  assert.ok(names.includes('weird.json.corrupt'));
  assert.equal(readFileSync(join(dir, 'TEXT-bad.json.corrupt'), 'utf8'), 'older');
  assert.equal(logs.filter((l) => l.includes('corrupt')).length, 2);

  const again = await svc.inbox.list();
  assert.ok(again.ok && again.value.length === 2);
  const cleared = await svc.inbox.clear();
  assert.ok(cleared.ok);
  assert.equal(cleared.value.cleared, 5);
  const empty = await svc.inbox.list();
  assert.ok(empty.ok && empty.value.length === 0);
  await svc.stop();
  net.cleanup();
});

test('list/clear on a home that never received anything', async () => {
  const { net, svc } = setup();
  const i = await svc.inbox.list();
  assert.ok(i.ok && i.value.length === 0);
  const r = await svc.received.list();
  assert.ok(r.ok && r.value.length === 0);
  const c = await svc.inbox.clear();
  assert.ok(c.ok && c.value.cleared === 0);
  await svc.stop();
  net.cleanup();
});
