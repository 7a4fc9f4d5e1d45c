// The two suites a peer's streams and datagrams can go through, as the connection table sees them: how a
// suite's segments name their connection (demultiplexing), how a connection of that suite is opened and
// accepted, what answers a SYN nobody takes, and which session carries the bytes. The table holds connections
// of either suite side by side; the suite is the peer's (chosen when the connection is created).
//   noise: our transport (transport/connection.ts) in Noise sessions (tunnel manager); connection id demuxes.
//   v0.5:  the original's transport (transport/legacy-connection.ts) in PILS sessions (peers/legacy-suite.ts);
//          (local port, remote port) demuxes, as in the original.
//   self:  our transport with no session at all: a node talking to itself (`connect <own hostname> 7`), like
//          localhost. Both ends live in this one table, so the demux key also names the end (see loopbackStreams).
import { err, ok, type Result } from '../../core/result.js';
import type { Micros } from '../../core/clock.js';
import type { Rng } from '../../core/rng.js';
import { Connection, type ConnectionOptions } from '../../transport/connection.js';
import { LegacyConnection, legacyRstFor, type LegacyConnectionOptions } from '../../transport/legacy-connection.js';
import type { StreamConnection } from '../../transport/stream-connection.js';
import {
  DATAGRAM_HEADER_BYTES,
  MAX_PATH_SEGMENT_BYTES,
  encodeDatagramInto,
  encodeResetFor,
  peekSegmentHeader,
  KIND_STREAM,
  type SegmentPeek,
} from '../../wire/segment.js';
import { decodePacket, writePacketUnchecked, FLAG_ACK, FLAG_RST, FLAG_SYN, PACKET_HEADER_SIZE, PROTO_STREAM } from '../../wire/header.js';
import { LEGACY_MSS } from '../../wire/legacy-control.js';
import { readU16 } from '../../wire/bytes.js';

export type SuiteName = 'noise' | 'v0.5' | 'self';

/** The demultiplexing fields of one stream segment. */
export interface SegmentHead {
  /** Names the connection among the peer's connections of this suite. */
  key: number;
  localPort: number;
  remotePort: number;
  /** A SYN without ACK or RST: may open a connection. */
  opens: boolean;
}

export interface StreamSuite {
  readonly name: SuiteName;
  /** Largest segment a connection of this suite writes in pollTransmit. */
  readonly maxSegmentBytes: number;
  /** The head of one of this suite's stream segments; null for anything else. The result is reused. */
  peek(segment: Uint8Array): SegmentHead | null;
  connect(peer: number, localPort: number, remotePort: number, nowUs: Micros): { conn: StreamConnection; key: number };
  accept(peer: number, segment: Uint8Array, nowUs: Micros): Result<StreamConnection>;
  /** Write the RST answering a SYN nobody takes into `buf` (with `reason`'s trailer where the suite has one); 0 for none. */
  resetFor(segment: Uint8Array, buf: Uint8Array, reason?: Uint8Array): number;
  /** Seal and send one segment through the peer's session of this suite. */
  send(peer: number, segment: Uint8Array, nowUs: Micros): Result<void>;
  /** One unreliable datagram through the peer's session. Errors: invalid_argument (too large), connection_failed. */
  sendDatagram(peer: number, srcPort: number, dstPort: number, data: Uint8Array, nowUs: Micros): Result<void>;
}

export interface NoiseStreamsDeps {
  /** Seal and queue one plaintext in the peer's Noise session. */
  send(peer: number, plaintext: Uint8Array, nowUs: Micros): Result<void>;
  /** The largest plaintext the peer's current session carries (0: no session). */
  maxPlaintextBytes(peer: number): number;
  /** The largest stream segment the peer's current path carries (path MTU discovery); absent: 1420. */
  pathSegmentBytes?(peer: number): number;
  /** Connection ids. */
  rng: Rng;
  options?: ConnectionOptions;
}

/** Our transport's largest segment (a path MTU discovered on loopback); connections send what their path carries. */
const NOISE_TX_BYTES = MAX_PATH_SEGMENT_BYTES;

export function noiseStreams(deps: NoiseStreamsDeps): StreamSuite {
  const peekBuf: SegmentPeek = { flags: 0, srcPort: 0, dstPort: 0, connId: 0, isSyn: false, isRst: false };
  const head: SegmentHead = { key: 0, localPort: 0, remotePort: 0, opens: false };
  const dgramBuf = new Uint8Array(NOISE_TX_BYTES);
  const options = deps.options ?? {};
  return {
    name: 'noise',
    maxSegmentBytes: NOISE_TX_BYTES,
    peek(segment) {
      if (segment[0] !== KIND_STREAM) return null;
      const p = peekSegmentHeader(segment, peekBuf);
      if (!p.ok) return null;
      head.key = p.value.connId;
      head.localPort = p.value.dstPort;
      head.remotePort = p.value.srcPort;
      head.opens = p.value.isSyn && !p.value.isRst;
      return head;
    },
    connect(peer, localPort, remotePort, nowUs) {
      const connId = 1 + deps.rng.int(0xfffffffe);
      const conn = Connection.connect({ ...options, localPort, remotePort, connId }, nowUs);
      if (deps.pathSegmentBytes) conn.setPathSegmentBytes(deps.pathSegmentBytes(peer));
      return { conn, key: connId };
    },
    accept(peer, segment, nowUs) {
      const a = Connection.accept(segment, options, nowUs);
      if (a.ok && deps.pathSegmentBytes) a.value.setPathSegmentBytes(deps.pathSegmentBytes(peer));
      return a;
    },
    resetFor: (segment, buf, reason) => encodeResetFor(segment, buf, reason),
    send: (peer, segment, nowUs) => deps.send(peer, segment, nowUs),
    sendDatagram(peer, srcPort, dstPort, data, nowUs) {
      if (data.length + DATAGRAM_HEADER_BYTES > deps.maxPlaintextBytes(peer)) {
        return err('invalid_argument', `datagram of ${data.length} bytes is too large`, { hint: 'datagrams carry at most 1415 bytes; use a stream' });
      }
      const n = encodeDatagramInto(srcPort, dstPort, data, dgramBuf);
      if (n < 0) return err('invalid_argument', 'datagram port out of range');
      return deps.send(peer, dgramBuf.subarray(0, n), nowUs);
    },
  };
}

/** What the v0.5 streams need of the v0.5 suite (peers/legacy-suite.ts). */
export interface LegacySessions {
  /** Our node id (the inner header names both ends). */
  nodeId(): number;
  /** Seal and send one inner packet (34-byte header + payload) to the node. */
  sendPlaintext(nodeId: number, inner: Uint8Array, nowUs: Micros): Result<void>;
  sendDatagram(nodeId: number, srcPort: number, dstPort: number, data: Uint8Array): Result<void>;
}

const tupleKey = (localPort: number, remotePort: number): number => localPort * 0x10000 + remotePort;

export function legacyStreams(sessions: LegacySessions, options: LegacyConnectionOptions = {}): StreamSuite {
  const head: SegmentHead = { key: 0, localPort: 0, remotePort: 0, opens: false };
  return {
    name: 'v0.5',
    maxSegmentBytes: PACKET_HEADER_SIZE + LEGACY_MSS,
    peek(segment) {
      // The inner header: flags in the low nibble of byte 0, protocol at 1, ports at 16 and 18. The checksum is
      // the connection's to verify (LegacyConnection.handle decodes).
      if (segment.length < PACKET_HEADER_SIZE || segment[1] !== PROTO_STREAM) return null;
      head.localPort = readU16(segment, 18);
      head.remotePort = readU16(segment, 16);
      head.key = tupleKey(head.localPort, head.remotePort);
      head.opens = (segment[0]! & (FLAG_SYN | FLAG_ACK | FLAG_RST)) === FLAG_SYN;
      return head;
    },
    connect(peer, localPort, remotePort, nowUs) {
      const conn = LegacyConnection.connect(
        { local: { network: 0, node: sessions.nodeId() }, remote: { network: 0, node: peer }, localPort, remotePort },
        options,
        nowUs,
      );
      return { conn, key: tupleKey(localPort, remotePort) };
    },
    accept(_peer, segment, nowUs) {
      const p = decodePacket(segment);
      if (!p.ok) return p;
      return LegacyConnection.accept(p.value, { network: p.value.dst.network, node: sessions.nodeId() }, options, nowUs);
    },
    resetFor(segment, buf) {
      const p = decodePacket(segment);
      if (!p.ok || (p.value.flags & FLAG_RST) !== 0) return 0;
      return writePacketUnchecked(legacyRstFor(p.value, { network: p.value.dst.network, node: sessions.nodeId() }), buf, 0);
    },
    send: (peer, segment, nowUs) => sessions.sendPlaintext(peer, segment, nowUs),
    sendDatagram: (peer, srcPort, dstPort, data) => sessions.sendDatagram(peer, srcPort, dstPort, data),
  };
}

/** What the loopback suite needs of the node: hand segments and datagrams back to it, as from itself. */
export interface LoopbackDeps {
  /** Deliver `segment` (a copy the callee may keep) to the table as a segment from this node, later in this turn. */
  deliverSegment(segment: Uint8Array): void;
  /** Deliver one datagram (a copy) to this node's datagram port `dstPort`, from `srcPort`. */
  deliverDatagram(srcPort: number, dstPort: number, data: Uint8Array): void;
  /** Connection ids. */
  rng: Rng;
  options?: ConnectionOptions;
}

/** Datagrams to ourselves never leave the process; the IPC channel's own cap is the limit. */
const LOOPBACK_MAX_DATAGRAM_BYTES = 65_535;

/**
 * The `self` suite: the node's own transport (transport/connection.ts) between two ends in this table, with no
 * tunnel. A connection id alone cannot tell the dialing end from the accepting one (both see the same id), so the
 * key is (low 16 bits of the connection id, the port the segment is addressed to): the dialer's segments go to the
 * service port, the acceptor's to the dialer's ephemeral port. connect() hands out ids whose low 16 bits count
 * up, so two live loopback connections to one port never share a key.
 */
export function loopbackStreams(deps: LoopbackDeps): StreamSuite {
  const peekBuf: SegmentPeek = { flags: 0, srcPort: 0, dstPort: 0, connId: 0, isSyn: false, isRst: false };
  const head: SegmentHead = { key: 0, localPort: 0, remotePort: 0, opens: false };
  const options = deps.options ?? {};
  const keyOf = (connId: number, localPort: number): number => (connId & 0xffff) * 0x10000 + localPort;
  let counter = 0;
  return {
    name: 'self',
    maxSegmentBytes: NOISE_TX_BYTES,
    peek(segment) {
      if (segment[0] !== KIND_STREAM) return null;
      const p = peekSegmentHeader(segment, peekBuf);
      if (!p.ok) return null;
      head.key = keyOf(p.value.connId, p.value.dstPort);
      head.localPort = p.value.dstPort;
      head.remotePort = p.value.srcPort;
      head.opens = p.value.isSyn && !p.value.isRst;
      return head;
    },
    connect(_peer, localPort, remotePort, nowUs) {
      counter = (counter + 1) & 0xffff;
      const connId = (1 + deps.rng.int(0xffff)) * 0x10000 + counter;
      return { conn: Connection.connect({ ...options, localPort, remotePort, connId }, nowUs), key: keyOf(connId, localPort) };
    },
    accept: (_peer, segment, nowUs) => Connection.accept(segment, options, nowUs),
    resetFor: (segment, buf, reason) => encodeResetFor(segment, buf, reason),
    send(_peer, segment) {
      deps.deliverSegment(segment.slice());
      return ok();
    },
    sendDatagram(_peer, srcPort, dstPort, data) {
      if (data.length > LOOPBACK_MAX_DATAGRAM_BYTES) {
        return err('invalid_argument', `datagram of ${data.length} bytes is too large`, { hint: `datagrams carry at most ${LOOPBACK_MAX_DATAGRAM_BYTES} bytes; use a stream` });
      }
      deps.deliverDatagram(srcPort, dstPort, data.slice());
      return ok();
    },
  };
}
