// NewReno (RFC 9002 §7 and Appendix B): slow start, congestion avoidance, one window halving per recovery
// period. Kept for comparison: under random loss it collapses where BBR does not (test/sim).
import type { Micros } from '../../core/clock.js';
import { initialWindowBytes, type AckSample, type CongestionController, type CongestionInit } from './controller.js';

/** RFC 9002 §7.7: pace at 1.25·cwnd/srtt so ACK clocking, not bursts, fills the window. */
const PACING_GAIN = 1.25;

export class NewReno implements CongestionController {
  readonly name = 'newreno';
  private mss: number;
  private cwnd: number;
  private ssthreshBytes = Infinity;
  private recoveryStartUs = -Infinity;
  private srttUs = 0;

  constructor(init: CongestionInit) {
    this.mss = init.mssBytes;
    this.cwnd = initialWindowBytes(init.mssBytes);
    this.srttUs = init.srttUs;
  }

  cwndBytes(): number {
    return this.cwnd;
  }
  setMss(mssBytes: number): void {
    this.mss = mssBytes;
    if (this.cwnd < 2 * mssBytes) this.cwnd = 2 * mssBytes;
  }
  pacingRateBps(): number {
    return this.srttUs > 0 ? (PACING_GAIN * this.cwnd * 1e6) / this.srttUs : Infinity;
  }
  debugState(): string {
    return this.cwnd < this.ssthreshBytes ? 'slow_start' : 'congestion_avoidance';
  }

  onPacketSent(): void {}

  onAck(rs: AckSample): void {
    if (rs.srttUs > 0) this.srttUs = rs.srttUs;
    // RFC 9002 §7.3.2: packets sent before recovery began do not grow the window; §7.8: nor does an
    // under-used window
    if (rs.largestAckedSentTimeUs <= this.recoveryStartUs || rs.isAppLimited) return;
    if (this.cwnd < this.ssthreshBytes) this.cwnd += rs.bytesAcked;
    else this.cwnd += (this.mss * rs.bytesAcked) / this.cwnd;
  }

  onLoss(nowUs: Micros, _lostBytes: number, largestLostSentTimeUs: Micros): void {
    if (largestLostSentTimeUs <= this.recoveryStartUs) return;
    this.recoveryStartUs = nowUs;
    this.ssthreshBytes = Math.max(this.cwnd / 2, 2 * this.mss);
    this.cwnd = this.ssthreshBytes;
  }

  onRtoTimeout(nowUs: Micros): void {
    // RFC 9002 §7.6.2 persistent congestion: collapse to the minimum window
    this.recoveryStartUs = nowUs;
    this.ssthreshBytes = Math.max(this.cwnd / 2, 2 * this.mss);
    this.cwnd = 2 * this.mss;
  }
}

export function newRenoFactory() {
  return (init: CongestionInit): CongestionController => new NewReno(init);
}
