// NAT control messages. They travel as *plaintexts inside the peer's Noise session* (so a probe or an info
// message is authenticated end to end, whichever path — relay or a candidate direct endpoint — carried it).
// The first plaintext byte is the kind, as for KIND_STREAM (0x01) / KIND_DATAGRAM (0x02) / keepalive (0x10):
//
//   0x30 0x01 probe        [u32 probeId BE]
//   0x30 0x02 probe reply  [u32 probeId BE][u8 iplen 4|16][ip][u16 port]   port/ip: where the probe came from
//   0x30 0x03 info         [u8 kind][i16 portDelta][u16 nextPort][u8 hasPublic][ep]?[u8 lanCount][ep]*
//                          ep = [u8 iplen][ip][u16 port]
//
// Decoders are total (Result, never throw), as every wire codec.
import { err, ok, type Result } from '../core/index.js';
import { formatIp, parseIp } from '../wire/beacon-message.js';
import { NAT_KINDS, type NatKind, type NatProfile, type UdpEndpoint } from './types.js';

export const KIND_NAT = 0x30;
const T_PROBE = 0x01;
const T_REPLY = 0x02;
const T_INFO = 0x03;
const KIND_CODES: NatKind[] = [...NAT_KINDS, 'unknown'];

export type NatMessage =
  | { kind: 'probe'; probeId: number }
  | { kind: 'probe_reply'; probeId: number; observed: UdpEndpoint }
  | { kind: 'info'; profile: NatProfile };

export function isNatMessage(plaintext: Uint8Array): boolean {
  return plaintext.length >= 2 && plaintext[0] === KIND_NAT;
}

export function encodeNatMessage(m: NatMessage): Result<Uint8Array> {
  const out: number[] = [KIND_NAT];
  const u16 = (v: number) => out.push((v >>> 8) & 0xff, v & 0xff);
  const u32 = (v: number) => out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  const ep = (e: UdpEndpoint): boolean => {
    const ip = parseIp(e.ip);
    if (!ip || !Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) return false;
    out.push(ip.length, ...ip);
    u16(e.port);
    return true;
  };
  switch (m.kind) {
    case 'probe':
      out.push(T_PROBE);
      u32(m.probeId >>> 0);
      break;
    case 'probe_reply':
      out.push(T_REPLY);
      u32(m.probeId >>> 0);
      if (!ep(m.observed)) return err('invalid_argument', 'nat probe reply: bad endpoint');
      break;
    case 'info': {
      const p = m.profile;
      out.push(T_INFO, KIND_CODES.indexOf(p.kind));
      u16((p.portDelta ?? 0) & 0xffff);
      u16(p.nextPort ?? 0);
      out.push(p.publicEndpoint ? 1 : 0);
      if (p.publicEndpoint && !ep(p.publicEndpoint)) return err('invalid_argument', 'nat info: bad public endpoint');
      const lan = p.lanEndpoints.slice(0, 8);
      out.push(lan.length);
      for (const e of lan) if (!ep(e)) return err('invalid_argument', 'nat info: bad lan endpoint');
      break;
    }
  }
  return ok(Uint8Array.from(out));
}

export function decodeNatMessage(b: Uint8Array): Result<NatMessage> {
  let off = 2;
  const short = () => err<NatMessage>('invalid_argument', 'nat message too short');
  const need = (n: number) => off + n <= b.length;
  const u16 = () => {
    const v = (b[off]! << 8) | b[off + 1]!;
    off += 2;
    return v;
  };
  const u32 = () => {
    const v = ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
    off += 4;
    return v;
  };
  const ep = (): UdpEndpoint | null => {
    if (!need(1)) return null;
    const len = b[off]!;
    if ((len !== 4 && len !== 16) || !need(1 + len + 2)) return null;
    const ip = formatIp(b.subarray(off + 1, off + 1 + len));
    off += 1 + len;
    return { ip, port: u16() };
  };
  if (b.length < 2 || b[0] !== KIND_NAT) return err('invalid_argument', 'not a nat message');
  switch (b[1]) {
    case T_PROBE:
      if (!need(4)) return short();
      return ok({ kind: 'probe', probeId: u32() });
    case T_REPLY: {
      if (!need(4)) return short();
      const probeId = u32();
      const observed = ep();
      if (!observed) return short();
      return ok({ kind: 'probe_reply', probeId, observed });
    }
    case T_INFO: {
      if (!need(6)) return short();
      const kind = KIND_CODES[b[off++]!];
      if (!kind) return err('invalid_argument', 'nat info: unknown kind');
      let portDelta = u16();
      if (portDelta >= 0x8000) portDelta -= 0x10000;
      const nextPort = u16();
      const hasPublic = b[off++] === 1;
      const publicEndpoint = hasPublic ? ep() : null;
      if (hasPublic && !publicEndpoint) return short();
      if (!need(1)) return short();
      const n = b[off++]!;
      const lanEndpoints: UdpEndpoint[] = [];
      for (let i = 0; i < n; i++) {
        const e = ep();
        if (!e) return short();
        lanEndpoints.push(e);
      }
      const profile: NatProfile = { kind, publicEndpoint, lanEndpoints };
      if (portDelta !== 0) profile.portDelta = portDelta;
      if (nextPort !== 0) profile.nextPort = nextPort;
      return ok({ kind: 'info', profile });
    }
    default:
      return err('invalid_argument', 'unknown nat message type');
  }
}

// Path control plaintexts of the path engine (paths.ts), in the node's 0x10–0x1f range (0x10 keepalive is the
// tunnel's). They travel inside the peer's Noise session like the messages above.
//   0x11 path probe          (answered with 0x12 on the path it came in on)
//   0x12 path probe reply
//   0x13 nat info            [u8 kind][ipv4 4][u16 port][u16 next port][i16 delta]   (12 bytes)
//   0x14 birthday ready      (the random side's sockets are primed: the sequential side probes now)
export const PATH_PROBE = 0x11;
export const PATH_PROBE_REPLY = 0x12;
export const NAT_INFO = 0x13;
export const BIRTHDAY_READY = 0x14;
export const NAT_INFO_BYTES = 12;

export interface NatInfo {
  kind: (typeof NAT_KINDS)[number];
  publicEndpoint: UdpEndpoint;
  /** Port the sender's NAT gives its next new flow (sequential), 0 when unknown. */
  nextPort: number;
  portDelta: number;
}

export function encodeNatInfo(m: NatInfo): Result<Uint8Array> {
  const ip = m.publicEndpoint.ip.split('.').map(Number);
  if (ip.length !== 4 || ip.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) return err('invalid_argument', 'nat info: ipv4 only');
  const out = new Uint8Array(NAT_INFO_BYTES);
  const v = new DataView(out.buffer);
  out[0] = NAT_INFO;
  out[1] = NAT_KINDS.indexOf(m.kind);
  out.set(ip, 2);
  v.setUint16(6, m.publicEndpoint.port);
  v.setUint16(8, m.nextPort > 0 && m.nextPort <= 65535 ? m.nextPort : 0);
  v.setInt16(10, m.portDelta);
  return ok(out);
}

export function decodeNatInfo(b: Uint8Array): Result<NatInfo> {
  if (b.length < NAT_INFO_BYTES || b[0] !== NAT_INFO) return err('invalid_argument', 'nat info too short');
  const kind = NAT_KINDS[b[1]!];
  if (!kind) return err('invalid_argument', 'nat info: unknown kind');
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  return ok({
    kind,
    publicEndpoint: { ip: `${b[2]}.${b[3]}.${b[4]}.${b[5]}`, port: v.getUint16(6) },
    nextPort: v.getUint16(8),
    portDelta: v.getInt16(10),
  });
}
