// `pilotctl network …` and `pilotctl broadcast` (issue 15): custom networks whose membership is a chain of
// changes signed by their owners and admins (docs/networks.md). Every subcommand is one call of the daemon's
// `network` IPC method; the daemon signs, the registry stores and pushes, members verify.
import { err, ok, type Result } from '../core/result.js';
import type { ErrorCode } from '../core/errors.js';
import type { FlagSpec, ParsedArgs } from './args.js';
import { defineCommand, type Command, type CommandOutput, type CliContext } from './command.js';

interface NetParams {
  op: string;
  name?: string;
  peer?: string;
  token?: string;
  join_rule?: string;
  new_name?: string;
  data?: string;
  /** tag: comma-separated tags ('' clears). */
  tags?: string;
  /** broadcast --datagram --port P */
  datagram?: boolean;
  port?: number;
}

type ArgName = 'name' | 'peer' | 'new_name';

interface Sub {
  op: string;
  summary: string;
  args: ArgName[];
  flags: FlagSpec[];
  returns: string;
  errors: ErrorCode[];
}

const TOKEN_FLAG: FlagSpec = { name: 'token', kind: 'string', value: '<token>', description: 'the network token (token networks)' };
const COMMON_ERRORS: ErrorCode[] = ['not_running', 'not_found', 'connection_failed'];

const SUBS: Sub[] = [
  {
    op: 'create',
    summary: 'Create a network you own; its genesis is signed by your key',
    args: ['name'],
    flags: [{ name: 'join-rule', kind: 'string', value: '<rule>', description: 'open (default), token or invite' }, TOKEN_FLAG],
    returns: 'network_id, name, join_rule, members, role, address',
    errors: [...COMMON_ERRORS, 'already_exists'],
  },
  { op: 'list', summary: 'List networks (your role and invites included)', args: [], flags: [], returns: 'networks [{network_id, name, join_rule, members, role, invited, address}]', errors: COMMON_ERRORS },
  { op: 'join', summary: 'Join an open or token network (signed by your key)', args: ['name'], flags: [TOKEN_FLAG], returns: 'network_id, name, join_rule, members, role, address', errors: [...COMMON_ERRORS, 'permission_denied', 'already_exists'] },
  { op: 'leave', summary: 'Leave a network', args: ['name'], flags: [], returns: 'network_id, name, status', errors: COMMON_ERRORS },
  { op: 'members', summary: 'Members of a network, from its verified chain', args: ['name'], flags: [], returns: 'network_id, name, members [{node_id, address, hostname, role, public_key, tags, network_hostname}]', errors: COMMON_ERRORS },
  { op: 'invite', summary: 'Invite a node (owner or admin)', args: ['name', 'peer'], flags: [], returns: 'network_id, name, node_id, status', errors: [...COMMON_ERRORS, 'permission_denied', 'already_exists'] },
  { op: 'invites', summary: 'Networks that invited this node', args: [], flags: [], returns: 'invites [{network_id, name, join_rule}]', errors: COMMON_ERRORS },
  { op: 'accept', summary: 'Accept an invite: join the network', args: ['name'], flags: [], returns: 'network_id, name, join_rule, members, role, address', errors: [...COMMON_ERRORS, 'permission_denied'] },
  { op: 'reject', summary: 'Decline an invite', args: ['name'], flags: [], returns: 'network_id, name, status', errors: COMMON_ERRORS },
  { op: 'delete', summary: 'Delete a network (owner)', args: ['name'], flags: [], returns: 'network_id, name, status', errors: [...COMMON_ERRORS, 'permission_denied'] },
  { op: 'rename', summary: 'Rename a network (owner)', args: ['name', 'new_name'], flags: [], returns: 'network_id, name, old_name', errors: [...COMMON_ERRORS, 'permission_denied', 'already_exists'] },
  { op: 'promote', summary: 'Make a member an admin (owner)', args: ['name', 'peer'], flags: [], returns: 'network_id, name, node_id, role', errors: [...COMMON_ERRORS, 'permission_denied'] },
  { op: 'demote', summary: 'Make an admin a member (owner)', args: ['name', 'peer'], flags: [], returns: 'network_id, name, node_id, role', errors: [...COMMON_ERRORS, 'permission_denied'] },
  { op: 'kick', summary: 'Remove a member (owner or admin); its reach ends at once', args: ['name', 'peer'], flags: [], returns: 'network_id, name, node_id, status', errors: [...COMMON_ERRORS, 'permission_denied'] },
  { op: 'role', summary: 'Your role in a network', args: ['name'], flags: [], returns: 'network_id, name, role', errors: COMMON_ERRORS },
  {
    op: 'tag',
    summary: "Set a member's tags in the network (owner or admin; policy `tag:` selectors match them)",
    args: ['name', 'peer'],
    flags: [{ name: 'tags', kind: 'string', value: '<a,b>', description: 'comma-separated tags, replacing the earlier ones ("" clears)' }],
    returns: 'network_id, name, node_id, tags',
    errors: [...COMMON_ERRORS, 'permission_denied', 'invalid_argument'],
  },
];

const ARG_LABEL: Record<ArgName, string> = { name: 'network', peer: 'peer', new_name: 'new_name' };

async function call(ctx: CliContext, p: NetParams): Promise<Result<unknown>> {
  const c = await ctx.client();
  if (!c.ok) return c;
  return c.value.network(p);
}

function render(op: string, d: Record<string, unknown>): string {
  switch (op) {
    case 'list': {
      const rows = (d.networks as Record<string, unknown>[]) ?? [];
      const lines = rows.map((n) => `${String(n.network_id).padEnd(6)} ${String(n.name).padEnd(24)} ${String(n.join_rule).padEnd(7)} ${String(n.members).padStart(5)}  ${n.role || (n.invited ? 'invited' : '-')}`);
      return ['ID     NAME                     RULE    MEMBERS  ROLE', ...lines].join('\n') + '\n';
    }
    case 'members': {
      const rows = (d.members as Record<string, unknown>[]) ?? [];
      return [`network ${String(d.name)} (${rows.length} members)`, ...rows.map((m) => `  ${String(m.node_id).padEnd(8)} ${String(m.address).padEnd(20)} ${String(m.role).padEnd(7)} ${m.hostname ?? ''}`)].join('\n') + '\n';
    }
    case 'invites': {
      const rows = (d.invites as Record<string, unknown>[]) ?? [];
      if (rows.length === 0) return 'no invites\n';
      return rows.map((n) => `${String(n.name)} (network ${String(n.network_id)}): pilotctl network accept ${String(n.name)}`).join('\n') + '\n';
    }
    case 'create':
    case 'join':
    case 'accept':
      return `member of network ${String(d.name)} (id ${String(d.network_id)}) as ${String(d.role)}; address ${String(d.address)}\n`;
    case 'role':
      return `${String(d.role)} of network ${String(d.name)}\n`;
    default:
      return `network ${String(d.name)}: ${String(d.status ?? d.role ?? 'ok')}${d.node_id !== undefined ? ` (node ${String(d.node_id)})` : ''}\n`;
  }
}

function subcommand(s: Sub): Command {
  return defineCommand<NetParams>({
    name: `network ${s.op}`,
    group: 'Networks',
    summary: s.summary,
    args: s.args.map((a) => ({ name: ARG_LABEL[a], required: true })),
    flags: s.flags,
    returns: s.returns,
    errors: s.errors,
    parse(a: ParsedArgs) {
      const p: NetParams = { op: s.op };
      s.args.forEach((name, i) => {
        p[name] = a.positional[i]!;
      });
      const token = a.flags.get('token');
      if (typeof token === 'string') p.token = token;
      const rule = a.flags.get('join-rule');
      if (typeof rule === 'string') {
        if (!['open', 'token', 'invite'].includes(rule)) return err('invalid_argument', `--join-rule must be open, token or invite, not '${rule}'`);
        p.join_rule = rule;
      }
      if (s.op === 'create' && p.join_rule === 'token' && !p.token) return err('invalid_argument', 'a token network needs --token');
      if (s.op === 'tag') {
        const tags = a.flags.get('tags');
        if (typeof tags !== 'string') return err('invalid_argument', 'network tag needs --tags a,b (--tags "" clears)');
        const list = tags.split(',').map((t) => t.trim()).filter((t) => t !== '');
        const bad = list.find((t) => !/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(t));
        if (bad !== undefined) return err('invalid_argument', `tag '${bad}' must be lowercase alphanumeric with hyphens (≤ 32 chars)`);
        if (list.length > 16) return err('invalid_argument', `at most 16 tags per member, got ${list.length}`);
        p.tags = list.join(',');
      }
      return ok(p);
    },
    async run(ctx, p): Promise<Result<CommandOutput>> {
      const r = await call(ctx, p);
      if (!r.ok) return r;
      return ok({ data: r.value, text: render(s.op, r.value as Record<string, unknown>) });
    },
  });
}

const broadcast = defineCommand<NetParams>({
  name: 'broadcast',
  group: 'Networks',
  summary: 'Send a message (or with --datagram, a datagram to --port) to every member of a network: fanned out by your daemon, one copy each, a result per member',
  args: [
    { name: 'network', required: true },
    { name: 'message', required: false },
  ],
  flags: [
    { name: 'data', kind: 'string', value: '<text>', description: 'the message (or give it as the second argument)' },
    { name: 'datagram', kind: 'bool', description: 'one unacknowledged datagram per member instead of a message (status "sent")' },
    { name: 'port', kind: 'int', value: '<port>', description: 'with --datagram: the members\' port (1-65535; sent from the same port)' },
  ],
  returns: 'network_id, name, bytes, sent, failed, results [{node_id, status, ack, error}] (+ port, datagram with --datagram)',
  errors: [...COMMON_ERRORS],
  parse(a) {
    const flag = a.flags.get('data');
    const data = typeof flag === 'string' ? flag : a.positional[1];
    if (data === undefined) return err('invalid_argument', 'broadcast needs a message: --data TEXT');
    const p: NetParams = { op: 'broadcast', name: a.positional[0]!, data };
    const portText = a.flags.get('port');
    const port = typeof portText === 'string' && /^\d{1,5}$/.test(portText) ? Number(portText) : undefined;
    if (a.flags.get('datagram') === true) {
      if (port === undefined || port < 1 || port > 65535) return err('invalid_argument', 'broadcast --datagram needs --port 1-65535', { hint: 'e.g. pilotctl broadcast lab --datagram --port 1234 --data hi' });
      if (Buffer.byteLength(data) > 1400) return err('invalid_argument', `a datagram carries at most 1400 bytes here, got ${Buffer.byteLength(data)}`, { hint: 'broadcast without --datagram sends a message of any size' });
      p.datagram = true;
      p.port = port;
    } else if (portText !== undefined) return err('invalid_argument', '--port is for --datagram broadcasts');
    return ok(p);
  },
  async run(ctx, p) {
    const r = await call(ctx, p);
    if (!r.ok) return r;
    const d = r.value as { name: string; sent: number; failed: number; results: { node_id: number; status: string; error?: { message: string } }[] };
    const lines = d.results.map((x) => `  node ${x.node_id}: ${x.status}${x.error ? ` (${x.error.message})` : ''}`);
    const what = p.datagram ? `datagrams to port ${String(p.port)}: ${d.sent} sent` : `${d.sent} delivered`;
    return ok({ data: d, text: [`broadcast to ${d.name}: ${what}, ${d.failed} failed`, ...lines].join('\n') + '\n' });
  },
});

export const NETWORK_COMMANDS: Command[] = [...SUBS.map(subcommand), broadcast];
