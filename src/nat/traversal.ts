// Per-peer NAT traversal state machine, sans-IO (STYLE §2, quinn-proto's shape): the daemon pushes events in
// (`handle*`, always with `now`), pulls actions out (`pollAction` until null), and arms one timer at
// `pollTimeout()`, calling `handleTimeout(now)` when it fires. No clock, no timers, no sockets in here.
//
// Life of a traversal (see index.ts for the daemon's driver loop):
//   start()            → send our NatProfile (info) over the session (the relay at first); in 'race' mode
//                        switch the data path to the relay at once.
//   peer info arrives  → plan (plan.ts); the hard side of a birthday asks for extra sockets now so they are
//                        bound by the time probing starts; the initiator asks the beacon for a punch.
//   punch command      → attempt: probe rounds to the plan's targets every probeIntervalUs, extra sockets
//                        prime, the easy side sends rate-capped random probes after the priming time.
//   probe received     → reply from the same socket, and probe back (confirms the reverse direction).
//   probe reply        → direct path confirmed (socket k, endpoint E): switch data to it, close other sockets.
//   attempt deadline   → no reply: data on the relay now ('fallback' mode: the relay starts within 0 s of
//                        knowing, the budget is 1 s); retry later with backoff.
//   liveness           → a probe every keepaliveIntervalUs holds both NATs' bindings; a probe unanswered for
//                        deadAfterUs means the path died: data moves to the relay (streams live above the
//                        session, so nothing resets) and a new attempt starts.
import type { Micros, Rng } from '../core/index.js';
import { encodeNatMessage, type NatMessage } from './messages.js';
import { LOW_PORT, PORT_SPACE, planTraversal, type Plan, type PlanParams, type Strategy } from './plan.js';
import { formatEndpoint, sameEndpoint, type NatProfile, type UdpEndpoint } from './types.js';

export type DataPath = { kind: 'direct'; socket: number; endpoint: UdpEndpoint } | { kind: 'relay' };

export type TraversalAction =
  /**
   * Seal `plaintext` in the peer's Noise session and send it from local socket `socket` to `to`; `to: null` =
   * through the relay (beacon 0x05 from socket 0).
   */
  | { kind: 'send'; socket: number; to: UdpEndpoint | null; plaintext: Uint8Array }
  /** Send beacon 0x03 punch_request {from: us, to: peer} from socket 0. */
  | { kind: 'request_punch' }
  /** Bind `count` extra UDP sockets (indices 1..count, any port); call handleSocketsOpened when bound. */
  | { kind: 'open_sockets'; count: number }
  /** Close every extra socket except those listed. */
  | { kind: 'close_sockets'; keep: number[] }
  /** Move the peer's data (tunnel frames) to this path. Keep accepting frames from the old one. */
  | { kind: 'set_path'; path: DataPath; reason: string };

export interface TraversalTiming extends PlanParams {
  /** Targeted probe rounds during an attempt. */
  probeIntervalUs: Micros;
  /** How long targeted (punch/predict/lan) probing runs before the attempt counts as failed. */
  punchWindowUs: Micros;
  /** Start without a punch command after this long (old beacon, lost command). */
  punchCommandWaitUs: Micros;
  /** Easy side random probes per second (birthday). */
  birthdayProbeRate: number;
  /** Extra-socket priming sends per second (both birthday kinds). */
  primeRate: number;
  /** Slack after the hard side's priming before the easy side probes (covers relay skew between the sides). */
  primeSlackUs: Micros;
  /** A probe on an idle direct path this often (below the usual 30 s UDP binding timeout). */
  keepaliveIntervalUs: Micros;
  /** Unanswered that long: probe faster. */
  suspectAfterUs: Micros;
  livenessProbeIntervalUs: Micros;
  /** Unanswered that long: the path is dead. */
  deadAfterUs: Micros;
  /** Retry delays after failed attempts (the last one repeats). */
  retryBackoffUs: Micros[];
}

export const DEFAULT_TIMING: TraversalTiming = {
  predictionWindow: 32,
  birthdaySockets: 256,
  birthdayProbes: 2048,
  birthday2dSockets: 256,
  birthday2dProbes: 256,
  probeIntervalUs: 200_000,
  punchWindowUs: 3_000_000,
  punchCommandWaitUs: 1_000_000,
  birthdayProbeRate: 500,
  primeRate: 20_000,
  primeSlackUs: 300_000,
  keepaliveIntervalUs: 10_000_000,
  suspectAfterUs: 1_000_000,
  livenessProbeIntervalUs: 300_000,
  deadAfterUs: 3_000_000,
  retryBackoffUs: [2_000_000, 5_000_000, 15_000_000, 30_000_000, 60_000_000],
};

export interface TraversalOptions {
  local: NatProfile;
  /** What we know before the peer's info arrives (registry resolve: observed + registered endpoints). */
  remoteHint?: NatProfile | null;
  /** The side that dialed: it sends the punch requests. */
  isInitiator: boolean;
  /** 'race' (default): data on the relay at once, upgraded when direct confirms. 'fallback': relay only after direct failed. */
  relayMode?: 'race' | 'fallback';
  rng: Rng;
  timing?: Partial<TraversalTiming>;
}

export type TraversalPhase = 'idle' | 'awaiting_info' | 'awaiting_punch' | 'probing' | 'direct' | 'relay';

export interface TraversalStats {
  strategy: Strategy | null;
  attempts: number;
  probesSent: number;
  randomProbesSent: number;
  primeSent: number;
  /** When the first direct path was confirmed, and when the current attempt started. */
  firstDirectUs: Micros | null;
  attemptStartUs: Micros | null;
  pathChanges: number;
  deadPaths: number;
  /** Our mapping as the peer saw it (from a probe reply). */
  observedByPeer: UdpEndpoint | null;
  rttUs: Micros | null;
}

interface Attempt {
  startUs: Micros;
  endUs: Micros;
  nonce: number;
  seq: number;
  nextRoundUs: Micros;
  randomStartUs: Micros;
  randomSent: number;
  randomPorts: RandomPorts | null;
  primeStartUs: Micros | null;
  primeSent: number;
  primeTotal: number;
}

/** Distinct uniform ports in [LOW_PORT, 65535] without a 64k array: a sparse Fisher–Yates. */
class RandomPorts {
  private readonly swapped = new Map<number, number>();
  private n = 0;
  constructor(private readonly rng: Rng) {}
  next(): number {
    if (this.n >= PORT_SPACE) this.n = 0;
    const i = this.n + this.rng.int(PORT_SPACE - this.n);
    const vi = this.swapped.get(i) ?? i;
    const vn = this.swapped.get(this.n) ?? this.n;
    this.swapped.set(i, vn);
    this.n++;
    return LOW_PORT + vi;
  }
}

const NONCE_BITS = 12;
const SEQ_BITS = 20;

export class Traversal {
  private readonly t: TraversalTiming;
  private readonly rng: Rng;
  private readonly relayMode: 'race' | 'fallback';
  private readonly actions: TraversalAction[] = [];
  private local: NatProfile;
  private remote: NatProfile | null;
  private hasRemoteInfo = false;
  private phaseValue: TraversalPhase = 'idle';
  private plan: Plan | null = null;
  private attempt: Attempt | null = null;
  private recentNonces: number[] = [];
  private extraSocketsOpen = 0;
  private isOpeningSockets = false;
  private punchRequestedUs: Micros | null = null;
  private retryAtUs: Micros | null = null;
  private failures = 0;
  private pathValue: DataPath | null = null;
  private lastDirectRecvUs: Micros = 0;
  private lastLivenessProbeUs: Micros = 0;
  private unansweredSinceUs: Micros | null = null;
  private readonly livenessNonce: number;
  private livenessSeq = 0;
  private readonly counterProbed = new Map<string, Micros>();
  private readonly probeSentAt = new Map<number, Micros>();
  readonly stats: TraversalStats = {
    strategy: null,
    attempts: 0,
    probesSent: 0,
    randomProbesSent: 0,
    primeSent: 0,
    firstDirectUs: null,
    attemptStartUs: null,
    pathChanges: 0,
    deadPaths: 0,
    observedByPeer: null,
    rttUs: null,
  };

  constructor(private readonly opts: TraversalOptions) {
    this.t = { ...DEFAULT_TIMING, ...opts.timing };
    this.rng = opts.rng;
    this.relayMode = opts.relayMode ?? 'race';
    this.local = opts.local;
    this.remote = opts.remoteHint ?? null;
    this.livenessNonce = this.newNonce();
  }

  get phase(): TraversalPhase {
    return this.phaseValue;
  }

  /** The current data path; null before the first decision ('fallback' mode while probing). */
  get path(): DataPath | null {
    return this.pathValue;
  }

  get strategy(): Strategy | null {
    return this.plan?.strategy ?? null;
  }

  /** Begin: announce our profile over the session; in race mode put data on the relay right away. */
  start(now: Micros): void {
    if (this.phaseValue !== 'idle') return;
    this.phaseValue = 'awaiting_info';
    this.sendInfo();
    if (this.relayMode === 'race') this.setPath({ kind: 'relay' }, 'race: relay until a direct path confirms');
    if (this.hasRemoteInfo) this.onBothProfiles(now);
  }

  /** Our own profile changed (re-classified, new public endpoint): the peer hears about it. */
  updateLocalProfile(profile: NatProfile, now: Micros): void {
    this.local = profile;
    if (this.phaseValue !== 'idle') this.sendInfo();
    if (this.hasRemoteInfo && this.phaseValue !== 'direct' && this.phaseValue !== 'probing') this.onBothProfiles(now);
  }

  /**
   * A NAT message that arrived inside the peer's session: on local socket `socket` from `from`, or through the
   * relay (`from: null`).
   */
  handleNatMessage(socket: number, from: UdpEndpoint | null, msg: NatMessage, now: Micros): void {
    switch (msg.kind) {
      case 'info': {
        const first = !this.hasRemoteInfo;
        this.remote = msg.profile;
        this.hasRemoteInfo = true;
        if (this.phaseValue === 'idle') this.start(now);
        else if (first || this.phaseValue === 'relay' || this.phaseValue === 'awaiting_info') this.onBothProfiles(now);
        return;
      }
      case 'probe': {
        if (!from) return;
        this.push({ kind: 'send', socket, to: from, plaintext: enc({ kind: 'probe_reply', probeId: msg.probeId, observed: from }) });
        if (this.isCurrentDirect(socket, from)) this.noteDirectRecv(now);
        else if (!this.isDirectHealthy()) this.counterProbe(socket, from, now);
        return;
      }
      case 'probe_reply': {
        if (!from || !this.isOurProbe(msg.probeId)) return;
        this.stats.observedByPeer = msg.observed;
        const sent = this.probeSentAt.get(msg.probeId);
        if (sent !== undefined) {
          this.stats.rttUs = now - sent;
          this.probeSentAt.delete(msg.probeId);
        }
        if (this.isCurrentDirect(socket, from)) {
          this.noteDirectRecv(now);
          return;
        }
        if (!this.isDirectHealthy()) this.confirmDirect(socket, from, now);
        return;
      }
    }
  }

  /** Beacon 0x04 punch command: `peer` is the peer's current observed endpoint. Starts an attempt. */
  handlePunchCommand(peer: UdpEndpoint, now: Micros): void {
    if (this.remote?.publicEndpoint && !sameEndpoint(this.remote.publicEndpoint, peer) && this.remote.publicEndpoint.ip === peer.ip) {
      // Same NAT, new mapping towards the beacon (it expired or the peer restarted): probe the new one.
      this.remote = { ...this.remote, publicEndpoint: peer };
      if (this.plan) this.plan = planTraversal(this.local, this.remote, this.t);
    }
    if (!this.plan || this.attempt || this.phaseValue === 'direct') return;
    this.beginAttempt(now);
  }

  /** `count` extra sockets (indices 1..count) are bound. */
  handleSocketsOpened(count: number, now: Micros): void {
    this.isOpeningSockets = false;
    if (this.phaseValue === 'direct' || !this.plan || this.plan.extraSockets === 0) {
      // Opened after the need passed (direct confirmed meanwhile): give them back.
      const p = this.pathValue;
      this.push({ kind: 'close_sockets', keep: p?.kind === 'direct' && p.socket > 0 ? [p.socket] : [] });
      return;
    }
    this.extraSocketsOpen = count;
    if (this.attempt && this.attempt.primeStartUs === null && this.plan && this.plan.extraSockets > 0) {
      this.attempt.primeStartUs = Math.max(now, this.attempt.startUs);
    }
  }

  /** Any authenticated packet from the peer on the current direct path (liveness). */
  handleDirectReceive(socket: number, from: UdpEndpoint, now: Micros): void {
    if (this.isCurrentDirect(socket, from)) this.noteDirectRecv(now);
  }

  /** The daemon sent data on the direct path: silence from the peer after this becomes suspicious sooner. */
  handleDirectSend(now: Micros): void {
    if (this.pathValue?.kind !== 'direct' || this.unansweredSinceUs !== null) return;
    if (now - this.lastDirectRecvUs >= this.t.suspectAfterUs) {
      this.unansweredSinceUs = now;
      this.sendLivenessProbe(now);
    }
  }

  handleTimeout(now: Micros): void {
    // Punch command never came: start anyway.
    if (!this.attempt && this.plan && this.phaseValue === 'awaiting_punch' && this.punchRequestedUs !== null && now >= this.punchRequestedUs + this.t.punchCommandWaitUs) {
      this.beginAttempt(now);
    }
    if (this.retryAtUs !== null && now >= this.retryAtUs && !this.attempt) {
      this.retryAtUs = null;
      this.requestPunch(now);
    }
    const a = this.attempt;
    if (a) this.driveAttempt(a, now);
    if (this.pathValue?.kind === 'direct') this.driveLiveness(now);
  }

  pollAction(): TraversalAction | null {
    return this.actions.shift() ?? null;
  }

  /** Earliest time handleTimeout has work to do, or null. */
  pollTimeout(): Micros | null {
    let t: Micros | null = null;
    const at = (x: Micros | null) => {
      if (x !== null && (t === null || x < t)) t = x;
    };
    if (!this.attempt && this.phaseValue === 'awaiting_punch' && this.punchRequestedUs !== null) at(this.punchRequestedUs + this.t.punchCommandWaitUs);
    if (!this.attempt) at(this.retryAtUs);
    const a = this.attempt;
    if (a && this.plan) {
      at(a.endUs);
      if (a.nextRoundUs < a.endUs) at(a.nextRoundUs);
      if (this.plan.randomProbe && a.randomSent < this.plan.randomProbe.count) {
        at(Math.max(a.randomStartUs, a.randomStartUs + Math.floor((a.randomSent * 1e6) / this.t.birthdayProbeRate)));
      }
      if (a.primeStartUs !== null && a.primeSent < a.primeTotal) {
        at(a.primeStartUs + Math.floor((a.primeSent * 1e6) / this.t.primeRate));
      }
    }
    if (this.pathValue?.kind === 'direct') {
      if (this.unansweredSinceUs !== null) {
        at(Math.min(this.unansweredSinceUs + this.t.deadAfterUs, this.lastLivenessProbeUs + this.t.livenessProbeIntervalUs));
      } else {
        at(Math.max(this.lastDirectRecvUs, this.lastLivenessProbeUs) + this.t.keepaliveIntervalUs);
      }
    }
    return t;
  }

  // ---------------------------------------------------------------------------------------------------

  private push(a: TraversalAction): void {
    this.actions.push(a);
  }

  private sendInfo(): void {
    this.push({ kind: 'send', socket: 0, to: null, plaintext: enc({ kind: 'info', profile: this.local }) });
  }

  private setPath(p: DataPath, reason: string): void {
    this.pathValue = p;
    this.stats.pathChanges++;
    this.push({ kind: 'set_path', path: p, reason });
  }

  private onBothProfiles(now: Micros): void {
    if (!this.remote) return;
    const isFirstPlan = this.plan === null;
    this.plan = planTraversal(this.local, this.remote, this.t);
    this.stats.strategy = this.plan.strategy;
    if (this.plan.strategy === 'relay-only') {
      this.phaseValue = 'relay';
      if (this.pathValue?.kind !== 'relay') this.setPath({ kind: 'relay' }, 'no direct strategy for this NAT pair');
      return;
    }
    if (this.plan.extraSockets > this.extraSocketsOpen && !this.isOpeningSockets) {
      this.isOpeningSockets = true;
      this.push({ kind: 'open_sockets', count: this.plan.extraSockets });
    }
    // Later re-plans (the peer's info changed) only update the plan: the initiator's retry timer or the next
    // punch command starts the next attempt, so both sides keep starting together.
    if (!isFirstPlan || this.phaseValue === 'direct' || this.attempt || this.retryAtUs !== null) return;
    this.phaseValue = 'awaiting_punch';
    // Both sides wait for the beacon's command (it reaches both at about the same time); the initiator asks.
    if (this.opts.isInitiator) this.requestPunch(now);
    else this.punchRequestedUs = now;
  }

  private requestPunch(now: Micros): void {
    if (this.phaseValue === 'direct' || !this.plan || this.plan.strategy === 'relay-only') return;
    this.phaseValue = 'awaiting_punch';
    this.punchRequestedUs = now;
    if (this.plan.extraSockets > this.extraSocketsOpen && !this.isOpeningSockets) {
      this.isOpeningSockets = true;
      this.push({ kind: 'open_sockets', count: this.plan.extraSockets });
    }
    this.push({ kind: 'request_punch' });
  }

  private newNonce(): number {
    return this.rng.int(1 << NONCE_BITS);
  }

  private probeId(nonce: number, seq: number): number {
    return ((nonce << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1))) >>> 0;
  }

  private isOurProbe(id: number): boolean {
    const nonce = id >>> SEQ_BITS;
    return nonce === this.livenessNonce || nonce === this.attempt?.nonce || this.recentNonces.includes(nonce);
  }

  private beginAttempt(now: Micros): void {
    const plan = this.plan!;
    this.stats.attempts++;
    this.stats.attemptStartUs = now;
    this.phaseValue = 'probing';
    let nonce = this.newNonce();
    while (nonce === this.livenessNonce) nonce = this.newNonce();
    this.recentNonces = [...this.recentNonces.slice(-3), nonce];
    const primeTotal = plan.extraSockets * plan.extraTargets.length;
    // The easy side waits until the hard side has primed its sockets (same formula on both sides).
    const primeUs = this.primeDurationUs();
    const randomStartUs = now + primeUs;
    const randomUs = plan.randomProbe ? Math.ceil((plan.randomProbe.count * 1e6) / this.t.birthdayProbeRate) : 0;
    const isBirthday = plan.strategy === 'birthday' || plan.strategy === 'birthday-2d';
    const endUs = now + (isBirthday ? Math.max(primeUs + randomUs + 1_000_000, this.t.punchWindowUs) : this.t.punchWindowUs);
    this.attempt = {
      startUs: now,
      endUs,
      nonce,
      seq: 0,
      nextRoundUs: now,
      randomStartUs,
      randomSent: 0,
      randomPorts: plan.randomProbe ? new RandomPorts(this.rng) : null,
      primeStartUs: plan.extraSockets > 0 && this.extraSocketsOpen >= plan.extraSockets ? now : null,
      primeSent: 0,
      primeTotal,
    };
    this.driveAttempt(this.attempt, now);
  }

  /** How long the birthday hard side needs to prime (a function of the shared plan parameters only). */
  private primeDurationUs(): Micros {
    const p = this.plan!;
    if (p.strategy === 'birthday') return Math.ceil((this.t.birthdaySockets * 1e6) / this.t.primeRate) + this.t.primeSlackUs;
    if (p.strategy === 'birthday-2d') {
      return Math.ceil((this.t.birthday2dSockets * (this.t.birthday2dProbes + 8) * 1e6) / this.t.primeRate) + this.t.primeSlackUs;
    }
    return 0;
  }

  private probe(a: Attempt, socket: number, to: UdpEndpoint, now: Micros, track: boolean): void {
    const id = this.probeId(a.nonce, a.seq++);
    if (track) this.probeSentAt.set(id, now);
    this.stats.probesSent++;
    this.push({ kind: 'send', socket, to, plaintext: enc({ kind: 'probe', probeId: id }) });
  }

  private driveAttempt(a: Attempt, now: Micros): void {
    const plan = this.plan!;
    if (this.phaseValue === 'direct') {
      this.attempt = null;
      return;
    }
    // Targeted rounds: the same targets from socket 0 each time (same flows on the NATs).
    while (a.nextRoundUs <= now && a.nextRoundUs < a.endUs) {
      if (this.probeSentAt.size > 4096) this.probeSentAt.clear();
      for (const to of plan.targets) this.probe(a, 0, to, now, true);
      a.nextRoundUs += this.t.probeIntervalUs;
    }
    // Hard side priming: socket s → each extra target, paced at primeRate.
    if (a.primeStartUs !== null && a.primeSent < a.primeTotal) {
      const due = Math.min(a.primeTotal, Math.floor(((now - a.primeStartUs) * this.t.primeRate) / 1e6) + 1);
      const nTargets = plan.extraTargets.length;
      while (a.primeSent < due) {
        const socket = 1 + (a.primeSent % plan.extraSockets);
        const target = plan.extraTargets[Math.floor(a.primeSent / plan.extraSockets) % nTargets]!;
        this.probe(a, socket, target, now, false);
        a.primeSent++;
        this.stats.primeSent++;
      }
    }
    // Easy side random probes, rate-capped.
    const rp = plan.randomProbe;
    if (rp && a.randomPorts && now >= a.randomStartUs && a.randomSent < rp.count) {
      const due = Math.min(rp.count, Math.floor(((now - a.randomStartUs) * this.t.birthdayProbeRate) / 1e6) + 1);
      while (a.randomSent < due) {
        this.probe(a, 0, { ip: rp.ip, port: a.randomPorts.next() }, now, false);
        a.randomSent++;
        this.stats.randomProbesSent++;
      }
    }
    if (now >= a.endUs) this.failAttempt(now);
  }

  private failAttempt(now: Micros): void {
    const plan = this.plan!;
    this.attempt = null;
    this.failures++;
    this.phaseValue = 'relay';
    if (this.pathValue?.kind !== 'relay') this.setPath({ kind: 'relay' }, 'direct attempts failed');
    if (this.extraSocketsOpen > 0) {
      this.push({ kind: 'close_sockets', keep: [] });
      this.extraSocketsOpen = 0;
    }
    // A sequential NAT handed out ports for our new flows: the next attempt's predictions start after them.
    if (this.local.kind === 'symmetric-sequential' && plan.newFlowsPerAttempt > 0) {
      const d = this.local.portDelta ?? 1;
      const base = this.local.nextPort ?? (this.local.publicEndpoint?.port ?? 0) + d;
      this.local = { ...this.local, nextPort: base + plan.newFlowsPerAttempt * d };
      this.sendInfo();
    }
    const backoff = this.t.retryBackoffUs;
    const isBirthday = plan.strategy === 'birthday' || plan.strategy === 'birthday-2d';
    const delay = isBirthday ? backoff[0]! : backoff[Math.min(this.failures - 1, backoff.length - 1)]!;
    // Only the initiator asks the beacon again; the responder follows the next punch command.
    this.retryAtUs = this.opts.isInitiator ? now + delay : null;
  }

  private counterProbe(socket: number, to: UdpEndpoint, now: Micros): void {
    const k = `${socket}|${formatEndpoint(to)}`;
    const last = this.counterProbed.get(k);
    if (last !== undefined && now - last < this.t.probeIntervalUs) return;
    if (this.counterProbed.size > 1024) this.counterProbed.clear();
    this.counterProbed.set(k, now);
    const a = this.attempt;
    if (a) this.probe(a, socket, to, now, true);
    else {
      const id = this.probeId(this.livenessNonce, this.livenessSeq++);
      this.probeSentAt.set(id, now);
      this.stats.probesSent++;
      this.push({ kind: 'send', socket, to, plaintext: enc({ kind: 'probe', probeId: id }) });
    }
  }

  private confirmDirect(socket: number, from: UdpEndpoint, now: Micros): void {
    this.attempt = null;
    this.retryAtUs = null;
    this.failures = 0;
    this.phaseValue = 'direct';
    if (this.stats.firstDirectUs === null) this.stats.firstDirectUs = now;
    this.lastDirectRecvUs = now;
    this.lastLivenessProbeUs = now;
    this.unansweredSinceUs = null;
    this.setPath({ kind: 'direct', socket, endpoint: from }, `probe reply via socket ${socket}`);
    if (this.extraSocketsOpen > 0 || this.isOpeningSockets) {
      this.push({ kind: 'close_sockets', keep: socket > 0 ? [socket] : [] });
      this.extraSocketsOpen = 0;
      this.isOpeningSockets = false;
    }
  }

  private isCurrentDirect(socket: number, from: UdpEndpoint): boolean {
    const p = this.pathValue;
    return p?.kind === 'direct' && p.socket === socket && sameEndpoint(p.endpoint, from);
  }

  private isDirectHealthy(): boolean {
    return this.pathValue?.kind === 'direct' && this.unansweredSinceUs === null;
  }

  private noteDirectRecv(now: Micros): void {
    this.lastDirectRecvUs = now;
    this.unansweredSinceUs = null;
  }

  private sendLivenessProbe(now: Micros): void {
    const p = this.pathValue;
    if (p?.kind !== 'direct') return;
    const id = this.probeId(this.livenessNonce, this.livenessSeq++);
    this.probeSentAt.set(id, now);
    this.lastLivenessProbeUs = now;
    this.stats.probesSent++;
    this.push({ kind: 'send', socket: p.socket, to: p.endpoint, plaintext: enc({ kind: 'probe', probeId: id }) });
  }

  private driveLiveness(now: Micros): void {
    if (this.unansweredSinceUs !== null) {
      if (now - this.unansweredSinceUs >= this.t.deadAfterUs) {
        this.stats.deadPaths++;
        const dead = this.pathValue as Extract<DataPath, { kind: 'direct' }>;
        this.phaseValue = 'relay';
        this.unansweredSinceUs = null;
        this.setPath({ kind: 'relay' }, `direct path ${formatEndpoint(dead.endpoint)} dead`);
        if (dead.socket > 0) this.push({ kind: 'close_sockets', keep: [] });
        // Either side may notice first; both may ask the beacon.
        this.failures = 0;
        this.requestPunch(now);
        return;
      }
      if (now - this.lastLivenessProbeUs >= this.t.livenessProbeIntervalUs) this.sendLivenessProbe(now);
      return;
    }
    const quietUs = now - Math.max(this.lastDirectRecvUs, this.lastLivenessProbeUs);
    if (quietUs >= this.t.keepaliveIntervalUs) {
      this.sendLivenessProbe(now);
      this.unansweredSinceUs = now;
      // Only suspicious after suspectAfterUs; sendLivenessProbe set lastLivenessProbeUs = now, so the faster
      // probes start once livenessProbeIntervalUs passes without a reply.
    }
  }
}

function enc(m: NatMessage): Uint8Array {
  const r = encodeNatMessage(m);
  // Our own messages always encode (endpoints come from parsed packets or profiles we validated).
  if (!r.ok) throw new Error(`nat: cannot encode ${m.kind}: ${r.error.message}`);
  return r.value;
}
