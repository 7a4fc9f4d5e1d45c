import test from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/logger.js';
import { PORT_EVENTSTREAM } from '../../../src/wire/address.js';
import { encodeEvent, publish, startServices, subscribe, type ReceivedEvent } from '../../../src/services/index.js';
import { StreamReader, writeChunk } from '../../../src/services/stream-io.js';
import { MemoryNetwork, waitFor } from './memory-host.js';

function setup() {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'broker');
  const a = net.addHost(2, 'a');
  const b = net.addHost(3, 'b');
  const svc = startServices(server, { echo: false, dataExchange: false, eventStream: true, logger: silentLogger() });
  assert.ok(svc.ok);
  return { net, server, a, b, svc: svc.value };
}

const subs = (svc: ReturnType<typeof setup>['svc']) => svc.broker!.subscriptionCounts();

test('publish reaches subscribers of that topic and "*" subscribers, nobody else', async () => {
  const { net, server, a, b, svc } = setup();
  const news: ReceivedEvent[] = [];
  const all: ReceivedEvent[] = [];
  const sport: ReceivedEvent[] = [];
  const s1 = await subscribe(a, 'broker', 'news', (e) => news.push(e));
  const s2 = await subscribe(b, 'broker', '*', (e) => all.push(e));
  const s3 = await subscribe(b, 'broker', 'sport', (e) => sport.push(e));
  assert.ok(s1.ok && s2.ok && s3.ok);
  await waitFor(() => Object.keys(subs(svc)).length === 3, 3000, 'subscriptions');

  const p = await publish(b, 'broker', 'news', Buffer.from('headline'));
  assert.ok(p.ok);
  assert.deepEqual(p.value, { target: server.address, topic: 'news', bytes: 8 });
  await waitFor(() => news.length === 1 && all.length === 1, 3000, 'delivery');
  assert.equal(news[0]!.topic, 'news');
  assert.equal(news[0]!.data, 'headline');
  assert.equal(news[0]!.bytes, 8);
  assert.equal(news[0]!.from, server.address);
  assert.match(news[0]!.received_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(all[0]!.data, 'headline');

  assert.ok((await publish(a, 'broker', 'weather', Buffer.from('rain'))).ok);
  await waitFor(() => all.length === 2, 3000, 'wildcard delivery');
  assert.equal(all[1]!.topic, 'weather');
  // "*" is a literal wildcard only: no prefix matching, and "news" subscribers did not get "weather".
  assert.equal(news.length, 1);
  assert.equal(sport.length, 0);

  for (const s of [s1, s2, s3]) if (s.ok) s.value.close();
  await Promise.all([s1, s2, s3].map((s) => (s.ok ? s.value.done : undefined)));
  for (const s of [s1, s2, s3]) if (s.ok) assert.equal(s.value.closeReason(), null);
  await waitFor(() => Object.keys(subs(svc)).length === 0, 3000, 'unsubscribe');
  await svc.stop();
  net.cleanup();
});

test('a publisher never receives its own event; publishing on the subscription connection works', async () => {
  const { net, a, b, svc } = setup();
  const gotA: ReceivedEvent[] = [];
  const gotB: ReceivedEvent[] = [];
  const sa = await subscribe(a, 'broker', 'chat', (e) => gotA.push(e));
  const sb = await subscribe(b, 'broker', 'chat', (e) => gotB.push(e));
  assert.ok(sa.ok && sb.ok);
  await waitFor(() => subs(svc)['chat'] === 2, 3000, 'subs');
  assert.ok((await sa.value.publish('chat', Buffer.from('from a'))).ok);
  await waitFor(() => gotB.length === 1, 3000, 'b gets it');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(gotA.length, 0);
  assert.equal(gotB[0]!.data, 'from a');
  sa.value.close();
  sb.value.close();
  await Promise.all([sa.value.done, sb.value.done]);
  await svc.stop();
  net.cleanup();
});

test('unsubscribe: after close() no more events, broker forgets the subscriber, others keep working', async () => {
  const { net, a, b, svc } = setup();
  const first: ReceivedEvent[] = [];
  const second: ReceivedEvent[] = [];
  const s1 = await subscribe(a, 'broker', 't', (e) => first.push(e));
  const s2 = await subscribe(b, 'broker', 't', (e) => second.push(e));
  assert.ok(s1.ok && s2.ok);
  await waitFor(() => subs(svc)['t'] === 2, 3000, 'subs');
  s1.value.close();
  await s1.value.done;
  await waitFor(() => subs(svc)['t'] === 1, 3000, 'one left');
  assert.ok((await publish(a, 'broker', 't', Buffer.from('x'))).ok);
  await waitFor(() => second.length === 1, 3000, 'second');
  assert.equal(first.length, 0);
  s2.value.close();
  await s2.value.done;
  await svc.stop();
  net.cleanup();
});

test('forwarded events are the published bytes unchanged (binary payloads, exact topic bytes)', async () => {
  const { net, a, b, svc } = setup();
  const d = await a.dial('broker', PORT_EVENTSTREAM);
  assert.ok(d.ok);
  const s = d.value;
  s.on('error', () => {});
  const sub = encodeEvent('bin', new Uint8Array(0));
  assert.ok(sub.ok);
  assert.ok((await writeChunk(s, sub.value)).ok);
  await waitFor(() => subs(svc)['bin'] === 1, 3000, 'raw sub');
  const payload = Buffer.from([0, 1, 2, 0xff, 0xfe]);
  const ev = encodeEvent('bin', payload);
  assert.ok(ev.ok);
  assert.ok((await publish(b, 'broker', 'bin', payload)).ok);
  const reader = new StreamReader(s);
  const got = await reader.readExactStrict(ev.value.length);
  assert.ok(got.ok);
  assert.deepEqual(got.value, Buffer.from(ev.value));
  s.end();
  await svc.stop();
  net.cleanup();
});

test('subscribe reports the broker going away via done and closeReason', async () => {
  const { net, a, svc } = setup();
  const s = await subscribe(a, 'broker', 'x', () => {});
  assert.ok(s.ok);
  await waitFor(() => subs(svc)['x'] === 1, 3000, 'sub');
  await svc.stop();
  await s.value.done;
  assert.equal(s.value.closeReason()?.code, 'connection_failed');
  const refused = await subscribe(a, 'broker', 'x', () => {});
  assert.ok(!refused.ok && refused.error.code === 'connection_failed');
  const empty = await publish(a, 'broker', '', Buffer.from('x'));
  assert.ok(!empty.ok && empty.error.code === 'invalid_argument');
  net.cleanup();
});
