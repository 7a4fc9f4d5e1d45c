// The congestion-control seam. The connection owns loss detection and delivery-rate sampling
// (draft-cheng-iccrg-delivery-rate-estimation); a controller only turns those signals into a congestion
// window and a pacing rate. Rates are bytes per second (…Bps), times µs.
import type { Micros } from '../../core/clock.js';

/**
 * One ACK's worth of signals. The connection reuses a single object per connection: controllers read it
 * during onAck and must not keep it.
 */
export interface AckSample {
  nowUs: Micros;
  /** In-flight bytes newly acknowledged by this ACK. */
  bytesAcked: number;
  /** Connection total of delivered bytes after this ACK (C.delivered). */
  deliveredBytes: number;
  /** C.delivered when the most recently sent acknowledged packet was sent (P.delivered). */
  priorDeliveredBytes: number;
  /** Delivery rate over the sample's interval; 0 when the interval was unusable. */
  deliveryRateBps: number;
  intervalUs: Micros;
  /** The sample was taken while the sender had nothing to send: it may underestimate the path. */
  isAppLimited: boolean;
  /** RTT of this ACK's largest newly acknowledged packet, or −1 when it gave none. */
  rttUs: Micros;
  minRttUs: Micros;
  srttUs: Micros;
  /** After this ACK's acknowledgements and losses. */
  bytesInFlight: number;
  /** Send time of the largest newly acknowledged packet (NewReno's recovery test, RFC 9002 §7.3.2). */
  largestAckedSentTimeUs: Micros;
  /** Bytes declared lost while processing this ACK (already reported through onLoss). */
  lostBytes: number;
}

export interface CongestionController {
  readonly name: string;
  onPacketSent(nowUs: Micros, bytes: number, bytesInFlight: number): void;
  onAck(sample: AckSample): void;
  /** Packets declared lost (RFC 9002 §6.1); `largestLostSentTimeUs` lets NewReno start one recovery per RTT. */
  onLoss(nowUs: Micros, lostBytes: number, largestLostSentTimeUs: Micros, bytesInFlight: number): void;
  /** Retransmission timeout: everything in flight was declared lost. */
  onRtoTimeout(nowUs: Micros): void;
  cwndBytes(): number;
  /** Pacing rate in bytes/s; Infinity = do not pace. */
  pacingRateBps(): number;
  /** Extra state for stats and tests (e.g. the BBR mode). */
  debugState(): string;
  /** The segment size changed (path MTU discovery): windows counted in segments follow it. */
  setMss?(mssBytes: number): void;
}

export interface CongestionInit {
  mssBytes: number;
  nowUs: Micros;
  /** Seeds any randomisation (BBR's initial PROBE_BW phase); derived from the connection id. */
  seed: number;
  /** Smoothed RTT from the handshake, 0 when unknown. */
  srttUs: Micros;
  /**
   * Mark the delivery-rate samples of packets sent from now until the current flight is acknowledged as
   * app-limited (BBR's PROBE_RTT deliberately sends little and must not lower its bandwidth estimate).
   */
  markAppLimited: () => void;
}

export type CongestionControllerFactory = (init: CongestionInit) => CongestionController;

/** RFC 9002 §7.2: min(10·mss, max(14720, 2·mss)). */
export function initialWindowBytes(mssBytes: number): number {
  return Math.min(10 * mssBytes, Math.max(14_720, 2 * mssBytes));
}
