// Smoothed RTT and retransmission timeout, RFC 6298 §2 with RFC 9002 §5 refinements (min RTT, ack delay).
// Samples are unambiguous by construction: every segment has a fresh packet number, so a retransmission is
// never confused with its original and Karn's rule (RFC 6298 §3) has nothing left to exclude.
import type { Micros } from '../core/clock.js';

export interface RttConfig {
  /** RTO before the first sample; RFC 6298 §2.1 says 1 s. */
  initialRtoUs: Micros;
  /** RFC 6298 §2.4 rounds RTO up to 1 s; we default to 200 ms like Linux (agents on LANs/loopback). */
  minRtoUs: Micros;
  /** RFC 6298 §2.5 allows a maximum of at least 60 s. */
  maxRtoUs: Micros;
  /** Clock granularity G (RFC 6298 §2, RFC 9002 kGranularity = 1 ms). */
  granularityUs: Micros;
  /**
   * The original v0.5 transport keeps SRTT = 0 as "no sample yet", so a 0 µs first sample (an ACK in the same
   * microsecond) leaves the estimator without one (RTO stays initialRtoUs). Default false: 0 is a sample.
   */
  isZeroFirstSampleIgnored?: boolean;
}

export const DEFAULT_RTT_CONFIG: RttConfig = {
  initialRtoUs: 1_000_000,
  minRtoUs: 200_000,
  maxRtoUs: 60_000_000,
  granularityUs: 1_000,
};

export class RttEstimator {
  srttUs = 0;
  rttvarUs = 0;
  /** Lowest raw sample seen (RFC 9002 §5.2); 0 until the first sample. */
  minRttUs = 0;
  latestRttUs = 0;
  hasSample = false;

  constructor(private readonly cfg: RttConfig = DEFAULT_RTT_CONFIG) {}

  /**
   * Feed one RTT measurement (µs) and the peer's reported ack delay, already capped to its max ack delay.
   * RFC 9002 §5.3: the ack delay is subtracted only while that keeps the sample ≥ min RTT.
   */
  update(sampleUs: Micros, ackDelayUs: Micros = 0): void {
    if (!(sampleUs >= 0)) return;
    if (sampleUs === 0 && !this.hasSample && this.cfg.isZeroFirstSampleIgnored === true) return;
    this.latestRttUs = sampleUs;
    if (!this.hasSample) {
      // RFC 6298 §2.2
      this.hasSample = true;
      this.minRttUs = sampleUs;
      this.srttUs = sampleUs;
      this.rttvarUs = sampleUs / 2;
      return;
    }
    if (sampleUs < this.minRttUs) this.minRttUs = sampleUs;
    let adjusted = sampleUs;
    if (ackDelayUs > 0 && sampleUs >= this.minRttUs + ackDelayUs) adjusted = sampleUs - ackDelayUs;
    // RFC 6298 §2.3: RTTVAR first, with the old SRTT; β = 1/4, α = 1/8
    const dev = this.srttUs > adjusted ? this.srttUs - adjusted : adjusted - this.srttUs;
    this.rttvarUs = 0.75 * this.rttvarUs + 0.25 * dev;
    this.srttUs = 0.875 * this.srttUs + 0.125 * adjusted;
  }

  /** RTO = SRTT + max(G, 4·RTTVAR), clamped to [minRtoUs, maxRtoUs]; initialRtoUs before any sample. */
  rtoUs(): Micros {
    if (!this.hasSample) return this.cfg.initialRtoUs;
    const v = 4 * this.rttvarUs;
    const rto = this.srttUs + (v > this.cfg.granularityUs ? v : this.cfg.granularityUs);
    return rto < this.cfg.minRtoUs ? this.cfg.minRtoUs : rto > this.cfg.maxRtoUs ? this.cfg.maxRtoUs : rto;
  }

  /**
   * Probe timeout (RFC 9002 §6.2.1): SRTT + max(4·RTTVAR, G) + the peer's max ack delay, not clamped to minRto
   * so a tail loss is probed after about one RTT; before any sample it is the initial RTO.
   */
  ptoUs(peerMaxAckDelayUs: Micros): Micros {
    if (!this.hasSample) return this.cfg.initialRtoUs;
    const v = 4 * this.rttvarUs;
    return this.srttUs + (v > this.cfg.granularityUs ? v : this.cfg.granularityUs) + peerMaxAckDelayUs;
  }

  get granularityUs(): Micros {
    return this.cfg.granularityUs;
  }
  get maxRtoUs(): Micros {
    return this.cfg.maxRtoUs;
  }
}
