// A network's membership: an append-only chain of signed changes (issue 15). The creator's key signs the
// genesis (`create`); every later change names its signer (`by`) and is signed by that node's key as the chain
// itself records it — an owner or admin for invite/remove/promote/demote/rename/delete, the subject itself for
// join/decline/leave (a join only counts when the chain's join rule allows it: open, a token proof, or an
// outstanding invite signed by an admin). Each change carries the hash of the one before (`prev`), so a change
// cannot be moved to another network or replayed at another place. The registry stores the chain and hands it
// out; members fold it here themselves, so the registry cannot add a member on its own (it holds no member key).
// Sans-IO: bytes and values in, a view or a coded error out; the signer is a callback.
import { createHash, createHmac } from 'node:crypto';
import { err, ok, type Result } from '../core/result.js';
import { fromBase64, verify } from './identity.js';

export type NetworkRole = 'owner' | 'admin' | 'member';
export type JoinRule = 'open' | 'token' | 'invite';
export type ChangeOp = 'create' | 'invite' | 'join' | 'decline' | 'leave' | 'remove' | 'promote' | 'demote' | 'rename' | 'delete' | 'policy' | 'tags' | 'hostname' | 'rekey';

export const JOIN_RULES: readonly JoinRule[] = ['open', 'token', 'invite'];
const OPS: readonly ChangeOp[] = ['create', 'invite', 'join', 'decline', 'leave', 'remove', 'promote', 'demote', 'rename', 'delete', 'policy', 'tags', 'hostname', 'rekey'];
/** A member's tags in a network (policy `tag:` selectors), set by an owner or admin: at most this many, each like a node tag. */
export const MAX_MEMBER_TAGS = 16;
const TAG_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
const HOSTNAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Largest policy text a `policy` change carries (UTF-16 units; the registry frames it whole). '' clears the policy. */
export const MAX_CHAIN_POLICY_CHARS = 64 * 1024;
/** Ops the subject signs itself (by === node_id, key = the subject's key). */
const SELF_OPS: readonly ChangeOp[] = ['create', 'join', 'decline', 'leave', 'hostname'];
/** Changes in one chain; the registry refuses more (each member re-verifies all of them). */
export const MAX_CHAIN_CHANGES = 10_000;
const SIGN_LABEL = 'pilot-network-change:v1:';
const TOKEN_LABEL = 'pilot-network-token:v1:';

/** One change as it travels (registry frames, pushes) and is stored. snake_case like the registry protocol. */
export interface NetworkChange {
  v: 1;
  seq: number;
  /** hex sha256 of the previous change (changeHash); '' for the genesis. */
  prev: string;
  op: ChangeOp;
  /** The signer's node id. */
  by: number;
  /** The subject (the creator, joiner, invitee, removed or promoted node). */
  node_id: number;
  /** The subject's base64 Ed25519 key (create/invite/join/decline/leave); '' otherwise. */
  key: string;
  /** create/rename: the network's name. */
  name: string;
  /** create only. */
  join_rule: JoinRule | '';
  /** create of a token network: hex sha256 of the token (labelled); '' otherwise. */
  token_check: string;
  /** join of a token network: hex HMAC-SHA256(token, `join:<prev>:<node_id>:<key>`); '' otherwise. */
  token_mac: string;
  /** Unix seconds, as the signer's clock says (informative). */
  ts: number;
  /** base64 Ed25519 signature over signingText(change). */
  sig: string;
  /** policy only: the policy document (docs/policy.md); '' clears it. Absent on every other op. */
  policy?: string;
  /** policy only: hex sha256 of `policy` (signed; checked by every verifier). */
  policy_sha256?: string;
  /** tags only (an owner or admin signs): the subject's tags in this network, replacing its earlier ones. */
  tags?: string[];
  /** hostname only (the member signs, with the key the chain records): its hostname in this network ('' clears). */
  hostname?: string;
}

export interface NetworkMember {
  nodeId: number;
  key: string;
  role: NetworkRole;
  /** seq of the change that made it a member. */
  sinceSeq: number;
  /** Its hostname as it signed it ('hostname' op; unique in the network), for policy hostname selectors. */
  hostname?: string;
  /** Its tags as an owner or admin set them ('tags' op), for policy `tag:` selectors. */
  tags?: readonly string[];
}

/** What a chain says, after verifying every change. */
export interface NetworkView {
  name: string;
  joinRule: JoinRule;
  tokenCheck: string;
  members: Map<number, NetworkMember>;
  /** Outstanding invites: invitee → its key and the inviter. */
  invites: Map<number, { key: string; by: number; seq: number }>;
  /** Hash of the last change ('' before the genesis) and its seq (-1 before the genesis). */
  head: string;
  seq: number;
  genesis: string;
  isDeleted: boolean;
  /** The network's policy text and its sha256 (set by the last `policy` change; '' = none: membership alone decides). Parse it with src/policy. */
  policy: string;
  policySha256: string;
  /** seq of the change that set the policy (-1: none). */
  policySeq: number;
}

export interface FoldOptions {
  /** The network's token, when the verifier holds it (token joins are then checked; without it they are taken on the admins' word that they hold the token — see docs/networks.md). */
  token?: string;
}

/** Text an Ed25519 signature covers: the label and every field but sig, in a fixed order. */
export function signingText(c: Omit<NetworkChange, 'sig'>): string {
  const fields: unknown[] = [c.v, c.seq, c.prev, c.op, c.by, c.node_id, c.key, c.name, c.join_rule, c.token_check, c.token_mac, c.ts];
  // A policy change also signs its text and hash (other ops sign exactly what they did before the op existed).
  if (c.op === 'policy') fields.push(c.policy ?? '', c.policy_sha256 ?? '');
  if (c.op === 'tags') fields.push(c.tags ?? []);
  if (c.op === 'hostname') fields.push(c.hostname ?? '');
  return SIGN_LABEL + JSON.stringify(fields);
}

export function policySha256Of(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** hex sha256 of the signed text and the signature: what the next change names as prev. */
export function changeHash(c: NetworkChange): string {
  return createHash('sha256').update(signingText(c), 'utf8').update(':', 'utf8').update(c.sig, 'utf8').digest('hex');
}

export function tokenCheckOf(token: string): string {
  return createHash('sha256').update(TOKEN_LABEL + token, 'utf8').digest('hex');
}

export function tokenMacOf(token: string, prev: string, nodeId: number, key: string): string {
  return createHmac('sha256', Buffer.from(TOKEN_LABEL + token, 'utf8')).update(`join:${prev}:${nodeId}:${key}`, 'utf8').digest('hex');
}

/** Build and sign a change that extends `view` (or a genesis when view is null). `sign` signs bytes with the node key. */
export function makeChange(
  view: Pick<NetworkView, 'head' | 'seq'> | null,
  fields: Partial<Omit<NetworkChange, 'v' | 'seq' | 'prev' | 'sig' | 'policy_sha256'>> & { op: ChangeOp; by: number; node_id: number; ts: number },
  sign: (msg: Uint8Array) => Uint8Array,
): NetworkChange {
  const unsigned: Omit<NetworkChange, 'sig'> = {
    v: 1,
    seq: view ? view.seq + 1 : 0,
    prev: view ? view.head : '',
    op: fields.op,
    by: fields.by,
    node_id: fields.node_id,
    key: fields.key ?? '',
    name: fields.name ?? '',
    join_rule: fields.join_rule ?? '',
    token_check: fields.token_check ?? '',
    token_mac: fields.token_mac ?? '',
    ts: fields.ts,
    ...(fields.op === 'policy' ? { policy: fields.policy ?? '', policy_sha256: policySha256Of(fields.policy ?? '') } : {}),
    ...(fields.op === 'tags' ? { tags: [...(fields.tags ?? [])] } : {}),
    ...(fields.op === 'hostname' ? { hostname: fields.hostname ?? '' } : {}),
  };
  const sig = Buffer.from(sign(Buffer.from(signingText(unsigned), 'utf8'))).toString('base64');
  return { ...unsigned, sig };
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The original's validateNetworkName; null when valid. */
export function networkNameProblem(name: string): string | null {
  if (name.length === 0) return 'network name required';
  if (name.length > 63) return 'network name too long (max 63 chars)';
  if (!NAME_RE.test(name)) return 'network name must be lowercase alphanumeric with hyphens, start/end with alphanumeric';
  if (name === 'backbone') return 'network name "backbone" is reserved';
  return null;
}

/** Any JSON value → a change, or invalid_argument naming the first bad field (total). */
export function decodeNetworkChange(v: unknown): Result<NetworkChange> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return err('invalid_argument', 'network change is not an object');
  const o = v as Record<string, unknown>;
  const u32 = (k: string): number | null => {
    const x = o[k];
    return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff ? x : null;
  };
  const str = (k: string, max: number): string | null => {
    const x = o[k];
    return typeof x === 'string' && x.length <= max ? x : null;
  };
  if (o.v !== 1) return err('invalid_argument', 'network change: unsupported version');
  const seq = u32('seq');
  const by = u32('by');
  const nodeId = u32('node_id');
  const ts = u32('ts');
  const prev = str('prev', 64);
  const key = str('key', 64);
  const name = str('name', 63);
  const joinRule = o.join_rule;
  const tokenCheck = str('token_check', 64);
  const tokenMac = str('token_mac', 64);
  const sig = str('sig', 128);
  if (seq === null || by === null || nodeId === null || ts === null) return err('invalid_argument', 'network change: seq, by, node_id and ts must be u32');
  if (prev === null || key === null || name === null || tokenCheck === null || tokenMac === null || sig === null) {
    return err('invalid_argument', 'network change: prev, key, name, token_check, token_mac and sig must be short strings');
  }
  if (!OPS.includes(o.op as ChangeOp)) return err('invalid_argument', `network change: unknown op ${JSON.stringify(o.op).slice(0, 40)}`);
  if (joinRule !== '' && !JOIN_RULES.includes(joinRule as JoinRule)) return err('invalid_argument', 'network change: bad join_rule');
  let policy: { policy: string; policy_sha256: string } | null = null;
  if (o.op === 'policy') {
    const text = str('policy', MAX_CHAIN_POLICY_CHARS);
    const hash = str('policy_sha256', 64);
    if (text === null || hash === null) return err('invalid_argument', `network change: a policy change needs policy (≤ ${MAX_CHAIN_POLICY_CHARS} chars) and policy_sha256`);
    policy = { policy: text, policy_sha256: hash };
  }
  let tags: { tags: string[] } | null = null;
  if (o.op === 'tags') {
    const t = o.tags;
    if (!Array.isArray(t) || t.length > MAX_MEMBER_TAGS || !t.every((x) => typeof x === 'string' && TAG_RE.test(x))) {
      return err('invalid_argument', `network change: tags must be at most ${MAX_MEMBER_TAGS} tags, each lowercase alphanumeric with hyphens (≤ 32 chars)`);
    }
    tags = { tags: [...(t as string[])] };
  }
  let hostname: { hostname: string } | null = null;
  if (o.op === 'hostname') {
    const h = o.hostname;
    if (typeof h !== 'string' || (h !== '' && !HOSTNAME_RE.test(h))) return err('invalid_argument', 'network change: hostname must be a hostname (or empty)');
    hostname = { hostname: h };
  }
  return ok({
    v: 1,
    seq,
    prev,
    op: o.op as ChangeOp,
    by,
    node_id: nodeId,
    key,
    name,
    join_rule: joinRule as JoinRule | '',
    token_check: tokenCheck,
    token_mac: tokenMac,
    ts,
    sig,
    ...(policy ?? {}),
    ...(tags ?? {}),
    ...(hostname ?? {}),
  });
}

function emptyView(): NetworkView {
  return { name: '', joinRule: 'open', tokenCheck: '', members: new Map(), invites: new Map(), head: '', seq: -1, genesis: '', isDeleted: false, policy: '', policySha256: '', policySeq: -1 };
}

function copyView(v: NetworkView): NetworkView {
  return { ...v, members: new Map(v.members), invites: new Map(v.invites) };
}

function denied(message: string): Result<never> {
  return err('permission_denied', message);
}

/**
 * Verify `c` as the next change of `view` (null: the genesis) and return the view it makes. Errors:
 * invalid_argument (out of place: wrong seq or prev, after a delete, malformed), permission_denied (a signature
 * that does not verify, a signer without the role the op needs, a join the rule does not allow).
 */
export function applyNetworkChange(view: NetworkView | null, c: NetworkChange, opts: FoldOptions = {}): Result<NetworkView> {
  const cur = view ?? emptyView();
  if (cur.isDeleted) return err('invalid_argument', 'network was deleted');
  if (c.seq !== cur.seq + 1 || c.prev !== cur.head) return err('invalid_argument', `change ${c.seq} does not extend the chain at ${cur.seq}`);
  if (cur.seq + 1 >= MAX_CHAIN_CHANGES) return err('invalid_argument', 'network chain is full');
  if ((c.op === 'create') !== (view === null || cur.seq === -1)) return err('invalid_argument', 'create must be the first change, and only it');
  const isSelf = SELF_OPS.includes(c.op);
  if (isSelf && c.by !== c.node_id) return denied(`${c.op} must be signed by node ${c.node_id} itself`);
  // rekey: a member names its new key, signed with the key the chain holds for it (verified below as a member's).
  if (c.op === 'rekey' && c.by !== c.node_id) return denied(`rekey must be signed by node ${c.node_id} itself, with its current key`);
  // The key that must have signed: the subject's own for self ops (checked against the chain below), else the signer's as a member.
  const signer = isSelf ? null : cur.members.get(c.by);
  if (!isSelf && !signer) return denied(`node ${c.by} is not a member of the network`);
  const keyText = isSelf ? c.key : signer!.key;
  const key = fromBase64(keyText);
  const sig = fromBase64(c.sig);
  if (!key || key.length !== 32) return err('invalid_argument', 'network change: key is not a base64 Ed25519 key');
  if (!sig || !verify(key, Buffer.from(signingText(c), 'utf8'), sig)) return denied(`signature of change ${c.seq} (${c.op}) does not verify`);
  const next = copyView(cur);
  next.head = changeHash(c);
  next.seq = c.seq;
  const role = signer?.role;
  const isAdmin = role === 'owner' || role === 'admin';
  const target = cur.members.get(c.node_id);
  switch (c.op) {
    case 'create': {
      const problem = networkNameProblem(c.name);
      if (problem) return err('invalid_argument', problem);
      if (c.join_rule === '') return err('invalid_argument', 'create needs a join_rule');
      if ((c.join_rule === 'token') !== (c.token_check !== '')) return err('invalid_argument', 'a token network needs token_check, others none');
      next.name = c.name;
      next.joinRule = c.join_rule;
      next.tokenCheck = c.token_check;
      next.genesis = next.head;
      next.members.set(c.node_id, { nodeId: c.node_id, key: c.key, role: 'owner', sinceSeq: c.seq });
      return ok(next);
    }
    case 'invite':
      if (!isAdmin) return denied(`node ${c.by} (${role}) cannot invite: owner or admin only`);
      if (target) return err('already_exists', `node ${c.node_id} is already a member`);
      if (!fromBase64(c.key)) return err('invalid_argument', 'invite needs the invitee key');
      next.invites.set(c.node_id, { key: c.key, by: c.by, seq: c.seq });
      return ok(next);
    case 'join': {
      if (target) return err('already_exists', `node ${c.node_id} is already a member`);
      const invite = cur.invites.get(c.node_id);
      if (cur.joinRule === 'invite' || invite) {
        // An invite names a key: only that key can take it (a re-registered node id is someone else).
        if (!invite || invite.key !== c.key) return denied(`node ${c.node_id} has no invite to this network`);
        if (!cur.members.has(invite.by) || !isRoleAdmin(cur.members.get(invite.by)!.role)) {
          // The inviter lost its rights (kicked, demoted) before the invite was taken.
          return denied(`the invite of node ${c.node_id} was made by node ${invite.by}, no longer an admin`);
        }
      } else if (cur.joinRule === 'token') {
        if (c.token_mac === '') return denied('joining this network needs its token');
        if (opts.token !== undefined && tokenMacOf(opts.token, c.prev, c.node_id, c.key) !== c.token_mac) return denied('wrong token for this network');
      }
      next.invites.delete(c.node_id);
      next.members.set(c.node_id, { nodeId: c.node_id, key: c.key, role: 'member', sinceSeq: c.seq });
      return ok(next);
    }
    case 'decline': {
      const invite = cur.invites.get(c.node_id);
      if (!invite || invite.key !== c.key) return err('not_found', `node ${c.node_id} has no invite to decline`);
      next.invites.delete(c.node_id);
      return ok(next);
    }
    case 'leave':
      if (!target || target.key !== c.key) return err('not_found', `node ${c.node_id} is not a member`);
      if (target.role === 'owner') return err('invalid_argument', 'the owner cannot leave: delete the network, or promote another owner first');
      next.members.delete(c.node_id);
      return ok(next);
    case 'remove':
      if (!isAdmin) return denied(`node ${c.by} (${role}) cannot kick: owner or admin only`);
      if (!target) {
        // Withdrawing an invite is a remove of a non-member.
        if (cur.invites.has(c.node_id)) {
          next.invites.delete(c.node_id);
          return ok(next);
        }
        return err('not_found', `node ${c.node_id} is not a member`);
      }
      if (target.role === 'owner') return denied('the owner cannot be kicked');
      if (target.role === 'admin' && role !== 'owner') return denied('only the owner can kick an admin');
      next.members.delete(c.node_id);
      return ok(next);
    case 'promote':
    case 'demote': {
      if (role !== 'owner') return denied(`node ${c.by} (${role}) cannot ${c.op}: owner only`);
      if (!target) return err('not_found', `node ${c.node_id} is not a member`);
      if (target.role === 'owner') return err('invalid_argument', 'the owner keeps its role');
      next.members.set(c.node_id, { ...target, role: c.op === 'promote' ? 'admin' : 'member' });
      return ok(next);
    }
    case 'rename': {
      if (role !== 'owner') return denied(`node ${c.by} (${role}) cannot rename: owner only`);
      const problem = networkNameProblem(c.name);
      if (problem) return err('invalid_argument', problem);
      next.name = c.name;
      return ok(next);
    }
    case 'policy':
      // Text checks (does it parse?) are the setter's and each enforcer's (src/policy); the chain checks who signed and the hash.
      if (!isAdmin) return denied(`node ${c.by} (${role}) cannot set the policy: owner or admin only`);
      if (policySha256Of(c.policy ?? '') !== c.policy_sha256) return err('invalid_argument', 'policy change: policy_sha256 does not match the policy text');
      next.policy = c.policy ?? '';
      next.policySha256 = c.policy_sha256;
      next.policySeq = c.seq;
      return ok(next);
    case 'rekey': {
      // The member rotated its key (rotate-key): the old key signed this, naming the new one.
      const nk = fromBase64(c.key);
      if (!nk || nk.length !== 32) return err('invalid_argument', 'rekey needs the new base64 Ed25519 key');
      if (c.key === target!.key) return err('invalid_argument', 'rekey names the key the member already has');
      next.members.set(c.node_id, { ...target!, key: c.key });
      return ok(next);
    }
    case 'tags':
      if (!isAdmin) return denied(`node ${c.by} (${role}) cannot set tags: owner or admin only`);
      if (!target) return err('not_found', `node ${c.node_id} is not a member`);
      next.members.set(c.node_id, { ...target, tags: [...(c.tags ?? [])] });
      return ok(next);
    case 'hostname': {
      // Self-signed with the key the chain holds for this member (a node id another key registered is not it).
      if (!target || target.key !== c.key) return err('not_found', `node ${c.node_id} is not a member`);
      const name = c.hostname ?? '';
      if (name !== '') {
        for (const m of cur.members.values()) {
          if (m.nodeId !== c.node_id && m.hostname === name) return err('already_exists', `hostname ${name} is taken in this network by node ${m.nodeId}`);
        }
      }
      const { hostname: _old, ...rest } = target;
      next.members.set(c.node_id, name === '' ? rest : { ...rest, hostname: name });
      return ok(next);
    }
    case 'delete':
      if (role !== 'owner') return denied(`node ${c.by} (${role}) cannot delete: owner only`);
      next.isDeleted = true;
      next.members = new Map();
      next.invites = new Map();
      return ok(next);
  }
}

function isRoleAdmin(r: NetworkRole): boolean {
  return r === 'owner' || r === 'admin';
}

/** Verify a whole chain from its genesis. The first failing change's error, with its seq in detail. */
export function foldNetworkChain(changes: readonly NetworkChange[], opts: FoldOptions = {}): Result<NetworkView> {
  if (changes.length === 0) return err('invalid_argument', 'empty network chain');
  let view: NetworkView | null = null;
  for (const c of changes) {
    const r: Result<NetworkView> = applyNetworkChange(view, c, opts);
    if (!r.ok) return err(r.error.code, `change ${c.seq}: ${r.error.message}`, { detail: { seq: c.seq } });
    view = r.value;
  }
  return ok(view!);
}
