// Beacon UDP messages of the original (pkg/beacon/server.go, pkg/protocol/header.go BeaconMsg*):
//   0x01 discover        [u32 node]                               node → beacon (also keeps the mapping alive)
//   0x02 discover reply  [u8 iplen (4|16)][ip][u16 port]           beacon → node: observed endpoint
//   0x03 punch request   [u32 from][u32 to]                        node → beacon
//   0x04 punch command   [u8 iplen][ip][u16 port]                  beacon → both nodes: send PILP there
//   0x05 relay           [u32 sender][u32 dest][opaque frame]      node → beacon (or beacon → peer beacon)
//   0x06 relay deliver   [u32 sender][opaque frame]                beacon → dest node
//   0x07 sync (gossip)   [u32 beacon id][u16 count][u32 node]*     beacon ↔ beacon
// Ours (issue 16), beacon → beacon of another rendezvous replica only (never to or from a node):
//   0x08 replica relay   [u32 origin beacon][u32 sender][u32 dest][u64 counter][16 MAC][opaque frame]
//        MAC = HMAC-SHA256(replica relay key, every byte but the MAC), truncated; the key is derived from the
//        replicas' shared beacon secret (replicaRelayKey). The counter is µs since the epoch, increasing per
//        origin beacon; the receiver keeps a window of recent counters per origin (src/registry/beacon.ts).
// As in the original, trailing bytes after the fixed part are ignored (the Go code only checks minimum length).
//
// Our extension (issue 10), invisible to the original because it only appends: discover, punch request and
// punch command may carry an authentication trailer
//   [u64 counter][16 bytes: HMAC-SHA256(token, every byte before them), truncated]
// with the node's 32-byte beacon token (handed out in its signed register_ok, src/registry/beacon-authority.ts).
// The counter is microseconds since the epoch, strictly increasing per sender (the receiver refuses anything
// not above the last it accepted, and anything far from its clock). A punch command so authenticated also
// names the other node of the punch ([u32 peer] before the trailer), so the recipient can check it asked for
// that punch or trusts that peer. Relay (0x05) carries no trailer: an original beacon would forward it to the
// peer as part of the frame; the beacon instead accepts a relay frame only from the endpoint that the node's
// last authenticated discover proved (src/registry/beacon.ts).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { err, ok, type Result } from '../core/result.js';
import { isU16, isU32, readU16, readU32, writeU16, writeU32 } from './bytes.js';
import { formatIp, parseIp } from './endpoint.js';

export { formatIp, parseIp };

/** Length of the per-node beacon token (src/registry/beacon-authority.ts) in bytes. */
export const BEACON_TOKEN_BYTES = 32;

export const BEACON_DISCOVER = 0x01;
export const BEACON_DISCOVER_REPLY = 0x02;
export const BEACON_PUNCH_REQUEST = 0x03;
export const BEACON_PUNCH_COMMAND = 0x04;
export const BEACON_RELAY = 0x05;
export const BEACON_RELAY_DELIVER = 0x06;
export const BEACON_SYNC = 0x07;
export const BEACON_REPLICA_RELAY = 0x08;

/** Bytes a 0x08 replica relay adds in front of the frame (type, origin, sender, dest, counter, MAC). */
export const REPLICA_RELAY_HEADER_BYTES = 1 + 4 + 4 + 4 + 8 + 16;

/** Bytes of the MAC in the authentication trailer (HMAC-SHA256 truncated, as RFC 2104 §5 allows). */
export const BEACON_MAC_BYTES = 16;
/** The authentication trailer: [u64 counter][MAC]. */
export const BEACON_AUTH_TRAILER_BYTES = 8 + BEACON_MAC_BYTES;

/** The authentication trailer of a decoded message (views alias the datagram). */
export interface BeaconAuth {
  /** Sender's counter: µs since the epoch, strictly increasing per sender. */
  counter: number;
  /** Every byte the MAC covers (the message up to and including the counter). */
  signed: Uint8Array;
  mac: Uint8Array;
}

/** An endpoint in a beacon message. `ip` is dotted IPv4 or 8-group IPv6 text. */
export interface BeaconEndpoint {
  ip: string;
  port: number;
}

/**
 * `auth` is present only on a datagram that carries the trailer (encode ignores it: see
 * encodeAuthenticatedBeaconMessage). `peerNodeId` of a punch command is the other node of the punch (ours).
 */
export type BeaconMessage =
  | { kind: 'discover'; nodeId: number; auth?: BeaconAuth }
  | ({ kind: 'discover_reply' } & BeaconEndpoint)
  | { kind: 'punch_request'; fromNodeId: number; toNodeId: number; auth?: BeaconAuth }
  | ({ kind: 'punch_command'; peerNodeId?: number; auth?: BeaconAuth } & BeaconEndpoint)
  | { kind: 'relay'; senderNodeId: number; destNodeId: number; payload: Uint8Array }
  | { kind: 'relay_deliver'; senderNodeId: number; payload: Uint8Array }
  | { kind: 'sync'; beaconId: number; nodeIds: number[] }
  | ReplicaRelayMessage;

/**
 * A relay frame one replica's beacon hands to another's (0x08). Decoding does not check the MAC:
 * verifyReplicaRelay does. Views alias the datagram.
 */
export interface ReplicaRelayMessage {
  kind: 'replica_relay';
  originBeaconId: number;
  senderNodeId: number;
  destNodeId: number;
  counter: number;
  mac: Uint8Array;
  payload: Uint8Array;
  /** The bytes before the MAC (the MAC covers them, then the payload). */
  head: Uint8Array;
}

/** Beacon messages use one-byte types below 0x10 (tunnel frames start with the ASCII magic `PIL…`). */
export function isBeaconMessage(buf: Uint8Array): boolean {
  return buf.length >= 1 && buf[0]! >= BEACON_DISCOVER && buf[0]! <= BEACON_SYNC;
}

/** Decode one datagram. Never throws; `payload` views alias `buf`. */
export function decodeBeaconMessage(buf: Uint8Array): Result<BeaconMessage> {
  if (buf.length < 1) return err('invalid_argument', 'empty beacon message');
  const body = buf.subarray(1);
  switch (buf[0]) {
    case BEACON_DISCOVER: {
      if (body.length < 4) return short('discover');
      const auth = trailerAt(buf, 5);
      return ok(auth ? { kind: 'discover', nodeId: readU32(body, 0), auth } : { kind: 'discover', nodeId: readU32(body, 0) });
    }
    case BEACON_DISCOVER_REPLY:
      return mapOk(decodeEndpoint(body), (ep) => ({ kind: 'discover_reply', ...ep }));
    case BEACON_PUNCH_COMMAND: {
      const ep = decodeEndpoint(body);
      if (!ep.ok) return ep;
      const fixed = 1 + 1 + body[0]! + 2;
      const auth = trailerAt(buf, fixed + 4);
      if (!auth) return ok({ kind: 'punch_command', ...ep.value });
      return ok({ kind: 'punch_command', ...ep.value, peerNodeId: readU32(buf, fixed), auth });
    }
    case BEACON_PUNCH_REQUEST: {
      if (body.length < 8) return short('punch request');
      const auth = trailerAt(buf, 9);
      const m = { kind: 'punch_request' as const, fromNodeId: readU32(body, 0), toNodeId: readU32(body, 4) };
      return ok(auth ? { ...m, auth } : m);
    }
    case BEACON_RELAY:
      if (body.length < 8) return short('relay');
      return ok({
        kind: 'relay',
        senderNodeId: readU32(body, 0),
        destNodeId: readU32(body, 4),
        payload: body.subarray(8),
      });
    case BEACON_RELAY_DELIVER:
      if (body.length < 4) return short('relay deliver');
      return ok({ kind: 'relay_deliver', senderNodeId: readU32(body, 0), payload: body.subarray(4) });
    case BEACON_SYNC: {
      if (body.length < 6) return short('sync');
      const count = readU16(body, 4);
      if (body.length < 6 + 4 * count) return short('sync');
      const nodeIds = new Array<number>(count);
      for (let i = 0; i < count; i++) nodeIds[i] = readU32(body, 6 + 4 * i);
      return ok({ kind: 'sync', beaconId: readU32(body, 0), nodeIds });
    }
    case BEACON_REPLICA_RELAY: {
      if (buf.length < REPLICA_RELAY_HEADER_BYTES) return short('replica relay');
      const hi = readU32(buf, 13);
      if (hi > 0x1f_ffff) return err('invalid_argument', 'beacon replica relay counter out of range');
      return ok({
        kind: 'replica_relay',
        originBeaconId: readU32(buf, 1),
        senderNodeId: readU32(buf, 5),
        destNodeId: readU32(buf, 9),
        counter: hi * 0x1_0000_0000 + readU32(buf, 17),
        head: buf.subarray(0, 21),
        mac: buf.subarray(21, REPLICA_RELAY_HEADER_BYTES),
        payload: buf.subarray(REPLICA_RELAY_HEADER_BYTES),
      });
    }
    default:
      return err('invalid_argument', `unknown beacon message type 0x${buf[0]!.toString(16).padStart(2, '0')}`);
  }
}

/** Encode one message. invalid_argument for out-of-range ids/ports or an unparseable IP. */
export function encodeBeaconMessage(msg: BeaconMessage): Result<Uint8Array> {
  switch (msg.kind) {
    case 'discover': {
      if (!isU32(msg.nodeId)) return bad('nodeId');
      const out = new Uint8Array(5);
      out[0] = BEACON_DISCOVER;
      writeU32(out, 1, msg.nodeId);
      return ok(out);
    }
    case 'discover_reply':
    case 'punch_command': {
      const ip = parseIp(msg.ip);
      if (!ip) return bad('ip');
      if (!isU16(msg.port)) return bad('port');
      const out = new Uint8Array(2 + ip.length + 2);
      out[0] = msg.kind === 'discover_reply' ? BEACON_DISCOVER_REPLY : BEACON_PUNCH_COMMAND;
      out[1] = ip.length;
      out.set(ip, 2);
      writeU16(out, 2 + ip.length, msg.port);
      return ok(out);
    }
    case 'punch_request': {
      if (!isU32(msg.fromNodeId) || !isU32(msg.toNodeId)) return bad('node id');
      const out = new Uint8Array(9);
      out[0] = BEACON_PUNCH_REQUEST;
      writeU32(out, 1, msg.fromNodeId);
      writeU32(out, 5, msg.toNodeId);
      return ok(out);
    }
    case 'relay': {
      if (!isU32(msg.senderNodeId) || !isU32(msg.destNodeId)) return bad('node id');
      const out = new Uint8Array(RELAY_HEADER_BYTES + msg.payload.length);
      writeRelayFrame(out, msg.senderNodeId, msg.destNodeId, msg.payload);
      return ok(out);
    }
    case 'relay_deliver': {
      if (!isU32(msg.senderNodeId)) return bad('node id');
      const out = new Uint8Array(RELAY_DELIVER_HEADER_BYTES + msg.payload.length);
      writeRelayDeliver(out, msg.senderNodeId, msg.payload);
      return ok(out);
    }
    case 'sync': {
      if (!isU32(msg.beaconId)) return bad('beaconId');
      if (msg.nodeIds.length > 0xffff) return bad('nodeIds (max 65535)');
      const out = new Uint8Array(7 + 4 * msg.nodeIds.length);
      out[0] = BEACON_SYNC;
      writeU32(out, 1, msg.beaconId);
      writeU16(out, 5, msg.nodeIds.length);
      for (let i = 0; i < msg.nodeIds.length; i++) {
        const id = msg.nodeIds[i];
        if (!isU32(id)) return bad('nodeIds');
        writeU32(out, 7 + 4 * i, id);
      }
      return ok(out);
    }
    case 'replica_relay':
      // Needs the key: encodeReplicaRelay.
      return bad('kind (replica relay is encoded with encodeReplicaRelay)');
    default:
      return err('invalid_argument', 'unknown beacon message kind');
  }
}

/**
 * Encode a discover, punch request or punch command with the authentication trailer (MAC with `token`,
 * `counter` strictly above the sender's previous one). A punch command must name `peerNodeId`.
 * invalid_argument for other kinds, a token that is not BEACON_TOKEN_BYTES long, or a bad counter.
 */
export function encodeAuthenticatedBeaconMessage(msg: BeaconMessage, token: Uint8Array, counter: number): Result<Uint8Array> {
  if (msg.kind !== 'discover' && msg.kind !== 'punch_request' && msg.kind !== 'punch_command') return bad('kind (only discover and punch messages are authenticated)');
  if (token.length !== BEACON_TOKEN_BYTES) return bad('token');
  if (!Number.isSafeInteger(counter) || counter < 0) return bad('counter');
  if (msg.kind === 'punch_command' && !isU32(msg.peerNodeId)) return bad('peerNodeId');
  const fixed = encodeBeaconMessage(msg);
  if (!fixed.ok) return fixed;
  const extra = msg.kind === 'punch_command' ? 4 : 0;
  const out = new Uint8Array(fixed.value.length + extra + BEACON_AUTH_TRAILER_BYTES);
  out.set(fixed.value, 0);
  let off = fixed.value.length;
  if (msg.kind === 'punch_command') writeU32(out, off, msg.peerNodeId!);
  off += extra;
  writeU32(out, off, Math.floor(counter / 0x1_0000_0000));
  writeU32(out, off + 4, counter % 0x1_0000_0000);
  out.set(beaconMac(token, out.subarray(0, off + 8)), off + 8);
  return ok(out);
}

/** True when `auth`'s MAC is `token`'s (constant time). A wrong-length token never verifies. */
export function verifyBeaconAuth(auth: BeaconAuth, token: Uint8Array): boolean {
  if (token.length !== BEACON_TOKEN_BYTES || auth.mac.length !== BEACON_MAC_BYTES) return false;
  return timingSafeEqual(beaconMac(token, auth.signed), auth.mac);
}

/** Label of the replica relay key's derivation (kept apart from the beacon tokens derived from the same secret). */
const REPLICA_RELAY_KEY_LABEL = 'pilot-node beacon replica relay v1';

/** The replica relay MAC key from the replicas' shared beacon secret (--beacon-secret-file). */
export function replicaRelayKey(beaconSecret: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', beaconSecret).update(REPLICA_RELAY_KEY_LABEL, 'utf8').digest());
}

/**
 * A 0x08 replica relay datagram, MACed with `key` (replicaRelayKey). invalid_argument for non-u32 ids, a bad
 * counter, or a datagram over 65,507 bytes (the UDP maximum).
 */
export function encodeReplicaRelay(
  key: Uint8Array,
  m: { originBeaconId: number; senderNodeId: number; destNodeId: number; counter: number; payload: Uint8Array },
): Result<Uint8Array> {
  if (!isU32(m.originBeaconId) || !isU32(m.senderNodeId) || !isU32(m.destNodeId)) return bad('node or beacon id');
  if (!Number.isSafeInteger(m.counter) || m.counter < 0) return bad('counter');
  if (REPLICA_RELAY_HEADER_BYTES + m.payload.length > 65_507) return bad('length (over a UDP datagram)');
  const out = new Uint8Array(REPLICA_RELAY_HEADER_BYTES + m.payload.length);
  out[0] = BEACON_REPLICA_RELAY;
  writeU32(out, 1, m.originBeaconId);
  writeU32(out, 5, m.senderNodeId);
  writeU32(out, 9, m.destNodeId);
  writeU32(out, 13, Math.floor(m.counter / 0x1_0000_0000));
  writeU32(out, 17, m.counter % 0x1_0000_0000);
  out.set(m.payload, REPLICA_RELAY_HEADER_BYTES);
  out.set(replicaMac(key, out.subarray(0, 21), m.payload), 21);
  return ok(out);
}

/** True when the replica relay's MAC is `key`'s (constant time). */
export function verifyReplicaRelay(m: ReplicaRelayMessage, key: Uint8Array): boolean {
  if (m.mac.length !== BEACON_MAC_BYTES || m.head.length !== 21) return false;
  return timingSafeEqual(replicaMac(key, m.head, m.payload), m.mac);
}

function replicaMac(key: Uint8Array, head: Uint8Array, payload: Uint8Array): Uint8Array {
  return createHmac('sha256', key).update(head).update(payload).digest().subarray(0, BEACON_MAC_BYTES);
}

function beaconMac(token: Uint8Array, signed: Uint8Array): Uint8Array {
  return createHmac('sha256', token).update(signed).digest().subarray(0, BEACON_MAC_BYTES);
}

/**
 * The trailer when `buf` is exactly `fixedLen` + trailer bytes long; null otherwise (a bare original message,
 * or one with other trailing bytes, which the original ignores and so do we). Counters beyond 2^53 are refused.
 */
function trailerAt(buf: Uint8Array, fixedLen: number): BeaconAuth | null {
  if (buf.length !== fixedLen + BEACON_AUTH_TRAILER_BYTES) return null;
  const hi = readU32(buf, fixedLen);
  if (hi > 0x1f_ffff) return null;
  const counter = hi * 0x1_0000_0000 + readU32(buf, fixedLen + 4);
  return { counter, signed: buf.subarray(0, fixedLen + 8), mac: buf.subarray(fixedLen + 8) };
}

function mapOk<T, U>(r: Result<T>, f: (v: T) => U): Result<U> {
  return r.ok ? ok(f(r.value)) : r;
}

// ---- Relay framing: the one implementation (nodes, the beacon, src/nat all use these) ----
// A tunnel frame F for node `dest` leaves the node's socket 0 as 0x05 relay [u32 sender][u32 dest][F]; the beacon
// forwards it as 0x06 relay_deliver [u32 sender][F] to dest's observed endpoint. The beacon forwards only frames
// from the endpoint it observed for `sender`, so relay frames leave the socket that sends discover (socket 0).

/** Bytes a 0x05 relay adds in front of a tunnel frame (type + sender + dest). Size tunnel plaintexts for it. */
export const RELAY_HEADER_BYTES = 9;
/** Bytes a 0x06 relay_deliver adds in front of the frame (type + sender). */
export const RELAY_DELIVER_HEADER_BYTES = 5;

/**
 * The 0x05 relay header at `out[off..off+9)`, for a frame the caller writes (or seals in place) right after it.
 * No checks: the caller guarantees room and u32 ids.
 */
export function writeRelayHeader(out: Uint8Array, off: number, senderNodeId: number, destNodeId: number): void {
  out[off] = BEACON_RELAY;
  writeU32(out, off + 1, senderNodeId >>> 0);
  writeU32(out, off + 5, destNodeId >>> 0);
}

/**
 * Relay deliver written in place, for the hot path: `out` receives [0x06][sender][payload].
 * Returns the byte count. The caller sizes `out` (5 + payload.length).
 */
export function writeRelayDeliver(out: Uint8Array, senderNodeId: number, payload: Uint8Array): number {
  out[0] = BEACON_RELAY_DELIVER;
  writeU32(out, 1, senderNodeId >>> 0);
  out.set(payload, RELAY_DELIVER_HEADER_BYTES);
  return RELAY_DELIVER_HEADER_BYTES + payload.length;
}

/**
 * Relay written in place, for the hot path: `out` receives [0x05][sender][dest][payload]. Returns the byte
 * count. The caller sizes `out` (9 + payload.length).
 */
export function writeRelayFrame(out: Uint8Array, senderNodeId: number, destNodeId: number, payload: Uint8Array): number {
  writeRelayHeader(out, 0, senderNodeId, destNodeId);
  out.set(payload, RELAY_HEADER_BYTES);
  return RELAY_HEADER_BYTES + payload.length;
}

/** 0x05 relay datagram carrying `frame` (a PNI1/PNR1/PND1 tunnel frame); invalid_argument for non-u32 ids. */
export function wrapRelay(senderNodeId: number, destNodeId: number, frame: Uint8Array): Result<Uint8Array> {
  return encodeBeaconMessage({ kind: 'relay', senderNodeId, destNodeId, payload: frame });
}

/** A 0x06 relay_deliver datagram → sender and inner frame (a view into `buf`); null for anything else. */
export function unwrapRelayDeliver(buf: Uint8Array): { senderNodeId: number; frame: Uint8Array } | null {
  const m = decodeBeaconMessage(buf);
  if (!m.ok || m.value.kind !== 'relay_deliver') return null;
  return { senderNodeId: m.value.senderNodeId, frame: m.value.payload };
}

function decodeEndpoint(body: Uint8Array): Result<BeaconEndpoint> {
  if (body.length < 1) return short('endpoint');
  const ipLen = body[0]!;
  if (ipLen !== 4 && ipLen !== 16) return err('invalid_argument', `beacon endpoint has ip length ${ipLen}`);
  if (body.length < 1 + ipLen + 2) return short('endpoint');
  return ok({ ip: formatIp(body.subarray(1, 1 + ipLen)), port: readU16(body, 1 + ipLen) });
}

function short(what: string): Result<never> {
  return err('invalid_argument', `beacon ${what} message too short`);
}

function bad(what: string): Result<never> {
  return err('invalid_argument', `beacon message has an invalid ${what}`);
}
