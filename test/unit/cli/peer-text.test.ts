// Issue 10: what peers send reaches the terminal escaped (no ESC sequences, no bidi reordering such as U+202E
// turning "txt.exe" around), while --json output keeps it exact; the inbox pages over IPC; quota_exceeded from
// the receiver is the exit code of send-message/send-file. Each test fails on the code before these changes.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pilotError } from '../../../src/core/errors.js';
import { escapeText } from '../../../src/cli/output.js';
import { serveIpc, type IpcServer } from '../../../src/ipc/server.js';
import { INBOX_PAGE_MAX_MESSAGES } from '../../../src/ipc/protocol.js';
import { PilotClient } from '../../../src/sdk/client.js';
import { FakeNode, ipcAuth } from '../ipc/fake-node.js';
import { pilotctl } from './helpers.js';

let dir: string;
let sock: string;
let node: FakeNode;
let server: IpcServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-peertext-'));
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

function run(args: string[]) {
  return pilotctl([...args, '--socket', sock], { env: { PILOT_HOME: dir } });
}

const ESC_CLEAR = '\u001b[2J\u001b[H'; // clear screen, cursor home
const RLO = '\u202e'; // right-to-left override
const EVIL_NAME = `invoice${RLO}fdp.exe`; // shows as "invoiceexe.pdf"
const EVIL_TEXT = `pay now${ESC_CLEAR}\u001b]0;pwned\u0007\r\u200bok`;

/** No raw control, bidi or zero-width character is left. */
function assertClean(out: string): void {
  assert.doesNotMatch(out, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/u, JSON.stringify(out));
}

test('escapeText: controls, bidi and invisible characters become visible escapes; plain text and emoji stay', () => {
  assert.equal(escapeText(`a${RLO}b`), 'a\\u202eb');
  assert.equal(escapeText('\u001b[31mred'), '\\x1b[31mred');
  assert.equal(escapeText('x\r\ny\tz'), 'x\\r\\ny\\tz');
  assert.equal(escapeText('x\r\ny\tz', { multiline: true }), 'x\\r\ny\tz');
  assert.equal(escapeText('\u0085\u2028\u2066\ufeff\u{e0041}'), '\\x85\\u2028\\u2066\\ufeff\\u{e0041}');
  assert.equal(escapeText('\ud800x'), '\\ud800x', 'lone surrogate');
  assert.equal(escapeText('héllo wörld 😀 日本'), 'héllo wörld 😀 日本');
});

test('attack: peer text with ESC sequences and U+202E is escaped in every human renderer, exact in --json', async () => {
  node.inboxList = [
    { id: '1', from: '0:0000.0000.0007', from_hostname: `alpha${ESC_CLEAR}`, type: 'text', data: EVIL_TEXT, size: EVIL_TEXT.length, received_at: '2025-01-01T00:00:00Z' },
  ];
  node.receivedList = [{ name: EVIL_NAME, path: join(dir, EVIL_NAME), size: 3, from: '0:0000.0000.0007', sha256: 'ab', received_at: '2025-01-01T00:00:00Z' }];
  node.pendingList = [
    { node_id: 9, address: '0:0000.0000.0009', hostname: `beta${RLO}`, justification: `please${ESC_CLEAR}trust me`, received_at: '2025-01-01T00:00:00Z' },
  ];
  node.trustedList = [{ node_id: 7, address: '0:0000.0000.0007', hostname: `al${RLO}pha`, mutual: true, approved_at: '2025-01-01T00:00:00Z' }];

  const inbox = await run(['inbox']);
  assert.equal(inbox.code, 0, inbox.stderr);
  assertClean(inbox.stdout);
  assert.match(inbox.stdout, /from alpha\\x1b\[2J\\x1b\[H type=text/);
  assert.ok(inbox.stdout.includes('pay now\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\r\\u200bok'), inbox.stdout);

  const rec = await run(['received']);
  assertClean(rec.stdout);
  assert.ok(rec.stdout.includes('invoice\\u202efdp.exe'), rec.stdout);

  const pend = await run(['pending']);
  assertClean(pend.stdout);
  assert.ok(pend.stdout.includes('please\\x1b[2J\\x1b[Htrust me') && pend.stdout.includes('beta\\u202e'), pend.stdout);
  const tr = await run(['trust']);
  assertClean(tr.stdout);
  assert.ok(tr.stdout.includes('al\\u202epha'));

  // --json: the exact strings, valid JSON.
  const j = await run(['inbox', '--json']);
  assert.equal(j.code, 0);
  const doc = JSON.parse(j.stdout) as { data: { messages: Array<{ data: string; from_hostname: string }> } };
  assert.equal(doc.data.messages[0]!.data, EVIL_TEXT);
  assert.equal(doc.data.messages[0]!.from_hostname, `alpha${ESC_CLEAR}`);
  const rj = JSON.parse((await run(['received', '--json'])).stdout) as { data: { files: Array<{ name: string }> } };
  assert.equal(rj.data.files[0]!.name, EVIL_NAME);
  const pj = JSON.parse((await run(['pending', '--json'])).stdout) as { data: { pending: Array<{ justification: string }> } };
  assert.equal(pj.data.pending[0]!.justification, `please${ESC_CLEAR}trust me`);

  // An error message carrying a peer's words is escaped too (text mode).
  node.sendError = pilotError('quota_exceeded', `refused: ${RLO}${ESC_CLEAR}`);
  const e = await run(['send-message', 'agent-alpha', '--data', 'x']);
  assert.equal(e.code, 1);
  assertClean(e.stderr);
  node.sendError = null;
});

test('attack: quota_exceeded at the receiver is the exit code of send-message and send-file', async () => {
  node.sendError = pilotError('quota_exceeded', 'inbox quota for 0:0000.0000.0005 reached (1000 of 1000 messages stored)');
  const m = await run(['send-message', 'agent-alpha', '--data', 'x', '--json']);
  assert.equal(m.code, 1);
  assert.equal(m.stdout, '');
  const e = JSON.parse(m.stderr.trim()) as Record<string, string>;
  assert.equal(e.code, 'quota_exceeded');
  assert.match(e.hint!, /inbox --clear/);
  const file = join(dir, 'f.txt');
  writeFileSync(file, 'abc');
  const f = await run(['send-file', 'agent-alpha', file, '--json']);
  assert.equal(f.code, 1);
  assert.equal((JSON.parse(f.stderr.trim()) as Record<string, string>).code, 'quota_exceeded');
  node.sendError = null;
});

test('inbox pages over IPC: --limit/--since, next_since/has_more, the SDK follows pages; --clear exits 0', async () => {
  node.inboxList = Array.from({ length: 3000 }, (_, i) => ({
    id: String(i), from: '0:0000.0000.0007', from_hostname: 'agent-alpha', type: 'text' as const, data: `m${i}`, size: 2, received_at: '2025-01-01T00:00:00Z',
  }));
  node.inboxCalls = [];
  // No --limit: everything, fetched in bounded pages (the daemon clamps each call).
  const all = await run(['inbox', '--json']);
  assert.equal(all.code, 0, all.stderr);
  const a = JSON.parse(all.stdout) as { data: { messages: Array<{ data: string }>; total: number; has_more: boolean; next_since: string } };
  assert.equal(a.data.total, 3000);
  assert.deepEqual(a.data.messages.map((m) => m.data), node.inboxList.map((m) => m.data));
  assert.equal(a.data.has_more, false);
  assert.equal(node.inboxCalls.length, 3);
  assert.ok(node.inboxCalls.every((c) => c.limit === INBOX_PAGE_MAX_MESSAGES && typeof c.maxBytes === 'number'));

  const p1 = JSON.parse((await run(['inbox', '--limit', '2', '--json'])).stdout) as { data: { messages: Array<{ data: string }>; has_more: boolean; next_since: string } };
  assert.deepEqual(p1.data.messages.map((m) => m.data), ['m0', 'm1']);
  assert.equal(p1.data.has_more, true);
  const p2 = JSON.parse((await run(['inbox', '--limit', '2', '--since', p1.data.next_since, '--json'])).stdout) as { data: { messages: Array<{ data: string }> } };
  assert.deepEqual(p2.data.messages.map((m) => m.data), ['m2', 'm3']);
  const t = await run(['inbox', '--limit', '2']);
  assert.match(t.stdout, /Inbox \(2 messages, more follow\)[\s\S]*next page: pilotctl inbox --limit 2 --since 1/);
  assert.equal((await run(['inbox', '--limit', '0'])).code, 2);
  assert.equal((await run(['inbox', '--clear', '--limit', '3'])).code, 2);

  // SDK: limit above one page is honoured across pages.
  const c = await PilotClient.connect({ socketPath: sock, home: dir });
  assert.ok(c.ok);
  const big = await c.value.inbox({ limit: 2500 });
  assert.ok(big.ok && big.value.messages.length === 2500 && big.value.has_more && big.value.next_since === '2499');
  c.value.close();

  const cl = await run(['inbox', '--clear', '--json']);
  assert.equal(cl.code, 0, cl.stderr);
  assert.deepEqual(JSON.parse(cl.stdout).data, { cleared: 3000 });
});
