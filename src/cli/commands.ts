// Every pilotctl command that talks to a running daemon. JSON field names follow the original's
// cmd/pilotctl/main.go (agents parse them); fields are added, never renamed.
import { join, resolve as resolvePath } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import type { BenchResult, NodeInfo, PilotStream, PingResult } from '../node/api.js';
import type { PilotClient } from '../sdk/client.js';
import type { ParsedArgs } from './args.js';
import { defineCommand, type CliContext, type Command, type CommandOutput } from './command.js';
import { createProgress, escapeText, fields, formatBytes, formatDuration, table } from './output.js';
import { readAllStdin, readReply, sleep } from './stream-io.js';
import {
  checkCount,
  checkDuration,
  checkHostname,
  checkNodeId,
  checkPeer,
  checkPort,
  checkSizeMb,
  checkTag,
  checkTopic,
  literalAddress,
} from './validate.js';
import { PORT_ECHO, PORT_STDIO } from '../wire/address.js';

const DEFAULT_TIMEOUT_MS = 30_000;
const BENCH_DEFAULT_TIMEOUT_MS = 120_000;
const MAX_BENCH_MB = 100_000;
const MAX_TAGS = 3; // the original's limit

const TIMEOUT_FLAG = { name: 'timeout', kind: 'duration', value: '<dur>', description: 'time limit (global flag)' } as const;
const COUNT_FLAG = { name: 'count', kind: 'int', value: '<n>', description: 'stop after n items' } as const;

function flag(a: ParsedArgs, name: string): string | true | undefined {
  return a.flags.get(name);
}
function strFlag(a: ParsedArgs, name: string): string | undefined {
  const v = a.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

/** The output `target`: the address when the argument is one; else ask the daemon; else the name as typed. */
async function targetOf(client: PilotClient, peer: string): Promise<string> {
  const lit = literalAddress(peer);
  if (lit) return lit;
  const f = await client.find(peer);
  return f.ok ? f.value.address : peer;
}

function timeoutOr(ctx: CliContext, dfltMs: number): number {
  return ctx.timeoutMs ?? dfltMs;
}

/** Race a daemon call against the command's time limit. */
async function withTimeout<T>(p: Promise<Result<T>>, ms: number, what: string): Promise<Result<T>> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<Result<T>>((resolve) => {
    timer = setTimeout(() => resolve(err('timeout', `${what} did not finish within ${ms} ms`)), ms);
  });
  const r = await Promise.race([p, t]);
  clearTimeout(timer);
  return r;
}

function out(data: unknown, text?: string): Result<CommandOutput> {
  return ok(text === undefined ? { data } : { data, text });
}

const noArgs = (): Result<null> => ok(null);

// --- discovery / identity -------------------------------------------------------------------------------

/** info's Datagrams row: received, and the drops only where there were any. */
function datagramLine(d: NonNullable<NodeInfo['datagrams']>): string {
  const drops = [
    d.dropped_queue_full > 0 ? `${d.dropped_queue_full} dropped (a socket's queue full: read faster)` : '',
    d.dropped_no_listener > 0 ? `${d.dropped_no_listener} to unbound ports` : '',
    d.datapath_rx_dropped > 0 ? `${d.datapath_rx_dropped} tunnel packets dropped by the datapath` : '',
  ].filter((x) => x !== '');
  return `${d.received} received${drops.length > 0 ? ', ' + drops.join(', ') : ''}`;
}

const info = defineCommand<null>({
  name: 'info',
  group: 'Diagnostics',
  summary: 'Show this node: id, address, hostname, uptime, peers, connections, registry, NAT',
  args: [],
  flags: [],
  returns:
    'node_id (0 until registered), address (null until registered), registered, registry_state, registry_reason, registry_error, beacon, nat_reason, datapath_reason, ' +
    'hostname, public_key, public, tags, registry, registry_connected, listen, public_endpoint, nat_type, uptime_secs, peers, connections, datapath, version, ' +
    "transport ('udp'|'wss': what carries relay frames), transport_mode ('auto'|'udp'|'tcp'), transport_reason (why), compat (host:port of the rendezvous TLS port), proxy (URL without password, or null), transport_error (null or {code, message, hint}), datagrams ({received, dropped_no_listener, dropped_queue_full, datapath_rx_dropped, datapath_rx_packets}: what reached bound datagram ports and what was dropped where)",
  errors: ['not_running'],
  parse: noArgs,
  async run(ctx) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.info();
    if (!r.ok) return r;
    const i = r.value;
    const data = { ...i, uptime_secs: i.uptime_s };
    const text =
      'Pilot Protocol Daemon\n' +
      fields([
        ['Node ID', i.registered === false ? 'not registered' : i.node_id],
        ['Address', i.address],
        ['Hostname', i.hostname],
        ['Visibility', i.public ? 'public' : 'private'],
        ['Tags', i.tags.length ? i.tags.map((t) => '#' + t).join(' ') : null],
        ['Uptime', formatDuration(i.uptime_s)],
        ['Registry', `${i.registry}${i.registry_connected ? '' : ' (disconnected)'}`],
        ['  why', i.registry_reason ?? null],
        ['Beacon', i.beacon ?? null],
        ['Listen', i.listen],
        ['Endpoint', i.public_endpoint],
        ['NAT', i.nat_type ?? i.nat_reason ?? null],
        ['Peers', i.peers],
        ['Connections', i.connections],
        ['Datagrams', i.datagrams ? datagramLine(i.datagrams) : null],
        ['Datapath', i.datapath_reason ? `${i.datapath} — ${i.datapath_reason}` : i.datapath],
        ['Transport', i.transport ? `${i.transport} (mode ${i.transport_mode})` : null],
        ['Why', i.transport_reason ?? null],
        ['Compat', i.compat ?? null],
        ['Proxy', i.proxy ?? null],
        ['Transport error', i.transport_error ? `${i.transport_error.code}: ${i.transport_error.message}` : null],
        ['  hint', i.transport_error?.hint ?? null],
        ['Version', i.version],
      ]);
    return out(data, text);
  },
});

const setHostname = defineCommand<string>({
  name: 'set-hostname',
  group: 'Discovery',
  summary: "Set this node's hostname (lowercase letters, digits, hyphens; ≤ 63)",
  args: [{ name: 'hostname', required: true }],
  flags: [],
  returns: 'hostname, node_id',
  errors: ['not_running', 'already_exists', 'connection_failed'],
  parse: (a) => checkHostname(a.positional[0]!),
  async run(ctx, hostname) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.setHostname(hostname);
    if (!r.ok) return r;
    const i = await c.value.info();
    return out({ hostname: r.value.hostname, node_id: i.ok ? i.value.node_id : null }, `hostname set: ${r.value.hostname}\n`);
  },
});

const clearHostname = defineCommand<null>({
  name: 'clear-hostname',
  group: 'Discovery',
  summary: "Clear this node's hostname",
  args: [],
  flags: [],
  returns: 'hostname, node_id',
  errors: ['not_running', 'connection_failed'],
  parse: noArgs,
  async run(ctx) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.clearHostname();
    if (!r.ok) return r;
    const i = await c.value.info();
    // The original reports an empty string, not null.
    return out({ hostname: '', node_id: i.ok ? i.value.node_id : null }, 'hostname cleared\n');
  },
});

const find = defineCommand<string>({
  name: 'find',
  group: 'Discovery',
  summary: 'Look up a node by hostname (private nodes need mutual trust first)',
  args: [{ name: 'hostname', required: true }],
  flags: [],
  returns: 'hostname, node_id, address, public, tags, public_key',
  errors: ['not_running', 'not_found', 'connection_failed'],
  parse: (a) => checkPeer(a.positional[0]!),
  async run(ctx, query) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.find(query);
    if (!r.ok) {
      if (r.error.code === 'not_found') {
        return err('not_found', `cannot find '${query}': hostname not found or no mutual trust`, {
          hint: `establish trust first: pilotctl handshake ${query} "reason"`,
        });
      }
      return r;
    }
    const f = r.value;
    const data = { ...f, hostname: f.hostname ?? query };
    const text = fields([
      ['Hostname', data.hostname],
      ['Node ID', f.node_id],
      ['Address', f.address],
      ['Visible', f.public ? 'public' : 'private'],
      ['Tags', f.tags.length ? f.tags.map((t) => '#' + t).join(' ') : null],
    ], '');
    return out(data, text);
  },
});

function visibility(name: string, isPublic: boolean): Command {
  return defineCommand<null>({
    name,
    group: 'Discovery',
    summary: isPublic ? "Make this node public: its endpoint is visible to everyone and every registered node may open tunnels to it" : "Make this node private (default): only trusted peers see its endpoint and may open tunnels",
    args: [],
    flags: [],
    returns: 'status, public',
    errors: ['not_running', 'connection_failed'],
    parse: noArgs,
    async run(ctx) {
      const c = await ctx.client();
      if (!c.ok) return c;
      const r = await c.value.setVisibility(isPublic);
      if (!r.ok) return r;
      return out({ status: 'ok', public: r.value.public }, `visibility: ${r.value.public ? 'public' : 'private'}\n`);
    },
  });
}

const setTags = defineCommand<string[]>({
  name: 'set-tags',
  group: 'Discovery',
  summary: `Set capability tags (replaces existing; at most ${MAX_TAGS})`,
  args: [{ name: 'tag', required: true, variadic: true }],
  flags: [],
  returns: 'node_id, tags',
  errors: ['not_running', 'connection_failed'],
  parse(a) {
    if (a.positional.length > MAX_TAGS) {
      return err('invalid_argument', `set-tags: at most ${MAX_TAGS} tags allowed, got ${a.positional.length}`, { hint: 'see `pilotctl help set-tags`' });
    }
    const tags: string[] = [];
    for (const t of a.positional) {
      const r = checkTag(t.replace(/^#/, ''));
      if (!r.ok) return r;
      tags.push(r.value);
    }
    return ok(tags);
  },
  async run(ctx, tags) {
    return applyTags(ctx, tags);
  },
});

async function applyTags(ctx: CliContext, tags: string[]): Promise<Result<CommandOutput>> {
  const c = await ctx.client();
  if (!c.ok) return c;
  const r = await c.value.setTags(tags);
  if (!r.ok) return r;
  const i = await c.value.info();
  const shown = r.value.tags.length ? r.value.tags.map((t) => '#' + t).join(' ') : 'none';
  return out({ node_id: i.ok ? i.value.node_id : null, tags: r.value.tags }, tags.length ? `tags set: ${shown}\n` : 'tags cleared\n');
}

const clearTags = defineCommand<null>({
  name: 'clear-tags',
  group: 'Discovery',
  summary: 'Clear all capability tags',
  args: [],
  flags: [],
  returns: 'node_id, tags',
  errors: ['not_running', 'connection_failed'],
  parse: noArgs,
  run: (ctx) => applyTags(ctx, []),
});

// --- trust ----------------------------------------------------------------------------------------------

const handshake = defineCommand<{ peer: string; justification: string }>({
  name: 'handshake',
  group: 'Trust',
  summary: 'Ask a node for mutual trust, with a justification its operator sees',
  args: [{ name: 'peer', required: true, description: 'node id, address or hostname' }, { name: 'justification', required: false }],
  flags: [],
  returns: 'status, node_id',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout'],
  parse(a) {
    const p = checkPeer(a.positional[0]!);
    if (!p.ok) return p;
    return ok({ peer: p.value, justification: a.positional[1] ?? '' });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.handshake(p.peer, p.justification);
    if (!r.ok) return r;
    const { node_id: nodeId, status } = r.value;
    const text =
      status === 'already_trusted'
        ? `already trusted with node ${nodeId} — ready to communicate\n`
        : `handshake ${status} (node ${nodeId})\n  next: node ${nodeId} must approve — or send a handshake back for auto-approval\n  check: pilotctl trust\n`;
    return out(r.value, text);
  },
});

const pending = defineCommand<null>({
  name: 'pending',
  group: 'Trust',
  summary: 'List handshake requests waiting for approval',
  args: [],
  flags: [],
  returns: 'pending [{node_id, address, hostname, justification, received_at}]',
  errors: ['not_running'],
  parse: noArgs,
  async run(ctx) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.pending();
    if (!r.ok) return r;
    const list = r.value.pending;
    const text = list.length
      ? table(['NODE ID', 'HOSTNAME', 'JUSTIFICATION', 'RECEIVED'], list.map((p) => [p.node_id, p.hostname ?? '-', p.justification || '-', p.received_at]))
      : 'no pending handshake requests\n  requests appear here when another node sends: pilotctl handshake <your-node-id>\n';
    return out({ pending: list }, text);
  },
});

function nodeIdCommand(name: 'approve' | 'untrust', summary: string, returns: string): Command {
  return defineCommand<number>({
    name,
    group: 'Trust',
    summary,
    args: [{ name: 'node_id', required: true }],
    flags: [],
    returns,
    errors: ['not_running', 'not_found', 'connection_failed'],
    parse: (a) => checkNodeId(a.positional[0]!),
    async run(ctx, nodeId) {
      const c = await ctx.client();
      if (!c.ok) return c;
      if (name === 'approve') {
        const r = await c.value.approve(nodeId);
        if (!r.ok) return r;
        return out({ ...r.value, node_id: nodeId }, `trust established with node ${nodeId}\n  try: pilotctl ping ${nodeId}\n`);
      }
      const r = await c.value.untrust(nodeId);
      if (!r.ok) return r;
      return out({ ...r.value, node_id: nodeId }, `trust revoked for node ${nodeId}\n`);
    },
  });
}

const reject = defineCommand<{ nodeId: number; reason: string | undefined }>({
  name: 'reject',
  group: 'Trust',
  summary: 'Reject a pending handshake request',
  args: [{ name: 'node_id', required: true }, { name: 'reason', required: false }],
  flags: [],
  returns: 'status, node_id',
  errors: ['not_running', 'not_found', 'connection_failed'],
  parse(a) {
    const n = checkNodeId(a.positional[0]!);
    if (!n.ok) return n;
    return ok({ nodeId: n.value, reason: a.positional[1] });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.reject(p.nodeId, p.reason);
    if (!r.ok) return r;
    return out({ ...r.value, node_id: p.nodeId }, `handshake from node ${p.nodeId} rejected\n`);
  },
});

const trust = defineCommand<null>({
  name: 'trust',
  group: 'Trust',
  summary: 'List trusted peers',
  args: [],
  flags: [],
  returns: 'trusted [{node_id, address, hostname, mutual, approved_at}]',
  errors: ['not_running'],
  parse: noArgs,
  async run(ctx) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.trusted();
    if (!r.ok) return r;
    const list = r.value.trusted;
    const text = list.length
      ? table(['NODE ID', 'ADDRESS', 'HOSTNAME', 'MUTUAL', 'APPROVED AT'], list.map((t) => [t.node_id, t.address, t.hostname ?? '-', t.mutual ? 'yes' : 'no', t.approved_at]))
      : 'no trusted peers\n  establish trust: pilotctl handshake <node_id|hostname> "reason"\n';
    return out({ trusted: list }, text);
  },
});

// --- streams --------------------------------------------------------------------------------------------

interface ExchangeParams {
  peer: string;
  port: number;
  message: Buffer | null;
}

/** Dial, send, half-close, read the reply: what send, connect --message and pipe mode share. */
async function exchange(ctx: CliContext, p: ExchangeParams, payload: Buffer): Promise<Result<CommandOutput>> {
  const c = await ctx.client();
  if (!c.ok) return c;
  const timeoutMs = timeoutOr(ctx, DEFAULT_TIMEOUT_MS);
  const target = await targetOf(c.value, p.peer);
  const s = await c.value.dial(p.peer, p.port, { timeoutMs });
  if (!s.ok) {
    if (s.error.code === 'connection_failed' && !s.error.hint) {
      return err('connection_failed', `cannot connect to ${target} port ${p.port}`, { hint: `check that ${target} is reachable: pilotctl ping ${p.peer}` });
    }
    return s;
  }
  const stream = s.value;
  stream.on('error', () => {}); // surfaced through readReply
  stream.end(payload);
  const reply = await readReply(stream, timeoutMs);
  stream.destroy();
  if (!reply.ok) return reply;
  const response = reply.value.toString('utf8');
  const shown = escapeText(response, { multiline: true });
  const text = response !== '' ? (shown.endsWith('\n') ? shown : shown + '\n') : undefined;
  if (text === undefined && !ctx.isJson) ctx.io.stderr.write(`sent ${payload.length} bytes (no response)\n`);
  return ok({ data: { target, port: p.port, sent: payload.toString('utf8'), response, bytes_sent: payload.length, bytes_received: reply.value.length }, text: text ?? '' });
}

const send = defineCommand<ExchangeParams>({
  name: 'send',
  group: 'Communication',
  summary: 'Open a stream to a port, send data, half-close and print the reply',
  args: [{ name: 'peer', required: true }, { name: 'port', required: true }],
  flags: [{ name: 'data', kind: 'string', value: '<msg>', description: 'what to send (required)' }, TIMEOUT_FLAG],
  returns: 'target, port, sent, response, bytes_sent, bytes_received',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout'],
  parse(a) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    const port = checkPort(a.positional[1]!);
    if (!port.ok) return port;
    const data = strFlag(a, 'data');
    if (data === undefined || data === '') return err('invalid_argument', '--data is required', { hint: 'pilotctl send <peer> <port> --data "hello"' });
    return ok({ peer: peer.value, port: port.value, message: Buffer.from(data) });
  },
  run: (ctx, p) => exchange(ctx, p, p.message!),
});

const connect = defineCommand<ExchangeParams>({
  name: 'connect',
  group: 'Communication',
  summary: 'Open a stream (default port 1000, stdio). Sends --message, or stdin when piped; prints the reply',
  args: [{ name: 'peer', required: true }, { name: 'port', required: false, description: 'default 1000' }],
  flags: [{ name: 'message', kind: 'string', value: '<msg>', description: 'send one message and print the reply' }, TIMEOUT_FLAG],
  returns: 'target, port, sent, response, bytes_sent, bytes_received',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout'],
  parse(a, ctx) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    let port = PORT_STDIO;
    if (a.positional[1] !== undefined) {
      const r = checkPort(a.positional[1]);
      if (!r.ok) return r;
      port = r.value;
    }
    const message = strFlag(a, 'message');
    if (message === undefined && ctx.io.stdinIsTTY) {
      return err('invalid_argument', '--message is required (interactive mode is not supported)', {
        hint: 'use --message to send one message, or pipe data: echo \'{"action":"status"}\' | pilotctl connect <peer> 1000',
      });
    }
    return ok({ peer: peer.value, port, message: message === undefined ? null : Buffer.from(message) });
  },
  async run(ctx, p) {
    let payload = p.message;
    if (payload === null) {
      const r = await readAllStdin(ctx.io.stdin);
      if (!r.ok) return r;
      if (r.value.length === 0) return err('invalid_argument', 'no data on stdin', { hint: 'use --message or pipe data into pilotctl connect' });
      payload = r.value;
    }
    return exchange(ctx, p, payload);
  },
});

const recv = defineCommand<{ port: number; count: number; timeoutMs: number }>({
  name: 'recv',
  group: 'Communication',
  summary: 'Accept incoming streams on a port and print what each sends',
  args: [{ name: 'port', required: true }],
  flags: [{ ...COUNT_FLAG, description: 'streams to accept (default 1)' }, TIMEOUT_FLAG],
  returns: 'messages [{seq, port, data, bytes, from}], timeout (bool)',
  errors: ['not_running', 'already_exists', 'connection_failed'],
  parse(a, ctx) {
    const port = checkPort(a.positional[0]!);
    if (!port.ok) return port;
    const count = checkCount(flag(a, 'count'), 1);
    if (!count.ok) return count;
    return ok({ port: port.value, count: count.value, timeoutMs: timeoutOr(ctx, DEFAULT_TIMEOUT_MS) });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const l = await c.value.listenAsync(p.port);
    if (!l.ok) return l;
    const listener = l.value;
    if (!ctx.isJson) ctx.io.stderr.write(`listening on port ${p.port} — waiting for streams...\n`);
    const messages: Array<Record<string, unknown>> = [];
    const deadlineMs = Date.now() + p.timeoutMs;
    let isTimedOut = false;
    for (let seq = 0; seq < p.count; seq++) {
      const left = deadlineMs - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const stream = await Promise.race([
        listener.accept(),
        new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), Math.max(0, left)))),
        new Promise<'timeout'>((r) => ctx.signal.addEventListener('abort', () => r('timeout'), { once: true })),
      ]);
      clearTimeout(timer);
      if (stream === 'timeout') {
        isTimedOut = true;
        break;
      }
      if (stream === null) return err('connection_failed', `listener on port ${p.port} closed`);
      stream.on('error', () => {});
      const data = await readReply(stream, Math.max(1, deadlineMs - Date.now()));
      stream.end();
      stream.destroy();
      const msg: Record<string, unknown> = { seq, port: p.port, from: stream.remoteAddr };
      if (data.ok) {
        msg.data = data.value.toString('utf8');
        msg.bytes = data.value.length;
        const shown = escapeText(String(msg.data), { multiline: true });
        if (!ctx.isJson) ctx.io.stdout.write(shown + (shown.endsWith('\n') ? '' : '\n'));
      } else {
        msg.error = data.error.message;
        if (!ctx.isJson) ctx.io.stderr.write(`error: ${escapeText(data.error.message)}\n`);
      }
      messages.push(msg);
    }
    listener.close();
    if (isTimedOut && !ctx.isJson) ctx.io.stderr.write('timeout\n');
    return ok({ data: { messages, timeout: isTimedOut }, text: '' });
  },
});

// --- datagrams, messages, files, events --------------------------------------------------------------------

const listen = defineCommand<{ port: number; count: number; timeoutMs: number }>({
  name: 'listen',
  group: 'Communication',
  summary: 'Print datagrams arriving on a port. Unbounded by default (NDJSON with --json); --count/--timeout bound it',
  args: [{ name: 'port', required: true }],
  flags: [{ ...COUNT_FLAG, description: 'stop after n datagrams (default: unbounded)' }, TIMEOUT_FLAG],
  returns: 'messages [{src_addr, src_port, data, bytes}], timeout (bool). Unbounded: NDJSON per line',
  errors: ['not_running', 'already_exists', 'connection_failed'],
  parse(a, ctx) {
    const port = checkPort(a.positional[0]!);
    if (!port.ok) return port;
    const count = checkCount(flag(a, 'count'), 0, 'count', 0);
    if (!count.ok) return count;
    return ok({ port: port.value, count: count.value, timeoutMs: timeoutOr(ctx, 0) });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const s = await c.value.openDatagramSocketAsync(p.port);
    if (!s.ok) return s;
    const sock = s.value;
    if (!ctx.isJson) ctx.io.stderr.write(`listening on port ${p.port} — waiting for datagrams...\n`);
    const messages: Array<Record<string, unknown>> = [];
    const deadlineMs = p.timeoutMs > 0 ? Date.now() + p.timeoutMs : Infinity;
    let isTimedOut = false;
    const onAbort = (): void => sock.close();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    while (p.count === 0 || messages.length < p.count) {
      const left = deadlineMs - Date.now();
      if (left <= 0) {
        isTimedOut = true;
        break;
      }
      const d = await sock.recv(Number.isFinite(left) ? left : undefined);
      if (d === null) {
        isTimedOut = Number.isFinite(deadlineMs) && Date.now() >= deadlineMs - 5;
        break;
      }
      const msg = { src_addr: d.from, src_port: d.fromPort, data: Buffer.from(d.data).toString('utf8'), bytes: d.data.length };
      messages.push(msg);
      if (!ctx.isJson) ctx.io.stdout.write(`[${d.from}:${d.fromPort}] ${escapeText(msg.data)}\n`);
      else if (p.count === 0) ctx.io.stdout.write(JSON.stringify(msg) + '\n');
    }
    ctx.signal.removeEventListener('abort', onAbort);
    sock.close();
    if (isTimedOut && !ctx.isJson) ctx.io.stderr.write('timeout\n');
    // Unbounded runs already streamed NDJSON; bounded ones print one envelope, as the original.
    if (ctx.isJson && p.count === 0) return ok({});
    return ok({ data: { messages, timeout: isTimedOut }, text: '' });
  },
});

// send-message and inbox: src/cli/messages-cmd.ts (issue 14).

function clearFlag(description: string) {
  return [{ name: 'clear', kind: 'bool' as const, description }];
}

// send-file and received: src/cli/files-cmd.ts (issue 14).

const subscribe = defineCommand<{ peer: string; topic: string; count: number; timeoutMs: number }>({
  name: 'subscribe',
  group: 'Communication',
  summary: "Subscribe to a topic on a node's event stream (port 1002); * for all. Unbounded: NDJSON per event",
  args: [{ name: 'peer', required: true }, { name: 'topic', required: true }],
  flags: [{ ...COUNT_FLAG, description: 'stop after n events (default: unbounded)' }, TIMEOUT_FLAG],
  returns: 'events [{topic, data, bytes, from, received_at}], timeout (bool). Unbounded: NDJSON per line',
  errors: ['not_running', 'not_found', 'connection_failed'],
  parse(a, ctx) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    const topic = checkTopic(a.positional[1]!);
    if (!topic.ok) return topic;
    const count = checkCount(flag(a, 'count'), 0, 'count', 0);
    if (!count.ok) return count;
    return ok({ peer: peer.value, topic: topic.value, count: count.value, timeoutMs: timeoutOr(ctx, 0) });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const events: Array<Record<string, unknown>> = [];
    let wake: () => void = () => {};
    const done = new Promise<void>((r) => (wake = r));
    const sub = await c.value.subscribe(p.peer, p.topic, (e) => {
      if (p.count > 0 && events.length >= p.count) return;
      const ev = { topic: e.topic, data: e.data, bytes: Buffer.byteLength(e.data), from: e.from, received_at: e.received_at };
      events.push(ev);
      if (!ctx.isJson) ctx.io.stdout.write(`[${escapeText(e.topic)}] ${escapeText(e.data)}\n`);
      else if (p.count === 0) ctx.io.stdout.write(JSON.stringify(ev) + '\n');
      if (p.count > 0 && events.length >= p.count) wake();
    });
    if (!sub.ok) return sub;
    if (!ctx.isJson) ctx.io.stderr.write(`subscribed to '${p.topic}' on ${p.peer} — waiting for events...\n`);
    let isTimedOut = false;
    const timer = p.timeoutMs > 0 ? setTimeout(() => ((isTimedOut = true), wake()), p.timeoutMs) : undefined;
    ctx.signal.addEventListener('abort', () => wake(), { once: true });
    await Promise.race([done, sub.value.done]);
    clearTimeout(timer);
    sub.value.close();
    if (isTimedOut && !ctx.isJson) ctx.io.stderr.write('timeout\n');
    if (ctx.isJson && p.count === 0) return ok({});
    return ok({ data: { events, timeout: isTimedOut }, text: '' });
  },
});

const publish = defineCommand<{ peer: string; topic: string; data: string }>({
  name: 'publish',
  group: 'Communication',
  summary: "Publish an event to a topic on a node's event stream broker (port 1002)",
  args: [{ name: 'peer', required: true }, { name: 'topic', required: true }],
  flags: [{ name: 'data', kind: 'string', value: '<message>', description: 'event payload (required)' }],
  returns: 'target, topic, bytes',
  errors: ['not_running', 'not_found', 'connection_failed'],
  parse(a) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    const topic = checkTopic(a.positional[1]!);
    if (!topic.ok) return topic;
    const data = strFlag(a, 'data');
    if (data === undefined || data === '') return err('invalid_argument', '--data is required', { hint: 'pilotctl publish <peer> <topic> --data "hello"' });
    return ok({ peer: peer.value, topic: topic.value, data });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const target = await targetOf(c.value, p.peer);
    const r = await withTimeout(c.value.publish(p.peer, p.topic, Buffer.from(p.data)), timeoutOr(ctx, DEFAULT_TIMEOUT_MS), 'publish');
    if (!r.ok) return r;
    return out({ target, topic: r.value.topic, bytes: r.value.bytes }, `published ${r.value.bytes} bytes to '${r.value.topic}' on ${target}\n`);
  },
});

// --- diagnostics ----------------------------------------------------------------------------------------

const ping = defineCommand<{ peer: string; count: number; intervalMs: number; timeoutMs: number }>({
  name: 'ping',
  group: 'Diagnostics',
  summary: 'Round trips through the echo port (default 4, one per second)',
  args: [{ name: 'peer', required: true }],
  flags: [{ ...COUNT_FLAG, description: 'pings to send (default 4)' }, { name: 'interval', kind: 'duration', value: '<dur>', description: 'between pings (default 1s)' }, TIMEOUT_FLAG],
  returns: 'target, results [{seq, bytes, rtt_ms, error}], timeout (bool), sent, received, avg_rtt_ms',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout'],
  parse(a, ctx) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    const count = checkCount(flag(a, 'count'), 4);
    if (!count.ok) return count;
    const interval = checkDuration(flag(a, 'interval'), 1000, 'interval');
    if (!interval.ok) return interval;
    return ok({ peer: peer.value, count: count.value, intervalMs: interval.value, timeoutMs: timeoutOr(ctx, DEFAULT_TIMEOUT_MS) });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    // As the original: a name that does not resolve fails the command (not_found); a peer that resolves but
    // does not answer gives per-ping errors.
    let target = literalAddress(p.peer);
    if (target === null) {
      const f = await c.value.find(p.peer);
      if (!f.ok && f.error.code === 'not_found') {
        return err('not_found', `cannot resolve '${p.peer}': no node with that hostname`, { hint: 'check the hostname with `pilotctl find`; private nodes need a handshake first' });
      }
      target = f.ok ? f.value.address : p.peer;
    }
    if (!ctx.isJson) ctx.io.stdout.write(`PING ${target}\n`);
    const line = (r: PingResult): string =>
      r.error ? `seq=${r.seq} error: ${r.error}\n` : `seq=${r.seq} bytes=${r.bytes} time=${r.rtt_ms.toFixed(3)}ms\n`;
    let printed = 0;
    const r = await withTimeout(
      c.value.ping(p.peer, {
        count: p.count,
        intervalMs: p.intervalMs,
        timeoutMs: p.timeoutMs,
        onResult: (res) => {
          printed++;
          if (!ctx.isJson) ctx.io.stdout.write(line(res));
        },
      }),
      p.timeoutMs + 1000, // the daemon enforces timeoutMs itself; this only guards a stuck daemon
      'ping',
    );
    if (!r.ok && r.error.code !== 'timeout') return r;
    const results = r.ok ? r.value.results : [];
    let text = '';
    if (printed === 0) for (const res of results) text += line(res);
    const okResults = results.filter((x) => !x.error);
    const avg = okResults.length ? okResults.reduce((s, x) => s + x.rtt_ms, 0) / okResults.length : null;
    text += `--- ${target}: ${results.length} sent, ${okResults.length} received` + (avg !== null ? `, avg ${avg.toFixed(3)} ms` : '') + '\n';
    return out({ target, results, timeout: !r.ok, sent: results.length, received: okResults.length, avg_rtt_ms: avg }, text);
  },
});

const bench = defineCommand<{ peer: string; bytes: number; timeoutMs: number }>({
  name: 'bench',
  group: 'Diagnostics',
  summary: 'Throughput benchmark through the echo port (default 1 MB); progress bar on a terminal',
  args: [{ name: 'peer', required: true }, { name: 'size_mb', required: false, description: 'default 1' }],
  flags: [TIMEOUT_FLAG],
  returns: 'target, sent_bytes, recv_bytes, send_duration_ms, total_duration_ms, send_mbps, total_mbps, bytes, duration_ms, path (ipc), send_gbps',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout'],
  parse(a, ctx) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    let mb = 1;
    if (a.positional[1] !== undefined) {
      const r = checkSizeMb(a.positional[1], MAX_BENCH_MB);
      if (!r.ok) return r;
      mb = r.value;
    }
    return ok({ peer: peer.value, bytes: Math.max(1, Math.round(mb * 1024 * 1024)), timeoutMs: timeoutOr(ctx, BENCH_DEFAULT_TIMEOUT_MS) });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const target = await targetOf(c.value, p.peer);
    if (!ctx.isJson) ctx.io.stdout.write(`BENCH ${target} — sending ${formatBytes(p.bytes)} via echo port\n`);
    const bar = createProgress(ctx.io, ctx.isJson, 'bench');
    // PilotClient.bench streams through this process's IPC stream to the daemon (what `pilotctl connect` and
    // PilotClient users get: the e2e bench's "via the daemon" row), not from inside the daemon.
    const r = await withTimeout(c.value.bench(p.peer, p.bytes, (d, t) => bar.update(d, t), { timeoutMs: p.timeoutMs }), p.timeoutMs, 'bench');
    bar.finish();
    if (!r.ok) return r;
    // The daemon's report carries the original's split figures (send phase vs. echoed back); keep them and
    // fall back to the contract's BenchResult only when a daemon does not send them.
    const b = r.value as BenchResult & Partial<Record<'sent_bytes' | 'recv_bytes' | 'send_duration_ms' | 'total_duration_ms' | 'total_mbps', number>>;
    const data = {
      ...b,
      target,
      sent_bytes: b.sent_bytes ?? b.bytes,
      recv_bytes: b.recv_bytes ?? b.bytes,
      send_duration_ms: b.send_duration_ms ?? b.duration_ms,
      total_duration_ms: b.total_duration_ms ?? b.duration_ms,
      send_mbps: b.send_mbps,
      total_mbps: b.total_mbps ?? b.throughput_mbps ?? b.send_mbps,
      /** Where the bytes went: through pilotctl's IPC stream to the daemon, its tunnel, the peer's echo port. */
      path: 'ipc',
      /** send_mbps in Gbit/s (MB = MiB here, as the original's), comparable to `npm run bench`'s stream rows. */
      send_gbps: (b.send_mbps * 1024 * 1024 * 8) / 1e9,
    };
    let text = `  Sent:     ${formatBytes(data.sent_bytes)} in ${Math.round(data.send_duration_ms)}ms (${data.send_mbps.toFixed(1)} MB/s)\n`;
    text += `  Echoed:   ${formatBytes(data.recv_bytes)} in ${Math.round(data.total_duration_ms)}ms (${data.total_mbps.toFixed(1)} MB/s round-trip)\n`;
    if (data.recv_bytes < data.sent_bytes) text += `warning: receive timed out (got ${formatBytes(data.recv_bytes)} of ${formatBytes(data.sent_bytes)})\n`;
    return out(data, text);
  },
});

const traceroute = defineCommand<{ peer: string; timeoutMs: number }>({
  name: 'traceroute',
  group: 'Diagnostics',
  summary: 'Time the connection setup to a node and three round trips on it',
  args: [{ name: 'peer', required: true }],
  flags: [TIMEOUT_FLAG],
  returns: 'target, setup_ms, rtt_samples [{rtt_ms, bytes}], path',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout'],
  parse(a, ctx) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    return ok({ peer: peer.value, timeoutMs: timeoutOr(ctx, DEFAULT_TIMEOUT_MS) });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const target = await targetOf(c.value, p.peer);
    const start = performance.now();
    const s = await c.value.dial(p.peer, PORT_ECHO, { timeoutMs: p.timeoutMs });
    const setupMs = performance.now() - start;
    if (!s.ok) return s;
    const stream: PilotStream = s.value;
    stream.on('error', () => {});
    const samples: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 3; i++) {
      const payload = Buffer.from(`trace-${i}`);
      const t0 = performance.now();
      const reply = await readExactly(stream, payload, p.timeoutMs);
      const rttMs = performance.now() - t0;
      samples.push(reply.ok ? { rtt_ms: round3(rttMs), bytes: reply.value } : { rtt_ms: round3(rttMs), error: reply.error.message });
      if (!reply.ok) break;
    }
    stream.end();
    stream.destroy();
    const peers = await c.value.peers();
    const entry = peers.ok ? peers.value.peers.find((x) => x.address === target) : undefined;
    const data = { target, setup_ms: round3(setupMs), rtt_samples: samples, path: entry?.path ?? null };
    let text = `TRACEROUTE ${target}\n  1  ${target}  setup=${setupMs.toFixed(3)}ms${entry ? '  path=' + entry.path : ''}\n`;
    for (const x of samples) text += x.error ? `     error: ${String(x.error)}\n` : `     rtt=${(x.rtt_ms as number).toFixed(3)}ms bytes=${String(x.bytes)}\n`;
    return out(data, text);
  },
});

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Write `payload` and read back as many bytes (an echo round trip). */
function readExactly(stream: PilotStream, payload: Buffer, timeoutMs: number): Promise<Result<number>> {
  return new Promise((resolve) => {
    let got = 0;
    const finish = (r: Result<number>): void => {
      clearTimeout(timer);
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      resolve(r);
    };
    const timer = setTimeout(() => finish(err('timeout', `no echo within ${timeoutMs} ms`)), timeoutMs);
    const onData = (b: Buffer): void => {
      got += b.length;
      if (got >= payload.length) finish(ok(got));
    };
    const onEnd = (): void => finish(err('connection_failed', 'stream closed before the echo arrived'));
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.write(payload);
  });
}

const peers = defineCommand<{ search: string | undefined }>({
  name: 'peers',
  group: 'Diagnostics',
  summary: 'List known peers with their path (direct/relay), encryption and RTT',
  args: [],
  flags: [{ name: 'search', kind: 'string', value: '<query>', description: 'filter by node id, address, hostname or endpoint' }],
  returns: "peers [{node_id, address, hostname, endpoint, path, encrypted, suite, cipher ('aes-256-gcm' when both peers have hardware AES, else 'chacha20-poly1305'; null without a session), trusted, last_seen_ms, rtt_ms, transport ('wss' when the path is relay and our relay frames go over the WebSocket, else 'udp'), path_mtu, pmtud ('search', 'complete', 'idle' until the first data, 'off')}], total",
  errors: ['not_running'],
  parse: (a) => ok({ search: strFlag(a, 'search')?.toLowerCase() }),
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.peers();
    if (!r.ok) return r;
    const list = r.value.peers.filter(
      (x) => p.search === undefined || [String(x.node_id), x.address, x.hostname ?? '', x.endpoint ?? ''].some((f) => f.toLowerCase().includes(p.search!)),
    );
    const text = list.length
      ? table(
          ['NODE ID', 'ADDRESS', 'HOSTNAME', 'ENDPOINT', 'PATH', 'ENCRYPTED', 'TRUSTED', 'RTT'],
          // A relay over the compat WebSocket shows as `relay (wss)` (the JSON's `transport`).
          list.map((x) => [x.node_id, x.address, x.hostname ?? '-', x.endpoint ?? '-', x.transport === 'wss' ? `${x.path} (wss)` : x.path, x.encrypted ? x.suite ?? 'yes' : 'no', x.trusted ? 'yes' : 'no', x.rtt_ms === null ? '-' : `${x.rtt_ms.toFixed(1)}ms`]),
        )
      : p.search !== undefined
        ? `no peers matching '${p.search}'\n`
        : 'no peers connected\n  peers appear when you communicate with other nodes\n';
    return out({ peers: list, total: list.length }, text);
  },
});

const connections = defineCommand<null>({
  name: 'connections',
  group: 'Management',
  summary: 'List active stream connections with congestion window, SRTT and bytes in flight',
  args: [],
  flags: [],
  returns: 'connections [{id, peer, peer_node_id, local_port, remote_port, state, cwnd_bytes, srtt_ms, bytes_in_flight, bytes_sent, bytes_received, retransmits, remote_addr}], total',
  errors: ['not_running'],
  parse: noArgs,
  async run(ctx) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.connections();
    if (!r.ok) return r;
    const list = r.value.connections.map((x) => ({ ...x, remote_addr: x.peer }));
    const text = list.length
      ? `Active connections: ${list.length}\n\n` +
        table(
          ['ID', 'LOCAL', 'REMOTE ADDR', 'RPORT', 'STATE', 'CWND', 'FLIGHT', 'SRTT', 'SENT', 'RECV', 'RETX'],
          list.map((x) => [x.id, x.local_port, x.peer, x.remote_port, x.state, formatBytes(x.cwnd_bytes), formatBytes(x.bytes_in_flight), `${x.srtt_ms.toFixed(1)}ms`, formatBytes(x.bytes_sent), formatBytes(x.bytes_received), x.retransmits]),
        )
      : 'no active connections\n  connect to a peer: pilotctl connect <address|hostname> --message "hello"\n';
    return out({ connections: list, total: list.length }, text);
  },
});

const disconnect = defineCommand<number>({
  name: 'disconnect',
  group: 'Management',
  summary: 'Close a connection by id (see `pilotctl connections`)',
  args: [{ name: 'conn_id', required: true }],
  flags: [],
  returns: 'conn_id',
  errors: ['not_running', 'not_found'],
  parse(a) {
    const s = a.positional[0]!;
    if (!/^\d{1,10}$/.test(s) || Number(s) > 0xffffffff) return err('invalid_argument', `invalid connection id '${s}'`, { hint: 'see `pilotctl connections`' });
    return ok(Number(s));
  },
  async run(ctx, id) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.disconnect(id);
    if (!r.ok) return r;
    return out({ conn_id: id }, `connection ${id} closed\n`);
  },
});

export const NODE_COMMANDS: Command[] = [
  info,
  setHostname,
  clearHostname,
  find,
  visibility('set-public', true),
  visibility('set-private', false),
  setTags,
  clearTags,
  handshake,
  pending,
  nodeIdCommand('approve', 'Approve a pending handshake request', 'status, node_id'),
  reject,
  trust,
  nodeIdCommand('untrust', 'Revoke trust for a peer', 'node_id, status'),
  connect,
  send,
  recv,
  listen,
  subscribe,
  publish,
  ping,
  bench,
  traceroute,
  peers,
  connections,
  disconnect,
];
