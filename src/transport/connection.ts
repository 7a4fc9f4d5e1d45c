// A sans-IO reliable byte stream (one per connection, in each direction), shaped like quinn-proto's
// Connection: the caller feeds decrypted segments (`handle`) and timer expiries (`handleTimeout`), then pulls
// segments to send (`pollTransmit`), the next deadline (`pollTimeout`) and application events (`pollEvent`).
// Nothing here reads a clock or touches a socket; every time is a `now` (µs) passed in.
//
// Design (wire layout in src/wire/segment.ts):
// - Every segment carries a fresh packet number (pn); ACKs name packet numbers in ranges (SACK blocks) and the
//   cumulative stream offset. Unique pns make RTT samples unambiguous (RFC 9002 §5; Karn's rule is moot),
//   give RFC 9002 §6.1 loss detection (3 packets or 9/8·RTT) and per-packet delivery-rate samples for BBR.
//   Retransmissions resend the lost chunk's stream range in a new packet.
// - The cumulative stream ack is the ground truth that frees the send buffer; pn ranges and a RangeSet of
//   selectively acknowledged stream bytes only speed things up and avoid needless retransmissions.
// - Timers: delayed ACK (≤ maxAckDelayUs, every 2nd packet, immediately on PSH/FIN/gaps), loss time threshold,
//   tail-loss probe then RTO with exponential backoff (RFC 6298 §5), zero-window persist probes, keepalive,
//   idle timeout, TIME_WAIT, pacing.
//
// Driver loop (the node's connection table runs it — src/node/streams/connection-table.ts and connection-driver.ts,
// the one timer per connection a Deadline on src/node/driver.ts; test/sim/pair.ts does the same in virtual time):
//
//   const conn = Connection.connect({ localPort, remotePort, connId }, now);   // or Connection.accept(syn, opts, now)
//   on segment:  conn.handle(plaintext, now); service();
//   on timer:    conn.handleTimeout(now); service();
//   service():   for (;;) {
//                  let ev; while ((ev = conn.pollEvent())) app(ev);      // app may write/read/finish here
//                  let n, sent = false; while ((n = conn.pollTransmit(now, buf)) > 0) { seal+send buf[0..n); sent = true; }
//                  if (!sent && no events) break;
//                }
//                rearm the single timer at conn.pollTimeout() (null: none); forget conn once conn.isDrained().
//   after app reads/writes outside an event: call service() so window updates and data go out.
//
// The node demuxes by (srcPort, dstPort, connId) from peekSegmentHeader: a SYN (isSyn) for an unknown triple
// goes to Connection.accept; a retransmitted SYN for a known one to that connection's handle; anything else
// unknown may be answered with encodeResetFor. 'readable' is edge-triggered: read until read() returns 0.
import type { Micros } from '../core/clock.js';
import { pilotError, type PilotError } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { readU16, writeU16 } from '../wire/bytes.js';
import {
  decodeSegmentInto,
  decodeSynOptions,
  encodeSynOptions,
  newSegmentFields,
  writeSegmentHeader,
  FLAG_ACK,
  FLAG_FIN,
  FLAG_PING,
  FLAG_PSH,
  FLAG_RST,
  FLAG_SYN,
  MAX_SEGMENT_BYTES,
  MAX_PATH_SEGMENT_BYTES,
  MIN_SEGMENT_BYTES,
  SACK_BLOCK_BYTES,
  SEGMENT_HEADER_BYTES,
  SYN_OPTIONS_BYTES,
  TRANSPORT_VERSION,
  type SegmentFields,
  type SegmentHeader, decodePolicyResetReason } from '../wire/segment.js';
import type { AckSample, CongestionController, CongestionControllerFactory } from './congestion/controller.js';
import { bbrFactory } from './congestion/bbr.js';
import { Pacer } from './pacer.js';
import { RangeSet } from './range-set.js';
import { RecvBuffer } from './recv-buffer.js';
import { RttEstimator } from './rtt-estimator.js';
import {
  SackScoreboard,
  PKT_ACK_ELICITING,
  PKT_APP_LIMITED,
  PKT_FIN,
  PKT_IN_FLIGHT,
  PKT_SYN,
} from './sack-scoreboard.js';
import { SendBuffer } from './send-buffer.js';
import { unwrapU32 } from './sequence.js';
import type { StreamConnection } from './stream-connection.js';

export type ConnState =
  | 'syn_sent'
  | 'syn_received'
  | 'established'
  | 'fin_wait'
  | 'close_wait'
  | 'closing'
  | 'time_wait'
  | 'closed';

export type ConnEvent =
  | { readonly kind: 'connected' }
  | { readonly kind: 'readable' }
  | { readonly kind: 'writable' }
  /** The peer's FIN arrived and the application has read every byte before it. */
  | { readonly kind: 'finished' }
  /** Exactly once per connection. error: null for a graceful close or a local reset(). */
  | { readonly kind: 'closed'; readonly error: PilotError | null };

const EV_CONNECTED: ConnEvent = Object.freeze({ kind: 'connected' });
const EV_READABLE: ConnEvent = Object.freeze({ kind: 'readable' });
const EV_WRITABLE: ConnEvent = Object.freeze({ kind: 'writable' });
const EV_FINISHED: ConnEvent = Object.freeze({ kind: 'finished' });

/** Tuning shared by both ends; every field has a default. */
export interface ConnectionOptions {
  /** Largest plaintext segment incl. the kind byte this end accepts, advertised in the SYN (default 64,968: what
   *  a discovered path MTU may carry); each end sends at most the other's. */
  maxSegmentBytes?: number;
  /** Largest segment the path carries now (default 1420; the tunnel's path MTU discovery raises it later with
   *  setPathSegmentBytes). Segments are min(this, the peer's advertised size). */
  pathSegmentBytes?: number;
  /** Receive window = receive buffer, bytes (default 4 MiB). */
  recvBufferBytes?: number;
  /** Unacknowledged + unsent bytes the application may queue (default 4 MiB). */
  sendBufferBytes?: number;
  /** Close with `timeout` when nothing arrives for this long (default 30 s). */
  idleTimeoutUs?: Micros;
  /** Ask the peer for an ACK after this much silence (default 10 s; 0 disables). */
  keepaliveIntervalUs?: Micros;
  /** Longest an ACK is delayed (default 25 ms, RFC 9000 max_ack_delay). */
  maxAckDelayUs?: Micros;
  /** ACK at least every this many ack-eliciting packets (default 2, RFC 5681 §4.2 / RFC 9000 §13.2.2). */
  ackEveryPackets?: number;
  /** Hold sub-segment writes while data is unacknowledged (default true, RFC 896). */
  nagle?: boolean;
  /** Default: BBR. */
  congestion?: CongestionControllerFactory;
  /** RTO before any RTT sample (default 1 s, RFC 6298 §2.1). */
  initialRtoUs?: Micros;
  /** Default 200 ms (RFC 6298 §2.4 says 1 s; Linux uses 200 ms). */
  minRtoUs?: Micros;
  /** Default 60 s. */
  maxRtoUs?: Micros;
  /** How long an active closer absorbs retransmitted FINs (default 5 s; connIds separate incarnations). */
  timeWaitUs?: Micros;
  /** SYN / SYN-ACK transmissions before giving up (default 6, about 63 s with a 1 s initial RTO). */
  maxSynRetries?: number;
  /** Initial send sequence number (u32); default derived from connId. */
  initialSeq?: number;
  /** Pacer burst allowance in µs of the pacing rate (default 2 ms). */
  pacingBurstUs?: Micros;
}

export interface ConnectConfig extends ConnectionOptions {
  localPort: number;
  remotePort: number;
  /** u32 chosen by the opener, unique per (peer, ports) incarnation. */
  connId: number;
}

export interface ConnectionStats {
  state: ConnState;
  cwndBytes: number;
  srttUs: Micros;
  rttvarUs: Micros;
  minRttUs: Micros;
  rtoUs: Micros;
  bytesInFlight: number;
  /** Bytes per second. */
  pacingRateBps: number;
  /** Latest delivery-rate sample, bytes per second. */
  deliveryRateBps: number;
  /** Stream payload bytes transmitted, retransmissions included. */
  bytesSent: number;
  /** Stream payload bytes received in order. */
  bytesReceived: number;
  /** Chunks retransmitted (loss, RTO) plus tail-loss probes that resent data. */
  retransmits: number;
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number;
  rtoCount: number;
  congestionState: string;
  /** Peer's advertised window beyond our cumulative ack point, bytes. */
  peerWindowBytes: number;
}

const enum Phase {
  SynSent,
  SynReceived,
  Established,
  TimeWait,
  Closed,
}

/** RFC 9002 §6.1.1 kPacketThreshold. */
const PACKET_THRESHOLD = 3;
/** Receiver keeps at most this many packet-number ranges to report (the sender only needs the recent ones). */
const MAX_ACK_RANGES = 64;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

const DEFAULTS = {
  maxSegmentBytes: MAX_PATH_SEGMENT_BYTES,
  recvBufferBytes: 4 * 1024 * 1024,
  sendBufferBytes: 4 * 1024 * 1024,
  idleTimeoutUs: 30_000_000,
  keepaliveIntervalUs: 10_000_000,
  maxAckDelayUs: 25_000,
  ackEveryPackets: 2,
  nagle: true,
  initialRtoUs: 1_000_000,
  minRtoUs: 200_000,
  maxRtoUs: 60_000_000,
  timeWaitUs: 5_000_000,
  maxSynRetries: 6,
  pacingBurstUs: 2_000,
};

export class Connection implements StreamConnection {
  readonly localPort: number;
  readonly remotePort: number;
  readonly connId: number;
  private readonly isClient: boolean;
  private phase: Phase;

  // configuration
  /** Segment size we send: min(ownMss, peerMss, pathMss). */
  private mss: number;
  private maxPayload: number;
  /** What we accept (advertised in our SYN). */
  private readonly ownMss: number;
  private peerMss: number;
  private pathMss: number;
  private readonly idleTimeoutUs: Micros;
  private readonly keepaliveIntervalUs: Micros;
  private readonly maxAckDelayUs: Micros;
  private peerMaxAckDelayUs: Micros = 0;
  private readonly ackEveryPackets: number;
  private readonly nagle: boolean;
  private readonly ccFactory: CongestionControllerFactory;
  private readonly timeWaitUs: Micros;
  private readonly maxSynRetries: number;
  private readonly pacingBurstUs: Micros;

  // send side
  private readonly localIsn: number;
  private readonly sendBuf: SendBuffer;
  /** Cumulatively acknowledged stream offset. */
  private sndUna = 0;
  /** Next never-sent stream offset. */
  private sndNxt = 0;
  /** Highest stream offset the peer's window allows (exclusive). */
  private sendLimit = 0;
  private maxPeerWindowBytes = 0;
  private isFinQueued = false;
  private finOffset = -1;
  private isFinSent = false;
  private isFinAcked = false;
  private isActiveCloser = false;
  private readonly sb = new SackScoreboard();
  /** Stream ranges the peer acknowledged selectively ([finOffset, +1) stands for the FIN). */
  private readonly sackedData = new RangeSet();
  private retxOffset = new Float64Array(64);
  private retxLen = new Int32Array(64);
  private retxHead = 0;
  private retxCount = 0;
  private cc: CongestionController | null = null;
  private readonly pacer: Pacer;
  readonly rtt: RttEstimator;
  private ptoCount = 0;
  private isTlpPending = false;
  private lossTimeUs: Micros = Infinity;
  private pacingWaitUs: Micros = 0;
  private persistDeadlineUs: Micros = Infinity;
  private persistBackoff = 0;
  private isPersistProbePending = false;
  private lastKeepaliveUs: Micros = 0;
  private isKeepalivePending = false;
  private isSynPending = false;
  private synRetries = 0;
  private isRstPending = false;
  private isWritableWanted = false;
  // delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation)
  private deliveredBytes = 0;
  private deliveredTimeUs: Micros = 0;
  private firstSentTimeUs: Micros = 0;
  private appLimitedUntil = 0;
  private readonly sample: AckSample;

  // receive side
  private peerIsn = 0;
  private readonly recvBuf: RecvBuffer;
  private peerFinOffset = -1;
  private isPeerFinReceived = false;
  private isFinishedEmitted = false;
  private readonly rxPns = new RangeSet(16);
  private largestRxPn = -1;
  private largestRxTimeUs: Micros = 0;
  private elicitingSinceAck = 0;
  private isAckNow = false;
  private ackDeadlineUs: Micros = Infinity;
  private isAckOnlyNext = false;
  /** Out-of-order packets arrived since the last ACK that reported every range. */
  private isAckRangeChanged = false;
  /**
   * Our packets that carried a complete ACK report: (pn, largest pn reported). Once the peer acknowledges one,
   * it knows every range up to that largest, so we stop repeating them (RFC 9000 §13.2.4) and ACKs stay small.
   */
  private reportPn = new Float64Array(REPORT_FIFO_SIZE);
  private reportLargest = new Float64Array(REPORT_FIFO_SIZE);
  private reportHead = 0;
  private reportCount = 0;
  private lastAdvertisedLimit = 0;
  private readonly windowUpdateBytes: number;
  private isReadableSignalled = false;

  // timers / liveness
  private lastReceivedUs: Micros;
  private timeWaitUntilUs: Micros = Infinity;

  // events
  private events: ConnEvent[] = [];
  private eventHead = 0;
  private isClosedEmitted = false;

  // scratch
  private readonly rx: SegmentFields = newSegmentFields();
  private readonly tx: SegmentHeader = newSegmentFields();

  // stats
  private bytesSent = 0;
  private retransmits = 0;
  private packetsSent = 0;
  private packetsReceived = 0;
  private packetsLost = 0;
  private rtoCount = 0;
  private latestDeliveryRateBps = 0;

  private constructor(cfg: ConnectConfig, isClient: boolean, nowUs: Micros) {
    this.localPort = cfg.localPort;
    this.remotePort = cfg.remotePort;
    this.connId = cfg.connId >>> 0;
    this.isClient = isClient;
    this.phase = isClient ? Phase.SynSent : Phase.SynReceived;
    this.ownMss = clampInt(cfg.maxSegmentBytes ?? DEFAULTS.maxSegmentBytes, MIN_SEGMENT_BYTES, MAX_PATH_SEGMENT_BYTES);
    this.peerMss = this.ownMss;
    this.pathMss = clampInt(cfg.pathSegmentBytes ?? MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, MAX_PATH_SEGMENT_BYTES);
    this.mss = Math.min(this.ownMss, this.pathMss);
    this.maxPayload = this.mss - SEGMENT_HEADER_BYTES;
    this.idleTimeoutUs = cfg.idleTimeoutUs ?? DEFAULTS.idleTimeoutUs;
    this.keepaliveIntervalUs = cfg.keepaliveIntervalUs ?? DEFAULTS.keepaliveIntervalUs;
    this.maxAckDelayUs = cfg.maxAckDelayUs ?? DEFAULTS.maxAckDelayUs;
    this.ackEveryPackets = Math.max(1, cfg.ackEveryPackets ?? DEFAULTS.ackEveryPackets);
    this.nagle = cfg.nagle ?? DEFAULTS.nagle;
    this.ccFactory = cfg.congestion ?? bbrFactory();
    this.timeWaitUs = cfg.timeWaitUs ?? DEFAULTS.timeWaitUs;
    this.maxSynRetries = cfg.maxSynRetries ?? DEFAULTS.maxSynRetries;
    this.pacingBurstUs = cfg.pacingBurstUs ?? DEFAULTS.pacingBurstUs;
    this.rtt = new RttEstimator({
      initialRtoUs: cfg.initialRtoUs ?? DEFAULTS.initialRtoUs,
      minRtoUs: cfg.minRtoUs ?? DEFAULTS.minRtoUs,
      maxRtoUs: cfg.maxRtoUs ?? DEFAULTS.maxRtoUs,
      granularityUs: 1_000,
    });
    // Knuth multiplicative hash: distinct, well-spread ISNs per connection id (and wraparound gets exercised).
    this.localIsn = (cfg.initialSeq ?? Math.imul(this.connId ^ 0x5bd1e995, 2654435761)) >>> 0;
    this.sendBuf = new SendBuffer(Math.max(1, cfg.sendBufferBytes ?? DEFAULTS.sendBufferBytes));
    this.recvBuf = new RecvBuffer(Math.max(this.mss, cfg.recvBufferBytes ?? DEFAULTS.recvBufferBytes));
    this.windowUpdateBytes = Math.min(this.recvBuf.maxBytes >>> 2, 16 * this.mss);
    this.pacer = new Pacer(this.mss, nowUs, this.pacingBurstUs);
    this.lastReceivedUs = nowUs;
    this.lastKeepaliveUs = nowUs;
    this.tx.srcPort = this.localPort;
    this.tx.dstPort = this.remotePort;
    this.tx.connId = this.connId;
    this.sample = {
      nowUs: 0,
      bytesAcked: 0,
      deliveredBytes: 0,
      priorDeliveredBytes: 0,
      deliveryRateBps: 0,
      intervalUs: 0,
      isAppLimited: false,
      rttUs: -1,
      minRttUs: 0,
      srttUs: 0,
      bytesInFlight: 0,
      largestAckedSentTimeUs: 0,
      lostBytes: 0,
    };
  }

  /** Open a connection (client side): queues the SYN. No I/O. */
  static connect(cfg: ConnectConfig, nowUs: Micros): Connection {
    const c = new Connection(cfg, true, nowUs);
    c.isSynPending = true;
    return c;
  }

  /**
   * Accept a connection from its SYN (server side): ports and connId come from the SYN. The node hands over
   * segments for which peekSegmentHeader says isSyn and no connection exists. Errors: invalid_argument when
   * `syn` is not a well-formed SYN.
   */
  static accept(syn: Uint8Array, opts: ConnectionOptions, nowUs: Micros): Result<Connection> {
    const f = newSegmentFields();
    if (!decodeSegmentInto(syn, f)) return err('invalid_argument', 'malformed SYN segment');
    if ((f.flags & (FLAG_SYN | FLAG_ACK | FLAG_RST)) !== FLAG_SYN) return err('invalid_argument', 'not a SYN');
    const o = decodeSynOptions(syn, f.payloadOffset, f.payloadBytes);
    if (!o.ok) return o;
    const c = new Connection({ ...opts, localPort: f.dstPort, remotePort: f.srcPort, connId: f.connId }, false, nowUs);
    c.onSynOptions(o.value.maxSegmentBytes, o.value.maxAckDelayUs, f.seq, f.window);
    c.recordRxPn(f.pn, nowUs, true);
    c.isSynPending = true;
    return ok(c);
  }

  // ───────────────────────────── B. handlers ─────────────────────────────

  /**
   * Feed one decrypted segment (the whole plaintext, kind byte first). No I/O, never throws. Errors:
   * invalid_argument for malformed segments (ignored entirely), segments of another connection (ignored), or
   * data beyond the peer's FIN (the data is dropped; the segment's ACK information still counts).
   */
  handle(segment: Uint8Array, nowUs: Micros): Result<void> {
    const f = this.rx;
    if (!decodeSegmentInto(segment, f)) return err('invalid_argument', 'malformed segment');
    if (f.srcPort !== this.remotePort || f.dstPort !== this.localPort || f.connId !== this.connId)
      return err('invalid_argument', 'segment belongs to another connection', {
        detail: { srcPort: f.srcPort, dstPort: f.dstPort, connId: f.connId },
      });
    if (this.phase === Phase.Closed) return ok();
    if (f.flags & FLAG_RST) {
      this.onPeerReset(f.payloadBytes > 0 ? segment.subarray(f.payloadOffset) : null);
      return ok();
    }
    const pn = unwrapU32(f.pn, this.largestRxPn + 1);
    if (pn < 0) return err('invalid_argument', 'packet number out of range');
    if (this.rxPns.has(pn)) return ok(); // duplicate
    this.lastReceivedUs = nowUs;
    this.packetsReceived++;

    if (this.phase === Phase.SynSent) return this.handleInSynSent(segment, pn, nowUs);
    if (f.flags & FLAG_SYN) {
      // Retransmitted SYN (our SYN-ACK was lost) or SYN-ACK (our ACK was lost): answer again.
      this.recordRxPn(pn, nowUs, true);
      if (this.phase === Phase.SynReceived && (f.flags & FLAG_ACK) === 0) this.isSynPending = true;
      else this.isAckNow = true;
      return ok();
    }
    if ((f.flags & FLAG_ACK) === 0) return err('invalid_argument', 'segment without ACK after the handshake');
    if (this.phase === Phase.SynReceived) {
      // The first ACK must cover a SYN-ACK we sent.
      const largest = unwrapU32(f.ackPn, this.sb.nextPn - 1);
      if (largest < 0 || largest >= this.sb.nextPn) return err('invalid_argument', 'ACK of an unsent packet');
      this.processAck(f, segment, nowUs);
      this.becomeEstablished(nowUs);
    } else if (this.phase === Phase.TimeWait) {
      // Only a retransmitted FIN matters now: re-ACK it.
      this.recordRxPn(pn, nowUs, false);
      if (f.flags & FLAG_FIN) this.isAckNow = true;
      return ok();
    } else {
      this.processAck(f, segment, nowUs);
    }

    let r: Result<void> = OK;
    if (f.payloadBytes > 0 || (f.flags & FLAG_FIN) !== 0) {
      r = this.processData(f, segment);
      if (!r.ok) return r; // its pn stays unrecorded: the peer will see it as lost, which it was
    }
    const isAckEliciting = f.payloadBytes > 0 || (f.flags & (FLAG_FIN | FLAG_PING)) !== 0;
    this.recordRxPn(pn, nowUs, isAckEliciting);
    if (isAckEliciting) {
      if ((f.flags & (FLAG_PSH | FLAG_FIN | FLAG_PING)) !== 0) this.isAckNow = true;
      if (++this.elicitingSinceAck >= this.ackEveryPackets) this.isAckNow = true;
      else if (this.ackDeadlineUs === Infinity) this.ackDeadlineUs = nowUs + this.maxAckDelayUs;
    }
    this.checkClose(nowUs);
    return r;
  }

  /** Fire expired timers. Spurious calls are no-ops. */
  handleTimeout(nowUs: Micros): void {
    const phase = this.phase;
    if (phase === Phase.Closed) return;
    if (phase === Phase.TimeWait) {
      if (nowUs >= this.timeWaitUntilUs) this.phase = Phase.Closed;
      return;
    }
    if (nowUs >= this.lastReceivedUs + this.idleTimeoutUs) {
      if (phase === Phase.Established) this.closeWith(pilotError('timeout', 'connection idle timeout: the peer stopped answering'));
      else this.closeWith(pilotError('connection_failed', 'handshake timed out: no answer from the peer'));
      return;
    }
    if (nowUs >= this.ackDeadlineUs) {
      this.isAckNow = true;
      this.ackDeadlineUs = Infinity;
    }
    if (nowUs >= this.lossTimeUs) this.detectLosses(nowUs);
    if (this.sb.ackElicitingOutstanding > 0 && nowUs >= this.ptoDeadlineUs()) this.onPto(nowUs);
    if (nowUs >= this.persistDeadlineUs) {
      this.isPersistProbePending = true;
      this.persistDeadlineUs = Infinity;
      this.persistBackoff++;
    }
    if (phase === Phase.Established && this.keepaliveIntervalUs > 0 && nowUs >= this.keepaliveDeadlineUs()) {
      this.isKeepalivePending = true;
      this.lastKeepaliveUs = nowUs;
    }
    if (nowUs >= this.pacingWaitUs) this.pacingWaitUs = 0;
  }

  // ───────────────────────────── C. application commands ─────────────────────────────

  /**
   * Queue bytes for sending; returns how many were taken (0: buffer full, wait for 'writable'; −1: the send
   * side is closed by finish/reset/close and nothing will ever be taken).
   */
  write(data: Uint8Array): number {
    if (this.isFinQueued || this.phase === Phase.Closed || this.phase === Phase.TimeWait) return -1;
    const n = this.sendBuf.write(data);
    if (n < data.length) this.isWritableWanted = true;
    return n;
  }

  /** Copy received in-order bytes into `into`; returns the count (0: nothing readable now). */
  read(into: Uint8Array): number {
    const n = this.recvBuf.read(into);
    if (n > 0) this.afterRead();
    return n;
  }

  /**
   * Take up to maxBytes received in-order bytes as a view of the receive buffer, without a copy; the view
   * stays valid and unchanged while the caller holds it. Null when nothing is readable now.
   */
  readView(maxBytes: number): Uint8Array | null {
    const view = this.recvBuf.readView(maxBytes);
    if (view !== null) this.afterRead();
    return view;
  }

  private afterRead(): void {
    // 'readable' is edge-triggered: it fires again only after the application drained what was readable.
    if (this.recvBuf.readableBytes === 0) this.isReadableSignalled = false;
    if (this.phase !== Phase.Closed && !this.isPeerFinReceived) {
      // Window update when the right edge moved enough (receiver-side SWS avoidance, RFC 1122 §4.2.3.3);
      // if it is lost, the sender's persist probe recovers.
      if (this.recvBuf.limitOffset - this.lastAdvertisedLimit >= this.windowUpdateBytes) this.isAckNow = true;
    }
    this.checkFinished();
  }

  /** Bytes readable now. */
  get readableBytes(): number {
    return this.recvBuf.readableBytes;
  }

  /** Send FIN after the queued data; further writes return −1. Idempotent. */
  finish(): void {
    if (this.isFinQueued || this.phase === Phase.Closed || this.phase === Phase.TimeWait) return;
    this.isFinQueued = true;
    this.finOffset = this.sendBuf.endOffset;
  }

  /** Abort: send RST, drop buffers, emit closed{error: null}. Idempotent. */
  reset(): void {
    if (this.phase === Phase.Closed) return;
    this.isRstPending = this.phase !== Phase.TimeWait;
    this.enterClosed(null);
  }

  /** True when the connection is closed and has nothing left to send: the node may forget it. */
  isDrained(): boolean {
    return this.phase === Phase.Closed && !this.isRstPending;
  }

  // ───────────────────────────── D. polls ─────────────────────────────

  /**
   * Write the next segment (whole plaintext incl. kind byte) into `buf` (≥ maxSegmentBytes) and return its
   * length; 0 when nothing may be sent now (empty, congestion window, pacing or flow control).
   */
  pollTransmit(nowUs: Micros, buf: Uint8Array): number {
    if (buf.length < this.mss) return 0; // caller bug; never write past the buffer
    const phase = this.phase;
    if (phase === Phase.Established) return this.transmitEstablished(nowUs, buf);
    if (this.isRstPending) {
      this.isRstPending = false;
      return this.writeControl(nowUs, buf, FLAG_RST, 0);
    }
    if (phase === Phase.SynSent) {
      if (!this.isSynPending) return 0;
      this.isSynPending = false;
      return this.writeSyn(nowUs, buf, FLAG_SYN);
    }
    if (phase === Phase.SynReceived) {
      if (!this.isSynPending) return 0;
      this.isSynPending = false;
      return this.writeSyn(nowUs, buf, FLAG_SYN | FLAG_ACK);
    }
    if (phase === Phase.TimeWait && this.isAckNow) return this.writeControl(nowUs, buf, FLAG_ACK, 0);
    return 0;
  }

  /** Earliest deadline for handleTimeout, or null when no timer is armed (drained). */
  pollTimeout(): Micros | null {
    const phase = this.phase;
    if (phase === Phase.Closed) return null;
    if (phase === Phase.TimeWait) return this.timeWaitUntilUs;
    let t = this.lastReceivedUs + this.idleTimeoutUs;
    if (this.ackDeadlineUs < t) t = this.ackDeadlineUs;
    if (this.lossTimeUs < t) t = this.lossTimeUs;
    if (this.sb.ackElicitingOutstanding > 0) {
      const pto = this.ptoDeadlineUs();
      if (pto < t) t = pto;
    }
    if (this.persistDeadlineUs < t) t = this.persistDeadlineUs;
    if (this.pacingWaitUs > 0 && this.pacingWaitUs < t) t = this.pacingWaitUs;
    if (phase === Phase.Established && this.keepaliveIntervalUs > 0) {
      const k = this.keepaliveDeadlineUs();
      if (k < t) t = k;
    }
    return t;
  }

  /** Next application event, or null. Drain after every handle, handleTimeout, write or read. */
  pollEvent(): ConnEvent | null {
    if (this.eventHead === this.events.length) return null;
    const e = this.events[this.eventHead++]!;
    if (this.eventHead === this.events.length) {
      this.events.length = 0;
      this.eventHead = 0;
    }
    return e;
  }

  stats(): ConnectionStats {
    return {
      state: this.state(),
      cwndBytes: this.cc ? this.cc.cwndBytes() : 0,
      srttUs: this.rtt.srttUs,
      rttvarUs: this.rtt.rttvarUs,
      minRttUs: this.rtt.minRttUs,
      rtoUs: Math.min(this.rtt.rtoUs() * 2 ** Math.max(0, this.ptoCount - 1), this.rtt.maxRtoUs),
      bytesInFlight: this.sb.bytesInFlight,
      pacingRateBps: this.cc ? this.cc.pacingRateBps() : 0,
      deliveryRateBps: this.latestDeliveryRateBps,
      bytesSent: this.bytesSent,
      bytesReceived: this.recvBuf.contiguousEnd,
      retransmits: this.retransmits,
      packetsSent: this.packetsSent,
      packetsReceived: this.packetsReceived,
      packetsLost: this.packetsLost,
      rtoCount: this.rtoCount,
      congestionState: this.cc ? this.cc.debugState() : 'handshake',
      peerWindowBytes: Math.max(0, this.sendLimit - this.sndUna),
    };
  }

  state(): ConnState {
    switch (this.phase) {
      case Phase.SynSent:
        return 'syn_sent';
      case Phase.SynReceived:
        return 'syn_received';
      case Phase.TimeWait:
        return 'time_wait';
      case Phase.Closed:
        return 'closed';
      default:
        if (this.isFinQueued && this.isPeerFinReceived) return 'closing';
        if (this.isFinQueued) return 'fin_wait';
        if (this.isPeerFinReceived) return 'close_wait';
        return 'established';
    }
  }

  // ───────────────────────────── internals: receive ─────────────────────────────

  private handleInSynSent(segment: Uint8Array, pn: number, nowUs: Micros): Result<void> {
    const f = this.rx;
    if ((f.flags & (FLAG_SYN | FLAG_ACK)) !== (FLAG_SYN | FLAG_ACK)) return ok(); // nothing else is meaningful yet
    const largest = unwrapU32(f.ackPn, this.sb.nextPn - 1);
    if (largest < 0 || largest >= this.sb.nextPn) return err('invalid_argument', 'SYN-ACK acknowledges an unsent packet');
    const o = decodeSynOptions(segment, f.payloadOffset, f.payloadBytes);
    if (!o.ok) {
      this.closeWith(pilotError('connection_failed', `peer refused the handshake: ${o.error.message}`));
      return o;
    }
    this.onSynOptions(o.value.maxSegmentBytes, o.value.maxAckDelayUs, f.seq, 0);
    this.processAck(f, segment, nowUs);
    this.recordRxPn(pn, nowUs, true);
    this.becomeEstablished(nowUs);
    this.isAckNow = true; // third leg of the handshake
    return ok();
  }

  private onSynOptions(peerMss: number, peerMaxAckDelayUs: Micros, peerSeq: number, peerWindow: number): void {
    this.peerMss = Math.max(MIN_SEGMENT_BYTES, peerMss);
    this.resize();
    this.peerMaxAckDelayUs = Math.min(peerMaxAckDelayUs, 1_000_000);
    this.peerIsn = peerSeq >>> 0;
    if (peerWindow > 0) this.sendLimit = Math.max(this.sendLimit, peerWindow);
  }

  /**
   * The path now carries segments of up to `bytes` (the tunnel's path MTU discovery, src/transport/pmtud.ts).
   * New segments take the new size at once; retransmissions larger than a reduced one are split.
   */
  setPathSegmentBytes(bytes: number): void {
    this.pathMss = clampInt(bytes, MIN_SEGMENT_BYTES, MAX_PATH_SEGMENT_BYTES);
    this.resize();
  }

  /** The segment size in use (min of ours, the peer's and the path's). */
  get segmentBytes(): number {
    return this.mss;
  }

  private resize(): void {
    const mss = Math.min(this.ownMss, this.peerMss, this.pathMss);
    if (mss === this.mss) return;
    this.mss = mss;
    this.maxPayload = mss - SEGMENT_HEADER_BYTES;
    this.pacer.setMss(mss);
    this.cc?.setMss?.(mss);
  }

  private becomeEstablished(nowUs: Micros): void {
    this.phase = Phase.Established;
    this.synRetries = 0;
    this.ptoCount = 0;
    this.cc = this.ccFactory({
      mssBytes: this.mss,
      nowUs,
      seed: this.connId ^ (this.isClient ? 0x9e3779b9 : 0),
      srttUs: this.rtt.hasSample ? this.rtt.srttUs : 0,
      markAppLimited: () => {
        this.appLimitedUntil = this.deliveredBytes + this.sb.bytesInFlight || 1;
      },
    });
    this.deliveredTimeUs = nowUs;
    this.firstSentTimeUs = nowUs;
    this.pushEvent(EV_CONNECTED);
  }

  /**
   * Note a received packet number for our ACK ranges. RFC 9000 §13.2.1: an ack-eliciting packet that opens a
   * gap or arrives out of order is acknowledged at once, and the new ranges are reported in full once.
   */
  private recordRxPn(pn: number, nowUs: Micros, isAckEliciting: boolean): void {
    const ranges = this.rxPns;
    let isOutOfOrder: boolean;
    if (pn > this.largestRxPn) {
      isOutOfOrder = ranges.count > 0 && pn !== ranges.maxEnd();
      this.largestRxPn = pn;
      this.largestRxTimeUs = nowUs;
    } else {
      isOutOfOrder = true;
    }
    ranges.add(pn, pn + 1);
    if (ranges.count > MAX_ACK_RANGES) ranges.removeFirst();
    if (isOutOfOrder) {
      this.isAckRangeChanged = true;
      if (isAckEliciting) this.isAckNow = true;
    }
  }

  private noteCompleteReport(pn: number, largestReported: number): void {
    if (this.reportCount === REPORT_FIFO_SIZE) {
      this.reportHead = (this.reportHead + 1) % REPORT_FIFO_SIZE;
      this.reportCount--;
    }
    const j = (this.reportHead + this.reportCount) % REPORT_FIFO_SIZE;
    this.reportPn[j] = pn;
    this.reportLargest[j] = largestReported;
    this.reportCount++;
  }

  /** The peer acknowledged [topLo, largest]: forget ACK ranges it has certainly seen in full. */
  private pruneAckRanges(topLo: number, largest: number): void {
    let prune = -1;
    while (this.reportCount > 0 && this.reportPn[this.reportHead]! <= largest) {
      const pn = this.reportPn[this.reportHead]!;
      if (pn >= topLo && this.reportLargest[this.reportHead]! > prune) prune = this.reportLargest[this.reportHead]!;
      this.reportHead = (this.reportHead + 1) % REPORT_FIFO_SIZE;
      this.reportCount--;
    }
    // keep the largest received: it anchors every ACK we send
    if (prune >= 0) this.rxPns.removeBelow(prune + 1 < this.largestRxPn ? prune + 1 : this.largestRxPn);
  }

  private processAck(f: SegmentFields, seg: Uint8Array, nowUs: Micros): void {
    const sb = this.sb;
    const largest = unwrapU32(f.ackPn, sb.nextPn - 1);
    sb.beginAck();
    let hasNewAck = false;
    if (largest >= 0 && largest < sb.nextPn) {
      if (this.reportCount > 0) this.pruneAckRanges(largest - f.firstAckRange, largest);
      let hi = largest;
      let lo = hi - f.firstAckRange;
      sb.ackRange(lo, hi);
      let off = f.sackOffset;
      for (let i = 0; i < f.sackCount && lo > sb.basePn; i++, off += SACK_BLOCK_BYTES) {
        hi = lo - readU16(seg, off) - 2;
        lo = hi - readU16(seg, off + 2);
        sb.ackRange(lo, hi);
      }
      hasNewAck = sb.newlyAckedCount > 0;
    }

    // Newly acknowledged packets: RTT, delivery rate, stream ranges.
    let bytesAcked = 0;
    let newestPn = -1;
    let isLargestNewlyAcked = false;
    const slots = sb.newlyAcked;
    for (let i = 0; i < sb.newlyAckedCount; i++) {
      const pn = slots[i]!;
      const s = sb.slot(pn);
      const flags = sb.flags[s]!;
      if (pn === largest) isLargestNewlyAcked = true;
      if (flags & PKT_IN_FLIGHT) {
        if ((flags & 8) === 0) bytesAcked += sb.sizeBytes[s]!; // 8 = PKT_LOST: already out of flight
        if (pn > newestPn) newestPn = pn;
        const len = sb.chunkLen[s]!;
        const off = sb.chunkOffset[s]!;
        if (len > 0 || (flags & PKT_FIN) !== 0) this.sackedData.add(off, off + len + ((flags & PKT_FIN) !== 0 ? 1 : 0));
      }
    }
    if (isLargestNewlyAcked) {
      const s = sb.slot(largest);
      if (sb.flags[s]! & PKT_ACK_ELICITING) {
        const ackDelay = this.phase === Phase.Established ? Math.min(f.ackDelayUs, this.peerMaxAckDelayUs) : 0;
        this.rtt.update(nowUs - sb.sentTimeUs[s]!, ackDelay);
        this.sample.rttUs = nowUs - sb.sentTimeUs[s]!;
      } else this.sample.rttUs = -1;
    } else this.sample.rttUs = -1;
    if (hasNewAck) {
      this.ptoCount = 0;
      this.isTlpPending = false;
    }

    // Delivery rate over the newest acknowledged packet's interval.
    let rate = 0;
    let intervalUs = 0;
    let isAppLimited = false;
    let priorDelivered = 0;
    let largestAckedSentUs = 0;
    if (newestPn >= 0) {
      const s = sb.slot(newestPn);
      this.deliveredBytes += bytesAcked;
      this.deliveredTimeUs = nowUs;
      priorDelivered = sb.delivered[s]!;
      const sendElapsed = sb.sentTimeUs[s]! - sb.firstSentTimeUs[s]!;
      const ackElapsed = nowUs - sb.deliveredTimeUs[s]!;
      this.firstSentTimeUs = sb.sentTimeUs[s]!;
      largestAckedSentUs = sb.sentTimeUs[s]!;
      isAppLimited = (sb.flags[s]! & PKT_APP_LIMITED) !== 0;
      intervalUs = sendElapsed > ackElapsed ? sendElapsed : ackElapsed;
      // The draft discards intervals shorter than min RTT: ACK compression would overstate the rate.
      if (intervalUs > 0 && intervalUs >= this.rtt.minRttUs) {
        rate = ((this.deliveredBytes - priorDelivered) * 1e6) / intervalUs;
        this.latestDeliveryRateBps = rate;
      }
      if (this.appLimitedUntil > 0 && this.deliveredBytes > this.appLimitedUntil) this.appLimitedUntil = 0;
    }

    // Cumulative stream ack: ground truth for freeing the send buffer and for flow control.
    if (f.flags & FLAG_ACK) {
      const ackOff = unwrapU32((f.ack - this.localIsn) >>> 0, this.sndUna);
      const maxAck = this.sndNxt + (this.isFinSent ? 1 : 0);
      if (ackOff >= this.sndUna && ackOff <= maxAck) {
        if (ackOff > this.sndUna) {
          this.sndUna = ackOff;
          this.sendBuf.ackUpTo(this.isFinSent && ackOff > this.finOffset ? this.finOffset : ackOff);
          this.sackedData.removeBelow(ackOff);
          if (this.isFinSent && ackOff > this.finOffset) this.isFinAcked = true;
          if (this.isWritableWanted && this.sendBuf.freeBytes >= this.sendBuf.maxBytes >>> 2) {
            this.isWritableWanted = false;
            this.pushEvent(EV_WRITABLE);
          }
        }
        const limit = Math.min(ackOff, this.sendBuf.endOffset) + f.window;
        if (f.window > this.maxPeerWindowBytes) this.maxPeerWindowBytes = f.window;
        if (limit > this.sendLimit) {
          this.sendLimit = limit;
          this.persistBackoff = 0;
          this.persistDeadlineUs = Infinity;
        }
      }
    }

    // Loss detection (RFC 9002 §6.1), then congestion control: losses first, as RFC 9002 Appendix B.
    let lostBytes = 0;
    if (sb.largestAckedPn > sb.basePn) lostBytes = this.detectLosses(nowUs);
    else sb.advanceBase();
    const cc = this.cc;
    if (cc && bytesAcked > 0) {
      const rs = this.sample;
      rs.nowUs = nowUs;
      rs.bytesAcked = bytesAcked;
      rs.deliveredBytes = this.deliveredBytes;
      rs.priorDeliveredBytes = priorDelivered;
      rs.deliveryRateBps = rate;
      rs.intervalUs = intervalUs;
      rs.isAppLimited = isAppLimited;
      rs.minRttUs = this.rtt.minRttUs;
      rs.srttUs = this.rtt.srttUs;
      rs.bytesInFlight = sb.bytesInFlight;
      rs.largestAckedSentTimeUs = largestAckedSentUs;
      rs.lostBytes = lostBytes;
      cc.onAck(rs);
    }
  }

  /** Run RFC 9002 loss detection; queue lost chunks; tell the controller. Returns lost in-flight bytes. */
  private detectLosses(nowUs: Micros): number {
    const sb = this.sb;
    const rtt = this.rtt;
    const base = rtt.latestRttUs > rtt.srttUs ? rtt.latestRttUs : rtt.srttUs;
    let lossDelayUs = (9 * base) / 8;
    if (lossDelayUs < rtt.granularityUs) lossDelayUs = rtt.granularityUs;
    this.lossTimeUs = sb.detectLosses(nowUs, lossDelayUs, PACKET_THRESHOLD);
    const lost = this.onPacketsLost();
    sb.advanceBase();
    if (lost > 0 && this.cc) this.cc.onLoss(nowUs, lost, this.lastLostSentUs, sb.bytesInFlight);
    return lost;
  }

  private lastLostSentUs: Micros = 0;

  /** Queue the chunks of sb.newlyLost for retransmission; returns their in-flight bytes. */
  private onPacketsLost(): number {
    const sb = this.sb;
    let lostBytes = 0;
    for (let i = 0; i < sb.newlyLostCount; i++) {
      const pn = sb.newlyLost[i]!;
      const s = sb.slot(pn);
      const flags = sb.flags[s]!;
      this.packetsLost++;
      if (flags & PKT_SYN) {
        this.isSynPending = true;
        continue;
      }
      if ((flags & PKT_IN_FLIGHT) === 0) continue;
      lostBytes += sb.sizeBytes[s]!;
      if (sb.sentTimeUs[s]! > this.lastLostSentUs) this.lastLostSentUs = sb.sentTimeUs[s]!;
      this.queueRetransmit(sb.chunkOffset[s]!, sb.chunkLen[s]!, (flags & PKT_FIN) !== 0);
    }
    return lostBytes;
  }

  private processData(f: SegmentFields, seg: Uint8Array): Result<void> {
    const offset = unwrapU32((f.seq - this.peerIsn) >>> 0, this.recvBuf.contiguousEnd);
    const len = f.payloadBytes;
    const end = offset + len;
    if (offset < 0) return OK;
    if (this.peerFinOffset >= 0 && end > this.peerFinOffset)
      return err('invalid_argument', 'data beyond the peer FIN', { detail: { finOffset: this.peerFinOffset, end } });
    // A FIN beyond our window is not taken (its data is trimmed too); the peer retransmits it later.
    if (f.flags & FLAG_FIN && end <= this.recvBuf.limitOffset) {
      if (this.peerFinOffset >= 0 && this.peerFinOffset !== end) return err('invalid_argument', 'FIN moved');
      if (end < this.recvBuf.contiguousEnd) return err('invalid_argument', 'FIN below received data');
      this.peerFinOffset = end;
    }
    const before = this.recvBuf.contiguousEnd;
    if (offset !== before || this.recvBuf.hasGaps) this.isAckNow = true; // out of order, or fills a hole (RFC 5681 §4.2)
    const advanced = len > 0 ? this.recvBuf.insert(offset, seg, f.payloadOffset, len) : 0;
    if (advanced > 0 && !this.isReadableSignalled) {
      this.isReadableSignalled = true;
      this.pushEvent(EV_READABLE);
    }
    if (!this.isPeerFinReceived && this.peerFinOffset >= 0 && this.recvBuf.contiguousEnd === this.peerFinOffset) {
      this.isPeerFinReceived = true;
      this.isAckNow = true;
      this.checkFinished();
    }
    return OK;
  }

  private checkFinished(): void {
    if (this.isPeerFinReceived && !this.isFinishedEmitted && this.recvBuf.readOffset === this.peerFinOffset) {
      this.isFinishedEmitted = true;
      this.pushEvent(EV_FINISHED);
      this.checkClosedEvent();
    }
  }

  /** Both FINs exchanged and ours acknowledged: TIME_WAIT for the active closer, CLOSED for the other. */
  private checkClose(nowUs: Micros): void {
    if (this.phase !== Phase.Established || !this.isFinAcked || !this.isPeerFinReceived) return;
    if (this.isActiveCloser) {
      this.phase = Phase.TimeWait;
      this.timeWaitUntilUs = nowUs + this.timeWaitUs;
    } else {
      this.phase = Phase.Closed;
    }
    this.lossTimeUs = Infinity;
    this.persistDeadlineUs = Infinity;
    this.checkClosedEvent();
  }

  private checkClosedEvent(): void {
    if (this.isClosedEmitted || !this.isFinishedEmitted) return;
    if (this.phase === Phase.TimeWait || (this.phase === Phase.Closed && this.isFinAcked)) {
      this.isClosedEmitted = true;
      this.events.push({ kind: 'closed', error: null });
    }
  }

  private onPeerReset(reason: Uint8Array | null): void {
    // A refused SYN may say why (a network policy, issue 15): the dialer's error names the rule.
    const why = reason && this.phase === Phase.SynSent ? decodePolicyResetReason(reason) : null;
    if (why) {
      const rule = why.rule_index === null ? why.rule : `rule ${why.rule_index + 1} ${why.rule}`;
      this.closeWith(pilotError('policy_denied', `network ${why.network}'s policy denies port ${why.port}: ${rule}`, {
        hint: 'the receiving node refused it; `pilotctl policy get NETWORK` shows the policy',
        detail: { ...why },
      }));
      return;
    }
    const err = pilotError('connection_failed', this.phase === Phase.SynSent ? 'connection refused by the peer' : 'connection reset by the peer');
    this.closeWith(err);
  }

  private closeWith(error: PilotError): void {
    this.enterClosed(error);
  }

  private enterClosed(error: PilotError | null): void {
    this.phase = Phase.Closed;
    this.sendBuf.clear();
    if (error !== null || this.isRstPending) this.recvBuf.clear();
    this.retxCount = 0;
    this.lossTimeUs = Infinity;
    this.persistDeadlineUs = Infinity;
    if (!this.isClosedEmitted) {
      this.isClosedEmitted = true;
      this.events.push({ kind: 'closed', error });
    }
  }

  private pushEvent(e: ConnEvent): void {
    this.events.push(e);
  }

  // ───────────────────────────── internals: send ─────────────────────────────

  /** A keepalive PING after keepaliveIntervalUs of silence; an unanswered one is repeated every RTO. */
  private keepaliveDeadlineUs(): Micros {
    if (this.lastReceivedUs >= this.lastKeepaliveUs) return this.lastReceivedUs + this.keepaliveIntervalUs;
    const retry = this.rtt.rtoUs();
    return this.lastKeepaliveUs + (retry < this.keepaliveIntervalUs ? retry : this.keepaliveIntervalUs);
  }

  private ptoDeadlineUs(): Micros {
    return this.sb.lastAckElicitingSentUs + this.currentRtoUs();
  }

  /**
   * First expiry: a tail-loss probe after one PTO (RFC 9002 §6.2). Later ones: the RFC 6298 RTO, doubling per
   * expiry (§5.5) up to maxRto. Before any RTT sample (handshake) the initial RTO, doubling.
   */
  private currentRtoUs(): Micros {
    const rtt = this.rtt;
    const maxRto = rtt.maxRtoUs;
    let t: number;
    if (!rtt.hasSample || this.phase !== Phase.Established) t = rtt.rtoUs() * 2 ** this.ptoCount;
    else if (this.ptoCount === 0) t = rtt.ptoUs(this.peerMaxAckDelayUs);
    else t = rtt.rtoUs() * 2 ** (this.ptoCount - 1);
    return t > maxRto ? maxRto : t;
  }

  private onPto(nowUs: Micros): void {
    this.ptoCount++;
    if (this.phase !== Phase.Established) {
      if (++this.synRetries > this.maxSynRetries) {
        this.closeWith(pilotError('connection_failed', 'handshake timed out: no answer from the peer'));
        return;
      }
      this.sb.markAllLost();
      this.onPacketsLost();
      this.sb.advanceBase();
      this.isSynPending = true;
      return;
    }
    if (this.ptoCount === 1) {
      this.isTlpPending = true;
      return;
    }
    // RTO: everything outstanding is presumed lost; resend from the oldest with a collapsed window.
    this.rtoCount++;
    this.sb.markAllLost();
    const lost = this.onPacketsLost();
    this.sb.advanceBase();
    this.lossTimeUs = Infinity;
    if (this.cc) {
      if (lost > 0) this.cc.onLoss(nowUs, lost, this.lastLostSentUs, this.sb.bytesInFlight);
      this.cc.onRtoTimeout(nowUs);
    }
  }

  private queueRetransmit(offset: number, len: number, isFin: boolean): void {
    if (this.retxCount === this.retxOffset.length) {
      const n = this.retxOffset.length * 2;
      const o = new Float64Array(n);
      const l = new Int32Array(n);
      for (let i = 0; i < this.retxCount; i++) {
        const j = (this.retxHead + i) % this.retxOffset.length;
        o[i] = this.retxOffset[j]!;
        l[i] = this.retxLen[j]!;
      }
      this.retxOffset = o;
      this.retxLen = l;
      this.retxHead = 0;
    }
    let j = this.retxHead + this.retxCount;
    if (j >= this.retxOffset.length) j -= this.retxOffset.length;
    this.retxOffset[j] = offset;
    this.retxLen[j] = isFin ? len | RETX_FIN : len;
    this.retxCount++;
  }

  /** Drop queued retransmissions the peer already has; true when one is left at the head. */
  private hasRetransmit(): boolean {
    while (this.retxCount > 0) {
      const off = this.retxOffset[this.retxHead]!;
      const raw = this.retxLen[this.retxHead]!;
      const len = raw & ~RETX_FIN;
      const isFin = (raw & RETX_FIN) !== 0;
      const end = off + len + (isFin ? 1 : 0);
      if (end > this.sndUna && !this.sackedData.covers(off < this.sndUna ? this.sndUna : off, end)) return true;
      this.popRetransmit();
    }
    return false;
  }

  private popRetransmit(): void {
    this.retxHead++;
    if (this.retxHead === this.retxOffset.length) this.retxHead = 0;
    this.retxCount--;
  }

  private transmitEstablished(nowUs: Micros, buf: Uint8Array): number {
    if (this.isAckOnlyNext) {
      this.isAckOnlyNext = false;
      return this.writeControl(nowUs, buf, FLAG_ACK, 0);
    }
    const cc = this.cc!;
    this.pacingWaitUs = 0;

    if (this.isTlpPending) {
      this.isTlpPending = false;
      const n = this.writeProbe(nowUs, buf);
      if (n > 0) return n;
    }

    const hasRetx = this.hasRetransmit();
    let newLen = 0;
    let isFinOnly = false;
    let isWindowBlocked = false;
    if (!hasRetx) {
      const end = this.sendBuf.endOffset;
      const allowed = end < this.sendLimit ? end : this.sendLimit;
      newLen = allowed - this.sndNxt;
      if (newLen > this.maxPayload) newLen = this.maxPayload;
      if (newLen < 0) newLen = 0;
      if (newLen > 0 && newLen < this.maxPayload) {
        const isAll = this.sndNxt + newLen === end;
        if (!isAll) {
          // window-limited: sender SWS avoidance (RFC 1122 §4.2.3.4) — wait for a useful window
          if (newLen < this.maxPeerWindowBytes / 2) {
            newLen = 0;
            isWindowBlocked = true;
          }
        } else if (this.nagle && !this.isFinQueued && this.sndNxt > this.sndUna) {
          newLen = 0; // Nagle (RFC 896): one small segment outstanding at a time
        }
      } else if (newLen === 0 && this.sndNxt < end) {
        isWindowBlocked = true;
      }
      isFinOnly = newLen === 0 && this.isFinQueued && !this.isFinSent && this.sndNxt === this.finOffset;
    }

    if (hasRetx || newLen > 0 || isFinOnly) {
      if (this.sb.bytesInFlight < cc.cwndBytes()) {
        const size = SEGMENT_HEADER_BYTES + (hasRetx ? this.retxHeadLen() : newLen);
        const wait = this.pacer.delayUntil(nowUs, size, cc.pacingRateBps());
        if (wait === 0) {
          if (hasRetx) return this.writeRetransmit(nowUs, buf);
          return this.writeNewData(nowUs, buf, newLen);
        }
        this.pacingWaitUs = wait;
      }
    } else if (this.sb.bytesInFlight < cc.cwndBytes()) {
      // Nothing to send and room in the window: later rate samples are app-limited (draft §3.4).
      this.appLimitedUntil = this.deliveredBytes + this.sb.bytesInFlight || 1;
    }

    if (isWindowBlocked && this.sb.ackElicitingOutstanding === 0 && this.persistDeadlineUs === Infinity && !this.isPersistProbePending) {
      // Zero-window persist timer (RFC 9293 §3.8.6.1): the window update may be lost; probe with backoff.
      const interval = Math.min(this.rtt.rtoUs() * 2 ** this.persistBackoff, PERSIST_MAX_US);
      this.persistDeadlineUs = nowUs + interval;
    }
    if (this.isPersistProbePending || this.isKeepalivePending) {
      this.isPersistProbePending = false;
      this.isKeepalivePending = false;
      return this.writeControl(nowUs, buf, FLAG_ACK | FLAG_PING, 0);
    }
    if (this.isAckNow) return this.writeControl(nowUs, buf, FLAG_ACK, 0);
    return 0;
  }

  private retxHeadLen(): number {
    const off = this.retxOffset[this.retxHead]!;
    const len = this.retxLen[this.retxHead]! & ~RETX_FIN;
    return off < this.sndUna ? Math.max(0, off + len - this.sndUna) : len;
  }

  /** Tail-loss probe: new data if the peer's window allows, else the newest outstanding chunk again. */
  private writeProbe(nowUs: Micros, buf: Uint8Array): number {
    const end = this.sendBuf.endOffset;
    const allowed = end < this.sendLimit ? end : this.sendLimit;
    let newLen = allowed - this.sndNxt;
    if (newLen > this.maxPayload) newLen = this.maxPayload;
    if (newLen > 0) return this.writeNewData(nowUs, buf, newLen);
    const pn = this.sb.newestOutstandingChunk();
    if (pn >= 0) {
      const s = this.sb.slot(pn);
      const off = this.sb.chunkOffset[s]!;
      const len = this.sb.chunkLen[s]!;
      const isFin = (this.sb.flags[s]! & PKT_FIN) !== 0;
      if (off + len > this.sndUna || (isFin && !this.isFinAcked)) {
        this.retransmits++;
        const from = off < this.sndUna ? this.sndUna : off;
        const n = off < this.sndUna ? Math.max(0, off + len - this.sndUna) : len;
        // A chunk sent before the segment size shrank: its first segment's worth elicits the ACK as well.
        if (n > this.maxPayload) return this.writeChunk(nowUs, buf, from, this.maxPayload, false, false);
        return this.writeChunk(nowUs, buf, from, n, isFin, false);
      }
    }
    return this.writeControl(nowUs, buf, FLAG_ACK | FLAG_PING, 0);
  }

  private writeRetransmit(nowUs: Micros, buf: Uint8Array): number {
    let off = this.retxOffset[this.retxHead]!;
    const raw = this.retxLen[this.retxHead]!;
    let len = raw & ~RETX_FIN;
    let isFin = (raw & RETX_FIN) !== 0;
    if (off < this.sndUna) {
      len = Math.max(0, off + len - this.sndUna);
      off = this.sndUna;
    }
    if (len > this.maxPayload) {
      // Sent before the path's segment size shrank: the rest stays at the head of the queue.
      this.retxOffset[this.retxHead] = off + this.maxPayload;
      this.retxLen[this.retxHead] = (len - this.maxPayload) | (isFin ? RETX_FIN : 0);
      len = this.maxPayload;
      isFin = false;
    } else {
      this.popRetransmit();
    }
    this.retransmits++;
    return this.writeChunk(nowUs, buf, off, len, isFin, false);
  }

  private writeNewData(nowUs: Micros, buf: Uint8Array, len: number): number {
    const off = this.sndNxt;
    this.sndNxt = off + len;
    const isFin = this.isFinQueued && this.sndNxt === this.finOffset;
    if (isFin) {
      this.isFinSent = true;
      if (!this.isPeerFinReceived) this.isActiveCloser = true;
    }
    return this.writeChunk(nowUs, buf, off, len, isFin, this.sndNxt === this.sendBuf.endOffset);
  }

  private writeChunk(nowUs: Micros, buf: Uint8Array, off: number, len: number, isFin: boolean, isPush: boolean): number {
    const sb = this.sb;
    if (sb.bytesInFlight === 0) {
      // draft-cheng §3.2: a send from idle starts a fresh delivery interval
      this.firstSentTimeUs = nowUs;
      this.deliveredTimeUs = nowUs;
    }
    const tx = this.tx;
    tx.flags = FLAG_ACK | (isFin ? FLAG_FIN : 0) | (isPush || isFin ? FLAG_PSH : 0);
    tx.seq = (this.localIsn + off) >>> 0;
    const room = this.mss - SEGMENT_HEADER_BYTES - len;
    const sackCount = this.fillAckFields(nowUs, buf, room);
    const payloadOff = SEGMENT_HEADER_BYTES + sackCount * SACK_BLOCK_BYTES;
    if (len > 0) this.sendBuf.copyOut(off, len, buf, payloadOff);
    const size = payloadOff + len;
    const pn = sb.onSent(
      nowUs,
      size,
      PKT_IN_FLIGHT | PKT_ACK_ELICITING | (isFin ? PKT_FIN : 0) | (this.appLimitedUntil > 0 ? PKT_APP_LIMITED : 0),
      off,
      len,
      this.deliveredBytes,
      this.deliveredTimeUs,
      this.firstSentTimeUs,
    );
    tx.pn = pn >>> 0;
    writeSegmentHeader(buf, tx);
    this.pacer.onSent(size);
    this.cc!.onPacketSent(nowUs, size, sb.bytesInFlight);
    this.bytesSent += len;
    this.packetsSent++;
    return size;
  }

  /** ACK-only, PING or RST: not in flight. */
  private writeControl(nowUs: Micros, buf: Uint8Array, flags: number, _unused: number): number {
    const tx = this.tx;
    tx.flags = flags;
    tx.seq = (this.localIsn + this.sndNxt) >>> 0;
    let sackCount = 0;
    if (flags & FLAG_RST) {
      tx.ack = 0;
      tx.window = 0;
      tx.ackPn = 0;
      tx.ackDelayUs = 0;
      tx.firstAckRange = 0;
      tx.sackCount = 0;
    } else {
      sackCount = this.fillAckFields(nowUs, buf, this.mss - SEGMENT_HEADER_BYTES);
    }
    const pn = this.sb.onSent(nowUs, SEGMENT_HEADER_BYTES, 0, 0, 0, 0, 0, 0);
    tx.pn = pn >>> 0;
    writeSegmentHeader(buf, tx);
    this.packetsSent++;
    return SEGMENT_HEADER_BYTES + sackCount * SACK_BLOCK_BYTES;
  }

  private writeSyn(nowUs: Micros, buf: Uint8Array, flags: number): number {
    const tx = this.tx;
    tx.flags = flags;
    tx.seq = this.localIsn;
    let sackCount = 0;
    if (flags & FLAG_ACK) sackCount = this.fillAckFields(nowUs, buf, this.mss - SEGMENT_HEADER_BYTES - SYN_OPTIONS_BYTES);
    else {
      tx.ack = 0;
      tx.ackPn = 0;
      tx.ackDelayUs = 0;
      tx.firstAckRange = 0;
      tx.sackCount = 0;
      tx.window = Math.min(this.recvBuf.maxBytes, U32_MAX);
    }
    const optOff = SEGMENT_HEADER_BYTES + sackCount * SACK_BLOCK_BYTES;
    encodeSynOptions({ version: TRANSPORT_VERSION, maxSegmentBytes: this.ownMss, maxAckDelayUs: this.maxAckDelayUs }, buf, optOff);
    const pn = this.sb.onSent(nowUs, optOff + SYN_OPTIONS_BYTES, PKT_ACK_ELICITING | PKT_SYN, 0, 0, 0, 0, 0);
    tx.pn = pn >>> 0;
    writeSegmentHeader(buf, tx);
    this.packetsSent++;
    return optOff + SYN_OPTIONS_BYTES;
  }

  /**
   * Fill tx's ACK fields and write as many SACK blocks as fit in `roomBytes` at buf[35…]; returns the block
   * count. Clears the pending ACK, or asks for an ACK-only segment next when the blocks did not all fit.
   */
  private fillAckFields(nowUs: Micros, buf: Uint8Array, roomBytes: number): number {
    const tx = this.tx;
    const rb = this.recvBuf;
    tx.ack = (this.peerIsn + rb.contiguousEnd + (this.isPeerFinReceived ? 1 : 0)) >>> 0;
    const limit = rb.limitOffset;
    const wnd = limit - rb.contiguousEnd;
    tx.window = wnd > U32_MAX ? U32_MAX : wnd < 0 ? 0 : wnd;
    this.lastAdvertisedLimit = limit;
    const ranges = this.rxPns;
    const n = ranges.count;
    let sackCount = 0;
    if (n === 0) {
      tx.ackPn = 0;
      tx.ackDelayUs = 0;
      tx.firstAckRange = 0;
    } else {
      const largest = this.largestRxPn;
      tx.ackPn = largest >>> 0;
      tx.ackDelayUs = nowUs - this.largestRxTimeUs;
      const first = largest - ranges.start(n - 1);
      tx.firstAckRange = first > U16_MAX ? U16_MAX : first;
      if (first <= U16_MAX) {
        const maxBlocks = Math.min(n - 1, Math.floor(roomBytes / SACK_BLOCK_BYTES), 255);
        let off = SEGMENT_HEADER_BYTES;
        for (let i = n - 2; i >= 0 && sackCount < maxBlocks; i--) {
          const gap = ranges.start(i + 1) - ranges.end(i) - 1;
          const len = ranges.end(i) - ranges.start(i) - 1;
          if (gap > U16_MAX || len > U16_MAX) break;
          writeU16(buf, off, gap);
          writeU16(buf, off + 2, len);
          off += SACK_BLOCK_BYTES;
          sackCount++;
        }
        if (sackCount === n - 1 || sackCount < maxBlocks) {
          this.isAckRangeChanged = false;
          if (n > 1) this.noteCompleteReport(this.sb.nextPn, largest);
        } else if (this.isAckRangeChanged) this.isAckOnlyNext = true; // piggybacked ACK had no room for the new ranges
      }
    }
    tx.sackCount = sackCount;
    this.isAckNow = false;
    this.ackDeadlineUs = Infinity;
    this.elicitingSinceAck = 0;
    return sackCount;
  }
}

const OK: Result<void> = ok();
const REPORT_FIFO_SIZE = 256;
/** Marks a queued retransmission that carries the FIN (lengths stay below 2^16). */
const RETX_FIN = 0x40000000;
/** Persist probes back off up to this interval. */
const PERSIST_MAX_US = 5_000_000;

function clampInt(v: number, lo: number, hi: number): number {
  v = Math.floor(v);
  return v < lo ? lo : v > hi ? hi : v;
}
