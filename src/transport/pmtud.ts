// Datagram Packetization Layer Path MTU Discovery (DPLPMTUD, RFC 8899) for one tunnel path, sans-IO: sizes are
// UDP payload bytes; the caller sends the probes this asks for (a padded, authenticated frame the peer answers
// with an acknowledgement naming the probe), feeds back the acknowledgements and the clock, and sends its data
// at `plpmtu`.
//
// - BASE_PLPMTU is 1452 (what every path we use carries today). Probing is off when the ceiling (the local
//   route's MTU − 28, capped at 65,000) is not above it: such a path keeps 1452, as before.
// - Search (§5.3.2): candidates from the ceiling downward (the ceiling, 16384, 8972 (9000-byte jumbo frames),
//   4068, 1472 (a 1500-byte Ethernet MTU)). Each is probed up to MAX_PROBES times, one probe outstanding; the
//   first acknowledged is the PLPMTU, and the search is complete. A probe that is not acknowledged within
//   PROBE_TIMEOUT_US counts as lost. Descending suits this overlay: the ceiling already excludes the local
//   link's limit (loopback, LANs and jumbo frames are found with one probe), and a smaller hop further on costs
//   MAX_PROBES timeouts per candidate above it.
// - Confirmation (§4.3, black holes): while the search is complete, the PLPMTU is re-probed every
//   CONFIRM_INTERVAL_US; MAX_PROBES losses in a row fall back to BASE_PLPMTU and search again. A path whose
//   MTU shrinks therefore loses at most ~CONFIRM_INTERVAL_US + 3 probe timeouts of large datagrams.
// - Raise (§5.3.3): RAISE_INTERVAL_US after a search that found nothing above the base, it searches again (a
//   PLPMTU found below the ceiling is only confirmed, not raised: a new path resets the search anyway).
// - A new path (roaming, relay, another socket) gets a new PathMtu (its route MTU may differ): BASE_PLPMTU and a
//   search from the top.
import type { Micros } from '../core/clock.js';

export const BASE_PLPMTU = 1452;
export const MAX_PLPMTU = 65_000;
/** IPv4 (20) + UDP (8) header bytes: route MTU − this = the largest UDP payload that leaves unfragmented. */
export const IPV4_UDP_HEADER_BYTES = 28;
const STEPS = [16_384, 8_972, 4_068, 1_472];
export const MAX_PROBES = 3;
export const PROBE_TIMEOUT_US = 500_000;
export const CONFIRM_INTERVAL_US = 15_000_000;
export const RAISE_INTERVAL_US = 600_000_000;

export type PmtudPhase = 'off' | 'search' | 'complete';

export interface PmtuProbe {
  id: number;
  /** UDP payload bytes the probe must occupy. */
  bytes: number;
}

export class PathMtu {
  /** The largest UDP payload confirmed to reach the peer (starts at BASE_PLPMTU). */
  plpmtu = BASE_PLPMTU;
  phase: PmtudPhase;
  readonly ceiling: number;
  private candidates: number[] = [];
  private probing = 0; // bytes of the candidate being probed (0: none)
  private probeCount = 0;
  private outstandingId = 0;
  private outstandingUntilUs: Micros = Infinity;
  private nextProbeAtUs: Micros = 0;
  private nextId = 1;
  private isConfirming = false;
  /** How many times plpmtu changed (an observable for tests and stats). */
  changes = 0;

  /** `routeMtu`: the local route's MTU towards the peer (IP_MTU), or null when unknown (probing off). */
  constructor(routeMtu: number | null, nowUs: Micros) {
    const c = routeMtu === null ? 0 : Math.min(MAX_PLPMTU, routeMtu - IPV4_UDP_HEADER_BYTES);
    this.ceiling = c > BASE_PLPMTU ? c : BASE_PLPMTU;
    this.phase = this.ceiling > BASE_PLPMTU ? 'search' : 'off';
    if (this.phase === 'search') this.startSearch(nowUs, BASE_PLPMTU);
  }

  private startSearch(nowUs: Micros, above: number): void {
    this.phase = 'search';
    this.isConfirming = false;
    this.candidates = [this.ceiling, ...STEPS.filter((s) => s < this.ceiling)].filter((s) => s > above);
    this.nextCandidate(nowUs);
  }

  private nextCandidate(nowUs: Micros): void {
    this.probeCount = 0;
    this.outstandingId = 0;
    this.outstandingUntilUs = Infinity;
    const next = this.candidates.shift();
    if (next === undefined) {
      this.complete(nowUs);
      return;
    }
    this.probing = next;
    this.nextProbeAtUs = nowUs;
  }

  private complete(nowUs: Micros): void {
    this.phase = 'complete';
    this.probing = 0;
    this.outstandingId = 0;
    this.outstandingUntilUs = Infinity;
    this.isConfirming = false;
    // Confirm a raised PLPMTU now and then (black holes); search again later when it stopped below the ceiling.
    this.nextProbeAtUs = this.plpmtu > BASE_PLPMTU ? nowUs + CONFIRM_INTERVAL_US : nowUs + RAISE_INTERVAL_US;
  }

  /**
   * The probe to send now, if any (one outstanding at a time). `isIdle`: no data crossed the path lately — a
   * confirmation then waits another interval (an idle path costs no large probes; traffic that resumes on a
   * black hole is confirmed within one interval).
   */
  poll(nowUs: Micros, isIdle = false): PmtuProbe | null {
    this.onTimer(nowUs);
    if (this.phase === 'off' || this.outstandingId !== 0 || nowUs < this.nextProbeAtUs) return null;
    if (this.phase === 'complete' && !this.isConfirming) {
      if (this.plpmtu > BASE_PLPMTU && isIdle) {
        this.nextProbeAtUs = nowUs + CONFIRM_INTERVAL_US;
        return null;
      }
      if (this.plpmtu > BASE_PLPMTU) {
        // Confirmation: is the raised PLPMTU still carried?
        this.isConfirming = true;
        this.probing = this.plpmtu;
        this.probeCount = 0;
      } else {
        this.startSearch(nowUs, BASE_PLPMTU); // the raise timer of a search that found nothing above the base
        if (this.probing === 0) return null;
      }
    }
    if (this.probing === 0) return null;
    this.outstandingId = this.nextId++;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    this.outstandingUntilUs = nowUs + PROBE_TIMEOUT_US;
    this.probeCount++;
    return { id: this.outstandingId, bytes: this.probing };
  }

  /** The peer acknowledged probe `id` (of `bytes` UDP payload bytes). */
  onAck(id: number, nowUs: Micros): void {
    if (id === 0 || id !== this.outstandingId) return;
    const size = this.probing;
    if (this.isConfirming) {
      this.complete(nowUs); // still carried: confirm again later
      return;
    }
    if (size > this.plpmtu) {
      this.plpmtu = size;
      this.changes++;
    }
    this.complete(nowUs);
  }

  /** Lost probes (timeouts). Called by poll and deadline handling. */
  onTimer(nowUs: Micros): void {
    if (this.outstandingId === 0 || nowUs < this.outstandingUntilUs) return;
    this.outstandingId = 0;
    this.outstandingUntilUs = Infinity;
    if (this.probeCount < MAX_PROBES) {
      this.nextProbeAtUs = nowUs;
      return;
    }
    if (this.isConfirming) {
      // A black hole: what was carried is not any more.
      this.isConfirming = false;
      if (this.plpmtu !== BASE_PLPMTU) this.changes++;
      this.plpmtu = BASE_PLPMTU;
      this.startSearch(nowUs, BASE_PLPMTU);
      return;
    }
    this.nextCandidate(nowUs);
  }

  /** When poll or onTimer next has something to do (Infinity: nothing scheduled). */
  get deadlineUs(): Micros {
    if (this.phase === 'off') return Infinity;
    return this.outstandingId !== 0 ? this.outstandingUntilUs : this.nextProbeAtUs;
  }
}
