// BBR (v1) congestion control: a model of the path — bottleneck bandwidth (windowed max of delivery-rate
// samples over 10 round trips) and round-trip propagation time (windowed min over 10 s) — sets the pacing
// rate and caps inflight at a small multiple of the BDP. Loss is not a congestion signal, which is what keeps
// throughput up under random loss where AIMD collapses. Follows draft-cardwell-iccrg-bbr-congestion-control-00
// and Linux net/ipv4/tcp_bbr.c (modes, gains, full-pipe detection, PROBE_RTT).
import type { Micros } from '../../core/clock.js';
import { initialWindowBytes, type AckSample, type CongestionController, type CongestionInit } from './controller.js';
import { WindowedMaxFilter } from './windowed-max-filter.js';

const enum Mode {
  Startup = 0,
  Drain = 1,
  ProbeBw = 2,
  ProbeRtt = 3,
}
const MODE_NAMES = ['startup', 'drain', 'probe_bw', 'probe_rtt'];

/** 2/ln 2: the smallest gain that doubles the sending rate each round (tcp_bbr.c bbr_high_gain). */
const HIGH_GAIN = 2.885;
const DRAIN_GAIN = 1 / HIGH_GAIN;
const CWND_GAIN = 2;
const PACING_GAIN_CYCLE = [1.25, 0.75, 1, 1, 1, 1, 1, 1];
const BTL_BW_FILTER_ROUNDS = 10;
const MIN_RTT_WINDOW_US = 10_000_000;
const PROBE_RTT_DURATION_US = 200_000;
const FULL_BW_THRESHOLD = 1.25;
const FULL_BW_ROUNDS = 3;
/** tcp_bbr.c paces 1% below the estimate to drain queues a little. */
const PACING_MARGIN = 0.99;

export interface BbrOptions {
  /** Smallest window, in segments (tcp_bbr.c bbr_cwnd_min_target = 4). */
  minCwndSegments?: number;
}

/** tcp_bbr.c: extra_acked is a max over this many round trips (two windows alternate). */
const EXTRA_ACKED_WIN_RTTS = 5;
/** tcp_bbr.c bbr_extra_acked_max_us: cap the aggregation allowance at 100 ms of bandwidth. */
const EXTRA_ACKED_MAX_US = 100_000;
/** tcp_bbr.c bbr_ack_epoch_acked_reset_thresh (2^20 packets there; bytes here). */
const ACK_EPOCH_RESET_BYTES = 1 << 30;

export class Bbr implements CongestionController {
  readonly name = 'bbr';
  private mode: Mode = Mode.Startup;
  private mss: number;
  private minCwnd: number;
  private initialCwnd: number;
  private readonly minCwndSegments: number;
  private cwnd: number;
  private pacingRate: number;
  private pacingGain = HIGH_GAIN;
  private cwndGain = HIGH_GAIN;
  private readonly extraAcked = [0, 0];
  private extraAckedIdx = 0;
  private extraAckedWinRtts = 0;
  private ackEpochUs = 0;
  private ackEpochAcked = 0;
  private readonly btlBw = new WindowedMaxFilter(BTL_BW_FILTER_ROUNDS);
  private minRttUs = Infinity;
  private minRttStampUs: Micros;
  private roundCount = 0;
  private nextRoundDelivered = 0;
  private isRoundStart = false;
  private fullBwBps = 0;
  private fullBwRounds = 0;
  private isPipeFilled = false;
  private cycleIndex: number;
  private cycleStampUs: Micros = 0;
  private probeRttDoneStampUs: Micros = 0;
  private isProbeRttRoundDone = false;
  private priorCwnd = 0;
  private lostInCycleBytes = 0;
  private deliveredBytes = 0;
  private readonly markAppLimited: () => void;

  constructor(init: CongestionInit, opts: BbrOptions = {}) {
    this.mss = init.mssBytes;
    this.minCwndSegments = opts.minCwndSegments ?? 4;
    this.minCwnd = this.minCwndSegments * init.mssBytes;
    this.initialCwnd = initialWindowBytes(init.mssBytes);
    this.cwnd = this.initialCwnd;
    this.minRttStampUs = init.nowUs;
    this.markAppLimited = init.markAppLimited;
    // a random phase other than the 0.75 one, so flows do not probe in lockstep (tcp_bbr.c bbr_reset_probe_bw_mode)
    this.cycleIndex = PACING_GAIN_CYCLE.length - 1 - ((init.seed >>> 0) % (PACING_GAIN_CYCLE.length - 1));
    const rttUs = init.srttUs > 0 ? init.srttUs : 1_000;
    this.pacingRate = (HIGH_GAIN * this.initialCwnd * 1e6) / rttUs;
  }

  cwndBytes(): number {
    return this.cwnd;
  }
  setMss(mssBytes: number): void {
    this.mss = mssBytes;
    this.minCwnd = this.minCwndSegments * mssBytes;
    this.initialCwnd = initialWindowBytes(mssBytes);
    if (this.cwnd < this.minCwnd) this.cwnd = this.minCwnd;
    if (this.deliveredBytes === 0 && this.cwnd < this.initialCwnd) this.cwnd = this.initialCwnd;
  }
  pacingRateBps(): number {
    return this.pacingRate;
  }
  debugState(): string {
    return MODE_NAMES[this.mode]!;
  }
  /** Bottleneck bandwidth estimate, bytes/s. */
  bandwidthBps(): number {
    return this.btlBw.best;
  }

  onPacketSent(): void {}

  onLoss(_nowUs: Micros, lostBytes: number): void {
    this.lostInCycleBytes += lostBytes;
  }

  onRtoTimeout(): void {
    // The model survives a timeout; only the window restarts small and regrows by acked bytes per ACK.
    this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
    this.cwnd = this.minCwnd;
  }

  onAck(rs: AckSample): void {
    this.deliveredBytes = rs.deliveredBytes;
    this.updateRound(rs);
    this.updateBandwidth(rs);
    this.updateAckAggregation(rs);
    this.updateCyclePhase(rs);
    this.checkFullPipe(rs);
    this.checkDrain(rs);
    this.updateMinRtt(rs);
    this.setPacingRate();
    this.setCwnd(rs);
  }

  private bdpBytes(gain: number): number {
    const bw = this.btlBw.best;
    if (bw === 0 || this.minRttUs === Infinity) return this.initialCwnd;
    return (gain * bw * this.minRttUs) / 1e6;
  }

  private updateRound(rs: AckSample): void {
    this.isRoundStart = false;
    if (rs.bytesAcked > 0 && rs.priorDeliveredBytes >= this.nextRoundDelivered) {
      this.nextRoundDelivered = rs.deliveredBytes;
      this.roundCount++;
      this.isRoundStart = true;
    }
  }

  private updateBandwidth(rs: AckSample): void {
    const rate = rs.deliveryRateBps;
    if (rate > 0 && (!rs.isAppLimited || rate >= this.btlBw.best)) this.btlBw.update(this.roundCount, rate);
  }

  private updateCyclePhase(rs: AckSample): void {
    if (this.mode !== Mode.ProbeBw) return;
    const isFullLength = rs.nowUs - this.cycleStampUs > this.minRttUs;
    const priorInflight = rs.bytesInFlight + rs.bytesAcked;
    let advance: boolean;
    if (this.pacingGain > 1) {
      advance = isFullLength && (this.lostInCycleBytes > 0 || priorInflight >= this.bdpBytes(this.pacingGain));
    } else if (this.pacingGain < 1) {
      advance = isFullLength || priorInflight <= this.bdpBytes(1);
    } else {
      advance = isFullLength;
    }
    if (advance) {
      this.cycleIndex = (this.cycleIndex + 1) % PACING_GAIN_CYCLE.length;
      this.cycleStampUs = rs.nowUs;
      this.pacingGain = PACING_GAIN_CYCLE[this.cycleIndex]!;
      this.lostInCycleBytes = 0;
    }
  }

  private checkFullPipe(rs: AckSample): void {
    if (this.isPipeFilled || !this.isRoundStart || rs.isAppLimited) return;
    const bw = this.btlBw.best;
    if (bw >= this.fullBwBps * FULL_BW_THRESHOLD) {
      this.fullBwBps = bw;
      this.fullBwRounds = 0;
      return;
    }
    if (++this.fullBwRounds >= FULL_BW_ROUNDS) this.isPipeFilled = true;
  }

  private checkDrain(rs: AckSample): void {
    if (this.mode === Mode.Startup && this.isPipeFilled) {
      this.mode = Mode.Drain;
      this.pacingGain = DRAIN_GAIN;
      this.cwndGain = HIGH_GAIN;
    }
    if (this.mode === Mode.Drain && rs.bytesInFlight <= this.bdpBytes(1)) this.enterProbeBw(rs.nowUs);
  }

  private enterProbeBw(nowUs: Micros): void {
    this.mode = Mode.ProbeBw;
    this.cwndGain = CWND_GAIN;
    this.cycleStampUs = nowUs;
    this.pacingGain = PACING_GAIN_CYCLE[this.cycleIndex]!;
    this.lostInCycleBytes = 0;
  }

  private updateMinRtt(rs: AckSample): void {
    const isExpired = rs.nowUs > this.minRttStampUs + MIN_RTT_WINDOW_US;
    if (rs.rttUs >= 0 && (rs.rttUs < this.minRttUs || isExpired)) {
      this.minRttUs = rs.rttUs;
      this.minRttStampUs = rs.nowUs;
    }
    if (isExpired && this.mode !== Mode.ProbeRtt) {
      this.mode = Mode.ProbeRtt;
      this.pacingGain = 1;
      this.cwndGain = 1;
      this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
      this.probeRttDoneStampUs = 0;
    }
    if (this.mode !== Mode.ProbeRtt) return;
    // tcp_bbr.c bbr_update_min_rtt: ignore the low rate samples PROBE_RTT causes
    this.markAppLimited();
    if (this.probeRttDoneStampUs === 0 && rs.bytesInFlight <= this.minCwnd) {
      this.probeRttDoneStampUs = rs.nowUs + PROBE_RTT_DURATION_US;
      this.isProbeRttRoundDone = false;
      this.nextRoundDelivered = this.deliveredBytes;
    } else if (this.probeRttDoneStampUs !== 0) {
      if (this.isRoundStart) this.isProbeRttRoundDone = true;
      if (this.isProbeRttRoundDone && rs.nowUs > this.probeRttDoneStampUs) {
        this.minRttStampUs = rs.nowUs;
        this.cwnd = Math.max(this.cwnd, this.priorCwnd);
        this.priorCwnd = 0;
        if (this.isPipeFilled) this.enterProbeBw(rs.nowUs);
        else {
          this.mode = Mode.Startup;
          this.pacingGain = HIGH_GAIN;
          this.cwndGain = HIGH_GAIN;
        }
      }
    }
  }

  private setPacingRate(): void {
    const bw = this.btlBw.best;
    if (bw === 0) return;
    const rate = this.pacingGain * bw * PACING_MARGIN;
    if (this.isPipeFilled || rate > this.pacingRate) this.pacingRate = rate;
  }

  /**
   * ACK aggregation (tcp_bbr.c bbr_update_ack_aggregation): when ACKs arrive in bursts — an event loop that
   * handles a whole receive batch at once, delayed ACKs — the sender needs that much extra window to keep
   * sending between bursts, or cwnd = 2·BDP is used up before the next burst and the link idles.
   */
  private updateAckAggregation(rs: AckSample): void {
    const bw = this.btlBw.best;
    if (rs.bytesAcked <= 0 || bw === 0) return;
    if (this.isRoundStart) {
      this.extraAckedWinRtts = Math.min(31, this.extraAckedWinRtts + 1);
      if (this.extraAckedWinRtts >= EXTRA_ACKED_WIN_RTTS) {
        this.extraAckedWinRtts = 0;
        this.extraAckedIdx ^= 1;
        this.extraAcked[this.extraAckedIdx] = 0;
      }
    }
    let expectedAcked = (bw * (rs.nowUs - this.ackEpochUs)) / 1e6;
    if (this.ackEpochAcked <= expectedAcked || this.ackEpochAcked + rs.bytesAcked >= ACK_EPOCH_RESET_BYTES) {
      this.ackEpochAcked = 0;
      this.ackEpochUs = rs.nowUs;
      expectedAcked = 0;
    }
    this.ackEpochAcked += rs.bytesAcked;
    const extra = Math.min(this.ackEpochAcked - expectedAcked, this.cwnd);
    if (extra > this.extraAcked[this.extraAckedIdx]!) this.extraAcked[this.extraAckedIdx] = extra;
  }

  private aggregationCwnd(): number {
    if (!this.isPipeFilled) return 0;
    const maxAggr = (this.btlBw.best * EXTRA_ACKED_MAX_US) / 1e6;
    return Math.min(Math.max(this.extraAcked[0]!, this.extraAcked[1]!), maxAggr);
  }

  private setCwnd(rs: AckSample): void {
    const acked = rs.bytesAcked;
    // 3 segments of quantization budget (tcp_bbr.c bbr_quantization_budget), +2 while probing up,
    // + the ACK-aggregation allowance
    let target = this.bdpBytes(this.cwndGain) + 3 * this.mss + this.aggregationCwnd();
    if (this.mode === Mode.ProbeBw && this.pacingGain > 1) target += 2 * this.mss;
    if (this.isPipeFilled) {
      const c = this.cwnd + acked;
      this.cwnd = c < target ? c : target;
    } else if (this.cwnd < target || this.deliveredBytes < this.initialCwnd) {
      this.cwnd += acked;
    }
    if (this.cwnd < this.minCwnd) this.cwnd = this.minCwnd;
    if (this.mode === Mode.ProbeRtt && this.cwnd > this.minCwnd) this.cwnd = this.minCwnd;
  }
}

export function bbrFactory(opts: BbrOptions = {}) {
  return (init: CongestionInit): CongestionController => new Bbr(init, opts);
}
