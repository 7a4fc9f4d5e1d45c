// The extra UDP sockets of birthday probing (src/nat/plan.ts has the arithmetic): the random-port side opens
// many, each punches the targets the path engine names, and the first that hears the peer becomes the peer's
// path (the engine decides; this only owns the sockets). Sockets come from env.openExtraSocket.
import type { Logger } from 'pino';
import type { Result } from '../../core/result.js';
import type { Datapath, RecvBatch } from '../../datapath/index.js';
import type { OpenDatapathOptions } from '../../datapath/index.js';
import type { UdpEndpoint } from '../../nat/index.js';
import { PILP_FRAME } from '../../wire/legacy-frame.js';

export interface ExtraSocketsDeps {
  logger: Logger;
  /** Host the sockets bind on (the tunnel socket's). */
  host: string;
  openExtraSocket(opts: OpenDatapathOptions): Promise<Result<Datapath>>;
  /** A datagram reached extra socket `index` (1-based) of `peer`'s set. */
  onReceive(peer: number, index: number, sock: Datapath, batch: RecvBatch, i: number): void;
}

interface SocketSet {
  sockets: (Datapath | null)[];
  isClosed: boolean;
}

export class ExtraSockets {
  private readonly sets = new Map<number, SocketSet>();

  constructor(private readonly deps: ExtraSocketsDeps) {}

  /** Open up to `count` sockets for `peer` (one after the other); resolves with how many are bound. */
  async open(peer: number, count: number): Promise<number> {
    this.close(peer, []);
    const set: SocketSet = { sockets: [], isClosed: false };
    this.sets.set(peer, set);
    for (let i = 0; i < count && !set.isClosed; i++) {
      const s = await this.deps.openExtraSocket({ host: this.deps.host, port: 0, logger: this.deps.logger, recvBufferBytes: 65536, sendBufferBytes: 65536 });
      if (!s.ok) {
        this.deps.logger.warn({ error: s.error.message, opened: i }, 'birthday probing: cannot open more sockets');
        break;
      }
      const sock = s.value;
      if (set.isClosed) {
        void sock.close();
        break;
      }
      const index = set.sockets.length + 1;
      set.sockets.push(sock);
      sock.onReceive((batch) => {
        for (let j = 0; j < batch.count; j++) this.deps.onReceive(peer, index, sock, batch, j);
      });
    }
    return set.sockets.length;
  }

  /** Socket `index` (1-based) of `peer`'s set, if open. */
  socket(peer: number, index: number): Datapath | null {
    return this.sets.get(peer)?.sockets[index - 1] ?? null;
  }

  /** Is `sock` one of `peer`'s open sockets? */
  isOpen(peer: number, sock: object): boolean {
    return this.sets.get(peer)?.sockets.includes(sock as Datapath) ?? false;
  }

  /** Every open socket of `peer` sends a punch (PILP) to each target. */
  prime(peer: number, targets: UdpEndpoint[]): void {
    const set = this.sets.get(peer);
    if (!set) return;
    for (const sock of set.sockets) if (sock) for (const t of targets) sock.send(PILP_FRAME, t.ip, t.port);
  }

  /** Close `peer`'s sockets except the indices in `keep` (a winner carries its peer's path until shutdown). */
  close(peer: number, keep: number[]): void {
    const set = this.sets.get(peer);
    if (!set) return;
    set.sockets.forEach((s, i) => {
      if (s && !keep.includes(i + 1)) {
        void s.close();
        set.sockets[i] = null;
      }
    });
    if (keep.length === 0) {
      set.isClosed = true;
      this.sets.delete(peer);
    }
  }

  closeAll(): void {
    for (const peer of [...this.sets.keys()]) this.close(peer, []);
  }
}
