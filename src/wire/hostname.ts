// Pilot hostnames (the original's validateHostname, pkg/registry/server.go): 1..63 lowercase letters, digits and
// hyphens, starting and ending with a letter or digit; a few names are reserved by the registry. The one rule
// for flags (pilot-daemon --hostname, pilotctl), the daemon's API, and the registry. Pure; never throws.
import { err, ok, type Result } from '../core/result.js';

export const HOSTNAME_MAX_CHARS = 63;
export const HOSTNAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Names the registry refuses to hand out (the original's). */
export const RESERVED_HOSTNAMES: ReadonlySet<string> = new Set(['localhost', 'backbone', 'broadcast']);
export const HOSTNAME_HINT = 'hostnames are lowercase letters, digits and hyphens, at most 63 characters';

/** A string that passed the hostname rule (not reserved-checked: that is the registry's call). */
export type Hostname = string & { readonly __hostname: unique symbol };

export function isHostname(s: unknown): s is Hostname {
  return typeof s === 'string' && HOSTNAME_RE.test(s);
}

/** The hostname rule; invalid_argument with the hint otherwise. */
export function parseHostname(s: string): Result<Hostname> {
  if (isHostname(s)) return ok(s);
  const shown = typeof s === 'string' ? s.slice(0, 80) : String(s);
  return err('invalid_argument', `invalid hostname '${shown}'`, { hint: HOSTNAME_HINT });
}

/** The registry's check with the original's messages (they reach original clients); null when acceptable. */
export function hostnameProblem(name: string): string | null {
  if (name.length > HOSTNAME_MAX_CHARS) return 'hostname too long (max 63 chars)';
  if (!HOSTNAME_RE.test(name)) return 'hostname must be lowercase alphanumeric with hyphens, start/end with alphanumeric';
  if (RESERVED_HOSTNAMES.has(name)) return `hostname "${name}" is reserved`;
  return null;
}
