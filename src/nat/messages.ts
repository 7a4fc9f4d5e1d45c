// NAT control messages of the path engine (paths.ts). They travel as *plaintexts inside the peer's Noise
// session* (so a probe or a NAT info is authenticated end to end, whichever path — relay or a candidate direct
// endpoint — carried it), in the node's 0x10–0x1f range (0x10 keepalive is the tunnel's):
//   0x11 path probe          (answered with 0x12 on the path it came in on)
//   0x12 path probe reply
//   0x13 nat info            [u8 kind][ipv4 4][u16 port][u16 next port][i16 delta]   (12 bytes)
//   0x14 birthday ready      (the random side's sockets are primed: the sequential side probes now)
// Decoders are total (Result, never throw), as every wire codec.
import { err, ok, type Result } from '../core/index.js';
import { NAT_KINDS, type UdpEndpoint } from './types.js';

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
  /**
   * The sender started its traversal again (its last one found no direct path): the receiver answers with its
   * own NAT info so both take their roles anew. Byte 12, bit 0; a 12-byte message (older senders) has none.
   */
  isRestart?: boolean;
}

export function encodeNatInfo(m: NatInfo): Result<Uint8Array> {
  const ip = m.publicEndpoint.ip.split('.').map(Number);
  if (ip.length !== 4 || ip.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) return err('invalid_argument', 'nat info: ipv4 only');
  const out = new Uint8Array(NAT_INFO_BYTES + 1);
  const v = new DataView(out.buffer);
  out[0] = NAT_INFO;
  out[NAT_INFO_BYTES] = m.isRestart ? 1 : 0;
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
    isRestart: b.length > NAT_INFO_BYTES && (b[NAT_INFO_BYTES]! & 1) === 1,
  });
}
