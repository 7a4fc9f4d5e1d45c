// Which carrier takes the node's relay frames to the beacon — UDP or the compat WebSocket (issue 13) — and which
// carrier the registry connection uses; sans-IO (STYLE §2): events and `now` in, state + actions + the next
// deadline out. src/node/paths/path-driver.ts executes the actions; every constant is in timing.ts (COMPAT_TIMING).
//
//   --transport udp   UDP only (the behaviour before issue 13). The registry on its plain TCP port.
//   --transport tcp   no UDP at all: relay frames over the WebSocket (relay-only), the registry over TLS on the
//                     compat port.
//   --transport auto  UDP first. Once registered, probe the beacon over UDP (udpProbeIntervalUs apart); no answer
//                     within udpAnswerTimeoutUs → the WebSocket carries the relay frames. While on wss, probe UDP
//                     every udpReprobeIntervalUs; an answer → back to UDP (the path engine's direct upgrade then runs
//                     as usual). On udp, a beacon silent for udpSilentUs → probe again (and maybe move). Open
//                     streams never notice: a frame is the same sealed Noise frame whichever carrier takes it.
//                     The registry: plain TCP first unless a proxy applies to the registry host (then TLS on
//                     the compat port first). Each connect attempt dials the preferred route and the other one
//                     when the first fails or after registryFallbackDelayUs (happy eyeballs): whichever connects
//                     becomes the preferred route. A rendezvous that appears on either is reached within one
//                     reconnect backoff, and a registry restart never moves a working node to the other port.
import type { Micros } from '../core/index.js';
import { COMPAT_TIMING, type CompatTiming } from './timing.js';

export type TransportMode = 'auto' | 'udp' | 'tcp';
export type Carrier = 'udp' | 'wss';
export type RegistryRoute = 'plain' | 'tls';

export type TransportAction =
  /** Send a discover to the beacon over UDP (the answer is handleUdpAnswer). */
  | { kind: 'probe_udp' }
  /** Open the WebSocket link (it reconnects by itself until close_link). */
  | { kind: 'open_link' }
  | { kind: 'close_link' }
  /** Discover over the link now (a UDP discover may have moved our endpoint at the beacon off the channel). */
  | { kind: 'link_discover' }
  /** The carrier of relay frames changed (to `carrier`, because `reason`). */
  | { kind: 'carrier'; carrier: Carrier; reason: string };

export interface TransportChoiceOptions {
  mode: TransportMode;
  /** A compat transport exists (a compat target and a dialer; not in every simulation). Without it auto stays on UDP. */
  hasCompat: boolean;
  /** A proxy applies to the registry's host (auto then starts the registry on TLS). */
  isRegistryProxied: boolean;
  timing?: Partial<CompatTiming>;
}

type Phase = 'idle' | 'probing' | 'udp' | 'wss';

export class TransportChoice {
  readonly mode: TransportMode;
  private readonly t: CompatTiming;
  private readonly actions: TransportAction[] = [];
  private phase: Phase = 'idle';
  private carrierNow: Carrier;
  private reasonNow: string;
  private nextProbeUs: Micros | null = null;
  private giveUpUs: Micros | null = null;
  private lastAnswerUs: Micros = 0;
  /** wss: a UDP discover left at this time and is unanswered (→ link_discover at + linkReassertAfterUs). */
  private unansweredDiscoverUs: Micros | null = null;
  private registryRouteNow: RegistryRoute;
  readonly stats = { probes: 0, toWss: 0, toUdp: 0, registrySwitches: 0 };

  constructor(private readonly opts: TransportChoiceOptions) {
    this.mode = opts.mode;
    this.t = { ...COMPAT_TIMING, ...opts.timing };
    this.carrierNow = opts.mode === 'tcp' ? 'wss' : 'udp';
    this.reasonNow =
      opts.mode === 'tcp'
        ? '--transport tcp: UDP is not used; relay frames go over the WebSocket to the rendezvous'
        : opts.mode === 'udp'
          ? '--transport udp: UDP only'
          : opts.hasCompat
            ? 'auto: UDP first; waiting for registration to probe the beacon'
            : 'auto: no compat transport configured; UDP only';
    this.registryRouteNow = opts.mode === 'tcp' || (opts.mode === 'auto' && opts.hasCompat && opts.isRegistryProxied) ? 'tls' : 'plain';
  }

  get timing(): Readonly<CompatTiming> {
    return this.t;
  }

  /** The carrier relay frames take now. */
  get carrier(): Carrier {
    return this.carrierNow;
  }

  /** Why (one human sentence, for `pilotctl info`). */
  get reason(): string {
    return this.reasonNow;
  }

  /** The preferred registry route (the one the next connect attempt dials first). */
  get registryRoute(): RegistryRoute {
    return this.registryRouteNow;
  }

  /** The routes one registry connect attempt dials, preferred first: both in auto with a compat transport. */
  get registryRoutes(): RegistryRoute[] {
    const other: RegistryRoute = this.registryRouteNow === 'plain' ? 'tls' : 'plain';
    return this.mode === 'auto' && this.opts.hasCompat ? [this.registryRouteNow, other] : [this.registryRouteNow];
  }

  /** The daemon started: tcp opens the link now. */
  start(_now: Micros): void {
    if (this.phase !== 'idle') return;
    if (this.mode === 'tcp') {
      this.phase = 'wss';
      this.push({ kind: 'open_link' });
      this.push({ kind: 'carrier', carrier: 'wss', reason: this.reasonNow });
    }
  }

  /** Registered (again) at the registry: auto starts probing the first time (a discover needs our node id). */
  handleRegistered(now: Micros): void {
    if (this.mode !== 'auto' || !this.opts.hasCompat || this.phase !== 'idle') return;
    this.reasonNow = 'auto: probing the beacon over UDP';
    this.startProbing(now);
  }

  /** A discover_reply from the beacon over UDP. */
  handleUdpAnswer(now: Micros): void {
    this.lastAnswerUs = now;
    this.unansweredDiscoverUs = null;
    if (this.mode !== 'auto' || !this.opts.hasCompat) return;
    if (this.phase === 'probing' || this.phase === 'idle') {
      const wasWss = this.carrierNow === 'wss';
      this.phase = 'udp';
      this.nextProbeUs = null;
      this.giveUpUs = null;
      if (wasWss) this.toUdp('auto: UDP to the beacon answers again');
      else this.set('udp', 'auto: the beacon answers over UDP');
    } else if (this.phase === 'wss') {
      this.phase = 'udp';
      this.nextProbeUs = null;
      this.toUdp('auto: UDP to the beacon answers again');
    }
  }

  /** A discover went to the beacon over UDP (ours or the path engine's). */
  noteUdpDiscoverSent(now: Micros): void {
    if (this.phase === 'wss' && this.mode === 'auto' && this.unansweredDiscoverUs === null) this.unansweredDiscoverUs = now;
  }

  /** A registry connect attempt connected over `route`: in auto that route is preferred from now on. */
  handleRegistryConnected(route: RegistryRoute): void {
    if (this.mode !== 'auto' || !this.opts.hasCompat || route === this.registryRouteNow) return;
    this.registryRouteNow = route;
    this.stats.registrySwitches++;
  }

  pollAction(): TransportAction | null {
    return this.actions.shift() ?? null;
  }

  /** Earliest time handleTimeout has work, or null. */
  pollTimeout(): Micros | null {
    let t: Micros | null = null;
    const take = (x: Micros | null): void => {
      if (x !== null && (t === null || x < t)) t = x;
    };
    if (this.phase === 'probing') {
      take(this.nextProbeUs);
      take(this.giveUpUs);
    } else if (this.phase === 'wss' && this.mode === 'auto') {
      take(this.nextProbeUs);
      if (this.unansweredDiscoverUs !== null) take(this.unansweredDiscoverUs + this.t.linkReassertAfterUs);
    } else if (this.phase === 'udp') {
      take(this.lastAnswerUs + this.t.udpSilentUs);
    }
    return t;
  }

  handleTimeout(now: Micros): void {
    switch (this.phase) {
      case 'probing':
        if (this.giveUpUs !== null && now >= this.giveUpUs) {
          this.phase = 'wss';
          this.giveUpUs = null;
          this.nextProbeUs = now + this.t.udpReprobeIntervalUs;
          this.stats.toWss++;
          const s = Math.round(this.t.udpAnswerTimeoutUs / 1e5) / 10;
          this.push({ kind: 'open_link' });
          this.set('wss', `auto: no UDP answer from the beacon within ${s} s; relay frames go over the WebSocket`);
          return;
        }
        if (this.nextProbeUs !== null && now >= this.nextProbeUs) {
          this.probe();
          this.nextProbeUs = now + this.t.udpProbeIntervalUs;
          // The last probe leaves before the give-up time, never at it.
          if (this.giveUpUs !== null && this.nextProbeUs >= this.giveUpUs) this.nextProbeUs = null;
        }
        return;
      case 'wss':
        if (this.mode !== 'auto') return;
        if (this.unansweredDiscoverUs !== null && now >= this.unansweredDiscoverUs + this.t.linkReassertAfterUs) {
          this.unansweredDiscoverUs = null;
          this.push({ kind: 'link_discover' });
        }
        if (this.nextProbeUs !== null && now >= this.nextProbeUs) {
          this.probe();
          this.noteUdpDiscoverSent(now);
          this.nextProbeUs = now + this.t.udpReprobeIntervalUs;
        }
        return;
      case 'udp':
        if (now >= this.lastAnswerUs + this.t.udpSilentUs) {
          this.reasonNow = 'auto: the beacon went silent over UDP; probing';
          this.startProbing(now);
        }
        return;
      case 'idle':
        return;
    }
  }

  private startProbing(now: Micros): void {
    this.phase = 'probing';
    this.giveUpUs = now + this.t.udpAnswerTimeoutUs;
    this.probe();
    this.nextProbeUs = now + this.t.udpProbeIntervalUs;
  }

  private probe(): void {
    this.stats.probes++;
    this.push({ kind: 'probe_udp' });
  }

  private toUdp(reason: string): void {
    this.stats.toUdp++;
    this.push({ kind: 'close_link' });
    this.set('udp', reason);
  }

  private set(carrier: Carrier, reason: string): void {
    const isChange = carrier !== this.carrierNow;
    this.carrierNow = carrier;
    this.reasonNow = reason;
    if (isChange) this.push({ kind: 'carrier', carrier, reason });
  }

  private push(a: TransportAction): void {
    this.actions.push(a);
  }
}
