// Issue 14 (messages): message ids over META, reply correlation, and inbox queries/paging.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/logger.js';
import { encodeFrame, FRAME_TYPE_TEXT, sendMessage, startServices, Inbox } from '../../../src/services/index.js';
import { decodeMeta, encodeMeta, FRAME_TYPE_META, metaAckText, parseMetaAck } from '../../../src/services/data-exchange-codec.js';
import { compileFilters, headFromPrefix, matchesHead, parseBound, parseFrom, selectNames } from '../../../src/services/inbox-query.js';
import { MemoryNetwork, rawExchange, type MemoryHost } from './memory-host.js';

function setup() {
  const net = new MemoryNetwork();
  const server = net.addHost(1, 'server');
  const client = net.addHost(2, 'alice');
  const other = net.addHost(3, 'mallory');
  const opts = { echo: false, dataExchange: true, eventStream: false, logger: silentLogger() };
  const svc = startServices(server, opts);
  const csvc = startServices(client, opts);
  assert.ok(svc.ok && csvc.ok);
  return { net, server, client, other, svc: svc.value, csvc: csvc.value };
}

const frame = (type: number, payload: Uint8Array): Buffer => {
  const f = encodeFrame(type, payload);
  assert.ok(f.ok);
  return Buffer.from(f.value);
};

test('META codec: round trip, refusals, ack text', () => {
  for (const replyTo of [null, 'a1b2c3d4-0000-4000-8000-000000000001', 'TEXT-20240101-000000.000']) {
    const d = decodeMeta(encodeMeta({ replyTo }));
    assert.ok(d.ok);
    assert.equal(d.value.replyTo, replyTo);
  }
  for (const bad of ['', 'nope', '[]', '{"v":2}', '{"v":1,"reply_to":5}', '{"v":1,"reply_to":"has space"}', '{"v":1,"reply_to":"' + 'x'.repeat(200) + '"}']) {
    assert.equal(decodeMeta(Buffer.from(bad)).ok, false, bad);
  }
  const id = 'a1b2c3d4-0000-4000-8000-000000000001';
  assert.equal(parseMetaAck(metaAckText(12, id)), id);
  assert.equal(parseMetaAck('ACK UNKNOWN(16) 12 bytes'), null, "an original receiver's ack carries no id");
  assert.equal(parseMetaAck(null), null);
  assert.equal(parseMetaAck('ACK META 3 bytes id=../../etc'), null);
});

test('a META names the next message only; an invalid META is refused and the connection stays in step', async () => {
  const { net, server, client, svc } = setup();
  const replyTo = 'a1b2c3d4-0000-4000-8000-000000000001';
  const meta = encodeMeta({ replyTo });
  const acks = await rawExchange(
    client,
    Buffer.concat([frame(FRAME_TYPE_META, meta), frame(FRAME_TYPE_TEXT, Buffer.from('first')), frame(FRAME_TYPE_TEXT, Buffer.from('second')), frame(FRAME_TYPE_META, Buffer.from('{')), frame(FRAME_TYPE_TEXT, Buffer.from('third'))]),
    5,
  );
  const id = parseMetaAck(acks[0]!);
  assert.ok(id, acks[0]);
  assert.deepEqual(acks.slice(1, 3), ['ACK TEXT 5 bytes', 'ACK TEXT 6 bytes']);
  assert.match(acks[3]!, /^ERR META save failed: /);
  assert.equal(acks[4], 'ACK TEXT 5 bytes');
  const list = await svc.inbox.list();
  assert.ok(list.ok);
  const byData = new Map(list.value.map((m) => [m.data, m]));
  assert.equal(byData.get('first')!.id, id);
  assert.equal(byData.get('first')!.reply_to, replyTo);
  assert.equal(byData.get('second')!.reply_to, undefined, 'META applies to one frame');
  assert.notEqual(byData.get('second')!.id, id);
  assert.equal(byData.get('third')!.reply_to, undefined);
  const read = await svc.inbox.read(id);
  assert.ok(read.ok && read.value.data === 'first');
  assert.equal((await svc.inbox.read('a1b2c3d4-0000-4000-8000-00000000ffff')).ok, false);
  void server;
  await svc.stop();
  net.cleanup();
});

test('reply correlation: the wait ends on the reply to this message, not on a reply to another one', async () => {
  const { net, server, client, other, svc, csvc } = setup();
  const a = await sendMessage(client, 'server', Buffer.from('question A'), 'text');
  const b = await sendMessage(client, 'server', Buffer.from('question B'), 'text');
  assert.ok(a.ok && b.ok && a.value.id && b.value.id && a.value.id !== b.value.id);
  const idA = a.value.id!;
  const idB = b.value.id!;
  // The receiver sees both with their ids.
  const got = await svc.inbox.list();
  assert.ok(got.ok);
  assert.deepEqual(got.value.map((m) => m.id).sort(), [idA, idB].sort());

  const wait = csvc.inbox.waitFor({ replyTo: idA, from: server.address }, 20_000);
  // Noise first: a reply to B, and a message from a third node claiming to answer A.
  const rb = await sendMessage(server, 'alice', Buffer.from('answer B'), 'text', { replyTo: idB });
  assert.ok(rb.ok && rb.value.reply_to === idB);
  const forged = await sendMessage(other, 'alice', Buffer.from('not from the server'), 'text', { replyTo: idA });
  assert.ok(forged.ok);
  const ra = await sendMessage(server, 'alice', Buffer.from('answer A'), 'text', { replyTo: idA });
  assert.ok(ra.ok);
  const r = await wait;
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.value.data, 'answer A');
  assert.equal(r.value.reply_to, idA);
  assert.equal(r.value.from, server.address);

  // A reply that landed before the wait started is found with `since`; without a match the wait times out.
  const early = await csvc.inbox.waitFor({ replyTo: idB, since: '2000-01-01T00:00:00Z' }, 5_000);
  assert.ok(early.ok && early.value.data === 'answer B');
  const none = await csvc.inbox.waitFor({ replyTo: 'a1b2c3d4-0000-4000-8000-00000000dead', since: '2000-01-01T00:00:00Z' }, 300);
  assert.equal(none.ok, false);
  assert.equal(!none.ok && none.error.code, 'timeout');
  // Aborting (the IPC client went away) ends a wait at once.
  const ac = new AbortController();
  const t0 = Date.now();
  const pending = csvc.inbox.waitFor({ replyTo: 'a1b2c3d4-0000-4000-8000-00000000beef' }, 60_000, ac.signal);
  ac.abort();
  const aborted = await pending;
  assert.equal(!aborted.ok && aborted.error.code, 'timeout');
  assert.ok(Date.now() - t0 < 10_000);
  await svc.stop();
  await csvc.stop();
  net.cleanup();
});

test('inbox-query: bounds, from, heads', () => {
  const names = ['TEXT-20240101-000000.000-00000001.json', 'JSON-20240101-000001.000-00000002-a1b2c3d4-0000-4000-8000-000000000001.json', 'TEXT-20240101-000002.000-00000003.json'];
  const all = selectNames(names, {});
  assert.ok(all.ok && all.value.length === 3);
  const latest = selectNames(names, { isLatest: true });
  assert.ok(latest.ok && latest.value[0] === names[2]);
  const since = selectNames(names, { since: '20240101-000000.000-00000001' });
  assert.ok(since.ok);
  assert.deepEqual(since.value, names.slice(1), 'a cursor is exclusive');
  const sinceTime = selectNames(names, { since: '2024-01-01T00:00:01Z' });
  assert.ok(sinceTime.ok);
  assert.deepEqual(sinceTime.value, names.slice(1), 'a time is inclusive');
  const before = selectNames(names, { before: '2024-01-01T00:00:01Z' });
  assert.ok(before.ok);
  assert.deepEqual(before.value, names.slice(0, 1), 'before a time is exclusive');
  const window = selectNames(names, { since: '2024-01-01T00:00:00Z', before: '20240101-000002.000-00000003', isLatest: true });
  assert.ok(window.ok);
  assert.deepEqual(window.value, [names[1], names[0]]);
  assert.equal(parseBound('2024-13-45T99:00:00Z', 'before').ok, false);
  assert.equal(parseBound('has space', 'since').ok, false);

  assert.deepEqual(parseFrom('7'), { ok: true, value: { address: '0:0000.0000.0007' } });
  assert.deepEqual(parseFrom('0:0000.0000.0007'), { ok: true, value: { address: '0:0000.0000.0007' } });
  assert.deepEqual(parseFrom('Agent-B'), { ok: true, value: { hostname: 'agent-b' } });
  assert.equal(parseFrom('a b').ok, false);

  const f = compileFilters({ from: 'agent-b', replyTo: 'x1' });
  assert.ok(f.ok);
  assert.equal(matchesHead({ id: '1', from: '0:0000.0000.0002', from_hostname: 'agent-b', reply_to: 'x1' }, f.value), true);
  assert.equal(matchesHead({ id: '1', from: '0:0000.0000.0002', from_hostname: 'agent-b', reply_to: 'x2' }, f.value), false);
  assert.equal(matchesHead({ id: '1', from: '0:0000.0000.0002', from_hostname: null, reply_to: 'x1' }, f.value), false);

  assert.deepEqual(headFromPrefix('{"id":"1","from":"0:0000.0000.0002","data":"abc'), { id: '1', from: '0:0000.0000.0002' });
  assert.equal(headFromPrefix('{"id":"1","from":"0:0000.0000.0002"'), null, 'cut before data: the caller reads the whole file');
  assert.deepEqual(headFromPrefix('{"type":"TEXT","from":"0:0000.0000.0002","data":"'), { type: 'TEXT', from: '0:0000.0000.0002' }, "the original's files: type and from come first too");
});

test('inbox pages: --latest/--before, --from, limits and scan budgets cover every message once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-inbox-q-'));
  try {
    let t = Date.parse('2024-05-06T07:00:00Z');
    const inbox = new Inbox(dir, { now: () => new Date(t) });
    const senders = ['0:0000.0000.0002', '0:0000.0000.0003'];
    for (let i = 0; i < 25; i++) {
      t += 1000;
      const s = await inbox.save({ from: senders[i % 2]!, from_hostname: i % 2 ? 'carol' : 'bob', type: 'text', payload: Buffer.from(`m${i}`) });
      assert.ok(s.ok);
    }
    // Newest first, pages of 4, following next_before.
    const seen: string[] = [];
    let before: string | undefined;
    for (;;) {
      const p = await inbox.page({ isLatest: true, limit: 4, ...(before ? { before } : {}) });
      assert.ok(p.ok);
      seen.push(...p.value.messages.map((m) => m.data));
      assert.equal(p.value.next_since, null);
      if (!p.value.has_more) break;
      before = p.value.next_before!;
    }
    assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => `m${24 - i}`));

    // --from by hostname and by address, oldest first, with a tiny scan budget: empty pages still go on.
    for (const from of ['carol', '0:0000.0000.0003', '3']) {
      const got: string[] = [];
      let since: string | undefined;
      let calls = 0;
      for (;;) {
        const p = await inbox.page({ from, limit: 3, maxScanned: 2, ...(since ? { since } : {}) });
        assert.ok(p.ok);
        calls++;
        got.push(...p.value.messages.map((m) => m.data));
        if (!p.value.has_more) break;
        since = p.value.next_since!;
        assert.ok(since, 'a page with more has a cursor, even when empty');
      }
      assert.deepEqual(got, Array.from({ length: 12 }, (_, i) => `m${2 * i + 1}`), from);
      assert.ok(calls > 6);
    }
    // The newest from bob.
    const latestBob = await inbox.page({ from: 'bob', isLatest: true, limit: 1 });
    assert.ok(latestBob.ok && latestBob.value.messages[0]!.data === 'm24');
    // before/since times.
    const window = await inbox.page({ since: '2024-05-06T07:00:03Z', before: '2024-05-06T07:00:06Z' });
    assert.ok(window.ok);
    assert.deepEqual(window.value.messages.map((m) => m.data), ['m2', 'm3', 'm4']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
