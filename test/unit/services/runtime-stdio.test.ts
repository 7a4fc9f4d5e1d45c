import test from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/logger.js';
import { PORT_DATAEXCHANGE, PORT_ECHO, PORT_EVENTSTREAM, PORT_STDIO } from '../../../src/wire/address.js';
import { receiveMessages, sendAndRead, sendMessage, startServices } from '../../../src/services/index.js';
import { MemoryNetwork } from './memory-host.js';

test('startServices binds only what is enabled; stop() unbinds and resets open streams', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2);
  const all = startServices(server, { echo: true, dataExchange: true, eventStream: true, logger: silentLogger() });
  assert.ok(all.ok);
  assert.deepEqual(all.value.ports, [PORT_ECHO, PORT_DATAEXCHANGE, PORT_EVENTSTREAM]);
  assert.deepEqual([...server.listeners.keys()].sort((a, b) => a - b), [PORT_ECHO, PORT_DATAEXCHANGE, PORT_EVENTSTREAM]);
  assert.equal(server.listeners.has(PORT_STDIO), false, 'the original binds nothing on 1000');

  const open = await client.dial('server', PORT_ECHO);
  assert.ok(open.ok);
  let isReset = false;
  open.value.on('error', () => {
    isReset = true;
  });
  await new Promise((r) => setTimeout(r, 10));
  await all.value.stop();
  assert.equal(server.listeners.size, 0);
  await new Promise((r) => setImmediate(r));
  assert.equal(isReset, true);
  await all.value.stop(); // idempotent

  const some = startServices(server, { echo: false, dataExchange: true, eventStream: false, logger: silentLogger() });
  assert.ok(some.ok);
  assert.deepEqual(some.value.ports, [PORT_DATAEXCHANGE]);
  await some.value.stop();
  net.cleanup();
});

test('startServices fails cleanly when a port is taken, leaving nothing bound', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const squat = server.listen(PORT_EVENTSTREAM);
  assert.ok(squat.ok);
  const r = startServices(server, { echo: true, dataExchange: true, eventStream: true, logger: silentLogger() });
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'already_exists');
  assert.match(r.error.message, /eventstream service failed to start on port 1002/);
  assert.deepEqual([...server.listeners.keys()], [PORT_EVENTSTREAM]);
  squat.value.close();
  net.cleanup();
});

test('hooks fire for saved messages', async () => {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2);
  const seen: string[] = [];
  const svc = startServices(server, {
    echo: false,
    dataExchange: true,
    eventStream: false,
    logger: silentLogger(),
    // The hook gets the stored message's metadata: the payload streamed to disk and is not held in memory.
    onMessage: (m) => seen.push(`${m.type} ${m.bytes} ${m.from}`),
  });
  assert.ok(svc.ok);
  assert.ok((await sendMessage(client, 'server', Buffer.from('hooked'), 'text')).ok);
  assert.deepEqual(seen, [`text 6 ${client.address}`]);
  await svc.value.stop();
  net.cleanup();
});

test('stdio helpers: connect/send style exchange and recv style receive', async () => {
  const net = new MemoryNetwork();
  const a = net.addHost(1, 'a');
  const b = net.addHost(2, 'b');
  // recv on b:1000, send from a — the original's `pilotctl recv 1000` + `pilotctl connect b --message`.
  const receiving = receiveMessages(b, PORT_STDIO, { count: 2, timeoutMs: 2000 });
  await new Promise((r) => setImmediate(r));
  const s1 = await sendAndRead(a, 'b', PORT_STDIO, Buffer.from('hello'), { timeoutMs: 2000 });
  assert.ok(s1.ok);
  assert.deepEqual(s1.value, { target: b.address, port: PORT_STDIO, sent: 'hello', response: '' });
  const s2 = await sendAndRead(a, 'b', PORT_STDIO, Buffer.from('again'), { timeoutMs: 2000 });
  assert.ok(s2.ok);
  const r = await receiving;
  assert.ok(r.ok);
  assert.deepEqual(r.value, {
    messages: [
      { seq: 0, port: PORT_STDIO, data: 'hello', bytes: 5 },
      { seq: 1, port: PORT_STDIO, data: 'again', bytes: 5 },
    ],
    timeout: false,
  });
  assert.equal(b.listeners.has(PORT_STDIO), false, 'recv unbinds when done');

  // Against an echo service the response is the echo.
  const svc = startServices(b, { echo: true, dataExchange: false, eventStream: false, logger: silentLogger() });
  assert.ok(svc.ok);
  const e = await sendAndRead(a, 'b', PORT_ECHO, Buffer.from('marco'));
  assert.ok(e.ok && e.value.response === 'marco');
  await svc.value.stop();

  // Nobody listening: connection_failed; nobody sending: timeout:true.
  const refused = await sendAndRead(a, 'b', PORT_STDIO, Buffer.from('x'));
  assert.ok(!refused.ok && refused.error.code === 'connection_failed');
  const idle = await receiveMessages(b, PORT_STDIO, { count: 1, timeoutMs: 30 });
  assert.ok(idle.ok);
  assert.deepEqual(idle.value, { messages: [], timeout: true });

  // A listener that never answers: sendAndRead times out.
  const ln = b.listen(4000);
  assert.ok(ln.ok);
  const t = await sendAndRead(a, 'b', 4000, Buffer.from('anyone?'), { timeoutMs: 30 });
  assert.ok(!t.ok && t.error.code === 'timeout');
  ln.value.close();
  net.cleanup();
});
