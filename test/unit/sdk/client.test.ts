import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveIpc, type IpcServer } from '../../../src/ipc/server.js';
import { PilotClient, resolveSocketPath } from '../../../src/sdk/index.js';
import { FakeNode, ipcAuth } from '../ipc/fake-node.js';

let dir: string;
let node: FakeNode;
let server: IpcServer;
let client: PilotClient;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-sdk-'));
  node = new FakeNode();
  const r = await serveIpc(node, { socketPath: join(dir, 'pilot.sock'), ...ipcAuth(dir) });
  assert.ok(r.ok);
  server = r.value;
  const c = await PilotClient.connect({ home: dir });
  assert.ok(c.ok, c.ok ? '' : c.error.message);
  client = c.value;
});

after(async () => {
  client.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('socket resolution: explicit > home > PILOT_SOCKET > PILOT_HOME > ~/.pilot', () => {
  assert.equal(resolveSocketPath({ socketPath: '/x/s.sock' }, {}), '/x/s.sock');
  assert.equal(resolveSocketPath({ home: '/h' }, { PILOT_SOCKET: '/e.sock' }), '/h/pilot.sock');
  assert.equal(resolveSocketPath({}, { PILOT_SOCKET: '/e.sock', PILOT_HOME: '/h' }), '/e.sock');
  assert.equal(resolveSocketPath({}, { PILOT_HOME: '/h' }), '/h/pilot.sock');
  assert.equal(resolveSocketPath({}, {}), join(homedir(), '.pilot', 'pilot.sock'));
});

test('connect without a daemon → not_running with the start hint', async () => {
  const r = await PilotClient.connect({ socketPath: join(dir, 'none.sock') });
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'not_running');
  assert.match(r.error.hint ?? '', /pilotctl daemon start/);
});

test('identity, discovery and trust calls', async () => {
  const info = await client.info();
  assert.ok(info.ok && info.value.node_id === 5);
  assert.deepEqual(await client.setHostname('renamed'), { ok: true, value: { hostname: 'renamed' } });
  assert.equal(node.hostname, 'renamed');
  assert.ok((await client.clearHostname()).ok);
  assert.equal(node.hostname, null);
  assert.ok((await client.setVisibility(true)).ok);
  assert.equal(node.isPublic, true);
  assert.deepEqual(await client.setTags(['gpu', 'llm']), { ok: true, value: { tags: ['gpu', 'llm'] } });
  const f = await client.find('agent-beta');
  assert.ok(f.ok && f.value.node_id === 9);
  const h = await client.handshake('agent-beta', 'please');
  assert.ok(h.ok && h.value.status === 'sent');
  assert.ok(node.calls.includes('handshake:agent-beta:please'));
  const p = await client.pending();
  assert.ok(p.ok && p.value.pending.length === 1);
  const a = await client.approve(9);
  assert.ok(a.ok && a.value.status === 'approved');
  const again = await client.approve(9);
  assert.ok(!again.ok && again.error.code === 'not_found');
  const t = await client.trusted();
  assert.ok(t.ok && t.value.trusted.some((x) => x.node_id === 9));
  assert.ok((await client.untrust(9)).ok);
  const rej = await client.reject(123, 'no');
  assert.ok(!rej.ok && rej.error.code === 'not_found');
  assert.ok(node.calls.includes('reject:123:no'));
});

test('messages, files, events', async () => {
  const m = await client.sendMessage('agent-alpha', 'hi', 'text');
  assert.deepEqual(m, { ok: true, value: { bytes: 2, ack: true } });
  const inbox = await client.inbox();
  assert.ok(inbox.ok && inbox.value.messages.at(-1)!.data === 'hi');
  const cleared = await client.inbox({ clear: true });
  assert.ok(cleared.ok && cleared.value.cleared! >= 1);

  const file = join(dir, 'report.txt');
  writeFileSync(file, 'x'.repeat(1000));
  const progress: Array<[number, number]> = [];
  const sf = await client.sendFile('agent-alpha', file, (d, t) => progress.push([d, t]));
  assert.ok(sf.ok && sf.value.bytes === 1000 && sf.value.name === 'report.txt');
  assert.deepEqual(progress.at(-1), [1000, 1000]);
  const rec = await client.received();
  assert.ok(rec.ok && rec.value.files.length === 1);

  const events: string[] = [];
  const sub = await client.subscribe('agent-alpha', 'news', (e) => events.push(e.data));
  assert.ok(sub.ok);
  assert.ok((await client.publish('agent-alpha', 'news', 'extra!')).ok);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(events, ['extra!']);
  sub.value.close();
  await sub.value.done;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(node.subscribers.size, 0);
});

test('diagnostics: ping streams results, bench reports progress, peers/connections/disconnect', async () => {
  const live: number[] = [];
  const p = await client.ping('agent-alpha', { count: 3, intervalMs: 1, onResult: (r) => live.push(r.seq) });
  assert.ok(p.ok && p.value.results.length === 3);
  assert.deepEqual(live, [0, 1, 2]);
  const bad = await client.ping('agent-beta', { count: 1, intervalMs: 1 });
  assert.ok(!bad.ok && bad.error.code === 'connection_failed');
  let last = 0;
  const b = await client.bench('agent-alpha', 2 * 1024 * 1024, (d) => (last = d));
  assert.ok(b.ok && b.value.send_mbps > 0);
  assert.equal(last, 2 * 1024 * 1024);
  const peers = await client.peers();
  assert.ok(peers.ok && peers.value.peers.length === 2);
  const conns = await client.connections();
  assert.ok(conns.ok && conns.value.connections[0]!.cwnd_bytes === 65536);
  assert.ok((await client.disconnect(1)).ok);
  const nd = await client.disconnect(2);
  assert.ok(!nd.ok && nd.error.code === 'not_found');
});

test('dial returns a Duplex; listen/accept over loopback', async () => {
  const s = await client.dial('agent-alpha', 1000);
  assert.ok(s.ok);
  let reply = '';
  s.value.on('data', (b: Buffer) => (reply += b.toString()));
  const ended = new Promise((r) => s.value.on('end', r));
  s.value.end('{"action":"status"}');
  await ended;
  assert.equal(reply, 'reply:{"action":"status"}');

  const l = await client.listenAsync(7000);
  assert.ok(l.ok);
  const taken = await client.listenAsync(7000);
  assert.ok(!taken.ok && taken.error.code === 'already_exists');
  const acceptP = l.value.accept();
  const d = await client.dial('test-node', 7000);
  assert.ok(d.ok);
  const srv = await acceptP;
  assert.ok(srv);
  assert.equal(srv.localPort, 7000);
  d.value.end('knock');
  let got = '';
  srv.on('data', (b: Buffer) => (got += b.toString()));
  await new Promise((r) => srv.on('end', r));
  assert.equal(got, 'knock');
  srv.end();
  l.value.close();
  assert.equal(await l.value.accept(), null);

  // The synchronous NodeApi form reports a taken port through accept() → null and `error`.
  const l1 = await client.listenAsync(7001);
  assert.ok(l1.ok);
  const l2 = client.listen(7001);
  assert.ok(l2.ok);
  assert.equal(await l2.value.accept(), null);
  assert.equal((l2.value as unknown as { error: { code: string } }).error.code, 'already_exists');
  l1.value.close();
});

test('datagram sockets: send to self and recv with timeout', async () => {
  const s = await client.openDatagramSocketAsync(8000);
  assert.ok(s.ok);
  assert.ok((await s.value.send('test-node', 8000, Buffer.from('d1'))).ok);
  const d = await s.value.recv(1000);
  assert.ok(d);
  assert.equal(Buffer.from(d.data).toString(), 'd1');
  assert.equal(d.fromNodeId, 5);
  assert.equal(await s.value.recv(30), null);
  s.value.close();
  assert.equal(await s.value.recv(), null);
});

test('the client reconnects after the daemon restarts', async () => {
  const path = join(dir, 'restart.sock');
  const first = await serveIpc(new FakeNode(), { socketPath: path, ...ipcAuth(dir) });
  assert.ok(first.ok);
  const c = await PilotClient.connect({ socketPath: path, home: dir });
  assert.ok(c.ok);
  assert.ok((await c.value.info()).ok);
  await first.value.close();
  await new Promise((r) => setTimeout(r, 20));
  const down = await c.value.info();
  assert.ok(!down.ok && down.error.code === 'not_running');
  const second = await serveIpc(new FakeNode(), { socketPath: path, ...ipcAuth(dir) });
  assert.ok(second.ok);
  assert.ok((await c.value.info()).ok);
  c.value.close();
  await second.value.close();
});
