// errno (number or Node's 'EADDRINUSE' strings) → PilotError, shared by both implementations.
import { constants } from 'node:os';
import { err, type Result } from '../core/index.js';

const errnoNames = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) if (!errnoNames.has(n)) errnoNames.set(n, name);

/** 98 → 'EADDRINUSE'; unknown numbers → 'E<n>'. Accepts -errno too. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  return errnoNames.get(n) ?? `E${n}`;
}

/** Result error for a failed bind of host:port. Address problems are the caller's to fix (invalid_argument). */
export function bindError<T>(code: string, host: string, port: number, cause?: unknown): Result<T> {
  const detail = { host, port, errno: code };
  const where = `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return err('invalid_argument', `UDP ${where} is already in use`, {
        hint: 'pick another port, or 0 for an ephemeral one (`ss -ulpn` shows the holder)',
        detail,
        cause,
      });
    case 'EADDRNOTAVAIL':
      return err('invalid_argument', `${host} is not an address of this host`, {
        hint: 'bind to 0.0.0.0 or to one of this host\'s addresses',
        detail,
        cause,
      });
    case 'EACCES':
    case 'EPERM':
      return err('invalid_argument', `not allowed to bind UDP ${where}`, {
        hint: 'ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher port',
        detail,
        cause,
      });
    default:
      return err('connection_failed', `cannot open UDP socket on ${where}: ${code}`, {
        hint: 'check file-descriptor limits (ulimit -n) and the address',
        detail,
        cause,
      });
  }
}
