// The seam between the node and a tunnel cipher suite. Our Noise IK suite (PN** frames) implements it now; the
// original v0.5 suite (PILA/PILS, AES-256-GCM) will implement the same interface so the node can talk to old peers.
import type { Micros, Result } from '../core/index.js';

export type TunnelSuite = 'noise' | 'legacy';

/** Why an open or seal failed; in `PilotError.detail.reason`. */
export type TunnelFailureReason =
  | 'malformed' // not a data frame of this suite
  | 'wrong_index' // addressed to another session
  | 'replay' // duplicate or older than the replay window
  | 'auth' // tag did not verify
  | 'expired' // session past its reject-after time
  | 'exhausted' // counter space used up: rekey
  | 'too_large' // plaintext over the suite's limit
  | 'no_room'; // caller's buffer too small

export interface TunnelSession {
  readonly suite: TunnelSuite;
  /** Bytes a data frame adds around its plaintext (Noise: 32). */
  readonly overheadBytes: number;
  /** Largest plaintext one data frame carries. */
  readonly maxPlaintextBytes: number;
  /** Monotonic µs when the session's keys were made. */
  readonly createdAtUs: Micros;
  /**
   * Encrypt one plaintext into a complete UDP payload. With `out`, the frame is written at its start and a view
   * of it is returned; otherwise a new buffer is allocated. Errors: invalid_argument (too large, no room),
   * connection_failed (expired or exhausted: the caller must rekey). Never emits a frame without authentication.
   */
  seal(plaintext: Uint8Array, now: Micros, out?: Uint8Array): Result<Uint8Array>;
  /**
   * Authenticate and decrypt one UDP payload; returns a view of the plaintext (in `out`, or in place inside `frame`).
   * Any bytes give a Result; errors carry `detail.reason` (TunnelFailureReason).
   */
  open(frame: Uint8Array, now: Micros, out?: Uint8Array): Result<Uint8Array>;
  /** Time to start a new handshake (the current session keeps working until it is expired). */
  needsRekey(now: Micros): boolean;
  /** Past the hard limit: seal and open refuse. */
  isExpired(now: Micros): boolean;
}
