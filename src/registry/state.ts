// The registry's durable state and the only way to change it: `applyChange`. Every request turns into a list
// of full-value Changes (set this key to that value), so replaying a log over a snapshot that already holds
// them is harmless, and the write-ahead log (store.ts) stores exactly what the server applied.
import type { NetworkChange } from '../crypto/network-chain.js';

import { decodeRotationStatement, type RotationStatement } from '../wire/registry-messages.js';

export interface NodeRecord {
  id: number;
  /** base64 Ed25519 public key, as received. */
  publicKey: string;
  owner: string;
  /** The endpoint announced at register: TCP source IP + the client's listen port (original's sanitizeListenAddr). */
  realAddr: string;
  /** The address the node claimed for itself when it is a private (LAN) one: peers behind the same NAT use it. */
  lanAddr?: string;
  isPublic: boolean;
  hostname: string;
  tags: string[];
  poloScore: number;
  taskExec: boolean;
  /**
   * True when the node was registered by an original client (register without our signature): bare,
   * replayable signatures are accepted for it and it gets no beacon token. False once a registration was
   * freshly signed by the key (the first one binds key ↔ node id): from then on only fresh signatures change
   * it. Records persisted before this field existed load as true — nothing ever proved their key.
   */
  isLegacy: boolean;
}

export interface HandshakeRequestRecord {
  fromNodeId: number;
  justification: string;
  timestampSec: number;
}

export interface HandshakeResponseRecord {
  fromNodeId: number;
  accept: boolean;
  timestampSec: number;
}

/**
 * A node's key history (issue 14), kept by node id and never removed by deregister/reap: its recovery key (public,
 * learned at its first signed registration that carried one) and the rotation statements it made, oldest first
 * (src/crypto/key-rotation.ts; the newest MAX_KEPT_ROTATIONS). A key rotated out stays refused after a reap.
 */
export interface KeyHistoryRecord {
  recoveryKey: string | null;
  rotations: RotationStatement[];
}

/** A custom network (issue 15): its id and its signed membership chain (src/crypto/network-chain.ts). */
export interface NetworkRecord {
  id: number;
  changes: NetworkChange[];
}

export interface RegistryState {
  nextNodeId: number;
  nodes: Map<number, NodeRecord>;
  /** base64 public key → node id; kept after deregister/reap so a key re-gets its id (as the original). */
  pubKeyIndex: Map<string, number>;
  /** hostname → node id; derived from nodes, maintained by applyChange. */
  hostnameIndex: Map<string, number>;
  /**
   * Directed trust edges `a>b` = "a trusts b": b may resolve a's endpoint. The original keeps one undirected
   * pair that either side can create alone (report_trust), which lets anyone resolve a private node.
   */
  trust: Set<string>;
  /** `from>to`: from asked to to for a handshake; an accept by `to` then also makes from trust to. */
  handshakeIntents: Set<string>;
  /**
   * base64 public keys that once registered with a fresh signature. Kept after deregister/reap, like
   * pubKeyIndex: an unsigned (original-style) register of such a key is refused even while its node is gone.
   */
  provenKeys: Set<string>;
  inbox: Map<number, HandshakeRequestRecord[]>;
  responses: Map<number, HandshakeResponseRecord[]>;
  /** Key histories by node id (issue 14). */
  keyHistory: Map<number, KeyHistoryRecord>;
  /** Retired key → the node it was rotated out of; derived from keyHistory by applyChange. */
  retiredKeys: Map<string, number>;
  /** Custom networks by id (1..65535); the chain is the truth, src/registry/networks.ts derives the rest. */
  networks: Map<number, NetworkRecord>;
}

export type Change =
  | { k: 'next'; v: number }
  | { k: 'node'; id: number; v: NodeRecord | null }
  | { k: 'pubkey'; key: string; id: number | null }
  | { k: 'trust'; edge: string; v: boolean }
  | { k: 'intent'; edge: string; v: boolean }
  | { k: 'proven'; key: string; v: boolean }
  | { k: 'inbox'; id: number; v: HandshakeRequestRecord[] }
  | { k: 'responses'; id: number; v: HandshakeResponseRecord[] }
  | { k: 'keys'; id: number; v: KeyHistoryRecord | null }
  | { k: 'network'; id: number; v: NetworkRecord | null };

export function emptyState(): RegistryState {
  return {
    nextNodeId: 1, // 0 is reserved, as in the original
    nodes: new Map(),
    pubKeyIndex: new Map(),
    hostnameIndex: new Map(),
    trust: new Set(),
    handshakeIntents: new Set(),
    provenKeys: new Set(),
    inbox: new Map(),
    responses: new Map(),
    keyHistory: new Map(),
    retiredKeys: new Map(),
    networks: new Map(),
  };
}

export function trustEdge(truster: number, trusted: number): string {
  return `${truster}>${trusted}`;
}

export function applyChange(s: RegistryState, c: Change): void {
  switch (c.k) {
    case 'next':
      s.nextNodeId = c.v;
      return;
    case 'node': {
      const old = s.nodes.get(c.id);
      if (old && old.hostname && s.hostnameIndex.get(old.hostname) === c.id) s.hostnameIndex.delete(old.hostname);
      if (c.v) {
        // Older snapshots and logs lack isLegacy: such a node never proved its key.
        s.nodes.set(c.id, typeof c.v.isLegacy === 'boolean' ? c.v : { ...c.v, isLegacy: true });
        if (c.v.hostname) s.hostnameIndex.set(c.v.hostname, c.id);
      } else {
        s.nodes.delete(c.id);
      }
      return;
    }
    case 'pubkey':
      if (c.id === null) s.pubKeyIndex.delete(c.key);
      else s.pubKeyIndex.set(c.key, c.id);
      return;
    case 'trust':
      if (c.v) s.trust.add(c.edge);
      else s.trust.delete(c.edge);
      return;
    case 'intent':
      if (c.v) s.handshakeIntents.add(c.edge);
      else s.handshakeIntents.delete(c.edge);
      return;
    case 'proven':
      if (c.v) s.provenKeys.add(c.key);
      else s.provenKeys.delete(c.key);
      return;
    case 'inbox':
      if (c.v.length === 0) s.inbox.delete(c.id);
      else s.inbox.set(c.id, c.v);
      return;
    case 'responses':
      if (c.v.length === 0) s.responses.delete(c.id);
      else s.responses.set(c.id, c.v);
      return;
    case 'keys': {
      const old = s.keyHistory.get(c.id);
      for (const r of old?.rotations ?? []) if (s.retiredKeys.get(r.old_public_key) === c.id) s.retiredKeys.delete(r.old_public_key);
      if (c.v) {
        s.keyHistory.set(c.id, c.v);
        for (const r of c.v.rotations) if (r.old_public_key !== '') s.retiredKeys.set(r.old_public_key, c.id);
      } else s.keyHistory.delete(c.id);
      return;
    }
    case 'network':
      if (c.v) s.networks.set(c.id, c.v);
      else s.networks.delete(c.id);
      return;
  }
}

// ---- Snapshot form (JSON) ----

export const SNAPSHOT_VERSION = 1;

export interface SnapshotJson {
  version: number;
  /** Last log sequence number the snapshot includes. */
  seq: number;
  next_node_id: number;
  nodes: NodeRecord[];
  pub_keys: [string, number][];
  trust: string[];
  intents: string[];
  /** Absent in snapshots written before it existed. */
  proven_keys?: string[];
  inbox: [number, HandshakeRequestRecord[]][];
  responses: [number, HandshakeResponseRecord[]][];
  /** Absent in snapshots written before issue 14. */
  key_history?: [number, KeyHistoryRecord][];
  /** Absent in snapshots written before networks existed. */
  networks?: NetworkRecord[];
}

export function stateToJson(s: RegistryState, seq: number): SnapshotJson {
  return {
    version: SNAPSHOT_VERSION,
    seq,
    next_node_id: s.nextNodeId,
    nodes: [...s.nodes.values()],
    pub_keys: [...s.pubKeyIndex.entries()],
    trust: [...s.trust],
    intents: [...s.handshakeIntents],
    proven_keys: [...s.provenKeys],
    inbox: [...s.inbox.entries()],
    responses: [...s.responses.entries()],
    key_history: [...s.keyHistory.entries()],
    networks: [...s.networks.values()],
  };
}

/** Rebuild state from a parsed snapshot; a message naming the first problem when the shape is wrong. */
export function stateFromJson(j: unknown): { state: RegistryState; seq: number } | string {
  if (typeof j !== 'object' || j === null) return 'snapshot is not an object';
  const o = j as Partial<SnapshotJson>;
  if (o.version !== SNAPSHOT_VERSION) return `unsupported snapshot version ${String(o.version)}`;
  if (!isUint(o.seq) || !isUint(o.next_node_id)) return 'snapshot seq/next_node_id missing';
  if (![o.nodes, o.pub_keys, o.trust, o.intents, o.inbox, o.responses].every(Array.isArray)) {
    return 'snapshot tables missing';
  }
  const s = emptyState();
  s.nextNodeId = o.next_node_id;
  for (const n of o.nodes!) {
    if (!isNodeRecord(n)) return 'snapshot has a malformed node';
    applyChange(s, { k: 'node', id: n.id, v: n });
  }
  for (const e of o.pub_keys!) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || !isUint(e[1])) return 'snapshot has a malformed key entry';
    s.pubKeyIndex.set(e[0], e[1]);
  }
  for (const t of o.trust!) if (typeof t === 'string') s.trust.add(t);
  for (const t of o.intents!) if (typeof t === 'string') s.handshakeIntents.add(t);
  if (o.proven_keys !== undefined && !Array.isArray(o.proven_keys)) return 'snapshot has malformed proven keys';
  for (const k of o.proven_keys ?? []) if (typeof k === 'string') s.provenKeys.add(k);
  for (const e of o.inbox!) {
    if (!Array.isArray(e) || !isUint(e[0]) || !Array.isArray(e[1])) return 'snapshot has a malformed inbox';
    s.inbox.set(e[0], e[1] as HandshakeRequestRecord[]);
  }
  for (const e of o.responses!) {
    if (!Array.isArray(e) || !isUint(e[0]) || !Array.isArray(e[1])) return 'snapshot has malformed responses';
    s.responses.set(e[0], e[1] as HandshakeResponseRecord[]);
  }
  if (o.key_history !== undefined && !Array.isArray(o.key_history)) return 'snapshot has a malformed key history';
  for (const e of o.key_history ?? []) {
    if (!Array.isArray(e) || !isUint(e[0]) || !isKeyHistory(e[1])) return 'snapshot has a malformed key history';
    applyChange(s, { k: 'keys', id: e[0], v: e[1] });
  }
  if (o.networks !== undefined && !Array.isArray(o.networks)) return 'snapshot has malformed networks';
  for (const n of o.networks ?? []) {
    if (!isNetworkRecord(n)) return 'snapshot has a malformed network';
    s.networks.set(n.id, n);
  }
  return { state: s, seq: o.seq };
}

/** Structural check of one logged change (the log is checksummed; this guards against version skew). */
export function isChange(c: unknown): c is Change {
  if (typeof c !== 'object' || c === null) return false;
  const o = c as Record<string, unknown>;
  switch (o.k) {
    case 'next':
      return isUint(o.v);
    case 'node':
      return isUint(o.id) && (o.v === null || isNodeRecord(o.v));
    case 'pubkey':
      return typeof o.key === 'string' && (o.id === null || isUint(o.id));
    case 'trust':
    case 'intent':
      return typeof o.edge === 'string' && typeof o.v === 'boolean';
    case 'proven':
      return typeof o.key === 'string' && typeof o.v === 'boolean';
    case 'inbox':
    case 'responses':
      return isUint(o.id) && Array.isArray(o.v);
    case 'keys':
      return isUint(o.id) && (o.v === null || isKeyHistory(o.v));
    case 'network':
      return isUint(o.id) && (o.v === null || isNetworkRecord(o.v));
    default:
      return false;
  }
}

function isKeyHistory(v: unknown): v is KeyHistoryRecord {
  if (typeof v !== 'object' || v === null) return false;
  const h = v as Record<string, unknown>;
  return (
    (h.recoveryKey === null || typeof h.recoveryKey === 'string') &&
    Array.isArray(h.rotations) &&
    h.rotations.every((r) => decodeRotationStatement(r) !== null)
  );
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

function isNodeRecord(v: unknown): v is NodeRecord {
  if (typeof v !== 'object' || v === null) return false;
  const n = v as Record<string, unknown>;
  return (
    isUint(n.id) &&
    typeof n.publicKey === 'string' &&
    typeof n.owner === 'string' &&
    typeof n.realAddr === 'string' &&
    typeof n.isPublic === 'boolean' &&
    typeof n.hostname === 'string' &&
    Array.isArray(n.tags) &&
    typeof n.poloScore === 'number' &&
    typeof n.taskExec === 'boolean' &&
    (n.isLegacy === undefined || typeof n.isLegacy === 'boolean')
  );
}

/** Structural check only: members re-verify every signature (src/crypto/network-chain.ts) when they fold a chain. */
function isNetworkRecord(v: unknown): v is NetworkRecord {
  if (typeof v !== 'object' || v === null) return false;
  const n = v as Record<string, unknown>;
  return isUint(n.id) && Array.isArray(n.changes) && n.changes.every((c) => typeof c === 'object' && c !== null);
}
