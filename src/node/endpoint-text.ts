// Transitional shims for src/node/nat-traversal.ts (replaced by src/nat in issue 11): the parsers are
// src/wire/endpoint.ts's. New code imports those and passes values; delete this file with nat-traversal.ts.
import { parseHostPort, parseReachableEndpoint, type UdpEndpoint } from '../wire/endpoint.js';

/** `host:port` flag text → [host, port text]; no host → 0.0.0.0. ['', ''] when not host:port. */
export function splitHostPort(s: string): [string, string] {
  const hp = parseHostPort(s);
  return hp.ok ? [hp.value.host || '0.0.0.0', String(hp.value.port)] : ['', ''];
}

/** `ip:port` from the registry or beacon as a UDP endpoint; wildcard → loopback; null when unusable. */
export const parseEndpoint: (s: string) => UdpEndpoint | null = parseReachableEndpoint;
