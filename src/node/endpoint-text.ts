// host:port text ↔ UDP endpoints, for flags and registry answers (IPv4; the datapath has no IPv6 yet).
import type { UdpEndpoint } from './peers/noise-suite.js';

export function splitHostPort(s: string): [string, string] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i) || '0.0.0.0', s.slice(i + 1)];
}

/** `ip:port` from the registry or beacon as a UDP endpoint; wildcard → loopback; null when unusable. */
export function parseEndpoint(s: string): UdpEndpoint | null {
  const i = s.lastIndexOf(':');
  if (i <= 0) return null;
  const port = Number(s.slice(i + 1));
  let ip = s.slice(0, i);
  if (ip.startsWith('[')) return null; // IPv6 is not supported by the datapath yet
  if (ip === '0.0.0.0' || ip === '') ip = '127.0.0.1';
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return null;
  return { ip, port };
}
