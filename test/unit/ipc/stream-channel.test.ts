// The stream channel (src/ipc/stream-frames.ts, stream-channel.ts, stream-channel-bridge.ts): every stream of a
// PilotClient over one connection, FIN / RST / credit in band.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { serveIpc, type IpcServer } from '../../../src/ipc/server.js';
import { connectSocket } from '../../../src/ipc/client.js';
import { encodeLine } from '../../../src/ipc/protocol.js';
import {
  creditFrame,
  frame,
  FrameParser,
  FRAME_DATA,
  FRAME_FIN,
  FRAME_OPEN,
  FRAME_OPENED,
  MAX_CONTROL_FRAME_BYTES,
  STREAM_WINDOW_BYTES,
} from '../../../src/ipc/stream-frames.js';
import { PilotClient } from '../../../src/sdk/index.js';
import type { PilotStream, PortListener } from '../../../src/node/api.js';
import { daemonAt, FakeNode, ipcAuth } from './fake-node.js';

let dir: string;
let node: FakeNode;
let server: IpcServer;
let client: PilotClient;
let sock: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-chan-'));
  node = new FakeNode();
  sock = join(dir, 'pilot.sock');
  const r = await serveIpc(node, { socketPath: sock, ...ipcAuth(dir) });
  assert.ok(r.ok);
  server = r.value;
  const c = await PilotClient.connect({ home: dir });
  assert.ok(c.ok);
  client = c.value;
});

after(async () => {
  client.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function readAll(s: PilotStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (b: Buffer) => parts.push(b));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

/** Listen on `port`, dial it through the client, and accept: both ends of one stream through the channel. */
async function acceptedPair(port: number): Promise<{ l: PortListener; d: PilotStream; srv: PilotStream }> {
  const l = await client.listenAsync(port);
  assert.ok(l.ok);
  const acceptP = l.value.accept();
  const d = await client.dial('test-node', port);
  assert.ok(d.ok);
  const srv = await acceptP;
  assert.ok(srv);
  return { l: l.value, d: d.value, srv };
}

test('frames: split at every byte boundary, the same frames come out', () => {
  const payload = Buffer.from('x'.repeat(300));
  const wire = Buffer.concat([frame(FRAME_OPEN, 1, Buffer.from('{"method":"dial"}')), frame(FRAME_DATA, 1, payload), frame(FRAME_FIN, 1), creditFrame(2, 77)]);
  for (let cut = 1; cut < wire.length; cut += 7) {
    const got: string[] = [];
    let data = '';
    const p = new FrameParser({
      onFrame: (type, id, body) => got.push(`${type}:${id}:${body.length}`),
      onData: (id, chunk) => (data += `${id}:${chunk.length},`),
    });
    p.push(wire.subarray(0, cut));
    p.push(wire.subarray(cut));
    assert.equal(p.error, null);
    assert.deepEqual(got, ['1:1:17', '4:1:0', '6:2:4']);
    const total = data.split(',').filter(Boolean).reduce((n, x) => n + Number(x.split(':')[1]), 0);
    assert.equal(total, 300);
  }
});

test('frames: hostile input is an error, never a throw or a huge buffer', () => {
  const cases: Array<[string, Buffer]> = [
    ['unknown type', frame(9, 1)],
    ['id 0', frame(FRAME_FIN, 0)],
    ['oversized control frame', Buffer.concat([frame(FRAME_OPEN, 1).subarray(0, 5), Buffer.from([0, 0x10, 0, 1])])],
    ['oversized DATA', Buffer.concat([frame(FRAME_DATA, 1).subarray(0, 5), Buffer.from([0x10, 0, 0, 0])])],
  ];
  for (const [what, b] of cases) {
    const p = new FrameParser({ onFrame: () => assert.fail(what), onData: () => assert.fail(what) });
    p.push(b);
    assert.ok(p.error !== null, what);
    p.push(frame(FRAME_FIN, 1)); // nothing more is taken after an error
  }
  assert.ok(MAX_CONTROL_FRAME_BYTES < 0x100001);
});

test('many dials share one connection: echo, FIN and RST arrive in band', async () => {
  const warm = await client.dial('agent-alpha', 7);
  assert.ok(warm.ok);
  warm.value.end();
  await readAll(warm.value);
  const before = server.connectionCount;
  for (let i = 0; i < 20; i++) {
    const s = await client.dial('agent-alpha', 7);
    assert.ok(s.ok, s.ok ? '' : s.error.message);
    s.value.end(`ping ${i}`);
    assert.equal((await readAll(s.value)).toString(), `ping ${i}`);
  }
  assert.equal(server.connectionCount, before, 'a dial opened a connection');
  const fin = await client.dial('agent-alpha', 13);
  assert.ok(fin.ok);
  assert.equal((await readAll(fin.value)).toString(), 'hello');
  fin.value.end();
  const rst = await client.dial('agent-alpha', 9);
  assert.ok(rst.ok);
  const e = await new Promise<Error>((r) => {
    rst.value.on('error', r);
    rst.value.write('x');
  });
  assert.match(e.message, /reset by peer/);
  const refused = await client.dial('agent-alpha', 4444);
  assert.ok(!refused.ok && refused.error.code === 'connection_failed');
  const badPort = await client.dial('agent-alpha', 70000);
  assert.ok(!badPort.ok && badPort.error.code === 'invalid_argument', 'the daemon checks an OPEN\'s params');
  const ok = await client.dial('agent-alpha', 7); // and the channel carries on after both
  assert.ok(ok.ok);
  ok.value.end('after');
  assert.equal((await readAll(ok.value)).toString(), 'after');
});

test('credit: megabytes both ways, and a stream nobody reads does not stall the others', async () => {
  // The echo holds nothing back, so a stream we do not read fills its window and waits; another still flows.
  const stuck = await client.dial('agent-alpha', 7);
  assert.ok(stuck.ok);
  stuck.value.pause();
  stuck.value.write(Buffer.alloc(STREAM_WINDOW_BYTES * 2, 1));
  const big = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  const s = await client.dial('agent-alpha', 7);
  assert.ok(s.ok);
  const got = readAll(s.value);
  s.value.end(big);
  assert.ok((await got).equals(big), 'the echo came back different');
  // The unread one resumes and gets everything it was sent.
  const rest = readAll(stuck.value);
  stuck.value.end();
  stuck.value.resume();
  assert.equal((await rest).length, STREAM_WINDOW_BYTES * 2);
});

test('a peer that sends past the credit and FINs at once: all its bytes come before the EOF', { timeout: 10_000 }, async () => {
  const { l, d, srv } = await acceptedPair(7300);
  d.pause(); // the daemon holds what the window does not cover, and the peer's FIN arrives meanwhile
  const big = Buffer.alloc(STREAM_WINDOW_BYTES * 3 + 4096, 7);
  srv.end(big);
  srv.resume();
  await new Promise((r) => setTimeout(r, 50));
  const got = readAll(d);
  d.resume();
  assert.equal((await got).length, big.length);
  d.end();
  l.close();
});

test('the same after our own FIN: the daemon keeps the stream until the held piece and its FIN went out', { timeout: 10_000 }, async () => {
  const { l, d, srv } = await acceptedPair(7301);
  d.pause();
  d.end(); // both directions finish on the daemon's side while most of the reply waits for our credit
  srv.resume();
  await new Promise((r) => srv.on('end', r));
  const big = Buffer.alloc(STREAM_WINDOW_BYTES * 3 + 4096, 9);
  srv.end(big);
  await new Promise((r) => setTimeout(r, 50));
  const got = readAll(d);
  d.resume();
  assert.equal((await got).length, big.length);
  l.close();
});

test('accept over the channel, and destroy() resets the daemon side', async () => {
  const { l, d, srv } = await acceptedPair(7200);
  const got = readAll(srv);
  d.end('bye');
  assert.equal((await got).toString(), 'bye');
  srv.end('ok');
  assert.equal((await readAll(d)).toString(), 'ok');
  // A pending accept answers null when the listener closes.
  const pending = l.accept();
  l.close();
  assert.equal(await pending, null);

  const x = await client.dial('agent-alpha', 7);
  assert.ok(x.ok);
  const daemonSide = node.serverStreams.at(-1)!;
  const reset = new Promise<Error>((r) => daemonSide.on('error', r));
  x.value.destroy();
  assert.match((await reset).message, /reset/);
});

test('the daemon going away fails open streams; a new dial reopens the channel', async () => {
  const path = join(dir, 'gone.sock');
  const first = await serveIpc(new FakeNode(), { socketPath: path, ...ipcAuth(dir) });
  assert.ok(first.ok);
  const c = await PilotClient.connect({ socketPath: path, home: dir });
  assert.ok(c.ok);
  const s = await c.value.dial('agent-alpha', 7);
  assert.ok(s.ok);
  const e = new Promise<Error>((r) => s.value.on('error', r));
  await first.value.close();
  assert.match((await e).message, /daemon closed the stream/);
  const second = await serveIpc(new FakeNode(), { socketPath: path, ...ipcAuth(dir) });
  assert.ok(second.ok);
  const again = await c.value.dial('agent-alpha', 13);
  assert.ok(again.ok, again.ok ? '' : again.error.message);
  assert.equal((await readAll(again.value)).toString(), 'hello');
  again.value.end();
  // After close(), a dial opens a new channel, as every other call reconnects.
  c.value.close();
  const afterClose = await c.value.dial('agent-alpha', 13);
  assert.ok(afterClose.ok, afterClose.ok ? '' : afterClose.error.message);
  assert.equal((await readAll(afterClose.value)).toString(), 'hello');
  afterClose.value.end();
  c.value.close();
  await second.value.close();
});

test('the daemon closes a channel that breaks the protocol (an OPEN of an open id) and resets its streams', async () => {
  const v = await connectSocket(daemonAt(sock));
  assert.ok(v.ok);
  const raw: Socket = v.value.socket;
  const lines: Buffer[] = [];
  raw.on('data', (b: Buffer) => lines.push(b));
  raw.resume();
  raw.write(encodeLine({ id: 1, method: 'stream_channel', params: {} }));
  raw.write(frame(FRAME_OPEN, 1, Buffer.from(JSON.stringify({ method: 'dial', params: { peer: 'agent-alpha', port: 1000 } }))));
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(Buffer.concat(lines).includes(Buffer.from([FRAME_OPENED, 0, 0, 0, 1])), 'no OPENED');
  const daemonSide = node.serverStreams.at(-1)!;
  const reset = new Promise<Error>((r) => daemonSide.on('error', r));
  const closed = new Promise((r) => raw.on('end', r)); // the daemon closed its side
  raw.write(frame(FRAME_OPEN, 1, Buffer.from(JSON.stringify({ method: 'dial', params: { peer: 'agent-alpha', port: 7 } }))));
  await closed;
  assert.match((await reset).message, /reset/);
  raw.destroy();
});
