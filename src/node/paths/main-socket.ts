// The tunnel socket as every sender sees it (Noise suite, v0.5 suite, path driver): single sends and sealed
// batches go straight to the datapath; each single send also tells the flow listener its destination (the path
// engine counts new flows since classification for port prediction). Nobody sends "through the NAT layer".
import type { Datapath, SendBatch } from '../../datapath/index.js';

export class MainSocket {
  /** Set by the path driver: a destination the socket sent to (new or not; the engine keeps the set). */
  onFlow: ((ip: string, port: number) => void) | null = null;

  constructor(private readonly datapath: Datapath) {}

  send(data: Uint8Array, ip: string, port: number): void {
    this.onFlow?.(ip, port);
    this.datapath.send(data, ip, port);
  }

  sendBatch(batch: SendBatch): void {
    void this.datapath.sendBatch(batch);
  }

  get localPort(): number {
    return this.datapath.localAddress.port;
  }
}
