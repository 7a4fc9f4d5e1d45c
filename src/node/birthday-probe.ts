// Birthday probing for a cone NAT ↔ random-port symmetric NAT (issue 4). Plain punching cannot work there:
// the symmetric side's NAT picks a fresh random port per destination, and a port-restricted cone drops
// packets from ports it has not sent to. So (src/nat/plan.ts has the arithmetic):
//   - the symmetric side opens SOCKETS extra sockets and sends a punch from each to the cone side's public
//     endpoint: its NAT now holds SOCKETS random mappings, each open to exactly that endpoint;
//   - the cone side sends punches from its tunnel socket to random ports of the symmetric side's IP, rate
//     capped; each one that lands on one of those mappings passes the NAT and reaches an extra socket.
// P(hit after M probes) = 1 − (1 − SOCKETS/64512)^M: 50 % at ~174, 99 % at ~1160 probes for 256 sockets.
// The first extra socket that hears the cone side becomes the peer's path (the caller moves the tunnel onto
// it); the rest close. This is a driver (sockets, timers); the decision of *when* lives in the daemon.
import type { Logger } from 'pino';
import type { Result } from '../core/result.js';
import type { Datapath, RecvBatch } from '../datapath/index.js';
import { isPilp, PILP_FRAME } from '../wire/legacy-frame.js';

export const BIRTHDAY_SOCKETS = 256;
export const BIRTHDAY_PROBES_PER_SEC = 500;
export const BIRTHDAY_MAX_PROBES = 3000;
/** How long the extra sockets wait for a hit before giving up (the relay keeps carrying the traffic). */
export const BIRTHDAY_WINDOW_MS = 8000;

const PILP = PILP_FRAME;

export interface Sender {
  send(data: Uint8Array, ip: string, port: number): void;
}

export interface BirthdayDeps {
  logger: Logger;
  /** A fresh UDP socket on the tunnel's interface (small buffers). */
  openSocket(): Promise<Result<Datapath>>;
  /** The tunnel socket. */
  mainSend(data: Uint8Array, ip: string, port: number): void;
  /** An extra socket heard the peer: move the peer's path onto it. */
  onWinner(peerNodeId: number, via: Sender, ip: string, port: number): void;
  /** Any non-punch datagram that reached an extra socket (tunnel frames once the path moved). */
  onFrame(batch: RecvBatch, i: number, via: Sender): void;
}

interface ManySockets {
  peer: number;
  sockets: Datapath[];
  winner: Datapath | null;
  timer: NodeJS.Timeout | null;
}

export class BirthdayProber {
  private readonly runs = new Map<number, ManySockets>();
  private readonly probes = new Map<number, NodeJS.Timeout>();
  /** Winning sockets carry their peer's path until shutdown. */
  private readonly winners = new Set<Datapath>();

  constructor(private readonly deps: BirthdayDeps) {}

  isRunning(peer: number): boolean {
    return this.runs.has(peer) || this.probes.has(peer);
  }

  /**
   * Symmetric side: open the sockets, punch from each toward every target — the cone side's public endpoint,
   * or (sequential peer) each port its NAT is predicted to allocate next. Called again for a running probe,
   * the existing sockets punch the new targets (a retry with fresh predictions).
   */
  async openMany(peer: number, targets: { ip: string; port: number }[]): Promise<void> {
    const existing = this.runs.get(peer);
    if (existing) {
      if (existing.winner) return;
      for (const sock of existing.sockets) for (const t of targets) sock.send(PILP, t.ip, t.port);
      this.armTimeout(existing);
      return;
    }
    const run: ManySockets = { peer, sockets: [], winner: null, timer: null };
    this.runs.set(peer, run);
    const peerIp = targets[0]?.ip;
    for (let i = 0; i < BIRTHDAY_SOCKETS && this.runs.get(peer) === run; i++) {
      const s = await this.deps.openSocket();
      if (!s.ok) {
        this.deps.logger.warn({ error: s.error.message, opened: i }, 'birthday probing: cannot open more sockets');
        break;
      }
      const sock = s.value;
      run.sockets.push(sock);
      sock.onReceive((batch) => this.handleBatch(run, sock, peerIp, batch));
      for (const t of targets) sock.send(PILP, t.ip, t.port);
    }
    // A second punch round: the cone side may have started probing before all mappings existed.
    if (targets.length === 1) for (const sock of run.sockets) sock.send(PILP, targets[0]!.ip, targets[0]!.port);
    this.deps.logger.info({ peer, sockets: run.sockets.length, targets: targets.length }, 'birthday probing: mappings opened');
    this.armTimeout(run);
  }

  private armTimeout(run: ManySockets): void {
    const peer = run.peer;
    if (run.timer) clearTimeout(run.timer);
    run.timer = setTimeout(() => {
      if (!run.winner) {
        this.deps.logger.info({ peer }, 'birthday probing: no hit; staying on the relay');
        this.stop(peer);
      }
    }, BIRTHDAY_WINDOW_MS);
  }

  private handleBatch(run: ManySockets, sock: Datapath, peerIp: string | undefined, batch: RecvBatch): void {
    for (let i = 0; i < batch.count; i++) {
      const ip = batch.ip(i);
      if (ip !== peerIp) continue;
      if (!run.winner) {
        run.winner = sock;
        this.winners.add(sock);
        const port = batch.port(i);
        this.deps.logger.info({ peer: run.peer, via_port: sock.localAddress.port, peer_endpoint: `${ip}:${port}` }, 'birthday probing: hit');
        this.deps.onWinner(run.peer, sock, ip, port);
        // Keep the winner; the others have done their job.
        setTimeout(() => {
          for (const s of run.sockets) if (s !== run.winner) void s.close();
          run.sockets = run.winner ? [run.winner] : [];
        }, 2000);
      }
      if (sock === run.winner && !isPilp(batch.payload(i))) this.deps.onFrame(batch, i, sock);
    }
  }

  /** Cone (or sequential) side: rate-capped punches to random ports of the symmetric side's IP until `isDone()`. */
  probeRandom(peer: number, ip: string, isDone: () => boolean, maxProbes = BIRTHDAY_MAX_PROBES): void {
    if (this.probes.has(peer)) return;
    let sent = 0;
    const perTick = Math.max(1, Math.round(BIRTHDAY_PROBES_PER_SEC / 100));
    const tick = () => {
      if (isDone() || sent >= maxProbes) {
        this.deps.logger.info({ peer, probes: sent, done: isDone() }, 'birthday probing: probe side finished');
        this.probes.delete(peer);
        return;
      }
      for (let k = 0; k < perTick; k++, sent++) this.deps.mainSend(PILP, ip, 1024 + Math.floor(Math.random() * 64512));
      this.probes.set(peer, setTimeout(tick, 10));
    };
    this.probes.set(peer, setTimeout(tick, 0));
  }

  stop(peer: number): void {
    const run = this.runs.get(peer);
    if (run) {
      if (run.timer) clearTimeout(run.timer);
      for (const s of run.sockets) if (s !== run.winner) void s.close();
      this.runs.delete(peer);
    }
    const p = this.probes.get(peer);
    if (p) clearTimeout(p);
    this.probes.delete(peer);
  }

  close(): void {
    for (const peer of [...this.runs.keys(), ...this.probes.keys()]) this.stop(peer);
    for (const w of this.winners) void w.close();
    this.winners.clear();
  }
}

