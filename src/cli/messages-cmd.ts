// Messages (issue 14): send-message with replies and waits, the inbox (read, --latest, --from, --since, --before,
// paged), and the registry admin commands register / deregister / lookup, plus dgram (one datagram).
// JSON fields of send-message and inbox are the original's (cmd/pilotctl/main.go: target, type, bytes, ack;
// messages, total, dir) with fields added, never renamed.
//
// Replies are correlated by message id: the receiver names every message (the META ack, see
// services/data-exchange-codec.ts) and send-message reports that `id`; the answer is sent with
// `--reply-to <id>` and stored with `reply_to`. `--wait` waits in the daemon for a message from the target whose
// reply_to is this id — a reply to any other message does not end it.
import { readFile, stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import type { InboxMessage } from '../node/api.js';
import type { PilotClient } from '../sdk/client.js';
import { checkReplyTo } from '../wire/message-id.js';
import { parseDurationMs, type FlagSpec, type ParsedArgs } from './args.js';
import { defineCommand, type CliContext, type Command, type CommandOutput } from './command.js';
import { escapeText, fields } from './output.js';
import { readAllStdin } from './stream-io.js';
import { checkOptionalCount, checkNodeId, checkPeer, checkPort, literalAddress } from './validate.js';

const DEFAULT_TIMEOUT_MS = 30_000;
/** `--wait` without a value waits this long (or the global --timeout). */
const DEFAULT_WAIT_MS = 30_000;
/** What the data exchange carries in one frame (the original's limit). */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const TIMEOUT_FLAG: FlagSpec = { name: 'timeout', kind: 'duration', value: '<dur>', description: 'time limit (global flag)' };

function strFlag(a: ParsedArgs, name: string): string | undefined {
  const v = a.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

function out(data: unknown, text?: string): Result<CommandOutput> {
  return ok(text === undefined ? { data } : { data, text });
}

/** Race a daemon call against a time limit (the daemon enforces its own; this guards a stuck one). */
async function withTimeout<T>(p: Promise<Result<T>>, ms: number, what: string): Promise<Result<T>> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<Result<T>>((resolve) => {
    timer = setTimeout(() => resolve(err('timeout', `${what} did not finish within ${ms} ms`)), ms);
  });
  const r = await Promise.race([p, t]);
  clearTimeout(timer);
  return r;
}

/** The output `target`: the address when the argument is one; else ask the daemon; else the name as typed. */
async function targetOf(client: PilotClient, peer: string): Promise<string> {
  const lit = literalAddress(peer);
  if (lit) return lit;
  const f = await client.find(peer);
  return f.ok ? f.value.address : peer;
}

function checkTime(s: string | true | undefined, flag: string): Result<string | undefined> {
  if (s === undefined) return ok(undefined);
  if (s === true || s === '') return err('invalid_argument', `--${flag} needs a value`, { hint: `an RFC 3339 time (2026-01-02T03:04:05Z) or the next_${flag} of a previous page` });
  if (/^\d{4}-\d{2}-\d{2}T/.test(s) && Number.isNaN(Date.parse(s))) {
    return err('invalid_argument', `invalid --${flag} time '${s}'`, { hint: 'an RFC 3339 time like 2026-01-02T03:04:05Z' });
  }
  return ok(s);
}

// --- send-message ---------------------------------------------------------------------------------------

type DataSource = { kind: 'text'; data: string } | { kind: 'stdin' } | { kind: 'file'; path: string };

interface SendMessageParams {
  peer: string;
  source: DataSource;
  type: 'text' | 'json' | 'binary';
  replyTo: string | undefined;
  /** null: do not wait. */
  waitMs: number | null;
}

async function loadData(ctx: CliContext, s: DataSource): Promise<Result<Buffer>> {
  if (s.kind === 'text') return ok(Buffer.from(s.data, 'utf8'));
  if (s.kind === 'stdin') {
    const r = await readAllStdin(ctx.io.stdin, MAX_MESSAGE_BYTES);
    if (!r.ok) return r;
    if (r.value.length === 0) return err('invalid_argument', 'no data on stdin (--data -)', { hint: 'echo hello | pilotctl send-message <peer> --data -' });
    return r;
  }
  try {
    const st = await stat(s.path);
    if (!st.isFile()) return err('invalid_argument', `not a regular file: ${s.path}`, { hint: 'send-message --data-file reads one file' });
    if (st.size > MAX_MESSAGE_BYTES) return err('invalid_argument', `${s.path} is ${st.size} bytes; a message carries at most ${MAX_MESSAGE_BYTES}`, { hint: 'use send-file for large files' });
    const b = await readFile(s.path);
    if (b.length === 0) return err('invalid_argument', `${s.path} is empty`, { hint: 'a message needs at least one byte' });
    return ok(b);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return err('not_found', `file not found: ${s.path}`, { hint: 'check the path' });
    return err('internal', `cannot read ${s.path}: ${(e as Error).message}`, { hint: 'check the file permissions' });
  }
}

function messageLine(m: InboxMessage): string {
  return `[${escapeText(m.received_at)}] id=${escapeText(m.id)} from ${escapeText(m.from_hostname ?? m.from)} type=${m.type} size=${m.size}` + (m.reply_to ? ` reply_to=${escapeText(m.reply_to)}` : '');
}

const sendMessage = defineCommand<SendMessageParams>({
  name: 'send-message',
  group: 'Communication',
  summary: "Send a typed message to a node's inbox (data exchange, port 1001); --reply-to answers a message, --wait waits for the answer to this one",
  args: [{ name: 'peer', required: true }],
  flags: [
    { name: 'data', kind: 'string', value: '<text|->', description: 'message body; - reads stdin (one of --data, --data-file is required)' },
    { name: 'data-file', kind: 'string', value: '<path>', description: 'message body from a file (at most 16 MiB)' },
    { name: 'type', kind: 'string', value: 'text|json|binary', description: 'default text' },
    { name: 'reply-to', kind: 'string', value: '<id>', description: 'the id of the message this answers (from `pilotctl inbox`); stored as reply_to' },
    { name: 'wait', kind: 'duration', value: '[dur]', isValueOptional: true, description: 'wait for the reply to this message (default 30s, or --timeout) and print it; exit 1 with timeout when none comes' },
    TIMEOUT_FLAG,
  ],
  returns:
    'target, type, bytes, ack, id (the receiver\'s message id; replies name it; null from a receiver that assigns none), ack_text, reply_to (with --reply-to); ' +
    'with --wait: reply {id, type, from, from_hostname, data, size, received_at, reply_to}, waited_ms',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout', 'quota_exceeded'],
  parse(a, ctx) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    const data = a.flags.get('data');
    const file = a.flags.get('data-file');
    if (data !== undefined && file !== undefined) return err('invalid_argument', 'give --data or --data-file, not both', { hint: 'pilotctl send-message <peer> --data-file ./body.json --type json' });
    let source: DataSource;
    if (typeof file === 'string' && file !== '') source = { kind: 'file', path: resolvePath(ctx.io.cwd, file) };
    else if (data === '-') source = { kind: 'stdin' };
    else if (typeof data === 'string' && data !== '') source = { kind: 'text', data };
    else return err('invalid_argument', '--data is required', { hint: 'pilotctl send-message <peer> --data "hello" (or --data - for stdin, --data-file PATH)' });
    const type = strFlag(a, 'type') ?? 'text';
    if (type !== 'text' && type !== 'json' && type !== 'binary') {
      return err('invalid_argument', `unknown type '${type}' (use text, json, or binary)`, { hint: 'see `pilotctl help send-message`' });
    }
    if (type === 'json' && source.kind === 'text') {
      try {
        JSON.parse(source.data);
      } catch {
        return err('invalid_argument', '--data is not valid JSON', { hint: 'quote it: --data \'{"k":"v"}\'' });
      }
    }
    let replyTo: string | undefined;
    const rt = a.flags.get('reply-to');
    if (rt !== undefined) {
      const r = checkReplyTo(rt === true ? '' : rt);
      if (!r.ok) return r;
      replyTo = r.value;
    }
    let waitMs: number | null = null;
    const w = a.flags.get('wait');
    if (w !== undefined) {
      waitMs = w === true ? (ctx.timeoutMs ?? DEFAULT_WAIT_MS) : parseDurationMs(w);
      if (!Number.isFinite(waitMs) || waitMs <= 0) return err('invalid_argument', `invalid --wait '${String(w)}'`, { hint: 'durations look like 500ms, 10s, 2m or a number of seconds; --wait alone waits 30s' });
    }
    return ok({ peer: peer.value, source, type, replyTo, waitMs });
  },
  async run(ctx, p) {
    const body = await loadData(ctx, p.source);
    if (!body.ok) return body;
    if (p.type === 'json' && p.source.kind !== 'text') {
      try {
        JSON.parse(body.value.toString('utf8'));
      } catch {
        return err('invalid_argument', 'the message is not valid JSON', { hint: 'check the file or stdin, or send it with --type text' });
      }
    }
    const c = await ctx.client();
    if (!c.ok) return c;
    const target = await targetOf(c.value, p.peer);
    // Before sending: a reply can land before the wait starts; the daemon looks back to here.
    const sentAt = new Date(Date.now() - 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const r = await withTimeout(
      c.value.sendMessage(p.peer, body.value, p.type, p.replyTo !== undefined ? { replyTo: p.replyTo } : {}),
      ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      'send-message',
    );
    if (!r.ok) return r;
    const sent = {
      target,
      type: p.type,
      bytes: r.value.bytes,
      ack: r.value.ack,
      id: r.value.id ?? null,
      ack_text: r.value.ack_text ?? null,
      ...(p.replyTo !== undefined ? { reply_to: p.replyTo } : {}),
    };
    const sentText = `sent ${p.type} message (${sent.bytes} bytes) to ${target}${sent.ack ? ', acknowledged' : ''}${sent.id ? `, id ${sent.id}` : ''}${p.replyTo ? ` (reply to ${p.replyTo})` : ''}\n`;
    if (p.waitMs === null) return out(sent, sentText);

    if (sent.id === null) {
      return err('connection_failed', `sent to ${target}, but it assigned no message id (a receiver without message ids, e.g. the original pilot daemon), so no reply can be matched`, {
        hint: 'send without --wait; check `pilotctl inbox --from <peer>` for answers',
        detail: sent,
      });
    }
    if (!ctx.isJson) ctx.io.stderr.write(sentText + `waiting for the reply to ${sent.id}...\n`);
    const t0 = performance.now();
    const w = await withTimeout(
      c.value.waitMessage({ replyTo: sent.id, from: target, since: sentAt, timeoutMs: p.waitMs }),
      p.waitMs + 5000, // the daemon ends the wait itself; this guards a stuck daemon
      'waiting for the reply',
    );
    const waitedMs = Math.round(performance.now() - t0);
    if (!w.ok) {
      if (w.error.code === 'timeout') {
        return err('timeout', `no reply to message ${sent.id} from ${target} within ${Math.round(p.waitMs)} ms`, {
          hint: `the message was delivered; answers arrive in the inbox: pilotctl inbox --from ${p.peer} --latest`,
          detail: { ...sent, waited_ms: waitedMs },
        });
      }
      return w;
    }
    const reply = w.value.message;
    const shown = escapeText(reply.data, { multiline: true });
    return out({ ...sent, reply, waited_ms: waitedMs }, shown.endsWith('\n') ? shown : shown + '\n');
  },
});

// --- inbox ----------------------------------------------------------------------------------------------

interface InboxParams {
  clear: boolean;
  limit: number | undefined;
  since: string | undefined;
  before: string | undefined;
  latest: boolean;
  from: string | undefined;
}

const inbox = defineCommand<InboxParams>({
  name: 'inbox',
  group: 'Mailbox',
  summary: 'List messages received via data exchange (oldest first; --latest newest first; --from/--since/--before filter, --limit pages); --clear deletes them',
  args: [],
  flags: [
    { name: 'clear', kind: 'bool', description: 'delete all messages' },
    { name: 'limit', kind: 'int', value: '<n>', description: 'at most n messages (default: all; with --latest: 1)' },
    { name: 'since', kind: 'string', value: '<cursor|time>', description: 'only messages after a previous next_since, or at/after an RFC 3339 time' },
    { name: 'before', kind: 'string', value: '<cursor|time>', description: 'only messages before a previous next_before, or before an RFC 3339 time' },
    { name: 'latest', kind: 'bool', description: 'newest first (the newest message alone unless --limit); page on with --before <next_before>' },
    { name: 'from', kind: 'string', value: '<peer>', description: 'only messages from this node (address, node id or hostname)' },
  ],
  returns:
    'messages [{id, type, from, from_hostname, data, size, received_at, reply_to (when it answers a message)}], total, dir, has_more, next_since, next_before; with --clear: cleared',
  errors: ['not_running', 'invalid_argument'],
  parse(a) {
    const clear = a.flags.get('clear') === true;
    const l = checkOptionalCount(a.flags.get('limit'), 'limit');
    if (!l.ok) return l;
    const limit = l.value;
    const since = checkTime(a.flags.get('since'), 'since');
    if (!since.ok) return since;
    const before = checkTime(a.flags.get('before'), 'before');
    if (!before.ok) return before;
    const latest = a.flags.get('latest') === true;
    const rawFrom = a.flags.get('from');
    let from: string | undefined;
    if (rawFrom !== undefined) {
      const f = checkPeer(rawFrom === true ? '' : rawFrom);
      if (!f.ok) return err('invalid_argument', `invalid --from: ${f.error.message}`, { hint: f.error.hint ?? 'see `pilotctl help inbox`' });
      from = f.value;
    }
    if (clear && (limit !== undefined || since.value !== undefined || before.value !== undefined || latest || from !== undefined)) {
      return err('invalid_argument', '--clear deletes every message; it takes no other flag', { hint: 'pilotctl inbox --clear' });
    }
    return ok({ clear, limit: limit ?? (latest ? 1 : undefined), since: since.value, before: before.value, latest, from });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    if (p.clear) {
      const r = await c.value.inbox({ clear: true });
      if (!r.ok) return r;
      const n = r.value.cleared ?? r.value.messages.length;
      return out({ cleared: n }, `cleared ${n} message(s)\n`);
    }
    const r = await c.value.inbox({
      ...(p.limit !== undefined ? { limit: p.limit } : {}),
      ...(p.since !== undefined ? { since: p.since } : {}),
      ...(p.before !== undefined ? { before: p.before } : {}),
      ...(p.latest ? { latest: true } : {}),
      ...(p.from !== undefined ? { from: p.from } : {}),
    });
    if (!r.ok) return r;
    const msgs = r.value.messages;
    const dir = join(ctx.home, 'inbox');
    const page = { has_more: r.value.has_more, next_since: r.value.next_since, next_before: r.value.next_before ?? null };
    const isFiltered = p.since !== undefined || p.before !== undefined || p.from !== undefined;
    if (msgs.length === 0) {
      const empty = isFiltered ? 'no messages match\n' : 'inbox is empty\n  messages appear here when someone sends: pilotctl send-message <your-hostname> --data "hello"\n';
      return out({ messages: [], total: 0, dir, ...page }, empty);
    }
    let text = `Inbox (${msgs.length} messages${p.latest ? ', newest first' : ''}${page.has_more ? ', more follow' : ''}):\n\n`;
    for (const m of msgs) {
      const preview = m.data.length > 80 ? m.data.slice(0, 80) + '...' : m.data;
      text += `  ${messageLine(m)}\n    ${escapeText(preview)}\n`;
    }
    if (page.has_more) {
      text += p.latest
        ? `\nolder: pilotctl inbox --latest --limit ${p.limit ?? msgs.length} --before ${page.next_before}\n`
        : `\nnext page: pilotctl inbox --limit ${p.limit ?? msgs.length} --since ${page.next_since}\n`;
    } else text += '\nread one: pilotctl inbox read <id>; answer: pilotctl send-message <peer> --reply-to <id> --data "..."; clear: pilotctl inbox --clear\n';
    return out({ messages: msgs, total: msgs.length, dir, ...page }, text);
  },
});

const inboxRead = defineCommand<string>({
  name: 'inbox read',
  group: 'Mailbox',
  summary: 'Show one inbox message by id, with its whole body',
  args: [{ name: 'id', required: true, description: 'a message id from `pilotctl inbox`' }],
  flags: [],
  returns: 'id, type, from, from_hostname, data, size, received_at, reply_to (when set), dir',
  errors: ['not_running', 'not_found'],
  parse: (a) => checkReplyTo(a.positional[0]!),
  async run(ctx, id) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.inbox({ id, limit: 1 });
    if (!r.ok) return r;
    const m = r.value.messages[0];
    if (!m) return err('not_found', `no message ${id} in the inbox`, { hint: 'list ids with `pilotctl inbox` (cleared messages are gone)' });
    const text =
      fields([
        ['ID', m.id],
        ['From', m.from_hostname ? `${m.from_hostname} (${m.from})` : m.from],
        ['Type', m.type],
        ['Size', `${m.size} bytes`],
        ['Received', m.received_at],
        ['Reply to', m.reply_to ?? null],
      ], '') +
      '\n' +
      escapeText(m.data, { multiline: true }) +
      (m.data.endsWith('\n') ? '' : '\n');
    return out({ ...m, dir: join(ctx.home, 'inbox') }, text);
  },
});

// --- registry admin -------------------------------------------------------------------------------------

const LISTEN_ADDR_RE = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[a-zA-Z0-9.-]+):(\d{1,5})$/;

const register = defineCommand<string | undefined>({
  name: 'register',
  group: 'Registry',
  summary: "Register this daemon's node with the registry now (again after deregister, or to announce another UDP endpoint); the same key keeps its node id",
  args: [{ name: 'listen_addr', required: false, description: 'UDP host:port to announce (default: the tunnel socket)' }],
  flags: [],
  returns: 'node_id, address, public_key, hostname, listen_addr, network_id',
  errors: ['not_running', 'connection_failed', 'timeout'],
  parse(a) {
    const l = a.positional[0];
    if (l === undefined) return ok(undefined);
    const m = LISTEN_ADDR_RE.exec(l);
    if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) return err('invalid_argument', `invalid listen_addr '${l}'`, { hint: 'host:port, e.g. 203.0.113.7:4000' });
    return ok(l);
  },
  async run(ctx, listenAddr) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await withTimeout(c.value.register(listenAddr !== undefined ? { listenAddr } : {}), ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'register');
    if (!r.ok) return r;
    const v = r.value;
    return out({ ...v, network_id: 0 }, `registered as node ${v.node_id} (${v.address}), announcing ${v.listen_addr}\n`);
  },
});

const deregister = defineCommand<null>({
  name: 'deregister',
  group: 'Registry',
  summary: 'Remove this node from the registry (routes through the daemon; others cannot find it until `pilotctl register` or a restart)',
  args: [],
  flags: [],
  returns: 'status, node_id',
  errors: ['not_running', 'connection_failed'],
  parse: () => ok(null),
  async run(ctx) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.deregister();
    if (!r.ok) return r;
    return out(r.value, `node ${r.value.node_id} deregistered\n  register again: pilotctl register\n`);
  },
});

const lookup = defineCommand<number>({
  name: 'lookup',
  group: 'Registry',
  summary: "Look up a node by id in the registry (private nodes show their hostname and tags to trusted peers only)",
  args: [{ name: 'node_id', required: true }],
  flags: [],
  returns: 'node_id, address, public_key, public, hostname, tags, real_addr (public nodes), polo_score, task_exec',
  errors: ['not_running', 'not_found', 'connection_failed'],
  parse: (a) => checkNodeId(a.positional[0]!),
  async run(ctx, nodeId) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.lookup(nodeId);
    if (!r.ok) {
      if (r.error.code === 'not_found') return err('not_found', `node ${nodeId} is not in the registry`, { hint: 'check the id with `pilotctl peers` or `pilotctl find <hostname>`' });
      return r;
    }
    const v = r.value;
    const text = fields([
      ['Node ID', v.node_id],
      ['Address', v.address],
      ['Hostname', v.hostname ?? null],
      ['Visibility', v.public ? 'public' : 'private'],
      ['Tags', v.tags?.length ? v.tags.map((t) => '#' + t).join(' ') : null],
      ['Endpoint', v.real_addr ?? null],
      ['Public key', v.public_key],
    ], '');
    return out(v, text);
  },
});

// --- dgram ----------------------------------------------------------------------------------------------

const EPHEMERAL_FIRST = 49152;

const dgram = defineCommand<{ peer: string; port: number; data: string }>({
  name: 'dgram',
  group: 'Communication',
  summary: 'Send one datagram (unreliable, ≤ 1415 bytes through a tunnel) to a port; see `pilotctl listen` for the other side',
  args: [{ name: 'peer', required: true }, { name: 'port', required: true }],
  flags: [{ name: 'data', kind: 'string', value: '<text|->', description: 'the payload (required); - reads stdin' }, TIMEOUT_FLAG],
  returns: 'target, port, src_port, bytes',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout'],
  parse(a) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    const port = checkPort(a.positional[1]!);
    if (!port.ok) return port;
    const data = strFlag(a, 'data');
    if (data === undefined || data === '') return err('invalid_argument', '--data is required', { hint: 'pilotctl dgram <peer> <port> --data "hello"' });
    return ok({ peer: peer.value, port: port.value, data });
  },
  async run(ctx, p) {
    let payload: Buffer;
    if (p.data === '-') {
      const r = await readAllStdin(ctx.io.stdin, 65_535);
      if (!r.ok) return r;
      payload = r.value;
    } else payload = Buffer.from(p.data, 'utf8');
    const c = await ctx.client();
    if (!c.ok) return c;
    const target = await targetOf(c.value, p.peer);
    // An ephemeral source port, as a UDP socket would take; another in use → try the next.
    let sock = null;
    for (let i = 0; i < 16 && sock === null; i++) {
      const s = await c.value.openDatagramSocketAsync(EPHEMERAL_FIRST + Math.floor(Math.random() * (65536 - EPHEMERAL_FIRST)));
      if (s.ok) sock = s.value;
      else if (s.error.code !== 'already_exists') return s;
    }
    if (sock === null) return err('connection_failed', 'no free local datagram port', { hint: 'close some `pilotctl listen` sessions and retry' });
    const r = await withTimeout(sock.send(p.peer, p.port, payload), ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'dgram');
    const srcPort = sock.port;
    sock.close();
    if (!r.ok) return r;
    return out({ target, port: p.port, src_port: srcPort, bytes: payload.length }, `sent ${payload.length} bytes to ${target} port ${p.port} (from port ${srcPort})\n`);
  },
});

export const MESSAGE_COMMANDS: Command[] = [sendMessage, inbox, inboxRead, dgram, register, deregister, lookup];
