// NodeApi `network`: the network subcommands as one operation with a typed parameter set (one IPC method,
// `network`, carries them all). Parsing is total: a bad op or a missing name is invalid_argument.
import { err, ok, type Result } from '../../core/result.js';
import type { PeerRef } from '../api.js';
import { parseJoinRule, type NetworkBook } from './network-book.js';

export const NETWORK_OPS = [
  'create', 'list', 'join', 'leave', 'members', 'invite', 'invites', 'accept', 'reject', 'delete', 'rename', 'promote', 'demote', 'kick', 'role', 'broadcast', 'policy_get', 'policy_set', 'tag',
] as const;
export type NetworkOp = (typeof NETWORK_OPS)[number];

export interface NetworkOpParams {
  op: NetworkOp;
  /** The network's name (or id). */
  name?: string;
  /** invite/promote/demote/kick: the peer (node id, address or hostname). */
  peer?: PeerRef;
  token?: string;
  join_rule?: string;
  /** rename: the new name. */
  new_name?: string;
  /** policy_set: the policy text ('' clears it). */
  policy?: string;
  /** broadcast: the message. */
  data?: Uint8Array;
  /** tag: the member's tags in the network ([] clears). */
  tags?: string[];
  /** broadcast: one datagram per member to `port` instead of an acknowledged message. */
  datagram?: boolean;
  port?: number;
}

/** Delivers one broadcast copy to one member (the data-exchange message service); `ack`: the member confirmed. */
export type BroadcastSend = (nodeId: number, data: Uint8Array) => Promise<Result<{ bytes: number; ack: boolean }>>;

/** Sends one datagram to member `nodeId`'s `port` (from the same port number). */
export type BroadcastDatagram = (nodeId: number, port: number, data: Uint8Array) => Promise<Result<void>>;

export interface NetworkOpDeps {
  resolveRef(ref: PeerRef): Promise<Result<number>>;
  send?: BroadcastSend | undefined;
  sendDatagram?: BroadcastDatagram | undefined;
}

export async function networkOp(book: NetworkBook, p: NetworkOpParams, deps: NetworkOpDeps): Promise<Result<unknown>> {
  if (!(NETWORK_OPS as readonly string[]).includes(p.op)) return err('invalid_argument', `unknown network operation '${String(p.op)}'`, { hint: `one of ${NETWORK_OPS.join(', ')}` });
  if (p.op === 'list') return book.list();
  if (p.op === 'invites') return book.invites();
  const name = p.name ?? '';
  if (name === '') return err('invalid_argument', `network ${p.op} needs a network name`);
  switch (p.op) {
    case 'create': {
      const rule = parseJoinRule(p.join_rule ?? 'open');
      if (!rule.ok) return rule;
      return book.create(name, rule.value, p.token);
    }
    case 'join':
      return book.join(name, p.token);
    case 'leave':
      return book.leave(name);
    case 'members':
      return book.members(name);
    case 'accept':
      return book.accept(name);
    case 'reject':
      return book.reject(name);
    case 'delete':
      return book.remove(name);
    case 'role':
      return book.role(name);
    case 'rename':
      if (!p.new_name) return err('invalid_argument', 'network rename needs the new name');
      return book.rename(name, p.new_name);
    case 'policy_get':
      return book.getPolicy(name);
    case 'policy_set':
      if (p.policy === undefined) return err('invalid_argument', 'network policy_set needs the policy text');
      return book.setPolicy(name, p.policy);
    case 'broadcast':
      if (p.datagram) {
        if (p.port === undefined || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) return err('invalid_argument', 'a datagram broadcast needs --port 1-65535');
        return broadcastDatagram(book, name, p.port, p.data ?? new Uint8Array(0), deps.sendDatagram);
      }
      return broadcast(book, name, p.data ?? new Uint8Array(0), deps.send);
    case 'tag': {
      if (p.peer === undefined || String(p.peer) === '') return err('invalid_argument', 'network tag needs a peer');
      if (!Array.isArray(p.tags)) return err('invalid_argument', 'network tag needs --tags a,b (empty clears)');
      const id = await deps.resolveRef(p.peer);
      if (!id.ok) return id;
      return book.setTags(name, id.value, p.tags);
    }
    case 'invite':
    case 'promote':
    case 'demote':
    case 'kick': {
      if (p.peer === undefined || String(p.peer) === '') return err('invalid_argument', `network ${p.op} needs a peer`);
      const id = await deps.resolveRef(p.peer);
      if (!id.ok) return id;
      if (p.op === 'invite') return book.invite(name, id.value);
      if (p.op === 'kick') return book.kick(name, id.value);
      return book.setRole(name, id.value, p.op);
    }
  }
  return err('invalid_argument', `unknown network operation '${String(p.op)}'`);
}

export interface BroadcastResult {
  network_id: number;
  name: string;
  bytes: number;
  sent: number;
  failed: number;
  results: { node_id: number; status: 'delivered' | 'sent' | 'failed'; ack?: boolean; error?: { code: string; message: string } }[];
  /** Datagram broadcasts: the port, and `sent` counts datagrams handed to each member's tunnel (no acknowledgement). */
  port?: number;
  datagram?: boolean;
}

/**
 * One copy to every other member, fanned out here, each once (a message over the data-exchange service, which
 * acknowledges it), with each member's result. Members reach each other without a handshake (membership is trust).
 */
async function broadcast(book: NetworkBook, name: string, data: Uint8Array, send: BroadcastSend | undefined): Promise<Result<BroadcastResult>> {
  if (!send) return err('invalid_argument', 'broadcast needs the message service (the daemon runs it unless --no-dataexchange)');
  const m = book.membersOf(name);
  if (!m.ok) return m;
  const results = await Promise.all(
    m.value.nodeIds.map(async (nodeId): Promise<BroadcastResult['results'][number]> => {
      const r = await send(nodeId, data);
      return r.ok ? { node_id: nodeId, status: 'delivered', ack: r.value.ack } : { node_id: nodeId, status: 'failed', error: { code: r.error.code, message: r.error.message } };
    }),
  );
  const sent = results.filter((r) => r.status === 'delivered').length;
  return ok({ network_id: m.value.networkId, name, bytes: data.length, sent, failed: results.length - sent, results });
}

/**
 * One datagram to every other member's `port`, each once, with each member's result: 'sent' (left in its tunnel:
 * datagrams are not acknowledged; a member whose policy refuses the port answers with a notice, and later sends
 * there fail with policy_denied) or 'failed' (no route, too large, a refusal we know of).
 */
async function broadcastDatagram(book: NetworkBook, name: string, port: number, data: Uint8Array, send: BroadcastDatagram | undefined): Promise<Result<BroadcastResult>> {
  if (!send) return err('invalid_argument', 'datagram broadcast needs the daemon');
  const m = book.membersOf(name);
  if (!m.ok) return m;
  const results = await Promise.all(
    m.value.nodeIds.map(async (nodeId): Promise<BroadcastResult['results'][number]> => {
      const r = await send(nodeId, port, data);
      return r.ok ? { node_id: nodeId, status: 'sent' } : { node_id: nodeId, status: 'failed', error: { code: r.error.code, message: r.error.message } };
    }),
  );
  const sent = results.filter((r) => r.status === 'sent').length;
  return ok({ network_id: m.value.networkId, name, bytes: data.length, sent, failed: results.length - sent, results, port, datagram: true });
}
