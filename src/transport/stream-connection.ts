// The one stream-connection surface the node's connection table drives, whichever suite the connection's
// peer speaks: the Noise transport (./connection.ts) and the original's v0.5 transport (./legacy-connection.ts)
// both implement it. Bytes in (`handle`), datagrams out (`pollTransmit`), events and one deadline — sans-IO,
// `now` passed in, quinn's call order (STYLE §2).
import type { Micros } from '../core/clock.js';
import type { Result } from '../core/result.js';
import type { ConnEvent, ConnectionStats, ConnState } from './connection.js';

export interface StreamConnection {
  readonly localPort: number;
  readonly remotePort: number;
  /** Feed one decrypted segment (the suite's whole plaintext). No I/O, no clock reads, never throws. */
  handle(segment: Uint8Array, nowUs: Micros): Result<void>;
  /** Fire expired timers. Spurious calls are no-ops. */
  handleTimeout(nowUs: Micros): void;
  /** Write the next segment into `buf` and return its length; 0 when nothing may be sent now. */
  pollTransmit(nowUs: Micros, buf: Uint8Array): number;
  /** Earliest deadline for handleTimeout, or null when no timer is armed. */
  pollTimeout(): Micros | null;
  /** Application events; drain after every handle, write, read or timeout. */
  pollEvent(): ConnEvent | null;
  /** Bytes taken (0: wait for 'writable'; −1: the send side is closed). */
  write(data: Uint8Array): number;
  read(into: Uint8Array): number;
  /** Up to maxBytes in-order bytes the caller may keep (no copy where the transport can); null: none now. */
  readView(maxBytes: number): Uint8Array | null;
  readonly readableBytes: number;
  /** Send FIN after the queued data. Idempotent. */
  finish(): void;
  /** Abort with RST. Idempotent. */
  reset(): void;
  /** Closed with nothing left to send. */
  isDrained(): boolean;
  state(): ConnState;
  stats(): ConnectionStats;
  /** The path's segment size changed (path MTU discovery; our transport only). */
  setPathSegmentBytes?(bytes: number): void;
}
