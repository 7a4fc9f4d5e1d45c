// Registry messages as typed values (the JSON objects inside src/wire/registry-frame.ts's frames), shared by the
// daemon's client (src/node/registry-client.ts) and the server (src/registry/server.ts). One `decodeX` per kind:
// total on hostile input (any JSON object in, a Result out, never a throw), and as lenient as the original's
// Go readers (`msg["k"].(string)` with `_`): a missing or mistyped field reads as its zero value, so what an
// original peer sends decodes as the original would read it. Endpoint texts are parsed here too (the
// `*Endpoint` fields, src/wire/endpoint.ts), so nothing downstream reads a field as a loose string.
import { err, ok, type Result } from '../core/result.js';
import { isErrorCode, type ErrorCode } from '../core/errors.js';
import { parseReachableEndpoint, type UdpEndpoint } from './endpoint.js';
import type { RegistryMessage } from './registry-frame.js';

// ---- field readers (JSON numbers arrive as doubles, as in Go's map[string]interface{}) ----

/** A u32 field; 0 when missing, negative, fractional or out of range (the original's jsonUint32 yields 0). */
export function fieldU32(msg: RegistryMessage, key: string): number {
  const v = msg[key];
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : 0;
}

/** A string field; '' when missing or not a string. */
export function fieldString(msg: RegistryMessage, key: string): string {
  const v = msg[key];
  return typeof v === 'string' ? v : '';
}

/** A boolean field; false when missing or not a boolean (Go's `msg[k].(bool)` with `_`). */
export function fieldBool(msg: RegistryMessage, key: string): boolean {
  return msg[key] === true;
}

/** A finite number field, or `dflt`. */
export function fieldNumber(msg: RegistryMessage, key: string, dflt = 0): number {
  const v = msg[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : dflt;
}

/** A string field when present as a string, else undefined. */
export function fieldOptString(msg: RegistryMessage, key: string): string | undefined {
  const v = msg[key];
  return typeof v === 'string' ? v : undefined;
}

/** The strings of an array field (others dropped); undefined when the field is not an array. */
export function fieldStrings(msg: RegistryMessage, key: string): string[] | undefined {
  const v = msg[key];
  return Array.isArray(v) ? v.filter((t): t is string => typeof t === 'string') : undefined;
}

/** The objects of an array field (others dropped); [] when the field is not an array. */
function fieldObjects(msg: RegistryMessage, key: string): RegistryMessage[] {
  const v = msg[key];
  if (!Array.isArray(v)) return [];
  return v.filter((e): e is RegistryMessage => typeof e === 'object' && e !== null && !Array.isArray(e));
}

function optEndpoint(msg: RegistryMessage, key: string): UdpEndpoint | undefined {
  const s = fieldOptString(msg, key);
  return s === undefined ? undefined : (parseReachableEndpoint(s) ?? undefined);
}

/** The `type` of a message ('' when missing). */
export function messageType(msg: RegistryMessage): string {
  return fieldString(msg, 'type');
}

/** Pushed frames (`push_*`) are not replies: the client routes them to listeners. */
export function isPush(msg: RegistryMessage): boolean {
  return messageType(msg).startsWith('push_');
}

// ---- signatures carried by requests ----

/** The signature fields of a request: bare (`signature` only) or fresh (`ts` + `nonce` too). */
export interface SignedFields {
  /** base64; '' when absent. */
  signature: string;
  /** Present (any JSON value) — the server tells "no freshness" from "bad freshness". */
  hasTs: boolean;
  hasNonce: boolean;
  /** Unix seconds when `ts` is an integer, else null. */
  ts: number | null;
  /** base64 text; '' when absent. */
  nonce: string;
}

export function decodeSignedFields(msg: RegistryMessage): SignedFields {
  const ts = msg.ts;
  return {
    signature: fieldString(msg, 'signature'),
    hasTs: ts !== undefined,
    hasNonce: msg.nonce !== undefined,
    ts: typeof ts === 'number' && Number.isInteger(ts) ? ts : null,
    nonce: fieldString(msg, 'nonce'),
  };
}

// ---- replies (server → client) ----

export interface ErrorReply {
  /** The original's text. */
  error: string;
  /** Our registry's stable code, when it is one of ours. */
  code?: ErrorCode;
  /** Our registry's clock (unix seconds), sent with a stale-ts refusal. */
  serverTimeSec?: number;
}

export function isErrorReply(msg: RegistryMessage): boolean {
  return messageType(msg) === 'error';
}

export function decodeErrorReply(msg: RegistryMessage): Result<ErrorReply> {
  const out: ErrorReply = { error: fieldString(msg, 'error') };
  if (isErrorCode(msg.code)) out.code = msg.code;
  if (typeof msg.server_time === 'number' && Number.isFinite(msg.server_time)) out.serverTimeSec = msg.server_time;
  return ok(out);
}

export interface RegisterOk {
  nodeId: number;
  address: string;
  publicKey: string;
  hostname?: string;
  /** base64 text as sent (the client checks its length). */
  beaconToken?: string;
  /** Our registry's extensions; [] from an original registry. */
  extensions: string[];
  hostnameError?: string;
}

export function decodeRegisterOk(msg: RegistryMessage): Result<RegisterOk> {
  const out: RegisterOk = {
    nodeId: fieldU32(msg, 'node_id'),
    address: fieldString(msg, 'address'),
    publicKey: fieldString(msg, 'public_key'),
    extensions: fieldStrings(msg, 'extensions') ?? [],
  };
  const hostname = fieldOptString(msg, 'hostname');
  if (hostname !== undefined) out.hostname = hostname;
  const token = fieldOptString(msg, 'beacon_token');
  if (token !== undefined) out.beaconToken = token;
  const hostnameError = fieldOptString(msg, 'hostname_error');
  if (hostnameError !== undefined) out.hostnameError = hostnameError;
  return ok(out);
}

export type PeerSuite = 'v0.5' | 'noise';

export interface LookupOk {
  nodeId: number;
  address: string;
  publicKey: string;
  isPublic: boolean;
  hostname?: string;
  tags?: string[];
  /** Only for public nodes: the registered endpoint text, and parsed. */
  realAddr?: string;
  realEndpoint?: UdpEndpoint;
  poloScore: number;
  taskExec: boolean;
  /** Our registry's extension; absent (or unknown) from an original registry. */
  suite?: PeerSuite;
  /** Our registry (issue 14), to requesters that may know the node: its rotation statements, oldest first. */
  keyRotations?: RotationStatement[];
  /** Our registry (issue 14): the node's recovery public key (base64), when it registered one. */
  recoveryKey?: string;
}

export function decodeLookupOk(msg: RegistryMessage): Result<LookupOk> {
  const out: LookupOk = {
    nodeId: fieldU32(msg, 'node_id'),
    address: fieldString(msg, 'address'),
    publicKey: fieldString(msg, 'public_key'),
    isPublic: fieldBool(msg, 'public'),
    poloScore: fieldNumber(msg, 'polo_score'),
    taskExec: fieldBool(msg, 'task_exec'),
  };
  const hostname = fieldOptString(msg, 'hostname');
  if (hostname !== undefined) out.hostname = hostname;
  const tags = fieldStrings(msg, 'tags');
  if (tags !== undefined) out.tags = tags;
  const realAddr = fieldOptString(msg, 'real_addr');
  if (realAddr !== undefined) out.realAddr = realAddr;
  const realEndpoint = optEndpoint(msg, 'real_addr');
  if (realEndpoint) out.realEndpoint = realEndpoint;
  if (msg.suite === 'v0.5' || msg.suite === 'noise') out.suite = msg.suite;
  if (Array.isArray(msg.key_rotations)) {
    out.keyRotations = msg.key_rotations.map(decodeRotationStatement).filter((x): x is RotationStatement => x !== null);
  }
  const recoveryKey = fieldOptString(msg, 'recovery_key');
  if (recoveryKey !== undefined) out.recoveryKey = recoveryKey;
  return ok(out);
}

export interface ResolveOk {
  nodeId: number;
  /** Endpoint the node registered (TCP source IP + its listen port), as sent. */
  realAddr: string;
  /** The same three parsed (usable IPv4 endpoints only; wildcard → loopback). */
  realEndpoint?: UdpEndpoint;
  /** Endpoint the beacon observed for the node's tunnel socket (our registry only). */
  observedAddr?: string;
  observedEndpoint?: UdpEndpoint;
  /** The node's own LAN address, for peers behind the same NAT (our registry only). */
  lanAddr?: string;
  lanEndpoint?: UdpEndpoint;
}

export function decodeResolveOk(msg: RegistryMessage): Result<ResolveOk> {
  const out: ResolveOk = { nodeId: fieldU32(msg, 'node_id'), realAddr: fieldString(msg, 'real_addr') };
  const real = optEndpoint(msg, 'real_addr');
  if (real) out.realEndpoint = real;
  const observedAddr = fieldOptString(msg, 'observed_addr');
  if (observedAddr !== undefined) out.observedAddr = observedAddr;
  const observed = optEndpoint(msg, 'observed_addr');
  if (observed) out.observedEndpoint = observed;
  const lanAddr = fieldOptString(msg, 'lan_addr');
  if (lanAddr !== undefined) out.lanAddr = lanAddr;
  const lan = optEndpoint(msg, 'lan_addr');
  if (lan) out.lanEndpoint = lan;
  return ok(out);
}

export interface ResolveHostnameOk {
  nodeId: number;
  address: string;
  hostname: string;
  isPublic: boolean;
}

export function decodeResolveHostnameOk(msg: RegistryMessage): Result<ResolveHostnameOk> {
  return ok({
    nodeId: fieldU32(msg, 'node_id'),
    address: fieldString(msg, 'address'),
    hostname: fieldString(msg, 'hostname'),
    isPublic: fieldBool(msg, 'public'),
  });
}

export function decodeSetHostnameOk(msg: RegistryMessage): Result<{ hostname: string }> {
  return ok({ hostname: fieldString(msg, 'hostname') });
}

export function decodeSetTagsOk(msg: RegistryMessage): Result<{ tags: string[] }> {
  return ok({ tags: fieldStrings(msg, 'tags') ?? [] });
}

export function decodeSetVisibilityOk(msg: RegistryMessage): Result<{ isPublic: boolean }> {
  return ok({ isPublic: fieldString(msg, 'visibility') === 'public' });
}

/** heartbeat_ok: the registry's clock (unix seconds; 0 when absent). */
export function decodeHeartbeatOk(msg: RegistryMessage): Result<{ serverTimeSec: number }> {
  return ok({ serverTimeSec: fieldNumber(msg, 'time') });
}

export interface HandshakeRequestItem {
  fromNodeId: number;
  justification: string;
  timestampSec: number;
  fromHostname?: string;
  fromPublicKey?: string;
}

export interface HandshakeResponseItem {
  fromNodeId: number;
  accept: boolean;
  timestampSec: number;
}

function decodeRequestItem(o: RegistryMessage): HandshakeRequestItem {
  const item: HandshakeRequestItem = {
    fromNodeId: fieldU32(o, 'from_node_id'),
    justification: fieldString(o, 'justification'),
    timestampSec: fieldU32(o, 'timestamp'),
  };
  const h = fieldOptString(o, 'from_hostname');
  if (h !== undefined) item.fromHostname = h;
  const k = fieldOptString(o, 'from_public_key');
  if (k !== undefined) item.fromPublicKey = k;
  return item;
}

export function decodePollHandshakesOk(msg: RegistryMessage): Result<{ requests: HandshakeRequestItem[]; responses: HandshakeResponseItem[] }> {
  return ok({
    requests: fieldObjects(msg, 'requests').map((o) => ({
      fromNodeId: fieldU32(o, 'from_node_id'),
      justification: fieldString(o, 'justification'),
      timestampSec: fieldU32(o, 'timestamp'),
    })),
    responses: fieldObjects(msg, 'responses').map((o) => ({
      fromNodeId: fieldU32(o, 'from_node_id'),
      accept: fieldBool(o, 'accept'),
      timestampSec: fieldU32(o, 'timestamp'),
    })),
  });
}

export interface PunchOk {
  nodeA: number;
  nodeAAddr: string;
  nodeB: number;
  nodeBAddr: string;
  nodeAObservedAddr?: string;
  nodeBObservedAddr?: string;
}

export function decodePunchOk(msg: RegistryMessage): Result<PunchOk> {
  const out: PunchOk = {
    nodeA: fieldU32(msg, 'node_a'),
    nodeAAddr: fieldString(msg, 'node_a_addr'),
    nodeB: fieldU32(msg, 'node_b'),
    nodeBAddr: fieldString(msg, 'node_b_addr'),
  };
  const a = fieldOptString(msg, 'node_a_observed_addr');
  if (a !== undefined) out.nodeAObservedAddr = a;
  const b = fieldOptString(msg, 'node_b_observed_addr');
  if (b !== undefined) out.nodeBObservedAddr = b;
  return ok(out);
}

// ---- key rotation statements (issue 14; signed and verified in src/crypto/key-rotation.ts) ----

/** A rotation statement as it travels (rotate_key request fields, push_key_rotated, lookup_ok.key_rotations). */
export interface RotationStatement {
  node_id: number;
  /** The key rotated away from (base64). Covered by `signature` (by-key form: it is the signer); informational in the recovery form. */
  old_public_key: string;
  new_public_key: string;
  /** Unix seconds. */
  ts: number;
  /** base64 of 8..64 random bytes. */
  nonce: string;
  /** By OLD; absent in the recovery form. */
  signature?: string;
  /** By NEW (always: nobody rotates onto a key they do not hold). */
  new_key_signature: string;
  /** By the recovery key; only in the recovery form. */
  recovery_signature?: string;
}

/** A statement from JSON (any input; null unless every field has its type). Total. */
export function decodeRotationStatement(v: unknown): RotationStatement | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const isStr = (x: unknown): x is string => typeof x === 'string';
  if (typeof o.node_id !== 'number' || !Number.isInteger(o.node_id) || o.node_id < 0 || o.node_id > 0xffffffff) return null;
  if (typeof o.ts !== 'number' || !Number.isInteger(o.ts)) return null;
  if (!isStr(o.old_public_key) || !isStr(o.new_public_key) || !isStr(o.nonce) || !isStr(o.new_key_signature)) return null;
  if (o.signature !== undefined && !isStr(o.signature)) return null;
  if (o.recovery_signature !== undefined && !isStr(o.recovery_signature)) return null;
  const s: RotationStatement = {
    node_id: o.node_id,
    old_public_key: o.old_public_key,
    new_public_key: o.new_public_key,
    ts: o.ts,
    nonce: o.nonce,
    new_key_signature: o.new_key_signature,
  };
  if (isStr(o.signature)) s.signature = o.signature;
  if (isStr(o.recovery_signature)) s.recovery_signature = o.recovery_signature;
  return s;
}

// ---- pushes (server → subscribed client) ----

export type RegistryPush =
  | { kind: 'handshake_request'; request: HandshakeRequestItem }
  | { kind: 'handshake_response'; response: HandshakeResponseItem }
  | { kind: 'trust_revoked'; byNodeId: number; timestampSec: number }
  /** Our registry (issue 14): a node we trust (or that trusts us) rotated its key; verify before believing it. */
  | { kind: 'key_rotated'; statement: RotationStatement };

/** A `push_*` frame; invalid_argument for an unknown push type (the client ignores those). */
export function decodePush(msg: RegistryMessage): Result<RegistryPush> {
  const type = messageType(msg);
  switch (type) {
    case 'push_handshake_request':
      return ok({ kind: 'handshake_request', request: decodeRequestItem(msg) });
    case 'push_handshake_response':
      return ok({
        kind: 'handshake_response',
        response: {
          fromNodeId: fieldU32(msg, 'from_node_id') || fieldU32(msg, 'peer_id'),
          accept: fieldBool(msg, 'accept'),
          timestampSec: fieldU32(msg, 'timestamp'),
        },
      });
    case 'push_trust_revoked':
      return ok({ kind: 'trust_revoked', byNodeId: fieldU32(msg, 'node_id'), timestampSec: fieldU32(msg, 'timestamp') });
    case 'push_key_rotated': {
      const statement = decodeRotationStatement(msg.statement);
      return statement ? ok({ kind: 'key_rotated', statement }) : err('invalid_argument', 'push_key_rotated without a well-formed statement');
    }
    default:
      return err('invalid_argument', `unknown registry push ${JSON.stringify(type).slice(0, 80)}`);
  }
}

// ---- requests (client → server) ----

/**
 * A request as the server reads it: every field any request kind carries, typed, with the original's zero
 * values for what is missing or mistyped (so an original client's request reads as the original server reads
 * it). `type` says which fields matter; the `has*` flags keep "absent" apart where the protocol tells them apart.
 */
export interface RegistryRequest {
  type: string;
  nodeId: number;
  /** 0 when absent; `hasRequesterId` tells an identified request (requester_id present) from an anonymous one. */
  requesterId: number;
  hasRequesterId: boolean;
  peerId: number;
  fromNodeId: number;
  toNodeId: number;
  nodeA: number;
  nodeB: number;
  networkId: number;
  hostname: string;
  publicKey: string;
  newPublicKey: string;
  newKeySignature: string;
  /** rotate_key (issue 14): the key rotated away from, as the signer believes it ('' when absent). */
  oldPublicKey: string;
  /** rotate_key by recovery key (issue 14): signature by the node's recovery key; '' when absent. */
  recoverySignature: string;
  /** register (issue 14): the node's recovery public key, base64; '' when absent. */
  recoveryKey: string;
  /** The announced listen address, as sent (the server sanitises it against the TCP source). */
  listenAddr: string;
  owner: string;
  justification: string;
  isPublic: boolean;
  enabled: boolean;
  accept: boolean;
  /** set_tags' raw elements ([] when not an array): the server validates each with its own messages. */
  tags: unknown[];
  /** update_polo_score's delta; null when missing or not a finite number. */
  delta: number | null;
  /** heartbeat's optional self-report (our extension, for the rendezvous dashboard); null when absent or malformed. */
  report: NodeReport | null;
  signed: SignedFields & { hasSignature: boolean };
}

/**
 * What a node says about itself in its heartbeats (`report` object): its NAT type, how many of its peers it
 * reaches directly and through the relay, and its transport. Figures only — the registry shows them on its
 * dashboard and decides nothing on them (they are not covered by the heartbeat's signature).
 */
export interface NodeReport {
  natType: string;
  peersDirect: number;
  peersRelayed: number;
  transport: 'udp' | 'wss' | null;
}

export type NodeReportWire = { nat_type: string; peers_direct: number; peers_relayed: number; transport?: 'udp' | 'wss' };

const NAT_TYPE_RE = /^[a-z][a-z0-9-]{0,31}$/;

/** The `report` field of a heartbeat; null when missing or not well formed (total). */
export function decodeNodeReport(v: unknown): NodeReport | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const m = v as RegistryMessage;
  const natType = fieldString(m, 'nat_type');
  if (!NAT_TYPE_RE.test(natType)) return null;
  const t = m.transport;
  return {
    natType,
    peersDirect: fieldU32(m, 'peers_direct'),
    peersRelayed: fieldU32(m, 'peers_relayed'),
    transport: t === 'udp' || t === 'wss' ? t : null,
  };
}

/** Any JSON object → the typed request (total: an object always decodes; only its `type` decides what is valid). */
export function decodeRegistryRequest(msg: RegistryMessage): Result<RegistryRequest> {
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return err('invalid_argument', 'registry request is not an object');
  const delta = msg.delta;
  return ok({
    type: messageType(msg),
    nodeId: fieldU32(msg, 'node_id'),
    requesterId: fieldU32(msg, 'requester_id'),
    hasRequesterId: msg.requester_id !== undefined,
    peerId: fieldU32(msg, 'peer_id'),
    fromNodeId: fieldU32(msg, 'from_node_id'),
    toNodeId: fieldU32(msg, 'to_node_id'),
    nodeA: fieldU32(msg, 'node_a'),
    nodeB: fieldU32(msg, 'node_b'),
    networkId: fieldU32(msg, 'network_id'),
    hostname: fieldString(msg, 'hostname'),
    publicKey: fieldString(msg, 'public_key'),
    newPublicKey: fieldString(msg, 'new_public_key'),
    newKeySignature: fieldString(msg, 'new_key_signature'),
    oldPublicKey: fieldString(msg, 'old_public_key'),
    recoverySignature: fieldString(msg, 'recovery_signature'),
    recoveryKey: fieldString(msg, 'recovery_key'),
    listenAddr: fieldString(msg, 'listen_addr'),
    owner: fieldString(msg, 'owner'),
    justification: fieldString(msg, 'justification'),
    isPublic: fieldBool(msg, 'public'),
    enabled: fieldBool(msg, 'enabled'),
    accept: fieldBool(msg, 'accept'),
    tags: Array.isArray(msg.tags) ? msg.tags : [],
    delta: typeof delta === 'number' && Number.isFinite(delta) ? delta : null,
    report: decodeNodeReport(msg.report),
    signed: { ...decodeSignedFields(msg), hasSignature: msg.signature !== undefined },
  });
}

// ---- wire shapes the server writes (the decoders above read them back) ----
// Type aliases (not interfaces) so they fit the server's `Record<string, unknown>` replies.

export type RegisterOkWire = {
  type: 'register_ok';
  node_id: number;
  network_id: number;
  address: string;
  public_key: string;
  hostname?: string;
  hostname_error?: string;
  extensions?: string[];
  beacon_token?: string;
};

export type ResolveOkWire = { type: 'resolve_ok'; node_id: number; real_addr: string; lan_addr?: string; observed_addr?: string };

export type PunchOkWire = {
  type: 'punch_ok';
  node_a: number;
  node_a_addr: string;
  node_b: number;
  node_b_addr: string;
  node_a_observed_addr?: string;
  node_b_observed_addr?: string;
};

export type PollHandshakesOkWire = {
  type: 'poll_handshakes_ok';
  requests: Array<{ from_node_id: number; justification: string; timestamp: number }>;
  responses: Array<{ from_node_id: number; accept: boolean; timestamp: number }>;
};

export type PushHandshakeRequestWire = {
  type: 'push_handshake_request';
  from_node_id: number;
  justification: string;
  timestamp: number;
  from_public_key: string;
  from_hostname?: string;
};

export type PushHandshakeResponseWire = { type: 'push_handshake_response'; peer_id: number; from_node_id: number; accept: boolean; timestamp: number };

export type PushKeyRotatedWire = { type: 'push_key_rotated'; node_id: number; statement: RotationStatement };

export type PushTrustRevokedWire = { type: 'push_trust_revoked'; node_id: number; peer_id: number; timestamp: number };

export type ErrorReplyWire = { type: 'error'; error: string; code: ErrorCode; server_time?: number };
