import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PilotException } from '../../../src/core/errors.js';
import { callOnce, connectIpc, openStreamChannelSocket } from '../../../src/ipc/client.js';
import { LineSplitter, MAX_REQUEST_LINE_BYTES } from '../../../src/ipc/protocol.js';
import { serveIpc, type IpcServer } from '../../../src/ipc/server.js';
import { PilotClient } from '../../../src/sdk/index.js';
import type { PilotStream } from '../../../src/node/api.js';
import { daemonAt, FakeNode, ipcAuth, TEST_IDENTITY } from './fake-node.js';
import { proveDaemon, publishDaemonKey } from '../../../src/node/daemon-proof.js';

let dir: string;
let sock: string;
let node: FakeNode;
let server: IpcServer;
let client: PilotClient;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-ipc-'));
  sock = join(dir, 'pilot.sock');
  node = new FakeNode();
  const r = await serveIpc(node, { socketPath: sock, ...ipcAuth(dirname(sock)) });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  server = r.value;
  const c = await PilotClient.connect({ socketPath: sock, home: dirname(sock) });
  assert.ok(c.ok, c.ok ? '' : c.error.message);
  client = c.value;
});

after(async () => {
  client.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Raw line-level client for protocol tests. */
function rawClient(path = sock) {
  const s = createConnection(path);
  const lines: string[] = [];
  let buf = '';
  const waiters: Array<() => void> = [];
  s.on('data', (b) => {
    buf += b.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  const closed = new Promise<void>((r) => s.on('close', () => r()));
  s.on('error', () => {});
  return {
    socket: s,
    closed,
    send: (x: string) => s.write(x),
    async next(): Promise<Record<string, unknown>> {
      while (lines.length === 0) await new Promise<void>((r) => waiters.push(r));
      return JSON.parse(lines.shift()!) as Record<string, unknown>;
    },
  };
}

function collect(stream: NodeJS.ReadableStream): Promise<{ data: string; error: Error | null }> {
  return new Promise((resolve) => {
    let data = '';
    stream.on('data', (b: Buffer) => (data += b.toString()));
    stream.on('end', () => resolve({ data, error: null }));
    stream.on('error', (e: Error) => resolve({ data, error: e }));
  });
}

/** A stream dialed through the SDK (over its stream channel, src/ipc/stream-channel.ts). */
async function dial(peer: string, port: number): Promise<PilotStream> {
  const r = await client.dial(peer, port);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

test('socket file is created with mode 0600', () => {
  assert.equal(statSync(sock).mode & 0o777, 0o600);
});

test('a live socket is refused, a stale one is replaced', async () => {
  const again = await serveIpc(new FakeNode(), { socketPath: sock, ...ipcAuth(dirname(sock)) });
  assert.ok(!again.ok);
  assert.equal(again.error.code, 'already_exists');

  const stalePath = join(dir, 'stale.sock');
  const s = createServer();
  await new Promise<void>((r) => s.listen(stalePath, r));
  // Close the listener but leave the file behind, as a crashed daemon would.
  (s as unknown as { _handle: { close(): void } })._handle.close();
  const r = await serveIpc(new FakeNode(), { socketPath: stalePath, ...ipcAuth(dirname(stalePath)) });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  const info = await callOnce<{ node_id: number }>(daemonAt(stalePath), 'info');
  assert.ok(info.ok);
  await r.value.close();

  const notSocket = join(dir, 'file.sock');
  writeFileSync(notSocket, 'x');
  const r2 = await serveIpc(new FakeNode(), { socketPath: notSocket, ...ipcAuth(dirname(notSocket)) });
  assert.ok(!r2.ok);
});

test('no daemon → not_running', async () => {
  const r = await connectIpc(daemonAt(join(dir, 'nobody.sock')));
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'not_running');
  const s = await openStreamChannelSocket(daemonAt(join(dir, 'nobody.sock')));
  assert.ok(!s.ok);
  assert.equal(s.error.code, 'not_running');
});

test('request/response and error values travel intact', async () => {
  const c = await connectIpc(daemonAt(sock));
  assert.ok(c.ok);
  const conn = c.value;
  const [info, find, missing, taken] = await Promise.all([
    conn.call<{ node_id: number }>('info'),
    conn.call<{ node_id: number }>('find', { query: 'agent-alpha' }),
    conn.call('find', { query: 'nobody' }),
    conn.call('set_hostname', { hostname: 'agent-alpha' }),
  ]);
  assert.ok(info.ok && info.value.node_id === 5);
  assert.ok(find.ok && find.value.node_id === 7);
  assert.ok(!missing.ok && missing.error.code === 'not_found');
  assert.ok(!taken.ok && taken.error.code === 'already_exists' && typeof taken.error.hint === 'string');
  const bad = await conn.call('approve', { node_id: 'x' });
  assert.ok(!bad.ok && bad.error.code === 'invalid_argument');
  const unknown = await conn.call('nope' as 'info');
  assert.ok(!unknown.ok && unknown.error.code === 'invalid_argument');
  conn.close();
  const afterClose = await conn.call('info');
  assert.ok(!afterClose.ok && afterClose.error.code === 'not_running');
});

test('malformed lines get an error response and the connection keeps working', async () => {
  const c = rawClient();
  c.send('this is not json\n');
  const e1 = await c.next();
  assert.equal(e1.ok, false);
  assert.equal(e1.id, null);
  assert.equal((e1.error as { code: string }).code, 'invalid_argument');
  c.send('{"method":"info"}\n');
  assert.equal(((await c.next()).error as { code: string }).code, 'invalid_argument');
  c.send('[1,2]\n');
  assert.equal((await c.next()).ok, false);
  c.send('{"id":3,"method":"info","params":{}}\n');
  const r = await c.next();
  assert.equal(r.id, 3);
  assert.equal(r.ok, true);
  c.socket.destroy();
});

test('an oversized request drops only that client', async () => {
  const big = rawClient();
  const other = await connectIpc(daemonAt(sock));
  assert.ok(other.ok);
  big.send('{"id":1,"method":"info","params":{"x":"' + 'a'.repeat(MAX_REQUEST_LINE_BYTES + 10));
  const e = await big.next();
  assert.equal(e.ok, false);
  assert.match(String((e.error as { message: string }).message), /exceeds/);
  await big.closed;
  const r = await other.value.call('info');
  assert.ok(r.ok);
  other.value.close();
});

test('streaming calls: ping results and progress arrive as events before the response', async () => {
  const c = await connectIpc(daemonAt(sock));
  assert.ok(c.ok);
  const events: string[] = [];
  const r = await c.value.call<{ results: unknown[] }>('ping', { peer: 'agent-alpha', count: 3, interval_ms: 1 }, (ev) => events.push(ev));
  assert.ok(r.ok);
  assert.equal(r.value.results.length, 3);
  assert.deepEqual(events, ['result', 'result', 'result']);
  const progress: unknown[] = [];
  const b = await c.value.call('bench', { peer: 'agent-alpha', bytes: 1000 }, (ev, d) => ev === 'progress' && progress.push(d));
  assert.ok(b.ok);
  assert.deepEqual(progress.at(-1), { bytes_done: 1000, bytes_total: 1000 });
  c.value.close();
});

test('subscribe pushes events until closed; closing the connection releases it', async () => {
  const c = await connectIpc(daemonAt(sock));
  assert.ok(c.ok);
  const got: unknown[] = [];
  const sub = await c.value.open('subscribe', { peer: 'agent-alpha', topic: 'news' }, (ev, d) => ev === 'event' && got.push(d));
  assert.ok(sub.ok);
  assert.equal(node.subscribers.size, 1);
  await node.publish('agent-alpha', 'news', Buffer.from('one'));
  await node.publish('agent-alpha', 'other', Buffer.from('skip'));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(got.length, 1);
  assert.equal((got[0] as { data: string }).data, 'one');
  await c.value.closeStream(sub.value.id);
  assert.equal(node.subscribers.size, 0);
  const sub2 = await c.value.open('subscribe', { peer: 'agent-alpha', topic: '*' }, () => {});
  assert.ok(sub2.ok);
  c.value.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(node.subscribers.size, 0);
});

test('dial: bytes both ways and FIN both ways (echo)', async () => {
  const s = await dial('agent-alpha', 7);
  assert.equal(s.remotePort, 7);
  assert.equal(s.remoteNodeId, 7);
  const got = collect(s);
  s.write('hello ');
  s.end('world');
  const r = await got;
  assert.equal(r.error, null);
  assert.equal(r.data, 'hello world');
});

test('dial: large transfer keeps order under backpressure', async () => {
  const s = await dial('agent-alpha', 7);
  const payload = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  const chunks: Buffer[] = [];
  const done = new Promise<void>((r) => s.on('end', r));
  s.on('data', (b: Buffer) => chunks.push(b));
  s.end(payload);
  await done;
  assert.ok(Buffer.concat(chunks).equals(payload));
});

test('dial: the peer FINs first (port 13) and the client still can write', async () => {
  const s = await dial('agent-alpha', 13);
  const r = await collect(s);
  assert.equal(r.data, 'hello');
  assert.equal(r.error, null);
  s.end();
});

test('dial: a peer RST surfaces as a connection_failed error, not an end', async () => {
  const s = await dial('agent-alpha', 9);
  const got = collect(s);
  s.write('boom');
  const r = await got;
  assert.ok(r.error instanceof PilotException);
  assert.equal((r.error as PilotException).code, 'connection_failed');
});

test('dial: client destroy() resets the remote stream instead of FIN', async () => {
  const before = node.serverStreams.length;
  const s = await dial('agent-alpha', 1000);
  const server = node.serverStreams[before]!;
  const seen = new Promise<string>((resolve) => {
    server.on('end', () => resolve('end'));
    server.on('error', () => resolve('error'));
    server.on('close', () => resolve('close'));
  });
  s.write('partial');
  s.destroy();
  assert.notEqual(await seen, 'end');
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(server.destroyed);
});

test('listen: a second listener on a port is already_exists (accept itself goes over the stream channel)', async () => {
  const c = await connectIpc(daemonAt(sock));
  assert.ok(c.ok);
  const l = await c.value.open<{ listener: string }>('listen', { port: 5000 }, () => {});
  assert.ok(l.ok);
  const dup = await c.value.call('listen', { port: 5000 });
  assert.ok(!dup.ok && dup.error.code === 'already_exists');
  c.value.close();
});

test('the JSON dial and accept of the connection-per-stream protocol are gone: unknown method', async () => {
  const c = await connectIpc(daemonAt(sock));
  assert.ok(c.ok);
  for (const m of ['dial', 'accept', 'stream_status', 'stream_reset', 'stream_outcomes']) {
    const r = await c.value.call(m as 'info', { peer: 'agent-alpha', port: 7 });
    assert.ok(!r.ok && r.error.code === 'invalid_argument' && /unknown method/.test(r.error.message), m);
  }
  c.value.close();
});

test('datagrams: a channel binds the port, sends to self, receives; closing it unbinds; the JSON pair is gone', async () => {
  const d = await client.openDatagramSocketAsync(6000);
  assert.ok(d.ok);
  assert.equal(node.datagramSockets.size, 1);
  const s = await d.value.send('test-node', 6000, Buffer.from('dgram!'));
  assert.ok(s.ok, JSON.stringify(s));
  const got = await d.value.recv(2000);
  assert.equal(Buffer.from(got!.data).toString(), 'dgram!');
  assert.equal(got!.fromPort, 6000);
  assert.equal(d.value.dropped, 0);
  d.value.close();
  for (let i = 0; i < 100 && node.datagramSockets.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(node.datagramSockets.size, 0);
  const c = await connectIpc(daemonAt(sock));
  assert.ok(c.ok);
  for (const m of ['open_datagram', 'datagram_send']) {
    const r = await c.value.call(m as 'info', { port: 6000, socket: 'x', to: 'test-node', data: '' });
    assert.ok(!r.ok && r.error.code === 'invalid_argument' && /unknown method/.test(r.error.message), m);
  }
  c.value.close();
});

test('shutdown answers before calling api.shutdown', async () => {
  const n = new FakeNode();
  const path = join(dir, 'shut.sock');
  const r = await serveIpc(n, { socketPath: path, ...ipcAuth(dirname(path)) });
  assert.ok(r.ok);
  const stopped = new Promise<void>((res) => (n.onShutdown = () => void r.value.close().then(res)));
  const s = await callOnce(daemonAt(path), 'shutdown');
  assert.ok(s.ok);
  await stopped;
  assert.ok(n.isShutdown);
  const gone = await callOnce(daemonAt(path), 'info');
  assert.ok(!gone.ok && gone.error.code === 'not_running');
});

test('server close makes pending clients see not_running', async () => {
  const n = new FakeNode();
  const path = join(dir, 'close.sock');
  const r = await serveIpc(n, { socketPath: path, ...ipcAuth(dirname(path)) });
  assert.ok(r.ok);
  const c = await connectIpc(daemonAt(path));
  assert.ok(c.ok);
  const closed = new Promise((res) => c.value.onClose(res));
  await r.value.close();
  await closed;
  const x = await c.value.call('info');
  assert.ok(!x.ok && x.error.code === 'not_running');
});

test('LineSplitter: lines across chunks, rest after a line, overflow', () => {
  const s = new LineSplitter(10);
  s.push(Buffer.from('ab'));
  assert.equal(s.next(), null);
  s.push(Buffer.from('c\nde\nraw'));
  assert.equal(s.next(), 'abc');
  assert.equal(s.next(), 'de');
  assert.equal(s.next(), null);
  assert.equal(s.takeRest().toString(), 'raw');
  s.push(Buffer.from('x'.repeat(11)));
  assert.equal(s.next(), null);
  assert.ok(s.isOverflowed);
});

test('stream_channel: a daemon that dies before answering (its socket only half-closes) → not_running, not a hang', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-ipc-'));
  const path = join(dir, 'dying.sock');
  const conns: import('node:net').Socket[] = [];
  // It is our daemon (it proves the node key on the client's nonce), and it dies on the stream_channel request.
  assert.ok(publishDaemonKey(dir, TEST_IDENTITY.publicKey).ok);
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    conns.push(s);
    const lines = new LineSplitter(1 << 16);
    s.on('data', (chunk: Buffer) => {
      lines.push(chunk);
      for (let line = lines.next(); line !== null; line = lines.next()) {
        const m = JSON.parse(line) as { id: string; method: string; params: { nonce: string } };
        if (m.method !== 'auth') return void s.end();
        const proof = proveDaemon(TEST_IDENTITY, m.params.nonce, process.pid);
        assert.ok(proof.ok);
        s.write(JSON.stringify({ id: m.id, ok: true, result: proof.value }) + '\n');
      }
    });
  });
  await new Promise<void>((r) => srv.listen(path, () => r()));
  try {
    const r = await Promise.race([
      openStreamChannelSocket(daemonAt(path)),
      new Promise<'hang'>((res) => setTimeout(() => res('hang'), 3000).unref()),
    ]);
    assert.notEqual(r, 'hang');
    assert.ok(r !== 'hang' && !r.ok);
    assert.equal(r.error.code, 'not_running');
  } finally {
    for (const s of conns) s.destroy();
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
