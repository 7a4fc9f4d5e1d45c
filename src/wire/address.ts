// Pilot Protocol v0.5 virtual addresses (SPEC.md §1–2; pkg/protocol/address.go, header.go of the original).
//
// Binary: 6 bytes, big-endian: [u16 network][u32 node].
// Text:   N:NNNN.HHHH.LLLL — N = network in decimal, NNNN = the same network in 4 hex digits (redundant),
//         HHHH/LLLL = node high/low 16 bits in hex. The original prints upper-case hex and, when parsing,
//         accepts either case, leading zeros in N, and rejects a hex network that differs from N.
//         (SPEC.md's example `1:00A3.F291.0004` is therefore not parseable by the original; the code rules.)
// Socket: N:NNNN.HHHH.LLLL:PORT, PORT in decimal 0..65535.
import { err, ok, type Result } from '../core/result.js';
import { isU16, isU32, readU16, readU32, writeU16, writeU32 } from './bytes.js';

export interface VirtualAddr {
  network: number; // u16
  node: number; // u32
}

export interface SocketAddr {
  addr: VirtualAddr;
  port: number; // u16
}

export const ADDR_SIZE = 6;
export const NODE_BROADCAST = 0xffffffff;

export const ADDR_ZERO: Readonly<VirtualAddr> = Object.freeze({ network: 0, node: 0 });
export const ADDR_REGISTRY: Readonly<VirtualAddr> = Object.freeze({ network: 0, node: 1 });
export const ADDR_BEACON: Readonly<VirtualAddr> = Object.freeze({ network: 0, node: 2 });
export const ADDR_NAMESERVER: Readonly<VirtualAddr> = Object.freeze({ network: 0, node: 3 });

/** `X:FFFF.FFFF.FFFF`-style broadcast address of a network (node all ones). */
export function broadcastAddr(network: number): VirtualAddr {
  return { network, node: NODE_BROADCAST };
}
export function isZeroAddr(a: VirtualAddr): boolean {
  return a.network === 0 && a.node === 0;
}
export function isBroadcastAddr(a: VirtualAddr): boolean {
  return a.node === NODE_BROADCAST;
}

// Well-known virtual ports (SPEC.md §2.2, pkg/protocol/header.go).
export const PORT_PING = 0;
export const PORT_CONTROL = 1;
export const PORT_ECHO = 7;
export const PORT_NAMESERVER = 53;
export const PORT_HTTP = 80;
export const PORT_SECURE = 443;
export const PORT_HANDSHAKE = 444;
export const PORT_STDIO = 1000;
export const PORT_DATAEXCHANGE = 1001;
export const PORT_EVENTSTREAM = 1002;
export const PORT_TASKSUBMIT = 1003;

// Port ranges.
export const PORT_RESERVED_MAX = 1023;
export const PORT_REGISTERED_MAX = 49151;
export const PORT_EPHEMERAL_MIN = 49152;
export const PORT_EPHEMERAL_MAX = 65535;

export function isValidPort(port: unknown): port is number {
  return isU16(port);
}

/** Network is an integer in 0..0xffff and node in 0..0xffffffff. */
export function isValidAddr(a: unknown): a is VirtualAddr {
  return (
    typeof a === 'object' &&
    a !== null &&
    isU16((a as VirtualAddr).network) &&
    isU32((a as VirtualAddr).node)
  );
}

export function addrEquals(a: VirtualAddr, b: VirtualAddr): boolean {
  return a.network === b.network && a.node === b.node;
}

export function socketAddrEquals(a: SocketAddr, b: SocketAddr): boolean {
  return a.port === b.port && addrEquals(a.addr, b.addr);
}

const HEX2: string[] = [];
for (let i = 0; i < 256; i++) HEX2.push((i < 16 ? '0' : '') + i.toString(16).toUpperCase());
function hex4(v: number): string {
  return HEX2[(v >>> 8) & 0xff]! + HEX2[v & 0xff]!;
}

/** `N:NNNN.HHHH.LLLL`, upper-case hex, exactly like the original's Addr.String(). */
export function formatAddr(a: VirtualAddr): string {
  const net = a.network & 0xffff;
  const node = a.node >>> 0;
  return net + ':' + hex4(net) + '.' + hex4(node >>> 16) + '.' + hex4(node & 0xffff);
}

export function formatSocketAddr(s: SocketAddr): string {
  return formatAddr(s.addr) + ':' + (s.port & 0xffff);
}

const MAX_TEXT = 64; // the longest valid text is far shorter; bounds the work on hostile input

/** Decimal 0..65535 over text[start, end); Go ParseUint(s, 10, 16) rules (digits only, leading zeros ok). */
function parseDecU16(text: string, start: number, end: number): number {
  if (end <= start) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
    if (v > 0xffff) return -1;
  }
  return v;
}

/** Four hex digits (either case) at text[at, at+4), or -1. */
function parseHex4(text: string, at: number): number {
  let v = 0;
  for (let i = at; i < at + 4; i++) {
    const c = text.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 65 && c <= 70) d = c - 55;
    else if (c >= 97 && c <= 102) d = c - 87;
    else return -1;
    v = (v << 4) | d;
  }
  return v;
}

function badAddr(text: string, why: string): Result<VirtualAddr> {
  return err('invalid_argument', `invalid address: ${JSON.stringify(text.slice(0, MAX_TEXT))} (${why})`, {
    hint: 'a virtual address looks like 0:0000.0000.0001 (network in decimal, then network and node in hex)',
  });
}

/** Parse `N:NNNN.HHHH.LLLL` with the original's rules. Never throws. */
export function parseAddr(text: string): Result<VirtualAddr> {
  if (typeof text !== 'string') return err('invalid_argument', 'address must be a string');
  const len = text.length;
  if (len > MAX_TEXT) return badAddr(text, 'too long');
  const colon = text.indexOf(':');
  if (colon < 0) return badAddr(text, 'expected N:XXXX.YYYY.YYYY');
  const network = parseDecU16(text, 0, colon);
  if (network < 0) return badAddr(text, 'network ID must be decimal 0..65535');
  const g = colon + 1;
  if (len - g !== 14 || text.charCodeAt(g + 4) !== 46 || text.charCodeAt(g + 9) !== 46) {
    return badAddr(text, 'expected 3 dot-separated groups of 4 hex digits');
  }
  const netHex = parseHex4(text, g);
  const hi = parseHex4(text, g + 5);
  const lo = parseHex4(text, g + 10);
  if (netHex < 0 || hi < 0 || lo < 0) return badAddr(text, 'groups must be hex digits');
  if (netHex !== network) {
    return err('invalid_argument', `network mismatch: decimal ${network} != hex 0x${hex4(netHex)}`, {
      hint: `the first hex group repeats the network: ${network}:${hex4(network)}.XXXX.XXXX`,
    });
  }
  return ok({ network, node: ((hi << 16) | lo) >>> 0 });
}

/** Parse `N:NNNN.HHHH.LLLL:PORT` (the port after the last colon). Never throws. */
export function parseSocketAddr(text: string): Result<SocketAddr> {
  if (typeof text !== 'string') return err('invalid_argument', 'socket address must be a string');
  if (text.length > MAX_TEXT) return err('invalid_argument', 'invalid socket address: too long');
  const colon = text.lastIndexOf(':');
  if (colon < 0) return err('invalid_argument', `invalid socket address: ${JSON.stringify(text)} (no port)`);
  const a = parseAddr(text.slice(0, colon));
  if (!a.ok) return a;
  const port = parseDecU16(text, colon + 1, text.length);
  if (port < 0) return err('invalid_argument', `invalid port: ${JSON.stringify(text.slice(colon + 1))} (0..65535)`);
  return ok({ addr: a.value, port });
}

/** Write the 6-byte form at `offset` (no checks: the caller guarantees room and a valid address). */
export function writeAddr(out: Uint8Array, offset: number, a: VirtualAddr): void {
  writeU16(out, offset, a.network);
  writeU32(out, offset + 2, a.node);
}

/** Read a 6-byte address at `offset` (no checks: the caller guarantees room). */
export function readAddr(buf: Uint8Array, offset: number): VirtualAddr {
  return { network: readU16(buf, offset), node: readU32(buf, offset + 2) };
}

/** 6-byte big-endian encoding, into `out` at `offset` when given. */
export function encodeAddr(a: VirtualAddr, out?: Uint8Array, offset = 0): Result<Uint8Array> {
  if (!isValidAddr(a)) return err('invalid_argument', 'invalid address: network must be u16 and node u32');
  const buf = out ?? new Uint8Array(ADDR_SIZE);
  if (!Number.isInteger(offset) || offset < 0 || offset + ADDR_SIZE > buf.length) {
    return err('invalid_argument', `no room for a ${ADDR_SIZE}-byte address at offset ${offset}`);
  }
  writeAddr(buf, offset, a);
  return ok(buf.subarray(offset, offset + ADDR_SIZE));
}

/** Decode exactly 6 bytes (or the 6 at `offset` when given). Never throws. */
export function decodeAddr(buf: Uint8Array, offset?: number): Result<VirtualAddr> {
  if (offset === undefined) {
    if (buf.length !== ADDR_SIZE) return err('invalid_argument', `address must be ${ADDR_SIZE} bytes, got ${buf.length}`);
    return ok(readAddr(buf, 0));
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + ADDR_SIZE > buf.length) {
    return err('invalid_argument', `address truncated at offset ${offset} (have ${buf.length} bytes)`);
  }
  return ok(readAddr(buf, offset));
}
