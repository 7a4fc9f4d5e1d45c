// Issue 14, messages: every new command through pilotctl against real daemons (one rendezvous, alpha + beta):
// talking to oneself (connect/send-message/subscribe/dgram to the own hostname), send-message --wait with replies
// correlated by message id, --reply-to, --data - / --data-file, inbox read/--latest/--from/--since/--before/
// --limit paging/--clear, and register / lookup / deregister / dgram.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, explain, spawnPilotctl, waitFor, type JsonRun } from './harness.js';

let c: Cluster;

function assertOk(r: JsonRun): any {
  assert.equal(r.code, 0, explain(r));
  assert.ok(r.data !== null, explain(r));
  return r.data;
}

function assertErr(r: JsonRun, code: string, exit = 1): NonNullable<JsonRun['error']> {
  assert.equal(r.code, exit, explain(r));
  assert.ok(r.error, explain(r));
  assert.equal(r.error.code, code, explain(r));
  assert.equal(typeof r.error.hint, 'string', `error without hint: ${explain(r)}`);
  return r.error;
}

before(async () => {
  c = await Cluster.start('msg', ['alpha', 'beta']);
  await c.trust('alpha', 'beta');
});

after(async () => {
  await c?.close();
});

test('a node reaches itself like localhost: connect 7, send-message, subscribe/publish, dgram/listen', async () => {
  const echo = assertOk(await c.json('alpha', ['connect', 'alpha', '7', '--message', 'hello me']));
  assert.equal(echo.response, 'hello me');
  assert.equal(echo.target, c.node('alpha').address);
  // By address too.
  const byAddr = assertOk(await c.json('alpha', ['send', c.node('alpha').address, '7', '--data', 'x']));
  assert.equal(byAddr.response, 'x');

  const m = assertOk(await c.json('alpha', ['send-message', 'alpha', '--data', 'note to self']));
  assert.equal(m.ack, true);
  assert.match(m.id, /^[0-9a-f-]{36}$/);
  const latest = assertOk(await c.json('alpha', ['inbox', '--latest']));
  assert.equal(latest.messages.length, 1);
  assert.equal(latest.messages[0].id, m.id);
  assert.equal(latest.messages[0].from, c.node('alpha').address);
  assert.equal(latest.messages[0].from_hostname, 'alpha');

  // Subscribe to my own broker while I publish to it.
  const sub = spawnPilotctl(['--home', c.homeOf('alpha'), 'subscribe', 'alpha', 'self-topic', '--count', '1', '--timeout', '30s']);
  await waitFor('subscribe to be ready', () => /subscribed to/.test(sub.stderr()), 20_000);
  assertOk(await c.json('alpha', ['publish', 'alpha', 'self-topic', '--data', 'ping myself']));
  const s = await sub.done;
  assert.equal(s.code, 0, explain(s));
  assert.match(s.stdout, /\[self-topic\] ping myself/);

  // One datagram to my own port.
  const lis = spawnPilotctl(['--home', c.homeOf('alpha'), 'listen', '5005', '--count', '1', '--timeout', '30s']);
  await waitFor('listen to be ready', () => /listening on port 5005/.test(lis.stderr()), 20_000);
  const d = assertOk(await c.json('alpha', ['dgram', 'alpha', '5005', '--data', 'tick']));
  assert.equal(d.bytes, 4);
  assert.equal(d.port, 5005);
  assert.ok(d.src_port >= 49152);
  const l = await lis.done;
  assert.equal(l.code, 0, explain(l));
  assert.match(l.stdout, /tick/);
});

test('send-message --wait: the reply to this message ends the wait, a reply to another one does not', async () => {
  const beta = c.node('beta');
  // A first message, which beta will answer while alpha waits for the answer to the second one.
  const first = assertOk(await c.json('alpha', ['send-message', 'beta', '--data', 'question one']));
  assert.match(first.id, /^[0-9a-f-]{36}$/);
  const waiting = spawnPilotctl(['--home', c.homeOf('alpha'), '--json', 'send-message', 'beta', '--data', 'question two', '--wait', '90s'], { killAfterMs: 120_000 });
  const second = await waitFor('beta to receive question two', async () => {
    const r = await c.json('beta', ['inbox', '--latest', '--from', 'alpha']);
    const m = r.data?.messages?.[0];
    return m && m.data === 'question two' ? m : null;
  }, 30_000, 200);
  assert.notEqual(second.id, first.id);

  // A reply to the first message (the wrong one for this wait).
  const wrong = assertOk(await c.json('beta', ['send-message', 'alpha', '--reply-to', first.id, '--data', 'answer one']));
  assert.equal(wrong.reply_to, first.id);
  // Give it time to land at alpha; the wait must still be running.
  await waitFor('answer one in alpha\'s inbox', async () => {
    const r = await c.json('alpha', ['inbox', '--latest', '--from', 'beta']);
    return r.data?.messages?.[0]?.data === 'answer one';
  }, 30_000, 200);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(waiting.child.exitCode, null, `the wait ended on a reply to another message: ${waiting.stdout()} ${waiting.stderr()}`);

  assertOk(await c.json('beta', ['send-message', 'alpha', '--reply-to', second.id, '--data', 'answer two']));
  const done = await waiting.done;
  assert.equal(done.code, 0, explain(done));
  const doc = JSON.parse(done.stdout.trim().split('\n').pop()!);
  assert.equal(doc.status, 'ok');
  assert.equal(doc.data.id, second.id, 'send-message reports the id the receiver stored');
  assert.equal(doc.data.reply.data, 'answer two');
  assert.equal(doc.data.reply.reply_to, second.id);
  assert.equal(doc.data.reply.from, beta.address);
  assert.equal(typeof doc.data.waited_ms, 'number');
  // The original's fields are all there.
  for (const k of ['target', 'type', 'bytes', 'ack']) assert.ok(k in doc.data, k);

  // Text mode prints the reply; a wait nobody answers is `timeout`, exit 1, with the id in detail.
  const t = spawnPilotctl(['--home', c.homeOf('beta'), 'send-message', 'alpha', '--data', 'ping?', '--wait=60s'], { killAfterMs: 90_000 });
  const q = await waitFor('alpha to receive ping?', async () => {
    const r = await c.json('alpha', ['inbox', '--latest']);
    const m = r.data?.messages?.[0];
    return m && m.data === 'ping?' ? m : null;
  }, 30_000, 200);
  assertOk(await c.json('alpha', ['send-message', 'beta', '--reply-to', q.id, '--data', 'pong!']));
  const tr = await t.done;
  assert.equal(tr.code, 0, explain(tr));
  assert.equal(tr.stdout, 'pong!\n');
  const to = await c.json('alpha', ['send-message', 'beta', '--data', 'nobody answers', '--wait', '1500ms']);
  const e = assertErr(to, 'timeout');
  assert.match(e.detail.id, /^[0-9a-f-]{36}$/);
});

test('--data - and --data-file; inbox read, --from, --since/--before, --limit pages, --clear', async () => {
  const viaStdin = assertOk(await c.json('alpha', ['send-message', 'beta', '--data', '-', '--type', 'json'], { stdin: '{"job":42}\n' }));
  assert.equal(viaStdin.type, 'json');
  const file = join(c.root, 'body.txt');
  writeFileSync(file, 'from a file\nline two\n');
  const viaFile = assertOk(await c.json('alpha', ['send-message', 'beta', '--data-file', file]));
  assert.equal(viaFile.bytes, 21);
  assertErr(await c.json('alpha', ['send-message', 'beta', '--data', '-', '--type', 'json'], { stdin: 'not json' }), 'invalid_argument');
  assertErr(await c.json('alpha', ['send-message', 'beta', '--data', 'x', '--data-file', file]), 'invalid_argument', 2);
  assertErr(await c.json('alpha', ['send-message', 'beta', '--data', 'x', '--reply-to', 'bad id']), 'invalid_argument', 2);

  const read = assertOk(await c.json('beta', ['inbox', 'read', viaFile.id]));
  assert.equal(read.data, 'from a file\nline two\n');
  assert.equal(read.id, viaFile.id);
  assert.equal(read.size, 21);
  const readText = await c.text('beta', ['inbox', 'read', viaStdin.id]);
  assert.equal(readText.code, 0, explain(readText));
  assert.match(readText.stdout, /ID:\s+[0-9a-f-]{36}[\s\S]*Type:\s+json[\s\S]*\{"job":42\}/);
  assertErr(await c.json('beta', ['inbox', 'read', '00000000-0000-4000-8000-000000000000']), 'not_found');

  // Everything beta holds, page by page (2 at a time), equals the unpaged listing; --latest pages backwards.
  const all = assertOk(await c.json('beta', ['inbox'])).messages;
  assert.ok(all.length >= 4);
  const paged: any[] = [];
  let since: string | null = null;
  for (;;) {
    const p = assertOk(await c.json('beta', ['inbox', '--limit', '2', ...(since ? ['--since', since] : [])]));
    paged.push(...p.messages);
    if (!p.has_more) break;
    since = p.next_since;
  }
  assert.deepEqual(paged.map((m) => m.id), all.map((m: any) => m.id));
  const back: any[] = [];
  let beforeCursor: string | null = null;
  for (;;) {
    const p = assertOk(await c.json('beta', ['inbox', '--latest', '--limit', '3', ...(beforeCursor ? ['--before', beforeCursor] : [])]));
    back.push(...p.messages);
    if (!p.has_more) break;
    beforeCursor = p.next_before;
  }
  assert.deepEqual(back.map((m) => m.id), all.map((m: any) => m.id).reverse());

  // --from: by hostname, address and node id agree; from beta itself: none.
  const alpha = c.node('alpha');
  const byName = assertOk(await c.json('beta', ['inbox', '--from', 'alpha'])).messages;
  const byAddr = assertOk(await c.json('beta', ['inbox', '--from', alpha.address])).messages;
  const byId = assertOk(await c.json('beta', ['inbox', '--from', String(alpha.nodeId)])).messages;
  assert.equal(byName.length, all.filter((m: any) => m.from === alpha.address).length);
  assert.deepEqual(byAddr.map((m: any) => m.id), byName.map((m: any) => m.id));
  assert.deepEqual(byId.map((m: any) => m.id), byName.map((m: any) => m.id));
  // Each message shows id, sender, type, time, size (and reply_to when set).
  for (const m of all) for (const k of ['id', 'from', 'type', 'received_at', 'size']) assert.ok(k in m, k);

  // --before a time in the past: nothing; --since a time in the future: nothing.
  assert.equal(assertOk(await c.json('beta', ['inbox', '--before', '2000-01-01T00:00:00Z'])).total, 0);
  assert.equal(assertOk(await c.json('beta', ['inbox', '--since', '2999-01-01T00:00:00Z'])).total, 0);
  assertErr(await c.json('beta', ['inbox', '--before', '2024-99-99T00:00:00Z']), 'invalid_argument', 2);

  // Text listing shows ids and sizes.
  const txt = await c.text('beta', ['inbox', '--latest', '--limit', '2']);
  assert.equal(txt.code, 0, explain(txt));
  assert.match(txt.stdout, /id=[0-9a-f-]{36} from \S+ type=\w+ size=\d+/);

  const cleared = assertOk(await c.json('beta', ['inbox', '--clear']));
  assert.equal(cleared.cleared, all.length);
  assert.equal(assertOk(await c.json('beta', ['inbox'])).total, 0);
  const again = await c.json('beta', ['inbox', '--clear']);
  assert.equal(again.code, 0, explain(again));
});

test('lookup, deregister, register: the registry forgets the node and takes it back under the same id', async () => {
  const beta = c.node('beta');
  const l = assertOk(await c.json('alpha', ['lookup', String(beta.nodeId)]));
  assert.equal(l.node_id, beta.nodeId);
  assert.equal(l.address, beta.address);
  assert.equal(typeof l.public_key, 'string');
  assert.equal(typeof l.public, 'boolean');
  assertErr(await c.json('alpha', ['lookup', '999999']), 'not_found');
  assertErr(await c.json('alpha', ['lookup', 'x']), 'invalid_argument', 2);

  const d = assertOk(await c.json('beta', ['deregister']));
  assert.deepEqual(d, { node_id: beta.nodeId, status: 'deregistered' });
  assertErr(await c.json('alpha', ['lookup', String(beta.nodeId)]), 'not_found');
  const gone = assertOk(await c.json('beta', ['info']));
  assert.equal(gone.registered, false);
  assert.equal(gone.registry_state, 'deregistered');
  assert.match(gone.registry_reason, /pilotctl register/);

  const r = assertOk(await c.json('beta', ['register']));
  assert.equal(r.node_id, beta.nodeId, 'the same key gets the same node id');
  assert.equal(r.address, beta.address);
  assert.equal(typeof r.public_key, 'string');
  assert.equal(r.network_id, 0);
  const back = assertOk(await c.json('alpha', ['lookup', String(beta.nodeId)]));
  assert.equal(back.node_id, beta.nodeId);
  const info = assertOk(await c.json('beta', ['info']));
  assert.equal(info.registered, true);
  assert.equal(info.registry_state, 'registered');
  assertErr(await c.json('beta', ['register', 'not-an-endpoint']), 'invalid_argument', 2);
  // Messages still flow after re-registering.
  assertOk(await c.json('alpha', ['send-message', 'beta', '--data', 'still here?']));
});

test('context lists the new commands with flags and examples; dgram to a peer', async () => {
  const ctx = assertOk(await c.json('alpha', ['context']));
  for (const name of ['send-message', 'inbox', 'inbox read', 'register', 'deregister', 'lookup', 'dgram']) {
    const e = ctx.commands[name];
    assert.ok(e, name);
    assert.ok(e.examples.length >= 1, name);
  }
  const flags = ctx.commands['send-message'].flags.map((f: any) => f.name);
  for (const f of ['--data', '--data-file', '--reply-to', '--wait', '--type']) assert.ok(flags.includes(f), f);

  const lis = spawnPilotctl(['--home', c.homeOf('beta'), 'listen', '5006', '--count', '1', '--timeout', '30s']);
  await waitFor('listen to be ready', () => /listening on port 5006/.test(lis.stderr()), 20_000);
  assertOk(await c.json('alpha', ['dgram', 'beta', '5006', '--data', 'over the tunnel']));
  const l = await lis.done;
  assert.equal(l.code, 0, explain(l));
  assert.match(l.stdout, /over the tunnel/);
});
