// Real-network addresses as values: IP text ↔ bytes, `host:port` text ↔ {host, port}, and the UDP endpoint
// {ip, port} every layer passes around (nat, node, registry). One parser each; flags and registry answers are
// parsed here where they enter, and the rest of the code passes the values. Pure: never throws on input.
import { err, ok, type Result } from '../core/result.js';

/** A UDP endpoint (ip:port) in the real network — never a pilot virtual address. `ip` is an IP literal. */
export interface UdpEndpoint {
  ip: string;
  port: number;
}

/** `host:port` as typed: `host` is a name or an IP literal (IPv6 without brackets), '' when the text had none. */
export interface HostPort {
  host: string;
  port: number;
}

/** Well-known TCP/UDP ports of the rendezvous (the original's cmd/rendezvous defaults). */
export const DEFAULT_REGISTRY_PORT = 9000;
export const DEFAULT_BEACON_PORT = 9001;
/** Where a node looks for the rendezvous when nothing else is configured. */
export const DEFAULT_REGISTRY_ADDR = `127.0.0.1:${DEFAULT_REGISTRY_PORT}`;
export const DEFAULT_BEACON_ADDR = `127.0.0.1:${DEFAULT_BEACON_PORT}`;

const MAX_HOST_PORT_TEXT = 300; // a DNS name is at most 253 characters; bounds the work on hostile input
const HOST_PORT_RE = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/;

/**
 * `host:port`, `[v6]:port` or `:port` (host '' — the caller picks the wildcard or loopback it means) → HostPort.
 * The port is decimal 0..65535 (0 = "any" for a bind; `minPort: 1` for a destination). An IPv6 host needs
 * brackets (`::1:9000` is ambiguous). invalid_argument otherwise.
 */
export function parseHostPort(text: string, opts: { minPort?: number; defaultHost?: string } = {}): Result<HostPort> {
  if (typeof text !== 'string') return err('invalid_argument', 'host:port must be a string');
  const m = text.length <= MAX_HOST_PORT_TEXT ? HOST_PORT_RE.exec(text) : null;
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535 || port < (opts.minPort ?? 0)) {
    return err('invalid_argument', `'${text.slice(0, 80)}' is not host:port`, { hint: `e.g. ${DEFAULT_REGISTRY_ADDR}` });
  }
  const host = m[1] ?? m[2] ?? '';
  if (m[1] !== undefined && (m[1] === '' || !m[1].includes(':'))) {
    return err('invalid_argument', `'${text.slice(0, 80)}': only IPv6 addresses go in brackets`);
  }
  return ok({ host: host === '' ? (opts.defaultHost ?? '') : host, port });
}

/** `host:port`, bracketing an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function formatEndpoint(e: UdpEndpoint): string {
  return formatHostPort(e.ip, e.port);
}

export function sameEndpoint(a: UdpEndpoint | null | undefined, b: UdpEndpoint | null | undefined): boolean {
  return !!a && !!b && a.ip === b.ip && a.port === b.port;
}

/**
 * An endpoint a peer can be reached at, as the registry and the beacon report them (`ip:port`): an IPv4 literal
 * and a port 1..65535; the wildcard (or no host) means the sender's own machine → loopback. null for anything
 * else, IPv6 included (the datapath has no IPv6 yet).
 */
export function parseReachableEndpoint(text: string): UdpEndpoint | null {
  const hp = parseHostPort(text, { minPort: 1 });
  if (!hp.ok) return null;
  const ip = hp.value.host === '' || hp.value.host === '0.0.0.0' ? '127.0.0.1' : hp.value.host;
  const bytes = parseIp(ip);
  if (!bytes || bytes.length !== 4) return null;
  return { ip: formatIp(bytes), port: hp.value.port };
}

/** `host` of a flag as an IP the sockets take: `localhost` → 127.0.0.1, '' → `dflt`; other names as given. */
export function hostToIp(host: string, dflt: string): string {
  if (host === '') return dflt;
  return host === 'localhost' ? '127.0.0.1' : host;
}

// ---- IP literals ----

/** Dotted IPv4 for 4 bytes, 8 lower-case hex groups (uncompressed, valid for dgram) for 16. */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':');
}

/**
 * IP text → 4 or 16 bytes; null when not an IP. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack
 * socket reports) becomes 4 bytes, as Go's IP.To4() does in the original.
 */
export function parseIp(text: string): Uint8Array | null {
  if (typeof text !== 'string' || text.length === 0 || text.length > 45) return null;
  const v4 = parseIpv4(text);
  if (v4) return v4;
  const v6 = parseIpv6(text);
  if (!v6) return null;
  let mapped = true;
  for (let i = 0; i < 10; i++) if (v6[i] !== 0) mapped = false;
  if (mapped && v6[10] === 0xff && v6[11] === 0xff) return v6.slice(12);
  return v6;
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | null {
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!head || !tail) return null;
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >>> 8;
    out[2 * i + 1] = groups[i]! & 0xff;
  }
  return out;
}

