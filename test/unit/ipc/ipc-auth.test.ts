// Issue 10: pilotctl and the SDK verify they talk to this home's daemon before they send anything. Old clients
// connected to whatever listened on the socket path and wrote the request: a squatter received
// `pilotctl send-message` data. Each attack below failed (or hung) on the old code.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateIdentity } from '../../../src/crypto/identity.js';
import { callOnce, connectIpc, connectSocket } from '../../../src/ipc/client.js';
import { serveIpc, type IpcServer } from '../../../src/ipc/server.js';
import { IPC_AUTH_DOMAIN, proveDaemon, publishDaemonKey } from '../../../src/node/daemon-proof.js';
import { prepareHome } from '../../../src/node/home.js';
import { PilotClient } from '../../../src/sdk/client.js';
import { pilotctl } from '../cli/helpers.js';
import { FakeNode, ipcAuth } from './fake-node.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const SECRET = 'TOP-SECRET-PAYLOAD';
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-auth-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A home whose real daemon ran once (its key is published) and is not running now. */
function homeWithKey(name: string): string {
  const h = join(dir, name);
  assert.ok(prepareHome(h).ok);
  assert.ok(publishDaemonKey(h, generateIdentity().publicKey).ok);
  return h;
}

/** A plain net server squatting `path`: records every byte and connection, never answers. */
async function squat(path: string): Promise<{ server: Server; received: () => string; connections: () => number; close: () => Promise<void> }> {
  let bytes = '';
  let n = 0;
  const socks: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    n++;
    socks.push(s);
    s.on('data', (b: Buffer) => (bytes += b.toString()));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(path, () => r()));
  return {
    server,
    received: () => bytes,
    connections: () => n,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'hang'> {
  return Promise.race([p, new Promise<'hang'>((r) => setTimeout(() => r('hang'), ms).unref())]);
}

test('attack: a squatted socket gets no send-message data; pilotctl reports daemon_unverified', async () => {
  const h = homeWithKey('squatted');
  const sq = await squat(join(h, 'pilot.sock'));
  try {
    const r = await withTimeout(pilotctl(['send-message', 'agent-alpha', '--data', SECRET, '--home', h, '--json'], { env: {} }), 15_000);
    assert.notEqual(r, 'hang', 'pilotctl hung on the squatter');
    if (r === 'hang') return;
    assert.equal(r.code, 1, r.stdout);
    const e = JSON.parse(r.stderr) as { code: string; message: string; hint: string };
    assert.equal(e.code, 'daemon_unverified');
    assert.match(e.hint, /not served by the daemon of this home/);
    assert.equal(sq.received().includes(SECRET), false, 'the squatter saw the message');
    assert.equal(sq.received().includes(Buffer.from(SECRET).toString('base64')), false, 'the squatter saw the message (base64 on the wire)');
    // All it got is the auth challenge: one line, method auth, a random nonce.
    const lines = sq.received().trim().split('\n');
    assert.equal(lines.length, 1);
    assert.equal((JSON.parse(lines[0]!) as { method: string }).method, 'auth');
  } finally {
    await sq.close();
  }
});

test('attack: a squatter that answers with another node key is refused; the request never reaches it', async () => {
  const h = homeWithKey('other-key');
  const impostor = new FakeNode();
  mkdirSync(join(dir, 'impostor-home'), { mode: 0o700 });
  // A full IPC server with its own identity (published in another directory) at our socket path.
  const srv = await serveIpc(impostor, { socketPath: join(h, 'pilot.sock'), identity: generateIdentity(), home: join(dir, 'impostor-home') });
  assert.ok(srv.ok, srv.ok ? '' : srv.error.message);
  try {
    const r = await pilotctl(['send-message', 'agent-alpha', '--data', SECRET, '--home', h, '--json'], { env: {} });
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stderr).code, 'daemon_unverified');
    assert.deepEqual(impostor.inboxList, [], 'send_message reached the impostor');
    const c = await PilotClient.connect({ home: h });
    assert.ok(!c.ok);
    assert.equal(c.error.code, 'daemon_unverified');
    assert.match(c.error.message, /does not verify against the node key/);
  } finally {
    await srv.value.close();
  }
});

test('attack: a socket owned by another uid is refused before connecting', { skip: isRoot ? false : 'needs root to chown' }, async () => {
  const h = homeWithKey('foreign-socket');
  const path = join(h, 'pilot.sock');
  const sq = await squat(path);
  chownSync(path, 65534, 65534);
  try {
    const r = await connectIpc({ socketPath: path, home: h });
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'daemon_unverified');
    assert.match(r.error.message, /owned by uid 65534/);
    const cli = await pilotctl(['send-message', 'agent-alpha', '--data', SECRET, '--home', h, '--json'], { env: {} });
    assert.equal(JSON.parse(cli.stderr).code, 'daemon_unverified');
    assert.equal(sq.connections(), 0);
    assert.equal(sq.received(), '');
  } finally {
    await sq.close();
  }
});

test('attack: a symlink planted at the socket path is refused, even to a real daemon', async () => {
  const h = homeWithKey('symlinked');
  const realDir = join(dir, 'real');
  mkdirSync(realDir, { mode: 0o700 });
  const srv = await serveIpc(new FakeNode(), { socketPath: join(realDir, 'pilot.sock'), ...ipcAuth(realDir) });
  assert.ok(srv.ok);
  symlinkSync(join(realDir, 'pilot.sock'), join(h, 'pilot.sock'));
  try {
    const r = await callOnce({ socketPath: join(h, 'pilot.sock'), home: realDir }, 'info');
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'daemon_unverified');
    assert.match(r.error.message, /symlink/);
    assert.equal(srv.value.connectionCount, 0);
  } finally {
    await srv.value.close();
  }
});

test('a socket with no published key in the home is unverified, not trusted', async () => {
  const h = join(dir, 'no-key');
  assert.ok(prepareHome(h).ok);
  mkdirSync(join(dir, 'elsewhere'), { mode: 0o700 });
  const srv = await serveIpc(new FakeNode(), { socketPath: join(h, 'pilot.sock'), identity: generateIdentity(), home: join(dir, 'elsewhere') });
  assert.ok(srv.ok);
  try {
    // serveIpc published its key in `elsewhere`, not in h: h's clients cannot know the key.
    const r = await callOnce({ socketPath: join(h, 'pilot.sock'), home: h }, 'info');
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'daemon_unverified');
    assert.match(r.error.message, /identity\.pub/);
  } finally {
    await srv.value.close();
  }
});

test('the real daemon proves its key and pid; the proof is domain-separated and needs a 32-byte nonce', async () => {
  const h = join(dir, 'real-home');
  assert.ok(prepareHome(h).ok);
  const node = new FakeNode();
  const srv = await serveIpc(node, { socketPath: join(h, 'pilot.sock'), ...ipcAuth(h) });
  assert.ok(srv.ok);
  try {
    const c = await connectIpc({ socketPath: join(h, 'pilot.sock'), home: h });
    assert.ok(c.ok, c.ok ? '' : c.error.message);
    assert.equal(c.value.daemonPid, process.pid);
    const bad = await c.value.call('auth', { nonce: 'AAAA' });
    assert.ok(!bad.ok);
    assert.equal(bad.error.code, 'invalid_argument');
    c.value.close();
    const r = await pilotctl(['send-message', 'agent-alpha', '--data', 'hello', '--home', h, '--json'], { env: {} });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(node.inboxList.length, 1);
    assert.equal(IPC_AUTH_DOMAIN, 'pilot-ipc-auth:v1:');
    const p = proveDaemon(generateIdentity(), Buffer.alloc(32).toString('base64'), 1);
    assert.ok(p.ok);
  } finally {
    await srv.value.close();
  }
});

test('resumption: later connections prove the daemon with the ticket; an impostor that takes the socket after it is still refused', async () => {
  const h = join(dir, 'resume-home');
  assert.ok(prepareHome(h).ok);
  const target = { socketPath: join(h, 'pilot.sock'), home: h };
  const srv = await serveIpc(new FakeNode(), { socketPath: target.socketPath, ...ipcAuth(h) });
  assert.ok(srv.ok);
  try {
    for (let i = 0; i < 3; i++) {
      const s = await connectSocket(target);
      assert.ok(s.ok, s.ok ? '' : s.error.message);
      assert.equal(s.value.daemonPid, process.pid);
      s.value.socket.destroy();
      // After the first, the client resumes: it no longer needs the key file (nor checks a signature).
      if (i === 0) renameSync(join(h, 'identity.pub'), join(h, 'identity.pub.away'));
    }
    renameSync(join(h, 'identity.pub.away'), join(h, 'identity.pub'));
    // A raw look at what the daemon answers a ticket: {pid, mac}, no signature; another nonce, another mac.
    const ask = async (params: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const raw = await new Promise<Socket>((r) => {
        const sock: Socket = createConnection(target.socketPath, () => r(sock));
      });
      const line = await new Promise<string>((r) => {
        let buf = '';
        raw.on('data', (b: Buffer) => {
          buf += b.toString();
          if (buf.includes('\n')) r(buf.slice(0, buf.indexOf('\n')));
        });
        raw.write(JSON.stringify({ id: 'auth', method: 'auth', params }) + '\n');
      });
      raw.destroy();
      return (JSON.parse(line) as { result: Record<string, unknown> }).result;
    };
    const first = await ask({ nonce: Buffer.alloc(32, 1).toString('base64'), want_ticket: true });
    assert.equal(typeof first.signature, 'string');
    const ticket = first.ticket as { id: string; key: string };
    assert.equal(Buffer.from(ticket.key, 'base64').length, 32);
    const resumed = await ask({ nonce: Buffer.alloc(32, 2).toString('base64'), ticket: ticket.id });
    assert.equal(resumed.signature, undefined);
    assert.equal(resumed.pid, process.pid);
    const other = await ask({ nonce: Buffer.alloc(32, 3).toString('base64'), ticket: ticket.id });
    assert.notEqual(other.mac, resumed.mac);
    // A ticket this daemon did not issue (another instance) gets a full proof and a fresh ticket.
    const stale = await ask({ nonce: Buffer.alloc(32, 4).toString('base64'), ticket: '0123456789abcdef.00' });
    assert.equal(typeof stale.signature, 'string');
    assert.notEqual((stale.ticket as { id: string }).id, ticket.id);
  } finally {
    await srv.value.close();
  }
  // The daemon is gone; an impostor with its own key takes the socket. The client holds a ticket: the impostor
  // cannot compute its mac, so it answers with a full proof of its own key, which the home's key refuses.
  mkdirSync(join(dir, 'resume-impostor'), { mode: 0o700 });
  const impostor = new FakeNode();
  const bad = await serveIpc(impostor, { socketPath: target.socketPath, identity: generateIdentity(), home: join(dir, 'resume-impostor') });
  assert.ok(bad.ok);
  try {
    const r = await connectIpc(target);
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'daemon_unverified');
    assert.match(r.error.message, /does not verify against the node key/);
  } finally {
    await bad.value.close();
  }
  // A squatter that answers the ticket with a made-up mac is refused too, and gets nothing but the auth line.
  const sq = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', () => s.write(JSON.stringify({ id: 'auth', ok: true, result: { pid: 4242, mac: Buffer.alloc(32).toString('base64') } }) + '\n'));
    s.on('end', () => s.destroy());
    s.on('error', () => {});
  });
  await new Promise<void>((r) => sq.listen(target.socketPath, () => r()));
  try {
    const r = await callOnce(target, 'send_message', { to: 'agent-alpha', data: SECRET });
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'daemon_unverified');
    assert.match(r.error.message, /resumption proof is wrong/);
  } finally {
    await new Promise<void>((r) => sq.close(() => r()));
  }
  // The real daemon back (a new process would have a new instance): the stale ticket gets a full proof, verified.
  const again = await serveIpc(new FakeNode(), { socketPath: target.socketPath, ...ipcAuth(h) });
  assert.ok(again.ok);
  try {
    const r = await callOnce(target, 'info');
    assert.ok(r.ok, r.ok ? '' : r.error.message);
  } finally {
    await again.value.close();
  }
});
