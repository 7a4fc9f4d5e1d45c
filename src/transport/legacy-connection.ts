// The original v0.5 stream transport (pkg/daemon/daemon.go handleStreamPacket, ports.go), sans-IO, with the
// same surface as ./connection.ts so the node's connection table can drive either. Segments are whole inner
// packets: the 34-byte header of src/wire/header.ts plus payload (the plaintext of a PILS frame).
//
// Facts of the original this follows (our own code, written from its behaviour):
// - seq/ack count bytes; SYN takes one number and the original's ISN is 0; the responder answers SYN with
//   SYN|ACK (ack = seq + 1) and is established at once — it never waits for the third ACK.
// - every data segment carries the ACK flag (data without it is dropped); at most 4096 bytes per segment.
// - the receiver delivers whole segments: in order when seq == expected, else an out-of-order copy keyed by the
//   exact seq (≤ 128). Retransmissions therefore keep the original segment boundaries.
// - SACK is an ACK payload "SACK" | u8 n | n × (u32 left, u32 right); such an ACK is never data to the original,
//   so a data segment that happens to start like one is split (its first byte goes alone).
// - window = free 4096-byte segments of the receiver's 512-slot queue; 0 means "no limit".
// - no half-close: FIN (seq = end of data) ends the whole connection; the peer answers FIN|ACK (ack = seq + 1)
//   and drops anything sent afterwards. The original never retransmits data after its FIN, nor the FIN itself.
//   So we send our FIN only once everything we sent is acknowledged, answer a bare FIN with FIN|ACK, never
//   answer a FIN|ACK (two originals would otherwise bounce FIN|ACKs), and give up on data missing before the
//   peer's FIN after finGraceUs.
// - retransmission: RTO per RFC 6298 (initial 1 s, min 200 ms, max 10 s, G = 10 ms; the shared RttEstimator
//   with those as its config), give up after 8 attempts with RST;
//   fast retransmit on 3 duplicate pure ACKs; delayed ACK after 2 segments or 40 ms, at once with SACK.
// - SYN retransmitted with backoff 1 s → 8 s, 6 retries (DialConnection); keepalive ACK after 30 s idle (the
//   original reaps connections idle for 120 s).
import type { Micros } from '../core/clock.js';
import { pilotError, type PilotError } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { PORT_PING, type VirtualAddr } from '../wire/address.js';
import {
  decodePacket,
  writePacketUnchecked,
  FLAG_ACK,
  FLAG_FIN,
  FLAG_RST,
  FLAG_SYN,
  PACKET_HEADER_SIZE,
  PROTO_CONTROL,
  PROTO_DATAGRAM,
  PROTO_STREAM,
  PROTOCOL_VERSION,
  type Packet,
} from '../wire/header.js';
import {
  decodeLegacySack,
  encodeLegacySack,
  isLegacySackPayload,
  legacyWindowBytes,
  legacyWindowFromFreeBytes,
  LEGACY_MAX_SACK_BLOCKS,
  LEGACY_MSS,
  LEGACY_RECV_QUEUE_SEGMENTS,
  type SackBlock,
} from '../wire/legacy-control.js';
import type { ConnectionStats, ConnEvent, ConnState } from './connection.js';
import { RttEstimator } from './rtt-estimator.js';
import type { StreamConnection } from './stream-connection.js';
import { unwrapU32 } from './sequence.js';

export interface LegacyConnectionOptions {
  /** Largest payload per segment (default and max 4096, the original's MSS; smaller avoids IP fragmentation). */
  maxSegmentBytes?: number;
  /** Receive buffer, bytes (default 512 × 4096, the original's queue). */
  recvBufferBytes?: number;
  /** Unsent + unacknowledged bytes the application may queue (default 4 MiB). */
  sendBufferBytes?: number;
  initialRtoUs?: Micros;
  minRtoUs?: Micros;
  maxRtoUs?: Micros;
  /** Transmissions of one segment before the connection is reset (default 8, as the original). */
  maxRetransmits?: number;
  /** SYN retransmissions before the dial fails (default 6). */
  maxSynRetries?: number;
  /** Close with `timeout` after this long without any packet (default 120 s, the original's idle reap). */
  idleTimeoutUs?: Micros;
  /** Send an ACK after this long without sending (default 30 s; 0 disables). */
  keepaliveIntervalUs?: Micros;
  /** Delayed ACK (default 40 ms). */
  delayedAckUs?: Micros;
  /** Hold a sub-segment write this long while data is unacknowledged (default 40 ms; 0 disables Nagle). */
  nagleDelayUs?: Micros;
  /** How long to wait for data missing before the peer's FIN (the original never resends it). Default 1 s. */
  finGraceUs?: Micros;
  /** Initial send sequence number (default 0, as the original). */
  initialSeq?: number;
}

export interface LegacyEndpoints {
  local: VirtualAddr;
  remote: VirtualAddr;
  localPort: number;
  remotePort: number;
}

const D = {
  maxSegmentBytes: LEGACY_MSS,
  recvBufferBytes: LEGACY_RECV_QUEUE_SEGMENTS * LEGACY_MSS,
  sendBufferBytes: 4 * 1024 * 1024,
  initialRtoUs: 1_000_000,
  minRtoUs: 200_000,
  maxRtoUs: 10_000_000,
  maxRetransmits: 8,
  maxSynRetries: 6,
  idleTimeoutUs: 120_000_000,
  keepaliveIntervalUs: 30_000_000,
  delayedAckUs: 40_000,
  nagleDelayUs: 40_000,
  finGraceUs: 1_000_000,
  initialSeq: 0,
};
const MAX_SYN_RTO_US = 8_000_000;
/** The original's clock granularity in its RTO (SRTT + max(10 ms, 4·RTTVAR)). */
const LEGACY_GRANULARITY_US = 10_000;
const MAX_OOO_SEGMENTS = 128;
const INITIAL_CWND_SEGMENTS = 10;
const MAX_CWND_BYTES = 8 * 1024 * 1024;
const DUP_ACK_THRESHOLD = 3;

const EV_CONNECTED: ConnEvent = Object.freeze({ kind: 'connected' });
const EV_READABLE: ConnEvent = Object.freeze({ kind: 'readable' });
const EV_WRITABLE: ConnEvent = Object.freeze({ kind: 'writable' });
const EV_FINISHED: ConnEvent = Object.freeze({ kind: 'finished' });

const enum Phase {
  SynSent,
  Established,
  Closed,
}

interface SentSegment {
  seq: number; // absolute (53-bit) sequence of the first byte
  data: Uint8Array;
  sentAtUs: Micros;
  attempts: number;
  isSacked: boolean;
  isLost: boolean; // queued for retransmission
}

const EMPTY: Uint8Array = new Uint8Array(0);

export class LegacyConnection implements StreamConnection {
  readonly local: VirtualAddr;
  readonly remote: VirtualAddr;
  readonly localPort: number;
  readonly remotePort: number;
  readonly isClient: boolean;
  private phase: Phase;
  private readonly o: typeof D;
  private readonly mss: number;

  // send side (absolute sequence numbers; wire = low 32 bits)
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  private readonly unsent: Uint8Array[] = [];
  private unsentHead = 0; // bytes of unsent[0] already taken
  private unsentBytes = 0;
  private readonly inflight: SentSegment[] = [];
  private peerWindowBytes: number | null = null;
  private cwndBytes: number;
  private ssthreshBytes = Number.MAX_SAFE_INTEGER;
  private isInRecovery = false;
  private recoveryPoint = 0;
  private dupAcks = 0;
  private readonly rtt: RttEstimator;
  private rtoUs: Micros;
  private rtoDeadlineUs = Infinity;
  private synRetries = 0;
  private isSynPending: boolean;
  private isSynAckPending = false;
  private isFinQueued = false;
  private isFinSent = false;
  private isFinAcked = false;
  private finRetries = 0;
  private nagleDeadlineUs = Infinity;
  private isWritableWanted = false;

  // receive side
  private rcvNxt = 0;
  private rcvStart = 0; // first data sequence number of the peer
  private readonly recvChunks: Uint8Array[] = [];
  private recvHead = 0;
  private recvBytes = 0;
  private readonly ooo = new Map<number, Uint8Array>();
  private oooBytes = 0;
  private peerFinSeq: number | null = null;
  private finGraceDeadlineUs = Infinity;
  private isFinAckPending = false;
  private isReadableSignalled = false;
  private isFinishedSignalled = false;
  private pendingAckSegments = 0;
  private ackDeadlineUs = Infinity;
  private isAckNow = false;
  private lastAdvertisedWindow = 0;

  // control
  private isRstPending = false;
  private lastReceivedUs: Micros;
  private lastSentUs: Micros;
  private readonly events: ConnEvent[] = [];
  private isClosedSignalled = false;

  // stats
  private bytesSent = 0;
  private retransmits = 0;
  private packetsSent = 0;
  private packetsReceived = 0;
  private packetsLost = 0;
  private rtoCount = 0;

  private constructor(ep: LegacyEndpoints, opts: LegacyConnectionOptions, isClient: boolean, nowUs: Micros) {
    this.o = { ...D, ...stripUndefined(opts) };
    this.mss = Math.max(1, Math.min(LEGACY_MSS, Math.floor(this.o.maxSegmentBytes)));
    this.local = { network: ep.local.network, node: ep.local.node };
    this.remote = { network: ep.remote.network, node: ep.remote.node };
    this.localPort = ep.localPort;
    this.remotePort = ep.remotePort;
    this.isClient = isClient;
    this.iss = this.o.initialSeq >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.cwndBytes = INITIAL_CWND_SEGMENTS * LEGACY_MSS;
    this.rtt = new RttEstimator({
      initialRtoUs: this.o.initialRtoUs,
      minRtoUs: this.o.minRtoUs,
      maxRtoUs: this.o.maxRtoUs,
      granularityUs: LEGACY_GRANULARITY_US,
      isZeroFirstSampleIgnored: true,
    });
    this.rtoUs = this.o.initialRtoUs;
    this.lastReceivedUs = nowUs;
    this.lastSentUs = nowUs;
    this.phase = isClient ? Phase.SynSent : Phase.Established;
    this.isSynPending = isClient;
  }

  /** Dial: the first pollTransmit sends the SYN. */
  static connect(ep: LegacyEndpoints, opts: LegacyConnectionOptions, nowUs: Micros): LegacyConnection {
    return new LegacyConnection(ep, opts, true, nowUs);
  }

  /**
   * Answer an original's SYN (a decoded stream packet with SYN and without ACK, addressed to `local`). The
   * connection is established at once ('connected' is queued), as the original's responder is; the first
   * pollTransmit sends the SYN|ACK. invalid_argument when `syn` is not such a packet.
   */
  static accept(syn: Packet, local: VirtualAddr, opts: LegacyConnectionOptions, nowUs: Micros): Result<LegacyConnection> {
    if (syn.protocol !== PROTO_STREAM || (syn.flags & (FLAG_SYN | FLAG_ACK | FLAG_RST)) !== FLAG_SYN) {
      return err('invalid_argument', 'not a SYN');
    }
    const c = new LegacyConnection({ local, remote: syn.src, localPort: syn.dstPort, remotePort: syn.srcPort }, opts, false, nowUs);
    c.rcvNxt = syn.seq + 1;
    c.rcvStart = c.rcvNxt;
    c.peerWindowBytes = legacyWindowBytes(syn.window);
    c.isSynAckPending = true;
    c.sndNxt = c.iss + 1; // our SYN|ACK takes one number
    c.sndUna = c.sndNxt; // and is never acknowledged by the original: count it as done
    c.packetsReceived = 1;
    c.events.push(EV_CONNECTED);
    return ok(c);
  }

  // ───────────────────────────── handlers ─────────────────────────────

  /** Feed one inner packet (34-byte header + payload, checksum verified here). Never throws. */
  handle(segment: Uint8Array, nowUs: Micros): Result<void> {
    const p = decodePacket(segment);
    if (!p.ok) return p;
    return this.handleDecoded(p.value, nowUs);
  }

  /** One decoded packet (payload views are copied when kept). */
  private handleDecoded(p: Packet, nowUs: Micros): Result<void> {
    if (p.protocol !== PROTO_STREAM) return err('invalid_argument', 'not a stream packet');
    if (p.srcPort !== this.remotePort || p.dstPort !== this.localPort || p.src.node !== this.remote.node) {
      return err('invalid_argument', 'packet belongs to another connection');
    }
    if (this.phase === Phase.Closed) return ok();
    this.lastReceivedUs = nowUs;
    this.packetsReceived++;
    const f = p.flags;
    if (f & FLAG_RST) {
      this.closeWith(pilotError('connection_failed', 'connection reset by the peer'));
      return ok();
    }
    if (f & FLAG_SYN) {
      if (f & FLAG_ACK) {
        if (this.phase === Phase.SynSent) {
          this.rcvNxt = p.seq + 1;
          this.rcvStart = this.rcvNxt;
          this.peerWindowBytes = legacyWindowBytes(p.window);
          this.sndUna = this.sndNxt; // the SYN
          this.rtoDeadlineUs = Infinity;
          this.rtoUs = this.o.initialRtoUs;
          this.phase = Phase.Established;
          this.isAckNow = true;
          this.events.push(EV_CONNECTED);
          if (this.unsentBytes < this.o.sendBufferBytes) this.events.push(EV_WRITABLE);
        } else {
          this.isAckNow = true; // our ACK was lost; harmless either way
        }
      } else if (!this.isClient) {
        this.isSynAckPending = true; // retransmitted SYN: our SYN|ACK was lost
      }
      return ok();
    }
    if (this.phase === Phase.SynSent) return ok();
    if (f & FLAG_FIN) {
      this.handleFin(p, nowUs);
      return ok();
    }
    if ((f & FLAG_ACK) === 0) return err('invalid_argument', 'data without ACK (the original drops it too)');
    this.peerWindowBytes = legacyWindowBytes(p.window);
    const isSack = isLegacySackPayload(p.payload);
    if (p.ack !== 0) this.processAck(p.ack, p.payload.length === 0, nowUs);
    if (isSack) {
      const b = decodeLegacySack(p.payload);
      if (b.ok) this.processSack(b.value);
    } else if (p.payload.length > 0) {
      this.processData(p.seq, p.payload, nowUs);
    }
    this.checkFinished(nowUs);
    return ok();
  }

  private handleFin(p: Packet, nowUs: Micros): void {
    if ((p.flags & FLAG_ACK) !== 0 && this.isFinSent && unwrapU32(p.ack, this.sndNxt) === this.sndNxt + 1) {
      this.isFinAcked = true;
      this.rtoDeadlineUs = Infinity;
    }
    if (this.peerFinSeq === null) {
      const s = unwrapU32(p.seq, this.rcvNxt);
      this.peerFinSeq = s < this.rcvNxt ? this.rcvNxt : s;
      if (this.rcvNxt < this.peerFinSeq) this.finGraceDeadlineUs = nowUs + this.o.finGraceUs;
    }
    // A bare FIN opens the close: answer FIN|ACK (also to a retransmission). Never answer a FIN|ACK.
    if ((p.flags & FLAG_ACK) === 0) this.isFinAckPending = true;
    // No half-close in the original: whatever we have not delivered is lost now.
    this.dropSendSide();
    this.checkFinished(nowUs);
  }

  private dropSendSide(): void {
    this.unsent.length = 0;
    this.unsentHead = 0;
    this.unsentBytes = 0;
    this.inflight.length = 0;
    if (this.isFinSent && !this.isFinAcked) this.isFinAcked = true;
    this.isFinQueued = true;
    if (!this.isFinAckPending) this.rtoDeadlineUs = Infinity;
  }

  private processAck(ackWire: number, isPure: boolean, nowUs: Micros): void {
    const ack = unwrapU32(ackWire, this.sndUna);
    const maxAck = this.sndNxt + (this.isFinSent ? 1 : 0);
    if (ack > maxAck || ack < this.sndUna) return;
    if (this.isFinSent && ack === this.sndNxt + 1) {
      this.isFinAcked = true;
      this.rtoDeadlineUs = Infinity;
    }
    if (ack === this.sndUna) {
      if (!isPure || this.inflight.length === 0) return;
      if (++this.dupAcks === DUP_ACK_THRESHOLD) {
        const first = this.inflight.find((s) => !s.isSacked);
        if (first && !first.isLost) {
          first.isLost = true;
          this.packetsLost++;
          this.enterRecovery();
        }
      }
      return;
    }
    const acked = Math.min(ack, this.sndNxt) - this.sndUna;
    this.sndUna = Math.min(ack, this.sndNxt);
    this.dupAcks = 0;
    let i = 0;
    for (; i < this.inflight.length; i++) {
      const s = this.inflight[i]!;
      const end = s.seq + s.data.length;
      if (end > this.sndUna) {
        if (s.seq < this.sndUna) {
          // A partial ack (never from the original, which acks whole segments): keep the rest.
          s.data = s.data.subarray(this.sndUna - s.seq);
          s.seq = this.sndUna;
        }
        break;
      }
      if (s.attempts === 1 && !s.isSacked) this.rtt.update(nowUs - s.sentAtUs);
    }
    this.inflight.splice(0, i);
    this.rtoUs = this.rtt.rtoUs();
    this.rtoDeadlineUs = this.inflight.length > 0 ? nowUs + this.rtoUs : Infinity;
    if (this.isInRecovery && this.sndUna >= this.recoveryPoint) this.isInRecovery = false;
    if (!this.isInRecovery) {
      if (this.cwndBytes < this.ssthreshBytes) this.cwndBytes += acked;
      else this.cwndBytes += Math.max(1, Math.floor((LEGACY_MSS * acked) / this.cwndBytes));
      if (this.cwndBytes > MAX_CWND_BYTES) this.cwndBytes = MAX_CWND_BYTES;
    }
    if (this.inflight.length === 0) this.nagleDeadlineUs = Infinity;
    if (this.isWritableWanted && this.unsentBytes + this.inflightBytes() < this.o.sendBufferBytes) {
      this.isWritableWanted = false;
      this.events.push(EV_WRITABLE);
    }
  }

  private processSack(blocks: SackBlock[]): void {
    let highestSacked = -1;
    for (const s of this.inflight) {
      const end = s.seq + s.data.length;
      for (const b of blocks) {
        const left = unwrapU32(b.left, this.sndUna);
        const right = unwrapU32(b.right, this.sndUna);
        if (s.seq >= left && end <= right) {
          s.isSacked = true;
          s.isLost = false;
          break;
        }
      }
      if (s.isSacked) highestSacked = Math.max(highestSacked, s.seq);
    }
    // RFC 6675-style loss: a hole with DUP_ACK_THRESHOLD sacked segments above it was lost.
    let sackedAbove = 0;
    let lostAny = false;
    for (let i = this.inflight.length - 1; i >= 0; i--) {
      const s = this.inflight[i]!;
      if (s.isSacked) sackedAbove++;
      else if (s.seq < highestSacked && sackedAbove >= DUP_ACK_THRESHOLD && !s.isLost && s.attempts === 1) {
        s.isLost = true;
        this.packetsLost++;
        lostAny = true;
      }
    }
    if (lostAny) this.enterRecovery();
  }

  private enterRecovery(): void {
    if (this.isInRecovery) return;
    this.isInRecovery = true;
    this.recoveryPoint = this.sndNxt;
    this.ssthreshBytes = Math.max(2 * LEGACY_MSS, Math.floor(this.cwndBytes / 2));
    this.cwndBytes = this.ssthreshBytes;
  }

  private processData(seqWire: number, payload: Uint8Array, nowUs: Micros): void {
    let seq = unwrapU32(seqWire, this.rcvNxt);
    let data = payload;
    const end = seq + data.length;
    if (this.peerFinSeq !== null && end > this.peerFinSeq) return;
    if (end <= this.rcvNxt) {
      this.isAckNow = true; // duplicate: the peer missed our ACK
      return;
    }
    if (seq <= this.rcvNxt) {
      data = data.subarray(this.rcvNxt - seq);
      seq = this.rcvNxt;
      if (this.recvBytes + this.oooBytes + data.length > this.o.recvBufferBytes + LEGACY_MSS) return; // overrun: drop, not acked
      this.recvChunks.push(data.slice());
      this.recvBytes += data.length;
      this.rcvNxt += data.length;
      this.drainOoo();
      if (!this.isReadableSignalled) {
        this.isReadableSignalled = true;
        this.events.push(EV_READABLE);
      }
      if (++this.pendingAckSegments >= 2) this.isAckNow = true;
      else if (this.ackDeadlineUs === Infinity) this.ackDeadlineUs = nowUs + this.o.delayedAckUs;
    } else {
      if (!this.ooo.has(seq) && this.ooo.size < MAX_OOO_SEGMENTS && this.recvBytes + this.oooBytes + data.length <= this.o.recvBufferBytes + LEGACY_MSS) {
        this.ooo.set(seq, data.slice());
        this.oooBytes += data.length;
      }
    }
    if (this.ooo.size > 0) this.isAckNow = true; // immediate ACK with SACK, as the original
  }

  private drainOoo(): void {
    if (this.ooo.size === 0) return;
    for (let progressed = true; progressed && this.ooo.size > 0; ) {
      progressed = false;
      for (const [s, d] of this.ooo) {
        if (s > this.rcvNxt) continue;
        this.ooo.delete(s);
        this.oooBytes -= d.length;
        const e = s + d.length;
        if (e > this.rcvNxt) {
          const part = d.subarray(this.rcvNxt - s);
          this.recvChunks.push(part);
          this.recvBytes += part.length;
          this.rcvNxt = e;
          progressed = true;
        }
      }
    }
  }

  private checkFinished(nowUs: Micros): void {
    if (this.peerFinSeq === null) return;
    if (this.rcvNxt >= this.peerFinSeq) this.finGraceDeadlineUs = Infinity;
    if (!this.isFinishedSignalled && this.rcvNxt >= this.peerFinSeq && this.recvBytes === 0) {
      this.isFinishedSignalled = true;
      this.events.push(EV_FINISHED);
      this.enterClosed(null);
    }
    void nowUs;
  }

  /** Fire expired timers. Spurious calls are no-ops. */
  handleTimeout(nowUs: Micros): void {
    if (this.phase === Phase.Closed) return;
    if (nowUs >= this.lastReceivedUs + this.o.idleTimeoutUs) {
      this.closeWith(
        this.phase === Phase.SynSent
          ? pilotError('connection_failed', 'no answer to the SYN')
          : pilotError('timeout', 'connection idle timeout: the peer stopped answering'),
      );
      return;
    }
    if (nowUs >= this.finGraceDeadlineUs) {
      this.finGraceDeadlineUs = Infinity;
      this.isRstPending = false;
      this.closeWith(pilotError('connection_failed', 'the peer closed with data missing (the original does not resend after FIN)'));
      return;
    }
    if (nowUs >= this.ackDeadlineUs) {
      this.ackDeadlineUs = Infinity;
      this.isAckNow = true;
    }
    if (nowUs >= this.nagleDeadlineUs) this.nagleDeadlineUs = -1; // expired: flush on the next poll
    if (nowUs >= this.rtoDeadlineUs) this.onRto(nowUs);
  }

  private onRto(nowUs: Micros): void {
    this.rtoCount++;
    if (this.phase === Phase.SynSent) {
      if (++this.synRetries > this.o.maxSynRetries) {
        this.closeWith(pilotError('connection_failed', 'dial timed out: no SYN|ACK'));
        return;
      }
      this.isSynPending = true;
      this.rtoUs = Math.min(this.rtoUs * 2, MAX_SYN_RTO_US);
      this.rtoDeadlineUs = Infinity; // re-armed when the SYN goes out
      return;
    }
    const first = this.inflight.find((s) => !s.isSacked);
    if (first) {
      if (first.attempts >= this.o.maxRetransmits) {
        this.isRstPending = true;
        this.closeWith(pilotError('connection_failed', 'max retransmits exceeded: the peer stopped acknowledging'));
        return;
      }
      // Everything unacknowledged and not sacked is presumed lost; cwnd paces the resends.
      for (const s of this.inflight) {
        if (!s.isSacked && !s.isLost) {
          s.isLost = true;
          this.packetsLost++;
        }
      }
      this.ssthreshBytes = Math.max(2 * LEGACY_MSS, Math.floor(this.cwndBytes / 2));
      this.cwndBytes = 2 * LEGACY_MSS;
      this.isInRecovery = true;
      this.recoveryPoint = this.sndNxt;
    } else if (this.isFinSent && !this.isFinAcked) {
      if (++this.finRetries > this.o.maxRetransmits) {
        this.enterClosed(null); // all our data was acknowledged; only the FIN|ACK never came
        return;
      }
      this.isFinSent = false; // resend
    } else {
      this.rtoDeadlineUs = Infinity;
      return;
    }
    this.rtoUs = Math.min(this.rtoUs * 2, this.o.maxRtoUs);
    this.rtoDeadlineUs = nowUs + this.rtoUs;
  }

  // ───────────────────────────── application commands ─────────────────────────────

  /** Queue bytes; returns how many were taken (0: buffer full, wait for 'writable'; −1: send side closed). */
  write(data: Uint8Array): number {
    if (this.isFinQueued || this.phase === Phase.Closed || this.peerFinSeq !== null) return -1;
    const room = this.o.sendBufferBytes - this.unsentBytes - this.inflightBytes();
    const n = Math.max(0, Math.min(room, data.length));
    if (n > 0) {
      this.unsent.push(data.slice(0, n));
      this.unsentBytes += n;
    }
    if (n < data.length) this.isWritableWanted = true;
    return n;
  }

  /** Up to maxBytes in-order bytes as a fresh array (this transport's chunks are the peer's segments). */
  readView(maxBytes: number): Uint8Array | null {
    const n = Math.min(maxBytes, this.recvBytes);
    if (n <= 0) return null;
    const out = new Uint8Array(n);
    return out.subarray(0, this.read(out));
  }

  /** Copy received in-order bytes into `into`; returns the count. */
  read(into: Uint8Array): number {
    let n = 0;
    while (n < into.length && this.recvChunks.length > 0) {
      const c = this.recvChunks[0]!;
      const take = Math.min(into.length - n, c.length - this.recvHead);
      into.set(c.subarray(this.recvHead, this.recvHead + take), n);
      n += take;
      this.recvHead += take;
      if (this.recvHead === c.length) {
        this.recvChunks.shift();
        this.recvHead = 0;
      }
    }
    this.recvBytes -= n;
    if (this.recvBytes === 0) this.isReadableSignalled = false;
    if (n > 0 && this.phase === Phase.Established && this.peerFinSeq === null) {
      const w = this.advertisedWindow();
      // Window update when the queue opened noticeably; the original's zero-window probe covers a lost one.
      if (w - this.lastAdvertisedWindow >= Math.max(1, LEGACY_RECV_QUEUE_SEGMENTS / 4) || (this.lastAdvertisedWindow <= 2 && w > this.lastAdvertisedWindow)) {
        this.isAckNow = true;
      }
    }
    this.checkFinished(0);
    return n;
  }

  get readableBytes(): number {
    return this.recvBytes;
  }

  /** Send FIN once everything queued is acknowledged (the original drops data after a FIN). Idempotent. */
  finish(): void {
    if (this.isFinQueued || this.phase === Phase.Closed) return;
    this.isFinQueued = true;
  }

  /** Abort: RST, drop buffers, emit closed{error: null}. Idempotent. */
  reset(): void {
    if (this.phase === Phase.Closed) return;
    this.isRstPending = this.phase === Phase.Established || this.synRetries > 0 || !this.isSynPending;
    this.enterClosed(null);
  }

  /** True when closed with nothing left to send: the node may forget it. */
  isDrained(): boolean {
    return this.phase === Phase.Closed && !this.isRstPending && !this.isFinAckPending;
  }

  // ───────────────────────────── polls ─────────────────────────────

  /**
   * Write the next packet (34-byte header + payload) into `buf` (≥ 34 + maxSegmentBytes) and return its length;
   * 0 when nothing may be sent now.
   */
  pollTransmit(nowUs: Micros, buf: Uint8Array): number {
    if (this.isRstPending) {
      this.isRstPending = false;
      // The original's RST: no seq, no ack, no window (sendRST).
      return this.emit(nowUs, buf, FLAG_RST, 0, 0, 0, EMPTY);
    }
    if (this.isFinAckPending) {
      this.isFinAckPending = false;
      return this.emit(nowUs, buf, FLAG_FIN | FLAG_ACK, this.sndNxt, (this.peerFinSeq ?? this.rcvNxt) + 1, 0, EMPTY);
    }
    if (this.phase === Phase.Closed) return 0;
    if (this.phase === Phase.SynSent) {
      if (!this.isSynPending) return 0;
      this.isSynPending = false;
      this.sndNxt = this.iss + 1;
      this.rtoDeadlineUs = nowUs + this.rtoUs;
      return this.emit(nowUs, buf, FLAG_SYN, this.iss, 0, this.advertisedWindow(), EMPTY);
    }
    if (this.isSynAckPending) {
      this.isSynAckPending = false;
      return this.emit(nowUs, buf, FLAG_SYN | FLAG_ACK, this.iss, this.rcvNxt, this.advertisedWindow(), EMPTY);
    }
    const retx = this.inflight.find((s) => s.isLost);
    if (retx && (this.pipeBytes() + retx.data.length <= this.cwndBytes || this.pipeBytes() === 0)) {
      retx.isLost = false;
      retx.attempts++;
      retx.sentAtUs = nowUs;
      this.retransmits++;
      this.bytesSent += retx.data.length;
      if (this.rtoDeadlineUs === Infinity) this.rtoDeadlineUs = nowUs + this.rtoUs;
      return this.emitData(nowUs, buf, retx.seq, retx.data);
    }
    if (this.unsentBytes > 0 && this.peerFinSeq === null) {
      const n = this.sendableBytes(nowUs);
      if (n > 0) {
        const data = this.takeUnsent(n);
        const seg: SentSegment = { seq: this.sndNxt, data, sentAtUs: nowUs, attempts: 1, isSacked: false, isLost: false };
        this.inflight.push(seg);
        this.sndNxt += data.length;
        this.bytesSent += data.length;
        if (this.rtoDeadlineUs === Infinity) this.rtoDeadlineUs = nowUs + this.rtoUs;
        return this.emitData(nowUs, buf, seg.seq, data);
      }
    }
    if (this.isFinQueued && !this.isFinSent && this.peerFinSeq === null && this.unsentBytes === 0 && this.inflight.length === 0) {
      this.isFinSent = true;
      this.rtoDeadlineUs = nowUs + this.rtoUs;
      // The original's FIN: seq = end of data, no ACK flag, no window.
      return this.emit(nowUs, buf, FLAG_FIN, this.sndNxt, 0, 0, EMPTY);
    }
    const keepaliveDue = this.o.keepaliveIntervalUs > 0 && nowUs >= this.lastSentUs + this.o.keepaliveIntervalUs;
    if (this.isAckNow || keepaliveDue) return this.emitAck(nowUs, buf);
    return 0;
  }

  /** Earliest deadline for handleTimeout, or null when closed. */
  pollTimeout(): Micros | null {
    if (this.phase === Phase.Closed) return null;
    let t = this.lastReceivedUs + this.o.idleTimeoutUs;
    if (this.rtoDeadlineUs < t) t = this.rtoDeadlineUs;
    if (this.ackDeadlineUs < t) t = this.ackDeadlineUs;
    if (this.nagleDeadlineUs > 0 && this.nagleDeadlineUs < t) t = this.nagleDeadlineUs;
    if (this.finGraceDeadlineUs < t) t = this.finGraceDeadlineUs;
    if (this.phase === Phase.Established && this.o.keepaliveIntervalUs > 0) {
      const k = this.lastSentUs + this.o.keepaliveIntervalUs;
      if (k < t) t = k;
    }
    return t;
  }

  pollEvent(): ConnEvent | null {
    return this.events.shift() ?? null;
  }

  state(): ConnState {
    if (this.phase === Phase.SynSent) return 'syn_sent';
    if (this.phase === Phase.Closed) return 'closed';
    if (this.peerFinSeq !== null) return 'close_wait';
    if (this.isFinQueued) return 'fin_wait';
    return 'established';
  }

  stats(): ConnectionStats {
    return {
      state: this.state(),
      cwndBytes: this.cwndBytes,
      srttUs: this.rtt.srttUs,
      rttvarUs: this.rtt.rttvarUs,
      minRttUs: this.rtt.minRttUs,
      rtoUs: this.rtoUs,
      bytesInFlight: this.inflightBytes(),
      pacingRateBps: 0,
      deliveryRateBps: 0,
      bytesSent: this.bytesSent,
      bytesReceived: this.rcvNxt - this.rcvStart,
      retransmits: this.retransmits,
      packetsSent: this.packetsSent,
      packetsReceived: this.packetsReceived,
      packetsLost: this.packetsLost,
      rtoCount: this.rtoCount,
      congestionState: this.isInRecovery ? 'recovery' : this.cwndBytes < this.ssthreshBytes ? 'slow_start' : 'congestion_avoidance',
      peerWindowBytes: this.peerWindowBytes ?? -1,
    };
  }

  // ───────────────────────────── internals ─────────────────────────────

  private inflightBytes(): number {
    let n = 0;
    for (const s of this.inflight) n += s.data.length;
    return n;
  }

  /** Bytes believed to be in the network: not sacked, not marked lost. */
  private pipeBytes(): number {
    let n = 0;
    for (const s of this.inflight) if (!s.isSacked && !s.isLost) n += s.data.length;
    return n;
  }

  private sendableBytes(nowUs: Micros): number {
    let n = Math.min(this.mss, this.unsentBytes);
    // The original's sender rule: another segment while bytes in flight < min(cwnd, peer window).
    const inflight = this.inflightBytes();
    const win = Math.min(this.cwndBytes, this.peerWindowBytes ?? Infinity);
    if (inflight > 0 && inflight + n > win) return 0;
    if (n < this.mss && this.inflight.length > 0 && this.o.nagleDelayUs > 0 && !this.isFinQueued) {
      if (this.nagleDeadlineUs === Infinity) this.nagleDeadlineUs = nowUs + this.o.nagleDelayUs;
      if (this.nagleDeadlineUs !== -1) return 0;
    }
    this.nagleDeadlineUs = Infinity;
    // A data segment the original would read as SACK gets its first byte sent alone.
    if (n >= 5 && this.peekUnsentLooksLikeSack(n)) n = 1;
    return n;
  }

  private peekUnsentLooksLikeSack(n: number): boolean {
    const head = new Uint8Array(Math.min(n, 5 + LEGACY_MAX_SACK_BLOCKS * 8));
    let got = 0;
    for (let i = 0, off = this.unsentHead; i < this.unsent.length && got < head.length; i++, off = 0) {
      const c = this.unsent[i]!;
      const take = Math.min(head.length - got, c.length - off);
      head.set(c.subarray(off, off + take), got);
      got += take;
    }
    // The original tests the whole payload; a shorter prefix that passes implies the whole passes and vice versa
    // (the test needs 5 + 8·count bytes and ignores the rest).
    return isLegacySackPayload(head);
  }

  private takeUnsent(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const c = this.unsent[0]!;
      const take = Math.min(n - got, c.length - this.unsentHead);
      out.set(c.subarray(this.unsentHead, this.unsentHead + take), got);
      got += take;
      this.unsentHead += take;
      if (this.unsentHead === c.length) {
        this.unsent.shift();
        this.unsentHead = 0;
      }
    }
    this.unsentBytes -= n;
    return out;
  }

  private advertisedWindow(): number {
    const free = this.o.recvBufferBytes - this.recvBytes - this.oooBytes;
    return legacyWindowFromFreeBytes(free);
  }

  private sackBlocks(): SackBlock[] {
    if (this.ooo.size === 0) return [];
    const segs = [...this.ooo.entries()].sort((a, b) => a[0] - b[0]);
    const blocks: { l: number; r: number }[] = [];
    for (const [s, d] of segs) {
      const last = blocks[blocks.length - 1];
      if (last && s <= last.r) last.r = Math.max(last.r, s + d.length);
      else blocks.push({ l: s, r: s + d.length });
    }
    return blocks.slice(0, LEGACY_MAX_SACK_BLOCKS).map((b) => ({ left: b.l >>> 0, right: b.r >>> 0 }));
  }

  private emitAck(nowUs: Micros, buf: Uint8Array): number {
    const blocks = this.sackBlocks();
    let payload = EMPTY;
    if (blocks.length > 0) {
      const s = encodeLegacySack(blocks);
      if (s.ok) payload = s.value;
    }
    return this.emit(nowUs, buf, FLAG_ACK, this.sndNxt, this.rcvNxt, this.advertisedWindow(), payload);
  }

  private emitData(nowUs: Micros, buf: Uint8Array, seq: number, data: Uint8Array): number {
    return this.emit(nowUs, buf, FLAG_ACK, seq, this.rcvNxt, this.advertisedWindow(), data);
  }

  private emit(nowUs: Micros, buf: Uint8Array, flags: number, seq: number, ack: number, window: number, payload: Uint8Array): number {
    const p: Packet = {
      version: PROTOCOL_VERSION,
      flags,
      protocol: PROTO_STREAM,
      src: this.local,
      dst: this.remote,
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: seq >>> 0,
      ack: ack >>> 0,
      window,
      payload,
    };
    if (buf.length < PACKET_HEADER_SIZE + payload.length) throw new RangeError('pollTransmit buffer too small'); // caller bug
    const n = writePacketUnchecked(p, buf, 0);
    this.packetsSent++;
    this.lastSentUs = nowUs;
    if (flags & FLAG_ACK) {
      this.isAckNow = false;
      this.ackDeadlineUs = Infinity;
      this.pendingAckSegments = 0;
      if (window > 0) this.lastAdvertisedWindow = window;
    }
    return n;
  }

  private closeWith(error: PilotError): void {
    this.enterClosed(error);
  }

  private enterClosed(error: PilotError | null): void {
    if (this.phase === Phase.Closed) return;
    this.phase = Phase.Closed;
    this.unsent.length = 0;
    this.unsentBytes = 0;
    this.inflight.length = 0;
    this.ooo.clear();
    this.oooBytes = 0;
    this.rtoDeadlineUs = Infinity;
    if (!this.isClosedSignalled) {
      this.isClosedSignalled = true;
      this.events.push({ kind: 'closed', error });
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

// ───────────────────────────── stateless packets ─────────────────────────────

/** The original's answer to a SYN for a port nobody listens on (sendRST): RST, no seq/ack/window. */
export function legacyRstFor(p: Packet, local: VirtualAddr): Packet {
  return {
    version: PROTOCOL_VERSION,
    flags: FLAG_RST,
    protocol: PROTO_STREAM,
    src: { network: local.network, node: local.node },
    dst: { network: p.src.network, node: p.src.node },
    srcPort: p.dstPort,
    dstPort: p.srcPort,
    seq: 0,
    ack: 0,
    window: 0,
    payload: EMPTY,
  };
}

/** A ping to an original node: control protocol to port 0; the pong echoes seq, ack = seq + 1 and the payload. */
export function legacyPingPacket(src: VirtualAddr, dst: VirtualAddr, srcPort: number, seq: number, payload: Uint8Array = EMPTY): Packet {
  return {
    version: PROTOCOL_VERSION,
    flags: 0,
    protocol: PROTO_CONTROL,
    src,
    dst,
    srcPort,
    dstPort: PORT_PING,
    seq: seq >>> 0,
    ack: 0,
    window: 0,
    payload,
  };
}

/** Is `p` the pong for our ping (srcPort, seq)? */
export function isLegacyPongFor(p: Packet, srcPort: number, seq: number): boolean {
  return p.protocol === PROTO_CONTROL && (p.flags & FLAG_ACK) !== 0 && p.srcPort === PORT_PING && p.dstPort === srcPort && p.seq === seq >>> 0;
}

/** An unreliable datagram as the original sends it (protocol 2, no flags, ephemeral source port). */
export function legacyDatagramPacket(src: VirtualAddr, dst: VirtualAddr, srcPort: number, dstPort: number, payload: Uint8Array): Packet {
  return { version: PROTOCOL_VERSION, flags: 0, protocol: PROTO_DATAGRAM, src, dst, srcPort, dstPort, seq: 0, ack: 0, window: 0, payload };
}
