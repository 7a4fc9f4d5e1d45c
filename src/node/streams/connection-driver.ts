// What the connection table does with a sans-IO stream connection (either suite's) after pollTransmit: hand
// its events to the PilotDuplex, and keep its single deadline armed at pollTimeout() on the Driver — re-armed
// only when the deadline moved, as quinn's driver does (quinn/src/connection.rs, drive_timer).
import { ok, type Result } from '../../core/result.js';
import type { PilotError } from '../../core/errors.js';
import type { Micros } from '../../core/clock.js';
import type { StreamConnection } from '../../transport/stream-connection.js';
import type { Deadline, Driver } from '../driver.js';
import type { PilotDuplex, StreamEndpoint } from './pilot-stream.js';

export interface DrivenConnection {
  conn: StreamConnection;
  stream: PilotDuplex;
  onConnected: ((r: Result<void>) => void) | null;
  deadline: Deadline | null;
  deadlineAtUs: Micros | null;
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

/** Keep the one deadline at the connection's pollTimeout (e.fireTimer runs when it passes). */
export function armTimer(e: DrivenConnection, driver: Driver): void {
  const at = e.conn.pollTimeout();
  if (at === e.deadlineAtUs && (at === null || e.deadline?.isActive === true)) return;
  disarmTimer(e);
  e.deadlineAtUs = at;
  if (at === null) return;
  e.deadline = driver.at(at, () => {
    e.deadline = null;
    e.deadlineAtUs = null;
    e.fireTimer();
  });
}

export function disarmTimer(e: DrivenConnection): void {
  e.deadline?.cancel();
  e.deadline = null;
  e.deadlineAtUs = null;
}

/**
 * The PilotDuplex's view of a connection: every call that can produce segments (data, a window update after
 * a read, FIN, RST) marks the connection for the next flush; a reset is flushed at once.
 */
export function streamEndpointFor(
  conn: StreamConnection,
  entry: { isClosed: boolean },
  markDirty: () => void,
  flushNow: () => void,
): StreamEndpoint {
  return {
    write: (data) => {
      const n = conn.write(data);
      if (n > 0) markDirty();
      return n;
    },
    readableBytes: () => conn.readableBytes,
    readView: (maxBytes) => {
      const view = conn.readView(maxBytes);
      // Reading opens the receive window (and may complete a peer's FIN): let the connection send.
      if (view !== null) markDirty();
      return view;
    },
    finish: () => {
      conn.finish();
      markDirty();
    },
    reset: () => {
      if (entry.isClosed) return;
      conn.reset();
      markDirty();
      flushNow();
    },
  };
}
