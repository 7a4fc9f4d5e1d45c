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
  /**
   * A relayed peer whose traversal ended without a direct path (or whose direct path died) is tried again this
   * long after, the gap doubling up to traversalRetryMaxUs (reset when a direct path opens): mappings and NAT
   * behaviour change, a blocked path opens again.
   */
  traversalRetryUs: Micros;
  traversalRetryMaxUs: Micros;
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
  traversalRetryUs: 15_000_000,
  traversalRetryMaxUs: 300_000_000,
  pathCheckIntervalUs: 1_000_000,
  pathProbeAfterUs: 1_000_000,
  pathDeadUs: 3_000_000,
  discoverIntervalUs: 25_000_000,
  punchPendingUs: 30_000_000,
  maxPendingPunches: 4096,
  punchCommandsPerSec: 20,
};

/**
 * The compat transport (issue 13): when a node carries relay frames over the WebSocket to the rendezvous instead
 * of UDP (transport-choice.ts decides; src/node/compat/link.ts runs the link). Times in µs.
 */
export interface CompatTiming {
  /** auto: UDP probes (discover at the beacon) this far apart while deciding… */
  udpProbeIntervalUs: Micros;
  /** …and no UDP answer from the beacon this long after the first probe → the WebSocket carries the relay. */
  udpAnswerTimeoutUs: Micros;
  /** auto, on wss: probe UDP this often; an answer moves the node back to UDP (and the engine to direct paths). */
  udpReprobeIntervalUs: Micros;
  /** auto, on udp: no UDP answer from the beacon for this long (its discovers are answered every 25 s) → probe again. */
  udpSilentUs: Micros;
  /** auto, on wss: a UDP discover that got no answer this long after it left → discover again over the link (a
   *  UDP discover that did reach the beacon moved our endpoint there; this moves it back to the channel). */
  linkReassertAfterUs: Micros;
  /** Link: authenticated discover over the channel on open and this often (keeps the beacon's mapping). */
  linkDiscoverIntervalUs: Micros;
  /** Link: a WebSocket ping this often; nothing heard for linkSilentUs → terminate and reconnect. A half-open
   *  connection is therefore detected within linkSilentUs + linkPingIntervalUs (the check runs at each ping). */
  linkPingIntervalUs: Micros;
  linkSilentUs: Micros;
  /** Link: reconnect after a drop with exponential backoff from initial to max, each delay × (0.5..1) jitter. */
  linkBackoffInitialUs: Micros;
  linkBackoffMaxUs: Micros;
  /** Link: proxy + TLS + WebSocket upgrade must finish within this. */
  linkDialTimeoutUs: Micros;
  /** Link: over this many bytes waiting in the WebSocket's send buffer, new datagrams are dropped (the stream
   *  ARQ retransmits; datagram semantics, bounded memory). */
  linkMaxBufferedBytes: number;
  /** auto: one registry connect attempt dials the preferred route (plain TCP or TLS on the compat port) and the
   *  other one as soon as the first fails or after this head start, whichever is sooner (happy eyeballs); the
   *  first to connect wins and becomes the preferred route. */
  registryFallbackDelayUs: Micros;
}

export const COMPAT_TIMING: CompatTiming = {
  udpProbeIntervalUs: 1_000_000,
  udpAnswerTimeoutUs: 3_000_000,
  udpReprobeIntervalUs: 15_000_000,
  udpSilentUs: 30_000_000,
  linkReassertAfterUs: 1_000_000,
  linkDiscoverIntervalUs: 20_000_000,
  linkPingIntervalUs: 5_000_000,
  linkSilentUs: 15_000_000,
  linkBackoffInitialUs: 250_000,
  linkBackoffMaxUs: 10_000_000,
  linkDialTimeoutUs: 10_000_000,
  linkMaxBufferedBytes: 4 * 1024 * 1024,
  registryFallbackDelayUs: 500_000,
};
