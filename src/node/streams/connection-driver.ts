// What both connection tables (Noise transport and the v0.5 legacy transport) do with a sans-IO connection
// after pollTransmit: hand its events to the PilotDuplex, and keep its single timer armed at pollTimeout()
// — re-armed only when the deadline moved, as quinn's driver does (quinn/src/connection.rs, drive_timer).
import { ok, type Result } from '../core/result.js';
import type { PilotError } from '../core/errors.js';
import type { Micros } from '../core/clock.js';
import type { ConnEvent } from '../transport/connection.js';
import type { PilotDuplex, StreamEndpoint } from './pilot-stream.js';

export interface DrivenConnection {
  conn: { pollEvent(): ConnEvent | null; pollTimeout(): Micros | null };
  stream: PilotDuplex;
  onConnected: ((r: Result<void>) => void) | null;
  timer: NodeJS.Timeout | null;
  timerAtUs: Micros | null;
  /** Made once per connection: runs handleTimeout and drives it again. */
  fireTimer: () => void;
}

/** Drain the connection's events into its stream. Returns the `closed` event's error holder, or null while open. */
export function dispatchEvents(e: DrivenConnection): { error: PilotError | null } | null {
  for (let ev = e.conn.pollEvent(); ev !== null; ev = e.conn.pollEvent()) {
    switch (ev.kind) {
      case 'connected':
        e.onConnected?.(ok());
        e.onConnected = null;
        break;
      case 'readable':
        e.stream.handleReadable();
        break;
      case 'writable':
        e.stream.handleWritable();
        break;
      case 'finished':
        e.stream.handleFinished();
        break;
      case 'closed':
        return { error: ev.error };
    }
  }
  return null;
}

/** Keep the one timer at the connection's deadline (e.fireTimer runs when it passes). */
export function armTimer(e: DrivenConnection, now: Micros): void {
  const at = e.conn.pollTimeout();
  if (at === e.timerAtUs) return;
  if (e.timer) clearTimeout(e.timer);
  e.timer = null;
  e.timerAtUs = at;
  if (at === null) return;
  e.timer = setTimeout(() => {
    e.timer = null;
    e.timerAtUs = null;
    e.fireTimer();
  }, Math.max(0, Math.ceil((at - now) / 1000)));
}

/** What a connection both tables drive offers its stream (transport Connection and LegacyConnection alike). */
export interface StreamableConnection {
  write(data: Uint8Array): number;
  read(into: Uint8Array): number;
  readonly readableBytes: number;
  finish(): void;
  reset(): void;
}

/**
 * The PilotDuplex's view of a connection: every call that can produce segments (data, a window update after
 * a read, FIN, RST) marks the connection for the next drive; a reset is flushed at once.
 */
export function streamEndpointFor(
  conn: StreamableConnection,
  entry: { isClosed: boolean },
  markDirty: () => void,
  flush: () => void,
): StreamEndpoint {
  return {
    write: (data) => {
      const n = conn.write(data);
      if (n > 0) markDirty();
      return n;
    },
    readableBytes: () => conn.readableBytes,
    read: (into) => {
      const n = conn.read(into);
      // Reading opens the receive window (and may complete a peer's FIN): let the connection send.
      if (n > 0) markDirty();
      return n;
    },
    finish: () => {
      conn.finish();
      markDirty();
    },
    reset: () => {
      if (entry.isClosed) return;
      conn.reset();
      markDirty();
      flush();
    },
  };
}
