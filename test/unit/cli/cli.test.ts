import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS } from '../../../src/cli/main.js';
import { parseDurationMs } from '../../../src/cli/args.js';
import { serveIpc, type IpcServer } from '../../../src/ipc/server.js';
import { PilotClient } from '../../../src/sdk/client.js';
import { FakeNode, ipcAuth } from '../ipc/fake-node.js';
import { pilotctl } from './helpers.js';

let dir: string;
let sock: string;
let node: FakeNode;
let server: IpcServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-cli-'));
  sock = join(dir, 'pilot.sock');
  node = new FakeNode();
  const r = await serveIpc(node, { socketPath: sock, ...ipcAuth(dir) });
  assert.ok(r.ok);
  server = r.value;
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Run against the fake daemon; `--json` variants get the envelope checked. */
async function run(args: string[], opts: Parameters<typeof pilotctl>[1] = {}) {
  return pilotctl([...args, '--socket', sock], { env: { PILOT_HOME: dir }, ...opts });
}

async function ok(args: string[], opts: Parameters<typeof pilotctl>[1] = {}): Promise<Record<string, unknown>> {
  const r = await run([...args, '--json'], opts);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr.includes('"status":"error"'), false);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `exactly one JSON document on stdout for ${args.join(' ')}: ${r.stdout}`);
  const doc = JSON.parse(lines[0]!) as { status: string; data: Record<string, unknown> };
  assert.deepEqual(Object.keys(doc), ['status', 'data']);
  assert.equal(doc.status, 'ok');
  return doc.data;
}

async function text(args: string[], opts: Parameters<typeof pilotctl>[1] = {}): Promise<string> {
  const r = await run(args, opts);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function fails(args: string[], code: string, exit: number, opts: Parameters<typeof pilotctl>[1] = {}) {
  const r = await run([...args, '--json'], opts);
  assert.equal(r.code, exit, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
  assert.equal(r.stdout, '');
  const e = JSON.parse(r.stderr.trim().split('\n').pop()!) as Record<string, unknown>;
  assert.equal(e.status, 'error');
  assert.equal(e.code, code, `${args.join(' ')}: ${r.stderr}`);
  assert.equal(typeof e.message, 'string');
  assert.equal(typeof e.hint, 'string');
  const t = await run(args, opts);
  assert.equal(t.code, exit);
  assert.match(t.stderr, /^error: .+\nhint: {2}.+/);
  return e;
}

test('info / daemon-free commands: text and JSON', async () => {
  const d = await ok(['info']);
  assert.equal(d.node_id, 5);
  assert.equal(d.uptime_secs, 3725);
  assert.equal(d.address, '0:0000.0000.0005');
  const t = await text(['info']);
  assert.match(t, /Node ID: +5/);
  assert.match(t, /Uptime: +01:02:05/);
  assert.equal((await ok(['version'])).version, '0.1.0');
  assert.match(await text(['version']), /^pilotctl /);
});

test('hostname, visibility, tags', async () => {
  assert.deepEqual(await ok(['set-hostname', 'my-agent']), { hostname: 'my-agent', node_id: 5 });
  assert.match(await text(['set-hostname', 'other-agent']), /hostname set: other-agent/);
  await fails(['set-hostname', 'agent-alpha'], 'already_exists', 1);
  await fails(['set-hostname', 'Bad_Name'], 'invalid_argument', 2);
  await fails(['set-hostname', 'x'.repeat(64)], 'invalid_argument', 2);
  assert.deepEqual(await ok(['clear-hostname']), { hostname: '', node_id: 5 });
  assert.equal(node.hostname, null);
  assert.deepEqual(await ok(['set-public']), { status: 'ok', public: true });
  assert.match(await text(['set-private']), /private/);
  assert.equal(node.isPublic, false);
  assert.deepEqual(await ok(['set-tags', 'gpu', '#llm']), { node_id: 5, tags: ['gpu', 'llm'] });
  assert.match(await text(['set-tags', 'gpu']), /tags set: #gpu/);
  await fails(['set-tags', 'a', 'b', 'c', 'd'], 'invalid_argument', 2);
  await fails(['set-tags', 'UPPER'], 'invalid_argument', 2);
  assert.deepEqual(await ok(['clear-tags']), { node_id: 5, tags: [] });
});

test('find', async () => {
  const d = await ok(['find', 'agent-alpha']);
  assert.deepEqual([d.hostname, d.node_id, d.address, d.public], ['agent-alpha', 7, '0:0000.0000.0007', true]);
  assert.match(await text(['find', 'agent-alpha']), /Address: +0:0000\.0000\.0007/);
  const e = await fails(['find', 'nobody-here'], 'not_found', 1);
  assert.match(String(e.hint), /handshake/);
});

test('trust: handshake, pending, approve, reject, trust, untrust', async () => {
  const h = await ok(['handshake', 'agent-beta', 'need to talk']);
  assert.deepEqual(h, { node_id: 9, status: 'sent' });
  assert.ok(node.calls.includes('handshake:agent-beta:need to talk'));
  assert.match(await text(['handshake', 'agent-alpha']), /already trusted/);
  await fails(['handshake', 'Not A Peer!'], 'invalid_argument', 2);
  await fails(['handshake', '1:0000.0000.0001'], 'invalid_argument', 2); // network mismatch
  const p = await ok(['pending']);
  assert.equal((p.pending as unknown[]).length, 1);
  assert.match(await text(['pending']), /NODE ID +HOSTNAME +JUSTIFICATION +RECEIVED\n9 +agent-beta +wants to chat/);
  assert.deepEqual(await ok(['approve', '9']), { node_id: 9, status: 'approved' });
  await fails(['approve', '9'], 'not_found', 1);
  await fails(['approve', 'nine'], 'invalid_argument', 2);
  await fails(['approve', '99999999999'], 'invalid_argument', 2);
  await fails(['reject', '42', 'spam'], 'not_found', 1);
  assert.ok(node.calls.includes('reject:42:spam'));
  node.pendingList.push({ node_id: 11, address: '0:0000.0000.000B', hostname: null, justification: '', received_at: 'now' });
  assert.match(await text(['reject', '11']), /rejected/);
  const t = await ok(['trust']);
  assert.deepEqual((t.trusted as Array<{ node_id: number }>).map((x) => x.node_id), [7, 9]);
  assert.match(await text(['trust']), /NODE ID +ADDRESS +HOSTNAME +MUTUAL/);
  assert.deepEqual(await ok(['untrust', '9']), { node_id: 9, status: 'untrusted' });
  node.trustedList = [];
  assert.match(await text(['trust']), /no trusted peers/);
  node.pendingList = [];
  assert.match(await text(['pending']), /no pending handshake requests/);
});

test('send and connect: message, pipe mode, errors', async () => {
  const s = await ok(['send', 'agent-alpha', '7', '--data', 'hello']);
  assert.deepEqual([s.target, s.port, s.sent, s.response], ['0:0000.0000.0007', 7, 'hello', 'hello']);
  assert.equal(await text(['send', 'agent-alpha', '1000', '--data', 'x']), 'reply:x\n');
  await fails(['send', 'agent-alpha', '7'], 'invalid_argument', 2);
  await fails(['send', 'agent-alpha', '0', '--data', 'x'], 'invalid_argument', 2);
  await fails(['send', 'agent-alpha', '65536', '--data', 'x'], 'invalid_argument', 2);
  await fails(['send', 'agent-alpha', '4444', '--data', 'x'], 'connection_failed', 1);

  const c = await ok(['connect', 'agent-alpha', '--message', 'hi']);
  assert.deepEqual([c.port, c.response], [1000, 'reply:hi']);
  const piped = await ok(['connect', 'agent-alpha', '1000'], { stdin: '{"action":"status"}' });
  assert.equal(piped.response, 'reply:{"action":"status"}');
  assert.equal(piped.sent, '{"action":"status"}');
  assert.equal(await text(['connect', 'agent-alpha', '1000'], { stdin: '{"action":"status"}\n' }), 'reply:{"action":"status"}\n');
  await fails(['connect', 'agent-alpha'], 'invalid_argument', 2); // stdin is a TTY and no --message
  await fails(['connect', 'agent-alpha', '1000'], 'invalid_argument', 1, { stdin: '' });
  const reset = await run(['send', 'agent-alpha', '9', '--data', 'boom', '--json']);
  assert.equal(reset.code, 1);
  assert.equal(JSON.parse(reset.stderr).code, 'connection_failed');
});

test('recv accepts streams on a port', async () => {
  const cli = run(['recv', '5100', '--count', '2', '--json', '--timeout', '5s']);
  const c = await PilotClient.connect({ socketPath: sock, home: dir });
  assert.ok(c.ok);
  for (const msg of ['first', 'second']) {
    let s = await c.value.dial('test-node', 5100);
    for (let i = 0; !s.ok && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 20)); // recv may not be listening yet
      s = await c.value.dial('test-node', 5100);
    }
    assert.ok(s.ok);
    s.value.end(msg);
    await new Promise((r) => s.ok && s.value.on('close', r).resume());
  }
  c.value.close();
  const r = await cli;
  assert.equal(r.code, 0, r.stderr);
  const data = (r.json as { data: { messages: Array<Record<string, unknown>>; timeout: boolean } }).data;
  assert.equal(data.timeout, false);
  assert.deepEqual(data.messages.map((m) => [m.seq, m.data, m.bytes, m.port]), [[0, 'first', 5, 5100], [1, 'second', 6, 5100]]);
  const timedOut = await run(['recv', '5101', '--timeout', '100ms', '--json']);
  assert.equal(timedOut.code, 0);
  assert.deepEqual((timedOut.json as { data: unknown }).data, { messages: [], timeout: true });
  const t = await run(['recv', '5102', '--timeout', '50ms']);
  assert.match(t.stderr, /timeout/);
});

test('listen prints datagrams: bounded envelope and unbounded NDJSON', async () => {
  const cli = run(['listen', '6100', '--count', '1', '--json', '--timeout', '5s']);
  const c = await PilotClient.connect({ socketPath: sock, home: dir });
  assert.ok(c.ok);
  const s = await c.value.openDatagramSocketAsync(6101);
  assert.ok(s.ok);
  for (let i = 0; i < 100 && !node.datagramSockets.has(6100); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok((await s.value.send('test-node', 6100, Buffer.from('dg-1'))).ok);
  const r = await cli;
  assert.equal(r.code, 0, r.stderr);
  const msgs = (r.json as { data: { messages: Array<Record<string, unknown>> } }).data.messages;
  assert.deepEqual(msgs, [{ src_addr: '0:0000.0000.0005', src_port: 6101, data: 'dg-1', bytes: 4 }]);

  // The bounded run's socket is released asynchronously; wait so the next run binds a fresh one.
  for (let i = 0; i < 100 && node.datagramSockets.has(6100); i++) await new Promise((r2) => setTimeout(r2, 10));
  const abort = new AbortController();
  const unbounded = run(['listen', '6100', '--json'], { signal: abort.signal });
  for (let i = 0; i < 100 && !node.datagramSockets.has(6100); i++) await new Promise((r2) => setTimeout(r2, 10));
  await s.value.send('test-node', 6100, Buffer.from('a'));
  await s.value.send('test-node', 6100, Buffer.from('b'));
  await new Promise((r2) => setTimeout(r2, 50));
  abort.abort();
  const u = await unbounded;
  assert.equal(u.code, 0);
  assert.deepEqual(u.stdout.trim().split('\n').map((l) => JSON.parse(l).data), ['a', 'b']);
  s.value.close();
  c.value.close();
});

test('messages and files: send-message, inbox, send-file, received', async () => {
  const m = await ok(['send-message', 'agent-alpha', '--data', 'hello there']);
  // The original's fields, unchanged; issue 14 added id and ack_text (null from a daemon that reports none).
  assert.deepEqual(m, { target: '0:0000.0000.0007', type: 'text', bytes: 11, ack: true, id: null, ack_text: null });
  assert.match(await text(['send-message', 'agent-alpha', '--data', '{"a":1}', '--type', 'json']), /sent json message/);
  await fails(['send-message', 'agent-alpha', '--data', '{bad', '--type', 'json'], 'invalid_argument', 2);
  await fails(['send-message', 'agent-alpha', '--data', 'x', '--type', 'xml'], 'invalid_argument', 2);
  await fails(['send-message', 'agent-alpha'], 'invalid_argument', 2);
  const inbox = await ok(['inbox']);
  assert.equal(inbox.total, 2);
  assert.equal((inbox.messages as Array<{ data: string }>)[0]!.data, 'hello there');
  assert.match(await text(['inbox']), /Inbox \(2 messages\)/);
  assert.deepEqual(await ok(['inbox', '--clear']), { cleared: 2 });
  assert.match(await text(['inbox']), /inbox is empty/);

  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'n'.repeat(5000));
  const f = await ok(['send-file', 'agent-alpha', file]);
  assert.deepEqual([f.filename, f.bytes, f.destination, f.ack], ['notes.txt', 5000, '0:0000.0000.0007', true]);
  const bar = await run(['send-file', 'agent-alpha', 'notes.txt'], { stderrIsTTY: true, cwd: dir });
  assert.equal(bar.code, 0, bar.stderr);
  assert.match(bar.stderr, /\rsending notes\.txt \[#+\] 100%/);
  await fails(['send-file', 'agent-alpha', join(dir, 'missing.txt')], 'not_found', 1);
  // --limit-rate: a size per second, parsed at the edge, carried to the daemon, reported back.
  const lim = await ok(['send-file', 'agent-alpha', file, '--limit-rate', '1.5M']);
  assert.equal(lim.limit_rate_bps, 1.5 * 1024 * 1024);
  assert.equal(node.lastSendFileOpts?.rateBytesPerSec, 1.5 * 1024 * 1024);
  assert.equal(f.limit_rate_bps, null, 'no cap unless asked');
  for (const bad of ['fast', '10K', '0', '1.5']) await fails(['send-file', 'agent-alpha', file, '--limit-rate', bad], 'invalid_argument', 2);
  const rec = await ok(['received']);
  assert.equal(rec.total, 3);
  assert.equal((rec.files as Array<{ bytes: number }>)[0]!.bytes, 5000);
  assert.match(await text(['received']), /NAME +SIZE +FROM +RECEIVED\nnotes\.txt +4\.9 KB/);
  assert.deepEqual(await ok(['received', '--clear']), { cleared: 3 });
});

test('subscribe and publish', async () => {
  const cli = run(['subscribe', 'agent-alpha', 'news', '--count', '2', '--json', '--timeout', '5s']);
  for (let i = 0; i < 100 && node.subscribers.size === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const p = await ok(['publish', 'agent-alpha', 'news', '--data', 'one']);
  assert.deepEqual(p, { target: '0:0000.0000.0007', topic: 'news', bytes: 3 });
  assert.match(await text(['publish', 'agent-alpha', 'news', '--data', 'two']), /published 3 bytes/);
  const r = await cli;
  assert.equal(r.code, 0, r.stderr);
  const data = (r.json as { data: { events: Array<Record<string, unknown>>; timeout: boolean } }).data;
  assert.deepEqual(data.events.map((e) => [e.topic, e.data, e.bytes]), [['news', 'one', 3], ['news', 'two', 3]]);
  assert.equal(data.timeout, false);
  const t = await run(['subscribe', 'agent-alpha', '*', '--timeout', '50ms']);
  assert.equal(t.code, 0);
  assert.match(t.stderr, /subscribed to '\*'[\s\S]*timeout/);
  await fails(['publish', 'agent-alpha', 'news'], 'invalid_argument', 2);
  await fails(['subscribe', 'agent-alpha', 'has space'], 'invalid_argument', 2);
});

test('ping, bench, traceroute', async () => {
  const p = await ok(['ping', 'agent-alpha', '--count', '3', '--interval', '1ms']);
  assert.equal(p.target, '0:0000.0000.0007');
  assert.deepEqual((p.results as Array<{ seq: number }>).map((x) => x.seq), [0, 1, 2]);
  assert.equal(p.timeout, false);
  const t = await text(['ping', 'agent-alpha', '--count', '2', '--interval', '1ms']);
  assert.match(t, /^PING 0:0000\.0000\.0007\nseq=0 bytes=6 time=0\.500ms\nseq=1 bytes=6 time=0\.600ms\n--- /);
  await fails(['ping', 'agent-beta'], 'connection_failed', 1);
  await fails(['ping', 'agent-alpha', '--count', '0'], 'invalid_argument', 2);
  await fails(['ping', 'agent-alpha', '--interval', 'soon'], 'invalid_argument', 2);

  const b = await ok(['bench', 'agent-alpha', '2']);
  for (const k of ['target', 'sent_bytes', 'recv_bytes', 'send_duration_ms', 'total_duration_ms', 'send_mbps', 'total_mbps']) assert.ok(k in b, k);
  assert.equal(b.sent_bytes, 2 * 1024 * 1024);
  const bt = await run(['bench', 'agent-alpha', '0.5'], { stderrIsTTY: true });
  assert.equal(bt.code, 0);
  assert.match(bt.stdout, /BENCH 0:0000\.0000\.0007 — sending 512\.0 KB/);
  assert.match(bt.stderr, /bench \[#+\] 100%/);
  await fails(['bench', 'agent-alpha', 'lots'], 'invalid_argument', 2);
  await fails(['bench', 'agent-alpha', '0'], 'invalid_argument', 2);

  const tr = await ok(['traceroute', '0:0000.0000.0007']);
  assert.equal(tr.target, '0:0000.0000.0007');
  assert.equal((tr.rtt_samples as unknown[]).length, 3);
  assert.equal(tr.path, 'direct');
  assert.match(await text(['traceroute', 'agent-alpha']), /TRACEROUTE 0:0000\.0000\.0007\n {2}1 {2}0:0000\.0000\.0007 {2}setup=/);
});

test('peers, connections, disconnect', async () => {
  const p = await ok(['peers']);
  assert.equal(p.total, 2);
  assert.equal((await ok(['peers', '--search', 'beta'])).total, 1);
  assert.match(await text(['peers']), /NODE ID +ADDRESS +HOSTNAME +ENDPOINT +PATH +ENCRYPTED +TRUSTED +RTT\n7 +0:0000\.0000\.0007 +agent-alpha/);
  assert.match(await text(['peers', '--search', 'zzz']), /no peers matching/);
  const c = await ok(['connections']);
  assert.equal(c.total, 1);
  const conn = (c.connections as Array<Record<string, unknown>>)[0]!;
  for (const k of ['cwnd_bytes', 'srtt_ms', 'bytes_in_flight', 'remote_addr']) assert.ok(k in conn, k);
  assert.match(await text(['connections']), /CWND +FLIGHT +SRTT[\s\S]*64\.0 KB +1\.2 KB +0\.8ms/);
  assert.deepEqual(await ok(['disconnect', '1']), { conn_id: 1 });
  await fails(['disconnect', '2'], 'not_found', 1);
  await fails(['disconnect', 'x'], 'invalid_argument', 2);
});

test('config shows and sets values under --home', async () => {
  const home = join(dir, 'cfg-home');
  const set = await pilotctl(['config', '--set', 'registry=10.0.0.1:9000', '--home', home, '--json'], { env: {} });
  assert.equal(set.code, 0, set.stderr);
  assert.deepEqual((set.json as { data: unknown }).data, { key: 'registry', value: '10.0.0.1:9000' });
  await pilotctl(['config', '--set', 'public=true', '--home', home], { env: {} });
  const show = await pilotctl(['config', '--home', home, '--json'], { env: {} });
  const d = (show.json as { data: Record<string, unknown> }).data;
  assert.equal(d.registry, '10.0.0.1:9000');
  assert.equal(d.public, true);
  assert.equal(d.socket, join(home, 'pilot.sock'));
  assert.equal(d.config_path, join(home, 'config.json'));
  const bad = await pilotctl(['config', '--set', 'novalue', '--json'], { env: {} });
  assert.equal(bad.code, 2);
});

test('not_running: exit 1 with the start hint, JSON on stderr only', async () => {
  for (const args of [['info'], ['peers'], ['ping', 'agent-alpha'], ['send', 'agent-alpha', '7', '--data', 'x']]) {
    const r = await pilotctl([...args, '--json', '--socket', join(dir, 'absent.sock')]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const e = JSON.parse(r.stderr) as Record<string, unknown>;
    assert.deepEqual(Object.keys(e).slice(0, 4), ['status', 'code', 'message', 'hint']);
    assert.equal(e.code, 'not_running');
    assert.equal(e.hint, 'start the daemon with: pilotctl daemon start');
  }
});

test('usage errors exit 2 before contacting the daemon', async () => {
  const absent = join(dir, 'absent.sock');
  const cases: string[][] = [
    [],
    ['frobnicate'],
    ['info', '--bogus'],
    ['info', 'extra'],
    ['daemon'],
    ['daemon', 'restart'],
    ['ping'],
    ['ping', 'UPPER_case'],
    ['ping', 'agent-alpha', '--count'],
    ['send', 'agent-alpha', 'http', '--data', 'x'],
    ['connect', '99999999999', '--message', 'x'],
    ['info', '--timeout', 'never'],
    ['help', 'nonsense'],
  ];
  for (const args of cases) {
    const r = await pilotctl([...args, '--json', '--socket', absent]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    const e = JSON.parse(r.stderr.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(e.code, 'invalid_argument', args.join(' '));
    assert.equal(typeof e.hint, 'string');
  }
  const plain = await pilotctl([]);
  assert.equal(plain.code, 2);
  assert.match(plain.stderr, /pilotctl — Pilot Protocol CLI/);
});

test('context lists every command the parser knows, with flags and error codes', async () => {
  const d = await ok(['context']);
  const cmds = d.commands as Record<string, { args: string[]; flags: Array<{ name: string }>; returns: string; errors: string[] }>;
  assert.deepEqual(Object.keys(cmds).sort(), COMMANDS.map((c) => c.name).sort());
  for (const c of COMMANDS) {
    assert.deepEqual(cmds[c.name]!.flags.map((f) => f.name), c.flags.map((f) => `--${f.name}`));
    assert.ok(cmds[c.name]!.errors.includes('invalid_argument'));
    assert.ok(cmds[c.name]!.returns.length > 0);
  }
  const required = ['daemon start', 'daemon stop', 'daemon status', 'info', 'set-hostname', 'clear-hostname', 'find', 'set-public', 'set-private', 'set-tags',
    'handshake', 'pending', 'approve', 'reject', 'trust', 'untrust', 'send', 'recv', 'connect', 'listen', 'send-message', 'inbox', 'send-file',
    'received', 'subscribe', 'publish', 'ping', 'bench', 'traceroute', 'peers', 'connections', 'disconnect', 'config', 'context', 'help', 'version', 'demo'];
  for (const n of required) assert.ok(n in cmds, n);
  assert.deepEqual(Object.keys(d.error_codes as object).sort(), ['already_exists', 'connection_failed', 'daemon_unverified', 'fingerprint_mismatch', 'hash_mismatch', 'identity_changed', 'internal', 'invalid_argument', 'key_retired', 'not_found', 'not_running', 'permission_denied', 'policy_denied', 'proxy_failed', 'quota_exceeded', 'timeout', 'unsafe_home', 'verify_failed']);
  assert.ok('--json' in (d.global_flags as object));
  assert.match(cmds.ping!.returns, /results \[\{seq, bytes, rtt_ms/);
  assert.match(cmds.bench!.returns, /send_mbps/);
});

test('help: all commands and one command', async () => {
  const all = await text(['help']);
  for (const c of COMMANDS) assert.ok(all.includes(`pilotctl ${c.name}`), c.name);
  assert.match(await text(['help', 'ping']), /usage: pilotctl ping <peer> \[--count <n>\]/);
  assert.match(await text(['help', 'daemon', 'start']), /--registry <host:port>/);
  assert.equal((await ok(['help', 'send'])).command, 'send');
  assert.match(await text(['send', '--help']), /usage: pilotctl send/);
});

test('durations parse like Go plus bare seconds', () => {
  assert.equal(parseDurationMs('1m30s'), 90_000);
  assert.equal(parseDurationMs('250ms'), 250);
  assert.equal(parseDurationMs('2'), 2000);
  assert.equal(parseDurationMs('1.5h'), 5_400_000);
  assert.ok(Number.isNaN(parseDurationMs('5 s')));
  assert.ok(Number.isNaN(parseDurationMs('')));
});
