// Every constant of NAT traversal, in one table (issue 11). The values are the ones the daemon proved in the
// netsim matrix (real daemons, real nftables NATs; test/netsim/matrix.test.ts), which the seeded NAT model
// (test/unit/nat/traversal.test.ts) runs against the same engine. Times in µs.
import type { Micros } from '../core/index.js';

export interface NatTiming {
  /** A beacon punch command: punch rounds, their spacing, and ports above the observed one each round covers. */
  punchRounds: number;
  punchRoundGapUs: Micros;
  punchPredictPorts: number;
  /** Predicted ports per side for sequential ↔ sequential (and a port-restricted cone facing a sequential NAT). */
  predictionWindow: number;
  predictRounds: number;
  predictRoundGapUs: Micros;
  /** Birthday probing: extra sockets on the random-port side, random probes per second and per run. */
  birthdaySockets: number;
  birthdayProbeRate: number;
  birthdayProbes: number;
  /** Random probes leave in bursts this far apart (probeRate × tick per burst). */
  birthdayTickUs: Micros;
  /** Extra sockets wait this long for a hit after their last punch round, then close (the relay carries on). */
  birthdayWindowUs: Micros;
  /** The losing extra sockets close this long after the first hit. */
  birthdayCloseLosersUs: Micros;
  /** Two-sided birthday (sequential ↔ random): predicted ports per attempt (= the sequential side's probes). */
  birthday2dPredictedPorts: number;
  birthday2dAttempts: number;
  birthday2dRetryUs: Micros;
  /** Path liveness runs this often: relayed peers are probed directly, busy silent peers probed / moved. */
  pathCheckIntervalUs: Micros;
  /** A busy peer silent this long is asked for a sign of life… */
  pathProbeAfterUs: Micros;
  /** …and after this long its traffic moves to the relay. */
  pathDeadUs: Micros;
  /** Discover at the beacon(s) this often (holds the NAT mapping toward the beacon, re-classifies). */
  discoverIntervalUs: Micros;
  /** A punch command naming a peer we asked the beacon about counts this long after the request. */
  punchPendingUs: Micros;
  maxPendingPunches: number;
  /** Punch commands executed per second at most, however many arrive. */
  punchCommandsPerSec: number;
}

export const NAT_TIMING: NatTiming = {
  punchRounds: 3,
  punchRoundGapUs: 50_000,
  punchPredictPorts: 8,
  predictionWindow: 24,
  predictRounds: 4,
  predictRoundGapUs: 150_000,
  birthdaySockets: 256,
  birthdayProbeRate: 500,
  birthdayProbes: 3000,
  birthdayTickUs: 10_000,
  birthdayWindowUs: 8_000_000,
  birthdayCloseLosersUs: 2_000_000,
  birthday2dPredictedPorts: 264,
  birthday2dAttempts: 8,
  birthday2dRetryUs: 2_000_000,
  pathCheckIntervalUs: 1_000_000,
  pathProbeAfterUs: 1_000_000,
  pathDeadUs: 3_000_000,
  discoverIntervalUs: 25_000_000,
  punchPendingUs: 30_000_000,
  maxPendingPunches: 4096,
  punchCommandsPerSec: 20,
};
