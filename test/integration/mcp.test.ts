// `pilotctl mcp` driven by a real MCP client from the same SDK (Client + StdioClientTransport spawning the
// built pilotctl), against a real rendezvous and two daemons: tool list and schemas, info, trust between the
// nodes, messages, files, request/reply, pub/sub, ping, and tool errors carrying pilotctl's code/message/hint.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { binCommand } from '../helpers/bins.js';
import { Cluster, cleanEnv, explain, runPilotctl, sleep, waitFor } from './harness.js';

const TOOLS = ['info', 'peers', 'find', 'handshake', 'pending', 'approve', 'reject', 'trusted', 'send_message', 'inbox', 'send_file', 'received', 'request', 'subscribe', 'publish', 'ping'];

interface McpSession {
  client: Client;
  transport: StdioClientTransport;
  stderr(): string;
}

let c: Cluster;
const sessions: McpSession[] = [];
let alpha: McpSession;
let beta: McpSession;

/** `pilotctl --home <home> mcp` under a real MCP client. */
async function openSession(home: string): Promise<McpSession> {
  const [exe, ...pre] = binCommand('pilotctl');
  const env = Object.fromEntries(Object.entries(cleanEnv()).filter((e): e is [string, string] => e[1] !== undefined));
  const transport = new StdioClientTransport({ command: exe!, args: [...pre, '--home', home, 'mcp'], env, stderr: 'pipe' });
  let errText = '';
  transport.stderr?.on('data', (b: Buffer) => (errText += b.toString()));
  const client = new Client({ name: 'pilot-mcp-test', version: '1.0.0' });
  await client.connect(transport);
  const s = { client, transport, stderr: () => errText };
  sessions.push(s);
  return s;
}

type ToolResult = { isError?: boolean; content: Array<{ type: string; text?: string }>; structuredContent?: Record<string, unknown> };

/** Call a tool; the JSON document in its text content (checked against structuredContent). */
async function call(s: McpSession, name: string, args: Record<string, unknown> = {}): Promise<{ isError: boolean; doc: any }> {
  const r = (await s.client.callTool({ name, arguments: args }, undefined, { timeout: 60_000 })) as ToolResult;
  assert.equal(r.content.length, 1, JSON.stringify(r));
  assert.equal(r.content[0]!.type, 'text');
  const doc = JSON.parse(r.content[0]!.text!);
  if (r.structuredContent !== undefined) assert.deepEqual(r.structuredContent, doc, 'structuredContent = text content');
  return { isError: r.isError === true, doc };
}

async function ok(s: McpSession, name: string, args: Record<string, unknown> = {}): Promise<any> {
  const r = await call(s, name, args);
  assert.equal(r.isError, false, `${name} failed: ${JSON.stringify(r.doc)}`);
  return r.doc;
}

async function fails(s: McpSession, name: string, args: Record<string, unknown>, code: string): Promise<{ code: string; message: string; hint: string }> {
  const r = await call(s, name, args);
  assert.equal(r.isError, true, `${name} should fail: ${JSON.stringify(r.doc)}`);
  assert.equal(r.doc.status, 'error');
  assert.equal(r.doc.code, code, JSON.stringify(r.doc));
  assert.equal(typeof r.doc.message, 'string');
  assert.equal(typeof r.doc.hint, 'string', `error without hint: ${JSON.stringify(r.doc)}`);
  return r.doc;
}

/** The error document `pilotctl --json` prints for the same request. */
async function cliError(name: string, args: string[]): Promise<{ code: string; message: string; hint?: string }> {
  const r = await c.json(name, args);
  assert.ok(r.error, `pilotctl ${args.join(' ')} should fail`);
  const { code, message, hint } = r.error;
  return { code, message, ...(hint !== undefined ? { hint } : {}) };
}

before(async () => {
  c = await Cluster.start('mcp', ['alpha', 'beta']);
  [alpha, beta] = await Promise.all([openSession(c.homeOf('alpha')), openSession(c.homeOf('beta'))]);
});

after(async () => {
  await Promise.all(sessions.map((s) => s.client.close().catch(() => {})));
  await c?.close();
});

test('tools/list: the node\'s tools with input schemas generated from the commands', async () => {
  const { tools } = await alpha.client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), [...TOOLS].sort());
  const by = new Map(tools.map((t) => [t.name, t]));
  for (const t of tools) {
    assert.equal(t.inputSchema.type, 'object', t.name);
    assert.equal((t.inputSchema as { additionalProperties?: unknown }).additionalProperties, false, t.name);
    assert.match(t.description ?? '', /Runs `pilotctl [a-z-]+`; returns its --json data: .+ Error codes: invalid_argument/, t.name);
  }
  const schema = (name: string): { properties: Record<string, { type: string }>; required?: string[] } => by.get(name)!.inputSchema as never;
  assert.deepEqual(Object.keys(schema('info').properties), []);
  assert.deepEqual(schema('request').required, ['peer', 'message']);
  assert.equal(schema('request').properties.port!.type, 'integer');
  assert.equal(schema('approve').properties.node_id!.type, 'integer');
  assert.deepEqual(schema('approve').required, ['node_id']);
  assert.deepEqual(schema('handshake').required, ['peer']);
  assert.equal(schema('handshake').properties.justification!.type, 'string');
  assert.equal(schema('send_message').properties.data!.type, 'string');
  assert.ok('type' in schema('send_message').properties && 'timeout' in schema('send_message').properties);
  assert.equal(schema('inbox').properties.clear!.type, 'boolean');
  assert.deepEqual(Object.keys(schema('subscribe').properties).sort(), ['count', 'peer', 'timeout', 'topic']);
  assert.equal(schema('ping').properties.count!.type, 'integer');
  assert.match(by.get('subscribe')!.description!, /default 10s/);
  assert.equal(by.get('info')!.annotations?.readOnlyHint, true);
});

test('info is the data of pilotctl --json info', async () => {
  const [viaMcp, viaCli] = await Promise.all([ok(alpha, 'info'), c.ok('alpha', ['info'])]);
  assert.equal(viaMcp.node_id, c.node('alpha').nodeId);
  assert.equal(viaMcp.address, c.node('alpha').address);
  assert.equal(viaMcp.hostname, 'alpha');
  assert.deepEqual(Object.keys(viaMcp).sort(), Object.keys(viaCli).sort());
  for (const k of ['node_id', 'address', 'hostname', 'public_key', 'registry', 'public']) assert.deepEqual(viaMcp[k], viaCli[k], k);
});

test('handshake, pending, approve, trusted between the two nodes', async () => {
  const a = c.node('alpha');
  const b = c.node('beta');
  const h = await ok(alpha, 'handshake', { peer: 'beta', justification: 'mcp integration test' });
  assert.equal(h.node_id, b.nodeId);
  assert.notEqual(h.status, 'already_trusted');
  const req = await waitFor('beta to list alpha as pending', async () => {
    const p = await ok(beta, 'pending');
    return p.pending.find((x: { node_id: number }) => x.node_id === a.nodeId);
  });
  assert.equal(req.justification, 'mcp integration test');
  const ap = await ok(beta, 'approve', { node_id: a.nodeId });
  assert.equal(ap.node_id, a.nodeId);
  assert.equal(ap.status, 'approved');
  await waitFor('mutual trust on both sides', async () => {
    const [ta, tb] = await Promise.all([ok(alpha, 'trusted'), ok(beta, 'trusted')]);
    const m = (list: Array<{ node_id: number; mutual: boolean }>, id: number): boolean => list.some((x) => x.node_id === id && x.mutual);
    return m(ta.trusted, b.nodeId) && m(tb.trusted, a.nodeId);
  });
  const again = await ok(alpha, 'handshake', { peer: String(b.nodeId) });
  assert.equal(again.status, 'already_trusted');
  const f = await ok(alpha, 'find', { hostname: 'beta' });
  assert.equal(f.node_id, b.nodeId);
  assert.equal(f.address, b.address);
});

test('send_message and inbox round trip', async () => {
  const a = c.node('alpha');
  const text = `hello over mcp ${randomBytes(4).toString('hex')}`;
  const sent = await ok(alpha, 'send_message', { peer: 'beta', data: text, timeout: '20s' });
  // The original's fields unchanged; issue 14 added the receiver's message id (and the ACK text).
  const { id: sentId, ack_text: ackText, ...original } = sent;
  assert.deepEqual(original, { target: c.node('beta').address, type: 'text', bytes: Buffer.byteLength(text), ack: true });
  assert.match(sentId, /^[0-9a-f-]{36}$/);
  assert.equal(ackText, `ACK TEXT ${Buffer.byteLength(text)} bytes`);
  const json = await ok(alpha, 'send_message', { peer: 'beta', data: '{"k":1}', type: 'json' });
  assert.equal(json.type, 'json');
  const inbox = await waitFor('the messages in beta\'s inbox', async () => {
    const r = await ok(beta, 'inbox');
    return r.messages.length >= 2 ? r : null;
  });
  const m = inbox.messages.find((x: { data: string }) => x.data === text);
  assert.ok(m, JSON.stringify(inbox));
  assert.equal(m.from, a.address);
  assert.equal(m.type, 'text');
  assert.equal(m.id, sentId);
  // wait (true) + reply_to: beta answers the message alpha waits on.
  const waiting = ok(alpha, 'send_message', { peer: 'beta', data: 'are you there?', wait: true, timeout: '60s' });
  const q = await waitFor('the question in beta\'s inbox', async () => {
    const r = await ok(beta, 'inbox', { latest: true });
    return r.messages[0]?.data === 'are you there?' ? r.messages[0] : null;
  });
  await ok(beta, 'send_message', { peer: 'alpha', data: 'yes', reply_to: q.id });
  const answered = await waiting;
  assert.equal(answered.reply.data, 'yes');
  assert.equal(answered.reply.reply_to, q.id);
  const inboxNow = await ok(beta, 'inbox');
  assert.equal(inboxNow.total, inbox.messages.length + 1);
  inbox.messages = inboxNow.messages;
  inbox.total = inboxNow.total;
  assert.equal(inbox.total, inbox.messages.length);
  const page = await ok(beta, 'inbox', { limit: 1 });
  assert.equal(page.messages.length, 1);
  assert.equal(page.has_more, true);
  const cleared = await ok(beta, 'inbox', { clear: true });
  assert.equal(cleared.cleared, inbox.messages.length);
  assert.equal((await ok(beta, 'inbox')).total, 0);
});

test('send_file and received', async () => {
  const dir = join(c.root, 'files');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'report.bin');
  const body = randomBytes(64 * 1024);
  writeFileSync(path, body);
  const sha = createHash('sha256').update(body).digest('hex');
  const sent = await ok(alpha, 'send_file', { peer: 'beta', path });
  assert.equal(sent.filename, 'report.bin');
  assert.equal(sent.bytes, body.length);
  assert.equal(sent.sha256, sha);
  const got = await waitFor('the file in beta\'s received', async () => {
    const r = await ok(beta, 'received');
    return r.files.find((f: { name: string }) => f.name === 'report.bin');
  });
  assert.equal(got.bytes, body.length);
  assert.equal(got.sha256, sha);
});

test('request: one message to the echo port, its reply back', async () => {
  const r = await ok(alpha, 'request', { peer: 'beta', port: 7, message: 'echo me', timeout: '15s' });
  assert.equal(r.target, c.node('beta').address);
  assert.equal(r.port, 7);
  assert.equal(r.sent, 'echo me');
  assert.equal(r.response, 'echo me');
});

test('subscribe collects what publish sends, bounded by count; by time it returns timeout', async () => {
  const topic = `mcp-${randomBytes(3).toString('hex')}`;
  const sub = ok(alpha, 'subscribe', { peer: 'beta', topic, count: 1, timeout: '20s' });
  let isDone = false;
  void sub.finally(() => (isDone = true));
  // Publish until the subscription (registered asynchronously) has seen one.
  for (let i = 0; i < 40 && !isDone; i++) {
    const p = await ok(alpha, 'publish', { peer: 'beta', topic, data: `event ${i}` });
    assert.equal(p.topic, topic);
    await sleep(250);
  }
  const got = await sub;
  assert.equal(got.timeout, false);
  assert.equal(got.events.length, 1);
  assert.equal(got.events[0].topic, topic);
  assert.match(got.events[0].data, /^event \d+$/);

  const t0 = Date.now();
  const quiet = await ok(alpha, 'subscribe', { peer: 'beta', topic: `${topic}-quiet`, timeout: '1s' });
  assert.deepEqual(quiet, { events: [], timeout: true });
  assert.ok(Date.now() - t0 < 10_000);
});

test('ping and peers', async () => {
  const p = await ok(alpha, 'ping', { peer: 'beta', count: 2, interval: '100ms' });
  assert.equal(p.target, c.node('beta').address);
  assert.equal(p.sent, 2);
  assert.equal(p.received, 2);
  assert.equal(typeof p.avg_rtt_ms, 'number');
  const peers = await ok(alpha, 'peers');
  assert.ok(peers.peers.some((x: { node_id: number }) => x.node_id === c.node('beta').nodeId));
  assert.equal(peers.total, peers.peers.length);
});

test('tool errors carry the code, message and hint pilotctl --json gives', async () => {
  // Bad arguments: the command's own checks.
  const badId = await fails(alpha, 'approve', { node_id: 'abc' }, 'invalid_argument');
  assert.deepEqual({ code: badId.code, message: badId.message, hint: badId.hint }, await cliError('alpha', ['approve', 'abc']));
  const badPort = await fails(alpha, 'request', { peer: 'beta', port: 70000, message: 'x' }, 'invalid_argument');
  assert.deepEqual({ code: badPort.code, message: badPort.message, hint: badPort.hint }, await cliError('alpha', ['connect', 'beta', '70000', '--message', 'x']));
  const badPeer = await fails(alpha, 'ping', { peer: 'Not A Peer!' }, 'invalid_argument');
  assert.deepEqual({ code: badPeer.code, message: badPeer.message, hint: badPeer.hint }, await cliError('alpha', ['ping', 'Not A Peer!']));
  // Shape errors the command line cannot make.
  assert.match((await fails(alpha, 'info', { verbose: true }, 'invalid_argument')).message, /unknown argument 'verbose'/);
  assert.match((await fails(alpha, 'inbox', { clear: 'yes' }, 'invalid_argument')).message, /'clear' must be true or false/);
  assert.match((await fails(alpha, 'request', { peer: 'beta' }, 'invalid_argument')).message, /missing 'message'/);
  assert.match((await fails(alpha, 'ping', { peer: 'beta', timeout: 'soon' }, 'invalid_argument')).message, /invalid --timeout 'soon'/);

  // An unknown peer.
  const f = await fails(alpha, 'find', { hostname: 'no-such-node' }, 'not_found');
  assert.deepEqual({ code: f.code, message: f.message, hint: f.hint }, await cliError('alpha', ['find', 'no-such-node']));
  const p = await fails(alpha, 'ping', { peer: 'no-such-node', count: 1 }, 'not_found');
  assert.deepEqual({ code: p.code, message: p.message, hint: p.hint }, await cliError('alpha', ['ping', 'no-such-node', '--count', '1']));
  const m = await call(alpha, 'send_message', { peer: 'no-such-node', data: 'x', timeout: '10s' });
  assert.equal(m.isError, true);
  const cli = await cliError('alpha', ['send-message', 'no-such-node', '--data', 'x', '--timeout', '10s']);
  assert.deepEqual({ code: m.doc.code, message: m.doc.message, hint: m.doc.hint }, cli);
});

test('one server outlives its daemon: not_running while it is stopped, answers again once it is back', async () => {
  const before = await ok(beta, 'info');
  await c.stopDaemon('beta');
  const e = await fails(beta, 'info', {}, 'not_running');
  assert.match(e.hint, /pilotctl daemon start/);
  await c.startDaemon('beta');
  const after = await waitFor('beta\'s server to reach the restarted daemon', async () => {
    const r = await call(beta, 'info');
    return r.isError ? null : r.doc;
  });
  assert.equal(after.node_id, before.node_id, 'same identity');
  assert.ok(after.uptime_secs <= before.uptime_secs + 1);
});

test('no daemon: tools are listed, calls fail with not_running and its hint; stdin closing ends the server', async () => {
  const home = join(c.root, 'nobody');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const s = await openSession(home);
  const { tools } = await s.client.listTools();
  assert.equal(tools.length, TOOLS.length);
  const e = await fails(s, 'info', {}, 'not_running');
  assert.match(e.hint, /pilotctl daemon start/);
  assert.deepEqual({ code: e.code, message: e.message, hint: e.hint }, await cliError('nobody', ['info']));
  await fails(s, 'send_message', { peer: 'beta', data: 'x' }, 'not_running');
  assert.equal(s.stderr(), '', 'nothing logged');

  await s.client.close();
  sessions.splice(sessions.indexOf(s), 1);

  // Without a client: stdin closing ends the server by itself (exit 0, not the SDK's later SIGTERM), and
  // nothing but the protocol was written to stdout (here: nothing at all).
  const r = await runPilotctl(['--home', home, 'mcp'], { stdin: '' });
  assert.equal(r.signal, null, explain(r));
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, '');
});
